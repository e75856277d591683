"""Break-glass through the app: signed slash command and clicks, IAM on moto, Slack on the
stand-in. The command changes nothing; the Confirm grants at once (the same policy as any
grant: MFA and an expiry IAM enforces), loudly; an approver acknowledges on the card; the
sweep reminds and then escalates an unreviewed use; the grant expires like any other."""

from __future__ import annotations

import json
import urllib.parse
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import time_machine

from local import slack_client
from local.seed import client as aws
from tests.app.test_lifecycle import assume
from tests.conftest import CATALOG, sign

T0 = datetime(2026, 11, 12, 14, 0, 0, tzinfo=timezone.utc)
PROD_ADMIN = "arn:aws:iam::222222222222:role/admin"
REASON = "the payments database is down and the pager is silent"


@pytest.fixture
def bg_app(tmp_path: Path, monkeypatch, app_client):
    """The app with alice listed for break-glass on prod/admin (1h at most, review within 4h)."""
    text = (CATALOG.read_text().replace('# break_glass = ["alice"]', 'break_glass = ["alice"]')
            .replace('# review_within = "4h"', 'review_within = "4h"'))
    path = tmp_path / "access.toml"
    path.write_text(text)
    monkeypatch.setenv("DRAWBRIDGE_CATALOG", str(path))
    return app_client


def click(app, person: str, action: str, value: str, **fields):
    body = slack_client.click_body(app.slack_id(person), action, value, **fields)
    return app.raw("/slack/interactions", body, sign(body))


def attached(stack, user: str = "alice") -> list[str]:
    iam = aws("iam", keys=stack.service)
    return [p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]]


def test_break_glass_end_to_end(bg_app, stack, slack, store):
    from moto.core import enable_iam_authentication

    iam = aws("iam", keys=stack.service)
    with time_machine.travel(T0, tick=False) as clock, enable_iam_authentication():
        # refused without a reason, and for someone the catalog does not list: nothing happens
        assert "at least a sentence" in bg_app.command("alice", "breakglass prod admin 1h").text
        assert "may not use break-glass" in bg_app.command("dave", f"breakglass prod admin 1h {REASON}").text

        reply = bg_app.command("alice", f"breakglass prod admin 1h {REASON}")
        assert reply.status == 200 and reply.body["response_type"] == "ephemeral"
        (button,) = [e for b in reply.body["blocks"] if b["type"] == "actions" for e in b["elements"]]
        assert button["action_id"] == "confirm_break_glass"
        # nothing happened before the Confirm: no IAM policy, no Slack post
        assert attached(stack) == [] and slack.messages() == []
        assert assume(stack, "alice") == "AccessDenied"

        clock.shift(timedelta(seconds=30))
        confirmed = click(bg_app, "alice", "confirm_break_glass", button["value"], channel_id="C0CMD00001",
                          message_ts="1794492000.000300", block_id="break_glass_confirm")
        assert confirmed.status == 200
        (arn,) = attached(stack)
        doc = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]["Document"]
        (statement,) = doc["Statement"]
        assert statement["Resource"] == PROD_ADMIN
        assert statement["Condition"] == {"DateLessThan": {"aws:CurrentTime": "2026-11-12T15:00:30Z"},
                                          "Bool": {"aws:MultiFactorAuthPresent": "true"}}
        rid = arn.rsplit("drawbridge-", 1)[1]
        req = store.get(rid)
        assert req.break_glass and req.grant_status.value == "ACTIVE" and req.approvals == ()

        (used,) = slack.find(event_type="break_glass_used", channel="C0SECURIT1")
        assert used.metadata["event_payload"] == {
            "request_id": rid, "requester": "alice", "account": "prod", "role": "admin", "role_arn": PROD_ADMIN,
            "expires_at": "2026-11-12T15:00:30Z", "reason": REASON}
        assert used.text.startswith("<!here>")
        (the_card,) = [m for m in slack.messages("C0APPROVE1") if m.thread_ts is None]
        assert the_card.text.startswith("<!here> BREAK-GLASS access") and REASON in the_card.all_text()
        assert any(m.event_type == "access_granted" for m in slack.dms(bg_app.slack_id("alice")))
        (told,) = slack.ephemerals(bg_app.slack_id("alice"))
        assert rid in told.text

        # the same Confirm again makes no second grant
        click(bg_app, "alice", "confirm_break_glass", button["value"], channel_id="C0CMD00001",
              message_ts="1794492000.000300", block_id="break_glass_confirm")
        assert attached(stack) == [arn]

        # the sweep reminds the approvers (never alice) an hour after the use
        clock.shift(timedelta(hours=1))
        bg_app.sweep()
        for person in ("bob", "carol"):
            dms = [m for m in slack.dms(bg_app.slack_id(person)) if m.event_type == "break_glass_review_reminder"]
            assert [m.metadata["event_payload"]["step"] for m in dms] == [1]
        assert not [m for m in slack.dms(bg_app.slack_id("alice")) if m.event_type == "break_glass_review_reminder"]
        assert store.get(rid).grant_status.value == "EXPIRED" and attached(stack) == []

        # bob acknowledges on the card: the controls go, the card says who
        assert click(bg_app, "bob", "ack_break_glass", rid).status == 200
        req = store.get(rid)
        assert (req.review_outcome, req.reviewed_by) == ("acknowledged", "bob")
        card = slack.get(the_card.channel, the_card.ts)
        assert "Review: acknowledged by" in card.all_text()
        assert not any(b["type"] in ("actions", "input") for b in card.blocks)

        clock.shift(timedelta(hours=4))
        bg_app.sweep()
        assert not slack.find(event_type="break_glass_review_overdue")


def test_an_unreviewed_break_glass_is_escalated_and_a_flag_needs_a_reason(bg_app, stack, slack, store):
    with time_machine.travel(T0, tick=False) as clock:
        reply = bg_app.command("alice", f"breakglass prod admin 30m {REASON}")
        (button,) = [e for b in reply.body["blocks"] if b["type"] == "actions" for e in b["elements"]]
        click(bg_app, "alice", "confirm_break_glass", button["value"], channel_id="C0CMD00001",
              message_ts="1794492000.000400", block_id="break_glass_confirm")
        (arn,) = attached(stack)
        rid = arn.rsplit("drawbridge-", 1)[1]

        for _ in range(4):
            clock.shift(timedelta(hours=1))
            bg_app.sweep()
        bg_app.sweep()
        (overdue,) = slack.find(event_type="break_glass_review_overdue", channel="C0SECURIT1")
        assert overdue.metadata["event_payload"]["request_id"] == rid and overdue.text.startswith("<!here>")

        # a flag typed into the card's box: empty is refused, a reason is recorded and told
        flag = {"channel_id": "C0APPROVE1", "block_id": f"flag:{rid}"}
        body = slack_client.click_payload(bg_app.slack_id("carol"), "flag_break_glass", " ", **flag)
        body["actions"][0]["type"] = "plain_text_input"
        form = urllib.parse.urlencode({"payload": json.dumps(body)})
        assert bg_app.raw("/slack/interactions", form, sign(form)).status == 200
        assert store.get(rid).review_open
        body["actions"][0]["value"] = "nobody was paged; who is this really?"
        body["trigger_id"] = "flag-2"
        form = urllib.parse.urlencode({"payload": json.dumps(body)})
        assert bg_app.raw("/slack/interactions", form, sign(form)).status == 200
        req = store.get(rid)
        assert (req.review_outcome, req.reviewed_by, req.review_note) == (
            "flagged", "carol", "nobody was paged; who is this really?")
        (flagged,) = slack.find(event_type="break_glass_flagged", channel="C0SECURIT1")
        assert flagged.metadata["event_payload"]["flagged_by"] == "carol"
