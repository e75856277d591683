"""on_activity through chalice.test.Client against moto and the Slack stand-in: realistic
CloudTrail write events (tests/fixtures/activity/) by alice's admin and read-only
sessions and by an application role that must be ignored.

Story (2026-11-12 UTC): alice holds prod/admin from 14:02:15 for 2 h (bob and carol
approve) and prod/readonly from 14:20 for 1 h (bob approves); she runs an instance, opens
a bucket to the dev account, creates an access key for deploy-bot and replaces a KMS key
policy as admin, and tries to terminate the instance as readonly (denied).
"""

from __future__ import annotations

import copy
import re
from datetime import datetime, timedelta, timezone

import pytest
import time_machine

from tests.fixtures import load_activity

APPROVALS = "C0APPROVE1"
SECURITY = "C0SECURIT1"
T_REQUEST = datetime(2026, 11, 12, 14, 0, 0, tzinfo=timezone.utc)
DURING = datetime(2026, 11, 12, 14, 30, tzinfo=timezone.utc)
ADMIN_CALLS = ["ec2_run_instances_admin", "s3_put_bucket_policy_admin", "iam_create_access_key_admin",
               "kms_put_key_policy_admin"]


def _request(app_client, person: str, text: str) -> str:
    return re.search(r"req-\d{8}-[0-9a-f]{6}", app_client.command(person, text).text).group(0)


@pytest.fixture
def grants(app_client):
    """(admin request id, readonly request id)."""
    with time_machine.travel(T_REQUEST, tick=False) as clock:
        admin = _request(app_client, "alice", "prod admin 2h fix incident 4521")
        clock.move_to(T_REQUEST + timedelta(minutes=2))
        app_client.approve("bob", admin)
        clock.move_to(T_REQUEST + timedelta(minutes=2, seconds=15))
        app_client.approve("carol", admin)
        clock.move_to(T_REQUEST + timedelta(minutes=19))
        readonly = _request(app_client, "alice", "prod readonly 1h look at the instance")
        clock.move_to(T_REQUEST + timedelta(minutes=20))
        app_client.approve("bob", readonly)
    return admin, readonly


def invoke(app_client, event, at: datetime = DURING) -> dict:
    with time_machine.travel(at, tick=False):
        return app_client.client.lambda_.invoke("on_activity", event).payload


def sweep(app_client, at: datetime):
    with time_machine.travel(at, tick=False):
        return app_client.sweep()


def thread(slack, request_id: str, event_type: str | None = None) -> list:
    card = next(m for m in slack.messages(APPROVALS) if m.ts and m.thread_ts is None
                and (m.event_payload or {}).get("request_id") == request_id)
    return [m for m in slack.messages(APPROVALS) if m.thread_ts == card.ts
            and (event_type is None or m.event_type == event_type)]


def test_each_call_is_counted_under_its_grant_and_notable_ones_told_once(app_client, slack, store, grants):
    admin, readonly = grants
    outcomes = [invoke(app_client, load_activity(n)) for n in ADMIN_CALLS]
    assert [o["kind"] for o in outcomes] == ["counted"] * 4
    assert {o["request_id"] for o in outcomes} == {admin}
    denied = invoke(app_client, load_activity("ec2_terminate_instances_readonly_denied"))
    assert denied["kind"] == "counted" and denied["request_id"] == readonly
    ignored = invoke(app_client, load_activity("ssm_put_parameter_app_role"))
    assert ignored["kind"] == "ignored" and ignored["request_id"] is None

    tally = store.activity(admin)
    assert tally["calls"] == 4 and tally["failed"] == 0
    assert tally["services"] == {"ec2": 1, "s3": 1, "iam": 1, "kms": 1}
    assert tally["actions"] == {"ec2:RunInstances": 1, "s3:PutBucketPolicy": 1, "iam:CreateAccessKey": 1,
                                "kms:PutKeyPolicy": 1}
    assert (tally["first"], tally["last"]) == ("2026-11-12T14:10:11Z", "2026-11-12T14:20:45Z")
    assert [n["action"] for n in tally["notable"]] == ["s3:PutBucketPolicy", "iam:CreateAccessKey",
                                                       "kms:PutKeyPolicy"]
    ro = store.activity(readonly)
    assert ro["calls"] == 1 and ro["failed"] == 1 and ro["actions"] == {"ec2:TerminateInstances": 1}

    notable = thread(slack, admin, "grant_notable")
    assert [m.event_payload["event_name"] for m in notable] == ["PutBucketPolicy", "CreateAccessKey", "PutKeyPolicy"]
    key = next(m for m in notable if m.event_payload["event_name"] == "CreateAccessKey")
    assert key.event_payload == {
        "request_id": admin, "event_id": load_activity("iam_create_access_key_admin")["detail"]["eventID"],
        "event_name": "CreateAccessKey", "service": "iam", "summary": "IAM access key created",
        "event_time": "2026-11-12T14:15:02Z", "failed": False}
    assert "iam:CreateAccessKey" in key.text and "14:15:02" in key.text and "alice" in key.text
    assert thread(slack, readonly, "grant_notable") == []
    assert slack.messages(SECURITY) == []  # activity is told on the card, not as alerts


def test_a_redelivered_call_changes_nothing(app_client, slack, store, grants):
    admin, _ = grants
    for name in ADMIN_CALLS:
        invoke(app_client, load_activity(name))
    before, posts = store.activity(admin), len(thread(slack, admin))
    again = [invoke(app_client, copy.deepcopy(load_activity(n)), at=DURING + timedelta(minutes=3)) for n in ADMIN_CALLS]
    assert [o["kind"] for o in again] == ["duplicate"] * 4
    assert store.activity(admin) == before
    assert len(thread(slack, admin)) == posts


def test_a_call_no_grant_covers_is_not_counted(app_client, store, grants):
    admin, _ = grants
    late = load_activity("ec2_run_instances_admin")
    late["detail"]["eventTime"] = late["time"] = "2026-11-12T17:10:11Z"  # the grant ended at 16:02:15
    assert invoke(app_client, late, at=datetime(2026, 11, 12, 17, 12, tzinfo=timezone.utc))["kind"] == "no_grant"
    assert store.activity(admin) is None


def test_a_forged_envelope_is_refused(app_client, store, grants):
    admin, _ = grants
    forged = load_activity("kms_put_key_policy_admin")
    forged["account"] = "333333333333"  # dev puts an event about prod on the bastion bus
    assert invoke(app_client, forged)["kind"] == "ignored"
    assert store.activity(admin) is None


def test_an_account_cannot_report_calls_of_another_accounts_role(app_client, store, grants):
    """dev's own record (envelope and recipientAccountId agree), naming prod's role and a
    prod session: the call's account must be the envelope's."""
    admin, _ = grants
    forged = load_activity("kms_put_key_policy_admin")
    forged["account"] = forged["detail"]["recipientAccountId"] = "333333333333"
    out = invoke(app_client, forged)
    assert out["kind"] == "ignored" and "not the envelope account" in out["reason"]
    assert store.activity(admin) is None


def test_a_custom_source_cannot_be_counted(app_client, store, slack, grants):
    """Anybody allowed to PutEvents on the bastion bus can send any detail, but not with an
    "aws." source: such an event is not a call."""
    admin, _ = grants
    forged = {**load_activity("iam_create_access_key_admin"), "source": "forge.me"}
    assert invoke(app_client, forged)["kind"] == "ignored"
    assert store.activity(admin) is None and thread(slack, admin, "grant_notable") == []


def test_the_digest_comes_once_after_the_grant_ends_and_settles(app_client, slack, store, grants):
    admin, readonly = grants
    for name in ADMIN_CALLS:
        invoke(app_client, load_activity(name))
    sweep(app_client, datetime(2026, 11, 12, 16, 3, tzinfo=timezone.utc))  # the admin grant expires
    assert store.get(admin).grant_status.value == "EXPIRED"
    sweep(app_client, datetime(2026, 11, 12, 16, 10, tzinfo=timezone.utc))
    assert thread(slack, admin, "grant_activity") == []  # CloudTrail may still deliver calls
    with time_machine.travel(datetime(2026, 11, 12, 16, 10, tzinfo=timezone.utc), tick=False):
        listing = app_client.command("alice", "list").text
    assert "not delivered yet" not in listing  # the owed digest is not a message she waits for
    late = load_activity("ec2_run_instances_admin")
    late["detail"]["eventID"] = "e7e70000-0000-4000-8000-000000000199"
    late["detail"]["eventTime"] = late["time"] = "2026-11-12T16:01:50Z"  # made in time, delivered late
    assert invoke(app_client, late, at=datetime(2026, 11, 12, 16, 11, tzinfo=timezone.utc))["kind"] == "counted"
    for minute in (20, 21, 30):
        sweep(app_client, datetime(2026, 11, 12, 16, minute, tzinfo=timezone.utc))
    (digest,) = thread(slack, admin, "grant_activity")
    payload = digest.event_payload
    assert payload["request_id"] == admin and payload["calls"] == 5 and payload["final"] is True
    assert payload["services"] == {"ec2": 2, "iam": 1, "kms": 1, "s3": 1}
    assert [n["action"] for n in payload["notable"]] == ["s3:PutBucketPolicy", "iam:CreateAccessKey",
                                                         "kms:PutKeyPolicy"]
    assert "5 write calls" in digest.text and "14:10–16:01 UTC" in digest.text and "ec2 2" in digest.text
    assert "never used" not in digest.text


def test_a_grant_nothing_was_done_with_says_never_used(app_client, slack, grants):
    admin, readonly = grants
    sweep(app_client, datetime(2026, 11, 12, 15, 21, tzinfo=timezone.utc))  # readonly ends at 15:20
    sweep(app_client, datetime(2026, 11, 12, 15, 40, tzinfo=timezone.utc))
    (digest,) = thread(slack, readonly, "grant_activity")
    assert digest.event_payload["calls"] == 0 and digest.event_payload["notable"] == []
    assert "never used" in digest.text
    assert thread(slack, admin, "grant_activity") == []  # still live


# --------------------------------------------------------------------------- /aws-access activity


def test_activity_command_answers_the_requester_and_the_approvers(app_client, grants):
    admin, readonly = grants
    for name in ADMIN_CALLS:
        invoke(app_client, load_activity(name))
    with time_machine.travel(DURING + timedelta(minutes=1), tick=False):
        mine = app_client.command("alice", f"activity {admin}").text
        bobs = app_client.command("bob", f"activity {admin}").text
        untouched = app_client.command("carol", f"activity {readonly}").text
    assert mine == bobs
    assert mine.startswith(f"`{admin}` (`prod/admin`): Activity under this grant so far: 4 write calls")
    for needed in ("ec2 1", "iam 1", "kms 1", "s3 1", "iam:CreateAccessKey: IAM access key created"):
        assert needed in mine, needed
    assert "Activity under this grant so far: never used" in untouched  # carol approves readonly too


def test_activity_command_answers_the_security_channels_members(app_client, slack, grants):
    admin, _ = grants
    invoke(app_client, load_activity("kms_put_key_policy_admin"))
    slack.set_channel_members(SECURITY, [app_client.slack_id("dave"), "U0AWSBOT01"])
    with time_machine.travel(DURING, tick=False):
        answer = app_client.command("dave", f"activity {admin}").text  # not an approver of prod/admin
    assert "1 write call" in answer and "kms:PutKeyPolicy: KMS key policy replaced" in answer


def test_activity_command_refuses_everybody_else(app_client, slack, grants):
    admin, _ = grants
    invoke(app_client, load_activity("kms_put_key_policy_admin"))
    slack.set_channel_members(SECURITY, ["U0AWSBOT01", app_client.slack_id("bob")])  # not dave
    with time_machine.travel(DURING, tick=False):
        refused = app_client.command("dave", f"activity {admin}").text
        unknown = app_client.command("alice", "activity req-20261112-abcdef").text
        bad = app_client.command("alice", "activity nonsense").text
    assert refused.startswith("Only the requester, the approvers of `prod/admin` and the security channel's members")
    assert "kms" not in refused and "PutKeyPolicy" not in refused
    assert unknown == "unknown request `req-20261112-abcdef` (see `/aws-access list`)"
    assert "is not a request id" in bad


def test_activity_command_refuses_when_slack_cannot_say_who_is_in_the_channel(app_client, grants):
    admin, _ = grants  # the stand-in has no members for the channel: channel_not_found
    with time_machine.travel(DURING, tick=False):
        refused = app_client.command("dave", f"activity {admin}").text
    assert refused.startswith("Only the requester")


def test_the_thread_tells_the_first_notable_calls_only_and_the_tally_counts_them_all(app_client, slack, store,
                                                                                       grants):
    """A burst of notable calls (a large apply creating IAM users' keys) does not flood the
    card's thread: the first MAX_NOTABLE are told, the tally counts every one."""
    from chalicelib.activity import MAX_NOTABLE

    admin, _ = grants
    for n in range(MAX_NOTABLE + 3):
        event = load_activity("iam_create_access_key_admin")
        event["detail"]["eventID"] = f"e7e70000-0000-4000-8000-{n:012d}"
        assert invoke(app_client, event)["kind"] == "counted"
    again = load_activity("iam_create_access_key_admin")
    again["detail"]["eventID"] = f"e7e70000-0000-4000-8000-{MAX_NOTABLE + 2:012d}"  # a redelivered extra one
    assert invoke(app_client, again)["kind"] == "duplicate"
    assert len(thread(slack, admin, "grant_notable")) == MAX_NOTABLE
    assert store.activity(admin)["notable_count"] == MAX_NOTABLE + 3
