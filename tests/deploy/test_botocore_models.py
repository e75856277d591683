"""The trimmed SSM and Lambda service models the zip carries (deploy/botocore_models.py).

moto cannot tell a trimmed model from a full one, so these tests check what matters: the
code calls nothing on a trimmed service beyond the listed operations (the same source scan
that checks the Lambda's IAM policy), and every listed operation works end to end through a
client built the way chalicelib/wiring.py builds it in Lambda - botocore's data path
pointing at the trimmed models first - against moto.
"""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from deploy import botocore_models
from tests.deploy.test_policies import aws_calls


def _camel(method: str) -> str:
    return "".join(part.title() for part in method.split("_"))


def test_every_call_on_a_trimmed_service_is_in_the_trimmed_model():
    calls = aws_calls()
    for service, operations in botocore_models.TRIMMED.items():
        called = {_camel(method) for svc, method in calls if svc == service}
        assert called, f"the scan finds no {service} call: is {service} still used?"
        assert called <= set(operations), (f"{service}: the code calls {sorted(called - set(operations))}, "
                                           "which the trimmed model lacks: add it to TRIMMED")


def test_the_trimmed_models_are_small_and_hold_only_what_is_listed(tmp_path):
    paths = botocore_models.write(tmp_path)
    for path in paths:
        model = json.loads(path.read_text())
        service = path.parts[-3]
        assert sorted(model["operations"]) == sorted(botocore_models.TRIMMED[service])
        assert model["metadata"]["endpointPrefix"] and len(model["shapes"]) <= 100
        assert path.stat().st_size < 64 * 1024


@pytest.fixture
def trimmed_wiring(tmp_path, aws_env, monkeypatch):
    from chalicelib import wiring

    botocore_models.write(tmp_path)
    monkeypatch.setattr(wiring, "TRIMMED_MODELS", tmp_path / botocore_models.DIRNAME)
    wiring.reset()
    yield wiring
    wiring.reset()


def test_each_listed_operation_works_through_the_trimmed_model(trimmed_wiring, monkeypatch):
    import boto3
    from moto import mock_aws

    with mock_aws():
        setup_ssm = boto3.client("ssm", region_name="us-east-1")
        setup_ssm.put_parameter(Name="/drawbridge/t/secret", Value="s3cret", Type="SecureString")
        iam = boto3.client("iam", region_name="us-east-1")
        role = iam.create_role(RoleName="w", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "lambda.amazonaws.com"}}]}))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("app.py", "def worker(event, context):\n    return event\n")
        boto3.client("lambda", region_name="us-east-1").create_function(
            FunctionName="drawbridge-t-worker", Runtime="python3.11", Role=role["Role"]["Arn"],
            Handler="app.worker", Code={"ZipFile": buf.getvalue()})

        ssm = trimmed_wiring.aws_client("ssm")
        lam = trimmed_wiring.aws_client("lambda")
        assert sorted(ssm.meta.service_model.operation_names) == ["GetParameter"]  # the trimmed model is in use
        assert sorted(lam.meta.service_model.operation_names) == ["Invoke"]
        got = ssm.get_parameter(Name="/drawbridge/t/secret", WithDecryption=True)
        assert got["Parameter"]["Value"] == "s3cret"
        resp = lam.invoke(FunctionName="drawbridge-t-worker", InvocationType="Event", Payload=b'{"jobs": []}')
        assert resp["StatusCode"] == 202


def test_the_table_adapter_works_through_the_trimmed_dynamodb_model(trimmed_wiring):
    """Every DynamoDB operation the adapters make, including a cancelled transaction whose
    reasons (a modelled error field) tell a repeated delivery from a lost race."""
    from moto import mock_aws

    from chalicelib.adapters.store import DynamoStore, create_table_from_template
    from chalicelib.domain.errors import AlreadyDelivered, Conflict
    from local.seed import TABLE_TEMPLATE
    from local.seed import client as aws
    from tests.service.test_fakes_contract import T0, approve, new

    with mock_aws():
        create_table_from_template(aws("dynamodb"), "trimmed", str(TABLE_TEMPLATE))  # a full-model client
        client = trimmed_wiring.aws_client("dynamodb")
        assert sorted(client.meta.service_model.operation_names) == sorted(botocore_models.TRIMMED["dynamodb"])
        store = DynamoStore(client, "trimmed")
        req, event = new("req-20261112-000001")
        store.create(req, event, owed=[("card", {"job": "card"})], claim="cmd#1")       # TransactWriteItems
        with pytest.raises(AlreadyDelivered):
            store.create(*new("req-20261112-000002"), claim="cmd#1")                    # ... its reasons
        with pytest.raises(Conflict):
            store.create(*new("req-20261112-000001"))
        assert [r.request_id for r in store.open_for("alice")] == [req.request_id]        # Query
        after, move = approve(T0)(req)
        store.transition(req, after, move)
        assert store.get(req.request_id) == after                                         # GetItem
        assert store.first_delivery("click#2", T0) == (True, None)                        # PutItem
        owed = store.owed_for("alice")
        store.retry_later(owed[0], T0)                                                    # UpdateItem
        store.settle(req.request_id, owed[0].key, after.version)                          # DeleteItem
        assert store.owed_for("alice") == []


def test_without_the_directory_botocore_uses_its_own_models(aws_env, monkeypatch, tmp_path):
    from chalicelib import wiring

    monkeypatch.setattr(wiring, "TRIMMED_MODELS", tmp_path / "absent")
    wiring.reset()
    try:
        assert "PutParameter" in wiring.aws_client("ssm").meta.service_model.operation_names
    finally:
        wiring.reset()
