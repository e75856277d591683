"""Render what `chalice package` needs for one stage, from the one place each fact lives.

* **Lambda IAM policies** (``.chalice/policy-<stage>.json``, ``policy-<stage>-no-iam.json``)
  from ``policies/lambda-policy.template.json``, filling in the bastion account id
  (``policies/access.toml`` ``bastion.account_id``, or ``BASTION_ACCOUNT_ID``), the
  Region and the stage. They are generated, git-ignored files: an installation never
  edits them and a fresh clone cannot deploy someone else's account by accident.
* **The merge template** (``build/merge-<stage>.json``) that ``chalice package
  --merge-template`` deep-merges into Chalice's SAM template: the table, copied from
  ``policies/table.json``; the AssumeRole* rule state from ``chalicelib.event_pattern``;
  fixed function names; log groups with a retention; error alarms.

Resource names follow Chalice's own convention, ``<app>-<stage>[-<function>]``, and
the table is ``<app>-<stage>``; ``check_config`` refuses a ``.chalice/config.json``
whose environment disagrees, so the config, the policies and the template cannot drift.

    python -m deploy.render policies --stage dev --region eu-west-1
    python -m deploy.render merge-template --stage dev --out build/merge-dev.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import string
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHALICE_DIR = ROOT / ".chalice"
CONFIG = CHALICE_DIR / "config.json"
POLICY_TEMPLATE = ROOT / "policies" / "lambda-policy.template.json"
TABLE_TEMPLATE = ROOT / "policies" / "table.json"
CATALOG = ROOT / "policies" / "access.toml"

#: the permission boundary every person's IAM user must carry (policies/bastion-iam.yaml);
#: Drawbridge may attach grants only to users that have it.
BOUNDARY_POLICY_NAME = "DrawbridgeHumanBoundary"

#: Chalice function name -> (logical id of the function in Chalice's template, of its log
#: group in the merge template). The log groups are ours, not Chalice's
#: ``log_retention_in_days``: that one is CloudFormation-only (`--pkg-format terraform`
#: refuses it) and, in Chalice 1.34, names the API handler's group after a logical id that
#: does not exist (``${ApiHandler}``).
FUNCTIONS = {
    "api_handler": ("APIHandler", "APIHandlerLogGroup"),
    "worker": ("Worker", "WorkerLogGroup"),
    "sweep": ("Sweep", "SweepLogGroup"),
    "on_role_assumed": ("OnRoleAssumed", "OnRoleAssumedLogGroup"),
}
#: days the Lambda logs are kept, per stage (the audit trail itself is in the table)
LOG_RETENTION_DAYS = {"dev": 30, "prod": 365}
DEFAULT_LOG_RETENTION_DAYS = 90
#: the EventBridge event Chalice generates for @app.on_cw_event(name="on_role_assumed")
ROLE_ASSUMED_EVENT = ("OnRoleAssumed", "OnRoleAssumedEvent")

#: Which statements (by Sid) each policy variant holds. Only the worker and the sweep
#: touch IAM; the internet-facing API handler and the CloudTrail handler cannot.
VARIANTS = {
    "grants": ("TableReadWrite", "SlackSecretsRead", "SlackSecretsDecrypt", "IamGrantPolicies",
               "IamAttachGrantsToBoundedUsers", "IamDetachGrants", "IamListUserPolicies",
               "IamListPolicies", "OwnLogs"),
    "no-iam": ("TableReadWrite", "SlackSecretsRead", "SlackSecretsDecrypt", "InvokeWorker", "OwnLogs"),
}
#: Chalice function name -> policy variant
FUNCTION_VARIANT = {"api_handler": "no-iam", "on_role_assumed": "no-iam", "worker": "grants", "sweep": "grants"}

_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


class RenderError(Exception):
    pass


# --------------------------------------------------------------------------- inputs


def chalice_config(path: Path = CONFIG) -> dict:
    return json.loads(path.read_text())


def stages(config: dict | None = None) -> list[str]:
    return sorted((config or chalice_config())["stages"])


def policy_file(variant: str, stage: str) -> str:
    """File name (inside .chalice/) of one policy variant for one stage."""
    return f"policy-{stage}.json" if variant == "grants" else f"policy-{stage}-{variant}.json"


def names(stage: str, config: dict | None = None) -> dict:
    """Every name the stage's resources get (Chalice's ``<app>-<stage>-<function>`` convention)."""
    app = (config or chalice_config())["app_name"]
    base = f"{app}-{stage}"
    functions = {fn: base if fn == "api_handler" else f"{base}-{fn}" for fn in FUNCTIONS}
    return {"table": base, "functions": functions, "worker": functions["worker"],
            "param_prefix": f"/{app}/{stage}/"}


def check_config(stage: str, config: dict | None = None) -> list[str]:
    """What is wrong with one stage of .chalice/config.json (empty when all is well)."""
    config = config or chalice_config()
    problems = []
    st = config.get("stages", {}).get(stage)
    if st is None:
        return [f"no stage '{stage}' in .chalice/config.json"]
    want = names(stage, config)
    env = {**config.get("environment_variables", {}), **st.get("environment_variables", {})}
    expected = {"DRAWBRIDGE_TABLE": want["table"], "DRAWBRIDGE_WORKER_FUNCTION": want["worker"]}
    for var, value in expected.items():
        if env.get(var) != value:
            problems.append(f"stages.{stage}.environment_variables.{var} must be {value!r}, not {env.get(var)!r}")
    for var in ("SLACK_SIGNING_SECRET_PARAM", "SLACK_BOT_TOKEN_PARAM"):
        if not str(env.get(var, "")).startswith(want["param_prefix"]):
            problems.append(f"stages.{stage}.environment_variables.{var} must start with {want['param_prefix']}")
    for var in ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN"):
        if var in env:
            problems.append(f"{var} must not be in .chalice/config.json (secrets live in SSM)")
    if st.get("autogen_policy", config.get("autogen_policy")) is not False:
        problems.append(f"stages.{stage}.autogen_policy must be false")
    for fn, variant in FUNCTION_VARIANT.items():
        got = st.get("lambda_functions", {}).get(fn, {}).get("iam_policy_file") or st.get("iam_policy_file")
        if got != policy_file(variant, stage):
            problems.append(f"stages.{stage}: function {fn} must use {policy_file(variant, stage)}, not {got}")
    return problems


def account_id() -> str:
    """The bastion account: BASTION_ACCOUNT_ID, else the catalog's bastion.account_id."""
    value = os.environ.get("BASTION_ACCOUNT_ID") or tomllib.loads(CATALOG.read_text())["bastion"]["account_id"]
    if not _ACCOUNT.match(str(value)):
        raise RenderError(f"bastion account id {value!r} is not 12 digits")
    return str(value)


# --------------------------------------------------------------------------- policies


def lambda_policy(stage: str, variant: str, *, account: str, region: str) -> dict:
    """One rendered IAM policy document for the stage's Lambda role(s)."""
    if not _ACCOUNT.match(account):
        raise RenderError(f"account id {account!r} is not 12 digits")
    if not _REGION.match(region):
        raise RenderError(f"{region!r} does not look like an AWS Region (e.g. eu-west-1)")
    if not re.fullmatch(r"[a-z0-9-]+", stage):
        raise RenderError(f"stage {stage!r}: use lower-case letters, digits and '-'")
    text = string.Template(POLICY_TEMPLATE.read_text()).substitute(
        ACCOUNT_ID=account, REGION=region, STAGE=stage)
    doc = json.loads(text)
    keep = VARIANTS[variant]
    doc["Statement"] = [s for s in doc["Statement"] if s["Sid"] in keep]
    missing = set(keep) - {s["Sid"] for s in doc["Statement"]}
    if missing:
        raise RenderError(f"{POLICY_TEMPLATE.name} has no statement(s) {sorted(missing)}")
    return doc


def write_policies(stage: str, *, account: str, region: str, out_dir: Path = CHALICE_DIR) -> list[Path]:
    problems = check_config(stage)
    if problems:
        raise RenderError("; ".join(problems))
    written = []
    for variant in VARIANTS:
        path = out_dir / policy_file(variant, stage)
        path.write_text(json.dumps(lambda_policy(stage, variant, account=account, region=region), indent=2) + "\n")
        written.append(path)
    return written


# --------------------------------------------------------------------------- merge template


def _alarm(function_logical_id: str, function_name: str) -> dict:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": f"{function_name}-errors",
            "AlarmDescription": f"Drawbridge: {function_name} failed (Lambda Errors >= 1 in 5 minutes). "
                                "Its log group has the correlation id of every failure.",
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": function_logical_id}}],
            "Statistic": "Sum",
            "Period": 300,
            "EvaluationPeriods": 1,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]},
            "OKActions": {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]},
        },
    }


def merge_template(stage: str, config: dict | None = None) -> dict:
    """What `chalice package --merge-template` adds to / changes in Chalice's template."""
    from chalicelib.event_pattern import RULE_STATE

    config = config or chalice_config()
    problems = check_config(stage, config)
    if problems:
        raise RenderError("; ".join(problems))
    want = names(stage, config)
    table_template = json.loads(TABLE_TEMPLATE.read_text())
    tables = {k: v for k, v in table_template["Resources"].items() if v["Type"] == "AWS::DynamoDB::Table"}
    if len(tables) != 1:
        raise RenderError(f"{TABLE_TEMPLATE} must declare exactly one AWS::DynamoDB::Table")
    ((table_id, table),) = tables.items()
    table = copy.deepcopy(table)
    table["Properties"]["TableName"] = want["table"]

    resources: dict = {table_id: table}
    for fn, (function_id, log_group_id) in FUNCTIONS.items():
        name = want["functions"][fn]
        # A fixed name: the worker's name is in the API handler's environment and policy,
        # and the log group can be created before the function (DependsOn), so Lambda
        # never creates it first without a retention.
        resources[function_id] = {"DependsOn": [log_group_id], "Properties": {"FunctionName": name}}
        resources[log_group_id] = {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"LogGroupName": f"/aws/lambda/{name}",
                           "RetentionInDays": LOG_RETENTION_DAYS.get(stage, DEFAULT_LOG_RETENTION_DAYS)},
        }
        if fn != "api_handler":
            resources[f"{function_id}ErrorsAlarm"] = _alarm(function_id, name)
    resources["APIHandlerErrorsAlarm"] = _alarm("APIHandler", want["functions"]["api_handler"])
    function_id, event_id = ROLE_ASSUMED_EVENT
    resources[function_id]["Properties"]["Events"] = {event_id: {"Properties": {"State": RULE_STATE}}}

    return {
        "Parameters": {
            "AlarmTopicArn": {
                "Type": "String",
                "Default": "",
                "Description": "SNS topic for the error alarms (empty: alarms without notification).",
            },
        },
        "Conditions": {"HasAlarmTopic": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}},
        "Resources": resources,
        "Outputs": {
            **table_template.get("Outputs", {}),
            "WorkerFunctionName": {"Value": {"Ref": "Worker"}},
        },
    }


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.render", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("policies", help="write .chalice/policy-<stage>*.json")
    p.add_argument("--stage", required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--account", help="default: BASTION_ACCOUNT_ID or policies/access.toml bastion.account_id")
    p.add_argument("--out-dir", default=str(CHALICE_DIR), help="default: .chalice/ (where config.json looks)")
    m = sub.add_parser("merge-template", help="write the merge template for one stage")
    m.add_argument("--stage", required=True)
    m.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        if args.what == "policies":
            out_dir = Path(args.out_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            for path in write_policies(args.stage, account=args.account or account_id(), region=args.region,
                                       out_dir=out_dir):
                print(f"wrote {path}")
        else:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(merge_template(args.stage), indent=2) + "\n")
            print(f"wrote {out}")
    except RenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
