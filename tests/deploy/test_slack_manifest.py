"""slack/manifest.yaml: the routes app.py serves, the scopes the code uses, and nothing more."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from deploy.slack_manifest import PLACEHOLDER, ManifestError, fill

ROOT = Path(__file__).resolve().parents[2]
URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/api/"


def manifest() -> dict:
    return yaml.safe_load(fill(URL))


def test_urls_point_at_the_apps_routes():
    from app import app

    m = manifest()
    (command,) = m["features"]["slash_commands"]
    assert command["command"] == "/aws-access"
    paths = {command["url"].removeprefix(URL.rstrip("/")),
             m["settings"]["interactivity"]["request_url"].removeprefix(URL.rstrip("/")),
             m["settings"]["event_subscriptions"]["request_url"].removeprefix(URL.rstrip("/"))}
    assert paths == {"/slack/commands", "/slack/interactions", "/slack/events"}
    assert paths <= set(app.routes)
    assert PLACEHOLDER not in fill(URL)


def test_scopes_are_exactly_what_the_notifier_calls():
    tree = ast.parse((ROOT / "chalicelib" / "adapters" / "slack_notifier.py").read_text())
    methods = {n.func.attr for n in ast.walk(tree)
               if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
               and isinstance(n.func.value, ast.Attribute) and n.func.value.attr in ("_web", "_now", "_ack")}
    # chat:write covers posting, updating, ephemerals and deleting the bot's own messages;
    # finding a post whose answer was lost reads history (public, private, DM) and opens the DM
    # the App Home and the request form: views.publish and views.open need no scope (Slack's
    # reference says "No scopes required"; views.open needs the trigger id a command brings)
    # approvers named as user groups (@sre-leads): usergroups.list and .users.list need usergroups:read
    # the security channel's members read any grant's activity: conversations.members needs
    # channels:read (public) / groups:read (private)
    # the access review's export: files_upload_v2 (files.getUploadURLExternal and
    # files.completeUploadExternal) needs files:write; a retry looks for files already in the
    # thread with conversations.replies, under the history scopes finding a post needs already
    assert methods == {"chat_postMessage", "chat_update", "chat_postEphemeral", "chat_delete",
                       "conversations_history", "conversations_open", "views_publish", "views_open",
                       "usergroups_list", "usergroups_users_list", "conversations_members", "files_upload_v2",
                       "conversations_replies"}
    assert manifest()["oauth_config"]["scopes"]["bot"] == [
        "commands", "chat:write", "channels:history", "groups:history", "im:history", "im:write",
        "usergroups:read", "channels:read", "groups:read", "files:write"]


@pytest.mark.parametrize("bad", ["http://abc.example/api/", "abc.example/api/", ""])
def test_only_https_urls(bad):
    with pytest.raises(ManifestError):
        fill(bad)


def test_a_url_without_trailing_slash_is_fine():
    assert manifest() == yaml.safe_load(fill(URL.rstrip("/")))


def test_the_app_home_is_on_and_only_the_events_the_app_handles_are_subscribed():
    from chalicelib.slack.parse import parse_event

    m = manifest()
    assert m["features"]["app_home"]["home_tab_enabled"] is True
    events = m["settings"]["event_subscriptions"]["bot_events"]
    assert events == ["app_home_opened"]
    body = b'{"type":"event_callback","event":{"type":"%s","user":"U0ALICE001","tab":"home"}}'
    assert all(parse_event(body % e.encode()) is not None for e in events)  # each one is handled
