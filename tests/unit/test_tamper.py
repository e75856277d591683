"""Calls that blind the alert path: parse_tamper on the fixtures and near misses, and how
the alert reads (pure: no I/O)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib.alerts import PathTamper, parse_tamper
from chalicelib.slack.alert_views import tamper_blocks, tamper_metadata
from tests.fixtures import cloudtrail_names, load_cloudtrail

RULE = "StackSet-drawbridge-member-0c9e1d2a-AssumeRoleForwardingRule-EXAMPLE7Q2M4K"

EXPECTED = {
    "cloudtrail_stop_logging_prod": dict(
        event_id="e7e70000-0000-4000-8000-000000000018", event_name="StopLogging",
        event_time=datetime(2026, 11, 12, 16, 40, 11, tzinfo=timezone.utc), account_id="222222222222",
        region="us-east-1", service="trail",
        target="arn:aws:cloudtrail:us-east-1:222222222222:trail/management-events",
        actor="arn:aws:sts::222222222222:assumed-role/admin/mallory", source_ip="203.0.113.77", error_code=None),
    "cloudtrail_put_event_selectors_denied_dev": dict(
        event_id="e7e70000-0000-4000-8000-000000000019", event_name="PutEventSelectors",
        event_time=datetime(2026, 11, 12, 16, 42, 30, tzinfo=timezone.utc), account_id="333333333333",
        region="us-east-1", service="trail", target="management-events",
        actor="arn:aws:sts::333333333333:assumed-role/admin/alice", source_ip="203.0.113.10",
        error_code="AccessDenied"),
    "events_delete_forwarding_rule_prod": dict(
        event_id="e7e70000-0000-4000-8000-000000000021", event_name="DeleteRule",
        event_time=datetime(2026, 11, 12, 16, 44, 52, tzinfo=timezone.utc), account_id="222222222222",
        region="eu-west-1", service="rule", target=RULE,
        actor="arn:aws:sts::222222222222:assumed-role/admin/mallory", source_ip="203.0.113.77", error_code=None),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_exact_values(name):
    t = parse_tamper(load_cloudtrail(name))
    assert isinstance(t, PathTamper)
    assert {field: getattr(t, field) for field in EXPECTED[name]} == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(set(cloudtrail_names()) - set(EXPECTED)))
def test_no_other_fixture_is_tampering(name):
    assert parse_tamper(load_cloudtrail(name)) is None


def _edited(name: str, **detail) -> dict:
    event = load_cloudtrail(name)
    event["detail"].update(detail)
    return event


@pytest.mark.parametrize("event", [
    _edited("events_delete_forwarding_rule_prod", requestParameters={"name": "nightly-StackSet-drawbridge-x"}),
    _edited("events_delete_forwarding_rule_prod", requestParameters=None),
    _edited("events_delete_forwarding_rule_prod", eventName="RemoveTargets"),  # RemoveTargets names it "rule"
    _edited("events_delete_forwarding_rule_prod", eventName="PutRule"),
    _edited("events_delete_forwarding_rule_prod", eventSource="cloudtrail.amazonaws.com"),
    _edited("cloudtrail_stop_logging_prod", eventName="StartLogging"),
    _edited("cloudtrail_stop_logging_prod", eventID=None),
    {"source": "aws.cloudtrail", "detail-type": "AWS API Call via CloudTrail", "detail": "garbage"},
    "not an event",
], ids=["other-rule", "no-parameters", "RemoveTargets-by-name", "PutRule", "wrong-event-source",
        "StartLogging", "no-event-id", "detail-not-a-dict", "not-a-dict"])
def test_near_misses_are_not_tampering(event):
    assert parse_tamper(event) is None


def test_removing_a_forwarding_rules_targets_is_tampering():
    t = parse_tamper(_edited("events_delete_forwarding_rule_prod", eventName="RemoveTargets",
                             requestParameters={"rule": RULE, "ids": ["drawbridge-bastion-bus"]}))
    assert (t.event_name, t.target, t.service) == ("RemoveTargets", RULE, "rule")


def test_the_alert_is_loud_and_names_who_what_where():
    t = parse_tamper(load_cloudtrail("cloudtrail_stop_logging_prod"))
    text, blocks = tamper_blocks(t, account_key="prod")
    assert text == ("<!here> Alert path tampered with: arn:aws:sts::222222222222:assumed-role/admin/mallory "
                    "stopped logging of trail arn:aws:cloudtrail:us-east-1:222222222222:trail/management-events "
                    "in account prod (222222222222), us-east-1, from 203.0.113.77 at 2026-11-12 16:40:11 UTC")
    assert blocks[0]["type"] == "header"
    meta = tamper_metadata(t, account_key="prod")
    assert meta["event_type"] == "alert_path_tampered"
    assert meta["event_payload"] == {
        "account": "222222222222", "account_key": "prod", "region": "us-east-1", "event_name": "StopLogging",
        "target": "arn:aws:cloudtrail:us-east-1:222222222222:trail/management-events",
        "actor": "arn:aws:sts::222222222222:assumed-role/admin/mallory",
        "event_id": "e7e70000-0000-4000-8000-000000000018", "event_time": "2026-11-12T16:40:11Z",
        "error_code": None}


def test_a_failed_attempt_is_loud_and_says_it_failed():
    t = parse_tamper(load_cloudtrail("cloudtrail_put_event_selectors_denied_dev"))
    text, blocks = tamper_blocks(t, account_key="dev")
    assert text.startswith("<!here> Alert path tampering attempted (failed: AccessDenied): ")
    assert "Nothing changed, but someone tried" in blocks[1]["text"]["text"]


def test_crafted_values_cannot_mention_anyone():
    event = _edited("cloudtrail_stop_logging_prod", requestParameters={"name": "<!channel> <@U0BOB00001>"})
    text, blocks = tamper_blocks(parse_tamper(event), account_key="prod")
    assert text.count("<!") == 1 and text.startswith("<!here>")
    assert "<@U0BOB00001>" not in text and "<!channel>" not in str(blocks)


@pytest.mark.parametrize("event_name", ["DeleteRule", "DisableRule", "RemoveTargets"])
def test_the_watchdogs_fixed_name_is_tampering_too(event_name):
    """The parser checks what the pattern matches: the watchdog (drawbridge-watchdog) as
    well as the generated forwarding-rule names."""
    field = "rule" if event_name == "RemoveTargets" else "name"
    t = parse_tamper(_edited("events_delete_forwarding_rule_prod", eventName=event_name,
                             requestParameters={field: "drawbridge-watchdog"}))
    assert t is not None and t.service == "rule" and t.target == "drawbridge-watchdog"
    assert parse_tamper(_edited("events_delete_forwarding_rule_prod", eventName=event_name,
                                requestParameters={field: "my-drawbridge-watchdog"})) is None


@pytest.mark.parametrize("name, kind", [
    ("drawbridge-watchdog", "deleted watchdog rule drawbridge-watchdog"),
    ("StackSet-drawbridge-member-0c9e1d2a-AssumeRoleForwardingRule-EXAMPLE7Q2M4K", "deleted forwarding rule"),
    ("drawbridge-prod-on_heartbeat-event", "deleted Drawbridge rule drawbridge-prod-on_heartbeat-event"),
])
def test_the_alert_names_the_kind_of_rule(name, kind):
    from chalicelib.slack.alert_views.tamper import tamper_blocks

    event = load_cloudtrail("events_delete_forwarding_rule_prod")
    event["detail"]["requestParameters"]["name"] = name
    t = parse_tamper(event)
    assert t is not None and t.target == name
    text, _ = tamper_blocks(t, account_key="prod")
    assert kind in text
