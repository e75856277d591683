"""Shared fixtures: moto in-process, the Slack stand-in over HTTP, the app under chalice.test.

``stack`` gives an installation seeded from the sample catalog (policies/access.toml):
bastion IAM users with keys, member-account roles, the table from policies/table.json,
and Drawbridge running as a service identity. ``slack`` is the local Slack Web API
stand-in on 127.0.0.1. ``app_client`` is ``chalice.test.Client`` with helpers that
send correctly signed slash commands (the typed text escaped as Slack sends it) and
button clicks as catalog people.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from local import slack_client

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "policies" / "access.toml"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-test-token"
TABLE = "drawbridge-test"


@pytest.fixture
def aws_env(monkeypatch):
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "MOTO_ACCOUNT_ID",
                "AWS_LAMBDA_FUNCTION_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLESEED00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "seed")
    monkeypatch.setenv("POWERTOOLS_DEV", "false")


@pytest.fixture
def catalog_path():
    """The catalog the app and the seed use: the sample; a module overrides this fixture
    to run against a variant of it."""
    return CATALOG


@pytest.fixture
def catalog(catalog_path):
    from chalicelib.catalog import load_catalog

    return load_catalog(catalog_path)


@pytest.fixture
def stack(aws_env, monkeypatch, catalog, catalog_path):
    """moto in-process, seeded from the catalog; env points the app at it."""
    from moto import mock_aws

    from local.seed import seed

    with mock_aws():
        world = seed(catalog, TABLE)
        for k, v in world.service.env().items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("DRAWBRIDGE_TABLE", TABLE)
        monkeypatch.setenv("DRAWBRIDGE_CATALOG", str(catalog_path))
        yield world


@pytest.fixture
def slack(monkeypatch):
    from local.slack_standin import SlackStandin

    with SlackStandin(token=BOT_TOKEN) as standin:
        monkeypatch.setenv("SLACK_API_URL", standin.url)
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
        yield standin


# Slack's requests: built and signed by local/slack_client.py (the one Slack client of
# tests, bench and the local stack); these wrappers only fill in the tests' signing secret.
def sign(body: str | bytes, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict:
    """Slack's v0 signature headers for ``body`` (signed now, or at ``timestamp``)."""
    return slack_client.sign(body, secret, timestamp)


def slash_body(user_id: str, text: str, trigger: str | None = None) -> str:
    """The form Slack posts when ``user_id`` types ``/aws-access <text>``: the typed text
    with ``&``, ``<`` and ``>`` escaped, as Slack sends it. ``trigger``: replay a delivery."""
    return slack_client.slash_body(user_id, text, trigger=trigger)


def click_body(user_id: str, action_id: str, request_id: str, trigger: str | None = None) -> str:
    """The block_actions payload Slack posts when ``user_id`` clicks ``action_id`` on a card."""
    return slack_client.click_body(user_id, action_id, request_id, trigger=trigger)


@dataclass
class Reply:
    status: int
    body: dict | str | None

    @property
    def text(self) -> str:
        return self.body.get("text", "") if isinstance(self.body, dict) else str(self.body or "")


class AppDriver:
    """Drives the app as Slack would: signed posts to the three routes."""

    def __init__(self, client, catalog, slack=None):
        self.client = client
        self.catalog = catalog
        self.slack = slack  # the stand-in, to read the views the app opened

    def _post(self, path: str, body: str, headers: dict | None = None) -> Reply:
        resp = self.client.http.post(path, headers=headers if headers is not None else sign(body),
                                     body=body)
        try:
            parsed = json.loads(resp.body) if resp.body else None
        except ValueError:
            parsed = resp.body.decode() if isinstance(resp.body, bytes) else resp.body
        return Reply(resp.status_code, parsed)

    def slack_id(self, person: str) -> str:
        return self.catalog.people[person].slack_user

    def command(self, person: str, text: str) -> Reply:
        return self._post("/slack/commands", slash_body(self.slack_id(person), text))

    def click(self, person: str, action: str, request_id: str) -> Reply:
        return self._post("/slack/interactions", click_body(self.slack_id(person), action, request_id))

    def approve(self, person: str, request_id: str) -> Reply:
        return self.click(person, "approve_request", request_id)

    def deny(self, person: str, request_id: str) -> Reply:
        return self.click(person, "deny_request", request_id)

    def event(self, body: str, headers: dict | None = None) -> Reply:
        """An Events API request (JSON), signed unless ``headers`` are given."""
        return self._post("/slack/events", body, headers if headers is not None else
                          slack_client.sign(body, SIGNING_SECRET, content_type=slack_client.JSON))

    def open_home(self, person: str) -> Reply:
        """``person`` opens the app's Home tab (Slack sends ``app_home_opened``)."""
        return self.event(slack_client.home_opened_body(self.slack_id(person)))

    def home_click(self, person: str, action: str, request_id: str, block_id: str = "home") -> Reply:
        """``person`` clicks a button in their App Home."""
        return self._post("/slack/interactions",
                          slack_client.home_click_body(self.slack_id(person), action, request_id, block_id=block_id))

    def open_form(self, person: str, trigger: str | None = None) -> tuple[Reply, dict | None]:
        """``person`` types a bare ``/aws-access``: the command's answer, and the view the app
        opened with its trigger id in the stand-in (None if none opened)."""
        trigger = trigger or slack_client.trigger_id()
        reply = self._post("/slack/commands", slash_body(self.slack_id(person), "", trigger=trigger))
        return reply, self.slack.opened_view(trigger)

    def submit(self, person: str, view: dict, values: dict[str, str | None]) -> Reply:
        """``person`` submits ``view`` (as the stand-in opened it) holding ``values`` (block
        id -> value: a select's option value, a text input's text)."""
        return self._post("/slack/interactions", slack_client.view_submission_body(self.slack_id(person), view, values))

    def sweep(self):
        return self.client.lambda_.invoke("sweep", self.client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))

    def raw(self, path: str, body: str, headers: dict) -> Reply:
        return self._post(path, body, headers)


@pytest.fixture
def app_client(stack, slack, catalog):
    from chalice.test import Client

    from app import app
    from chalicelib import wiring

    wiring.reset()
    with Client(app, stage_name="local") as client:  # no deployed-stage env (SSM params, table names)
        yield AppDriver(client, catalog, slack)
    wiring.reset()


@pytest.fixture
def store(stack):
    from chalicelib import wiring
    from chalicelib.adapters.store import DynamoStore

    return DynamoStore(wiring.aws_client("dynamodb"), TABLE)
