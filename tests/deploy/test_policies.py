"""What gets deployed, checked as documents (fast, offline; `make lint-deploy` runs the real
`chalice package`, cfn-lint and parliament).

* .chalice/config.json: stages, autogen_policy false, one rendered policy file per variant;
* the Lambda policies: no ``*`` actions, ``"Resource": "*"`` only for actions without
  resource-level permissions, and every AWS call the code makes (found with ``ast``, not
  grep) allowed on the resource it touches — IAM only for the worker and the sweep;
* the merge template, the member-account template (rule, trust policy), the boundary.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from chalicelib.event_pattern import ASSUME_ROLE_PATTERN, RULE_STATE
from deploy import render

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT, REGION = "123456789012", "eu-west-1"
STAGES = render.stages()
MEMBER_TEMPLATE = ROOT / "policies" / "member-account.yaml"
BASTION_IAM_TEMPLATE = ROOT / "policies" / "bastion-iam.yaml"
BOUNDARY = ROOT / "policies" / "permission-boundary.json"

#: Actions IAM cannot scope to a resource (Service Authorization Reference: no resource
#: type), so "Resource": "*" is the only way to allow them. Checked against parliament's
#: copy of that reference below.
NO_RESOURCE_LEVEL = {"iam:ListPolicies", "iam:GetAccountPasswordPolicy", "iam:ListVirtualMFADevices"}


# --------------------------------------------------------------------------- helpers


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short tags (!Ref, !Sub ...) as {"Fn::X": value}."""


def _cfn_tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        return {name: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def cfn(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


@lru_cache(maxsize=None)
def lambda_policy(stage: str, variant: str) -> dict:
    return render.lambda_policy(stage, variant, account=ACCOUNT, region=REGION)


def all_policies() -> dict[str, dict]:
    docs = {f"{stage}/{variant}": lambda_policy(stage, variant) for stage in STAGES for variant in render.VARIANTS}
    docs["permission-boundary.json"] = json.loads(BOUNDARY.read_text())
    for res_id, res in cfn(MEMBER_TEMPLATE)["Resources"].items():
        for p in res["Properties"].get("Policies", []):
            docs[f"member-account.yaml/{res_id}/{p['PolicyName']}"] = p["PolicyDocument"]
    return docs


def allows(doc: dict, action: str, resource: str) -> bool:
    """Does an Allow statement name this action and resource? (conditions not evaluated)"""
    for st in doc["Statement"]:
        if st["Effect"] != "Allow":
            continue
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in as_list(st["Action"])):
            continue
        if any(fnmatch.fnmatchcase(resource, r) for r in as_list(st["Resource"])):
            return True
    return False


# --------------------------------------------------------------------------- .chalice/config.json


def test_config_parses_and_has_the_two_stages():
    config = render.chalice_config()
    assert config["app_name"] == "drawbridge"
    assert STAGES == ["dev", "prod"]
    assert config["autogen_policy"] is False


@pytest.mark.parametrize("stage", STAGES)
def test_stage_config_is_consistent_with_the_names_the_templates_use(stage):
    assert render.check_config(stage) == []


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_gets_a_rendered_policy_file(stage, tmp_path):
    config = render.chalice_config()
    st = config["stages"][stage]
    assert st["autogen_policy"] is False
    written = {p.name for p in render.write_policies(stage, account=ACCOUNT, region=REGION, out_dir=tmp_path)}
    for fn in render.FUNCTIONS:
        name = st.get("lambda_functions", {}).get(fn, {}).get("iam_policy_file") or st["iam_policy_file"]
        assert name in written, f"{stage}/{fn} uses {name}, which `make package` does not write"
        assert json.loads((tmp_path / name).read_text())["Statement"]


def test_rendered_policy_files_are_git_ignored():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".chalice/policy-*.json" in ignored
    assert "chalicelib/access.toml" in ignored


def test_function_settings():
    functions = render.chalice_config()["lambda_functions"]
    assert functions["worker"]["lambda_timeout"] == 60
    assert functions["sweep"]["lambda_timeout"] == 60
    assert functions["on_role_assumed"]["lambda_timeout"] == 30
    assert functions["api_handler"]["lambda_timeout"] <= 10  # Slack waits 3 s; fail fast


def test_no_secret_values_in_config_and_boto3_not_packaged():
    text = (ROOT / ".chalice" / "config.json").read_text()
    assert not re.search(r"xox[bp]-", text)
    requirements = (ROOT / "requirements.txt").read_text().lower()
    assert not re.search(r"^(boto3|botocore)\b", requirements, re.M)


def test_the_template_hard_codes_no_account_or_region():
    text = json.dumps(render.lambda_policy("dev", "grants", account=ACCOUNT, region=REGION))
    assert set(re.findall(r"\b\d{12}\b", text)) == {ACCOUNT}
    assert set(re.findall(r"\b[a-z]{2}-[a-z]+-\d\b", text)) == {REGION}


def test_a_bad_account_or_region_is_refused():
    with pytest.raises(render.RenderError):
        render.lambda_policy("dev", "grants", account="1234", region=REGION)
    with pytest.raises(render.RenderError):
        render.lambda_policy("dev", "grants", account=ACCOUNT, region="Ireland")


# --------------------------------------------------------------------------- least privilege


@pytest.mark.parametrize("name", sorted(all_policies()))
def test_no_wildcard_actions(name):
    for st in all_policies()[name]["Statement"]:
        for action in as_list(st["Action"]):
            assert action != "*" and not action.endswith(":*"), f"{name}: {st.get('Sid')} allows {action}"
        assert "NotAction" not in st and "NotResource" not in st


@pytest.mark.parametrize("name", sorted(all_policies()))
def test_resource_star_only_for_actions_without_resource_level_permissions(name):
    for st in all_policies()[name]["Statement"]:
        if "*" in as_list(st["Resource"]):
            extra = set(as_list(st["Action"])) - NO_RESOURCE_LEVEL
            assert not extra, f"{name}: {st.get('Sid')} allows {sorted(extra)} on *"


def test_the_no_resource_level_list_is_true():
    """Cross-check the allow-list against the Service Authorization Reference (parliament's copy)."""
    import parliament

    privileges = {f"{s['prefix']}:{p['privilege']}": p for s in parliament.iam_definition for p in s["privileges"]}
    for action in NO_RESOURCE_LEVEL:
        resource_types = {r["resource_type"] for r in privileges[action]["resource_types"]}
        assert resource_types <= {""}, f"{action} does support resource-level permissions: {resource_types}"


# -- every AWS call the code makes, found with ast


def _wiring_services() -> dict[str, str]:
    """Adapter class -> AWS service, from ``SomeAdapter(aws_client("svc"), ...)`` in wiring.py."""
    out = {}
    for node in ast.walk(ast.parse((ROOT / "chalicelib" / "wiring.py").read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args
                and isinstance(node.args[0], ast.Call) and getattr(node.args[0].func, "id", "") == "aws_client"):
            out[node.func.id] = node.args[0].args[0].value
    return out


def _client_attrs(cls: ast.ClassDef) -> set[str]:
    """``self._x`` attributes assigned from __init__'s first parameter (the client)."""
    for fn in cls.body:
        if isinstance(fn, ast.FunctionDef) and fn.name == "__init__":
            client = fn.args.args[1].arg
            return {t.attr for n in ast.walk(fn) if isinstance(n, ast.Assign)
                    and isinstance(n.value, ast.Name) and n.value.id == client
                    for t in n.targets if isinstance(t, ast.Attribute)}
    return set()


def _op(call: ast.Call, method: str) -> str:
    return call.args[0].value if method == "get_paginator" else method


def aws_calls() -> set[tuple[str, str]]:
    """(service, boto3 method) for every call in chalicelib/adapters/*.py, handlers.py, wiring.py."""
    services = _wiring_services()
    calls: set[tuple[str, str]] = set()
    files = sorted((ROOT / "chalicelib" / "adapters").glob("*.py")) + [
        ROOT / "chalicelib" / "handlers.py", ROOT / "chalicelib" / "wiring.py"]
    for path in files:
        tree = ast.parse(path.read_text())
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name in services):
            attrs = _client_attrs(cls)
            for call in (n for n in ast.walk(cls) if isinstance(n, ast.Call)):
                f = call.func
                if (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Attribute)
                        and isinstance(f.value.value, ast.Name) and f.value.value.id == "self"
                        and f.value.attr in attrs):
                    calls.add((services[cls.name], _op(call, f.attr)))
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            f = call.func
            if (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Call)
                    and getattr(f.value.func, "attr", getattr(f.value.func, "id", "")) == "aws_client"):
                calls.add((f.value.args[0].value, _op(call, f.attr)))
            if (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Call)
                    and getattr(f.value.func, "attr", getattr(f.value.func, "id", "")) == "lambda_client"):
                calls.add(("lambda", _op(call, f.attr)))  # wiring.lambda_client(): the cached worker client
            if isinstance(f, ast.Attribute) and f.attr == "get_parameter" and getattr(f.value, "id", "") == "parameters":
                calls.add(("ssm", "get_parameter"))  # Powertools Parameters (wiring._secret)
    return calls


#: boto3 operations whose IAM actions are not simply <prefix>:<Operation>
ACTION_OVERRIDES = {
    # no IAM action of its own: each item needs its own action; our transactions hold only Puts
    ("dynamodb", "TransactWriteItems"): {"dynamodb:PutItem"},
    ("lambda", "Invoke"): {"lambda:InvokeFunction"},
}
#: actions a call needs besides its own
IMPLIED = {"iam:CreatePolicy": {"iam:TagPolicy"}}  # create_policy(Tags=...) needs iam:TagPolicy


@lru_cache(maxsize=None)
def _operations(service: str) -> tuple[str, dict[str, str]]:
    """(IAM prefix, boto3 method -> API operation) from botocore's service model (offline)."""
    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(service)
    return model.signing_name, {xform_name(op): op for op in model.operation_names}


def iam_actions(service: str, method: str) -> set[str]:
    prefix, ops = _operations(service)
    assert method in ops, f"{service}.{method} is not a boto3 operation"
    op = ops[method]
    actions = ACTION_OVERRIDES.get((service, op), {f"{prefix}:{op}"})
    return actions | set().union(*(IMPLIED.get(a, set()) for a in actions))


def example_resources(action: str, stage: str) -> list[str]:
    """What the code touches with ``action`` (KeyError: a new action; map it and allow it)."""
    env = render.chalice_config()["stages"][stage]["environment_variables"]
    policy = f"arn:aws:iam::{ACCOUNT}:policy{env['DRAWBRIDGE_POLICY_PATH']}drawbridge-r-0001"
    user = f"arn:aws:iam::{ACCOUNT}:user/alice"
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{env['DRAWBRIDGE_TABLE']}"
    return {
        "iam:CreatePolicy": [policy], "iam:DeletePolicy": [policy], "iam:TagPolicy": [policy],
        "iam:GetPolicy": [policy], "iam:GetPolicyVersion": [policy], "iam:ListEntitiesForPolicy": [policy], "iam:ListPolicyVersions": [policy],
        "iam:AttachUserPolicy": [user], "iam:DetachUserPolicy": [user], "iam:ListAttachedUserPolicies": [user],
        "iam:ListMFADevices": [user],
        "iam:ListPolicies": ["*"],
        "dynamodb:GetItem": [table], "dynamodb:PutItem": [table], "dynamodb:UpdateItem": [table],
        "dynamodb:DeleteItem": [table],
        "dynamodb:Query": [table, f"{table}/index/due", f"{table}/index/open_by_person"],
        "lambda:InvokeFunction": [f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{env['DRAWBRIDGE_WORKER_FUNCTION']}"],
        "ssm:GetParameter": [f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{env[v]}"
                             for v in ("SLACK_SIGNING_SECRET_PARAM", "SLACK_BOT_TOKEN_PARAM")],
    }[action]


def test_the_scan_finds_the_calls_we_know_about():
    calls = aws_calls()
    for known in [("iam", "create_policy"), ("iam", "attach_user_policy"), ("iam", "list_attached_user_policies"),
                  ("dynamodb", "transact_write_items"), ("dynamodb", "query"), ("lambda", "invoke"),
                  ("ssm", "get_parameter")]:
        assert known in calls


@pytest.mark.parametrize("stage", STAGES)
def test_the_lambda_policies_allow_every_call_the_code_makes(stage):
    missing = []
    for service, method in sorted(aws_calls()):
        # IAM runs in the worker and the sweep only; the API handler defers to the worker.
        variants = {"iam": ["grants"], "lambda": ["no-iam"]}.get(service, list(render.VARIANTS))
        for action in sorted(iam_actions(service, method)):
            for resource in example_resources(action, stage):
                for variant in variants:
                    if not allows(lambda_policy(stage, variant), action, resource):
                        missing.append(f"{variant}: {action} on {resource} ({service}.{method})")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("stage", STAGES)
def test_the_api_and_event_handlers_cannot_touch_iam(stage):
    doc = lambda_policy(stage, "no-iam")
    assert not [a for st in doc["Statement"] for a in as_list(st["Action"]) if a.startswith("iam:")]
    assert not [a for st in lambda_policy(stage, "grants")["Statement"]
                for a in as_list(st["Action"]) if a.startswith("lambda:")]


def _statement(doc: dict, action: str) -> dict:
    (st,) = [s for s in doc["Statement"] if action in as_list(s["Action"])]
    return st


@pytest.mark.parametrize("stage", STAGES)
def test_iam_writes_are_limited_to_drawbridge_policies_and_bounded_users(stage):
    doc = lambda_policy(stage, "grants")
    ours = f"arn:aws:iam::{ACCOUNT}:policy/drawbridge/{stage}/*"
    env = render.chalice_config()["stages"][stage]["environment_variables"]
    assert env["DRAWBRIDGE_POLICY_PATH"] == f"/drawbridge/{stage}/"  # the code's path is what the policy allows
    for action in ("iam:CreatePolicy", "iam:DeletePolicy", "iam:TagPolicy"):
        assert as_list(_statement(doc, action)["Resource"]) == [ours]
    attach = _statement(doc, "iam:AttachUserPolicy")["Condition"]
    assert attach["ArnLike"]["iam:PolicyARN"] == ours
    assert attach["ArnEquals"]["iam:PermissionsBoundary"] == \
        f"arn:aws:iam::{ACCOUNT}:policy/{render.BOUNDARY_POLICY_NAME}"
    assert _statement(doc, "iam:DetachUserPolicy")["Condition"]["ArnLike"]["iam:PolicyARN"] == ours
    assert not allows(doc, "iam:CreatePolicy", f"arn:aws:iam::{ACCOUNT}:policy/{render.BOUNDARY_POLICY_NAME}")
    other = "prod" if stage == "dev" else "dev"  # stages in one bastion account never touch each other's grants
    assert not allows(doc, "iam:DeletePolicy", f"arn:aws:iam::{ACCOUNT}:policy/drawbridge/{other}/drawbridge-r-0001")


@pytest.mark.parametrize("stage", STAGES)
def test_secrets_decrypt_only_through_ssm_for_this_stage(stage):
    cond = _statement(lambda_policy(stage, "grants"), "kms:Decrypt")["Condition"]
    assert cond["StringEquals"]["kms:ViaService"] == f"ssm.{REGION}.amazonaws.com"
    assert cond["StringLike"]["kms:EncryptionContext:PARAMETER_ARN"].endswith(f":parameter/drawbridge/{stage}/*")


def test_stages_cannot_reach_each_other():
    dev = lambda_policy("dev", "grants")
    prod_table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/drawbridge-prod"
    assert not allows(dev, "dynamodb:GetItem", prod_table)
    assert not allows(dev, "ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/drawbridge/prod/x")


# --------------------------------------------------------------------------- merge template


@pytest.mark.parametrize("stage", STAGES)
def test_merge_template_adds_the_table_from_table_json(stage):
    merged = render.merge_template(stage)
    table = json.loads((ROOT / "policies" / "table.json").read_text())["Resources"]["DrawbridgeTable"]
    got = merged["Resources"]["DrawbridgeTable"]
    assert got["Properties"].pop("TableName") == f"drawbridge-{stage}"
    assert got == table


@pytest.mark.parametrize("stage", STAGES)
def test_merge_template_sets_the_rule_state_names_and_alarms(stage):
    res = render.merge_template(stage)["Resources"]
    function_id, event_id = render.ROLE_ASSUMED_EVENT
    assert res[function_id]["Properties"]["Events"][event_id]["Properties"]["State"] == RULE_STATE
    env = render.chalice_config()["stages"][stage]["environment_variables"]
    assert res["Worker"]["Properties"]["FunctionName"] == env["DRAWBRIDGE_WORKER_FUNCTION"]
    for fn, (fid, log_id) in render.FUNCTIONS.items():
        name = res[fid]["Properties"]["FunctionName"]
        assert res[log_id]["Properties"]["LogGroupName"] == f"/aws/lambda/{name}"
        assert res[fid]["DependsOn"] == [log_id]
    for fid in ("Worker", "Sweep", "OnRoleAssumed"):
        alarm = res[f"{fid}ErrorsAlarm"]["Properties"]
        assert alarm["MetricName"] == "Errors" and alarm["Dimensions"][0]["Value"] == {"Ref": fid}


def test_merge_template_refuses_a_config_that_disagrees():
    config = render.chalice_config()
    config["stages"]["dev"]["environment_variables"]["DRAWBRIDGE_TABLE"] = "some-other-table"
    with pytest.raises(render.RenderError, match="DRAWBRIDGE_TABLE"):
        render.merge_template("dev", config)


def test_package_check_catches_a_missing_logical_id():
    from deploy.package import check_template

    merge = render.merge_template("dev")
    sam = {"Resources": {k: {"Type": "X", **v} for k, v in merge["Resources"].items()}}
    sam["Resources"]["OnRoleAssumed"]["Properties"]["Events"]["OnRoleAssumedEvent"]["Properties"]["Pattern"] = \
        ASSUME_ROLE_PATTERN
    assert check_template(sam, merge) == []
    del sam["Resources"]["Sweep"]
    assert any("Sweep" in p for p in check_template(sam, merge))


# --------------------------------------------------------------------------- member accounts


def _target_roles() -> dict[str, dict]:
    res = cfn(MEMBER_TEMPLATE)["Resources"]
    return {k: v["Properties"] for k, v in res.items()
            if v["Type"] == "AWS::IAM::Role" and "ManagedPolicyArns" in v["Properties"]}


def test_member_template_forwards_with_the_apps_pattern_and_state():
    (rule,) = [r["Properties"] for r in cfn(MEMBER_TEMPLATE)["Resources"].values() if r["Type"] == "AWS::Events::Rule"]
    assert rule["EventPattern"] == ASSUME_ROLE_PATTERN
    assert rule["State"] == RULE_STATE


def test_member_target_roles_trust_the_bastion_only_with_mfa_and_the_users_own_name():
    roles = _target_roles()
    assert set(roles) == {"AdminRole", "ReadOnlyRole"}
    for role in roles.values():
        (st,) = role["AssumeRolePolicyDocument"]["Statement"]
        assert st["Effect"] == "Allow" and st["Action"] == "sts:AssumeRole"
        assert st["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${BastionAccountId}:root"}}
        assert st["Condition"]["Bool"] == {"aws:MultiFactorAuthPresent": "true"}
        assert st["Condition"]["StringLike"] == {"sts:RoleSessionName": "${aws:username}"}
        assert role["MaxSessionDuration"] == {"Ref": "MaxSessionDuration"}


def test_member_roles_are_created_in_one_region_only():
    template = cfn(MEMBER_TEMPLATE)
    assert template["Parameters"]["MaxSessionDuration"]["Default"] == 3600
    for res_id in _target_roles():
        condition = template["Resources"][res_id]["Condition"]
        assert {"Fn::Condition": "InRolesRegion"} in template["Conditions"][condition]["Fn::And"]


def test_local_seed_uses_the_same_trust_conditions():
    from local.seed import trust_policy

    (st,) = trust_policy("111111111111")["Statement"]
    (member,) = next(iter(_target_roles().values()))["AssumeRolePolicyDocument"]["Statement"]
    assert st["Condition"] == member["Condition"]


# --------------------------------------------------------------------------- the boundary


def test_bastion_template_carries_the_boundary_document():
    (policy,) = [r["Properties"] for r in cfn(BASTION_IAM_TEMPLATE)["Resources"].values()
                 if r["Type"] == "AWS::IAM::ManagedPolicy"]
    assert policy["ManagedPolicyName"] == render.BOUNDARY_POLICY_NAME
    doc = json.loads(BOUNDARY.read_text())
    default = cfn(BASTION_IAM_TEMPLATE)["Parameters"]["AssumableRoleArns"]["Default"].split(",")
    got = json.loads(json.dumps(policy["PolicyDocument"]).replace(
        json.dumps({"Ref": "AssumableRoleArns"}), json.dumps(default)))
    assert got == doc


def test_boundary_caps_people_at_assume_role_and_self_service():
    doc = json.loads(BOUNDARY.read_text())
    assert allows(doc, "sts:AssumeRole", "arn:aws:iam::222222222222:role/admin")
    for action, resource in [("iam:CreatePolicy", "arn:aws:iam::111111111111:policy/x"),
                             ("iam:AttachUserPolicy", "arn:aws:iam::111111111111:user/alice"),
                             ("iam:DeleteUserPermissionsBoundary", "arn:aws:iam::111111111111:user/alice"),
                             ("s3:GetObject", "arn:aws:s3:::bucket/key"),
                             ("sts:AssumeRole", "arn:aws:iam::222222222222:user/x")]:
        assert not allows(doc, action, resource), action
    own = [s for s in doc["Statement"] if "iam:CreateAccessKey" in as_list(s["Action"])]
    assert own and all(s["Resource"] == "arn:aws:iam::*:user/${aws:username}" for s in own)
