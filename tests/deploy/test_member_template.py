"""Issue 15, the member account's side of cutting sessions off: policies/member-account.yaml.

When a grant ends, Drawbridge's worker and sweep (bastion) assume the revoker role in the
member account and write a Deny into the cut-off policy attached to the JIT role. These
tests hold the template to what the issue asks:

* the revoker is trusted by the bastion's worker and sweep roles only;
* it may read the JIT roles and read/replace versions of the cut-off policies, nothing else
  (no wildcard action, no other resource, no policy attachment, boundary or trust change);
* every JIT role has its cut-off policy attached, a permissions boundary and the
  no-chaining policy; the initial cut-off denies no real session;
* the sample SCP keeps everyone else (a member account's own administrator, a JIT session)
  from rewriting those policies.

Trust-policy conditions, boundaries and SCPs are IAM semantics moto does not evaluate, so
the documents are tested: rendered with deploy/member_docs.py (the same rendering
parliament lints) and played with tests/deploy/iam_sim.py where a condition decides.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
import re
from pathlib import Path

import pytest

from deploy import member_docs, render
from deploy.member_docs import BASTION_ACCOUNT, MEMBER_ACCOUNT, Resolver
from deploy.render import cfn_yaml
from tests.deploy import iam_sim

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "policies" / "member-account.yaml"
SCP = ROOT / "policies" / "scp-protect-drawbridge.json"

#: JIT role logical id -> (its name parameter, its cut-off policy, the AWS managed policy it is granted)
JIT_ROLES = {
    "AdminRole": ("AdminRoleName", "AdminSessionCutoffs", "AdministratorAccess"),
    "ReadOnlyRole": ("ReadOnlyRoleName", "ReadOnlySessionCutoffs", "ReadOnlyAccess"),
}
REVOKER_ACTIONS = {"iam:GetRole", "iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions",
                   "iam:CreatePolicyVersion", "iam:DeletePolicyVersion"}
CUTOFF_ACTIONS = REVOKER_ACTIONS - {"iam:GetRole"}


def template() -> dict:
    return cfn_yaml(TEMPLATE)


def resources() -> dict:
    return template()["Resources"]


def cutoff_arn(role_name: str) -> str:
    return f"arn:aws:iam::{MEMBER_ACCOUNT}:policy/drawbridge/drawbridge-session-cutoffs-{role_name}"


def revoker_policy(parameters: dict | None = None) -> dict:
    return member_docs.documents(TEMPLATE, parameters)["member-RevokerRole-write-session-cutoffs"]


# --------------------------------------------------------------------------- the revoker's trust


def _bastion_role(name: str) -> str:
    return f"arn:aws:iam::{BASTION_ACCOUNT}:role/{name}"


def test_revoker_is_trusted_by_the_bastion_worker_and_sweep_roles_only():
    res = resources()
    trust = res["RevokerRole"]["Properties"]["AssumeRolePolicyDocument"]
    (st,) = trust["Statement"]
    assert st["Effect"] == "Allow" and st["Action"] == "sts:AssumeRole"
    assert st["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${BastionAccountId}:root"}}
    # exactly the two roles, by aws:PrincipalArn (the only condition)
    assert st["Condition"] == {"ArnLike": {"aws:PrincipalArn": [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::${BastionAccountId}:role/${BastionWorkerRoleName}"},
        {"Fn::Sub": "arn:${AWS::Partition}:iam::${BastionAccountId}:role/${BastionSweepRoleName}"},
    ]}}
    rendered = Resolver(template()).resolve(trust)
    suffix = "ABCDEF123456"  # what CloudFormation appends to the names it generates
    for fn in ("Worker", "Sweep"):
        arn = _bastion_role(f"drawbridge-prod-{fn}Role-{suffix}")
        assert iam_sim.allowed(rendered, "sts:AssumeRole", "*", {"aws:PrincipalArn": arn}), fn
    for other in ("drawbridge-prod-OnRoleAssumedRole-" + suffix, "drawbridge-prod-ApiHandlerRole-" + suffix,
                  "drawbridge-dev-WorkerRole-" + suffix, "OrganizationAccountAccessRole"):
        assert not iam_sim.allowed(rendered, "sts:AssumeRole", "*", {"aws:PrincipalArn": _bastion_role(other)}), other
    person = f"arn:aws:iam::{BASTION_ACCOUNT}:user/alice"
    assert not iam_sim.allowed(rendered, "sts:AssumeRole", "*", {"aws:PrincipalArn": person})


def test_revoker_trust_defaults_are_the_names_make_package_gives_the_prod_roles():
    """chalice package leaves the function roles unnamed (<function logical id>Role), so
    CloudFormation names them <stack>-<logical id>-<random>; the bastion stack is
    drawbridge-<stage> (mk/deploy.mk STACK)."""
    params = template()["Parameters"]
    app = render.chalice_config()["app_name"]
    assert re.search(r"^STACK\s*\?=\s*drawbridge-\$\(STAGE\)$", (ROOT / "mk" / "deploy.mk").read_text(), re.M)
    for fn, parameter in (("worker", "BastionWorkerRoleName"), ("sweep", "BastionSweepRoleName")):
        logical_id = render.FUNCTIONS[fn][0]
        assert params[parameter]["Default"] == f"{app}-prod-{logical_id}Role-*"
        assert re.fullmatch(params[parameter]["AllowedPattern"], params[parameter]["Default"])
        sam = ROOT / "build" / "prod" / "sam.json"
        if sam.exists():  # after make package: the role really is there under that logical id
            assert f"{logical_id}Role" in json.loads(sam.read_text())["Resources"]


# --------------------------------------------------------------------------- the revoker's permissions


def test_revoker_may_only_read_the_jit_roles_and_rewrite_their_cutoff_policies():
    doc = revoker_policy()
    by_sid = {st["Sid"]: st for st in doc["Statement"]}
    assert set(by_sid) == {"ReadJitRoles", "WriteSessionCutoffs"}
    assert all(st["Effect"] == "Allow" and set(st) == {"Sid", "Effect", "Action", "Resource"}
               for st in doc["Statement"]), "no NotAction/NotResource, no extra keys"
    actions = {a for st in doc["Statement"] for a in iam_sim.as_list(st["Action"])}
    assert actions == REVOKER_ACTIONS
    assert not any("*" in a or "?" in a for a in actions)
    assert iam_sim.as_list(by_sid["ReadJitRoles"]["Action"]) == ["iam:GetRole"]
    assert by_sid["ReadJitRoles"]["Resource"] == [f"arn:aws:iam::{MEMBER_ACCOUNT}:role/admin",
                                                  f"arn:aws:iam::{MEMBER_ACCOUNT}:role/readonly"]
    assert set(iam_sim.as_list(by_sid["WriteSessionCutoffs"]["Action"])) == CUTOFF_ACTIONS
    assert by_sid["WriteSessionCutoffs"]["Resource"] == [cutoff_arn("admin"), cutoff_arn("readonly")]


@pytest.mark.parametrize("action", ["iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
                                    "iam:PutRolePermissionsBoundary", "iam:DeleteRolePermissionsBoundary",
                                    "iam:UpdateAssumeRolePolicy", "iam:SetDefaultPolicyVersion",
                                    "iam:CreatePolicy", "iam:DeletePolicy", "sts:AssumeRole"])
def test_revoker_cannot_widen_attach_or_retrust(action):
    doc = revoker_policy()
    for resource in (f"arn:aws:iam::{MEMBER_ACCOUNT}:role/admin", cutoff_arn("admin"),
                     f"arn:aws:iam::{MEMBER_ACCOUNT}:policy/drawbridge/drawbridge-jit-no-chaining"):
        assert not iam_sim.allowed(doc, action, resource), (action, resource)
    # and its own versions-writing stops at the cut-off policies
    assert not iam_sim.allowed(doc, "iam:CreatePolicyVersion",
                               f"arn:aws:iam::{MEMBER_ACCOUNT}:policy/drawbridge/drawbridge-jit-no-chaining")
    assert not iam_sim.allowed(doc, "iam:CreatePolicyVersion", f"arn:aws:iam::{MEMBER_ACCOUNT}:policy/my-app")


def test_revoker_resources_follow_the_roles_the_account_gets():
    only_readonly = revoker_policy({"AdminRoleName": ""})
    resources_ = {r for st in only_readonly["Statement"] for r in iam_sim.as_list(st["Resource"])}
    assert resources_ == {f"arn:aws:iam::{MEMBER_ACCOUNT}:role/readonly", cutoff_arn("readonly")}
    # no JIT role at all (or another Region than RolesRegion): no revoker, no cut-offs
    for params in ({"AdminRoleName": "", "ReadOnlyRoleName": ""}, {"RolesRegion": "eu-west-1"}):
        docs = member_docs.documents(TEMPLATE, params)
        assert set(docs) == {"member-ForwardingRole-put-events-on-bastion-bus",
                             "member-HeartbeatRole-put-heartbeat-on-local-bus"}, params


def test_revoker_has_no_managed_policies_or_other_inline_policies():
    props = resources()["RevokerRole"]["Properties"]
    assert "ManagedPolicyArns" not in props
    assert [p["PolicyName"] for p in props["Policies"]] == ["write-session-cutoffs"]
    assert props["RoleName"] == {"Ref": "RevokerRoleName"}
    assert template()["Parameters"]["RevokerRoleName"]["Default"] == "DrawbridgeSessionRevoker"
    assert {t["Key"]: t["Value"] for t in props["Tags"]} == {"drawbridge": "revoker-role"}


# --------------------------------------------------------------------------- the JIT roles


@pytest.mark.parametrize("role_id", sorted(JIT_ROLES))
def test_every_jit_role_has_its_cutoff_policy_a_boundary_and_no_chaining(role_id):
    name_param, cutoff_id, granted = JIT_ROLES[role_id]
    res = resources()
    role = res[role_id]
    props = role["Properties"]
    grant = {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::aws:policy/{granted}"}
    assert props["ManagedPolicyArns"] == [grant, {"Ref": cutoff_id}, {"Ref": "JitNoChaining"}]
    # the boundary is the grant itself: whatever a cut-off version says, no more than that
    assert props["PermissionsBoundary"] == grant
    cutoff = res[cutoff_id]
    assert cutoff["Type"] == "AWS::IAM::ManagedPolicy"
    assert cutoff["Condition"] == role["Condition"]
    assert cutoff["Properties"]["ManagedPolicyName"] == {"Fn::Sub": f"drawbridge-session-cutoffs-${{{name_param}}}"}
    assert cutoff["Properties"]["Path"] == "/drawbridge/"
    # attached through the role only (a Roles/Users/Groups list would attach it elsewhere)
    assert not {"Roles", "Users", "Groups"} & set(cutoff["Properties"])


@pytest.mark.parametrize("cutoff_id", ["AdminSessionCutoffs", "ReadOnlySessionCutoffs"])
def test_initial_cutoff_denies_no_real_session(cutoff_id):
    doc = member_docs.documents(TEMPLATE)[f"member-{cutoff_id}"]
    assert {st["Effect"] for st in doc["Statement"]} == {"Deny"}, "a cut-off policy never allows"
    session = {"aws:userid": "AROAEXAMPLEID:alice", "aws:TokenIssueTime": "2026-12-01T10:00:00Z"}
    for action, resource in (("s3:GetObject", "arn:aws:s3:::b/k"), ("iam:CreateUser", "*")):
        assert iam_sim.decide(doc, action, resource, session) == iam_sim.IMPLICIT_DENY
    # and it is a real Deny shape, not a no-op by typo: an ancient session would be denied
    assert iam_sim.decide(doc, "s3:GetObject", "*", {"aws:TokenIssueTime": "1969-12-31T23:59:59Z"}) == iam_sim.DENY


def test_cutoff_policies_are_named_like_the_revoker_resources_and_the_scp():
    docs = member_docs.documents(TEMPLATE)
    assert set(docs) >= {"member-AdminSessionCutoffs", "member-ReadOnlySessionCutoffs", "member-JitNoChaining"}
    resolver = Resolver(template())
    assert resolver.resolve({"Ref": "AdminSessionCutoffs"}) == cutoff_arn("admin")
    scp_cutoffs = [st for st in json.loads(SCP.read_text())["Statement"] if st["Sid"] == "OnlyTheRevokerWritesCutoffs"]
    (st,) = scp_cutoffs
    assert iam_sim.statement_applies(st, "iam:CreatePolicyVersion", cutoff_arn("admin"), {})


# --------------------------------------------------------------------------- chaining

CHAIN_TARGET = "arn:aws:iam::333333333333:role/deploy"


def _no_chaining() -> dict:
    return member_docs.documents(TEMPLATE)["member-JitNoChaining"]


def test_jit_sessions_assume_no_further_role_unless_it_is_tagged_allowed():
    doc = _no_chaining()
    assert iam_sim.decide(doc, "sts:AssumeRole", CHAIN_TARGET, {}) == iam_sim.DENY
    assert iam_sim.decide(doc, "sts:AssumeRole", CHAIN_TARGET,
                          {"aws:ResourceTag/drawbridge-chain": "yes"}) == iam_sim.DENY
    assert iam_sim.decide(doc, "sts:AssumeRole", CHAIN_TARGET,
                          {"aws:ResourceTag/drawbridge-chain": "allowed"}) != iam_sim.DENY
    assert iam_sim.decide(doc, "sts:AssumeRoot", "*", {}) == iam_sim.DENY
    # the policy denies only: it grants nothing of its own
    assert {st["Effect"] for st in doc["Statement"]} == {"Deny"}


@pytest.mark.parametrize("action", ["iam:TagRole", "iam:UntagRole", "iam:CreateRole"])
def test_jit_sessions_cannot_mark_roles_as_chain_targets(action):
    doc = _no_chaining()
    role = f"arn:aws:iam::{MEMBER_ACCOUNT}:role/anything"
    assert iam_sim.decide(doc, action, role, {"aws:TagKeys": ["team", "drawbridge-chain"]}) == iam_sim.DENY
    assert iam_sim.decide(doc, action, role, {"aws:TagKeys": ["team"]}) != iam_sim.DENY


def test_chaining_condition_keys_and_actions_exist():
    """No typo silently allows chaining: each action is in the Service Authorization Reference
    (parliament's copy) and sts:AssumeRole acts on roles, which support aws:ResourceTag."""
    import parliament

    privileges = {f"{s['prefix']}:{p['privilege']}".lower(): (s, p)
                  for s in parliament.iam_definition for p in s["privileges"]}
    for st in _no_chaining()["Statement"]:
        for action in iam_sim.as_list(st["Action"]):
            assert action.lower() in privileges, action
    service, _ = privileges["sts:assumerole"]
    (role,) = [r for r in service["resources"] if r["resource"] == "role"]
    assert "aws:ResourceTag/${TagKey}" in role["condition_keys"]


# --------------------------------------------------------------------------- the SCP

LOCAL_ADMIN = {"aws:PrincipalArn": f"arn:aws:iam::{MEMBER_ACCOUNT}:role/OrganizationAccountAccessRole"}
JIT_SESSION = {"aws:PrincipalArn": f"arn:aws:iam::{MEMBER_ACCOUNT}:role/admin"}
REVOKER = {"aws:PrincipalArn": f"arn:aws:iam::{MEMBER_ACCOUNT}:role/DrawbridgeSessionRevoker"}
STACKSETS = {"aws:PrincipalArn": f"arn:aws:iam::{MEMBER_ACCOUNT}:role/stacksets-exec-0123456789abcdef"}
POLICY_EDITS = ["iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:SetDefaultPolicyVersion",
                "iam:DeletePolicy"]


def _scp() -> dict:
    return json.loads(SCP.read_text())


@pytest.mark.parametrize("action", POLICY_EDITS)
def test_scp_lets_only_the_revoker_rewrite_cutoffs(action):
    doc = _scp()
    for who in (LOCAL_ADMIN, JIT_SESSION):
        assert iam_sim.decide(doc, action, cutoff_arn("admin"), who) == iam_sim.DENY, who
    assert iam_sim.decide(doc, action, cutoff_arn("admin"), REVOKER) != iam_sim.DENY
    assert iam_sim.decide(doc, action, cutoff_arn("admin"), STACKSETS) != iam_sim.DENY
    no_chaining = f"arn:aws:iam::{MEMBER_ACCOUNT}:policy/drawbridge/drawbridge-jit-no-chaining"
    for who in (LOCAL_ADMIN, JIT_SESSION, REVOKER):
        assert iam_sim.decide(doc, action, no_chaining, who) == iam_sim.DENY, who
    assert iam_sim.decide(doc, action, no_chaining, STACKSETS) != iam_sim.DENY
    # the bastion's own grant policies (path /drawbridge/<stage>/) are not caught
    grant = "arn:aws:iam::111111111111:policy/drawbridge/prod/drawbridge-r-0001"
    assert iam_sim.decide(doc, action, grant, {"aws:PrincipalArn": "arn:aws:iam::111111111111:role/x"}) != iam_sim.DENY


def test_scp_names_the_revoker_the_template_creates_and_protects_it():
    doc = _scp()
    default = template()["Parameters"]["RevokerRoleName"]["Default"]
    assert REVOKER["aws:PrincipalArn"].endswith(f":role/{default}")
    revoker_role = f"arn:aws:iam::{MEMBER_ACCOUNT}:role/{default}"
    for action in ("iam:UpdateAssumeRolePolicy", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:DeleteRole"):
        assert iam_sim.decide(doc, action, revoker_role,
                              {**LOCAL_ADMIN, "aws:ResourceTag/drawbridge": "revoker-role"}) == iam_sim.DENY


def test_template_policies_live_where_the_scp_protects_them():
    for res in resources().values():
        if res["Type"] != "AWS::IAM::ManagedPolicy":
            continue
        props = res["Properties"]
        name = props["ManagedPolicyName"]
        name = name if isinstance(name, str) else name["Fn::Sub"]
        assert props["Path"] == "/drawbridge/"
        assert name.startswith(("drawbridge-session-cutoffs-", "drawbridge-jit-")), name


# --------------------------------------------------------------------------- lint


def test_lint_runs_parliament_on_the_member_documents_with_narrow_exceptions():
    lint = (ROOT / "deploy" / "lint.sh").read_text()
    assert "deploy.member_docs" in lint and '"$LINT_DIR"/member-*.json' in lint
    import yaml

    ignores = yaml.safe_load((ROOT / "deploy" / "parliament.yaml").read_text())
    member = [(issue, ign) for issue, settings in ignores.items() for ign in settings["ignore_locations"]
              if "member" in ign["filepath"]]
    assert member == [
        ("PRIVILEGE_ESCALATION", {"filepath": r"build/lint/member-RevokerRole-write-session-cutoffs\.json",
                                  "type": "CreateNewPolicyVersion"}),
        ("PERMISSIONS_MANAGEMENT_ACTIONS", {"filepath": r"build/lint/member-RevokerRole-write-session-cutoffs\.json"}),
    ]


def test_the_initial_cutoff_document_is_the_one_the_bastion_reads_back_as_empty():
    """The template's first version is chalicelib/cutoff.py's placeholder, so the first merge
    reads it as "no cut-offs yet" rather than as a statement it cannot parse."""
    from chalicelib import cutoff

    for _, policy_id, _ in JIT_ROLES.values():
        doc = template()["Resources"][policy_id]["Properties"]["PolicyDocument"]
        assert doc["Statement"] == [cutoff.EMPTY_STATEMENT]
        merged = cutoff.merge(doc, [], now=datetime(2026, 11, 12, tzinfo=timezone.utc))
        assert not merged.changed and not merged.unreadable and not merged.kept
