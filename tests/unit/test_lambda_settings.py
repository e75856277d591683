"""Inside Lambda, Drawbridge refuses settings that point Slack or AWS elsewhere or carry a
secret in plain text, and requires the SSM parameter names (docs/SECURITY.md)."""

from __future__ import annotations

import pytest

from chalicelib import wiring

DEPLOYED = {
    "AWS_LAMBDA_FUNCTION_NAME": "drawbridge-prod", "DRAWBRIDGE_TABLE": "drawbridge-prod",
    "SLACK_SIGNING_SECRET_PARAM": "/drawbridge/prod/slack-signing-secret",
    "SLACK_BOT_TOKEN_PARAM": "/drawbridge/prod/slack-bot-token",
}
NAMES = ("AWS_LAMBDA_FUNCTION_NAME", "DRAWBRIDGE_TABLE", "SLACK_SIGNING_SECRET_PARAM", "SLACK_BOT_TOKEN_PARAM",
         "SLACK_API_URL", "AWS_ENDPOINT_URL", "SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN",
         "DRAWBRIDGE_LOCAL_EMULATION")


@pytest.fixture
def env(monkeypatch):
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)

    def set_env(**values):
        for k, v in values.items():
            monkeypatch.setenv(k, v)
    return set_env


def fake_ssm(monkeypatch):
    class Parameters:  # stands in for Powertools' SSMProvider: what SSM would answer
        @staticmethod
        def get(name, **_):
            return f"value-of-{name}"

    monkeypatch.setattr(wiring, "_ssm_parameters", lambda endpoint, region: Parameters)


def test_a_deployed_stage_reads_its_secrets_from_ssm(env, monkeypatch):
    env(**DEPLOYED)
    fake_ssm(monkeypatch)
    s = wiring.settings()
    assert s.in_lambda and s.slack_api_url == "https://slack.com/api/"
    assert s.signing_secret == "value-of-/drawbridge/prod/slack-signing-secret"


@pytest.mark.parametrize("extra, missing, says", [
    ({"SLACK_API_URL": "https://evil.example/api/"}, (), "SLACK_API_URL is set"),
    ({"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}, (), "AWS_ENDPOINT_URL is set"),
    ({"SLACK_SIGNING_SECRET": "plain"}, (), "SLACK_SIGNING_SECRET is set"),
    ({"SLACK_BOT_TOKEN": "xoxb-plain"}, (), "SLACK_BOT_TOKEN is set"),
    ({}, ("SLACK_SIGNING_SECRET_PARAM",), "SLACK_SIGNING_SECRET_PARAM is not set"),
    ({}, ("SLACK_BOT_TOKEN_PARAM",), "SLACK_BOT_TOKEN_PARAM is not set"),
])
def test_local_settings_are_refused_in_lambda(env, monkeypatch, extra, missing, says):
    env(**{k: v for k, v in DEPLOYED.items() if k not in missing}, **extra)
    fake_ssm(monkeypatch)
    with pytest.raises(wiring.ConfigError, match=says):
        wiring.settings()


def test_outside_lambda_local_settings_are_fine(env):
    env(DRAWBRIDGE_TABLE="t", SLACK_API_URL="http://127.0.0.1:9/api/", AWS_ENDPOINT_URL="http://127.0.0.1:5000",
        SLACK_SIGNING_SECRET="s", SLACK_BOT_TOKEN="xoxb-t")
    s = wiring.settings()
    assert not s.in_lambda and s.slack_api_url == "http://127.0.0.1:9/api/"


def test_no_deployed_stage_turns_the_check_off():
    from deploy import render

    for stage, conf in render.chalice_config()["stages"].items():
        assert wiring.LOCAL_EMULATION not in conf.get("environment_variables", {}), stage


def test_in_lambda_the_service_hands_long_work_to_the_worker_and_locally_runs_it(env, monkeypatch):
    """The sweep's owed reviews and weekly backstop (usecases/dispatch.hand_off): in Lambda an
    async invoke of the worker, as handlers.defer does; without AWS_LAMBDA_FUNCTION_NAME none
    (run in-process)."""
    import json

    env(**DEPLOYED, DRAWBRIDGE_WORKER_FUNCTION="drawbridge-prod-worker")
    fake_ssm(monkeypatch)
    invoked = []

    class Lambda:
        @staticmethod
        def invoke(**kwargs):
            invoked.append(kwargs)

    monkeypatch.setattr(wiring, "lambda_client", lambda endpoint, region: Lambda)
    s = wiring.settings()
    wiring._to_worker(s, None, None)([{"job": "weekly_review", "start": "2026-11-09T00:00:00Z"}])
    (call,) = invoked
    assert call["FunctionName"] == "drawbridge-prod-worker" and call["InvocationType"] == "Event"
    assert json.loads(call["Payload"])["jobs"] == [{"job": "weekly_review", "start": "2026-11-09T00:00:00Z"}]

    env(DRAWBRIDGE_TABLE="drawbridge-local")
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
    assert not wiring.settings().in_lambda
