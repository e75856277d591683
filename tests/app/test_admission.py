"""Who reaches the table at all: only the configured Slack workspace and app (when the
catalog names them) and only people in the catalog; everyone else is answered and leaves
no item behind (not even the delivery bookkeeping)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from local import slack_client
from local.seed import client as aws
from tests.conftest import CATALOG, TABLE, sign

STRANGER = "U0NOBODY01"


def all_items(stack) -> list[dict]:
    db = aws("dynamodb", keys=stack.service)
    return db.scan(TableName=TABLE, ConsistentRead=True)["Items"]


def post(app_client, path: str, body: str):
    return app_client.raw(path, body, sign(body))


def test_a_strangers_commands_and_clicks_write_nothing(app_client, stack, slack):
    rid = re.search(r"req-\d{8}-[0-9a-f]{6}", app_client.command("alice", "prod admin 2h incident").text).group(0)
    before = all_items(stack)
    for _ in range(20):
        reply = post(app_client, "/slack/commands", slack_client.slash_body(STRANGER, "help"))
        assert reply.status == 200 and "not in the Drawbridge catalog" in reply.text
    post(app_client, "/slack/interactions", slack_client.click_body(STRANGER, "approve_request", rid))
    assert all_items(stack) == before  # no ONCE# delivery claims, nothing at all
    (answer,) = slack.ephemerals(STRANGER)
    assert "not in the Drawbridge catalog, so you cannot approve requests" in answer.text


@pytest.fixture
def pinned(tmp_path: Path, monkeypatch, app_client):
    """The catalog names the one workspace and app this installation serves."""
    path = tmp_path / "access.toml"
    path.write_text(CATALOG.read_text().replace(
        'security_channel  = "C0SECURIT1"',
        'security_channel  = "C0SECURIT1"\nteam_id = "T0TEAM0001"\napp_id = "A0EXAMPLE01"'))
    monkeypatch.setenv("DRAWBRIDGE_CATALOG", str(path))
    return app_client


@pytest.mark.parametrize("team, app", [("T0OTHER001", "A0EXAMPLE01"), ("T0TEAM0001", "A0OTHER001")])
def test_another_workspace_or_app_is_refused_before_anything_is_written(pinned, stack, slack, team, app):
    before = all_items(stack)
    body = slack_client.slash_body("U0ALICE001", "prod readonly 1h dashboards", team_id=team, api_app_id=app)
    reply = post(pinned, "/slack/commands", body)
    assert reply.status == 200 and "another Slack workspace or app" in reply.text
    click = slack_client.click_body("U0BOB00001", "approve_request", "req-20261112-abcdef", team_id=team,
                                    api_app_id=app)
    assert post(pinned, "/slack/interactions", click).status == 200
    assert all_items(stack) == before
    assert slack.messages() == []
    assert "another Slack workspace or app" in slack.ephemerals("U0BOB00001")[0].text


def test_the_configured_workspace_and_app_are_served(pinned, store):
    body = slack_client.slash_body("U0ALICE001", "prod readonly 1h dashboards", team_id="T0TEAM0001",
                                   api_app_id="A0EXAMPLE01")
    reply = post(pinned, "/slack/commands", body)
    assert reply.text.startswith("Request `")
