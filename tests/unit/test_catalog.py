"""The access catalog: the sample file, every validation rule, lookups, cache and CLI."""

from __future__ import annotations

import copy
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pydantic
import pytest

from chalicelib.catalog import (
    CatalogError,
    Catalog,
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
    with pytest.raises(pydantic.ValidationError):
        catalog.bastion_account_id = "999999999999"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
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
        "bastion.account_id: missing required key",
        "slack.approvals_channel: missing required key",
        "slack.security_channel: missing required key",
    ]


# --------------------------------------------------------------------------- rules: shape


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ((), "colour"),
        (("bastion",), "bastion.colour"),
        (("slack",), "slack.colour"),
        (("people", "alice"), "people.alice.colour"),
        (("accounts", "prod"), "accounts.prod.colour"),
        (("accounts", "prod", "roles", "admin"), "accounts.prod.roles.admin.colour"),
    ],
)
def test_unknown_keys(path: tuple[str, ...], where: str) -> None:
    data = sample()
    table = data
    for part in path:
        table = table[part]
    table["colour"] = "blue"
    assert problem_at(data, where) == "unknown key"


def test_misspelt_key_is_named() -> None:
    data = sample()
    prod_admin(data)["aprovers"] = ["bob"]
    assert "accounts.prod.roles.admin.aprovers: unknown key" in problems(data)


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
    assert problem_at(data, where) == "missing required key"


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
    assert problem_at(data, "slack.security_channel") == f"'{bad}' is not a Slack channel id (like C0APPROVE1)"


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
        ("0m", "duration must be positive"),
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
    assert problem_at(data, "accounts.prod.roles.admin.approvers[1]") == "'dave2' is not a person in [people]"


def test_requesters_must_be_people() -> None:
    data = sample()
    prod_admin(data)["requesters"] = ["alice", "eve"]
    assert problem_at(data, "accounts.prod.roles.admin.requesters[1]") == "'eve' is not a person in [people]"


def test_unknown_people_are_named_even_when_the_role_has_other_problems() -> None:
    data = sample()
    prod_admin(data)["max_duration"] = "4x"
    prod_admin(data)["approvers"] = ["bob", "dave2"]
    found = problems(data)
    assert "accounts.prod.roles.admin.approvers[1]: 'dave2' is not a person in [people]" in found
    assert any(p.startswith("accounts.prod.roles.admin.max_duration: ") for p in found)


@pytest.mark.parametrize("field", ["approvers", "requesters"])
def test_no_duplicates_in_people_lists(field: str) -> None:
    data = sample()
    prod_admin(data)[field] = ["bob", "carol", "bob"]
    prod_admin(data)["approvals_required"] = 1
    assert problem_at(data, f"accounts.prod.roles.admin.{field}[2]") == "'bob' is listed twice"


def test_approvals_required_at_least_one() -> None:
    data = sample()
    prod_admin(data)["approvals_required"] = 0
    assert problem_at(data, "accounts.prod.roles.admin.approvals_required") == "must be at least 1, not 0"


def test_approvals_required_at_most_the_approvers() -> None:
    data = sample()
    prod_admin(data)["approvals_required"] = 3
    assert problem_at(data, "accounts.prod.roles.admin.approvals_required") == (
        "is 3 but there are only 2 approvers"
    )


def test_duplicate_slack_user() -> None:
    data = sample()
    data["people"]["dave"]["slack_user"] = "U0BOB00001"
    assert problem_at(data, "people.dave.slack_user") == "'U0BOB00001' is also the slack_user of people.bob"


def test_duplicate_iam_user_ignores_case_like_iam() -> None:
    data = sample()
    data["people"]["dave"]["iam_user"] = "Carol"
    assert problem_at(data, "people.dave.iam_user") == "'Carol' is also the iam_user of people.carol"


def test_duplicate_account_id() -> None:
    data = sample()
    data["accounts"]["dev"]["id"] = "222222222222"
    assert problem_at(data, "accounts.dev.id") == "'222222222222' is also the id of accounts.prod"


def test_duplicate_role_name_in_one_account() -> None:
    data = sample()
    data["accounts"]["prod"]["roles"]["readonly"]["role_name"] = "admin"
    assert problem_at(data, "accounts.prod.roles.readonly.role_name") == (
        "'admin' is also the role_name of accounts.prod.roles.admin"
    )


def test_bastion_is_not_a_member_account() -> None:
    data = sample()
    data["accounts"]["dev"]["id"] = "111111111111"
    assert problem_at(data, "accounts.dev.id") == "'111111111111' is the bastion account, not a member account"


def test_production_role_without_approvers() -> None:
    data = sample()
    prod_admin(data)["approvers"] = []
    assert problem_at(data, "accounts.prod.roles.admin.approvers") == (
        "no approvers: a production role nobody can approve"
    )


def test_non_production_role_without_approvers() -> None:
    data = sample()
    del data["accounts"]["dev"]["roles"]["admin"]["approvers"]
    assert problem_at(data, "accounts.dev.roles.admin.approvers") == (
        "no approvers: nobody could approve any request"
    )


def test_requester_who_can_never_be_approved() -> None:
    data = sample()
    prod_admin(data)["requesters"] = ["alice", "bob"]
    assert problems(data) == [
        "accounts.prod.roles.admin: requester 'bob' can never be approved "
        "(needs 2 approvals; eligible approvers: carol)"
    ]


def test_default_requesters_include_the_approvers() -> None:
    data = sample()
    data["accounts"]["prod"]["roles"]["readonly"]["approvers"] = ["bob"]
    assert problems(data) == [
        "accounts.prod.roles.readonly: requester 'bob' can never be approved "
        "(needs 1 approval; eligible approvers: none)"
    ]


def test_self_approval_makes_an_approver_eligible_for_themself() -> None:
    data = sample()
    prod_admin(data)["requesters"] = ["alice", "bob"]
    prod_admin(data)["self_approval"] = True
    assert parse_catalog(to_toml(data)).find_role("prod", "admin").self_approval is True


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
    path = tmp_path / "bad.toml"
    path.write_text(to_toml(data))
    assert main([str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "error: bastion.account_id: '1111' is not a 12-digit AWS account id",
        "error: accounts.prod.roles.admin.aprovers: unknown key",
    ]


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
