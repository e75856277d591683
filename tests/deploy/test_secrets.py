"""Deployed stages read the Slack secrets from SSM Parameter Store (SecureString), cached.

``wiring.settings()`` with ``SLACK_SIGNING_SECRET_PARAM`` / ``SLACK_BOT_TOKEN_PARAM`` set reads
the values through Powertools Parameters (decrypted, cached for five minutes); without them it
reads the plain ``SLACK_SIGNING_SECRET`` / ``SLACK_BOT_TOKEN`` variables (local runs, tests).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

SIGNING = "/drawbridge/test/slack-signing-secret"
TOKEN = "/drawbridge/test/slack-bot-token"


@pytest.fixture
def ssm(aws_env, monkeypatch):
    import boto3
    from aws_lambda_powertools.utilities import parameters
    from moto import mock_aws

    from chalicelib import wiring

    parameters.clear_caches()
    wiring.reset()  # its SSM client is built inside the mock below
    monkeypatch.setenv("DRAWBRIDGE_TABLE", "drawbridge-test")
    with mock_aws():
        client = boto3.client("ssm", region_name="us-east-1")
        client.put_parameter(Name=SIGNING, Value="signing-from-ssm", Type="SecureString")
        client.put_parameter(Name=TOKEN, Value="xoxb-from-ssm", Type="SecureString")
        monkeypatch.setenv("SLACK_SIGNING_SECRET_PARAM", SIGNING)
        monkeypatch.setenv("SLACK_BOT_TOKEN_PARAM", TOKEN)
        monkeypatch.setenv("SLACK_SIGNING_SECRET", "plain-env-value-not-used")
        monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
        yield client
    parameters.clear_caches()
    wiring.reset()


def test_secure_string_parameters_are_decrypted_and_used(ssm):
    from chalicelib import wiring

    s = wiring.settings()
    assert s.signing_secret == "signing-from-ssm"  # not moto's "kms:alias/aws/ssm:..." ciphertext form
    assert s.bot_token == "xoxb-from-ssm"


def test_values_are_cached_until_max_age(ssm):
    import time_machine

    from chalicelib import wiring

    assert wiring.settings().signing_secret == "signing-from-ssm"
    ssm.put_parameter(Name=SIGNING, Value="rotated", Type="SecureString", Overwrite=True)
    assert wiring.settings().signing_secret == "signing-from-ssm"  # cached: no SSM call per request
    later = datetime.now(timezone.utc) + timedelta(seconds=wiring.SECRET_MAX_AGE + 1)
    with time_machine.travel(later):
        assert wiring.settings().signing_secret == "rotated"  # a rotation is picked up


def test_a_missing_parameter_fails_loudly_and_never_falls_back_to_the_environment(ssm, monkeypatch):
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    from chalicelib import wiring

    monkeypatch.setenv("SLACK_SIGNING_SECRET", "plain-env-value-not-used")
    ssm.delete_parameter(Name=SIGNING)
    with pytest.raises(GetParameterError):
        wiring.settings().signing_secret  # noqa: B018 - read when used


def test_plain_environment_values_without_param(aws_env, monkeypatch):
    from chalicelib import wiring

    monkeypatch.setenv("DRAWBRIDGE_TABLE", "drawbridge-test")
    monkeypatch.delenv("SLACK_SIGNING_SECRET_PARAM", raising=False)
    monkeypatch.delenv("SLACK_BOT_TOKEN_PARAM", raising=False)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "local-secret")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-local")
    s = wiring.settings()
    assert (s.signing_secret, s.bot_token) == ("local-secret", "xoxb-local")


def test_the_bot_token_is_read_only_when_slack_is_used_and_a_rotation_reaches_the_client(ssm, monkeypatch):
    """An ack reads the signing secret only (one SSM read on a cold start, not two); the
    Slack client is built with the token as it is when Slack is first used, and rebuilt
    when a rotated token is read (after SECRET_MAX_AGE)."""
    import time_machine
    from aws_lambda_powertools.utilities import parameters

    from chalicelib import wiring

    import json
    import os

    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api/")
    monkeypatch.setenv("DRAWBRIDGE_CATALOG", "policies/access.toml")
    wiring.reset()
    reads = []  # every GetParameter the app's own boto3 session sends (botocore's event hooks)
    session = wiring._boto_session(os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_DEFAULT_REGION"))
    session.events.register("before-call.ssm.GetParameter", lambda params, **_: reads.append(json.loads(params["body"])["Name"]))
    s = wiring.settings()
    assert s.signing_secret == "signing-from-ssm" and reads == [SIGNING]

    svc = wiring.service(s)
    assert reads == [SIGNING]  # building the use cases reads no token
    assert svc.slack._web.token == "xoxb-from-ssm" and reads == [SIGNING, TOKEN]
    ssm.put_parameter(Name=TOKEN, Value="xoxb-rotated", Type="SecureString", Overwrite=True)
    later = datetime.now(timezone.utc) + timedelta(seconds=wiring.SECRET_MAX_AGE + 1)
    with time_machine.travel(later):
        assert svc.slack._web.token == "xoxb-rotated"
    wiring.reset()
