"""Guardrails outside Drawbridge's own stack (ISSUE #12 Medium 7):

* policies/scp-protect-drawbridge.json, the sample service control policy that keeps member
  accounts' own administrators from switching off the forwarding rule, editing the
  just-in-time roles' trust or policies, or stopping CloudTrail;
* policies/bastion-regions.yaml, which forwards the bastion account's own events from
  every other Region to the Drawbridge Region.

SCPs are IAM semantics that moto does not evaluate: the SCP is tested as a document, with
tests/deploy/iam_sim.py playing the requests a member-account administrator could make.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chalicelib.event_pattern import FORWARD_PATTERN, RULE_STATE
from deploy.render import cfn_yaml
from tests.deploy import iam_sim

ROOT = Path(__file__).resolve().parents[2]
SCP = ROOT / "policies" / "scp-protect-drawbridge.json"
MEMBER_TEMPLATE = ROOT / "policies" / "member-account.yaml"
BASTION_REGIONS = ROOT / "policies" / "bastion-regions.yaml"

MEMBER = "222222222222"
#: a member account's own administrator (SCPs apply to every principal of the account)
LOCAL_ADMIN = {"aws:PrincipalArn": f"arn:aws:iam::{MEMBER}:role/OrganizationAccountAccessRole"}
#: the role service-managed StackSets use in the member account
STACKSETS = {"aws:PrincipalArn": f"arn:aws:iam::{MEMBER}:role/stacksets-exec-0123456789abcdef0123456789abcdef"}
TARGET_ROLE = f"arn:aws:iam::{MEMBER}:role/admin"
FORWARDING_RULE = f"arn:aws:events:us-east-1:{MEMBER}:rule/StackSet-drawbridge-member-1a2b-AssumeRoleForwardingRule-X1"
FORWARDING_ROLE = f"arn:aws:iam::{MEMBER}:role/StackSet-drawbridge-member-1a2b-ForwardingRole-Y2"

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
    doc = scp()
    assert doc["Version"] == "2012-10-17"
    assert {st["Effect"] for st in doc["Statement"]} == {"Deny"}
    assert len(SCP.read_text()) <= 5120, "SCPs are limited to 5,120 characters"


@pytest.mark.parametrize("action", ROLE_EDITS)
def test_nobody_but_stacksets_edits_the_jit_roles_or_the_forwarding_role(action):
    doc = scp()
    assert iam_sim.decide(doc, action, TARGET_ROLE, {**LOCAL_ADMIN, **_tagged("target-role")}) == iam_sim.DENY
    assert iam_sim.decide(doc, action, FORWARDING_ROLE, {**LOCAL_ADMIN, **_tagged("forwarding-role")}) == iam_sim.DENY
    # by name as well: the forwarding role of a stack deployed before it was tagged
    assert iam_sim.decide(doc, action, FORWARDING_ROLE, LOCAL_ADMIN) == iam_sim.DENY
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
    assert tags["ForwardingRole"]["drawbridge"] == "forwarding-role"
    # no fixed names: CloudFormation names the rule and the role after the StackSet's stacks
    # (StackSet-drawbridge-member-...), which is what the SCP's name-based ARNs match
    rules = [r for r in res.values() if r["Type"] == "AWS::Events::Rule"]
    assert len(rules) == 2  # the ways in (alerts) and the JIT sessions' writes (grant activity)
    assert all("Name" not in rule["Properties"] for rule in rules)
    assert "RoleName" not in res["ForwardingRole"]["Properties"]
    names = [r for st in scp()["Statement"] if st["Sid"] == "ProtectForwardingRules"
             for r in iam_sim.as_list(st["Resource"])]
    assert "arn:aws:events:*:*:rule/StackSet-drawbridge-member-*" in names


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
    """A deleted or paused heartbeat is noticed (the path goes silent after 10 minutes); the
    SCP keeps a local administrator from doing it in the first place."""
    doc = scp()
    schedule = f"arn:aws:scheduler:eu-west-1:{MEMBER}:schedule/default/StackSet-drawbridge-member-1a2b-HeartbeatSchedule-Z3"
    assert iam_sim.decide(doc, action, schedule, LOCAL_ADMIN) == iam_sim.DENY
    assert iam_sim.decide(doc, action, schedule, STACKSETS) != iam_sim.DENY
    other = f"arn:aws:scheduler:eu-west-1:{MEMBER}:schedule/default/nightly-report"
    assert iam_sim.decide(doc, action, other, LOCAL_ADMIN) != iam_sim.DENY
    res = cfn_yaml(MEMBER_TEMPLATE)["Resources"]
    (heartbeat,) = [r for r in res.values() if r["Type"] == "AWS::Scheduler::Schedule"]
    assert "Name" not in heartbeat["Properties"] and "GroupName" not in heartbeat["Properties"]
