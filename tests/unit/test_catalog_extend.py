"""The catalog keys issue 16 (extend, break-glass) will use: each rule, default, error and warning.

No command reads them yet; these tests pin what the catalog accepts, refuses and warns about.
The sample's prod/admin: max_duration 4h, approvers bob and carol, approvals_required 2,
requesters alice and dave, production. prod/readonly: 8h, bob and carol, 1 approval, everyone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chalicelib.catalog import Catalog, CatalogError, main, parse_catalog
from tests.unit.test_catalog import catalog, minimal_role_catalog, problem_at, problems, prod_admin, sample, to_toml

__all__ = ["catalog"]  # the fixture, imported for the tests below

ADMIN = "accounts.prod.roles.admin"
READONLY = "accounts.prod.roles.readonly"


def prod_readonly(data: dict[str, Any]) -> dict[str, Any]:
    return data["accounts"]["prod"]["roles"]["readonly"]


def loads(data: dict[str, Any]) -> Catalog:
    return parse_catalog(to_toml(data))


def warnings_of(data: dict[str, Any]) -> list[str]:
    """The warnings of the sample's role tables only (the sample itself has none)."""
    return list(loads(data).warnings)


# --------------------------------------------------------------------------- defaults


ISSUE_16_KEYS = ("max_extended_duration", "extend_approvals", "self_extend", "break_glass", "break_glass_max",
                 "review_within")


def test_defaults_follow_the_role() -> None:
    data = sample()
    for key in ISSUE_16_KEYS:  # the sample sets some of them for prod/admin: default them all
        prod_admin(data).pop(key, None)
    catalog = loads(data)
    role = catalog.find_role("prod", "admin")
    assert role.max_extended_duration_seconds == 4 * 3600  # = max_duration
    assert role.max_extended_duration == "4h"
    assert role.extend_approvals == 2  # = approvals_required
    assert role.self_extend is False
    assert role.break_glass == ()
    assert role.break_glass_max_seconds == 3600
    assert role.review_within_seconds == 24 * 3600
    readonly = catalog.find_role("prod", "readonly")
    assert (readonly.max_extended_duration_seconds, readonly.extend_approvals) == (8 * 3600, 1)


def test_break_glass_max_defaults_to_max_duration_when_that_is_shorter_than_1h() -> None:
    role = loads(minimal_role_catalog(max_duration="30m")).find_role("sandbox", "poweruser")
    assert role.break_glass_max_seconds == 30 * 60
    assert role.max_extended_duration_seconds == 30 * 60


def test_every_key_set_and_valid() -> None:
    data = sample()
    prod_admin(data).update(max_extended_duration="8h", extend_approvals=1, break_glass=["alice", "dave"],
                            break_glass_max="2h", review_within="4h")
    catalog = loads(data)
    role = catalog.find_role("prod", "admin")
    assert role.max_extended_duration_seconds == 8 * 3600
    assert role.extend_approvals == 1
    assert role.break_glass == ("alice", "dave")
    assert isinstance(role.break_glass, tuple)
    assert role.break_glass_max_seconds == 2 * 3600
    assert role.review_within_seconds == 4 * 3600
    assert catalog.warnings == ()


def test_limits_are_inclusive() -> None:
    data = sample()
    prod_admin(data).update(max_extended_duration="4h", extend_approvals=2, break_glass=["alice"],
                            break_glass_max="4h", review_within="7d")
    role = loads(data).find_role("prod", "admin")
    assert (role.max_extended_duration_seconds, role.break_glass_max_seconds) == (4 * 3600, 4 * 3600)
    assert role.review_within_seconds == 7 * 86400


def test_break_glass_people_may_be_anyone_when_requesters_is_absent() -> None:
    data = sample()
    prod_readonly(data)["break_glass"] = ["bob", "dave"]
    assert loads(data).find_role("prod", "readonly").break_glass == ("bob", "dave")


# --------------------------------------------------------------------------- extend


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_extended_duration", "4x", "'4x' is not a duration; use e.g. 30m, 2h, 1h30m or 1d"),
        ("max_extended_duration", "8d", "'8d' is too long; at most 7d"),
        ("max_extended_duration", 8, 'must be a duration in quotes, e.g. "4h"'),
        ("extend_approvals", -1, "must be 0 or more, not -1"),
        ("extend_approvals", "1", "must be a whole number"),
        ("extend_approvals", True, "must be a whole number"),
        ("self_extend", "yes", "must be true or false"),
        ("break_glass", "alice", "must be a list"),
        ("break_glass_max", "1 hour", "'1 hour' is not a duration; use e.g. 30m, 2h, 1h30m or 1d"),
        ("review_within", "0m", "duration must be positive; use e.g. 30m, 2h, 1h30m or 1d"),
        ("review_within", "7d1m", "'7d1m' is too long; at most 7d"),
        ("review_within", 24, 'must be a duration in quotes, e.g. "4h"'),
    ],
)
def test_value_rules(key: str, value: Any, message: str) -> None:
    data = sample()
    prod_admin(data)[key] = value
    assert problem_at(data, f"{ADMIN}.{key}") == message


def test_max_extended_duration_shorter_than_max_duration_is_an_error() -> None:
    data = sample()
    prod_admin(data)["max_extended_duration"] = "2h"
    assert problem_at(data, f"{ADMIN}.max_extended_duration") == (
        "is 2h, shorter than max_duration (4h), so no extension could ever be granted; "
        "set it to at least 4h or remove it (default: max_duration)"
    )


def test_extend_approvals_more_than_the_approvers_is_an_error() -> None:
    data = sample()
    prod_admin(data)["extend_approvals"] = 3
    assert problem_at(data, f"{ADMIN}.extend_approvals") == (
        "is 3 but there are only 2 approvers; lower it or add approvers"
    )


def test_extend_approvals_0_in_production_needs_self_extend() -> None:
    data = sample()
    prod_admin(data)["extend_approvals"] = 0
    assert problem_at(data, f"{ADMIN}.extend_approvals") == (
        "is 0 in a production account, so a requester would extend their own grant without anyone's approval; "
        "require at least 1 approval, or set self_extend = true to allow it"
    )
    prod_admin(data)["self_extend"] = True
    catalog = loads(data)
    assert catalog.warnings == ()
    role = catalog.find_role("prod", "admin")
    assert (role.extend_approvals, role.self_extend) == (0, True)


def test_extend_approvals_0_outside_production_needs_nothing_else() -> None:
    role = loads(minimal_role_catalog(extend_approvals=0)).find_role("sandbox", "poweruser")
    assert (role.extend_approvals, role.self_extend) == (0, False)


@pytest.mark.parametrize(
    ("extend_approvals", "said"),
    [(1, "is 1"), (None, "defaults to approvals_required (2)")],
)
def test_self_extend_without_extend_approvals_0_is_a_warning(extend_approvals: int | None, said: str) -> None:
    data = sample()
    prod_admin(data)["self_extend"] = True
    prod_admin(data).pop("extend_approvals", None)
    if extend_approvals is not None:
        prod_admin(data)["extend_approvals"] = extend_approvals
    assert warnings_of(data) == [
        f"{ADMIN}.self_extend: has no effect: extend_approvals {said}, so extensions need approvals anyway; "
        "remove it, or set extend_approvals = 0 to let the requester extend alone"
    ]


def test_listed_requester_who_could_be_approved_but_never_extended_is_a_warning() -> None:
    data = sample()
    prod_readonly(data).update(requesters=["alice", "bob"], extend_approvals=2)
    assert warnings_of(data) == [
        f"{READONLY}.extend_approvals: 'bob' can be approved but never extended: an extension needs 2 approvals "
        "and only 1 of its approvers (carol) may approve bob's; add another approver, lower extend_approvals "
        "or set self_approval = true"
    ]
    prod_readonly(data)["self_approval"] = True  # bob's own approval counts: no warning
    assert warnings_of(data) == []


def test_requester_who_can_never_be_approved_is_not_warned_about_twice() -> None:
    data = sample()
    prod_admin(data)["requesters"] = ["alice", "bob"]  # bob can never collect 2 approvals
    assert [w.split(": ", 1)[0] for w in warnings_of(data)] == [f"{ADMIN}.requesters[1]"]


def test_role_nobody_approvable_can_ever_extend_is_a_warning() -> None:
    data = sample()
    prod_readonly(data).update(approvers=["alice", "bob", "carol", "dave"], extend_approvals=4)
    assert warnings_of(data) == [
        f"{READONLY}.extend_approvals: nobody can ever extend it: an extension needs 4 approvals and everyone "
        "who can be approved for it is one of its approvers, who may not approve their own; add another "
        "approver, lower extend_approvals or set self_approval = true"
    ]


def test_extend_approvals_with_requesters_absent_and_someone_able_to_extend_is_quiet() -> None:
    data = sample()
    prod_readonly(data)["extend_approvals"] = 2  # bob and carol cannot, alice and dave can
    assert warnings_of(data) == []


# --------------------------------------------------------------------------- break-glass


def test_break_glass_people_must_exist_once() -> None:
    data = sample()
    prod_admin(data)["break_glass"] = ["alice", "eve", "alice"]
    assert problem_at(data, f"{ADMIN}.break_glass[1]") == (
        "'eve' is not a person in [people]; add [people.eve] or fix the name"
    )
    assert problem_at(data, f"{ADMIN}.break_glass[2]") == "'alice' is listed twice; remove the repeat"


def test_break_glass_person_must_be_a_requester() -> None:
    data = sample()
    prod_admin(data)["break_glass"] = ["alice", "bob"]
    assert problem_at(data, f"{ADMIN}.break_glass[1]") == (
        "'bob' may not request this role, so may not break glass into it either; "
        "add 'bob' to requesters or remove them from break_glass"
    )


def test_break_glass_max_longer_than_max_duration_is_an_error() -> None:
    data = sample()
    prod_admin(data).update(break_glass=["alice"], break_glass_max="5h")
    assert problem_at(data, f"{ADMIN}.break_glass_max") == (
        "is 5h, longer than max_duration (4h), and a break-glass grant may not outlast an approved one; "
        "lower it to at most 4h or raise max_duration"
    )


@pytest.mark.parametrize("break_glass", [None, []])
def test_break_glass_max_without_break_glass_is_a_warning(break_glass: list[str] | None) -> None:
    data = sample()
    for key in ISSUE_16_KEYS:
        prod_admin(data).pop(key, None)
    prod_admin(data)["break_glass_max"] = "2h"
    if break_glass is not None:
        prod_admin(data)["break_glass"] = break_glass
    assert warnings_of(data) == [
        f"{ADMIN}.break_glass_max: has no effect: break_glass lists nobody; remove it, or list in break_glass "
        "who may self-grant this role in an emergency"
    ]


# --------------------------------------------------------------------------- all together


def test_a_shape_error_does_not_hide_the_other_new_checks() -> None:
    data = sample()
    prod_admin(data).update(extend_approvals=-1, max_extended_duration="1h", break_glass=["bob"],
                            review_within="8d")
    with pytest.raises(CatalogError) as caught:
        loads(data)
    assert caught.value.problems == [
        f"{ADMIN}.extend_approvals: must be 0 or more, not -1",
        f"{ADMIN}.review_within: '8d' is too long; at most 7d",
        f"{ADMIN}.max_extended_duration: is 1h, shorter than max_duration (4h), so no extension could ever be "
        "granted; set it to at least 4h or remove it (default: max_duration)",
        f"{ADMIN}.break_glass[0]: 'bob' may not request this role, so may not break glass into it either; "
        "add 'bob' to requesters or remove them from break_glass",
    ]


def test_validator_reports_the_new_keys(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = sample()
    for key in ISSUE_16_KEYS:
        prod_admin(data).pop(key, None)
    prod_admin(data).update(extend_approvals=0, break_glass_max="30m")
    path = tmp_path / "access.toml"
    path.write_text(to_toml(data))
    assert main([str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": ", 2)[:2] for line in err] == [
        ["error", f"{ADMIN}.extend_approvals"],
        ["warning", f"{ADMIN}.break_glass_max"],
    ]


def test_the_sample_with_its_commented_examples_uncommented_is_valid() -> None:
    from tests.unit.test_catalog import SAMPLE_PATH

    text = SAMPLE_PATH.read_text()
    examples = [line for line in text.splitlines() if line.startswith("# ") and "  # issue 16:" in line]
    uncommented = text
    for line in examples:
        uncommented = uncommented.replace(line, line[2:])
    catalog = parse_catalog(uncommented)
    assert catalog.warnings == ()
    admin = catalog.find_role("prod", "admin")  # every issue 16 key shown, set or as an example
    assert (admin.max_extended_duration, admin.extend_approvals) == ("8h", 1)
    assert (admin.break_glass, admin.break_glass_max_seconds, admin.review_within_seconds) == (
        ("alice",), 3600, 4 * 3600)
