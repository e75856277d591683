"""The Events API route and the App Home through the app (issue 17, first slice).

chalice.test.Client runs app.py with moto and the Slack stand-in over HTTP: Slack's
url_verification is answered only when correctly signed, app_home_opened publishes the
person's home through views.publish, and buttons clicked in the home act and publish it again.
"""

from __future__ import annotations

import json
import time

import pytest

from chalicelib.domain.model import GrantStatus, RequestStatus
from local import slack_client
from local.slack_standin import SlackStandin
from tests.app.test_lifecycle import request_id_from
from tests.conftest import SIGNING_SECRET

JSON = slack_client.JSON


def signed(body: str, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict:
    return slack_client.sign(body, secret, timestamp, content_type=JSON)


def buttons(view: dict) -> list[tuple[str, str]]:
    found = []
    for block in view["blocks"]:
        elements = block.get("elements", []) if block["type"] == "actions" else [block.get("accessory") or {}]
        found += [(e["action_id"], e["value"]) for e in elements if e.get("type") == "button"]
    return found


def test_slack_verifies_the_request_url_only_with_the_right_signature(app_client):
    def post(body: str, headers: dict):
        reply = app_client.raw("/slack/events", body, headers)
        return reply.status, reply.body

    assert SlackStandin.verify_request_url(post, SIGNING_SECRET) is True
    assert SlackStandin.verify_request_url(post, "another-apps-signing-secret") is False


@pytest.mark.parametrize("headers", [
    "unsigned", "wrong secret", "stale",
])
def test_an_unsigned_or_stale_event_is_a_401_and_publishes_nothing(app_client, slack, headers):
    challenge_body, challenge = slack_client.url_verification_body()
    home_body = slack_client.home_opened_body("U0ALICE001")
    for body in (challenge_body, home_body):
        h = {"unsigned": {"Content-Type": JSON}, "wrong secret": signed(body, "wrong-secret"),
             "stale": signed(body, timestamp=int(time.time()) - 6 * 60)}[headers]
        reply = app_client.raw("/slack/events", body, h)
        assert reply.status == 401
        assert challenge not in json.dumps(reply.body)
    assert slack.homes() == [] and slack.calls == []


def test_opening_the_home_publishes_it_with_the_persons_grants_and_waiting_requests(app_client, slack):
    rid = request_id_from(app_client.command("alice", "prod admin 2h fixing <!here> R&D").text)

    reply = app_client.open_home("bob")

    assert (reply.status, reply.body) == (200, {})
    bob = slack.home("U0BOB00001")
    assert bob["type"] == "home"
    assert buttons(bob) == [("approve_request", rid), ("deny_request", rid), ("deny_with_reason", rid)]
    assert "fixing &lt;!here&gt; R&amp;D" in json.dumps(bob)

    app_client.open_home("alice")
    alice = slack.home("U0ALICE001")
    assert buttons(alice) == []  # pending, nothing to revoke; alice approves nothing
    assert f"({rid}) for 2h: approvals 0 of 2" in json.dumps(alice)


def test_approve_in_the_home_counts_and_publishes_the_home_again(app_client, slack, store):
    rid = request_id_from(app_client.command("alice", "prod admin 2h incident 4521").text)
    app_client.open_home("bob")
    publishes = len([c for c in slack.calls if c.method == "views.publish"])

    reply = app_client.home_click("bob", "approve_request", rid, block_id=f"decide:{rid}")

    assert reply.status == 200
    req = store.get(rid)
    assert req.approvers == ("bob",) and req.status is RequestStatus.PENDING
    assert len([c for c in slack.calls if c.method == "views.publish"]) == publishes + 1
    assert buttons(slack.home("U0BOB00001")) == []  # nothing waits for bob any more
    card = slack.find(event_type="access_approved", channel="C0APPROVE1") or \
        slack.find(event_type="access_requested", channel="C0APPROVE1")
    assert "1 of 2" in card[0].all_text()  # the card shows the approval too
    assert slack.ephemerals() == []


def test_revoke_in_the_home_ends_the_grant(app_client, slack, store):
    rid = request_id_from(app_client.command("alice", "prod admin 2h incident 4521").text)
    app_client.approve("bob", rid)
    app_client.approve("carol", rid)
    assert store.get(rid).grant_status is GrantStatus.ACTIVE
    app_client.open_home("alice")
    assert buttons(slack.home("U0ALICE001")) == [("revoke_request", rid)]

    app_client.home_click("alice", "revoke_request", rid, block_id=f"grant:{rid}")

    assert store.get(rid).grant_status is GrantStatus.REVOKED
    assert buttons(slack.home("U0ALICE001")) == []


def test_a_refused_click_in_the_home_is_answered_by_dm(app_client, slack, store):
    rid = request_id_from(app_client.command("alice", "prod admin 2h incident 4521").text)
    app_client.home_click("dave", "approve_request", rid, block_id=f"decide:{rid}")
    assert store.get(rid).approvers == ()
    (dm,) = [m for m in slack.dms("U0DAVE0001") if m.event_type == "click_answer"]
    assert dm.text
    assert slack.ephemerals() == [] and slack.home("U0DAVE0001") is not None


def test_a_stranger_opening_the_home_is_told_they_are_not_in_the_catalog(app_client, slack):
    app_client.event(slack_client.home_opened_body("U0STRANGER"))
    assert "not in the Drawbridge catalog" in json.dumps(slack.home("U0STRANGER"))


@pytest.mark.parametrize("body", [
    slack_client.home_opened_body("U0ALICE001", tab="messages"),
    json.dumps({"type": "event_callback", "event": {"type": "member_joined_channel", "user": "U0ALICE001"}}),
    "this is not json",
    json.dumps({"type": "event_callback", "event": {"type": "app_home_opened", "user": 5}}),
])
def test_other_events_and_unreadable_bodies_get_a_200_and_change_nothing(app_client, slack, body):
    reply = app_client.event(body)
    assert (reply.status, reply.body) == (200, {})
    assert slack.homes() == [] and slack.calls == []


def test_a_redelivered_event_only_publishes_the_same_home_again(app_client, slack):
    body = slack_client.home_opened_body("U0CAROL001", event="Ev0REDELIVR")
    app_client.event(body)
    first = slack.home("U0CAROL001")
    headers = {**signed(body), "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert app_client.raw("/slack/events", body, headers).status == 200
    assert [c.method for c in slack.calls] == ["views.publish", "views.publish"]
    assert slack.home("U0CAROL001")["blocks"] == first["blocks"]


def test_another_workspaces_home_opened_is_ignored(app_client, slack, tmp_path, monkeypatch):
    from tests.conftest import CATALOG

    path = tmp_path / "access.toml"
    path.write_text(CATALOG.read_text().replace(
        'security_channel  = "C0SECURIT1"', 'security_channel  = "C0SECURIT1"\nteam_id = "T0STANDIN"'))
    monkeypatch.setenv("DRAWBRIDGE_CATALOG", str(path))
    from chalicelib import wiring

    wiring.reset()
    assert app_client.event(slack_client.home_opened_body("U0ALICE001", team_id="T0ELSEWHERE")).status == 200
    assert slack.homes() == []
    app_client.open_home("alice")  # the pinned workspace itself is served
    assert slack.homes() == ["U0ALICE001"]
