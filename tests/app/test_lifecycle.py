"""The whole core lifecycle through the app: request -> two approvals -> grant -> expiry.

Real parts: chalice.test.Client runs app.py; moto (in-process) is AWS with IAM
enforcement on, so alice's own sts:AssumeRole proves what the grant does; the
Slack stand-in is spoken to over HTTP by slack_sdk. Time moves with time-machine.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import time_machine

from chalicelib.domain.model import GrantStatus, RequestStatus
from local.seed import client as aws

PROD_ADMIN = "arn:aws:iam::222222222222:role/admin"
T0 = datetime(2026, 11, 12, 14, 0, 0, tzinfo=timezone.utc)


def assume(world, person: str, role_arn: str = PROD_ADMIN):
    """The person's own sts:AssumeRole with their bastion keys; returns the ARN or the error code."""
    from botocore.exceptions import ClientError

    sts = aws("sts", keys=world.people[person])
    try:
        return sts.assume_role(RoleArn=role_arn, RoleSessionName=person)["AssumedRoleUser"]["Arn"]
    except ClientError as exc:
        return exc.response["Error"]["Code"]


def request_id_from(text: str) -> str:
    import re

    m = re.search(r"req-\d{8}-[0-9a-f]{6}", text)
    assert m, text
    return m.group(0)


def test_request_approve_grant_use_expire(app_client, stack, slack, store):
    from moto.core import enable_iam_authentication

    iam = aws("iam", keys=stack.service)
    with time_machine.travel(T0, tick=False) as clock, enable_iam_authentication():
        assert assume(stack, "alice") == "AccessDenied"

        reply = app_client.command("alice", "prod admin 2h fixing incident 4521")
        assert reply.status == 200
        assert reply.body["response_type"] == "ephemeral"
        rid = request_id_from(reply.text)
        assert "needs 2 of @bob, @carol" in reply.text

        cards = slack.find(event_type="access_requested", channel="C0APPROVE1")
        assert len(cards) == 1
        card = cards[0]
        assert card.metadata["event_payload"] == {
            "request_id": rid, "requester": "alice", "account": "prod", "role": "admin",
            "duration_seconds": 7200, "reason": "fixing incident 4521"}
        assert "0 of 2" in card.all_text() and "Approve" in card.all_text()

        clock.shift(timedelta(minutes=2))
        assert app_client.approve("bob", rid).status == 200
        req = store.get(rid)
        assert (req.status, req.grant_status, req.approvers) == (RequestStatus.PENDING, GrantStatus.NONE, ("bob",))
        card = slack.get(card.channel, card.ts)
        assert card.event_type == "access_approved" and "1 of 2" in card.all_text()
        assert assume(stack, "alice") == "AccessDenied"

        clock.shift(timedelta(seconds=15))
        approved_at = datetime.now(timezone.utc)
        assert app_client.approve("carol", rid).status == 200

        req = store.get(rid)
        assert req.status is RequestStatus.APPROVED and req.grant_status is GrantStatus.ACTIVE
        assert req.expires_at == approved_at + timedelta(hours=2)  # the clock starts at the final approval
        attached = iam.list_attached_user_policies(UserName="alice")["AttachedPolicies"]
        assert [p["PolicyName"] for p in attached] == [f"drawbridge-{rid}"]
        doc = iam.get_policy_version(PolicyArn=attached[0]["PolicyArn"], VersionId="v1")["PolicyVersion"]["Document"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        stmt = doc["Statement"][0]
        assert stmt["Resource"] == PROD_ADMIN and stmt["Action"] == "sts:AssumeRole"
        assert stmt["Condition"] == {"DateLessThan": {"aws:CurrentTime": "2026-11-12T16:02:15Z"},
                                     "Bool": {"aws:MultiFactorAuthPresent": "true"}}

        card = slack.get(card.channel, card.ts)
        assert card.event_type == "access_granted"
        assert card.metadata["event_payload"]["expires_at"] == "2026-11-12T16:02:15Z"
        assert card.metadata["event_payload"]["approvers"] == ["bob", "carol"]
        assert [b for b in card.blocks if b["type"] == "actions"] == []  # decided: no buttons
        bob_approved, dm = slack.dms("U0ALICE001")
        assert bob_approved.event_type == "access_approved"
        assert dm.event_type == "access_granted"
        text = dm.all_text()
        assert "switchrole?account=222222222222&roleName=admin&displayName=prod%2Fadmin" in text
        assert "role_arn = arn:aws:iam::222222222222:role/admin" in text
        assert "mfa_serial = arn:aws:iam::111111111111:mfa/alice" in text
        assert "role_session_name = alice" in text and "source_profile" in text
        assert "2026-11-12T16:02:15Z" in text and "take a moment" in text

        assert assume(stack, "alice").startswith("arn:aws:sts::222222222222:assumed-role/admin/alice")
        assert assume(stack, "alice", "arn:aws:iam::222222222222:role/readonly") == "AccessDenied"
        assert assume(stack, "dave") == "AccessDenied"

        listing = app_client.command("alice", "list")
        assert rid in listing.text and "active" in listing.text

        # Not yet: the sweep before expiry leaves the grant alone.
        clock.shift(timedelta(hours=1))
        app_client.sweep()
        assert store.get(rid).grant_status is GrantStatus.ACTIVE

        clock.move_to(req.expires_at + timedelta(seconds=30))
        app_client.sweep()
        req = store.get(rid)
        assert req.grant_status is GrantStatus.EXPIRED
        assert iam.list_attached_user_policies(UserName="alice")["AttachedPolicies"] == []
        assert assume(stack, "alice") == "AccessDenied"
        card = slack.get(card.channel, card.ts)
        assert card.event_type == "access_expired" and "expired" in card.all_text().lower()
        assert [m.event_type for m in slack.dms("U0ALICE001")] == ["access_approved", "access_granted", "access_expired"]
        listing = app_client.command("alice", "list").text
        assert listing.startswith("You have no pending or active requests.\n\nEnded within the last hour:\n")
        assert f"`{rid}` `prod/admin` — expired at" in listing and "live sessions ended at" in listing

    history = [(e.actor, e.action, e.from_status, e.to_status) for e in store.history(rid)]
    assert history == [
        ("alice", "requested", "-", "PENDING/NONE"),
        ("bob", "approved", "PENDING/NONE", "PENDING/NONE"),
        ("carol", "approved", "PENDING/NONE", "APPROVED/GRANTING"),
        ("drawbridge", "granted", "APPROVED/GRANTING", "APPROVED/ACTIVE"),
        ("drawbridge", "expired", "APPROVED/ACTIVE", "APPROVED/EXPIRED"),
        # her live sessions cut off at the role, through the member account's revoker (moto)
        ("drawbridge", "sessions_cut", "APPROVED/EXPIRED", "APPROVED/EXPIRED"),
    ]


def test_redelivered_command_and_click_act_once(app_client, slack, store):
    from tests.conftest import click_body, sign, slash_body

    body = slash_body("U0ALICE001", "prod readonly 1h checking dashboards", trigger="1.2.retry-me")
    first = app_client.raw("/slack/commands", body, sign(body))
    again = app_client.raw("/slack/commands", body, sign(body))  # e.g. X-Slack-Retry-Num: 1
    assert again.body == first.body
    assert len(store.open_for("alice")) == 1
    assert len(slack.find(event_type="access_requested")) == 1

    rid = request_id_from(first.text)
    click = click_body("U0BOB00001", "approve_request", rid, trigger="1.2.click-once")
    app_client.raw("/slack/interactions", click, sign(click))
    app_client.raw("/slack/interactions", click, sign(click))
    assert store.get(rid).grant_status is GrantStatus.ACTIVE
    assert len(store.history(rid)) == 3  # requested, approved, granted: the repeat did nothing
    assert len(slack.dms("U0ALICE001")) == 1
    assert slack.ephemerals("U0BOB00001") == []


def test_an_approval_whose_own_answer_was_lost_still_grants_at_once(app_client, slack, store):
    """The final approval's transaction lands but its answer is lost; botocore sends it again
    and it meets its own delivery claim (AlreadyDelivered). The handler must still hand the
    grant on: the record is GRANTING, and waiting for the sweep would keep the person
    waiting minutes for access two people approved."""
    from chalicelib import wiring
    from tests.conftest import click_body, sign

    rid = request_id_from(app_client.command("alice", "prod readonly 1h checking dashboards").text)
    events = wiring.service().store._db.meta.events  # the app's own DynamoDB client (botocore's event hooks)
    sent = []

    def lose_the_first_answer(attempts, **_):
        sent.append(attempts)
        return 0 if attempts == 1 and len(sent) == 1 else None  # retry at once, one time only

    events.register("needs-retry.dynamodb.TransactWriteItems", lose_the_first_answer)
    try:
        click = click_body("U0BOB00001", "approve_request", rid, trigger="7.7.lost-answer")
        assert app_client.raw("/slack/interactions", click, sign(click)).status == 200
    finally:
        events.unregister("needs-retry.dynamodb.TransactWriteItems", lose_the_first_answer)

    assert sent[:2] == [1, 2]  # the approval's transaction really went twice
    req = store.get(rid)
    assert req.grant_status is GrantStatus.ACTIVE and req.approvers == ("bob",)
    assert [e.action for e in store.history(rid)] == ["requested", "approved", "granted"]
    assert len(slack.dms("U0ALICE001")) == 1
