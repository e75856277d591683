"""The alert path's EventBridge pattern: what it matches (moto's matcher, every CloudTrail
fixture and the near misses) and that the member-account forwarding template carries
exactly the same pattern and rule state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from moto.events.models import EventPattern

from chalicelib.event_pattern import (
    ALERT_PATTERN,
    ASSUME_ROLE_PATTERN,
    FORWARD_PATTERN,
    HEARTBEAT_PATTERN,
    TAMPER_PATTERN,
    WATCHDOG_RULE_NAME,
    HEARTBEAT_DETAIL_TYPE,
    HEARTBEAT_INTERVAL_MINUTES,
    HEARTBEAT_SOURCE,
    RULE_STATE,
    pattern_json,
)
from tests.fixtures import cloudtrail_names, load_cloudtrail

REPO = Path(__file__).resolve().parents[2]
FORWARDING_TEMPLATE = REPO / "policies" / "member-account.yaml"


def matches(event: dict, pattern: dict | None = None) -> bool:
    """Does the bastion's alert rule (or ``pattern``) take this event? moto's matcher."""
    return EventPattern.load(pattern_json(pattern)).matches_event(event)


def forwarded(event: dict) -> bool:
    """Do the member accounts' forwarding rules take it?"""
    return matches(event, FORWARD_PATTERN)


ASSUME_ROLE_FIXTURES = [n for n in cloudtrail_names() if n.startswith("assume_role")]

#: every CloudTrail fixture, and whether the rule must deliver it
FIXTURE_MATCHES = {
    "assume_role_bastion_copy": True,
    "assume_role_console_switch": True,
    "assume_role_denied": True,
    "assume_role_dev_account": True,  # delivered; the handler decides it is not production
    "assume_role_prod_copy": True,
    "assume_role_with_saml_prod": True,
    "assume_root_bastion": True,
    "get_federation_token_prod": True,
    "console_login_root_prod": True,
    "console_login_iam_user_prod": True,
    "console_login_iam_user_failed_prod": True,
    "iam_enable_mfa_device_self": True,
    "iam_create_access_key_by_admin": True,
    "signin_switch_role": False,  # a sign-in, but not a ConsoleLogin: the AssumeRole behind it is the alert
    "cloudtrail_stop_logging_prod": True,
    "cloudtrail_put_event_selectors_denied_dev": True,  # denied, still an attempt to blind the path
    "cloudtrail_describe_trails_prod": False,  # read-only: changes nothing
    "events_delete_forwarding_rule_prod": True,
    "events_delete_other_rule_prod": False,  # somebody else's rule
    "heartbeat_dev": False,  # not CloudTrail: the path's heartbeat, forwarded, but on_heartbeat's at the bastion
}

#: the tampering fixtures: the watchdog rule's, alone
TAMPER_FIXTURES = {"cloudtrail_stop_logging_prod", "cloudtrail_put_event_selectors_denied_dev",
                   "events_delete_forwarding_rule_prod"}


def test_there_are_assume_role_fixtures():
    assert len(ASSUME_ROLE_FIXTURES) == 6


def test_every_fixture_has_an_expectation():
    assert set(FIXTURE_MATCHES) == set(cloudtrail_names())


@pytest.mark.parametrize("name", sorted(FIXTURE_MATCHES))
def test_each_fixture_is_matched_or_not_as_intended(name):
    assert matches(load_cloudtrail(name)) is FIXTURE_MATCHES[name]


@pytest.mark.parametrize("name", sorted(FIXTURE_MATCHES))
def test_the_members_forward_what_the_bastion_alerts_on_and_the_heartbeat(name):
    assert forwarded(load_cloudtrail(name)) is (FIXTURE_MATCHES[name] or name == "heartbeat_dev")


@pytest.mark.parametrize("name", sorted(FIXTURE_MATCHES))
def test_the_heartbeat_rule_takes_the_heartbeat_only(name):
    assert matches(load_cloudtrail(name), HEARTBEAT_PATTERN) is (name == "heartbeat_dev")


@pytest.mark.parametrize("name", sorted(FIXTURE_MATCHES))
def test_the_watchdog_takes_the_tampering_only(name):
    assert matches(load_cloudtrail(name), TAMPER_PATTERN) is (name in TAMPER_FIXTURES)


@pytest.mark.parametrize("name", ASSUME_ROLE_FIXTURES)
def test_matches_every_assume_role_fixture(name):
    assert matches(load_cloudtrail(name))


def test_keeps_failures():
    event = load_cloudtrail("assume_role_denied")
    assert event["detail"]["errorCode"] == "AccessDenied"
    assert matches(event)
    failed_login = load_cloudtrail("console_login_iam_user_failed_prod")
    assert failed_login["detail"]["responseElements"] == {"ConsoleLogin": "Failure"}
    assert matches(failed_login)


def test_does_not_match_the_signin_switch_role_event():
    assert not matches(load_cloudtrail("signin_switch_role"))


def _edited(name: str, **detail) -> dict:
    event = load_cloudtrail(name)
    event["detail"].update(detail)
    return event


def _other_service() -> dict:
    event = _edited(
        "assume_role_bastion_copy",
        eventSource="iam.amazonaws.com",
        eventName="CreateUser",
        requestParameters={"userName": "mallory"},
    )
    event["source"] = "aws.iam"
    return event


def _sts_service_event() -> dict:
    event = load_cloudtrail("assume_role_bastion_copy")
    event["detail-type"] = "AWS Service Event via CloudTrail"
    return event


def _moved(name: str, *, source: str | None = None, detail_type: str | None = None, **detail) -> dict:
    """A fixture with its envelope's source / detail-type changed (the near misses that one
    flat pattern with OR-ed sources and event names would let through)."""
    event = _edited(name, **detail)
    if source is not None:
        event["source"] = source
    if detail_type is not None:
        event["detail-type"] = detail_type
    return event


def _federated_console_login() -> dict:
    event = load_cloudtrail("console_login_iam_user_prod")
    event["detail"]["userIdentity"] = {"type": "AssumedRole", "principalId": "AROAEXAMPLEPRODADMIN1:alice",
                                       "arn": "arn:aws:sts::222222222222:assumed-role/admin/alice",
                                       "accountId": "222222222222"}
    return event


@pytest.mark.parametrize(
    "event",
    [
        _edited("assume_role_bastion_copy", eventName="GetCallerIdentity", requestParameters=None),
        _edited("assume_role_bastion_copy", eventName="GetSessionToken"),
        _edited("assume_role_bastion_copy", eventName="assumerole"),
        _other_service(),
        _sts_service_event(),
        _edited(
            "assume_role_prod_copy",
            userIdentity={"type": "AWSService", "invokedBy": "lambda.amazonaws.com"},
        ),
        _edited("assume_root_bastion", userIdentity={"type": "AWSService", "invokedBy": "sso.amazonaws.com"}),
        _federated_console_login(),
        _edited("console_login_root_prod", eventName="CheckMfa"),
        _moved("console_login_root_prod", detail_type="AWS API Call via CloudTrail"),
        _moved("assume_role_bastion_copy", source="aws.signin"),
        _moved("console_login_root_prod", source="aws.sts", detail_type="AWS API Call via CloudTrail"),
        _moved("iam_create_access_key_by_admin", source="aws.sts"),
        _moved("assume_role_bastion_copy", source="aws.iam"),
        _edited("iam_create_access_key_by_admin", eventName="DeleteAccessKey"),
        _moved("iam_enable_mfa_device_self", detail_type="AWS Console Sign In via CloudTrail"),
    ],
    ids=[
        "GetCallerIdentity",
        "GetSessionToken",
        "wrong-case",
        "iam-CreateUser",
        "service-event-detail-type",
        "aws-service-assuming-its-role",
        "aws-service-assume-root",
        "federated-console-login",
        "signin-CheckMfa",
        "console-login-as-api-call",
        "AssumeRole-from-signin-source",
        "ConsoleLogin-from-sts-source",
        "CreateAccessKey-from-sts-source",
        "AssumeRole-from-iam-source",
        "iam-DeleteAccessKey",
        "iam-change-with-sign-in-detail-type",
    ],
)
def test_does_not_match_other_events(event):
    assert not matches(event)


@pytest.mark.parametrize("event_name", ["StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors"])
def test_matches_every_call_that_stops_or_narrows_a_trail(event_name):
    assert matches(_edited("cloudtrail_stop_logging_prod", eventName=event_name))


@pytest.mark.parametrize("event_name", ["DeleteRule", "DisableRule"])
def test_matches_deleting_or_disabling_a_forwarding_rule(event_name):
    assert matches(_edited("events_delete_forwarding_rule_prod", eventName=event_name))
    bastion_regions = "StackSet-drawbridge-bastion-regions-5e1f-AssumeRoleForwardingRule-EXAMPLE9X3T"
    assert matches(_edited("events_delete_forwarding_rule_prod", eventName=event_name,
                           requestParameters={"name": bastion_regions}))


@pytest.mark.parametrize("event_name", ["DeleteRule", "DisableRule", "RemoveTargets"])
@pytest.mark.parametrize("pattern", ["alert", "forward", "tamper"])
def test_matches_tampering_with_the_watchdog_by_its_fixed_name(pattern, event_name):
    """The watchdog rule has a fixed name (TamperWatchRule's Name in both templates); the
    tamper branch watches it through its drawbridge- prefix, in every rule that carries it."""
    field = "rule" if event_name == "RemoveTargets" else "name"
    event = _edited("events_delete_forwarding_rule_prod", eventName=event_name,
                    requestParameters={field: WATCHDOG_RULE_NAME, "force": False})
    chosen = {"alert": ALERT_PATTERN, "forward": FORWARD_PATTERN, "tamper": TAMPER_PATTERN}[pattern]
    assert WATCHDOG_RULE_NAME == "drawbridge-watchdog"
    assert matches(event, chosen)
    # the prefix is a prefix: a rule that merely contains it is not ours
    assert not matches(_edited("events_delete_forwarding_rule_prod", eventName=event_name,
                               requestParameters={field: "my-drawbridge-watchdog"}), chosen)


def test_matches_removing_a_forwarding_rules_targets_by_its_rule_field():
    rule = load_cloudtrail("events_delete_forwarding_rule_prod")["detail"]["requestParameters"]["name"]
    assert matches(_edited("events_delete_forwarding_rule_prod", eventName="RemoveTargets",
                           requestParameters={"rule": rule, "ids": ["drawbridge-bastion-bus"], "force": False}))
    # RemoveTargets names the rule "rule": a "name" field does not make it one of ours
    assert not matches(_edited("events_delete_forwarding_rule_prod", eventName="RemoveTargets",
                               requestParameters={"name": rule, "rule": "nightly-backup-schedule",
                                                  "ids": ["t1"]}))


@pytest.mark.parametrize("event", [
    _edited("events_delete_forwarding_rule_prod", eventName="PutRule"),  # every StackSet update does it
    _edited("events_delete_forwarding_rule_prod", eventName="EnableRule"),
    _edited("events_delete_forwarding_rule_prod", requestParameters={"name": "my-StackSet-drawbridge-rule"}),
    _edited("events_delete_forwarding_rule_prod", requestParameters=None),
    _moved("cloudtrail_stop_logging_prod", source="aws.events"),
    _moved("events_delete_forwarding_rule_prod", source="aws.cloudtrail"),
    _edited("cloudtrail_stop_logging_prod", eventName="StartLogging"),
    _moved("cloudtrail_stop_logging_prod", detail_type="AWS Service Event via CloudTrail"),
], ids=["PutRule", "EnableRule", "not-a-prefix", "no-parameters", "StopLogging-from-events-source",
        "DeleteRule-from-cloudtrail-source", "StartLogging", "service-event"])
def test_does_not_match_other_trail_or_rule_calls(event):
    assert not matches(event)


def test_only_drawbridges_heartbeat_is_forwarded():
    beat = load_cloudtrail("heartbeat_dev")
    assert forwarded(beat) and not matches(beat)  # never to on_role_assumed: anybody can put a custom source
    for source, detail_type in (("drawbridge.heartbeat", "Scheduled Event"), ("aws.events", "Drawbridge Heartbeat"),
                                ("my.app", "Drawbridge Heartbeat")):
        assert not forwarded({**beat, "source": source, "detail-type": detail_type})


@pytest.mark.parametrize("event_name", ["AssumeRoot", "GetFederationToken"])
def test_matches_the_other_sts_ways_in(event_name):
    assert matches(_edited("assume_role_bastion_copy", eventName=event_name))


@pytest.mark.parametrize("event_name", ["EnableMFADevice", "DeactivateMFADevice", "DeleteVirtualMFADevice",
                                        "CreateAccessKey", "CreateLoginProfile", "UpdateLoginProfile"])
def test_matches_every_iam_change_to_credentials(event_name):
    assert matches(_edited("iam_create_access_key_by_admin", eventName=event_name))


def test_sign_ins_are_matched_for_root_and_iam_users_only():
    root = load_cloudtrail("console_login_root_prod")
    assert matches(root)
    root["detail"]["userIdentity"]["type"] = "SAMLUser"
    assert not matches(root)


def test_the_old_name_is_the_same_pattern():
    assert ASSUME_ROLE_PATTERN is ALERT_PATTERN


def test_pattern_json_round_trips():
    assert json.loads(pattern_json()) == ALERT_PATTERN


def test_rule_state_reaches_read_only_management_events():
    assert RULE_STATE == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"


# --------------------------------------------------------------------------- the template


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short tags (!Ref, !Sub, !If ...) as {"Fn": value}."""


def _cfn_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node):
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def _template(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def _rules(template: dict) -> list[dict]:
    """The alert path's forwarding rule (the template's activity rule is
    tests/unit/test_activity_pattern.py's)."""
    return [template["Resources"]["AssumeRoleForwardingRule"]["Properties"]]


def test_forwarding_rule_uses_the_same_pattern_and_state():
    (rule,) = _rules(_template(FORWARDING_TEMPLATE))
    assert rule["EventPattern"] == FORWARD_PATTERN
    assert rule["State"] == RULE_STATE
    assert rule["EventBusName"] == "default"


@pytest.mark.parametrize("path", [FORWARDING_TEMPLATE, REPO / "policies" / "bastion-regions.yaml"])
def test_the_heartbeat_schedule_puts_what_the_forwarding_rule_matches_on_the_local_bus(path):
    template = _template(path)
    (schedule,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Scheduler::Schedule"]
    assert schedule["ScheduleExpression"] == "rate(5 minutes)" and schedule["State"] == "ENABLED"
    target = schedule["Target"]
    local_bus = {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"}
    assert target["Arn"] == local_bus
    # what Scheduler puts: the matcher must let exactly that through the forwarding rule
    put = {"version": "0", "id": "x", "account": "333333333333", "region": "eu-west-1", "time": "2026-11-12T14:05:00Z",
           "resources": [], "source": target["EventBridgeParameters"]["Source"],
           "detail-type": target["EventBridgeParameters"]["DetailType"], "detail": json.loads(target["Input"])}
    assert put["source"] == HEARTBEAT_SOURCE and put["detail-type"] == HEARTBEAT_DETAIL_TYPE
    assert forwarded(put) and matches(put, HEARTBEAT_PATTERN)
    assert json.loads(target["Input"]) == {"interval_minutes": HEARTBEAT_INTERVAL_MINUTES}
    role = template["Resources"][target["RoleArn"]["Fn::GetAtt"].split(".")[0]]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert statements == [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": local_bus}]


def test_forwarding_role_may_only_put_events_on_the_target_bus():
    template = _template(FORWARDING_TEMPLATE)
    (rule,) = _rules(template)
    (target,) = rule["Targets"]
    role_name = target["RoleArn"]["Fn::GetAtt"].split(".")[0]
    role = template["Resources"][role_name]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert statements == [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": target["Arn"]}]
