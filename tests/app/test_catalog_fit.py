"""The most common catalog shape: a role with one approver and no `requesters` key.

It must load and serve everyone; only the sole approver, who could never collect an
approval for their own request, is refused - up front, with the reason, and without a
card or a table item. `help` does not offer them that role.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.app.test_refusals import snapshot, table_items
from tests.conftest import CATALOG

ONE_APPROVER = '''
[accounts.prod.roles.readonly]
max_duration = "8h"
approvers = ["bob"]
'''


@pytest.fixture
def one_approver(tmp_path: Path, monkeypatch, app_client):
    text = CATALOG.read_text()
    start = text.index("[accounts.prod.roles.readonly]")
    end = text.index("[accounts.dev]")
    path = tmp_path / "access.toml"
    path.write_text(text[:start] + ONE_APPROVER + "\n" + text[end:])
    monkeypatch.setenv("DRAWBRIDGE_CATALOG", str(path))
    return app_client


def test_the_catalog_loads_and_everyone_else_may_request(one_approver, slack, store):
    reply = one_approver.command("alice", "prod readonly 1h checking dashboards")
    rid = re.search(r"req-\d{8}-[0-9a-f]{6}", reply.text).group(0)
    assert "needs 1 of @bob" in reply.text
    assert slack.find(event_type="access_requested", channel="C0APPROVE1")
    one_approver.approve("bob", rid)
    assert store.get(rid).grant_status.value == "ACTIVE"


def test_the_sole_approver_is_refused_up_front_with_the_reason(one_approver, slack, store, stack):
    before = snapshot(stack, slack, store, [])
    reply = one_approver.command("bob", "prod readonly 1h checking dashboards")
    assert reply.status == 200
    assert reply.text.startswith("prod/readonly needs 1 approval and you are its only approver")
    assert "self_approval" in reply.text  # says how to fix it
    assert snapshot(stack, slack, store, []) == before  # no card, no item, no policy
    assert not [i for i in table_items(stack) if i["PK"]["S"].startswith("REQ#")]


def test_help_does_not_offer_what_cannot_be_approved(one_approver):
    bob = one_approver.command("bob", "help").text
    alice = one_approver.command("alice", "help").text
    assert "`prod/readonly`" not in bob and "`dev/admin`" in bob
    assert "`prod/readonly`" in alice


# ---- what a new user bumps into: help and list say what is true for *them* -----------------
def test_help_names_only_approvers_who_could_approve_the_asker(app_client):
    bob = app_client.command("bob", "help").text  # bob approves prod/readonly himself, no self_approval
    assert "`prod/readonly` up to 8h — 1 approval from @carol;" in bob
    dev = app_client.command("bob", "help").text  # dev/admin allows self-approval: bob is listed
    assert "`dev/admin` up to 1d — 1 approval from @bob, @carol" in dev
    alice = app_client.command("alice", "help").text
    assert "`prod/readonly` up to 8h — 1 approval from @bob, @carol;" in alice


def test_list_shows_an_approver_what_waits_for_them(app_client):
    reply = app_client.command("alice", "prod readonly 1h checking dashboards")
    rid = re.search(r"req-\d{8}-[0-9a-f]{6}", reply.text).group(0)
    own = app_client.command("bob", "prod readonly 1h checking dashboards").text
    bobs = re.search(r"req-\d{8}-[0-9a-f]{6}", own).group(0)

    carol = app_client.command("carol", "list").text
    assert "You have no pending or active requests." in carol
    assert "Waiting for your approval" in carol and rid in carol and bobs in carol
    assert "@alice wants `prod/readonly` for 1h, 0 of 1 approvals" in carol

    bob = app_client.command("bob", "list").text
    assert "Waiting for your approval" in bob and rid in bob
    waiting = bob.split("Waiting for your approval", 1)[1]
    assert bobs not in waiting  # his own request is not his to approve
    assert "Waiting for your approval" not in app_client.command("alice", "list").text  # approves nothing

    app_client.approve("carol", rid)
    assert rid not in app_client.command("bob", "list").text.split("Waiting for your approval")[-1]
