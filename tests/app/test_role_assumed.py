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
    assert len(replies) == 1 and replies[0].text.startswith("used at 14:03 UTC")
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
                               "unknown_account", "ignored"}, name


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
    alert in #security is `role_assumed`, the reply in the card's thread is `grant_used`."""
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
    assert len(used) == 2 and all(m.thread_ts and m.event_payload["request_id"] == granted for m in used)
