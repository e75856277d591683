"""Grant activity's EventBridge patterns (chalicelib/event_pattern.py activity_pattern and
ACTIVITY_PATTERN_BASTION) against every activity fixture with moto's matcher, and the
member template's activity rule rendered (deploy/member_docs.py) and compared with the
Python pattern for the roles the template creates."""

from __future__ import annotations

import json

import pytest
from moto.events.models import EventPattern

from chalicelib.event_pattern import (
    ACTIVITY_PATTERN_BASTION,
    ACTIVITY_RULE_STATE,
    activity_pattern,
    activity_pattern_json,
    pattern_json,
)
from deploy.member_docs import MEMBER_ACCOUNT, MEMBER_TEMPLATE, Resolver
from deploy.render import cfn_yaml
from tests.fixtures import activity_names, cloudtrail_names, load_activity, load_cloudtrail

JIT_ROLES = ["arn:aws:iam::222222222222:role/admin", "arn:aws:iam::222222222222:role/readonly"]


def matches(pattern: str, event: dict) -> bool:
    return EventPattern.load(pattern).matches_event(event)


#: every activity fixture, and whether the member account forwards it
FORWARDED = {
    "ec2_run_instances_admin": True,
    "s3_put_bucket_policy_admin": True,
    "iam_create_access_key_admin": True,
    "kms_put_key_policy_admin": True,
    "ec2_terminate_instances_readonly_denied": True,  # a denied write is still an attempt
    "ssm_put_parameter_app_role": False,  # an application's role: not a JIT role
}


def test_every_activity_fixture_has_an_expectation():
    assert set(FORWARDED) == set(activity_names())


@pytest.mark.parametrize("name", sorted(FORWARDED))
def test_member_pattern_forwards_jit_sessions_writes_only(name):
    assert matches(activity_pattern_json(JIT_ROLES), load_activity(name)) is FORWARDED[name]


@pytest.mark.parametrize("name", sorted(FORWARDED))
def test_bastion_pattern_takes_every_role_sessions_writes(name):
    # the bastion does not know the roles at import: the handler filters by the catalog
    assert matches(json.dumps(ACTIVITY_PATTERN_BASTION), load_activity(name))


def _edited(name: str, **detail) -> dict:
    event = load_activity(name)
    event["detail"].update(detail)
    return event


@pytest.mark.parametrize("event", [
    _edited("ec2_run_instances_admin", readOnly=True, eventName="DescribeInstances"),
    _edited("ec2_run_instances_admin", managementEvent=False, eventCategory="Data"),
    _edited("ec2_run_instances_admin", readOnly="false"),  # CloudTrail writes booleans
    {**_edited("ec2_run_instances_admin", eventSource="sts.amazonaws.com", eventName="GetSessionToken"),
     "source": "aws.sts"},
    {**load_activity("ec2_run_instances_admin"), "detail-type": "AWS Console Sign In via CloudTrail"},
    # anybody allowed to PutEvents on the bus could send this; only "aws." sources are AWS's own
    {**load_activity("ec2_run_instances_admin"), "source": "forge.me"},
], ids=["read-only", "data-event", "string-false", "sts-source", "sign-in-detail-type", "custom-source"])
def test_neither_pattern_takes_reads_data_events_or_sts(event):
    assert not matches(activity_pattern_json(JIT_ROLES), event)
    assert not matches(json.dumps(ACTIVITY_PATTERN_BASTION), event)


def test_an_iam_user_writing_is_not_activity():
    event = load_cloudtrail("iam_create_access_key_by_admin")
    event["detail"]["userIdentity"] = {"type": "IAMUser", "arn": "arn:aws:iam::222222222222:user/ops-legacy",
                                       "accountId": "222222222222", "userName": "ops-legacy"}
    assert not matches(json.dumps(ACTIVITY_PATTERN_BASTION), event)


def test_no_way_in_is_activity_of_a_jit_role():
    # the ways in are the alert path's; none of them is a write of a JIT session. The
    # trail and rule changes a JIT session makes are both: the alert pattern forwards them
    # (tampering alerts at once; another rule's deletion is dropped there) and they count,
    # notable, under the grant
    both = {name for name in cloudtrail_names()
            if matches(activity_pattern_json(JIT_ROLES), load_cloudtrail(name))}
    assert both == {"cloudtrail_stop_logging_prod", "events_delete_forwarding_rule_prod",
                    "events_delete_other_rule_prod"}


def test_the_alert_pattern_takes_only_the_credential_change_among_activity():
    # iam:CreateAccessKey by a JIT session is forwarded by both rules (the alert handler
    # ignores it: the target is not a bastion person); the tally's dedupe counts it once
    taken = {n for n in activity_names() if matches(pattern_json(), load_activity(n))}
    assert taken == {"iam_create_access_key_admin"}


def test_activity_pattern_needs_a_role_and_sorts_them():
    with pytest.raises(ValueError):
        activity_pattern([])
    assert activity_pattern(list(reversed(JIT_ROLES))) == activity_pattern(JIT_ROLES)


# --------------------------------------------------------------------------- the template


def _rule(parameters: dict | None = None, region: str = "us-east-1") -> dict | None:
    template = cfn_yaml(MEMBER_TEMPLATE)
    resolver = Resolver(template, parameters, region=region)
    res = template["Resources"]["ActivityForwardingRule"]
    if not resolver.condition(res["Condition"]):
        return None
    # (the forwarding role has no name to resolve its ARN from: the targets are compared as written)
    return resolver.resolve({k: v for k, v in res["Properties"].items() if k != "Targets"})


def _arn(name: str) -> str:
    return f"arn:aws:iam::{MEMBER_ACCOUNT}:role/{name}"


@pytest.mark.parametrize("parameters, roles", [
    (None, ["admin", "readonly"]),
    ({"AdminRoleName": "jit-admin", "ReadOnlyRoleName": "jit-ro"}, ["jit-admin", "jit-ro"]),
    ({"ReadOnlyRoleName": ""}, ["admin"]),
    ({"AdminRoleName": ""}, ["readonly"]),
])
def test_template_rule_is_the_python_pattern_for_its_roles(parameters, roles):
    rule = _rule(parameters)
    assert rule["EventPattern"] == activity_pattern([_arn(r) for r in roles])
    assert rule["State"] == ACTIVITY_RULE_STATE == "ENABLED"
    assert rule["EventBusName"] == "default"


def test_template_rule_forwards_in_every_region_not_only_where_the_roles_are_made():
    rule = _rule(region="eu-west-1")  # RolesRegion is us-east-1: no roles made here
    assert rule["EventPattern"] == activity_pattern([_arn("admin"), _arn("readonly")])
    assert matches(json.dumps(rule["EventPattern"]), load_activity("ec2_run_instances_admin"))


def test_no_jit_role_no_activity_rule():
    assert _rule({"AdminRoleName": "", "ReadOnlyRoleName": ""}) is None


def test_activity_rule_uses_the_forwarding_role_and_the_same_target():
    resources = cfn_yaml(MEMBER_TEMPLATE)["Resources"]
    (target,) = resources["ActivityForwardingRule"]["Properties"]["Targets"]
    assert [target] == resources["AssumeRoleForwardingRule"]["Properties"]["Targets"]
    assert target["RoleArn"] == {"Fn::GetAtt": ["ForwardingRole", "Arn"]} or \
        target["RoleArn"] == {"Fn::GetAtt": "ForwardingRole.Arn"}
