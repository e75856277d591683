"""on_role_assumed through chalice.test.Client with every CloudTrail fixture.

Story (fixture times, 2026-11-12 UTC): alice's prod/admin grant is approved at
14:02:15 for 2h; CloudTrail events then arrive and must each produce exactly the
right alert in the security channel, or none.
"""

from __future__ import annotations

import copy
import re
from datetime import datetime, timedelta, timezone

import pytest
import time_machine

from tests.fixtures import cloudtrail_names, load_cloudtrail

SECURITY = "C0SECURIT1"
T_REQUEST = datetime(2026, 11, 12, 14, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def granted(app_client, slack):
    """alice holds prod/admin from 14:02:15 to 16:02:15 (approved by bob and carol)."""
    with time_machine.travel(T_REQUEST, tick=False) as clock:
        reply = app_client.command("alice", "prod admin 2h fix incident 4521")
        rid = re.search(r"req-\d{8}-[0-9a-f]{6}", reply.text).group(0)
        clock.move_to(T_REQUEST + timedelta(minutes=2))
        app_client.approve("bob", rid)
        clock.move_to(T_REQUEST + timedelta(minutes=2, seconds=15))
        app_client.approve("carol", rid)
    return rid


def invoke(app_client, event, at: datetime | None = None):
    with time_machine.travel(at or datetime(2026, 11, 12, 14, 5, tzinfo=timezone.utc), tick=False):
        return app_client.client.lambda_.invoke("on_role_assumed", event).payload


def alerts(slack):
    return slack.messages(SECURITY)


def test_covered_assumption_names_the_grant_and_threads_on_the_card(app_client, slack, granted, store):
    out = invoke(app_client, load_cloudtrail("assume_role_bastion_copy"))
    assert out["kind"] == "covered" and out["request_id"] == granted
    (alert,) = alerts(slack)
    assert alert.event_type == "role_assumed"
    payload = alert.metadata["event_payload"]
    assert {k: payload[k] for k in ("account", "role", "role_arn", "iam_user", "request_id")} == {
        "account": "prod", "role": "admin", "role_arn": "arn:aws:iam::222222222222:role/admin",
        "iam_user": "alice", "request_id": granted}
    text = alert.all_text()
    for needed in (granted, "fix incident 4521", "bob", "carol", "203.0.113.", "14:03:07"):
        assert needed in text, needed
    assert "NO APPROVED GRANT" not in text
    card = slack.find(event_type="access_granted", channel="C0APPROVE1")[0]
    replies = [m for m in slack.messages("C0APPROVE1") if m.thread_ts == card.ts]
    assert len(replies) == 1 and replies[0].text.startswith("first used at 14:03 UTC")
    assert replies[0].event_type == "grant_used"
    assert replies[0].event_payload["request_id"] == granted
    assert [u["event_id"] for u in store.uses(granted)] == [load_cloudtrail("assume_role_bastion_copy")["detail"]["eventID"]]


def test_both_copies_and_redelivery_give_exactly_one_alert(app_client, slack, granted):
    bastion, owner = load_cloudtrail("assume_role_bastion_copy"), load_cloudtrail("assume_role_prod_copy")
    assert invoke(app_client, owner)["request_id"] == granted  # the role owner's copy arrives first
    assert invoke(app_client, bastion)["duplicate"] is True
    assert invoke(app_client, copy.deepcopy(owner))["duplicate"] is True  # EventBridge redelivery
    assert len(alerts(slack)) == 1


def test_no_grant_is_a_loud_alert_with_null_request_id(app_client, slack):
    out = invoke(app_client, load_cloudtrail("assume_role_bastion_copy"))
    assert out["kind"] == "uncovered" and out["request_id"] is None
    (alert,) = alerts(slack)
    assert alert.metadata["event_payload"]["request_id"] is None
    assert "NO APPROVED GRANT" in alert.all_text() and "<!here>" in alert.all_text()


def test_grant_for_another_role_does_not_cover(app_client, slack, granted):
    out = invoke(app_client, load_cloudtrail("assume_role_console_switch"), at=datetime(2026, 11, 12, 14, 25, tzinfo=timezone.utc))
    assert out["kind"] == "uncovered"  # alice holds prod/admin, not prod/readonly
    (alert,) = alerts(slack)
    assert alert.metadata["event_payload"]["role"] == "readonly"
    assert "console" in alert.all_text()


def test_saml_straight_into_prod_is_uncovered(app_client, slack, granted):
    out = invoke(app_client, load_cloudtrail("assume_role_with_saml_prod"), at=datetime(2026, 11, 12, 15, 6, tzinfo=timezone.utc))
    assert out["kind"] == "uncovered"
    (alert,) = alerts(slack)
    assert alert.metadata["event_payload"]["iam_user"] is None


def test_denied_attempt_is_a_quiet_notice_and_recorded(app_client, slack, store):
    event = load_cloudtrail("assume_role_denied")
    out = invoke(app_client, event, at=datetime(2026, 11, 12, 13, 59, tzinfo=timezone.utc))
    assert out["kind"] == "failed_attempt"
    (notice,) = alerts(slack)
    assert "<!here>" not in notice.all_text() and "AccessDenied" in notice.all_text()
    assert store.alert(event["detail"]["eventID"])["error_code"] == "AccessDenied"


@pytest.mark.parametrize("name", ["assume_role_dev_account", "signin_switch_role"])
def test_non_production_and_non_assumption_events_stay_quiet(app_client, slack, name):
    out = invoke(app_client, load_cloudtrail(name))
    assert out["kind"] in ("not_production", "ignored")
    assert alerts(slack) == []


def test_unknown_account_is_logged_not_alerted(app_client, slack, capsys):
    event = load_cloudtrail("assume_role_bastion_copy")
    event["detail"]["requestParameters"]["roleArn"] = "arn:aws:iam::444444444444:role/admin"
    event["detail"]["resources"] = [{"accountId": "444444444444", "type": "AWS::IAM::Role",
                                     "ARN": "arn:aws:iam::444444444444:role/admin"}]
    assert invoke(app_client, event)["kind"] == "unknown_account"
    assert alerts(slack) == []
    assert "AssumptionInUnknownAccount" in capsys.readouterr().out  # the EMF metric line


def test_late_delivery_correlates_on_event_time_not_arrival(app_client, slack, granted):
    # In the window, delivered after the grant expired and was swept: still covered.
    with time_machine.travel(datetime(2026, 11, 12, 16, 10, tzinfo=timezone.utc), tick=False):
        app_client.sweep()
    late = load_cloudtrail("assume_role_bastion_copy")
    assert invoke(app_client, late, at=datetime(2026, 11, 12, 16, 20, tzinfo=timezone.utc))["request_id"] == granted

    # Made after expiry: never covered, however it arrives.
    after = load_cloudtrail("assume_role_bastion_copy")
    after["detail"].update(eventTime="2026-11-12T16:05:00Z", eventID="0a11ce00-0000-4000-8000-00000000beef",
                           sharedEventID="5a5ed000-0000-4000-8000-00000000beef")
    out = invoke(app_client, after, at=datetime(2026, 11, 12, 16, 21, tzinfo=timezone.utc))
    assert out["kind"] == "uncovered" and out["request_id"] is None


def test_every_fixture_is_handled_without_error(app_client, slack):
    for name in cloudtrail_names():
        out = invoke(app_client, load_cloudtrail(name))
        assert out["kind"] in {"covered", "uncovered", "failed_attempt", "not_production",
                               "unknown_account", "ignored", "identity_changed",
                               "alert_path_tampered", "heartbeat"}, name


def test_call_in_the_same_second_as_the_grant_is_covered(app_client, slack, store):
    # granted_at carries microseconds; CloudTrail's eventTime only whole seconds.
    with time_machine.travel(T_REQUEST, tick=False) as clock:
        rid = re.search(r"req-\d{8}-[0-9a-f]{6}", app_client.command("alice", "prod admin 2h fix").text).group(0)
        app_client.approve("bob", rid)
        clock.move_to(datetime(2026, 11, 12, 14, 3, 7, 600000, tzinfo=timezone.utc))
        app_client.approve("carol", rid)
    assert store.get(rid).granted_at.microsecond == 600000
    event = load_cloudtrail("assume_role_bastion_copy")  # eventTime 14:03:07, the grant's own second
    assert invoke(app_client, event)["request_id"] == rid


def test_one_role_assumed_per_call_across_every_channel(app_client, slack, granted):
    """A bot counting production assumptions by metadata sees each call exactly once: the
    alert in #security is `role_assumed`, the reply in the card's thread is `grant_used`
    (the grant's first use only: every use is its own alert)."""
    bastion, owner = load_cloudtrail("assume_role_bastion_copy"), load_cloudtrail("assume_role_prod_copy")
    invoke(app_client, bastion)
    invoke(app_client, owner)  # the other copy of the same call
    later = load_cloudtrail("assume_role_bastion_copy")  # a second call, a minute later
    later["detail"].update(eventTime="2026-11-12T14:04:07Z", eventID="0a11ce00-0000-4000-8000-00000000c0de",
                           sharedEventID="5a5ed000-0000-4000-8000-00000000c0de")
    invoke(app_client, later)
    everywhere = slack.messages()
    assumed = [m for m in everywhere if m.event_type == "role_assumed"]
    used = [m for m in everywhere if m.event_type == "grant_used"]
    assert sorted(m.event_payload["event_id"] for m in assumed) == sorted(
        [bastion["detail"]["eventID"], later["detail"]["eventID"]])
    assert {m.channel for m in assumed} == {SECURITY}
    assert len(used) == 1 and all(m.thread_ts and m.event_payload["request_id"] == granted for m in used)
    assert used[0].event_payload["event_id"] == bastion["detail"]["eventID"]


# --------------------------------------------------------------------------- denied attempts, grouped

AT = datetime(2026, 11, 12, 14, 20, tzinfo=timezone.utc)  # when the events arrive


def denied_at(when: datetime, n: int, name: str = "assume_role_denied") -> dict:
    """Another denied call (its own eventID) at ``when``."""
    event = load_cloudtrail(name)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    event["time"] = event["detail"]["eventTime"] = stamp
    event["detail"]["eventID"] = f"e7e70000-0000-4000-8000-{0xd00000 + n:012x}"
    return event


def test_forty_denied_attempts_make_one_line_that_counts_them(app_client, slack, store):
    start = datetime(2026, 11, 12, 14, 2, tzinfo=timezone.utc)
    events = [denied_at(start + timedelta(seconds=10 * i), i) for i in range(40)]  # 14:02:00 .. 14:08:30
    outcomes = [invoke(app_client, e, at=AT) for e in events]

    assert [o["posted"] for o in outcomes] == [True] + [False] * 39
    assert all(o["updated"] for o in outcomes[1:])
    (line,) = alerts(slack)
    assert "denied 40 times since 14:02 UTC, last at 14:08" in line.text
    assert "<!here>" not in line.all_text() and len(line.updates) == 39  # updated in place, never re-posted
    payload = line.event_payload
    assert (payload["kind"], payload["attempts"], payload["first_event_time"], payload["last_event_time"]) == (
        "failed_attempt", 40, "2026-11-12T14:02:00Z", "2026-11-12T14:08:30Z")
    # every attempt is still its own audit record
    records = [store.alert(e["detail"]["eventID"]) for e in events]
    assert all(r is not None and r["error_code"] == "AccessDenied" for r in records)
    assert len({r["group"] for r in records}) == 1

    # A redelivery changes nothing: the per-event claim stops it before the count.
    again = invoke(app_client, copy.deepcopy(events[17]), at=AT)
    assert again["duplicate"] is True
    (line,) = alerts(slack)
    assert line.event_payload["attempts"] == 40 and len(line.updates) == 39


def test_the_next_window_the_next_role_and_the_next_caller_get_their_own_line(app_client, slack):
    invoke(app_client, denied_at(datetime(2026, 11, 12, 14, 9, 50, tzinfo=timezone.utc), 1), at=AT)
    invoke(app_client, denied_at(datetime(2026, 11, 12, 14, 10, 5, tzinfo=timezone.utc), 2), at=AT)
    other_role = denied_at(datetime(2026, 11, 12, 14, 10, 6, tzinfo=timezone.utc), 3)
    other_role["detail"]["requestParameters"]["roleArn"] = "arn:aws:iam::222222222222:role/readonly"
    other_role["detail"]["errorMessage"] = other_role["detail"]["errorMessage"].replace("role/admin", "role/readonly")
    invoke(app_client, other_role, at=AT)
    bob = denied_at(datetime(2026, 11, 12, 14, 10, 7, tzinfo=timezone.utc), 4)
    bob["detail"]["userIdentity"].update(userName="bob", arn="arn:aws:iam::111111111111:user/bob",
                                         principalId="AIDAEXAMPLEBOB0000001", accessKeyId="AKIAEXAMPLEBOB000001")
    invoke(app_client, bob, at=AT)
    lines = alerts(slack)
    assert len(lines) == 4 and all(m.event_payload["attempts"] == 1 and not m.updates for m in lines)


def test_covered_and_uncovered_assumptions_are_never_grouped(app_client, slack):
    for n, when in enumerate(["2026-11-12T14:03:07Z", "2026-11-12T14:04:07Z", "2026-11-12T14:05:07Z"]):
        event = load_cloudtrail("assume_role_bastion_copy")
        event["detail"].update(eventTime=when, eventID=f"0a11ce00-0000-4000-8000-0000000a{n:04d}",
                               sharedEventID=f"5a5ed000-0000-4000-8000-0000000a{n:04d}")
        assert invoke(app_client, event, at=AT)["posted"] is True
    lines = alerts(slack)
    assert len(lines) == 3 and all("NO APPROVED GRANT" in m.text and not m.updates for m in lines)


def test_failed_console_sign_ins_are_grouped_too(app_client, slack):
    start = datetime(2026, 11, 12, 15, 31, tzinfo=timezone.utc)
    for i in range(3):
        invoke(app_client, denied_at(start + timedelta(seconds=20 * i), i, "console_login_iam_user_failed_prod"),
               at=datetime(2026, 11, 12, 15, 35, tzinfo=timezone.utc))
    (line,) = alerts(slack)
    assert line.event_type == "production_access" and line.event_payload["attempts"] == 3
    assert "denied 3 times since 15:31 UTC, last at 15:31" in line.text and "<!here>" not in line.all_text()


# --------------------------------------------------------------------------- nothing is lost silently


RETRY = datetime(2026, 11, 12, 14, 6, 1, tzinfo=timezone.utc)  # Lambda's first async retry: a minute on


def test_a_slack_failure_makes_the_handler_raise_and_the_retry_posts_once(app_client, slack, store):
    from slack_sdk.errors import SlackApiError

    event = load_cloudtrail("assume_role_bastion_copy")
    slack.fail_next("chat.postMessage", error="fatal_error")
    with pytest.raises(SlackApiError):
        invoke(app_client, event)
    assert alerts(slack) == []  # the call is recorded (audit) but not shown yet
    # Lambda's retry (or the redrive from the on-failure destination) posts it, once.
    assert invoke(app_client, copy.deepcopy(event), at=RETRY)["posted"] is True
    assert invoke(app_client, copy.deepcopy(event), at=RETRY)["duplicate"] is True
    assert len(alerts(slack)) == 1


def test_a_lost_answer_is_found_not_posted_again(app_client, slack, store):
    """Slack posted the alert but the answer never came back: the retry finds it by its
    metadata (conversations.history) instead of posting a second one."""
    from chalicelib.adapters.slack_notifier import SlackNotifier

    event = load_cloudtrail("assume_role_bastion_copy")
    real_post = SlackNotifier.try_post

    def post_then_lose_the_answer(self, *args, **kwargs):
        real_post(self, *args, **kwargs)
        raise ConnectionResetError("the answer was lost")

    SlackNotifier.try_post = post_then_lose_the_answer
    try:
        with pytest.raises(ConnectionResetError):
            invoke(app_client, event)
    finally:
        SlackNotifier.try_post = real_post
    assert len(alerts(slack)) == 1
    found = invoke(app_client, copy.deepcopy(event), at=RETRY)  # finds it: nothing posted again
    assert (found["posted"], found["duplicate"]) == (False, True)
    assert invoke(app_client, copy.deepcopy(event), at=RETRY)["duplicate"] is True
    assert len(alerts(slack)) == 1


def test_a_failed_group_post_undoes_the_count_and_the_claim(app_client, slack, store):
    from slack_sdk.errors import SlackApiError

    first, second = denied_at(datetime(2026, 11, 12, 14, 2, tzinfo=timezone.utc), 1), \
        denied_at(datetime(2026, 11, 12, 14, 3, tzinfo=timezone.utc), 2)
    slack.fail_next("chat.postMessage", error="fatal_error")
    with pytest.raises(SlackApiError):
        invoke(app_client, first, at=AT)
    assert store.alert(first["detail"]["eventID"]) is None
    group = store.alert_group(json_record_group(first))
    assert (group["count"], group["owner"], group["ts"]) == (0, None, None)

    assert invoke(app_client, copy.deepcopy(first), at=AT)["posted"] is True  # the retry
    slack.fail_next("chat.update", error="fatal_error")
    with pytest.raises(SlackApiError):
        invoke(app_client, second, at=AT)
    assert store.alert(second["detail"]["eventID"]) is None
    assert invoke(app_client, copy.deepcopy(second), at=AT)["updated"] is True  # the retry
    (line,) = alerts(slack)
    assert line.event_payload["attempts"] == 2 and "denied 2 times since 14:02 UTC, last at 14:03" in line.text


def json_record_group(event: dict) -> str:
    from chalicelib.alerts import failure_group_key, parse_assumption

    return failure_group_key(parse_assumption(event, bastion_account_id="111111111111"))


# --------------------------------------------------------------------------- the other ways in


@pytest.mark.parametrize("name, label", [
    ("assume_root_bastion", "root session (AssumeRoot)"),
    ("get_federation_token_prod", "federation token (GetFederationToken)"),
    ("console_login_root_prod", "root user console sign-in"),
    ("console_login_iam_user_prod", "IAM user console sign-in"),
])
def test_ways_in_no_grant_can_cover_are_loud(app_client, slack, granted, name, label):
    event = load_cloudtrail(name)
    out = invoke(app_client, event, at=datetime(2026, 11, 12, 15, 55, tzinfo=timezone.utc))
    assert (out["kind"], out["request_id"], out["posted"]) == ("uncovered", None, True)
    (alert,) = alerts(slack)
    assert alert.text.startswith(f"<!here> NO APPROVED GRANT: {label}")
    assert alert.event_type == "production_access"
    assert alert.event_payload["account"] == "prod" and alert.event_payload["event_id"] == event["detail"]["eventID"]
    assert invoke(app_client, copy.deepcopy(event))["duplicate"] is True  # once per event
    assert len(alerts(slack)) == 1


def test_a_failed_console_sign_in_is_a_quiet_line(app_client, slack):
    out = invoke(app_client, load_cloudtrail("console_login_iam_user_failed_prod"))
    assert (out["kind"], out["posted"]) == ("failed_attempt", True)
    (line,) = alerts(slack)
    assert "<!here>" not in line.all_text() and "Failed authentication" in line.text


def test_an_iam_user_signing_in_to_the_bastion_is_not_an_alert(app_client, slack):
    event = load_cloudtrail("console_login_iam_user_prod")
    event["account"] = event["detail"]["recipientAccountId"] = event["detail"]["userIdentity"]["accountId"] = \
        "111111111111"
    event["detail"]["userIdentity"]["arn"] = "arn:aws:iam::111111111111:user/alice"
    assert invoke(app_client, event)["kind"] == "unknown_account"
    assert alerts(slack) == []


# --------------------------------------------------------------------------- IAM changes to a person


def test_a_person_adding_an_mfa_device_with_mfa_is_a_quiet_line(app_client, slack, store):
    event = load_cloudtrail("iam_enable_mfa_device_self")
    out = invoke(app_client, event)
    assert (out["kind"], out["posted"]) == ("identity_changed", True)
    (line,) = alerts(slack)
    assert line.event_type == "identity_changed" and "<!here>" not in line.all_text()
    assert line.text.startswith("IAM change on a Drawbridge person: alice's MFA device "
                                "arn:aws:iam::111111111111:mfa/alice-phone was enabled by "
                                "arn:aws:iam::111111111111:user/alice from 203.0.113.10")
    assert store.alert(event["detail"]["eventID"])["person"] == "alice"
    assert invoke(app_client, copy.deepcopy(event))["duplicate"] is True  # once per eventID
    assert len(alerts(slack)) == 1


def test_an_access_key_made_for_a_person_by_someone_else_is_loud(app_client, slack):
    out = invoke(app_client, load_cloudtrail("iam_create_access_key_by_admin"))
    assert out["kind"] == "identity_changed"
    (line,) = alerts(slack)
    assert line.text.startswith("<!here> IAM change on a Drawbridge person: alice's access key AKIAEXAMPLEALICE0002")
    assert (line.event_payload["loud"], line.event_payload["by_self"], line.event_payload["mfa"]) == (True, False, False)


def test_iam_changes_to_nobody_in_the_catalog_or_outside_the_bastion_are_dropped(app_client, slack):
    robot = load_cloudtrail("iam_create_access_key_by_admin")
    robot["detail"]["requestParameters"]["userName"] = "ci-robot"
    robot["detail"]["responseElements"]["accessKey"]["userName"] = "ci-robot"
    assert invoke(app_client, robot)["kind"] == "ignored"
    member = load_cloudtrail("iam_create_access_key_by_admin")  # "alice" of a member account
    member["account"] = member["detail"]["recipientAccountId"] = "222222222222"
    assert invoke(app_client, member)["kind"] == "ignored"
    assert alerts(slack) == []


def test_a_slack_failure_on_an_iam_change_raises_and_the_retry_posts_once(app_client, slack, store):
    from slack_sdk.errors import SlackApiError

    event = load_cloudtrail("iam_create_access_key_by_admin")
    slack.fail_next("chat.postMessage", error="fatal_error")
    with pytest.raises(SlackApiError):
        invoke(app_client, event)
    assert alerts(slack) == []
    assert invoke(app_client, copy.deepcopy(event), at=RETRY)["posted"] is True
    assert invoke(app_client, copy.deepcopy(event), at=RETRY)["duplicate"] is True


# --------------------------------------------------------------------------- the envelope


@pytest.mark.parametrize("name, account, recipient", [
    ("iam_create_access_key_by_admin", "222222222222", None),  # a member account forging a bastion event
    ("assume_role_bastion_copy", "444444444444", None),  # an account Drawbridge does not know
    ("console_login_root_prod", "444444444444", "444444444444"),
    ("assume_root_bastion", "333333333333", None),
])
def test_forged_or_foreign_events_are_ignored_and_logged(app_client, slack, store, monkeypatch, name, account,
                                                        recipient):
    from chalicelib.log import logger

    warnings = []
    monkeypatch.setattr(logger(), "warning", lambda msg, extra=None, **_: warnings.append((msg, extra)))
    event = load_cloudtrail(name)
    event["account"] = account
    if recipient is not None:
        event["detail"]["recipientAccountId"] = recipient
    out = invoke(app_client, event)
    assert out["kind"] == "ignored" and out["reason"]
    assert alerts(slack) == [] and store.alert(event["detail"]["eventID"]) is None
    ((message, extra),) = warnings
    assert message.startswith("CloudTrail event refused") and extra["problem"] == out["reason"]
    assert extra["event_id"] == event["detail"]["eventID"]
