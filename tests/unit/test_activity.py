"""The pure half of grant activity: parsing a write call, the notable list, the tally and
its digest (chalicelib/activity/)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib.activity import add, digest_payload, digest_text, notable, parse_call
from chalicelib.activity.tally import MAX_ACTIONS, MAX_NOTABLE
from tests.fixtures import activity_names, load_activity


def test_parse_reads_who_what_and_when():
    call = parse_call(load_activity("iam_create_access_key_admin"))
    assert (call.role_arn, call.session_name, call.account_id) == (
        "arn:aws:iam::222222222222:role/admin", "alice", "222222222222")
    assert (call.key, call.failed, call.notable) == ("iam:CreateAccessKey", False, "IAM access key created")
    assert call.event_time == datetime(2026, 11, 12, 14, 15, 2, tzinfo=timezone.utc)


def test_parse_keeps_a_denied_write_as_a_failed_attempt():
    call = parse_call(load_activity("ec2_terminate_instances_readonly_denied"))
    assert call.role_arn.endswith(":role/readonly") and call.failed
    assert call.error_code == "Client.UnauthorizedOperation" and call.notable is None


@pytest.mark.parametrize("name", activity_names())
def test_every_fixture_parses(name):
    assert parse_call(load_activity(name)) is not None


def _edit(name, **detail):
    event = load_activity(name)
    event["detail"].update(detail)
    return event


@pytest.mark.parametrize("event", [
    _edit("ec2_run_instances_admin", readOnly=True),
    _edit("ec2_run_instances_admin", managementEvent=False),
    _edit("ec2_run_instances_admin", eventID=None),
    _edit("ec2_run_instances_admin", eventTime="yesterday"),
    _edit("ec2_run_instances_admin", userIdentity={"type": "IAMUser", "arn": "arn:aws:iam::222222222222:user/x"}),
    {**load_activity("ec2_run_instances_admin"), "source": "aws.sts"},
    None, "text", {},
], ids=["read-only", "data", "no-event-id", "bad-time", "iam-user", "sts", "none", "str", "empty"])
def test_parse_refuses_what_is_not_a_role_sessions_write(event):
    assert parse_call(event) is None


def test_parse_refuses_a_session_of_another_role_than_its_issuer():
    event = load_activity("kms_put_key_policy_admin")
    event["detail"]["userIdentity"]["arn"] = "arn:aws:sts::222222222222:assumed-role/orders-service/alice"
    assert parse_call(event) is None


@pytest.mark.parametrize("source, name, params, label", [
    ("iam.amazonaws.com", "CreateAccessKey", None, "IAM access key created"),
    ("iam.amazonaws.com", "TagRole", None, "IAM change"),
    ("organizations.amazonaws.com", "LeaveOrganization", None, "Organizations change"),
    ("kms.amazonaws.com", "PutKeyPolicy", None, "KMS key policy replaced"),
    ("kms.amazonaws.com", "Encrypt", None, None),
    ("cloudtrail.amazonaws.com", "StopLogging", None, "CloudTrail change"),
    ("events.amazonaws.com", "DisableRule", None, "EventBridge rule disabled"),
    ("s3.amazonaws.com", "PutBucketPolicy", None, "S3 bucket policy replaced"),
    ("guardduty.amazonaws.com", "DeleteDetector", None, "GuardDuty detector deleted"),
    ("config.amazonaws.com", "StopConfigurationRecorder", None, "AWS Config recorder stopped"),
    ("ec2.amazonaws.com", "RunInstances", None, None),
    ("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress",
     {"groupId": "sg-1", "ipPermissions": {"items": [{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                                                       "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]}},
     "security group opened to the internet"),
    ("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress",
     {"groupId": "sg-1", "ipPermissions": {"items": [{"ipv6Ranges": {"items": [{"cidrIpv6": "::/0"}]}}]}},
     "security group opened to the internet"),
    ("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress",
     {"groupId": "sg-1", "ipPermissions": {"items": [{"ipRanges": {"items": [{"cidrIp": "10.0.0.0/8"}]}}]}}, None),
])
def test_the_notable_list(source, name, params, label):
    assert notable(source, name, params) == label


def _call(name="ec2_run_instances_admin", **detail):
    return parse_call(_edit(name, **detail))


def test_tally_counts_keeps_first_and_last_whatever_the_order():
    t = add(None, _call(eventTime="2026-11-12T14:30:00Z"))
    t = add(t, _call(eventTime="2026-11-12T14:10:00Z", eventID="e2"))
    t = add(t, _call("iam_create_access_key_admin", eventTime="2026-11-12T14:20:00Z"))
    assert (t["calls"], t["first"], t["last"]) == (3, "2026-11-12T14:10:00Z", "2026-11-12T14:30:00Z")
    assert t["services"] == {"ec2": 2, "iam": 1} and t["actions"] == {"ec2:RunInstances": 2, "iam:CreateAccessKey": 1}
    assert t["notable_count"] == 1 and t["notable"][0]["label"] == "IAM access key created"


def test_tally_stays_compact():
    t = None
    for i in range(MAX_ACTIONS + 10):
        t = add(t, _call(eventName=f"Action{i:03d}", eventID=f"e{i}"))
    for i in range(MAX_NOTABLE + 5):
        t = add(t, _call("iam_create_access_key_admin", eventID=f"n{i}"))
    assert len(t["actions"]) == MAX_ACTIONS + 1 and t["actions"]["other"] == 10 + MAX_NOTABLE + 5
    assert len(t["notable"]) == MAX_NOTABLE and t["notable_count"] == MAX_NOTABLE + 5
    assert t["services"] == {"ec2": MAX_ACTIONS + 10, "iam": MAX_NOTABLE + 5}
    assert f"… and 5 more" in digest_text(digest_payload("req-20261112-000001", t, final=True))


def test_digest_says_never_used_and_so_far():
    assert digest_text(digest_payload("r", None, final=True)) == \
        "Activity under this grant: never used (no write calls recorded; reads are not tracked)."
    t = add(None, parse_call(load_activity("ec2_terminate_instances_readonly_denied")))
    text = digest_text(digest_payload("r", t, final=False))
    assert text.startswith("Activity under this grant so far: 1 write call (1 failed), 14:25–14:25 UTC")
    assert "No notable actions." in text
