"""Issue 15 through the HTTP app and the real adapters on moto (in-process, IAM
authentication on): when a grant ends, the deny lands in the target role's cut-off policy
in the member account, written through that account's revoker role (local/seed.py gives
it the member template's permissions).

moto does not evaluate ``aws:TokenIssueTime`` or ``aws:userid``, so what the document
denies is judged with the small evaluator of tests/unit/test_cutoff.py; what is tested
here is that the document IAM holds is the right one: the member role's unique id (read in
the member account, not a bastion id), the person's session name, and the end.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import time_machine

from chalicelib import cutoff
from chalicelib.domain.model import GrantStatus, iso_z
from chalicelib.domain.timing import IAM_SETTLE
from tests.app.test_lifecycle import PROD_ADMIN, T0, request_id_from
from tests.unit.test_cutoff import denied

MEMBER = "222222222222"


def member_policy(stack, role: str = "admin") -> tuple[str, dict, int]:
    """(the role's unique id, its cut-off policy's default document, how many versions), as
    the member account's revoker reads them."""
    import boto3

    from local.seed import REVOKER_ROLE, client

    creds = client("sts", keys=stack.service).assume_role(
        RoleArn=f"arn:aws:iam::{MEMBER}:role/{REVOKER_ROLE}", RoleSessionName="test")["Credentials"]
    iam = boto3.client("iam", region_name="us-east-1", aws_access_key_id=creds["AccessKeyId"],
                       aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    arn = f"arn:aws:iam::{MEMBER}:policy/drawbridge/{cutoff.cutoff_policy_name(role)}"
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    default = next(v["VersionId"] for v in versions if v["IsDefaultVersion"])
    doc = iam.get_policy_version(PolicyArn=arn, VersionId=default)["PolicyVersion"]["Document"]
    return iam.get_role(RoleName=role)["Role"]["RoleId"], json.loads(doc) if isinstance(doc, str) else doc, \
        len(versions)


def grant(app_client, clock, person: str = "alice") -> str:
    rid = request_id_from(app_client.command(person, "prod admin 2h fixing incident 4521").text)
    clock.shift(timedelta(minutes=2))
    app_client.approve("bob", rid)
    clock.shift(timedelta(seconds=15))
    app_client.approve("carol", rid)
    return rid


def test_expiry_writes_the_deny_in_the_member_account(app_client, stack, slack, store):
    from moto.core import enable_iam_authentication

    with time_machine.travel(T0, tick=False) as clock, enable_iam_authentication():
        rid = grant(app_client, clock)
        expires = store.get(rid).expires_at
        assert member_policy(stack)[1] == cutoff.document([])  # the template's placeholder

        clock.move_to(expires + timedelta(seconds=30))
        app_client.sweep()

        req = store.get(rid)
        assert req.grant_status is GrantStatus.EXPIRED and req.sessions_cut_at is not None
        role_id, doc, versions = member_policy(stack)
        assert role_id.startswith("AROA") and versions == 2
        assert doc == {"Version": "2012-10-17", "Statement": [{
            "Sid": "Cut" + rid.replace("-", ""), "Effect": "Deny", "Action": "*", "Resource": "*",
            "Condition": {"StringEquals": {"aws:userid": f"{role_id}:alice"},
                          "DateLessThan": {"aws:TokenIssueTime": iso_z(expires + timedelta(seconds=1))}}}]}
        assert denied(doc, f"{role_id}:alice", expires - timedelta(minutes=1))
        assert not denied(doc, f"{role_id}:dave", expires - timedelta(minutes=1))
        (told,) = slack.find(event_type="access_cut")
        assert told.metadata["event_payload"]["request_id"] == rid


def test_revoke_writes_the_deny_from_the_detach_and_keeps_the_earlier_one(app_client, stack, slack, store):
    from moto.core import enable_iam_authentication

    with time_machine.travel(T0, tick=False) as clock, enable_iam_authentication():
        first = grant(app_client, clock, "dave")
        second = grant(app_client, clock)
        clock.shift(timedelta(minutes=10))
        assert app_client.command("dave", f"revoke {first}").status == 200
        clock.shift(timedelta(minutes=1))
        revoked_at = datetime.now(timezone.utc)
        assert app_client.command("alice", f"revoke {second}").status == 200

        role_id, doc, _ = member_policy(stack)
        assert [s["Sid"] for s in doc["Statement"]] == ["Cut" + first.replace("-", ""),
                                                          "Cut" + second.replace("-", "")]
        bound = doc["Statement"][1]["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
        assert bound == iso_z(store.get(second).cut_before + timedelta(seconds=1))
        assert store.get(second).cut_before == revoked_at + IAM_SETTLE  # the clock stands still here
        assert denied(doc, f"{role_id}:alice", store.get(second).granted_at + timedelta(minutes=1))
        assert denied(doc, f"{role_id}:dave", store.get(first).granted_at + timedelta(minutes=1))
        card = slack.get(*store.card(second))
        assert "live sessions ended at" in card.all_text()
