"""Render what `chalice package` needs for one stage, from the one place each fact lives.

* **Lambda IAM policies** (``.chalice/policy-<stage>.json``, ``policy-<stage>-no-iam.json``)
  from ``policies/lambda-policy.template.json``, filling in the bastion account id
  (``policies/access.toml`` ``bastion.account_id``, or ``BASTION_ACCOUNT_ID``), the
  Region, the stage and the revoker role of each of the catalog's member accounts (the
  worker and the sweep may assume it there to write session cut-offs; a new account in
  the catalog needs the policies rendered and deployed again). They are generated, git-ignored files: an installation never
  edits them and a fresh clone cannot deploy someone else's account by accident.
* **The merge template** (``build/merge-<stage>.json``) that ``chalice package
  --merge-template`` deep-merges into Chalice's SAM template: the table, copied from
  ``policies/table.json``; the AssumeRole* rule state from ``chalicelib.event_pattern``;
  fixed function names; log groups with a retention; error alarms; and where
  on_role_assumed's failures go (an SQS dead-letter queue for the rule's target and the
  function's on-failure destination, its policies, an alarm on it).
* **The human permission boundary** (``policies/bastion-iam.yaml``'s document with
  ``AssumableRoleArns`` = exactly the catalog's role ARNs): ``boundary --parameters``
  prints the stack parameter (``make bastion-iam`` deploys with it), ``boundary --out``
  writes the document (``make boundary`` keeps ``policies/permission-boundary.json``,
  the copy parliament lints, in step with the catalog).

Resource names follow Chalice's own convention, ``<app>-<stage>[-<function>]``, and
the table is ``<app>-<stage>``; ``check_config`` refuses a ``.chalice/config.json``
whose environment disagrees, so the config, the policies and the template cannot drift.

    python -m deploy.render policies --stage dev --region eu-west-1
    python -m deploy.render merge-template --stage dev --out build/merge-dev.json
    python -m deploy.render boundary [--parameters | --out policies/permission-boundary.json]
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
BASTION_IAM_TEMPLATE = ROOT / "policies" / "bastion-iam.yaml"
#: the bastion-iam.yaml parameter that lists the roles people may ever assume
ASSUMABLE_ROLES_PARAMETER = "AssumableRoleArns"

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
    "on_activity": ("OnActivity", "OnActivityLogGroup"),
    "on_heartbeat": ("OnHeartbeat", "OnHeartbeatLogGroup"),
    "weekly_review": ("WeeklyReview", "WeeklyReviewLogGroup"),
}
#: days the Lambda logs are kept, per stage (the audit trail itself is in the table)
LOG_RETENTION_DAYS = {"dev": 30, "prod": 365}
DEFAULT_LOG_RETENTION_DAYS = 90
#: the EventBridge event Chalice generates for @app.on_cw_event(name="on_role_assumed")
ROLE_ASSUMED_EVENT = ("OnRoleAssumed", "OnRoleAssumedEvent")
#: the AWS::Events::Rule the SAM transform makes of that event: SAM names it
#: <function logical id><event logical id> (documented, "generated resources")
ROLE_ASSUMED_RULE = "".join(ROLE_ASSUMED_EVENT)
#: Chalice names each function's role <function logical id>Role
ROLE_ASSUMED_ROLE = "OnRoleAssumedRole"
#: logical ids of what catches on_role_assumed's failures (merge template): events the rule
#: could not deliver (the target's DeadLetterConfig) and invocations that failed every
#: retry (the function's on-failure destination) land in one queue, which alarms.
DEAD_LETTERS = {
    "queue": "OnRoleAssumedDeadLetterQueue",
    "queue_policy": "OnRoleAssumedDeadLetterQueuePolicy",
    "role_policy": "OnRoleAssumedDeadLetterSendPolicy",
    "invoke_config": "OnRoleAssumedEventInvokeConfig",
    "alarm": "OnRoleAssumedDeadLettersAlarm",
}
#: Lambda's asynchronous retries before an on_role_assumed event goes to the queue
ROLE_ASSUMED_RETRIES = 2
#: 14 days, SQS's longest retention: time to look at a failure after a holiday
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600

#: Which statements (by Sid) each policy variant holds. Only the worker and the sweep
#: touch IAM; the internet-facing API handler and the CloudTrail handler cannot. The sweep
#: also hands the access reviews it owes to the worker (usecases/sweep.py ``_owed_review``,
#: access_review.backstop) and never runs one itself, so its own role may invoke the worker;
#: the worker's may not (it would only invoke itself).
_GRANTS = ("TableReadWrite", "SlackSecretsRead", "SlackSecretsDecrypt", "IamGrantPolicies",
           "IamAttachGrantsToBoundedUsers", "IamDetachGrants", "IamListUserPolicies",
           "IamListPolicies", "AssumeSessionRevokers", "OwnLogs")
VARIANTS = {
    "grants": _GRANTS,
    "sweep": (*_GRANTS, "InvokeWorker"),
    "no-iam": ("TableReadWrite", "SlackSecretsRead", "SlackSecretsDecrypt", "InvokeWorker", "OwnLogs"),
}
#: Chalice function name -> policy variant
FUNCTION_VARIANT = {"api_handler": "no-iam", "on_role_assumed": "no-iam", "on_activity": "no-iam", "on_heartbeat": "no-iam",
                    "weekly_review": "no-iam", "worker": "grants", "sweep": "sweep"}
#: Statements (by Sid, from the same template) one function's role gets on top of its
#: variant. A variant file is shared (on_role_assumed shares "no-iam" with the API handler,
#: which must not get these), so the merge template attaches them to that one role as an
#: AWS::IAM::Policy; `render policies` also writes them as policy-<stage>-extra-<fn>.json,
#: for review and for parliament.
FUNCTION_EXTRA = {"on_role_assumed": ("RoleAssumedDeadLetters",)}

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
            "param_prefix": f"/{app}/{stage}/",
            # the same name is in policies/lambda-policy.template.json RoleAssumedDeadLetters
            "dead_letter_queue": f"{functions['on_role_assumed']}-dlq"}


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


#: the template's placeholder for the member accounts' revoker roles (a list of ARNs)
_REVOKERS = "${REVOKER_ROLE_ARNS}"
#: what the member template's RevokerRoleName and chalicelib.wiring default to
DEFAULT_REVOKER_ROLE = "DrawbridgeSessionRevoker"


def revoker_role(stage: str, config: dict | None = None) -> str:
    """The revoker role name the stage's functions assume (DRAWBRIDGE_REVOKER_ROLE, else the default)."""
    config = config or chalice_config()
    env = {**config.get("environment_variables", {}),
           **config.get("stages", {}).get(stage, {}).get("environment_variables", {})}
    return env.get("DRAWBRIDGE_REVOKER_ROLE") or DEFAULT_REVOKER_ROLE


def revoker_role_arns(stage: str, catalog_path: Path | str = CATALOG) -> list[str]:
    """``arn:aws:iam::<account>:role/<revoker>`` for every member account of the catalog:
    the worker and the sweep may assume the revoker there and nowhere else."""
    from chalicelib.catalog import CatalogError, load_catalog

    try:
        catalog = load_catalog(catalog_path)
    except CatalogError as exc:
        raise RenderError(str(exc)) from exc
    name = revoker_role(stage)
    if not re.fullmatch(r"[\w+=,.@-]{1,64}", name, re.ASCII):
        raise RenderError(f"DRAWBRIDGE_REVOKER_ROLE {name!r} is not an IAM role name")
    accounts = sorted({a.id for a in catalog.accounts.values()})
    if not accounts:
        raise RenderError(f"{catalog_path} names no member accounts")
    return [f"arn:aws:iam::{a}:role/{name}" for a in accounts]


def _statements(stage: str, sids: tuple[str, ...], *, account: str, region: str) -> dict:
    """The template's statements ``sids``, in template order, with the placeholders filled in
    (``${REVOKER_ROLE_ARNS}``: the catalog's member accounts' revoker roles, a list)."""
    if not re.fullmatch(r"[a-z0-9-]+", stage):
        raise RenderError(f"stage {stage!r}: use lower-case letters, digits and '-'")
    text = string.Template(POLICY_TEMPLATE.read_text()).substitute(
        ACCOUNT_ID=account, REGION=region, STAGE=stage, REVOKER_ROLE_ARNS=_REVOKERS)
    doc = json.loads(text)
    doc["Statement"] = [s for s in doc["Statement"] if s["Sid"] in sids]
    missing = set(sids) - {s["Sid"] for s in doc["Statement"]}
    if missing:
        raise RenderError(f"{POLICY_TEMPLATE.name} has no statement(s) {sorted(missing)}")
    for st in doc["Statement"]:
        if st.get("Resource") == _REVOKERS:
            st["Resource"] = revoker_role_arns(stage)
    return doc


def _check_account_region(account: str, region: str) -> None:
    if not _ACCOUNT.match(account):
        raise RenderError(f"account id {account!r} is not 12 digits")
    if not _REGION.match(region):
        raise RenderError(f"{region!r} does not look like an AWS Region (e.g. eu-west-1)")


def lambda_policy(stage: str, variant: str, *, account: str, region: str) -> dict:
    """One rendered IAM policy document for the stage's Lambda role(s)."""
    _check_account_region(account, region)
    return _statements(stage, VARIANTS[variant], account=account, region=region)


def extra_policy(stage: str, function: str, *, account: str, region: str) -> dict | None:
    """What ``function``'s role gets besides its variant (FUNCTION_EXTRA), or None."""
    if function not in FUNCTION_EXTRA:
        return None
    _check_account_region(account, region)
    return _statements(stage, FUNCTION_EXTRA[function], account=account, region=region)


def function_policies(stage: str, function: str, *, account: str, region: str) -> list[dict]:
    """Every policy document the deployed role of ``function`` carries."""
    docs = [lambda_policy(stage, FUNCTION_VARIANT[function], account=account, region=region)]
    extra = extra_policy(stage, function, account=account, region=region)
    return docs + ([extra] if extra else [])


def extra_policy_file(function: str, stage: str) -> str:
    return f"policy-{stage}-extra-{function}.json"


def write_policies(stage: str, *, account: str, region: str, out_dir: Path = CHALICE_DIR) -> list[Path]:
    problems = check_config(stage)
    if problems:
        raise RenderError("; ".join(problems))
    written = []
    for variant in VARIANTS:
        path = out_dir / policy_file(variant, stage)
        path.write_text(json.dumps(lambda_policy(stage, variant, account=account, region=region), indent=2) + "\n")
        written.append(path)
    for function in FUNCTION_EXTRA:
        path = out_dir / extra_policy_file(function, stage)
        path.write_text(json.dumps(extra_policy(stage, function, account=account, region=region), indent=2) + "\n")
        written.append(path)
    return written


def _sub_pseudo(value):
    """Wrap every string holding a ``${AWS::...}`` pseudo parameter in Fn::Sub."""
    if isinstance(value, dict):
        return {k: _sub_pseudo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sub_pseudo(v) for v in value]
    if isinstance(value, str) and "${AWS::" in value:
        return {"Fn::Sub": value}
    return value


def extra_policy_for_template(stage: str, function: str) -> dict:
    """FUNCTION_EXTRA for the merge template: the account and Region are the stack's."""
    return _sub_pseudo(_statements(stage, FUNCTION_EXTRA[function],
                                   account="${AWS::AccountId}", region="${AWS::Region}"))


# --------------------------------------------------------------------------- merge template


_ALARM_ACTIONS = {
    "AlarmActions": {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]},
    "OKActions": {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]},
}


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
            **copy.deepcopy(_ALARM_ACTIONS),
        },
    }


def _dead_letter_resources(stage: str, want: dict) -> dict:
    """The queue on_role_assumed's failures land in, who may write to it, and its alarm.

    * the rule's target gets ``DeadLetterConfig`` (set on the SAM event in merge_template):
      events EventBridge could not deliver to the function (throttled past its retries,
      the invoke permission missing) go to the queue, sent by events.amazonaws.com, which
      the queue policy allows for this rule only (``aws:SourceArn``);
    * the function gets an on-failure destination: an invocation that failed its first try
      and ROLE_ASSUMED_RETRIES retries goes to the queue, sent with the function's own role
      (the RoleAssumedDeadLetters statement, attached to that role only).
    """
    queue, queue_arn = DEAD_LETTERS["queue"], {"Fn::GetAtt": [DEAD_LETTERS["queue"], "Arn"]}
    function_id = ROLE_ASSUMED_EVENT[0]
    name = want["dead_letter_queue"]
    return {
        queue: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": name,
                "SqsManagedSseEnabled": True,
                "MessageRetentionPeriod": DEAD_LETTER_RETENTION_SECONDS,
            },
        },
        DEAD_LETTERS["queue_policy"]: {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [{"Ref": queue}],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "RuleDeliveryFailures",
                            "Effect": "Allow",
                            "Principal": {"Service": "events.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": queue_arn,
                            "Condition": {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [ROLE_ASSUMED_RULE, "Arn"]}}},
                        },
                        {
                            "Sid": "DenyInsecureTransport",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "sqs:*",
                            "Resource": queue_arn,
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        },
                    ],
                },
            },
        },
        DEAD_LETTERS["role_policy"]: {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyName": "RoleAssumedDeadLetters",
                "Roles": [{"Ref": ROLE_ASSUMED_ROLE}],
                "PolicyDocument": extra_policy_for_template(stage, "on_role_assumed"),
            },
        },
        DEAD_LETTERS["invoke_config"]: {
            "Type": "AWS::Lambda::EventInvokeConfig",
            # Lambda checks that the role may send to the destination when the config is made
            "DependsOn": [DEAD_LETTERS["role_policy"]],
            "Properties": {
                "FunctionName": {"Ref": function_id},
                "Qualifier": "$LATEST",
                "MaximumRetryAttempts": ROLE_ASSUMED_RETRIES,
                "DestinationConfig": {"OnFailure": {"Destination": queue_arn}},
            },
        },
        DEAD_LETTERS["alarm"]: {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmName": f"{name}-not-empty",
                "AlarmDescription": f"Drawbridge: on_role_assumed did not handle an event (it is in {name}): "
                                    "the security channel may have missed an assumption. docs/DEPLOY.md, "
                                    "Day two: look at the messages, fix, replay.",
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}],
                "Statistic": "Maximum",
                "Period": 300,
                "EvaluationPeriods": 1,
                "Threshold": 0,
                "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": "notBreaching",
                **copy.deepcopy(_ALARM_ACTIONS),
            },
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
    resources[function_id]["Properties"]["Events"] = {event_id: {"Properties": {
        "State": RULE_STATE,
        "DeadLetterConfig": {"Arn": {"Fn::GetAtt": [DEAD_LETTERS["queue"], "Arn"]}},
    }}}
    resources.update(_dead_letter_resources(stage, want))

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
            "RoleAssumedDeadLetterQueueUrl": {"Value": {"Ref": DEAD_LETTERS["queue"]}},
        },
    }


# --------------------------------------------------------------------------- the human boundary


def cfn_yaml(path: Path) -> dict:
    """A CloudFormation YAML template, short tags (!Ref, !Sub ...) read as {"Ref"/"Fn::X": value}."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def tag(loader, suffix, node):
        name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
        if isinstance(node, yaml.ScalarNode):
            return {name: loader.construct_scalar(node)}
        if isinstance(node, yaml.SequenceNode):
            return {name: loader.construct_sequence(node, deep=True)}
        return {name: loader.construct_mapping(node, deep=True)}

    Loader.add_multi_constructor("!", tag)
    return yaml.load(path.read_text(), Loader=Loader)  # noqa: S506 - a SafeLoader subclass


def catalog_role_arns(catalog_path: Path | str = CATALOG) -> list[str]:
    """Every target role ARN of the catalog, sorted: what people may ever assume."""
    from chalicelib.catalog import CatalogError, load_catalog

    try:
        catalog = load_catalog(catalog_path)
    except CatalogError as exc:
        raise RenderError(str(exc)) from exc
    arns = sorted({r.role_arn for r in catalog.roles()})
    if not arns:
        raise RenderError(f"{catalog_path} names no roles")
    return arns


def boundary_document(role_arns: list[str], template: Path = BASTION_IAM_TEMPLATE) -> dict:
    """The DrawbridgeHumanBoundary document of bastion-iam.yaml with AssumableRoleArns filled in."""
    (policy,) = [r["Properties"] for r in cfn_yaml(template)["Resources"].values()
                 if r["Type"] == "AWS::IAM::ManagedPolicy" and r["Properties"]["ManagedPolicyName"] == BOUNDARY_POLICY_NAME]
    ref = json.dumps({"Ref": ASSUMABLE_ROLES_PARAMETER})
    text = json.dumps(policy["PolicyDocument"])
    if ref not in text:
        raise RenderError(f"{template.name}: the boundary no longer refers to {ASSUMABLE_ROLES_PARAMETER}")
    for arn in role_arns:
        if "*" in arn or "?" in arn:
            raise RenderError(f"{arn}: a role ARN with a wildcard has no place in the boundary")
    return json.loads(text.replace(ref, json.dumps(list(role_arns))))


def boundary_parameters(role_arns: list[str]) -> str:
    """``AssumableRoleArns=arn,arn`` for ``aws cloudformation deploy --parameter-overrides``."""
    return f"{ASSUMABLE_ROLES_PARAMETER}={','.join(role_arns)}"


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
    b = sub.add_parser("boundary", help="the human permission boundary for the catalog's roles")
    b.add_argument("--catalog", default=str(CATALOG))
    how = b.add_mutually_exclusive_group()
    how.add_argument("--parameters", action="store_true",
                     help=f"print {ASSUMABLE_ROLES_PARAMETER}=... for --parameter-overrides")
    how.add_argument("--out", help="write the document there, e.g. policies/permission-boundary.json "
                                   "(default: print it)")
    args = parser.parse_args(argv)
    try:
        if args.what == "policies":
            out_dir = Path(args.out_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            for path in write_policies(args.stage, account=args.account or account_id(), region=args.region,
                                       out_dir=out_dir):
                print(f"wrote {path}")
        elif args.what == "merge-template":
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(merge_template(args.stage), indent=2) + "\n")
            print(f"wrote {out}")
        else:
            arns = catalog_role_arns(args.catalog)
            if args.parameters:
                print(boundary_parameters(arns))
            elif args.out:
                Path(args.out).write_text(json.dumps(boundary_document(arns), indent=2) + "\n")
                print(f"wrote {args.out} ({len(arns)} role(s))")
            else:
                print(json.dumps(boundary_document(arns), indent=2))
    except RenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
