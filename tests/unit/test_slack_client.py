"""local/slack_client.py, the one Slack client of tests, bench and the local stack: what it
signs the app's verifier accepts, and what it builds the app's parsers read back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse

import pytest

from chalicelib.slack.parse import parse_command_text, parse_interaction, parse_slash_command
from chalicelib.slack.verify import is_valid
from local import slack_client
from local.slack_client import click_body, click_payload, sign, signature, slash_body, slash_form, trigger_id
from tests.conftest import ROOT
from tests.fixtures import load_slack

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLASH_FIELDS = {"token", "team_id", "team_domain", "channel_id", "channel_name", "user_id", "user_name", "command",
                "text", "api_app_id", "is_enterprise_install", "response_url", "trigger_id"}


# ---- signing -----------------------------------------------------------------------------------
def test_signature_is_slacks_documented_example():
    # https://api.slack.com/authentication/verifying-requests-from-slack (worked example)
    body = ("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmib"
            "IGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    want = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert signature(body, SECRET, 1531420618) == want
    assert signature(body.encode(), SECRET, "1531420618") == want


@pytest.mark.parametrize("build", [
    pytest.param(lambda: slash_body("U0ALICE001", "prod admin 2h R&D <ops> café 🚀"), id="slash"),
    pytest.param(lambda: click_body("U0BOB00001", "approve_request", "req-20261112-0a11ce"), id="click"),
    pytest.param(lambda: ("payload=" + urllib.parse.quote(json.dumps({"type": "block_actions"}))).encode(),
                 id="bytes"),
])
def test_the_apps_verifier_accepts_what_it_signs(build):
    body = build()
    headers = sign(body, SECRET)
    raw = body.encode() if isinstance(body, str) else body
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert abs(int(headers["X-Slack-Request-Timestamp"]) - time.time()) < 5
    assert is_valid(SECRET, raw, headers) is True
    # and only under that secret, for that body, at that time
    assert is_valid("another-secret", raw, headers) is False
    assert is_valid(SECRET, raw + b"&x=1", headers) is False
    assert is_valid(SECRET, raw, sign(body, SECRET, int(time.time()) - 301)) is False


def test_sign_keeps_the_given_timestamp_and_content_type():
    headers = sign("a=1", SECRET, 1_794_492_000, content_type="application/json")
    assert headers == {"Content-Type": "application/json", "X-Slack-Request-Timestamp": "1794492000",
                       "X-Slack-Signature": signature("a=1", SECRET, 1_794_492_000)}


# ---- a slash command ---------------------------------------------------------------------------
def test_slash_body_has_every_field_slack_sends_and_parses_back():
    typed = "prod readonly 1h R&D <ops> <!channel> &lt; https://example.com/x"
    body = slash_body("U0ALICE001", typed, user_name="alice", trigger="1.2.replayed")
    form = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
    assert set(form) == SLASH_FIELDS
    assert form["text"] == "prod readonly 1h R&amp;D &lt;ops&gt; &lt;!channel&gt; &amp;lt; https://example.com/x"
    assert (form["command"], form["user_name"], form["is_enterprise_install"]) == ("/aws-access", "alice", "false")
    cmd = parse_slash_command(body.encode())
    assert (cmd.user_id, cmd.text, cmd.trigger_id) == ("U0ALICE001", typed, "1.2.replayed")
    assert (cmd.channel_id, cmd.command) == ("C0APPROVE1", "/aws-access")
    assert cmd.response_url.startswith("https://hooks.slack.com/commands/T0STANDIN/")
    assert parse_command_text(cmd.text).reason == "R&D <ops> <!channel> &lt; https://example.com/x"


def test_slash_form_defaults_and_overrides():
    form = slash_form("U0BOB00001", "help", channel_id="C0OTHER001", channel_name="other",
                      response_url_base="http://127.0.0.1:9/_standin/response_url")
    assert form["user_name"] == "u0bob00001" and form["channel_id"] == "C0OTHER001"
    assert form["response_url"].startswith("http://127.0.0.1:9/_standin/response_url/commands/")
    assert form["trigger_id"] != slash_form("U0BOB00001", "help")["trigger_id"]  # fresh each time


# ---- a button click ----------------------------------------------------------------------------
def test_click_body_parses_back():
    body = click_body("U0BOB00001", "deny_request", "req-20261112-0a11ce", user_name="bob",
                      channel_id="C0APPROVE1", message_ts="1794492001.000200", trigger="1.2.click-once",
                      blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "card"}}])
    form = dict(urllib.parse.parse_qsl(body))
    assert list(form) == ["payload"]
    payload = json.loads(form["payload"])
    assert payload["type"] == "block_actions" and payload["user"]["username"] == "bob"
    assert payload["message"]["blocks"][0]["text"]["text"] == "card"
    assert payload["actions"][0]["text"]["text"] == "Deny"
    click = parse_interaction(body.encode())
    assert click is not None
    assert (click.user_id, click.action_id, click.request_id) == ("U0BOB00001", "deny_request", "req-20261112-0a11ce")
    assert (click.channel_id, click.message_ts, click.trigger_id) == ("C0APPROVE1", "1794492001.000200",
                                                                      "1.2.click-once")


@pytest.mark.parametrize("action_id, fixture", [("approve_request", "block_actions_approve"),
                                                ("deny_request", "block_actions_deny")])
def test_the_shapes_are_the_recorded_ones(action_id, fixture):
    """Every field of the recorded requests (tests/fixtures/slack), in Slack's order."""
    assert list(slash_form("U0ALICE001", "x")) == list(load_slack("slash_command"))
    built, recorded = click_payload("U0BOB00001", action_id, "req-1"), load_slack(fixture)
    assert list(built) == list(recorded)
    for key in ("user", "container", "team", "channel"):
        assert list(built[key]) == list(recorded[key]), key
    assert built["actions"][0] | {"action_ts": "", "value": ""} == recorded["actions"][0] | {"action_ts": "", "value": ""}


def test_click_payload_without_a_card_still_names_a_message():
    payload = click_payload("U0CAROL001", "approve_request", "req-1")
    assert payload["container"]["message_ts"] == payload["message"]["ts"] != ""
    assert payload["channel"] == {"id": "C0APPROVE1", "name": "aws-access-approvals"}
    assert payload["user"]["name"] == "u0carol001"


# ---- ids, escaping, dependencies -----------------------------------------------------------------
def test_trigger_ids_are_fresh_and_shaped_like_slacks():
    ids = {trigger_id() for _ in range(200)}
    assert len(ids) == 200
    for tid in ids:
        seconds, digits, hexpart = tid.split(".")
        assert abs(int(seconds) - time.time()) < 5
        assert len(digits) == 10 and digits.isdigit()
        assert len(hexpart) == 32 and int(hexpart, 16) >= 0


def test_the_stand_in_re_exports_the_same_escape():
    from local import slack_standin

    assert slack_standin.slack_escape is slack_client.slack_escape
    assert slack_standin.TEAM_ID == slack_client.TEAM_ID


def test_stdlib_only_and_light():
    """Tests, bench and local all import it, without chalicelib; bench/_first_request.py
    imports it before timing a cold ``import app``, so beyond the stdlib modules signing
    needs it must load nothing (anything else would be pre-loaded for the app's import)."""
    signing = "import hashlib, hmac, json, os, sys, time, urllib.parse, uuid"
    code = (f"{signing}; base = set(sys.modules)\n"
            "from local import slack_client\n"
            "print(json.dumps(sorted(set(sys.modules) - base)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=60).stdout
    assert json.loads(out) == ["local", "local.slack_client"]
