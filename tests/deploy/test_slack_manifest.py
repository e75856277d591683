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
             m["settings"]["interactivity"]["request_url"].removeprefix(URL.rstrip("/"))}
    assert paths == {"/slack/commands", "/slack/interactions"}
    assert paths <= set(app.routes)
    assert PLACEHOLDER not in fill(URL)


def test_scopes_are_exactly_what_the_notifier_calls():
    tree = ast.parse((ROOT / "chalicelib" / "adapters" / "slack_notifier.py").read_text())
    methods = {n.func.attr for n in ast.walk(tree)
               if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
               and isinstance(n.func.value, ast.Attribute) and n.func.value.attr == "_web"}
    # chat:write covers posting, updating, ephemerals and deleting the bot's own messages;
    # finding a post whose answer was lost reads history (public, private, DM) and opens the DM
    assert methods == {"chat_postMessage", "chat_update", "chat_postEphemeral", "chat_delete",
                       "conversations_history", "conversations_open"}
    assert manifest()["oauth_config"]["scopes"]["bot"] == [
        "commands", "chat:write", "channels:history", "groups:history", "im:history", "im:write"]


@pytest.mark.parametrize("bad", ["http://abc.example/api/", "abc.example/api/", ""])
def test_only_https_urls(bad):
    with pytest.raises(ManifestError):
        fill(bad)


def test_a_url_without_trailing_slash_is_fine():
    assert manifest() == yaml.safe_load(fill(URL.rstrip("/")))
