"""Request verification at both Slack routes, malformed bodies, and unexpected errors.

A request without a valid, fresh Slack signature is a 401 and has no effect at all;
a correctly signed request always gets a 200 (docs/REFERENCE.md) — one the app cannot read is
refused with an ephemeral message naming the problem — and an unexpected error shows the
user only a correlation id.
Each "no effect" check compares the whole table, every Slack call and IAM before/after.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import urllib.parse
from dataclasses import dataclass
from typing import Callable

import pytest

from chalicelib.domain.model import RequestStatus
from local import slack_client
from local.seed import client as aws
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, TABLE, click_body, sign, slash_body
from tests.fixtures import load_slack

FORM = slack_client.FORM
PEOPLE = ("alice", "bob", "carol", "dave")
RID = re.compile(r"req-\d{8}-[0-9a-f]{6}")


def sign_bytes(body: bytes, secret: str = SIGNING_SECRET, timestamp: int | None = None,
               content_type: str = FORM) -> dict:
    """Signed as Slack would sign these exact bytes (even ones that are not UTF-8)."""
    return slack_client.sign(body, secret, timestamp, content_type=content_type)


def table_items(stack, bookkeeping: bool = True) -> list[dict]:
    """The whole table; without ``bookkeeping``, not the delivery-dedupe items (ONCE#<trigger id>)
    that a correctly signed delivery records before it is acted on."""
    db = aws("dynamodb", keys=stack.service)
    items = db.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    return sorted((i for i in items if bookkeeping or not i["PK"]["S"].startswith("ONCE#")),
                  key=lambda i: (i["PK"]["S"], i["SK"]["S"]))


def attached(stack) -> dict[str, list]:
    iam = aws("iam", keys=stack.service)
    return {p: iam.list_attached_user_policies(UserName=p)["AttachedPolicies"] for p in PEOPLE}


def state(stack, slack, bookkeeping: bool = True) -> dict:
    return {"table": table_items(stack, bookkeeping), "calls": slack.calls, "messages": [m.to_dict() for m in slack.messages()],
            "ephemerals": [m.to_dict() for m in slack.ephemerals()], "iam": attached(stack)}


def requests_in_table(stack) -> list[str]:
    return [i["PK"]["S"] for i in table_items(stack) if i["SK"]["S"] == "REQUEST"]


# ---- the two routes, each with a body that would have an effect if accepted ---------
@dataclass(frozen=True)
class Route:
    path: str
    body: Callable[[str], str]  # given the pending request id, a body that would change something
    altered: Callable[[str], str]  # a different body that would also change something


ROUTES = {
    "commands": Route(
        "/slack/commands",
        lambda rid: slash_body("U0DAVE0001", "prod readonly 1h checking dashboards"),
        lambda rid: slash_body("U0DAVE0001", "prod admin 4h checking dashboards"),
    ),
    "interactions": Route(
        "/slack/interactions",
        lambda rid: click_body("U0BOB00001", "approve_request", rid),
        lambda rid: click_body("U0BOB00001", "deny_request", rid),
    ),
}


@pytest.fixture
def pending_rid(app_client, store) -> str:
    """alice's pending prod/admin request: what a forged click would approve or deny."""
    reply = app_client.command("alice", "prod admin 2h fixing incident 4521")
    rid = RID.search(reply.text).group(0)
    assert store.get(rid).status is RequestStatus.PENDING
    return rid


def bad_variants(body: str, altered: str) -> dict[str, tuple[str, dict, int | None]]:
    """name -> (body sent, headers, expected status; None: any 4xx)."""
    now = int(time.time())
    good = sign(body)
    oversize = body + "&pad=" + "x" * (64 * 1024)
    return {
        "missing-headers": (body, {"Content-Type": FORM}, 401),
        "missing-signature": (body, {"Content-Type": FORM, "X-Slack-Request-Timestamp": str(now)}, 401),
        "missing-timestamp": (body, {"Content-Type": FORM, "X-Slack-Signature": good["X-Slack-Signature"]}, 401),
        "wrong-secret": (body, sign(body, secret="not-the-signing-secret"), 401),
        "garbage-signature": (body, {**good, "X-Slack-Signature": "v0=" + "0" * 64}, 401),
        "signature-without-version": (body, {**good, "X-Slack-Signature": good["X-Slack-Signature"][3:]}, 401),
        "non-numeric-timestamp": (body, {**good, "X-Slack-Request-Timestamp": "yesterday"}, 401),
        "stale-timestamp": (body, sign(body, timestamp=now - 5 * 60 - 30), 401),
        "future-timestamp": (body, sign(body, timestamp=now + 5 * 60 + 30), 401),
        "timestamp-swapped": (body, {**sign(body, timestamp=now - 60), "X-Slack-Request-Timestamp": str(now)}, 401),
        "body-altered-after-signing": (altered, good, 401),
        "body-extended-after-signing": (body + "&x=1", good, 401),
        "oversize-correctly-signed": (oversize, sign(oversize), None),
        "json-content-type-correctly-signed": (body, {**good, "Content-Type": "application/json"}, 415),
    }


@pytest.mark.parametrize("route_name", ROUTES)
def test_bad_signatures_are_401_with_no_effect(route_name, subtests, app_client, stack, slack, store, pending_rid):
    route = ROUTES[route_name]
    body = route.body(pending_rid)
    before = state(stack, slack)
    for name, (sent, headers, status) in bad_variants(body, route.altered(pending_rid)).items():
        with subtests.test(name):
            reply = app_client.raw(route.path, sent, headers)
            if status is None:
                assert 400 <= reply.status < 500
            else:
                assert reply.status == status
            if status == 401:
                assert reply.body == {"error": "invalid Slack signature"}
            assert state(stack, slack) == before  # not even delivery bookkeeping
    assert requests_in_table(stack) == [f"REQ#{pending_rid}"]
    assert store.get(pending_rid).approvals == ()

    # Control: the very same body, correctly signed, does act.
    reply = app_client.raw(route.path, body, sign(body))
    assert reply.status == 200
    if route_name == "commands":
        assert reply.text.startswith("Request `req-") and len(requests_in_table(stack)) == 2
    else:
        assert store.get(pending_rid).approvers == ("bob",)


NON_UTF8 = {
    "commands": b"user_id=U0ALICE001&text=prod+readonly+1h+caf\xe9\xff",
    "interactions": b"payload=%7B%22type%22%3A%22block_actions%22%7D\xff\xfe",
}


def test_non_utf8_body_is_refused_before_parsing(app_client):
    # Slack only sends UTF-8. slack-sdk's SignatureVerifier cannot verify other bytes, so such a
    # body is refused as unverifiable (401) before anything parses it.
    statuses = {name: app_client.raw(ROUTES[name].path, body, sign_bytes(body)).status
                for name, body in NON_UTF8.items()}
    assert statuses == {"commands": 401, "interactions": 401}


def _unreadable(problem: str) -> dict:
    return {"response_type": "ephemeral",
            "text": f"Drawbridge could not read that request ({problem}); nothing was changed."}


def _unusable_bodies(pending_rid: str) -> dict[str, tuple[str, str | bytes, int, object]]:
    """name -> (path, correctly signed body, expected status, expected reply body; None: don't care)."""
    no_action = {"type": "block_actions", "actions": [], "user": {"id": "U0BOB00001"}}
    return {
        "commands-non-utf8": ("/slack/commands", NON_UTF8["commands"], 401, None),
        "interactions-non-utf8": ("/slack/interactions", NON_UTF8["interactions"], 401, None),
        "payload-not-json": ("/slack/interactions", "payload=not-json", 200, _unreadable("payload is not JSON")),
        "payload-not-an-object": ("/slack/interactions", "payload=%5B1%2C2%5D", 200,
                                  _unreadable("payload is not an object")),
        "no-payload-field": ("/slack/interactions", "token=abc&type=block_actions", 200,
                             _unreadable("interaction without a payload field")),
        "block-actions-without-action": (
            "/slack/interactions", "payload=" + urllib.parse.quote(json.dumps(no_action)), 200,
            _unreadable("block_actions payload without exactly one action and a user")),
        "command-without-user": (
            "/slack/commands", urllib.parse.urlencode({"command": "/aws-access", "text": "prod readonly 1h x"}),
            200, _unreadable("slash command without a valid user_id")),
        "view-submission": (
            "/slack/interactions", urllib.parse.urlencode({"payload": json.dumps(load_slack("view_submission"))}),
            200, None),
    }


def test_correctly_signed_unusable_bodies_have_no_effect(subtests, app_client, stack, slack, pending_rid):
    """Malformed but signed bodies get a 200 with an ephemeral refusal naming the problem
    (non-UTF-8 cannot be verified at all: 401); a view_submission of a form Drawbridge does not
    know (another callback_id) is a plain 200 that closes it. None of them changes anything."""
    before = state(stack, slack)
    for name, (path, body, status, reply_body) in _unusable_bodies(pending_rid).items():
        with subtests.test(name):
            headers = sign_bytes(body) if isinstance(body, bytes) else sign(body)
            reply = app_client.raw(path, body, headers)
            assert reply.status == status
            if reply_body is not None:
                assert reply.body == reply_body
            if name == "view-submission":
                assert reply.body in (None, "")
            assert state(stack, slack) == before


# ---- unexpected errors ------------------------------------------------------------------
class _CurrentStdout:
    """Writes to whatever sys.stdout is right now (this test's capture), never to a stale one."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def log_output(request, monkeypatch):
    """What the app's logger writes to stdout during the test (read through capsys).

    The logger's handlers keep the stdout they were built with (possibly an earlier test's
    capture), so they are pointed at the current one for the length of the test."""
    import app  # noqa: F401 - the order of a cold start: app first, then the logger
    from chalicelib.log import logger

    for handler in logger()._logger.handlers:
        if type(handler) is logging.StreamHandler:  # not pytest's own capturing handlers
            monkeypatch.setattr(handler, "stream", _CurrentStdout())
    capsys = request.getfixturevalue("capsys")
    return lambda: capsys.readouterr().out


@pytest.fixture
def log_lines(log_output):
    """The Powertools logger's JSON lines."""
    return lambda: [json.loads(line) for line in log_output().splitlines() if line.startswith("{")]


@pytest.mark.parametrize("route_name, method", [("commands", "command"), ("interactions", "click")])
def test_unexpected_error_shows_only_a_correlation_id(route_name, method, monkeypatch, log_lines,
                                                      app_client, stack, slack, pending_rid):
    from chalicelib.service import Drawbridge

    def boom(self, *args, **kwargs):
        raise RuntimeError(f"boom secret {BOT_TOKEN}")

    monkeypatch.setattr(Drawbridge, method, boom)
    route = ROUTES[route_name]
    body = route.body(pending_rid)
    before = state(stack, slack, bookkeeping=False)
    log_lines()  # drop what the setup logged

    reply = app_client.raw(route.path, body, sign(body))

    assert reply.status == 200
    if method == "command":  # the slash command's reply is the ephemeral
        assert reply.body["response_type"] == "ephemeral"
        text = reply.text
    else:  # Slack shows nothing of a click's reply body: the clicker gets a chat.postEphemeral
        (note,) = slack.ephemerals()
        text = note.text
    m = re.search(r"ref `([0-9a-f]{12})`", text)
    assert m, text
    cid = m.group(1)
    for secret in ("boom", "Traceback", BOT_TOKEN, "xoxb-", "RuntimeError"):
        assert secret not in text
    after = state(stack, slack, bookkeeping=False)
    if method == "click":  # nothing but that one ephemeral
        after["ephemerals"], after["calls"] = before["ephemerals"], after["calls"][:-1]
    assert after == before

    lines = log_lines()
    assert lines, "nothing was logged"
    mine = [line for line in lines if line.get("correlation_id") == cid]
    assert mine, lines
    errors = [line for line in mine if line["level"] == "ERROR"]
    assert [e["message"] for e in errors] == [f"unexpected error in {'slash command' if method == 'command' else 'interaction'}"]
    assert "RuntimeError" in errors[0].get("exception_name", "") + errors[0].get("exception", "")


def test_every_log_line_is_json_with_a_correlation_id(aws_env):
    """A cold start in a fresh interpreter: import app.py, then log as a handler does.

    Regression: Chalice configures a plain-text stdout handler on the logger named after the
    app ("drawbridge") unless configure_logs=False, and that is the Powertools logger too,
    so every record used to be written twice, once without correlation_id."""
    import os
    import subprocess

    from tests.conftest import ROOT

    code = ("import app\n"
            "from chalicelib.log import logger, new_correlation_id\n"
            "logger().set_correlation_id(new_correlation_id())\n"
            "logger().info('slash command')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ), capture_output=True,
                         text=True, timeout=60, check=True).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert line.startswith("{") and "correlation_id" in json.loads(line), line


def test_unexpected_error_on_a_click_is_shown_to_the_clicker(app_client, slack, pending_rid, monkeypatch):
    # Slack displays nothing of a block_actions response body, so the ref must come as an ephemeral.
    from chalicelib.service import Drawbridge

    def boom(self, click):
        raise RuntimeError("boom")

    monkeypatch.setattr(Drawbridge, "click", boom)
    reply = app_client.approve("bob", pending_rid)
    assert reply.status == 200
    (note,) = slack.ephemerals("U0BOB00001")
    assert re.search(r"ref `[0-9a-f]{12}`", note.text) and "boom" not in note.text
