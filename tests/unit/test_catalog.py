"""The access catalog: the sample file, every validation rule, lookups, cache and CLI."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from chalicelib.catalog import (
    CatalogError,
    Catalog,
    approval_blocker,
    load_catalog,
    main,
    parse_catalog,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLE_PATH = REPO / "policies" / "access.toml"
SAMPLE_DATA: dict[str, Any] = tomllib.loads(SAMPLE_PATH.read_text())


# --------------------------------------------------------------------------- helpers


def to_toml(data: dict[str, Any]) -> str:
    """A tiny TOML writer for the shapes a catalog has (tables, strings, ints, bools, lists)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(v)

    def key(k: str) -> str:
        return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)

    lines: list[str] = []

    def table(path: list[str], body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict)}
        if path:
            lines.append("[" + ".".join(key(p) for p in path) + "]")
        lines.extend(f"{key(k)} = {value(v)}" for k, v in scalars.items())
        for k, v in body.items():
            if isinstance(v, dict):
                table([*path, k], v)

    table([], data)
    return "\n".join(lines) + "\n"


def sample() -> dict[str, Any]:
    return copy.deepcopy(SAMPLE_DATA)


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(to_toml(data))
    assert caught.value.problems, "CatalogError without problems"
    return caught.value.problems


def problem_at(data: dict[str, Any], where: str) -> str:
    """The one problem reported at exactly ``where`` (the dotted key)."""
    found = [p for p in problems(data) if p.split(": ", 1)[0] == where]
    assert len(found) == 1, f"expected one problem at {where!r}, got {problems(data)}"
    return found[0].split(": ", 1)[1]


def prod_admin(data: dict[str, Any]) -> dict[str, Any]:
    return data["accounts"]["prod"]["roles"]["admin"]


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog(SAMPLE_PATH)


# --------------------------------------------------------------------------- the sample


def test_writer_round_trips_the_sample() -> None:
    assert tomllib.loads(to_toml(SAMPLE_DATA)) == SAMPLE_DATA


def test_sample_top_level(catalog: Catalog) -> None:
    assert catalog.bastion_account_id == "111111111111"
    assert catalog.approvals_channel == "C0APPROVE1"
    assert catalog.security_channel == "C0SECURIT1"
    assert {k: (p.slack_user, p.iam_user) for k, p in catalog.people.items()} == {
        "alice": ("U0ALICE001", "alice"),
        "bob": ("U0BOB00001", "bob"),
        "carol": ("U0CAROL001", "carol"),
        "dave": ("U0DAVE0001", "dave"),
    }
    assert catalog.people["alice"].key == "alice"
    assert {k: (a.id, a.production) for k, a in catalog.accounts.items()} == {
        "prod": ("222222222222", True),
        "dev": ("333333333333", False),
    }


def test_sample_prod_admin(catalog: Catalog) -> None:
    role = catalog.accounts["prod"].roles["admin"]
    assert role.key == "admin"
    assert role.account_key == "prod"
    assert role.account_id == "222222222222"
    assert role.production is True
    assert role.role_name == "admin"
    assert role.role_arn == "arn:aws:iam::222222222222:role/admin"
    assert role.label == "prod/admin"
    assert role.max_duration_seconds == 4 * 3600
    assert role.max_duration == "4h"
    assert role.approvers == ("bob", "carol")
    assert role.approvals_required == 2
    assert role.requesters == ("alice", "dave")
    assert role.self_approval is False
    assert role.reason_required is True  # default in a production account


def test_sample_prod_readonly_defaults(catalog: Catalog) -> None:
    role = catalog.accounts["prod"].roles["readonly"]
    assert role.max_duration_seconds == 8 * 3600
    assert role.approvals_required == 1
    assert role.requesters == ("alice", "bob", "carol", "dave")  # default: every person, sorted
    assert role.self_approval is False
    assert role.reason_required is True


def test_sample_dev_admin(catalog: Catalog) -> None:
    role = catalog.accounts["dev"].roles["admin"]
    assert role.role_arn == "arn:aws:iam::333333333333:role/admin"
    assert role.production is False
    assert role.max_duration_seconds == 86400
    assert role.self_approval is True
    assert role.reason_required is False


def test_models_are_frozen(catalog: Catalog) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        catalog.bastion_account_id = "999999999999"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        catalog.accounts["prod"].roles["admin"].approvals_required = 1  # type: ignore[misc]
    assert isinstance(catalog.accounts["prod"].roles["admin"].approvers, tuple)


# --------------------------------------------------------------------------- defaults


def minimal_role_catalog(**role: Any) -> dict[str, Any]:
    data = sample()
    data["accounts"] = {
        "sandbox": {"id": "444444444444", "roles": {"poweruser": {"approvers": ["bob", "carol"], **role}}}
    }
    return data


def test_role_defaults_outside_production() -> None:
    role = parse_catalog(to_toml(minimal_role_catalog())).find_role("sandbox", "poweruser")
    assert role.production is False  # production defaults to false
    assert role.role_name == "poweruser"
    assert role.max_duration_seconds == 3600
    assert role.approvals_required == 1
    assert role.requesters == ("alice", "bob", "carol", "dave")
    assert role.self_approval is False
    assert role.reason_required is False


def test_reason_required_defaults_to_production_and_can_be_overridden() -> None:
    data = minimal_role_catalog()
    data["accounts"]["sandbox"]["production"] = True
    assert parse_catalog(to_toml(data)).find_role("sandbox", "poweruser").reason_required is True
    data["accounts"]["sandbox"]["roles"]["poweruser"]["reason_required"] = False
    assert parse_catalog(to_toml(data)).find_role("sandbox", "poweruser").reason_required is False


def test_role_name_with_path() -> None:
    role = parse_catalog(to_toml(minimal_role_catalog(role_name="ops/admin"))).find_role("sandbox", "poweruser")
    assert role.role_name == "ops/admin"
    assert role.role_arn == "arn:aws:iam::444444444444:role/ops/admin"


def test_empty_catalog_sections_reported_as_missing_keys() -> None:
    found = problems({})
    assert found == [
        'bastion.account_id: missing required key; add e.g. account_id = "111111111111"',
        'slack.approvals_channel: missing required key; add e.g. approvals_channel = "C0APPROVE1"',
        'slack.security_channel: missing required key; add e.g. security_channel = "C0SECURIT1"',
    ]


# --------------------------------------------------------------------------- rules: shape


@pytest.mark.parametrize(
    ("path", "where", "keys"),
    [
        ((), "colour", "bastion, slack, people, accounts"),
        (("bastion",), "bastion.colour", "account_id"),
        (("slack",), "slack.colour", "approvals_channel, security_channel, team_id, app_id"),
        (("people", "alice"), "people.alice.colour", "slack_user, iam_user, mfa_serial"),
        (("accounts", "prod"), "accounts.prod.colour", "id, production, roles"),
        (
            ("accounts", "prod", "roles", "admin"),
            "accounts.prod.roles.admin.colour",
            "role_name, max_duration, approvers, approvals_required, requesters, self_approval, reason_required"
            ", max_extended_duration, extend_approvals, self_extend, break_glass, break_glass_max, review_within"
            ", remind_after, escalate_after, fallback_approvers",
        ),
    ],
)
def test_unknown_keys(path: tuple[str, ...], where: str, keys: str) -> None:
    data = sample()
    table = data
    for part in path:
        table = table[part]
    table["colour"] = "blue"
    assert problem_at(data, where) == f"unknown key; remove it (keys here: {keys})"


@pytest.mark.parametrize(
    ("path", "typo", "meant"),
    [
        (("accounts", "prod", "roles", "admin"), "aprovers", "approvers"),
        (("accounts", "prod", "roles", "admin"), "requestors", "requesters"),
        (("accounts", "prod", "roles", "admin"), "approval_required", "approvals_required"),
        (("accounts", "prod"), "prodution", "production"),
        (("bastion",), "acount_id", "account_id"),
        (("people", "alice"), "slack_id", "slack_user"),
        ((), "account", "accounts"),
    ],
)
def test_misspelt_key_is_named_with_the_likely_key(path: tuple[str, ...], typo: str, meant: str) -> None:
    data = sample()
    table = data
    for part in path:
        table = table[part]
    table[typo] = ["bob"]
    where = ".".join([*path, typo])
    assert f"{where}: unknown key; did you mean {meant}?" in problems(data)


@pytest.mark.parametrize(
    ("path", "where"),
    [
        (("bastion", "account_id"), "bastion.account_id"),
        (("slack", "approvals_channel"), "slack.approvals_channel"),
        (("slack", "security_channel"), "slack.security_channel"),
        (("people", "alice", "slack_user"), "people.alice.slack_user"),
        (("people", "alice", "iam_user"), "people.alice.iam_user"),
        (("accounts", "prod", "id"), "accounts.prod.id"),
    ],
)
def test_missing_required_keys(path: tuple[str, ...], where: str) -> None:
    data = sample()
    table = data
    for part in path[:-1]:
        table = table[part]
    del table[path[-1]]
    assert problem_at(data, where).startswith(f"missing required key; add e.g. {path[-1]} = ")


@pytest.mark.parametrize("bad", ["12345678901", "1234567890123", "12345678901a", " 222222222222", ""])
def test_account_ids_are_12_digits(bad: str) -> None:
    data = sample()
    data["bastion"]["account_id"] = bad
    data["accounts"]["dev"]["id"] = bad
    assert problem_at(data, "bastion.account_id") == f"'{bad}' is not a 12-digit AWS account id"
    assert problem_at(data, "accounts.dev.id") == f"'{bad}' is not a 12-digit AWS account id"


def test_account_id_as_toml_integer_gets_a_hint_to_quote_it() -> None:
    text = to_toml(sample()).replace('id = "333333333333"', "id = 333333333333")
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text)
    assert caught.value.problems == [
        'accounts.dev.id: must be a string: write "333333333333" in quotes (a TOML number loses leading zeros)'
    ]


@pytest.mark.parametrize("bad", ["alice", "alice@example.com", "u0alice001", "U0", "C0ALICE001", "U0 ALICE"])
def test_slack_user_ids(bad: str) -> None:
    data = sample()
    data["people"]["alice"]["slack_user"] = bad
    assert problem_at(data, "people.alice.slack_user").startswith(f"'{bad}' is not a Slack user id")


def test_workspace_user_ids_are_accepted() -> None:
    data = sample()
    data["people"]["alice"]["slack_user"] = "W0ALICE001"
    assert parse_catalog(to_toml(data)).person_by_slack("W0ALICE001").key == "alice"


@pytest.mark.parametrize("bad", ["#approvals", "approvals", "U0APPROVE1", "c0approve1", "C0"])
def test_channel_ids(bad: str) -> None:
    data = sample()
    data["slack"]["security_channel"] = bad
    assert problem_at(data, "slack.security_channel") == (
        f"'{bad}' is not a Slack channel id (like C0APPROVE1); "
        "copy it from the bottom of the channel's About tab, not the #name"
    )


@pytest.mark.parametrize("bad", ["al ice", "alice/admin", "a" * 65, "", "alicé"])
def test_iam_user_names(bad: str) -> None:
    data = sample()
    data["people"]["alice"]["iam_user"] = bad
    assert problem_at(data, "people.alice.iam_user").startswith(f"'{bad}' is not an IAM user name")


def test_iam_user_name_allowed_characters() -> None:
    data = sample()
    data["people"]["alice"]["iam_user"] = "alice.smith+ops@corp=x,y_z-1"
    assert parse_catalog(to_toml(data)).people["alice"].iam_user == "alice.smith+ops@corp=x,y_z-1"


@pytest.mark.parametrize("bad", ["Alice", "al ice", "_alice", "a" * 33, "alice.smith"])
def test_person_keys(bad: str) -> None:
    data = sample()
    data["people"][bad] = data["people"].pop("dave")
    assert problem_at(data, f"people.{bad}").startswith(f"'{bad}' is not a valid key")


@pytest.mark.parametrize("bad", ["Prod", "pr od", "-prod"])
def test_account_and_role_keys(bad: str) -> None:
    data = sample()
    data["accounts"][bad] = data["accounts"].pop("dev")
    prod = data["accounts"]["prod"]["roles"]
    prod[bad] = prod.pop("readonly")
    assert problem_at(data, f"accounts.{bad}").startswith(f"'{bad}' is not a valid key")
    assert problem_at(data, f"accounts.prod.roles.{bad}").startswith(f"'{bad}' is not a valid key")


def test_longest_valid_key_is_accepted() -> None:
    data = sample()
    data["accounts"]["a" * 32] = data["accounts"].pop("dev")
    assert parse_catalog(to_toml(data)).accounts["a" * 32].id == "333333333333"


@pytest.mark.parametrize("bad", ["adm!n", "/ops/admin", "ops/", "ops//admin", "admin role"])
def test_role_name_characters(bad: str) -> None:
    data = sample()
    prod_admin(data)["role_name"] = bad
    assert problem_at(data, "accounts.prod.roles.admin.role_name").startswith(f"'{bad}' is not an IAM role name")


def test_role_name_last_segment_at_most_64() -> None:
    data = sample()
    prod_admin(data)["role_name"] = "a-long-path/" * 10 + "b" * 64
    assert parse_catalog(to_toml(data)).find_role("prod", "admin").role_name.endswith("/" + "b" * 64)
    prod_admin(data)["role_name"] = "ops/" + "b" * 65
    assert problem_at(data, "accounts.prod.roles.admin.role_name") == (
        f"'{'b' * 65}' is longer than 64 characters, the IAM limit"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("4x", "'4x' is not a duration; use e.g. 30m, 2h, 1h30m or 1d"),
        ("0m", "duration must be positive; use e.g. 30m, 2h, 1h30m or 1d"),
        ("7d1m", "'7d1m' is too long; at most 7d"),
        ("8d", "'8d' is too long; at most 7d"),
        ("400d", "'400d' is too long; at most 365d"),
        (4, 'must be a duration in quotes, e.g. "4h"'),
    ],
)
def test_max_duration(value: Any, message: str) -> None:
    data = sample()
    prod_admin(data)["max_duration"] = value
    assert problem_at(data, "accounts.prod.roles.admin.max_duration") == message


def test_max_duration_of_7d_is_allowed() -> None:
    data = sample()
    prod_admin(data)["max_duration"] = "7d"
    prod_admin(data).pop("max_extended_duration", None)  # (it may not be shorter)
    assert parse_catalog(to_toml(data)).find_role("prod", "admin").max_duration_seconds == 7 * 86400


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("production", "yes", "must be true or false"),
        ("self_approval", 1, "must be true or false"),
        ("approvals_required", "2", "must be a whole number"),
        ("approvers", "bob", "must be a list"),
        ("role_name", 7, "must be a string (in quotes)"),
    ],
)
def test_value_types(where: str, value: Any, message: str) -> None:
    data = sample()
    if where == "production":
        data["accounts"]["prod"]["production"] = value
        assert problem_at(data, "accounts.prod.production") == message
    else:
        prod_admin(data)[where] = value
        assert problem_at(data, f"accounts.prod.roles.admin.{where}") == message


def test_list_items_must_be_strings() -> None:
    data = sample()
    prod_admin(data)["approvers"] = ["bob", 7]
    assert problem_at(data, "accounts.prod.roles.admin.approvers[1]") == "must be a string (in quotes)"


def test_tables_must_be_tables() -> None:
    data = sample()
    data["people"]["dave"] = "dave"
    data["accounts"]["dev"]["roles"] = 3
    data["slack"] = "C0APPROVE1"
    assert problem_at(data, "people.dave") == "must be a table"
    assert problem_at(data, "accounts.dev.roles") == "must be a table"
    assert problem_at(data, "slack") == "must be a table"


# --------------------------------------------------------------------------- rules: references


def test_approvers_must_be_people() -> None:
    data = sample()
    prod_admin(data)["approvers"] = ["bob", "dave2", "carol"]
    assert problem_at(data, "accounts.prod.roles.admin.approvers[1]") == (
        "'dave2' is not a person in [people]; add [people.dave2] or fix the name"
    )


def test_requesters_must_be_people() -> None:
    data = sample()
    prod_admin(data)["requesters"] = ["alice", "eve"]
    assert problem_at(data, "accounts.prod.roles.admin.requesters[1]") == (
        "'eve' is not a person in [people]; add [people.eve] or fix the name"
    )


def test_unknown_people_are_named_even_when_the_role_has_other_problems() -> None:
    data = sample()
    prod_admin(data)["max_duration"] = "4x"
    prod_admin(data)["approvers"] = ["bob", "dave2"]
    found = problems(data)
    assert "accounts.prod.roles.admin.approvers[1]: 'dave2' is not a person in [people]; " \
        "add [people.dave2] or fix the name" in found
    assert any(p.startswith("accounts.prod.roles.admin.max_duration: ") for p in found)


@pytest.mark.parametrize("field", ["approvers", "requesters"])
def test_no_duplicates_in_people_lists(field: str) -> None:
    data = sample()
    prod_admin(data)[field] = ["bob", "carol", "bob"]
    prod_admin(data)["approvals_required"] = 1
    assert problem_at(data, f"accounts.prod.roles.admin.{field}[2]") == "'bob' is listed twice; remove the repeat"


def test_approvals_required_at_least_one() -> None:
    data = sample()
    prod_admin(data)["approvals_required"] = 0
    assert problem_at(data, "accounts.prod.roles.admin.approvals_required") == "must be at least 1, not 0"


def test_approvals_required_at_most_the_approvers() -> None:
    data = sample()
    prod_admin(data)["approvals_required"] = 3
    assert problem_at(data, "accounts.prod.roles.admin.approvals_required") == (
        "is 3 but there are only 2 approvers; lower it or add approvers"
    )
    prod_admin(data)["approvers"] = ["bob"]
    assert problem_at(data, "accounts.prod.roles.admin.approvals_required") == (
        "is 3 but there is only 1 approver; lower it or add approvers"
    )


def test_duplicate_slack_user() -> None:
    data = sample()
    data["people"]["dave"]["slack_user"] = "U0BOB00001"
    assert problem_at(data, "people.dave.slack_user") == (
        "'U0BOB00001' is also the slack_user of people.bob; each must have its own"
    )


def test_duplicate_iam_user_ignores_case_like_iam() -> None:
    data = sample()
    data["people"]["dave"]["iam_user"] = "Carol"
    assert problem_at(data, "people.dave.iam_user") == (
        "'Carol' is also the iam_user of people.carol; each must have its own"
    )


def test_mfa_serial_override_is_optional_and_checked() -> None:
    data = sample()
    data["people"]["alice"]["mfa_serial"] = "arn:aws:iam::111111111111:mfa/alice-yubikey"
    catalog = parse_catalog(to_toml(data))
    assert catalog.people["alice"].mfa_serial == "arn:aws:iam::111111111111:mfa/alice-yubikey"
    assert catalog.people["bob"].mfa_serial is None
    data["people"]["alice"]["mfa_serial"] = "my phone"
    assert problem_at(data, "people.alice.mfa_serial").startswith("'my phone' is not an MFA device serial")


def test_slack_workspace_and_app_ids_are_optional_and_checked() -> None:
    data = sample()
    assert parse_catalog(to_toml(data)).slack_team_id is None
    data["slack"].update(team_id="T0TEAM0001", app_id="A0EXAMPLE01")
    catalog = parse_catalog(to_toml(data))
    assert (catalog.slack_team_id, catalog.slack_app_id) == ("T0TEAM0001", "A0EXAMPLE01")
    data["slack"].update(team_id="examplecorp")
    assert problem_at(data, "slack.team_id").startswith("'examplecorp' is not a Slack workspace id")


def test_duplicate_account_id() -> None:
    data = sample()
    data["accounts"]["dev"]["id"] = "222222222222"
    assert problem_at(data, "accounts.dev.id") == (
        "'222222222222' is also the id of accounts.prod; each must have its own"
    )


def test_duplicate_role_name_in_one_account() -> None:
    data = sample()
    data["accounts"]["prod"]["roles"]["readonly"]["role_name"] = "admin"
    assert problem_at(data, "accounts.prod.roles.readonly.role_name") == (
        "'admin' is also the role_name of accounts.prod.roles.admin; each must have its own"
    )


def test_bastion_is_not_a_member_account() -> None:
    data = sample()
    data["accounts"]["dev"]["id"] = "111111111111"
    assert problem_at(data, "accounts.dev.id") == (
        "'111111111111' is the bastion account, not a member account; remove it from [accounts] or fix the id"
    )


def test_production_role_without_approvers() -> None:
    data = sample()
    prod_admin(data)["approvers"] = []
    assert problem_at(data, "accounts.prod.roles.admin.approvers") == (
        'no approvers: a production role nobody can approve; list at least one person, e.g. approvers = ["bob"]'
    )


def test_non_production_role_without_approvers() -> None:
    data = sample()
    del data["accounts"]["dev"]["roles"]["admin"]["approvers"]
    assert problem_at(data, "accounts.dev.roles.admin.approvers") == (
        'no approvers: nobody could approve any request; list at least one person, e.g. approvers = ["bob"]'
    )


def test_empty_requesters_list_is_refused() -> None:
    data = sample()
    prod_admin(data)["requesters"] = []
    assert problem_at(data, "accounts.prod.roles.admin.requesters").startswith(
        "is empty, so nobody may request this role"
    )


def test_all_problems_are_reported_together() -> None:
    data = sample()
    data["slack"]["approvals_channel"] = "#approvals"
    data["people"]["carol"]["extra"] = 1
    prod_admin(data)["max_duration"] = "4x"
    data["accounts"]["dev"]["roles"]["admin"]["approvers"] = ["bob", "zed"]
    data["accounts"]["dev"]["id"] = 333
    with pytest.raises(CatalogError) as caught:
        parse_catalog(to_toml(data))
    found = caught.value.problems
    assert [p.split(": ", 1)[0] for p in found] == [
        "slack.approvals_channel",
        "people.carol.extra",
        "accounts.prod.roles.admin.max_duration",
        "accounts.dev.id",
        "accounts.dev.roles.admin.approvers[1]",
    ]
    assert str(caught.value) == "\n".join(found)


# --------------------------------------------------------------------------- who can be approved (issue #10)

ONLY_APPROVER = (
    "prod/readonly needs 1 approval and you are its only approver, so nobody can approve your request; "
    "ask an admin to add another approver or set self_approval = true for prod/readonly in the access catalog"
)


def one_approver_catalog() -> dict[str, Any]:
    """The most common catalog: one approver, no ``requesters`` key (everyone may request)."""
    data = sample()
    data["accounts"]["prod"]["roles"]["readonly"]["approvers"] = ["bob"]
    assert "requesters" not in data["accounts"]["prod"]["roles"]["readonly"]
    return data


def test_one_approver_with_default_requesters_loads_without_warnings() -> None:
    catalog = parse_catalog(to_toml(one_approver_catalog()))
    role = catalog.find_role("prod", "readonly")
    assert role.approvers == ("bob",)
    assert role.requesters == ("alice", "bob", "carol", "dave")
    assert catalog.warnings == ()
    assert approval_blocker(role, "bob") == ONLY_APPROVER
    assert [p for p in catalog.people if approval_blocker(role, p) is None] == ["alice", "carol", "dave"]


def test_the_sample_has_no_warnings(catalog: Catalog) -> None:
    assert catalog.warnings == ()
    assert all(approval_blocker(r, p) is None for r in catalog.roles() for p in r.requesters)


@pytest.mark.parametrize(
    ("approvers", "required", "self_approval", "person", "expected"),
    [
        (["bob"], 1, False, "bob", ONLY_APPROVER),
        (["bob"], 1, False, "alice", None),
        (["bob"], 1, True, "bob", None),
        (["bob", "carol"], 1, False, "bob", None),
        (
            ["bob", "carol"], 2, False, "bob",
            "prod/readonly needs 2 approvals and only 1 of its approvers (@carol) can approve your request; "
            "ask an admin to add another approver, lower approvals_required or set self_approval = true "
            "for prod/readonly in the access catalog",
        ),
        (["bob", "carol"], 2, False, "alice", None),
        (["bob", "carol"], 2, True, "carol", None),
        (
            ["bob", "carol", "dave"], 3, False, "carol",
            "prod/readonly needs 3 approvals and only 2 of its approvers (@bob, @dave) can approve your request; "
            "ask an admin to add another approver, lower approvals_required or set self_approval = true "
            "for prod/readonly in the access catalog",
        ),
        # roles no valid catalog has, but the function must still be right about them
        (
            ["bob"], 2, False, "alice",
            "prod/readonly needs 2 approvals but has only 1 approver (@bob); "
            "ask an admin to add another approver or lower approvals_required for prod/readonly in the access catalog",
        ),
        (
            [], 1, False, "alice",
            "prod/readonly needs 1 approval but has no approvers; "
            "ask an admin to add an approver for prod/readonly in the access catalog",
        ),
        (
            ["bob", "carol"], 4, False, "carol",
            "prod/readonly needs 4 approvals and only 1 of its approvers (@bob) can approve your request; "
            "ask an admin to add 3 more approvers, lower approvals_required or set self_approval = true "
            "for prod/readonly in the access catalog",
        ),
    ],
)
def test_approval_blocker(
    catalog: Catalog, approvers: list[str], required: int, self_approval: bool, person: str, expected: str | None
) -> None:
    role = dataclasses.replace(
        catalog.find_role("prod", "readonly"),
        approvers=tuple(approvers), approvals_required=required, self_approval=self_approval,
    )
    assert approval_blocker(role, person) == expected


@pytest.mark.parametrize(
    ("person", "labels"),
    [
        ("alice", ["dev/admin", "prod/admin", "prod/readonly"]),
        ("bob", ["dev/admin"]),  # listed (by default) for prod/readonly, but its only approver
        ("carol", ["dev/admin", "prod/readonly"]),
        ("eve", []),
    ],
)
def test_requestable_by_leaves_out_roles_the_person_cannot_be_approved_for(person: str, labels: list[str]) -> None:
    catalog = parse_catalog(to_toml(one_approver_catalog()))
    assert [r.label for r in catalog.requestable_by(person)] == labels


@pytest.mark.parametrize(
    ("role_key", "role", "person", "warning"),
    [
        (
            "admin", {"requesters": ["alice", "bob"]}, "bob",
            "accounts.prod.roles.admin.requesters[1]: 'bob' can never be approved: the role needs 2 approvals "
            "and only 1 of its approvers (carol) may approve bob's request; add another approver, "
            "lower approvals_required, set self_approval = true or remove 'bob' from requesters",
        ),
        (
            "readonly", {"approvers": ["bob"], "requesters": ["bob", "alice"]}, "bob",
            "accounts.prod.roles.readonly.requesters[0]: 'bob' can never be approved: the role needs 1 approval "
            "and bob is its only approver; add another approver, set self_approval = true "
            "or remove 'bob' from requesters",
        ),
    ],
)
def test_listed_requester_who_can_never_be_approved_is_a_warning(
    role_key: str, role: dict[str, Any], person: str, warning: str
) -> None:
    data = sample()
    data["accounts"]["prod"]["roles"][role_key].update(role)
    catalog = parse_catalog(to_toml(data))  # loads: one person's mistake takes nobody's access down
    assert catalog.warnings == (warning,)
    found = catalog.find_role("prod", role_key)
    assert person in found.requesters
    assert approval_blocker(found, person) is not None
    assert found.label not in [r.label for r in catalog.requestable_by(person)]
    assert found.label in [r.label for r in catalog.requestable_by("alice")]


def test_self_approval_makes_an_approver_eligible_for_themself() -> None:
    data = sample()
    prod_admin(data)["requesters"] = ["alice", "bob"]
    prod_admin(data)["self_approval"] = True
    catalog = parse_catalog(to_toml(data))
    assert catalog.warnings == ()
    assert "prod/admin" in [r.label for r in catalog.requestable_by("bob")]


def test_role_nobody_at_all_can_be_approved_for_is_a_warning() -> None:
    data = sample()
    readonly = data["accounts"]["prod"]["roles"]["readonly"]
    readonly["approvers"] = ["alice", "bob", "carol", "dave"]
    readonly["approvals_required"] = 4
    catalog = parse_catalog(to_toml(data))
    assert catalog.warnings == (
        "accounts.prod.roles.readonly: nobody can ever be approved for it: it needs 4 approvals and every "
        "person is one of its approvers, who may not approve their own requests; add another approver, "
        "lower approvals_required or set self_approval = true",
    )
    assert all("prod/readonly" not in [r.label for r in catalog.requestable_by(p)] for p in catalog.people)


def test_warnings_travel_with_the_errors() -> None:
    data = sample()
    prod_admin(data)["requesters"] = ["alice", "bob"]
    data["bastion"]["account_id"] = "1111"
    with pytest.raises(CatalogError) as caught:
        parse_catalog(to_toml(data))
    assert caught.value.problems == ["bastion.account_id: '1111' is not a 12-digit AWS account id"]
    assert [w.split(": ", 1)[0] for w in caught.value.warnings] == ["accounts.prod.roles.admin.requesters[1]"]
    assert str(caught.value) == "bastion.account_id: '1111' is not a 12-digit AWS account id"


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (  # a bad approvals_required used to hide the empty requesters list
            {"approvals_required": 0, "requesters": []},
            [
                "accounts.prod.roles.admin.approvals_required: must be at least 1, not 0",
                "accounts.prod.roles.admin.requesters: is empty, so nobody may request this role; "
                "remove the key to let every person request it",
            ],
        ),
        (  # a bad max_duration used to hide the missing approvers
            {"max_duration": "4x", "approvers": []},
            [
                "accounts.prod.roles.admin.max_duration: '4x' is not a duration; use e.g. 30m, 2h, 1h30m or 1d",
                "accounts.prod.roles.admin.approvers: no approvers: a production role nobody can approve; "
                'list at least one person, e.g. approvers = ["bob"]',
            ],
        ),
        (  # ... and approvals_required exceeding the approvers
            {"self_approval": "no", "approvals_required": 3},
            [
                "accounts.prod.roles.admin.self_approval: must be true or false",
                "accounts.prod.roles.admin.approvals_required: is 3 but there are only 2 approvers; "
                "lower it or add approvers",
            ],
        ),
        (  # an unknown key hides nothing either
            {"colour": "blue", "requesters": ["alice", "eve", "alice"]},
            [
                "accounts.prod.roles.admin.colour: unknown key; remove it (keys here: role_name, max_duration, "
                "approvers, approvals_required, requesters, self_approval, reason_required"
                ", max_extended_duration, extend_approvals, self_extend, break_glass, break_glass_max, review_within, remind_after"
                ", escalate_after, fallback_approvers)",
                "accounts.prod.roles.admin.requesters[1]: 'eve' is not a person in [people]; "
                "add [people.eve] or fix the name",
                "accounts.prod.roles.admin.requesters[2]: 'alice' is listed twice; remove the repeat",
            ],
        ),
        (  # a bad role_name still leaves the other role's name to compare
            {"role_name": "ops//admin", "approvers": ["bob", "dave2"]},
            [
                "accounts.prod.roles.admin.role_name: 'ops//admin' is not an IAM role name: letters, digits and "
                "+=,.@_- only, optionally after a path like ops/admin",
                "accounts.prod.roles.admin.approvers[1]: 'dave2' is not a person in [people]; "
                "add [people.dave2] or fix the name",
            ],
        ),
    ],
)
def test_a_shape_error_in_a_role_does_not_skip_its_cross_checks(role: dict[str, Any], expected: list[str]) -> None:
    data = sample()
    prod_admin(data).pop("break_glass", None)  # (its own cross-check is tested in test_catalog_extend.py)
    prod_admin(data).update(role)
    assert problems(data) == expected


def test_a_shape_error_in_an_account_or_person_does_not_skip_their_cross_checks() -> None:
    data = sample()
    data["accounts"]["dev"]["production"] = "yes"
    data["accounts"]["dev"]["id"] = "111111111111"  # the bastion
    data["people"]["dave"]["slack_user"] = "dave"
    data["people"]["dave"]["iam_user"] = "BOB"
    assert problems(data) == [
        "people.dave.slack_user: 'dave' is not a Slack user id (like U0ALICE001, not a name); "
        "copy it from the person's Slack profile: Copy member ID",
        "people.dave.iam_user: 'BOB' is also the iam_user of people.bob; each must have its own",
        "accounts.dev.production: must be true or false",
        "accounts.dev.id: '111111111111' is the bastion account, not a member account; "
        "remove it from [accounts] or fix the id",
    ]


def test_errors_and_warnings_are_all_reported_in_one_run() -> None:
    data = sample()
    data["slack"]["approvals_channel"] = "#approvals"
    prod_admin(data)["approvals_required"] = 0
    prod_admin(data)["approvers"] = ["bob", "dave2"]
    readonly = data["accounts"]["prod"]["roles"]["readonly"]
    readonly["approvers"] = ["carol"]
    readonly["requesters"] = ["alice", "carol"]
    data["accounts"]["dev"]["roles"]["admin"]["requesters"] = ["bob"]
    data["accounts"]["dev"]["roles"]["admin"]["approvers"] = ["bob"]
    data["accounts"]["dev"]["roles"]["admin"]["self_approval"] = False
    data["accounts"]["dev"]["roles"]["admin"]["max_duration"] = "8d"
    with pytest.raises(CatalogError) as caught:
        parse_catalog(to_toml(data))
    assert [p.split(": ", 1)[0] for p in caught.value.problems] == [
        "slack.approvals_channel",
        "accounts.prod.roles.admin.approvals_required",
        "accounts.prod.roles.admin.approvers[1]",
        "accounts.dev.roles.admin.max_duration",
    ]
    assert [w.split(": ", 1)[0] for w in caught.value.warnings] == [
        "accounts.prod.roles.readonly.requesters[1]",
        "accounts.dev.roles.admin.requesters[0]",
    ]


def test_toml_syntax_error_names_source_and_line() -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog('[bastion]\naccount_id = "111111111111"\nbroken = \n', source="mine.toml")
    (problem,) = caught.value.problems
    assert problem.startswith("mine.toml: TOML syntax error: ")
    assert "line 3" in problem


# --------------------------------------------------------------------------- lookups


def test_person_lookups(catalog: Catalog) -> None:
    assert catalog.person_by_slack("U0CAROL001").key == "carol"
    assert catalog.person_by_slack("U0NOBODY01") is None
    assert catalog.person_by_iam_user("dave").key == "dave"
    assert catalog.person_by_iam_user("DAVE").key == "dave"  # IAM names are case-insensitive
    assert catalog.person_by_iam_user("eve") is None


def test_account_by_id(catalog: Catalog) -> None:
    assert catalog.account_by_id("333333333333").key == "dev"
    assert catalog.account_by_id("111111111111") is None


def test_role_by_arn(catalog: Catalog) -> None:
    assert catalog.role_by_arn("arn:aws:iam::222222222222:role/readonly").label == "prod/readonly"
    assert catalog.role_by_arn("arn:aws:iam::333333333333:role/admin").label == "dev/admin"
    assert catalog.role_by_arn("arn:aws:iam::222222222222:role/Admin") is None
    assert catalog.role_by_arn("arn:aws:iam::444444444444:role/admin") is None


def test_find_role(catalog: Catalog) -> None:
    assert catalog.find_role("prod", "admin").role_arn == "arn:aws:iam::222222222222:role/admin"
    assert catalog.find_role("PROD", "Admin").label == "prod/admin"


def test_find_role_unknown_account(catalog: Catalog) -> None:
    with pytest.raises(LookupError) as caught:
        catalog.find_role("prd", "admin")
    assert caught.value.args[0] == "unknown account 'prd'; accounts: dev, prod"


def test_find_role_unknown_role(catalog: Catalog) -> None:
    with pytest.raises(LookupError) as caught:
        catalog.find_role("prod", "adm")
    assert caught.value.args[0] == "unknown role 'adm' in prod; roles: admin, readonly"


def test_requestable_by(catalog: Catalog) -> None:
    assert [r.label for r in catalog.requestable_by("alice")] == ["dev/admin", "prod/admin", "prod/readonly"]
    assert [r.label for r in catalog.requestable_by("bob")] == ["dev/admin", "prod/readonly"]
    assert catalog.requestable_by("eve") == []


def test_roles_sorted_by_label(catalog: Catalog) -> None:
    assert [r.label for r in catalog.roles()] == ["dev/admin", "prod/admin", "prod/readonly"]


# --------------------------------------------------------------------------- load_catalog cache


def test_load_catalog_caches_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "access.toml"
    path.write_text(SAMPLE_PATH.read_text())
    first = load_catalog(path)
    assert load_catalog(path) is first
    assert load_catalog(str(path)) is first

    data = sample()
    data["slack"]["security_channel"] = "C0SECURIT2"
    path.write_text(to_toml(data))
    second = load_catalog(path)
    assert second is not first
    assert second.security_channel == "C0SECURIT2"
    assert load_catalog(path) is second


def test_load_catalog_reloads_on_mtime_change_of_same_size(tmp_path: Path) -> None:
    path = tmp_path / "access.toml"
    path.write_text(SAMPLE_PATH.read_text())
    first = load_catalog(path)
    path.write_text(SAMPLE_PATH.read_text().replace("C0SECURIT1", "C0SECURIT9"))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    again = load_catalog(path)
    assert again is not first
    assert again.security_channel == "C0SECURIT9"


def test_load_catalog_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path / "nope.toml")
    (problem,) = caught.value.problems
    assert problem.startswith(f"{tmp_path / 'nope.toml'}: cannot read: ")


def test_load_catalog_reports_syntax_errors_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[bastion\n")
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert caught.value.problems[0].startswith(f"{path}: TOML syntax error: ")


# --------------------------------------------------------------------------- CLI


def test_main_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(SAMPLE_PATH)]) == 0
    out, err = capsys.readouterr()
    assert out == f"OK: {SAMPLE_PATH}: 4 people, 2 accounts, 3 roles (2 production)\n"
    assert err == ""


def test_main_default_path(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert main([]) == 0
    assert capsys.readouterr().out == "OK: policies/access.toml: 4 people, 2 accounts, 3 roles (2 production)\n"


def test_main_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = sample()
    data["bastion"]["account_id"] = "1111"
    prod_admin(data)["aprovers"] = ["bob"]
    prod_admin(data)["requesters"] = ["alice", "bob"]
    path = tmp_path / "bad.toml"
    path.write_text(to_toml(data))
    assert main([str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "error: bastion.account_id: '1111' is not a 12-digit AWS account id",
        "error: accounts.prod.roles.admin.aprovers: unknown key; did you mean approvers?",
        "warning: accounts.prod.roles.admin.requesters[1]: 'bob' can never be approved: the role needs "
        "2 approvals and only 1 of its approvers (carol) may approve bob's request; add another approver, "
        "lower approvals_required, set self_approval = true or remove 'bob' from requesters",
    ]


def test_main_warnings_only_exits_0(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = sample()
    prod_admin(data)["requesters"] = ["alice", "bob"]
    path = tmp_path / "warn.toml"
    path.write_text(to_toml(data))
    assert main([str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"OK: {path}: 4 people, 2 accounts, 3 roles (2 production), 1 warning\n"
    assert err.splitlines() == [
        "warning: accounts.prod.roles.admin.requesters[1]: 'bob' can never be approved: the role needs "
        "2 approvals and only 1 of its approvers (carol) may approve bob's request; add another approver, "
        "lower approvals_required, set self_approval = true or remove 'bob' from requesters",
    ]


def tiny_catalog(people: int, accounts: int, roles: int, self_approval: bool = True) -> dict[str, Any]:
    data = sample()
    names = ["alice", "bob", "carol", "dave"][:people]
    data["people"] = {k: v for k, v in data["people"].items() if k in names}
    data["accounts"] = {
        f"acct{a}": {
            "id": f"{a + 4}" * 12,
            "roles": {f"role{r}": {"approvers": names[:1], "self_approval": self_approval} for r in range(roles)},
        }
        for a in range(accounts)
    }
    return data


@pytest.mark.parametrize(
    ("people", "accounts", "roles", "self_approval", "summary"),
    [
        (1, 1, 1, True, "1 person, 1 account, 1 role (0 production)"),
        (2, 1, 1, True, "2 people, 1 account, 1 role (0 production)"),
        (1, 2, 2, True, "1 person, 2 accounts, 4 roles (0 production)"),
        (2, 0, 0, True, "2 people, 0 accounts, 0 roles (0 production)"),
        (1, 1, 1, False, "1 person, 1 account, 1 role (0 production), 1 warning"),
        (1, 1, 2, False, "1 person, 1 account, 2 roles (0 production), 2 warnings"),
    ],
)
def test_main_ok_line_counts_in_words(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    people: int,
    accounts: int,
    roles: int,
    self_approval: bool,
    summary: str,
) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(to_toml(tiny_catalog(people, accounts, roles, self_approval)))
    assert main([str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"OK: {path}: {summary}\n"
    assert len(err.splitlines()) == (0 if self_approval else roles)


@pytest.mark.parametrize(
    ("change", "code", "stdout", "stderr"),
    [
        ({}, 0, "OK: ", []),
        ({"requesters": ["alice", "bob"]}, 0, "OK: ", ["warning: accounts.prod.roles.admin.requesters[1]: "]),
        (
            {"requesters": ["alice", "bob"], "max_duration": "4x"},
            1,
            "",
            ["error: accounts.prod.roles.admin.max_duration: ", "warning: accounts.prod.roles.admin.requesters[1]: "],
        ),
    ],
)
def test_command_line_exit_codes(
    tmp_path: Path, change: dict[str, Any], code: int, stdout: str, stderr: list[str]
) -> None:
    data = sample()
    prod_admin(data).update(change)
    path = tmp_path / "access.toml"
    path.write_text(to_toml(data))
    run = subprocess.run(
        [sys.executable, "-m", "chalicelib.catalog", str(path)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == code, run.stderr
    assert run.stdout.startswith(stdout) and (stdout or run.stdout == "")
    lines = run.stderr.splitlines()
    assert len(lines) == len(stderr)
    assert all(line.startswith(prefix) for line, prefix in zip(lines, stderr))


def test_command_words_and_the_service_name_are_reserved():
    import re as _re

    from chalicelib.catalog import CatalogError, parse_catalog

    text = (Path(__file__).resolve().parents[2] / "policies" / "access.toml").read_text()
    text = text.replace("[accounts.dev]", "[accounts.list]").replace("[accounts.dev.roles.admin]", "[accounts.list.roles.admin]")
    text = text.replace("[people.dave]", "[people.drawbridge]").replace('"dave"', '"drawbridge"')
    with pytest.raises(CatalogError) as err:
        parse_catalog(text)
    problems = "\n".join(err.value.problems)
    assert _re.search(r"^accounts\.list: 'list' is a command word", problems, _re.M)
    assert _re.search(r"^people\.drawbridge: 'drawbridge' is reserved", problems, _re.M)


@pytest.mark.parametrize("word", ["extend", "breakglass", "activity", "review"])
def test_the_command_words_still_being_built_are_reserved_too(word):
    from chalicelib.catalog import CatalogError, parse_catalog

    text = (Path(__file__).resolve().parents[2] / "policies" / "access.toml").read_text()
    text = text.replace("[accounts.dev]", f"[accounts.{word}]").replace("[accounts.dev.roles.admin]",
                                                                         f"[accounts.{word}.roles.admin]")
    with pytest.raises(CatalogError) as err:
        parse_catalog(text)
    assert f"accounts.{word}: '{word}' is a command word" in "\n".join(err.value.problems)
