"""Guardrails outside Drawbridge's own stack (ISSUE #12 Medium 7):

* policies/scp-protect-drawbridge.json, the sample service control policy that keeps member
  accounts' own administrators from switching off the forwarding rule, editing the
  just-in-time roles' trust or policies, or stopping CloudTrail;
* policies/bastion-regions.yaml, which forwards the bastion account's own events from
  every other Region to the Drawbridge Region;
* the watchdog rule beside each forwarding rule, and who may put the path's heartbeat
  (the SCP at the sender, policies/bastion-event-bus-policy.yaml at the bastion bus).

SCPs are IAM semantics that moto does not evaluate: the SCP is tested as a document, with
tests/deploy/iam_sim.py playing the requests a member-account administrator could make.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from moto.events.models import EventPattern

from chalicelib.event_pattern import (
    ACTIVITY_RULE_STATE,
    FORWARD_PATTERN,
    HEARTBEAT_SOURCE,
    RULE_STATE,
    TAMPER_PATTERN,
    WATCHDOG_RULE_NAME,
)
from deploy.render import cfn_yaml
from tests.deploy import iam_sim
from tests.fixtures import load_cloudtrail

ROOT = Path(__file__).resolve().parents[2]
SCP = ROOT / "policies" / "scp-protect-drawbridge.json"
MEMBER_TEMPLATE = ROOT / "policies" / "member-account.yaml"
BASTION_REGIONS = ROOT / "policies" / "bastion-regions.yaml"
BUS_POLICY = ROOT / "policies" / "bastion-event-bus-policy.yaml"

MEMBER = "222222222222"
#: a member account's own administrator (SCPs apply to every principal of the account)
LOCAL_ADMIN = {"aws:PrincipalArn": f"arn:aws:iam::{MEMBER}:role/OrganizationAccountAccessRole"}
#: the role service-managed StackSets use in the member account
STACKSETS = {"aws:PrincipalArn": f"arn:aws:iam::{MEMBER}:role/stacksets-exec-0123456789abcdef0123456789abcdef"}
TARGET_ROLE = f"arn:aws:iam::{MEMBER}:role/admin"
FORWARDING_RULE = f"arn:aws:events:us-east-1:{MEMBER}:rule/StackSet-drawbridge-member-1a2b-AssumeRoleForwardingRule-X1"
#: the roles that carry heartbeats have fixed names (RoleName in both templates)
FORWARDING_ROLE = f"arn:aws:iam::{MEMBER}:role/drawbridge-forwarding-us-east-1"
HEARTBEAT_ROLE = f"arn:aws:iam::{MEMBER}:role/drawbridge-heartbeat-eu-west-1"
#: the names the two roles had when CloudFormation generated them: no longer exempt
GENERATED_ROLE = f"arn:aws:iam::{MEMBER}:role/StackSet-drawbridge-member-0c9e1d2a-HeartbeatRo-1Q2W3E4R5T6Y"

ROLE_EDITS = ["iam:UpdateAssumeRolePolicy", "iam:DeleteRole", "iam:PutRolePolicy", "iam:AttachRolePolicy",
              "iam:DetachRolePolicy", "iam:UpdateRole", "iam:DeleteRolePermissionsBoundary",
              "iam:DeleteRolePolicy", "iam:PutRolePermissionsBoundary", "iam:UntagRole", "iam:TagRole"]
RULE_EDITS = ["events:DeleteRule", "events:PutRule", "events:PutTargets", "events:RemoveTargets",
              "events:DisableRule"]


def scp() -> dict:
    return json.loads(SCP.read_text())


def _tagged(tag_value: str) -> dict:
    return {"aws:ResourceTag/drawbridge": tag_value}


# --------------------------------------------------------------------------- the SCP


def test_scp_is_deny_only_and_fits_organizations_limit():
    """Organizations counts an SCP's characters with its whitespace taken out (the console
    and API minify it), so that is what must fit; the pretty file is printed beside it."""
    doc = scp()
    assert doc["Version"] == "2012-10-17"
    assert {st["Effect"] for st in doc["Statement"]} == {"Deny"}
    minified = len(json.dumps(doc, separators=(",", ":")))
    pretty = len(SCP.read_text())
    assert minified <= 5120, f"SCPs are limited to 5,120 characters: {minified} minified ({pretty} as the file)"


@pytest.mark.parametrize("action", ROLE_EDITS)
def test_nobody_but_stacksets_edits_the_jit_roles_or_the_forwarding_role(action):
    doc = scp()
    assert iam_sim.decide(doc, action, TARGET_ROLE, {**LOCAL_ADMIN, **_tagged("target-role")}) == iam_sim.DENY
    assert iam_sim.decide(doc, action, FORWARDING_ROLE, {**LOCAL_ADMIN, **_tagged("forwarding-role")}) == iam_sim.DENY
    # by name as well (the heartbeat exemption names them): untagged, they stay protected
    for role in (FORWARDING_ROLE, HEARTBEAT_ROLE):
        assert iam_sim.decide(doc, action, role, LOCAL_ADMIN) == iam_sim.DENY, role
        assert iam_sim.decide(doc, action, role, STACKSETS) != iam_sim.DENY, role
    # the StackSet itself still deploys and updates them
    assert iam_sim.decide(doc, action, TARGET_ROLE, {**STACKSETS, **_tagged("target-role")}) != iam_sim.DENY
    # and the account's other roles are none of its business
    other = f"arn:aws:iam::{MEMBER}:role/my-app"
    assert iam_sim.decide(doc, action, other, {**LOCAL_ADMIN, **_tagged("something-else")}) != iam_sim.DENY


@pytest.mark.parametrize("action", RULE_EDITS)
def test_nobody_but_stacksets_edits_or_deletes_the_forwarding_rule(action):
    doc = scp()
    assert iam_sim.decide(doc, action, FORWARDING_RULE, LOCAL_ADMIN) == iam_sim.DENY
    assert iam_sim.decide(doc, action, FORWARDING_RULE, STACKSETS) != iam_sim.DENY
    other = f"arn:aws:events:us-east-1:{MEMBER}:rule/my-app-rule"
    assert iam_sim.decide(doc, action, other, LOCAL_ADMIN) != iam_sim.DENY


@pytest.mark.parametrize("action", ["cloudtrail:StopLogging", "cloudtrail:DeleteTrail",
                                    "cloudtrail:UpdateTrail", "cloudtrail:PutEventSelectors"])
def test_nobody_stops_cloudtrail(action):
    trail = f"arn:aws:cloudtrail:us-east-1:{MEMBER}:trail/drawbridge"
    assert iam_sim.decide(scp(), action, trail, LOCAL_ADMIN) == iam_sim.DENY


def test_nobody_makes_themselves_the_exempted_stacksets_role():
    """The exemption is by role name: a local administrator must not create a role with that
    name, or give the real one a trust policy they can use. (The service-linked role that
    creates stacksets-exec-* is not subject to SCPs.)"""
    doc = scp()
    fake = f"arn:aws:iam::{MEMBER}:role/stacksets-exec-mine"
    for action in ("iam:CreateRole", "iam:UpdateAssumeRolePolicy", "iam:PutRolePolicy", "iam:AttachRolePolicy"):
        assert iam_sim.decide(doc, action, fake, LOCAL_ADMIN) == iam_sim.DENY, action


def test_scp_actions_and_condition_keys_exist():
    """No typo silently protects nothing: every action is in the Service Authorization Reference
    (parliament's copy), and the tag-conditioned IAM actions act on roles, whose resource
    type supports aws:ResourceTag."""
    import parliament

    privileges = {f"{s['prefix']}:{p['privilege']}".lower(): (s, p)
                  for s in parliament.iam_definition for p in s["privileges"]}
    for st in scp()["Statement"]:
        for action in iam_sim.as_list(st["Action"]):
            assert action.lower() in privileges, action
            if "aws:ResourceTag/drawbridge" in st.get("Condition", {}).get("StringEquals", {}):
                service, privilege = privileges[action.lower()]
                types = {r["resource_type"].rstrip("*") for r in privilege["resource_types"]} - {""}
                assert types == {"role"}, action
                (role,) = [r for r in service["resources"] if r["resource"] == "role"]
                assert "aws:ResourceTag/${TagKey}" in role["condition_keys"]


def test_the_member_template_carries_what_the_scp_keys_on():
    res = cfn_yaml(MEMBER_TEMPLATE)["Resources"]
    tags = {k: {t["Key"]: t["Value"] for t in r["Properties"].get("Tags", [])}
            for k, r in res.items() if r["Type"] == "AWS::IAM::Role"}
    assert tags["AdminRole"]["drawbridge"] == tags["ReadOnlyRole"]["drawbridge"] == "target-role"
    assert tags["ForwardingRole"]["drawbridge"] == tags["HeartbeatRole"]["drawbridge"] == "forwarding-role"
    # the forwarding and activity rules are unnamed: CloudFormation names them after the
    # StackSet's stacks (StackSet-drawbridge-member-...); the watchdog has a fixed name
    rules = {k: r["Properties"] for k, r in res.items() if r["Type"] == "AWS::Events::Rule"}
    # the ways in (alerts), the watchdog (tampering) and the JIT sessions' writes (grant activity)
    assert set(rules) == {"AssumeRoleForwardingRule", "TamperWatchRule", "ActivityForwardingRule"}
    assert "Name" not in rules["AssumeRoleForwardingRule"] and "Name" not in rules["ActivityForwardingRule"]
    assert rules["TamperWatchRule"]["Name"] == WATCHDOG_RULE_NAME
    names = [r for st in scp()["Statement"] if st["Sid"] == "ProtectForwardingRules"
             for r in iam_sim.as_list(st["Resource"])]
    assert "arn:aws:events:*:*:rule/StackSet-drawbridge-member-*" in names
    assert f"arn:aws:events:*:*:rule/{WATCHDOG_RULE_NAME}" in names


def test_lint_sh_runs_parliament_on_the_scp():
    lint = (ROOT / "deploy" / "lint.sh").read_text()
    assert "policies/scp-protect-drawbridge.json" in lint


# --------------------------------------------------------------------------- bastion Regions


def _regions_template() -> dict:
    return cfn_yaml(BASTION_REGIONS)


def test_bastion_regions_forward_what_the_bastion_alerts_on_and_the_heartbeat():
    rule = _regions_template()["Resources"]["AssumeRoleForwardingRule"]["Properties"]
    assert rule["EventPattern"] == FORWARD_PATTERN
    assert rule["State"] == RULE_STATE
    assert rule["EventBusName"] == "default"


def test_bastion_regions_forward_no_activity():
    """Member accounts send their activity straight to the home Region's bus; the bastion's
    own role sessions make no grant activity, so its other Regions forward none."""
    assert "ActivityForwardingRule" not in _regions_template()["Resources"]


def test_bastion_regions_forward_to_the_home_regions_default_bus_only():
    template = _regions_template()
    (rule,) = [template["Resources"]["AssumeRoleForwardingRule"]["Properties"]]
    (target,) = rule["Targets"]
    home_bus = {"Fn::Sub": "arn:${AWS::Partition}:events:${HomeRegion}:${AWS::AccountId}:event-bus/default"}
    assert target["Arn"] == home_bus
    role = template["Resources"][target["RoleArn"]["Fn::GetAtt"].split(".")[0]]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert statements == [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": home_bus}]
    assert {t["Key"]: t["Value"] for t in role["Tags"]} == {"drawbridge": "forwarding-role"}


def test_bastion_regions_refuse_the_home_region():
    """There on_role_assumed's own rule sees the events; a forwarding rule would loop them."""
    template = _regions_template()
    (assertion,) = [a for rule in template["Rules"].values() for a in rule["Assertions"]]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AWS::Region"}, {"Ref": "HomeRegion"}]}]}
    assert re.fullmatch(template["Parameters"]["HomeRegion"]["AllowedPattern"], "eu-west-1")


@pytest.mark.parametrize("action", ["scheduler:DeleteSchedule", "scheduler:UpdateSchedule"])
def test_nobody_but_stacksets_deletes_or_changes_the_heartbeat_schedule(action):
    """A deleted or paused heartbeat is noticed (the path goes silent after 12 minutes); the
    SCP keeps a local administrator from doing it in the first place."""
    doc = scp()
    schedule = f"arn:aws:scheduler:eu-west-1:{MEMBER}:schedule/default/drawbridge-heartbeat"
    assert iam_sim.decide(doc, action, schedule, LOCAL_ADMIN) == iam_sim.DENY
    assert iam_sim.decide(doc, action, schedule, STACKSETS) != iam_sim.DENY
    other = f"arn:aws:scheduler:eu-west-1:{MEMBER}:schedule/default/nightly-report"
    assert iam_sim.decide(doc, action, other, LOCAL_ADMIN) != iam_sim.DENY
    # the same name in another group is not ours, and is not protected
    elsewhere = f"arn:aws:scheduler:eu-west-1:{MEMBER}:schedule/reports/drawbridge-heartbeat"
    assert iam_sim.decide(doc, action, elsewhere, LOCAL_ADMIN) != iam_sim.DENY


@pytest.mark.parametrize("path", [MEMBER_TEMPLATE, BASTION_REGIONS], ids=["member", "bastion-regions"])
def test_the_heartbeat_schedule_has_the_fixed_name_the_scp_protects(path):
    """Not a generated name: the SCP names schedule/default/drawbridge-heartbeat (the default
    group, no GroupName), one per account and Region (one Drawbridge stack in each)."""
    res = cfn_yaml(path)["Resources"]
    (heartbeat,) = [r["Properties"] for r in res.values() if r["Type"] == "AWS::Scheduler::Schedule"]
    assert heartbeat["Name"] == "drawbridge-heartbeat" and "GroupName" not in heartbeat
    (protect,) = [st for st in scp()["Statement"] if st["Sid"] == "ProtectHeartbeatSchedules"]
    assert protect["Resource"] == f"arn:aws:scheduler:*:*:schedule/default/{heartbeat['Name']}"


# --------------------------------------------------------------------------- the watchdog rule
# A rule never sees its own deletion (CloudTrail's record reaches the bus after the rule is
# gone): each template has a second rule with the tampering branches alone, and each rule
# reports the other's deletion.

TEMPLATES = {"member": MEMBER_TEMPLATE, "bastion-regions": BASTION_REGIONS}
#: the two rules' names: the forwarding rule's is generated, <stack name>-<logical id>-<random>
#: cut to 64 characters, where a StackSet's stack is StackSet-<StackSet name>-<uuid> (a
#: realistic shape, not one read from AWS: the tamper branch and the SCP match any
#: StackSet-drawbridge-* name); the watchdog's is fixed
RULE_NAMES = {
    "member": {
        "AssumeRoleForwardingRule": "StackSet-drawbridge-member-8f14e45f-AssumeRoleFo-1K8ZQ3V2HJ7X",
        "TamperWatchRule": WATCHDOG_RULE_NAME,
    },
    "bastion-regions": {
        "AssumeRoleForwardingRule": "StackSet-drawbridge-bastion-regions-c9f-AssumeRo-5TGB6YHN7UJM",
        "TamperWatchRule": WATCHDOG_RULE_NAME,
    },
}
#: the tampering fixtures (tests/unit/test_event_pattern.py TAMPER_FIXTURES)
TAMPER_FIXTURES = ("cloudtrail_stop_logging_prod", "cloudtrail_put_event_selectors_denied_dev",
                   "events_delete_forwarding_rule_prod")


def _rule_call(event_name: str, rule_name: str) -> dict:
    """A CloudTrail record of ``event_name`` on the rule ``rule_name``, as EventBridge delivers it."""
    event = load_cloudtrail("events_delete_forwarding_rule_prod")
    params = ({"rule": rule_name, "ids": ["drawbridge-bastion-bus"], "force": False}
              if event_name == "RemoveTargets" else {"name": rule_name, "force": False})
    return {**event, "detail": {**event["detail"], "eventName": event_name, "requestParameters": params}}


@pytest.mark.parametrize("which", TEMPLATES)
def test_the_watchdog_forwards_exactly_the_tampering_to_the_forwarding_rules_target(which):
    res = cfn_yaml(TEMPLATES[which])["Resources"]
    watchdog = res["TamperWatchRule"]["Properties"]
    forwarding = res["AssumeRoleForwardingRule"]["Properties"]
    assert watchdog["EventPattern"] == TAMPER_PATTERN
    assert watchdog["EventBusName"] == "default"
    # same bus, same role: the forwarding role's one PutEvents statement covers it
    assert watchdog["Targets"] == forwarding["Targets"]
    # a fixed name the SCP protects and the tamper branch watches; its sibling's is generated
    assert watchdog["Name"] == WATCHDOG_RULE_NAME == "drawbridge-watchdog" and "Name" not in forwarding


@pytest.mark.parametrize("which", TEMPLATES)
def test_the_watchdog_is_plain_enabled_because_tampering_calls_are_write_events(which):
    """Only read-only management events (AssumeRole*) need RULE_STATE; write management
    events reach a rule in ENABLED (ACTIVITY_RULE_STATE), and every tampering call is one."""
    watchdog = cfn_yaml(TEMPLATES[which])["Resources"]["TamperWatchRule"]["Properties"]
    assert watchdog["State"] == ACTIVITY_RULE_STATE == "ENABLED" != RULE_STATE
    for name in TAMPER_FIXTURES:
        record = load_cloudtrail(name)["detail"]
        assert record["readOnly"] is False and record["managementEvent"] is True, name


@pytest.mark.parametrize("event_name", ["DeleteRule", "DisableRule", "RemoveTargets"])
@pytest.mark.parametrize("which", TEMPLATES)
def test_each_rule_reports_tampering_with_the_other(which, event_name):
    """moto's matcher on the templates' own patterns: the watchdog's fixed name, and a
    realistic generated name of the forwarding rule."""
    res = cfn_yaml(TEMPLATES[which])["Resources"]
    names = RULE_NAMES[which]
    assert res["TamperWatchRule"]["Properties"]["Name"] == names["TamperWatchRule"]
    assert names["AssumeRoleForwardingRule"].startswith(f"StackSet-drawbridge-{which}-")
    for watcher, watched in (("AssumeRoleForwardingRule", "TamperWatchRule"),
                             ("TamperWatchRule", "AssumeRoleForwardingRule")):
        name = names[watched]
        assert len(name) <= 64
        pattern = EventPattern.load(json.dumps(res[watcher]["Properties"]["EventPattern"]))
        assert pattern.matches_event(_rule_call(event_name, name)), (watcher, watched)


@pytest.mark.parametrize("which", TEMPLATES)
def test_the_scp_protects_both_rules_by_their_names(which):
    doc = scp()
    for name in RULE_NAMES[which].values():
        rule = f"arn:aws:events:eu-west-1:{MEMBER}:rule/{name}"
        for action in RULE_EDITS:
            assert iam_sim.decide(doc, action, rule, LOCAL_ADMIN) == iam_sim.DENY, (name, action)
            assert iam_sim.decide(doc, action, rule, STACKSETS) != iam_sim.DENY, (name, action)


# --------------------------------------------------------------------------- forged heartbeats
# Document tests: moto does not evaluate SCPs, resource-policy Denies or condition keys, so
# iam_sim plays IAM's documented semantics on the documents. Whether EventBridge fills
# events:source and aws:PrincipalArn as documented, for a rule forwarding cross-account
# too, is AWS's to do and is not checked here.

BEAT = {"events:source": [HEARTBEAT_SOURCE]}
#: a batch that hides one heartbeat among other entries (events:source is multivalued)
BEAT_IN_A_BATCH = {"events:source": ["my.app", HEARTBEAT_SOURCE]}
BASTION = "111111111111"
BASTION_BUS = f"arn:aws:events:us-east-1:{BASTION}:event-bus/default"
MEMBER_BUS = f"arn:aws:events:eu-west-1:{MEMBER}:event-bus/default"
BASTION_REGIONS_ROLE = f"arn:aws:iam::{BASTION}:role/drawbridge-forwarding-eu-west-1"


def test_the_heartbeat_condition_key_is_one_put_events_has():
    """events:source is a condition key of events:PutEvents in the Service Authorization
    Reference (parliament's copy): a typo or a key PutEvents lacks would deny nothing."""
    import parliament

    (events,) = [s for s in parliament.iam_definition if s["prefix"] == "events"]
    (put,) = [p for p in events["privileges"] if p["privilege"] == "PutEvents"]
    assert "events:source" in {k for r in put["resource_types"] for k in r["condition_keys"]}


@pytest.mark.parametrize("bus", [MEMBER_BUS, BASTION_BUS], ids=["own-bus", "bastion-bus"])
def test_in_a_member_account_only_drawbridges_roles_put_heartbeats(bus):
    doc = scp()
    put = "events:PutEvents"
    for who in (LOCAL_ADMIN, STACKSETS):  # not even the StackSet's execution role
        assert iam_sim.decide(doc, put, bus, {**who, **BEAT}) == iam_sim.DENY
        assert iam_sim.decide(doc, put, bus, {**who, **BEAT_IN_A_BATCH}) == iam_sim.DENY
    # the schedule's role on its own bus, the forwarding role onward to the bastion
    assert iam_sim.decide(doc, put, bus, {"aws:PrincipalArn": HEARTBEAT_ROLE, **BEAT}) != iam_sim.DENY
    assert iam_sim.decide(doc, put, bus, {"aws:PrincipalArn": FORWARDING_ROLE, **BEAT}) != iam_sim.DENY
    # any other role, a CloudFormation-generated StackSet-drawbridge-member-... name included
    for other in (GENERATED_ROLE, f"arn:aws:iam::{MEMBER}:role/drawbridge-heartbeat",
                  f"arn:aws:iam::{MEMBER}:role/my-drawbridge-heartbeat-eu-west-1"):
        assert iam_sim.decide(doc, put, bus, {"aws:PrincipalArn": other, **BEAT}) == iam_sim.DENY, other
    # everybody's own events are none of the SCP's business
    assert iam_sim.decide(doc, put, bus, {**LOCAL_ADMIN, "events:source": ["my.app"]}) != iam_sim.DENY


def test_nobody_squats_or_lends_out_drawbridges_role_names():
    """The heartbeat exemption is by role name: a local administrator must neither create a
    role with such a name nor pass the real heartbeat or forwarding role to a schedule or
    rule of their own (which would then put heartbeats as that role)."""
    doc = scp()
    for role in (HEARTBEAT_ROLE, FORWARDING_ROLE, f"arn:aws:iam::{MEMBER}:role/drawbridge-heartbeat-mine",
                 f"arn:aws:iam::{MEMBER}:role/drawbridge-forwarding-mine",
                 # a path that makes the ARN look like ours is caught by the same pattern
                 f"arn:aws:iam::{MEMBER}:role/drawbridge-heartbeat-x/mine"):
        for action in ("iam:CreateRole", "iam:PassRole"):
            assert iam_sim.decide(doc, action, role, LOCAL_ADMIN) == iam_sim.DENY, (role, action)
            assert iam_sim.decide(doc, action, role, STACKSETS) != iam_sim.DENY, (role, action)


@pytest.mark.parametrize("path", [MEMBER_TEMPLATE, BASTION_REGIONS], ids=["member", "bastion-regions"])
def test_the_roles_that_put_heartbeats_have_the_names_the_exemption_matches(path):
    """The schedule's role and the rules' role have fixed names, per Region (IAM names are
    per account; a StackSet has a stack in each of an account's Regions), which are what the
    SCP and bus policy exempt and protect: a CloudFormation-generated name's shape is not
    ours to rely on, and a miss would deny the real heartbeats."""
    res = cfn_yaml(path)["Resources"]
    (schedule,) = [r["Properties"] for r in res.values() if r["Type"] == "AWS::Scheduler::Schedule"]
    roles = {schedule["Target"]["RoleArn"]["Fn::GetAtt"].split(".")[0],
             res["AssumeRoleForwardingRule"]["Properties"]["Targets"][0]["RoleArn"]["Fn::GetAtt"].split(".")[0]}
    assert roles == {"HeartbeatRole", "ForwardingRole"}
    assert res["HeartbeatRole"]["Properties"]["RoleName"] == {"Fn::Sub": "drawbridge-heartbeat-${AWS::Region}"}
    assert res["ForwardingRole"]["Properties"]["RoleName"] == {"Fn::Sub": "drawbridge-forwarding-${AWS::Region}"}
    # every rule's role is the forwarding role (no other role carries events)
    assert {t["RoleArn"]["Fn::GetAtt"].split(".")[0] for r in res.values() if r["Type"] == "AWS::Events::Rule"
            for t in r["Properties"]["Targets"]} == {"ForwardingRole"}
    # the names as deployed (longest Region name) fit IAM's 64 characters, and are exempt
    (heartbeat_deny,) = [st for st in scp()["Statement"] if st["Sid"] == "OnlyDrawbridgeRolesPutHeartbeats"]
    for role in ("HeartbeatRole", "ForwardingRole"):
        name = res[role]["Properties"]["RoleName"]["Fn::Sub"].replace("${AWS::Region}", "ap-southeast-2")
        assert len(name) <= 64
        arn = f"arn:aws:iam::{MEMBER}:role/{name}"
        assert iam_sim.decide(scp(), "events:PutEvents", MEMBER_BUS,
                              {"aws:PrincipalArn": arn, **BEAT}) != iam_sim.DENY, name
        assert iam_sim.decide(scp(), "iam:PassRole", arn, LOCAL_ADMIN) == iam_sim.DENY, name
    assert heartbeat_deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"] == [
        "arn:aws:iam::*:role/drawbridge-heartbeat-*", "arn:aws:iam::*:role/drawbridge-forwarding-*"]


def _bus_policy() -> dict:
    """The bastion bus policy's statements, with the template's !Sub / !Ref filled in."""
    values = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": BASTION,
              "OrganizationId": "o-a1b2c3d4e5"}

    def fill(node):
        if isinstance(node, dict) and set(node) == {"Fn::Sub"}:
            return re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], node["Fn::Sub"])
        if isinstance(node, dict) and set(node) == {"Ref"}:
            return values[node["Ref"]]
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        return node

    res = cfn_yaml(BUS_POLICY)["Resources"]
    policies = {k: r["Properties"] for k, r in res.items() if r["Type"] == "AWS::Events::EventBusPolicy"}
    assert len({p["StatementId"] for p in policies.values()}) == len(policies) == 2
    assert all(p["EventBusName"] == "default" for p in policies.values())
    # both rewrite the one bus policy: one after the other
    assert res["HeartbeatOnlyFromDrawbridgeRoles"]["DependsOn"] == "OrganizationPutEvents"
    return {"Statement": [fill(p["Statement"]) for p in policies.values()]}


def test_the_bastion_bus_takes_heartbeats_from_drawbridges_roles_only():
    doc = _bus_policy()
    org = {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}
    put = "events:PutEvents"
    (deny,) = [st for st in doc["Statement"] if st["Effect"] == "Deny"]
    assert deny["Principal"] == "*" and deny["Action"] == put
    # forwarded by the member's forwarding role, or by the bastion's other Regions' role
    assert iam_sim.decide(doc, put, BASTION_BUS, {"aws:PrincipalArn": FORWARDING_ROLE, **org, **BEAT}) == iam_sim.ALLOW
    assert iam_sim.decide(doc, put, BASTION_BUS,
                          {"aws:PrincipalArn": BASTION_REGIONS_ROLE, **org, **BEAT}) == iam_sim.ALLOW
    # the member's heartbeat role is exempt too (it only puts on its own bus; same list as the SCP)
    assert iam_sim.decide(doc, put, BASTION_BUS, {"aws:PrincipalArn": HEARTBEAT_ROLE, **org, **BEAT}) == iam_sim.ALLOW
    # put straight onto the bus by anybody else: a member's administrator, the bastion's own,
    # a role with the generated name the StackSet roles had before they were named
    for who in (LOCAL_ADMIN, {"aws:PrincipalArn": f"arn:aws:iam::{BASTION}:role/Admin"},
                {"aws:PrincipalArn": GENERATED_ROLE}):
        assert iam_sim.decide(doc, put, BASTION_BUS, {**who, **org, **BEAT}) == iam_sim.DENY
        assert iam_sim.decide(doc, put, BASTION_BUS, {**who, **org, **BEAT_IN_A_BATCH}) == iam_sim.DENY
    # the organization's other events still come in, and strangers' do not
    assert iam_sim.decide(doc, put, BASTION_BUS,
                          {**LOCAL_ADMIN, **org, "events:source": ["my.app"]}) == iam_sim.ALLOW
    assert iam_sim.decide(doc, put, BASTION_BUS, {**LOCAL_ADMIN, "aws:PrincipalOrgID": "o-other00000",
                                                  "events:source": ["my.app"]}) == iam_sim.IMPLICIT_DENY


def test_the_bus_policy_and_the_scp_exempt_the_same_roles():
    (scp_deny,) = [st for st in scp()["Statement"] if st["Sid"] == "OnlyDrawbridgeRolesPutHeartbeats"]
    (bus_deny,) = [st for st in _bus_policy()["Statement"] if st["Effect"] == "Deny"]
    for st in (scp_deny, bus_deny):
        assert st["Condition"]["ForAnyValue:StringEquals"] == {"events:source": HEARTBEAT_SOURCE}
    assert scp_deny["Condition"]["ArnNotLike"] == bus_deny["Condition"]["ArnNotLike"]
