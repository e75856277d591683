"""The AssumeRole* EventBridge pattern: what it matches (moto's matcher) and that the
member-account forwarding template carries exactly the same pattern and rule state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from moto.events.models import EventPattern

from chalicelib.event_pattern import ASSUME_ROLE_PATTERN, RULE_STATE, pattern_json
from tests.fixtures import cloudtrail_names, load_cloudtrail

REPO = Path(__file__).resolve().parents[2]
FORWARDING_TEMPLATE = REPO / "policies" / "member-account.yaml"


def matches(event: dict) -> bool:
    return EventPattern.load(pattern_json()).matches_event(event)


ASSUME_ROLE_FIXTURES = [n for n in cloudtrail_names() if n.startswith("assume_role")]


def test_there_are_assume_role_fixtures():
    assert len(ASSUME_ROLE_FIXTURES) == 6


@pytest.mark.parametrize("name", ASSUME_ROLE_FIXTURES)
def test_matches_every_assume_role_fixture(name):
    assert matches(load_cloudtrail(name))


def test_keeps_failures():
    event = load_cloudtrail("assume_role_denied")
    assert event["detail"]["errorCode"] == "AccessDenied"
    assert matches(event)


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


@pytest.mark.parametrize(
    "event",
    [
        _edited("assume_role_bastion_copy", eventName="GetCallerIdentity", requestParameters=None),
        _edited("assume_role_bastion_copy", eventName="GetSessionToken"),
        _edited("assume_role_bastion_copy", eventName="AssumeRoot"),
        _edited("assume_role_bastion_copy", eventName="assumerole"),
        _other_service(),
        _sts_service_event(),
        _edited(
            "assume_role_prod_copy",
            userIdentity={"type": "AWSService", "invokedBy": "lambda.amazonaws.com"},
        ),
    ],
    ids=[
        "GetCallerIdentity",
        "GetSessionToken",
        "AssumeRoot",
        "wrong-case",
        "iam-CreateUser",
        "service-event-detail-type",
        "aws-service-assuming-its-role",
    ],
)
def test_does_not_match_other_events(event):
    assert not matches(event)


def test_pattern_json_round_trips():
    assert json.loads(pattern_json()) == ASSUME_ROLE_PATTERN


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
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Events::Rule"]


def test_forwarding_rule_uses_the_same_pattern_and_state():
    (rule,) = _rules(_template(FORWARDING_TEMPLATE))
    assert rule["EventPattern"] == ASSUME_ROLE_PATTERN
    assert rule["State"] == RULE_STATE
    assert rule["EventBusName"] == "default"


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
