"""Calls that blind the alert path, through on_role_assumed (chalice.test.Client, moto, the
Slack stand-in): a trail stopped or narrowed, a forwarding rule deleted. One loud alert per
CloudTrail eventID, however often it is delivered; failed attempts alert too; near misses
and events from accounts Drawbridge does not know post nothing."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest

from tests.app.test_role_assumed import RETRY, alerts, invoke
from tests.fixtures import load_cloudtrail


def test_stopping_a_trail_is_one_loud_alert_even_when_delivered_twice(app_client, slack, store):
    event = load_cloudtrail("cloudtrail_stop_logging_prod")
    out = invoke(app_client, event)
    assert (out["kind"], out["posted"]) == ("alert_path_tampered", True)
    (line,) = alerts(slack)
    assert line.event_type == "alert_path_tampered"
    assert line.text.startswith("<!here> Alert path tampered with: arn:aws:sts::222222222222:assumed-role/admin/"
                                "mallory stopped logging of trail arn:aws:cloudtrail:us-east-1:222222222222:"
                                "trail/management-events in account prod (222222222222), us-east-1")
    assert (line.event_payload["event_id"], line.event_payload["account_key"]) == (
        "e7e70000-0000-4000-8000-000000000018", "prod")
    assert store.alert("e7e70000-0000-4000-8000-000000000018")["event_name"] == "StopLogging"
    redelivered = copy.deepcopy(event)
    redelivered["id"] = "eb0eb000-0000-4000-8000-0000000000ff"  # EventBridge's redelivery: a new envelope id
    assert invoke(app_client, redelivered)["duplicate"] is True
    assert len(alerts(slack)) == 1


def test_deleting_the_forwarding_rule_in_another_region_alerts(app_client, slack):
    out = invoke(app_client, load_cloudtrail("events_delete_forwarding_rule_prod"))
    assert out["kind"] == "alert_path_tampered"
    (line,) = alerts(slack)
    assert "deleted forwarding rule StackSet-drawbridge-member-0c9e1d2a-AssumeRoleForwardingRule-EXAMPLE7Q2M4K" \
        in line.text
    assert line.event_payload["region"] == "eu-west-1"


def test_a_denied_attempt_still_alerts_and_says_it_failed(app_client, slack):
    out = invoke(app_client, load_cloudtrail("cloudtrail_put_event_selectors_denied_dev"))
    assert out["kind"] == "alert_path_tampered"
    (line,) = alerts(slack)
    assert line.text.startswith("<!here> Alert path tampering attempted (failed: AccessDenied): ")
    assert line.event_payload["error_code"] == "AccessDenied"


@pytest.mark.parametrize("name", ["cloudtrail_describe_trails_prod", "events_delete_other_rule_prod"])
def test_near_misses_post_nothing(app_client, slack, name):
    assert invoke(app_client, load_cloudtrail(name))["kind"] == "ignored"
    assert alerts(slack) == []


def test_tampering_in_an_account_drawbridge_does_not_know_is_refused(app_client, slack):
    event = load_cloudtrail("cloudtrail_stop_logging_prod")
    event["account"] = event["detail"]["recipientAccountId"] = "444444444444"
    out = invoke(app_client, event)
    assert out["kind"] == "ignored" and "neither the bastion nor a catalog account" in out["reason"]
    forged = load_cloudtrail("cloudtrail_stop_logging_prod")
    forged["account"] = "333333333333"  # dev speaking of prod's trail
    assert invoke(app_client, forged)["kind"] == "ignored"
    assert alerts(slack) == []


def test_tampering_in_the_bastion_is_named_as_such(app_client, slack):
    event = load_cloudtrail("events_delete_forwarding_rule_prod")
    event["account"] = event["detail"]["recipientAccountId"] = "111111111111"
    event["detail"]["requestParameters"]["name"] = "StackSet-drawbridge-bastion-regions-5e1f-AssumeRoleForwardingRule-X"
    invoke(app_client, event)
    (line,) = alerts(slack)
    assert "in account bastion (111111111111), eu-west-1" in line.text


def test_a_slack_failure_raises_and_the_retry_posts_once(app_client, slack):
    from slack_sdk.errors import SlackApiError

    event = load_cloudtrail("events_delete_forwarding_rule_prod")
    slack.fail_next("chat.postMessage", error="fatal_error")
    with pytest.raises(SlackApiError):
        invoke(app_client, event)
    assert alerts(slack) == []
    later = datetime(2026, 11, 12, 16, 47, tzinfo=timezone.utc)
    assert invoke(app_client, copy.deepcopy(event), at=max(RETRY, later))["posted"] is True
    assert invoke(app_client, copy.deepcopy(event), at=max(RETRY, later))["duplicate"] is True
    assert len(alerts(slack)) == 1


def test_the_watchdogs_copy_arriving_while_the_first_is_posted_stops_quietly(app_client, slack, store):
    # the forwarding rule and the watchdog deliver the same call at once: the copy that lost
    # the claim, finding the post under way, returns a duplicate instead of raising
    from chalicelib.adapters.slack_notifier import SlackNotifier

    event = load_cloudtrail("cloudtrail_stop_logging_prod")
    real_post = SlackNotifier.post
    seen = {}

    def the_copy_arrives_meanwhile(self, *args, **kwargs):
        seen["copy"] = invoke(app_client, {**copy.deepcopy(event), "id": "eb0eb000-0000-4000-8000-0000000000fe"})
        return real_post(self, *args, **kwargs)

    SlackNotifier.post = the_copy_arrives_meanwhile
    try:
        out = invoke(app_client, event)
    finally:
        SlackNotifier.post = real_post
    assert out["posted"] is True
    assert seen["copy"]["duplicate"] is True and "being posted" in seen["copy"]["reason"]
    assert len(alerts(slack)) == 1


def test_lambdas_retry_of_the_claimer_is_not_taken_for_the_copy():
    # the claiming invocation began the post and died; Lambda retries it (same request id)
    # within the in-flight window: it must raise (and be retried again), never pass for the
    # watchdog's copy and drop the alert
    from chalicelib import log
    from chalicelib.alerts import parse_tamper
    from chalicelib.usecases import tamper_alert
    from chalicelib.usecases.delivery import DeliveryInFlight
    from tests.fakes import make_service

    svc = make_service()
    store = svc.store
    t = parse_tamper(load_cloudtrail("cloudtrail_stop_logging_prod"))
    log.CORRELATION["invocation"] = "request-1"
    store.claim_alert(t.event_id, {"kind": "alert_path_tampered", "by": "request-1"}, svc.now())
    store.begin_delivery(f"ALERT#{t.event_id}", "security", svc.now())  # then the process died
    with pytest.raises(DeliveryInFlight):
        tamper_alert.handle(svc, t)
    log.CORRELATION["invocation"] = "request-2"  # another invocation: the other rule's copy
    assert tamper_alert.handle(svc, t)["duplicate"] is True
