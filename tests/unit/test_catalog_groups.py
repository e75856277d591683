"""Slack user groups as approvers in the catalog (issue 17, item 4): ``"@sre-leads"`` in
``approvers`` / ``fallback_approvers``. The validator checks the handle's syntax; it cannot
know a group's members offline, so the count checks treat a group as of unknown size."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.catalog import approval_blocker, parse_catalog

from .test_catalog import problem_at, problems, prod_admin, sample, to_toml


def loads(data: dict[str, Any]):
    return parse_catalog(to_toml(data))


def test_a_group_handle_is_an_approver() -> None:
    data = sample()
    prod_admin(data)["approvers"] = ["@sre-leads", "bob"]
    role = loads(data).find_role("prod", "admin")
    assert role.approvers == ("@sre-leads", "bob")  # as listed: resolved only at click time
    assert role.groups == ("@sre-leads",)


@pytest.mark.parametrize("bad", ["@Bad Handle", "@SRE", "@", "@sre leads", "@" + "a" * 81, "@sré"])
def test_group_handle_syntax_is_checked_at_its_key(bad: str) -> None:
    data = sample()
    prod_admin(data)["approvers"] = ["bob", bad]
    assert problem_at(data, "accounts.prod.roles.admin.approvers[1]") == (
        f"'{bad}' is not a Slack user group handle: @ then 1-80 of a-z 0-9 . _ - "
        "(the handle as Slack shows it, like @sre-leads, not the group's name)")


def test_a_handle_without_at_is_still_an_unknown_person() -> None:
    data = sample()
    prod_admin(data)["approvers"] = ["bob", "sre-leads"]
    assert problem_at(data, "accounts.prod.roles.admin.approvers[1]") == (
        "'sre-leads' is not a person in [people]; add [people.sre-leads] or fix the name")


def test_a_repeated_group_is_reported() -> None:
    data = sample()
    prod_admin(data)["approvers"] = ["@sre-leads", "bob", "@sre-leads"]
    assert problem_at(data, "accounts.prod.roles.admin.approvers[2]") == \
        "'@sre-leads' is listed twice; remove the repeat"


def test_groups_in_fallback_approvers_but_not_in_requesters_or_break_glass() -> None:
    data = sample()
    prod_admin(data)["fallback_approvers"] = ["@on-call", "@Nope"]
    prod_admin(data)["requesters"] = ["alice", "@devs"]
    found = problems(data)
    where = "accounts.prod.roles.admin.fallback_approvers[1]"
    assert f"{where}: '@Nope' is not a Slack user group handle" in "\n".join(found)
    assert not any(p.startswith("accounts.prod.roles.admin.fallback_approvers[0]") for p in found)
    assert "accounts.prod.roles.admin.requesters[1]: '@devs' is not a person in [people]" in "\n".join(found)


GROUP_IN_PRODUCTION = (
    "accounts.prod.roles.admin.approvers: names the Slack user group @sre-leads: whoever may edit it in Slack "
    "decides who approves production access; restrict user group editing to workspace admins, or name people "
    "(docs/SECURITY.md)")


def test_a_group_approving_production_is_warned_about_and_elsewhere_is_not() -> None:
    data = sample()
    prod_admin(data)["approvers"] = ["@sre-leads", "bob"]
    assert GROUP_IN_PRODUCTION in loads(data).warnings
    data = sample()
    data["accounts"]["dev"]["roles"]["admin"]["approvers"] = ["@sre-leads", "bob"]
    assert not [w for w in loads(data).warnings if "user group" in w]


def test_approvals_required_beyond_the_named_people_is_fine_with_a_group() -> None:
    """Two approvals from ["@sre-leads"]: the group may well have two members."""
    data = sample()
    prod_admin(data)["approvers"] = ["@sre-leads"]
    prod_admin(data)["approvals_required"] = 3
    prod_admin(data)["extend_approvals"] = 3
    catalog = loads(data)
    assert catalog.warnings == (GROUP_IN_PRODUCTION,)  # no count warning: only the group's own
    assert approval_blocker(catalog.find_role("prod", "admin"), "alice") is None  # unknown size: not blocked


def test_people_only_lists_keep_their_count_errors() -> None:
    data = sample()
    prod_admin(data)["approvers"] = ["bob"]
    prod_admin(data)["approvals_required"] = 2
    assert problem_at(data, "accounts.prod.roles.admin.approvals_required") == (
        "is 2 but there is only 1 approver; lower it or add approvers")


def test_self_approval_shortfall_is_not_warned_with_a_group() -> None:
    """bob is the only named approver of bob's request, but @sre-leads may supply another."""
    data = sample()
    prod_admin(data)["approvers"] = ["bob", "@sre-leads"]
    prod_admin(data)["approvals_required"] = 1
    prod_admin(data)["requesters"] = ["alice", "bob"]
    assert loads(data).warnings == (GROUP_IN_PRODUCTION,)
    prod_admin(data)["approvers"] = ["bob"]  # without the group: the warning as before
    assert [w.split(": ", 1)[0] for w in loads(data).warnings] == ["accounts.prod.roles.admin.requesters[1]"]


def test_with_members_replaces_handles_by_people_and_fails_closed() -> None:
    data = sample()
    prod_admin(data)["approvers"] = ["@sre-leads", "bob", "@unknown"]
    prod_admin(data)["fallback_approvers"] = ["@sre-leads"]
    role = loads(data).find_role("prod", "admin")
    resolved = role.with_members({"@sre-leads": {"dave", "bob", "carol"}})
    assert resolved.approvers == ("bob", "carol", "dave")  # @unknown (not resolved) supplies nobody
    assert resolved.fallback_approvers == ("bob", "carol", "dave")
    assert resolved.groups == () and resolved.unresolved_groups == ("@unknown",)
    assert role.with_members({}).approvers == ("bob",)
    people_only = loads(sample()).find_role("prod", "admin")
    assert people_only.with_members({"@x": {"alice"}}) is people_only
