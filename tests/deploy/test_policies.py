"""What gets deployed, checked as documents (fast, offline; `make lint-deploy` runs the real
`chalice package`, cfn-lint and parliament).

* .chalice/config.json: stages, autogen_policy false, one rendered policy file per variant;
* the Lambda policies: no ``*`` actions, ``"Resource": "*"`` only for actions without
  resource-level permissions, and every AWS call the code makes (found with ``ast``, not
  grep) allowed on the resource it touches — IAM only for the worker and the sweep;
* the merge template (table, rule state, where on_role_assumed's failures go), the
  member-account template (rule, trust policy, session length), the human boundary and
  self-service policy (the catalog's roles only; new MFA devices only with MFA or in an
  administrator-opened window).

IAM semantics that moto does not evaluate (conditions, permission boundaries, trust
policies) are tested on the documents, with tests/deploy/iam_sim.py where a rule reads
better as a request that is allowed or denied.
"""

from __future__ import annotations

import ast
import copy
import fnmatch
import json
import re
from functools import lru_cache
from pathlib import Path

import pytest

from chalicelib.event_pattern import ASSUME_ROLE_PATTERN, FORWARD_PATTERN, RULE_STATE
from deploy import render
from tests.deploy import iam_sim

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT, REGION = "123456789012", "eu-west-1"
STAGES = render.stages()
MEMBER_TEMPLATE = ROOT / "policies" / "member-account.yaml"
BASTION_IAM_TEMPLATE = ROOT / "policies" / "bastion-iam.yaml"
BOUNDARY = ROOT / "policies" / "permission-boundary.json"
BASTION_REGIONS_TEMPLATE = ROOT / "policies" / "bastion-regions.yaml"

#: Actions IAM cannot scope to a resource (Service Authorization Reference: no resource
#: type), so "Resource": "*" is the only way to allow them. Checked against parliament's
#: copy of that reference below.
NO_RESOURCE_LEVEL = {"iam:ListPolicies", "iam:GetAccountPasswordPolicy", "iam:ListVirtualMFADevices"}


# --------------------------------------------------------------------------- helpers


def cfn(path: Path) -> dict:
    """A CloudFormation YAML template with its short tags read (the deploy tooling's reader)."""
    return render.cfn_yaml(path)


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


@lru_cache(maxsize=None)
def lambda_policy(stage: str, variant: str) -> dict:
    return render.lambda_policy(stage, variant, account=ACCOUNT, region=REGION)


def all_policies() -> dict[str, dict]:
    """Every identity policy and boundary we deploy (Allow documents; the SCP is tested apart)."""
    docs = {f"{stage}/{variant}": lambda_policy(stage, variant) for stage in STAGES for variant in render.VARIANTS}
    for stage in STAGES:
        for fn in render.FUNCTION_EXTRA:
            docs[f"{stage}/extra-{fn}"] = render.extra_policy(stage, fn, account=ACCOUNT, region=REGION)
    docs["permission-boundary.json"] = json.loads(BOUNDARY.read_text())
    docs["bastion-iam.yaml/HumanSelfService"] = _self_service_policy()
    for template in (MEMBER_TEMPLATE, BASTION_REGIONS_TEMPLATE):
        for res_id, res in cfn(template)["Resources"].items():
            for p in res["Properties"].get("Policies", []):
                docs[f"{template.name}/{res_id}/{p['PolicyName']}"] = p["PolicyDocument"]
    return docs


def _self_service_policy() -> dict:
    (policy,) = [r["Properties"]["PolicyDocument"] for r in cfn(BASTION_IAM_TEMPLATE)["Resources"].values()
                 if r["Type"] == "AWS::IAM::ManagedPolicy"
                 and r["Properties"]["ManagedPolicyName"] == "DrawbridgeHumanSelfService"]
    return policy


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
    # the bastion, and the member accounts (their revokers) from the catalog
    assert set(re.findall(r"\b\d{12}\b", text)) == {ACCOUNT, *_catalog_accounts()}
    assert ACCOUNT not in _catalog_accounts()
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
            if (isinstance(f, ast.Attribute) and f.attr == "get" and isinstance(f.value, ast.Call)
                    and getattr(f.value.func, "id", "") == "_ssm_parameters"):
                calls.add(("ssm", "get_parameter"))  # Powertools Parameters' SSMProvider.get (wiring._secret)
    return calls


SESSION_CUTS = ROOT / "chalicelib" / "adapters" / "session_cuts.py"


def session_cut_calls() -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(calls made with the function's own credentials, calls made as a member account's
    revoker) in chalicelib/adapters/session_cuts.py: ``self._sts.x()`` is the Lambda role
    assuming the revoker; ``iam.x()`` / ``self._iam(role).x()`` run with the revoker's
    credentials, so policies/member-account.yaml's RevokerRole must allow them, not the
    Lambda policy. Any other client call in that file fails the scan (it would be unchecked)."""
    own: set[tuple[str, str]] = set()
    revoker: set[tuple[str, str]] = set()
    tree = ast.parse(SESSION_CUTS.read_text())
    (cls,) = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "IamSessionCuts"]
    for call in (n for n in ast.walk(cls) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)):
        target, method = call.func.value, call.func.attr
        if isinstance(target, ast.Attribute) and target.attr == "_sts":
            own.add(("sts", method))
        elif (isinstance(target, ast.Name) and target.id == "iam") or (
                isinstance(target, ast.Call) and getattr(target.func, "attr", "") == "_iam"):
            revoker.add(("iam", method))
    return own, revoker


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
        "iam:CreatePolicyVersion": [policy], "iam:DeletePolicyVersion": [policy],
        "iam:AttachUserPolicy": [user], "iam:DetachUserPolicy": [user], "iam:ListAttachedUserPolicies": [user],
        "iam:ListMFADevices": [user],
        "iam:ListPolicies": ["*"],
        "sts:AssumeRole": [f"arn:aws:iam::{a}:role/{render.revoker_role(stage)}" for a in _catalog_accounts()],
        "dynamodb:GetItem": [table], "dynamodb:PutItem": [table], "dynamodb:UpdateItem": [table],
        "dynamodb:DeleteItem": [table],
        "dynamodb:Query": [table, f"{table}/index/due", f"{table}/index/open_by_person"],
        "lambda:InvokeFunction": [f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{env['DRAWBRIDGE_WORKER_FUNCTION']}"],
        "ssm:GetParameter": [f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{env[v]}"
                             for v in ("SLACK_SIGNING_SECRET_PARAM", "SLACK_BOT_TOKEN_PARAM")],
    }[action]


def _catalog_accounts() -> list[str]:
    from chalicelib.catalog import load_catalog

    return sorted({a.id for a in load_catalog(render.CATALOG).accounts.values()})


def test_the_scan_finds_the_calls_we_know_about():
    calls = aws_calls()
    for known in [("iam", "create_policy"), ("iam", "attach_user_policy"), ("iam", "list_attached_user_policies"),
                  ("dynamodb", "transact_write_items"), ("dynamodb", "query"), ("lambda", "invoke"),
                  ("ssm", "get_parameter")]:
        assert known in calls


@pytest.mark.parametrize("stage", STAGES)
def test_the_lambda_policies_allow_every_call_the_code_makes(stage):
    missing = []
    for service, method in sorted(aws_calls() | session_cut_calls()[0]):
        # IAM (and assuming the revokers) runs in the worker and the sweep only; the API
        # handler defers to the worker.
        variants = {"iam": ["grants", "sweep"], "sts": ["grants", "sweep"],
                    "lambda": ["no-iam", "sweep"]}.get(service, list(render.VARIANTS))
        for action in sorted(iam_actions(service, method)):
            for resource in example_resources(action, stage):
                for variant in variants:
                    if not allows(lambda_policy(stage, variant), action, resource):
                        missing.append(f"{variant}: {action} on {resource} ({service}.{method})")
    assert not missing, "\n".join(missing)


def test_the_scan_finds_the_session_cut_calls():
    own, revoker = session_cut_calls()
    assert own == {("sts", "assume_role")}
    assert revoker == {("iam", m) for m in ("get_role", "get_policy", "get_policy_version", "list_policy_versions",
                                            "create_policy_version", "delete_policy_version")}


def test_the_revoker_allows_every_call_made_with_its_credentials():
    """Those calls are not the Lambda role's: they run as the member account's revoker
    (policies/member-account.yaml RevokerRole), on the JIT roles and their cut-off policies."""
    from chalicelib import cutoff
    from deploy import member_docs

    doc = member_docs.documents()["member-RevokerRole-write-session-cutoffs"]
    template = cfn(MEMBER_TEMPLATE)["Parameters"]
    acct = member_docs.MEMBER_ACCOUNT
    roles = [template[p]["Default"] for p in ("AdminRoleName", "ReadOnlyRoleName")]
    missing = []
    for service, method in sorted(session_cut_calls()[1]):
        for action in sorted(iam_actions(service, method)):
            for role in roles:
                resource = (f"arn:aws:iam::{acct}:role/{role}" if action == "iam:GetRole" else
                            f"arn:aws:iam::{acct}:policy{cutoff.CUTOFF_POLICY_PATH}{cutoff.cutoff_policy_name(role)}")
                if not allows(doc, action, resource):
                    missing.append(f"{action} on {resource} ({service}.{method})")
    assert not missing, "\n".join(missing)
    # and the template's defaults are what the code assumes
    assert template["RevokerRoleName"]["Default"] == render.DEFAULT_REVOKER_ROLE


@pytest.mark.parametrize("stage", STAGES)
def test_the_worker_and_sweep_assume_the_revoker_in_the_catalogs_accounts_only(stage):
    doc = lambda_policy(stage, "grants")
    st = _statement(doc, "sts:AssumeRole")
    assert st["Resource"] == [f"arn:aws:iam::{a}:role/DrawbridgeSessionRevoker" for a in _catalog_accounts()]
    assert "Condition" not in st
    for other in ("arn:aws:iam::444455556666:role/DrawbridgeSessionRevoker", "arn:aws:iam::222222222222:role/admin",
                  f"arn:aws:iam::{ACCOUNT}:role/DrawbridgeSessionRevoker"):
        assert not allows(doc, "sts:AssumeRole", other), other


@pytest.mark.parametrize("stage", STAGES)
def test_the_sweep_may_hand_reviews_to_the_worker_and_nothing_else_to_any_function(stage):
    """The sweep never runs an access review itself (a 90-day one can outlast its 60 s): it
    invokes the worker with it (usecases/sweep.py ``_owed_review``, access_review.backstop).
    Its role may invoke the worker, no other function; the worker's role invokes nothing,
    and the sweep's holds everything the worker's does."""
    worker = render.names(stage)["worker"]
    doc = lambda_policy(stage, "sweep")
    assert render.FUNCTION_VARIANT["sweep"] == "sweep" and render.FUNCTION_VARIANT["worker"] == "grants"
    assert allows(doc, "lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{worker}")
    for other in ("weekly_review", "sweep", "on_role_assumed"):
        name = render.names(stage)["functions"][other]
        assert not allows(doc, "lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
    assert set(render.VARIANTS["grants"]) < set(render.VARIANTS["sweep"])
    assert not render.check_config(stage)


@pytest.mark.parametrize("stage", STAGES)
def test_the_api_and_event_handlers_cannot_touch_iam(stage):
    doc = lambda_policy(stage, "no-iam")
    assert not [a for st in doc["Statement"] for a in as_list(st["Action"]) if a.startswith(("iam:", "sts:"))]
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
    for action in ("iam:CreatePolicy", "iam:DeletePolicy", "iam:TagPolicy", "iam:CreatePolicyVersion",
                   "iam:DeletePolicyVersion"):
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


def test_what_stages_sharing_one_bastion_account_share():
    """ISSUE #12 Medium 4: why DEPLOY.md recommends one bastion account per stage. Each
    stage's attach statement is bound to its own policy path, but to the one account-wide
    boundary: dev's worker may attach (its own, arbitrary) grants to every bounded person,
    production people included. (A condition, so the document is what is tested.)"""
    conditions = {stage: _statement(lambda_policy(stage, "grants"), "iam:AttachUserPolicy")["Condition"]
                  for stage in STAGES}
    assert conditions["dev"]["ArnEquals"] == conditions["prod"]["ArnEquals"]  # the same boundary
    assert conditions["dev"]["ArnLike"] != conditions["prod"]["ArnLike"]  # but their own policy paths
    assert "/drawbridge/dev/" in conditions["dev"]["ArnLike"]["iam:PolicyARN"]
    deploy_md = (ROOT / "docs" / "DEPLOY.md").read_text()
    assert "one bastion account per stage" in deploy_md.lower()


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


@pytest.mark.parametrize("stage", STAGES)
def test_on_role_assumed_failures_land_in_an_alarmed_queue(stage):
    """ISSUE #12 Medium 6: an AssumeRole event the rule could not deliver, or that failed the
    function and its retries, is kept (encrypted, 14 days) and alarms, instead of vanishing."""
    res = render.merge_template(stage)["Resources"]
    d = render.DEAD_LETTERS
    queue_arn = {"Fn::GetAtt": [d["queue"], "Arn"]}

    queue = res[d["queue"]]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"] == {"QueueName": f"drawbridge-{stage}-on_role_assumed-dlq",
                                   "SqsManagedSseEnabled": True, "MessageRetentionPeriod": 14 * 24 * 3600}

    # the function: 2 retries, then the queue
    invoke = res[d["invoke_config"]]
    assert invoke["Type"] == "AWS::Lambda::EventInvokeConfig"
    assert invoke["Properties"] == {"FunctionName": {"Ref": "OnRoleAssumed"}, "Qualifier": "$LATEST",
                                    "MaximumRetryAttempts": 2,
                                    "DestinationConfig": {"OnFailure": {"Destination": queue_arn}}}
    assert invoke["DependsOn"] == [d["role_policy"]]  # Lambda checks the role may send when it is made

    # the rule's target: what EventBridge could not deliver, sent by EventBridge for this rule only
    function_id, event_id = render.ROLE_ASSUMED_EVENT
    event = res[function_id]["Properties"]["Events"][event_id]["Properties"]
    assert event["DeadLetterConfig"] == {"Arn": queue_arn}
    policy = res[d["queue_policy"]]["Properties"]
    assert policy["Queues"] == [{"Ref": d["queue"]}]
    (from_rule,) = [st for st in policy["PolicyDocument"]["Statement"] if st["Effect"] == "Allow"]
    assert from_rule["Principal"] == {"Service": "events.amazonaws.com"}
    assert from_rule["Action"] == "sqs:SendMessage" and from_rule["Resource"] == queue_arn
    assert from_rule["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["OnRoleAssumedOnRoleAssumedEvent", "Arn"]}}}

    # the function's role, and only that one, may send to that queue, and nothing else
    role_policy = res[d["role_policy"]]["Properties"]
    assert role_policy["Roles"] == [{"Ref": "OnRoleAssumedRole"}]
    (st,) = role_policy["PolicyDocument"]["Statement"]
    assert st["Action"] == "sqs:SendMessage"
    assert st["Resource"] == {"Fn::Sub": f"arn:aws:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{queue['Properties']['QueueName']}"}

    alarm = res[d["alarm"]]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [d["queue"], "QueueName"]}}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["AlarmActions"] == res["OnRoleAssumedErrorsAlarm"]["Properties"]["AlarmActions"]


@pytest.mark.parametrize("stage", STAGES)
def test_only_on_role_assumed_may_write_to_its_dead_letter_queue(stage):
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:drawbridge-{stage}-on_role_assumed-dlq"
    for fn in render.FUNCTIONS:
        docs = render.function_policies(stage, fn, account=ACCOUNT, region=REGION)
        may = any(allows(doc, "sqs:SendMessage", queue) for doc in docs)
        assert may == (fn == "on_role_assumed"), fn
    other = "prod" if stage == "dev" else "dev"
    (extra,) = render.function_policies(stage, "on_role_assumed", account=ACCOUNT, region=REGION)[1:]
    assert not allows(extra, "sqs:SendMessage", queue.replace(f"-{stage}-", f"-{other}-"))
    # every statement of the template is used by some role
    used = {sid for sids in [*render.VARIANTS.values(), *render.FUNCTION_EXTRA.values()] for sid in sids}
    assert {st["Sid"] for st in json.loads(render.POLICY_TEMPLATE.read_text())["Statement"]} == used


def test_merge_template_refuses_a_config_that_disagrees():
    config = render.chalice_config()
    config["stages"]["dev"]["environment_variables"]["DRAWBRIDGE_TABLE"] = "some-other-table"
    with pytest.raises(render.RenderError, match="DRAWBRIDGE_TABLE"):
        render.merge_template("dev", config)


def test_package_check_catches_a_missing_logical_id():
    from deploy.package import check_template

    merge = render.merge_template("dev")
    sam = {"Resources": {k: {"Type": "X", **v} for k, v in copy.deepcopy(merge["Resources"]).items()}}
    sam["Resources"]["OnRoleAssumed"]["Properties"]["Events"]["OnRoleAssumedEvent"]["Properties"]["Pattern"] = \
        ASSUME_ROLE_PATTERN
    sam["Resources"]["OnRoleAssumedRole"] = {"Type": "AWS::IAM::Role"}
    assert check_template(sam, merge) == []
    del sam["Resources"]["Sweep"]
    assert any("Sweep" in p for p in check_template(sam, merge))
    del sam["Resources"]["OnRoleAssumedRole"]
    assert any("OnRoleAssumedRole" in p for p in check_template(sam, merge))
    del sam["Resources"]["OnRoleAssumed"]["Properties"]["Events"]["OnRoleAssumedEvent"]["Properties"]["DeadLetterConfig"]
    assert any("dead-letter" in p for p in check_template(sam, merge))


# --------------------------------------------------------------------------- member accounts


def _target_roles() -> dict[str, dict]:
    res = cfn(MEMBER_TEMPLATE)["Resources"]
    return {k: v["Properties"] for k, v in res.items()
            if v["Type"] == "AWS::IAM::Role" and "ManagedPolicyArns" in v["Properties"]}


def test_member_template_forwards_with_the_apps_pattern_and_state():
    rule = cfn(MEMBER_TEMPLATE)["Resources"]["AssumeRoleForwardingRule"]["Properties"]  # (activity: its own test)
    assert rule["EventPattern"] == FORWARD_PATTERN
    assert rule["State"] == RULE_STATE


#: the principal tag an administrator puts on each catalog person's bastion IAM user
HUMAN_TAG = "aws:PrincipalTag/drawbridge-human"


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


def test_member_target_roles_trust_only_users_tagged_as_people():
    """ISSUE #12 Medium 7: a bastion administrator without the drawbridge-human tag cannot
    assume a target role directly, even with MFA and a matching session name. A trust
    policy condition: IAM evaluates it, moto does not, so the document is what is tested."""
    person = {"aws:username": "alice", "sts:RoleSessionName": "alice", "aws:MultiFactorAuthPresent": "true"}
    for name, role in _target_roles().items():
        trust = role["AssumeRolePolicyDocument"]
        (st,) = trust["Statement"]
        assert st["Condition"]["StringEquals"] == {HUMAN_TAG: "true"}, name
        assert iam_sim.allowed(trust, "sts:AssumeRole", "*", {**person, HUMAN_TAG: "true"})
        assert not iam_sim.allowed(trust, "sts:AssumeRole", "*", person), f"{name}: untagged admin let in"
        assert not iam_sim.allowed(trust, "sts:AssumeRole", "*", {**person, HUMAN_TAG: "false"})
        assert not iam_sim.allowed(trust, "sts:AssumeRole", "*",
                                   {**person, HUMAN_TAG: "true", "sts:RoleSessionName": "bob"})


def test_member_role_sessions_last_one_hour_at_most():
    """ISSUE #12 Medium 5: a session outlives its grant by up to MaxSessionDuration, so the
    template does not accept more than 3600 s (IAM's minimum, 1 h)."""
    parameter = cfn(MEMBER_TEMPLATE)["Parameters"]["MaxSessionDuration"]
    assert parameter["Default"] == 3600
    allowed_values = parameter.get("AllowedValues")
    assert (allowed_values and max(allowed_values) <= 3600) or parameter.get("MaxValue", 43200) <= 3600
    for role in _target_roles().values():
        assert role["MaxSessionDuration"] == {"Ref": "MaxSessionDuration"}
    deploy_md = (ROOT / "docs" / "DEPLOY.md").read_text()
    assert not re.search(r"\b12 ?h\b|1-12 h|43200", deploy_md)


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
    for operator, keys in st["Condition"].items():
        assert member["Condition"].get(operator) == keys, operator
    missing = {op: keys for op, keys in member["Condition"].items() if op not in st["Condition"]}
    assert not missing  # moto ignores trust conditions; the seed states them all the same


# --------------------------------------------------------------------------- the boundary
# IAM evaluates boundaries and their conditions; moto does not. These tests read the
# documents (policies/bastion-iam.yaml and its rendered copy permission-boundary.json).

ALICE = {"aws:username": "alice"}
ALICE_USER = "arn:aws:iam::111111111111:user/alice"
ALICE_MFA = "arn:aws:iam::111111111111:mfa/alice-phone"
#: what enrolling (or re-syncing, or removing) an MFA device takes, on which resource
MFA_ENROLMENT = {"iam:CreateVirtualMFADevice": ALICE_MFA, "iam:EnableMFADevice": ALICE_USER,
                 "iam:ResyncMFADevice": ALICE_USER, "iam:DeleteVirtualMFADevice": ALICE_MFA}
BOOTSTRAP_TAG = "aws:PrincipalTag/drawbridge-mfa-bootstrap"


def _boundary_policy_resource() -> dict:
    (policy,) = [r["Properties"] for r in cfn(BASTION_IAM_TEMPLATE)["Resources"].values()
                 if r["Type"] == "AWS::IAM::ManagedPolicy"
                 and r["Properties"]["ManagedPolicyName"] == render.BOUNDARY_POLICY_NAME]
    return policy


def _human_documents() -> dict[str, dict]:
    """Every document that decides what a person may do themselves: boundary and identity policy."""
    return {"permission-boundary.json": json.loads(BOUNDARY.read_text()),
            "bastion-iam.yaml boundary": render.boundary_document(render.catalog_role_arns()),
            "bastion-iam.yaml self-service": _self_service_policy()}


def test_bastion_template_carries_the_boundary_document():
    """permission-boundary.json (what parliament lints) is the template's document rendered
    for policies/access.toml: `make boundary` refreshes it after a catalog change."""
    assert _boundary_policy_resource()["PolicyDocument"]["Statement"][0]["Resource"] == \
        {"Ref": render.ASSUMABLE_ROLES_PARAMETER}
    assert render.boundary_document(render.catalog_role_arns()) == json.loads(BOUNDARY.read_text()), \
        "policies/permission-boundary.json is stale: run `make boundary`"


def test_the_boundary_allows_assuming_exactly_the_catalogs_roles():
    """ISSUE #12 High 1: the ceiling is the catalog's role ARNs, never role/*."""
    from chalicelib.catalog import load_catalog

    catalog_arns = sorted({r.role_arn for r in load_catalog(render.CATALOG).roles()})
    doc = json.loads(BOUNDARY.read_text())
    assert [st["Resource"] for st in doc["Statement"] if "sts:AssumeRole" in as_list(st["Action"])] == [catalog_arns]
    for arn in catalog_arns:
        assert iam_sim.allowed(doc, "sts:AssumeRole", arn, ALICE), arn
    for other in ["arn:aws:iam::222222222222:role/some-other-role", "arn:aws:iam::444455556666:role/admin",
                  "arn:aws:iam::222222222222:role/OrganizationAccountAccessRole"]:
        assert not iam_sim.allowed(doc, "sts:AssumeRole", other, ALICE), other
    # `make bastion-iam` deploys with exactly these
    assert render.boundary_parameters(render.catalog_role_arns()) == \
        f"{render.ASSUMABLE_ROLES_PARAMETER}={','.join(catalog_arns)}"


def test_make_boundary_and_bastion_iam_use_the_render_command(capsys, tmp_path):
    assert render.main(["boundary", "--parameters"]) == 0
    assert capsys.readouterr().out.strip() == render.boundary_parameters(render.catalog_role_arns())
    assert render.main(["boundary", "--out", str(tmp_path / "b.json")]) == 0
    assert json.loads((tmp_path / "b.json").read_text()) == json.loads(BOUNDARY.read_text())
    mk = (ROOT / "mk" / "deploy.mk").read_text()
    assert "deploy.render boundary --out policies/permission-boundary.json" in mk
    assert '--parameter-overrides "$$params"' in mk and "params=$$($(BIN)/python -m deploy.render boundary --parameters)" in mk


def test_no_wildcard_role_anywhere_in_the_human_boundary():
    parameter = cfn(BASTION_IAM_TEMPLATE)["Parameters"][render.ASSUMABLE_ROLES_PARAMETER]
    assert "Default" not in parameter, "a default would deploy a boundary that is not the catalog's"
    pattern = re.compile(parameter["AllowedPattern"])
    for wildcard in ["arn:aws:iam::*:role/*", "arn:aws:iam::222222222222:role/*", "arn:aws:iam::222222222222:role/adm?n",
                     "arn:aws:iam::222222222222:role/ops/*"]:
        assert not pattern.fullmatch(wildcard), f"the template accepts {wildcard}"
    for arn in render.catalog_role_arns() + ["arn:aws:iam::222222222222:role/ops/admin"]:
        assert pattern.fullmatch(arn), arn
    for name, doc in _human_documents().items():
        for st in doc["Statement"]:
            for resource in as_list(st["Resource"]):
                assert not (":role/" in resource and ("*" in resource or "?" in resource)), f"{name}: {resource}"
    with pytest.raises(render.RenderError, match="wildcard"):
        render.boundary_document(["arn:aws:iam::222222222222:role/*"])


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


@pytest.mark.parametrize("name", sorted(_human_documents()))
def test_keys_alone_cannot_enrol_an_mfa_device(name):
    """ISSUE #12 High 2: enrolling needs MFA, or the bootstrap window an administrator opens
    by tagging the user; a thief with keys (or a password) and no MFA cannot add a device."""
    doc = _human_documents()[name]
    keys_only = dict(ALICE)
    with_mfa = {**ALICE, "aws:MultiFactorAuthPresent": "true"}
    keys_saying_no_mfa = {**ALICE, "aws:MultiFactorAuthPresent": "false"}
    window_open = {**ALICE, BOOTSTRAP_TAG: "open"}
    window_other_value = {**ALICE, BOOTSTRAP_TAG: "true"}
    for action, resource in MFA_ENROLMENT.items():
        for context in (keys_only, keys_saying_no_mfa, window_other_value):
            assert not iam_sim.allowed(doc, action, resource, context), (action, context)
    for action in ("iam:CreateVirtualMFADevice", "iam:EnableMFADevice", "iam:ResyncMFADevice"):
        assert iam_sim.allowed(doc, action, MFA_ENROLMENT[action], with_mfa), action
        assert iam_sim.allowed(doc, action, MFA_ENROLMENT[action], window_open), action
    # and only for themselves
    assert not iam_sim.allowed(doc, "iam:EnableMFADevice", "arn:aws:iam::111111111111:user/bob", with_mfa)
    # the structure behind it: every statement naming an enrolment action carries one of the two conditions
    for st in doc["Statement"]:
        if set(as_list(st["Action"])) & set(MFA_ENROLMENT):
            assert st.get("Condition") in ({"Bool": {"aws:MultiFactorAuthPresent": "true"}},
                                           {"StringEquals": {BOOTSTRAP_TAG: "open"}}), st["Sid"]


@pytest.mark.parametrize("name", sorted(_human_documents()))
def test_people_cannot_tag_or_untag_themselves(name):
    """The bootstrap window and the drawbridge-human tag mean something only if nobody sets them
    on themselves: no tagging action at all, on any resource."""
    doc = _human_documents()[name]
    for st in doc["Statement"]:
        for action in as_list(st["Action"]):
            assert "tag" not in action.split(":")[1].lower(), f"{name}: {st['Sid']} allows {action}"
    for action in ("iam:TagUser", "iam:UntagUser"):
        assert not iam_sim.allowed(doc, action, ALICE_USER, {**ALICE, "aws:MultiFactorAuthPresent": "true",
                                                             BOOTSTRAP_TAG: "open"})


def test_the_self_service_policy_is_the_boundary_without_role_assumption():
    """What DEPLOY.md tells people to get for self-service (the drawbridge-humans group) carries
    the same MFA rules as the boundary, and nothing else."""
    boundary = [st for st in _boundary_policy_resource()["PolicyDocument"]["Statement"] if st["Sid"] != "AssumeTargetRoles"]
    assert _self_service_policy()["Statement"] == boundary
    (group,) = [r["Properties"] for r in cfn(BASTION_IAM_TEMPLATE)["Resources"].values() if r["Type"] == "AWS::IAM::Group"]
    assert group["ManagedPolicyArns"] == [{"Ref": "HumanSelfService"}]


def test_the_local_seed_tags_its_people_as_humans(stack):
    """The seed's people carry drawbridge-human=true, as the deploy guide tells an admin to
    set; the service user does not (moto ignores trust conditions: this reads the users)."""
    from local.seed import SERVICE_USER, client

    iam = client("iam", keys=stack.service)
    tags = {u: {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=u)["Tags"]}
            for u in ("alice", "bob", SERVICE_USER)}
    assert tags["alice"] == tags["bob"] == {"drawbridge-human": "true"}
    assert "drawbridge-human" not in tags[SERVICE_USER]
