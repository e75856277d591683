"""Extending a grant through the app: signed slash command and clicks, the real IAM adapter on
moto, the Slack stand-in over HTTP.

What moto can judge here: the grant policy stays attached as one policy with one version
(the new one, default), alice's own sts:AssumeRole keeps working across the switch and
past the old expiry, and it stops once the extended grant ends. What it cannot: moto does
not evaluate ``aws:CurrentTime``, so the documents' expiries are read and compared instead
(tests/adapters/test_iam_grants_extend.py checks the switch call by call).
"""

from __future__ import annotations

import json
from datetime import timedelta

import time_machine

from chalicelib.domain.model import GrantStatus
from local.seed import client as aws
from tests.app.test_lifecycle import PROD_ADMIN, T0, assume, request_id_from
from local.slack_client import click_body


def grant_document(iam, rid: str) -> tuple[list[str], dict]:
    """The version ids of alice's grant policy, and its default version's document."""
    (attached,) = iam.list_attached_user_policies(UserName="alice")["AttachedPolicies"]
    assert attached["PolicyName"] == f"drawbridge-{rid}"
    arn = attached["PolicyArn"]
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    default = next(v["VersionId"] for v in versions if v["IsDefaultVersion"])
    doc = iam.get_policy_version(PolicyArn=arn, VersionId=default)["PolicyVersion"]["Document"]
    return sorted(v["VersionId"] for v in versions), (json.loads(doc) if isinstance(doc, str) else doc)


def test_extend_through_the_app(app_client, stack, slack, store):
    from moto.core import enable_iam_authentication

    iam = aws("iam", keys=stack.service)
    with time_machine.travel(T0, tick=False) as clock, enable_iam_authentication():
        rid = request_id_from(app_client.command("alice", "prod admin 2h fixing incident 4521").text)
        clock.shift(timedelta(minutes=2))
        app_client.approve("bob", rid)
        clock.shift(timedelta(seconds=15))
        app_client.approve("carol", rid)
        assert store.get(rid).grant_status is GrantStatus.ACTIVE
        versions, doc = grant_document(iam, rid)
        assert doc["Statement"][0]["Condition"]["DateLessThan"] == {"aws:CurrentTime": "2026-11-12T16:02:15Z"}

        clock.shift(timedelta(minutes=90))
        reply = app_client.command("alice", f"extend {rid} 1h still fixing incident 4521")
        assert reply.status == 200 and "waiting for approval" in reply.text
        assert grant_document(iam, rid) == (versions, doc)  # nothing changes before the approval

        card = slack.find(event_type="access_granted", channel="C0APPROVE1")[0]
        buttons = [b for b in card.blocks if b["type"] == "actions"]
        assert [e["action_id"] for e in buttons[0]["elements"]] == ["approve_extension", "deny_extension"]
        assert buttons[0]["block_id"] == f"extend:{rid}:1"

        clock.shift(timedelta(minutes=5))
        body = click_body(app_client.slack_id("bob"), "approve_extension", rid, block_id=buttons[0]["block_id"])
        assert app_client._post("/slack/interactions", body).status == 200

        req = store.get(rid)
        assert req.extension.state == "applied" and req.expires_at.isoformat() == "2026-11-12T17:02:15+00:00"
        new_versions, new_doc = grant_document(iam, rid)
        assert len(new_versions) == 1 and new_versions != versions  # the old version is gone
        assert new_doc["Statement"][0]["Condition"] == {
            "DateLessThan": {"aws:CurrentTime": "2026-11-12T17:02:15Z"},
            "Bool": {"aws:MultiFactorAuthPresent": "true"}}
        assert new_doc["Statement"][0]["Resource"] == PROD_ADMIN
        (dm,) = slack.find(event_type="access_extended")
        assert dm.metadata["event_payload"] == {
            "request_id": rid, "old_expires_at": "2026-11-12T16:02:15Z", "expires_at": "2026-11-12T17:02:15Z",
            "approvers": ["bob"]}
        assert assume(stack, "alice").startswith("arn:aws:sts::222222222222:assumed-role/admin/alice")

        clock.move_to(T0 + timedelta(hours=2, minutes=10))  # past the old expiry
        app_client.sweep()
        assert store.get(rid).grant_status is GrantStatus.ACTIVE
        assert assume(stack, "alice").startswith("arn:aws:sts::222222222222:assumed-role/admin/alice")

        clock.move_to(T0 + timedelta(hours=3, minutes=3))  # past the new one
        app_client.sweep()
        assert store.get(rid).grant_status is GrantStatus.EXPIRED
        assert iam.list_attached_user_policies(UserName="alice")["AttachedPolicies"] == []
        assert assume(stack, "alice") == "AccessDenied"
