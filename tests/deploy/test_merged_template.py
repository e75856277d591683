"""The merge template merged into the template Chalice really generates, offline.

`make package` runs `chalice package`, which also builds the zip (PyPI the first time).
Here Chalice's own resource graph and SAM generator produce the template for this app and
config with a placeholder code location, Chalice's own deep merger merges
deploy/render.py's merge template into it, and the result is checked the way
deploy/package.py checks a real package, then with cfn-lint. `make lint-deploy` does the
same on the real build/<stage>/sam.json.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest

from deploy import render
from deploy.package import check_template

ROOT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=None)
def _chalice_template(stage: str) -> str:
    import botocore.session
    from chalice.awsclient import TypedAWSClient
    from chalice.cli.factory import CLIFactory
    from chalice.deploy.deployer import (
        ApplicationGraphBuilder, BaseDeployStep, BuildStage, DependencyBuilder, InjectDefaults,
        LambdaEventSourcePolicyInjector, SwaggerBuilder, WebsocketPolicyInjector)
    from chalice.deploy.swagger import CFNSwaggerGenerator
    from chalice.package import PackageOptions, SAMTemplateGenerator

    class NoBuild(BaseDeployStep):
        """Instead of building the zip and reading .chalice/policy-*.json: placeholders."""

        def handle_deploymentpackage(self, config, resource):
            resource.filename = "./deployment.zip"

        def handle_filebasediampolicy(self, config, resource):
            resource.document = {"Version": "2012-10-17", "Statement": []}

    config = CLIFactory(project_dir=str(ROOT)).create_config_obj(chalice_stage_name=stage)
    resources = DependencyBuilder().build_dependencies(ApplicationGraphBuilder().build(config, stage))
    BuildStage([InjectDefaults(), NoBuild(), SwaggerBuilder(CFNSwaggerGenerator()),
                LambdaEventSourcePolicyInjector(), WebsocketPolicyInjector()]).execute(config, resources)
    session = botocore.session.get_session()
    session.set_config_variable("region", "us-east-1")
    return json.dumps(SAMTemplateGenerator(config, PackageOptions(TypedAWSClient(session))).generate(resources))


def merged(stage: str) -> dict:
    from chalice.package import TemplateDeepMerger

    return TemplateDeepMerger().merge(render.merge_template(stage), json.loads(_chalice_template(stage)))


@pytest.mark.parametrize("stage", render.stages())
def test_the_merge_lands_on_resources_chalice_generates(stage):
    assert check_template(merged(stage), render.merge_template(stage)) == []


@pytest.mark.parametrize("stage", render.stages())
def test_on_role_assumed_failures_are_caught_in_the_packaged_template(stage):
    """ISSUE #12 Medium 6, in the template that is deployed: the queue, the function's
    on-failure destination, the rule target's dead-letter queue, the role's permission to
    send, the queue policy for the rule, and the alarm."""
    res = merged(stage)["Resources"]
    d = render.DEAD_LETTERS
    assert {k: res[k]["Type"] for k in d.values()} == {
        d["queue"]: "AWS::SQS::Queue", d["queue_policy"]: "AWS::SQS::QueuePolicy",
        d["role_policy"]: "AWS::IAM::Policy", d["invoke_config"]: "AWS::Lambda::EventInvokeConfig",
        d["alarm"]: "AWS::CloudWatch::Alarm"}
    function_id, event_id = render.ROLE_ASSUMED_EVENT
    event = res[function_id]["Properties"]["Events"][event_id]
    assert event["Type"] == "CloudWatchEvent"  # SAM turns it into the rule OnRoleAssumedOnRoleAssumedEvent
    assert event["Properties"]["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [d["queue"], "Arn"]}}
    assert res[d["invoke_config"]]["Properties"]["FunctionName"] == {"Ref": function_id}
    assert res[render.ROLE_ASSUMED_ROLE]["Type"] == "AWS::IAM::Role"
    assert res[d["role_policy"]]["Properties"]["Roles"] == [{"Ref": render.ROLE_ASSUMED_ROLE}]
    # the function's role is the one the merge attaches the send permission to
    assert res[function_id]["Properties"]["Role"] == {"Fn::GetAtt": [render.ROLE_ASSUMED_ROLE, "Arn"]}


@pytest.mark.parametrize("stage", render.stages())
def test_the_merged_template_is_cfn_lint_clean(stage):
    from cfnlint.api import ManualArgs, lint

    matches = lint(json.dumps(merged(stage)), config=ManualArgs(regions=["us-east-1"]))
    assert not matches, "\n".join(str(m) for m in matches)


def test_cfn_lint_would_notice_a_broken_reference():
    """The lint above is not vacuous: a dead-letter queue ARN pointing nowhere fails it."""
    from cfnlint.api import ManualArgs, lint

    template = merged("dev")
    template["Resources"][render.DEAD_LETTERS["invoke_config"]]["Properties"]["DestinationConfig"] = \
        {"OnFailure": {"Destination": {"Fn::GetAtt": ["NoSuchQueue", "Arn"]}}}
    assert lint(json.dumps(template), config=ManualArgs(regions=["us-east-1"]))


def test_the_member_revoker_trusts_the_roles_chalice_makes_for_worker_and_sweep():
    # policies/member-account.yaml trusts <stack>-WorkerRole-* and <stack>-SweepRole-*:
    # CloudFormation names a role without RoleName <stack>-<logical id>-<random>, so the
    # logical ids must be the ones Chalice gives the worker's and the sweep's roles, each
    # without a fixed RoleName, and the functions must run as them
    from deploy.render import cfn_yaml

    template = merged("prod")
    resources = template["Resources"]
    for function, role in (("Worker", "WorkerRole"), ("Sweep", "SweepRole")):
        assert resources[role]["Type"] == "AWS::IAM::Role"
        assert "RoleName" not in resources[role]["Properties"]
        assert resources[function]["Properties"]["Role"] == {"Fn::GetAtt": [role, "Arn"]}
    params = cfn_yaml(ROOT / "policies" / "member-account.yaml")["Parameters"]
    assert params["BastionWorkerRoleName"]["Default"] == "drawbridge-prod-WorkerRole-*"
    assert params["BastionSweepRoleName"]["Default"] == "drawbridge-prod-SweepRole-*"
