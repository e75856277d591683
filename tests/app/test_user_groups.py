"""Slack user groups as approvers, through the app (signed HTTP) against the Slack stand-in:
the catalog names ``@sre-leads``; who is in it is asked of Slack (usergroups.list and
usergroups.users.list) when a click is decided, kept a minute."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import time_machine

from chalicelib.domain.model import GrantStatus, RequestStatus
from local import slack_client
from tests.conftest import CATALOG, sign

T0 = datetime(2026, 11, 12, 14, 0, 0, tzinfo=timezone.utc)
ALICE, BOB, CAROL, DAVE = "U0ALICE001", "U0BOB00001", "U0CAROL001", "U0DAVE0001"
STRANGER = "U0NOTINCAT"  # in the Slack group, not in the catalog
NOBODY = ("You are not an approver of prod/readonly; approvers: nobody (nobody approves through @sre-leads now: "
          "Slack did not say who is in it; try again in a minute, and if that lasts ask an admin to check the "
          "handle in the catalog).")


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    """The sample catalog, with prod/readonly approved by @sre-leads alone and prod/admin by
    @sre-leads and bob (two approvals)."""
    text = CATALOG.read_text()
    readonly = 'approvers = ["bob", "carol"]       # bob\'s own request needs carol, and carol\'s needs bob'
    admin = 'approvers = ["bob", "carol"]\napprovals_required = 2             # both must approve'
    assert readonly in text and admin in text
    text = text.replace(readonly, 'approvers = ["@sre-leads"]').replace(
        admin, 'approvers = ["@sre-leads", "bob"]\napprovals_required = 2')
    path = tmp_path / "access.toml"
    path.write_text(text)
    return path


def ask(app_client, person: str, text: str) -> tuple[str, str]:
    reply = app_client.command(person, text)
    m = re.search(r"req-\d{8}-[0-9a-f]{6}", reply.text)
    assert m, reply.text
    return m.group(0), reply.text


def home_buttons(view: dict) -> list[tuple[str, str]]:
    return [(e["action_id"], e["value"]) for b in view["blocks"] if b["type"] == "actions"
            for e in b["elements"] if e["action_id"] in ("approve_request", "deny_request")]


def refusals(slack, user: str) -> list[str]:
    return [m.text for m in slack.ephemerals(user)]


def test_a_catalog_person_in_the_group_approves_others_cannot(app_client, slack, store):
    slack.add_usergroup("sre-leads", [CAROL, STRANGER])
    with time_machine.travel(T0, tick=False):
        rid, reply = ask(app_client, "alice", "prod readonly 1h dashboards")
        assert "needs 1 of @carol." in reply  # the group's catalog people; the stranger left out

        stranger = slack_client.click_body(STRANGER, "approve_request", rid)
        app_client.raw("/slack/interactions", stranger, sign(stranger))
        assert "not in the Drawbridge catalog" in refusals(slack, STRANGER)[0]
        app_client.approve("bob", rid)  # a catalog person, not in the group
        assert refusals(slack, BOB) == ["You are not an approver of prod/readonly; approvers: @carol."]
        assert store.get(rid).status is RequestStatus.PENDING

        app_client.approve("carol", rid)
        req = store.get(rid)
        assert (req.status, req.grant_status, req.approvers) == (RequestStatus.APPROVED, GrantStatus.ACTIVE,
                                                                ("carol",))
        assert refusals(slack, CAROL) == []


def test_someone_removed_from_the_group_is_refused_at_their_next_click(app_client, slack, store):
    """Clicks are judged with the group as Slack says at click time (give or take the minute
    its answer is kept); an approval by someone who has left no longer counts either."""
    slack.add_usergroup("sre-leads", [CAROL])
    with time_machine.travel(T0, tick=False) as clock:
        rid, _ = ask(app_client, "alice", "prod admin 2h incident 4521")
        app_client.approve("carol", rid)  # 1 of 2
        assert store.get(rid).approvers == ("carol",)

        slack.set_usergroup_members("sre-leads", [DAVE])
        clock.shift(timedelta(seconds=61))  # past the minute the group's members are kept
        app_client.deny("carol", rid)
        assert refusals(slack, CAROL) == ["You are not an approver of prod/admin; approvers: @dave, @bob."]
        app_client.approve("bob", rid)
        req = store.get(rid)  # carol's approval no longer counts: still 1 of 2
        assert (req.status, req.approvers) == (RequestStatus.PENDING, ("carol", "bob"))

        app_client.approve("dave", rid)
        req = store.get(rid)
        assert (req.status, req.grant_status) == (RequestStatus.APPROVED, GrantStatus.ACTIVE)


def test_a_group_slack_cannot_resolve_supplies_nobody(app_client, slack, store):
    slack.add_usergroup("sre-leads", [CAROL])
    with time_machine.travel(T0, tick=False) as clock:
        slack.fail_next("usergroups.list", error="missing_scope")  # e.g. usergroups:read not granted
        rid, reply = ask(app_client, "alice", "prod readonly 1h dashboards")
        assert "needs 1 of nobody right now." in reply
        clock.shift(timedelta(seconds=61))  # the card's job resolved it meanwhile: past that answer's minute
        slack.fail_next("usergroups.users.list", status=500)  # one try: a click cannot wait on retries
        app_client.approve("carol", rid)
        assert refusals(slack, CAROL) == [NOBODY]
        assert store.get(rid).status is RequestStatus.PENDING
        app_client.approve("carol", rid)  # within 15 s of the failure: not asked again, still nobody
        assert refusals(slack, CAROL) == [NOBODY, NOBODY]
        clock.shift(timedelta(seconds=15))
        app_client.approve("carol", rid)  # Slack is asked again, and answers
        assert store.get(rid).status is RequestStatus.APPROVED


def test_an_unknown_handle_supplies_nobody(app_client, slack, store):
    with time_machine.travel(T0, tick=False):
        rid, _ = ask(app_client, "alice", "prod readonly 1h dashboards")
        app_client.approve("carol", rid)
        assert refusals(slack, CAROL) == [NOBODY]
        assert store.get(rid).status is RequestStatus.PENDING


def test_reminders_lists_and_the_app_home_reach_the_group_members(app_client, slack, store):
    slack.add_usergroup("sre-leads", [CAROL, DAVE, STRANGER])
    with time_machine.travel(T0, tick=False) as clock:
        rid, _ = ask(app_client, "alice", "prod readonly 1h dashboards")
        # dave approves nothing by name: only through the group
        assert rid in app_client.command("dave", "list").text  # waiting for dave's approval
        assert rid not in app_client.command("bob", "list").text
        app_client.open_home("dave")  # the App Home's "waiting for you": the card's buttons
        app_client.open_home("bob")
        assert (home_buttons(slack.home(DAVE)), home_buttons(slack.home(BOB))) == (
            [("approve_request", rid), ("deny_request", rid)], [])
        clock.shift(timedelta(minutes=10, seconds=5))  # the role's remind_after (default 10m)
        app_client.sweep()
        reminded = {u for u in (ALICE, BOB, CAROL, DAVE, STRANGER)
                    if any(m.event_type == "approval_reminder" for m in slack.dms(u))}
        assert reminded == {CAROL, DAVE}
        assert store.get(rid).reminders == 1


def test_help_names_the_group_once(app_client):
    text = app_client.command("alice", "help").text
    assert "1 approval from @sre-leads" in text and "@@" not in text
