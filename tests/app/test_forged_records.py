"""Writing to the table is not enough to get a grant.

Anyone with dynamodb:PutItem on the table (the internet-facing API handler's role, the
CloudTrail handler's role) could put a GRANTING record there; the sweep retries every
GRANTING record. The grant step re-derives everything from the catalog and the audit
trail at that moment, so a forged or altered record becomes FAILED, nothing is attached
in IAM, and #security is told.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime, timedelta, timezone

import pytest
import time_machine

from chalicelib.adapters.store import event_item, request_item
from chalicelib.domain.model import Approval, GrantStatus, Principal, Request, RequestStatus, event_for
from local.seed import client as aws
from tests.conftest import TABLE

T0 = datetime(2026, 11, 12, 14, 0, tzinfo=timezone.utc)
RID = "req-20261112-f0f0f0"


def honest(**changes) -> Request:
    """A GRANTING record exactly as Drawbridge's approval path writes it (alice, prod/readonly,
    approved by carol at 14:01 for 1h), with ``changes`` made by the forger."""
    req = Request(
        request_id=RID, requester="alice", requester_slack="U0ALICE001", principal=Principal.iam_user("alice"),
        account="prod", account_id="222222222222", role="readonly",
        role_arn="arn:aws:iam::222222222222:role/readonly", production=True, duration_seconds=3600,
        approvals_required=1, created_at=T0, pending_until=T0 + timedelta(hours=1), reason="forged",
        status=RequestStatus.APPROVED, grant_status=GrantStatus.GRANTING,
        approvals=(Approval("carol", T0 + timedelta(minutes=1)),), decided_by="carol",
        decided_at=T0 + timedelta(minutes=1), expires_at=T0 + timedelta(hours=1, minutes=1), version=3)
    return dataclasses.replace(req, **changes)


def put(stack, req: Request, approvers=("carol",)) -> None:
    """What a forger with PutItem writes: the record, and (if they bother) audit events that
    agree with it - a ``requested`` event and one ``approved`` event per approver, the last
    one ending where the record is (version and state)."""
    db = aws("dynamodb", keys=stack.service)
    if approvers:
        req = dataclasses.replace(req, version=1 + len(approvers))
    db.put_item(TableName=TABLE, Item=request_item(req))
    asked = dataclasses.replace(req, version=1, status=RequestStatus.PENDING, grant_status=GrantStatus.NONE)
    db.put_item(TableName=TABLE, Item=event_item(event_for(None, asked, at=T0, actor=req.requester,
                                                            action="requested")))
    for seq, who in enumerate(approvers, start=2):
        before = dataclasses.replace(req, version=seq - 1, status=RequestStatus.PENDING, grant_status=GrantStatus.NONE)
        event = event_for(before, dataclasses.replace(req, version=seq), at=T0, actor=who, action="approved")
        db.put_item(TableName=TABLE, Item=event_item(event))


def sweep(app_client, minutes: int = 5):
    with time_machine.travel(T0 + timedelta(minutes=minutes), tick=False):
        return app_client.sweep().payload


def grant_job(app_client, minutes: int = 5):
    """The worker running the grant job for RID (as after an approval, or a sweep retry)."""
    with time_machine.travel(T0 + timedelta(minutes=minutes), tick=False):
        return app_client.client.lambda_.invoke(
            "worker", {"jobs": [{"job": "grant", "request_id": RID}], "correlation_id": "t"}).payload


def attached(stack) -> dict[str, list[str]]:
    iam = aws("iam", keys=stack.service)
    return {u: [p["PolicyName"] for p in iam.list_attached_user_policies(UserName=u)["AttachedPolicies"]]
            for u in ("alice", "bob", "carol", "dave")}


def test_an_honest_record_is_granted(app_client, stack, store):
    """The control: the same record, untouched, does become a grant (here by the sweep's
    retry of a GRANTING record, the path a forger would count on)."""
    put(stack, honest())
    assert sweep(app_client)["retried"] == 1
    assert store.get(RID).grant_status is GrantStatus.ACTIVE
    assert attached(stack)["alice"] == [f"drawbridge-{RID}"]


@pytest.mark.parametrize("forged, approvers, why", [
    pytest.param(dict(role_arn="arn:aws:iam::222222222222:role/OrganizationAccountAccessRole"), ("carol",),
                 "is not the catalog's", id="any-role-arn"),
    pytest.param(dict(expires_at=datetime(2099, 1, 1, tzinfo=timezone.utc)), ("carol",),
                 "expiry is later than prod/readonly allows", id="expiry-2099"),
    pytest.param(dict(duration_seconds=10 * 86400, expires_at=T0 + timedelta(days=10)), ("carol",),
                 "expiry is later than prod/readonly allows", id="longer-than-the-role-allows"),
    pytest.param(dict(principal=Principal.iam_user("dave")), ("carol",), "grantee", id="someone-else-gets-it"),
    pytest.param(dict(approvals=(Approval("dave", T0),), decided_by="dave"), ("dave",),
                 "0 of 1 approvals count", id="approved-by-a-non-approver"),
    pytest.param({}, (), "not where its audit trail left it", id="approvals-without-an-audit-trail"),
    pytest.param(dict(requester="carol", requester_slack="U0CAROL001", principal=Principal.iam_user("carol"),
                      approvals=(Approval("carol", T0),)), ("carol",), "0 of 1 approvals count",
                 id="self-approval-not-allowed"),
    pytest.param(dict(decided_at=T0 + timedelta(days=400), expires_at=T0 + timedelta(days=400, hours=1)), ("carol",),
                 "approval time is not between its creation and now", id="approved-in-the-future"),
    pytest.param(dict(account="sandbox", role="admin"), ("carol",), "is not in the catalog", id="unknown-role"),
])
def test_a_forged_granting_record_never_becomes_a_grant(app_client, stack, slack, store, forged, approvers, why):
    put(stack, honest(**forged), approvers)
    grant_job(app_client)
    req = store.get(RID)
    assert req.grant_status is GrantStatus.FAILED and why in req.note, req.note
    assert attached(stack) == {"alice": [], "bob": [], "carol": [], "dave": []}
    assert aws("iam", keys=stack.service).list_policies(Scope="Local", PathPrefix="/drawbridge/")["Policies"] == []
    (notice,) = [m for m in slack.messages("C0SECURIT1") if m.event_type == "grant_failed"]
    assert RID in notice.text and "refused" in notice.text


def test_an_existing_policy_with_another_document_is_not_reused(app_client, stack, slack, store):
    """A policy already under the grant's name (made by hand, or by someone who can write to
    IAM) with a wider document must not be attached as if it were the grant."""
    iam = aws("iam", keys=stack.service)
    wide = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}
    iam.create_policy(PolicyName=f"drawbridge-{RID}", Path="/drawbridge/", PolicyDocument=json.dumps(wide))
    put(stack, honest())
    sweep(app_client)
    req = store.get(RID)
    assert req.grant_status is GrantStatus.FAILED and "another document" in req.note
    assert attached(stack)["alice"] == []
    assert [m for m in slack.messages("C0SECURIT1") if m.event_type == "grant_failed"]


def test_a_retried_grant_reuses_its_own_policy(app_client, stack, store):
    """The comparison does not break idempotency: the grant's own document is reused."""
    from chalicelib import policy as pol

    req = honest()
    iam = aws("iam", keys=stack.service)
    iam.create_policy(PolicyName=f"drawbridge-{RID}", Path="/drawbridge/",
                      PolicyDocument=pol.render(pol.grant_policy(req.role_arn, req.expires_at, RID)))
    put(stack, req)
    sweep(app_client)
    assert store.get(RID).grant_status is GrantStatus.ACTIVE
    assert attached(stack)["alice"] == [f"drawbridge-{RID}"]


def assumption_at(at: datetime) -> dict:
    from local.events import refresh_cloudtrail
    from tests.fixtures import load_cloudtrail

    event = refresh_cloudtrail(load_cloudtrail("assume_role_bastion_copy"), at=at)
    event["detail"]["requestParameters"]["roleArn"] = "arn:aws:iam::222222222222:role/readonly"
    event["detail"]["resources"] = [{"accountId": "222222222222", "type": "AWS::IAM::Role",
                                     "ARN": "arn:aws:iam::222222222222:role/readonly"}]
    return event


@pytest.mark.parametrize("forged, kind", [
    pytest.param({}, "covered", id="honest-record-covers"),
    pytest.param(dict(approvals=(Approval("dave", T0),), decided_by="dave"), "uncovered",
                 id="approved-by-a-non-approver"),
    pytest.param(dict(expires_at=datetime(2099, 1, 1, tzinfo=timezone.utc)), "uncovered", id="expiry-2099"),
])
def test_a_forged_active_record_cannot_make_an_assumption_look_covered(app_client, stack, slack, forged, kind):
    """A standing permission plus a forged ACTIVE record must still raise NO APPROVED GRANT."""
    at = T0 + timedelta(minutes=30)
    put(stack, honest(grant_status=GrantStatus.ACTIVE, granted_at=T0 + timedelta(minutes=1), **forged))
    with time_machine.travel(at + timedelta(minutes=2), tick=False):
        out = app_client.client.lambda_.invoke("on_role_assumed", assumption_at(at)).payload
    assert out["kind"] == kind
