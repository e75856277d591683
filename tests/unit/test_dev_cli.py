"""local/dev.py's command line and StackHandle's Slack side, without starting a stack.

Who acts (``--as`` a catalog person or a raw Slack user id, ``--as-slack-id``), the
one-line error for an unknown name (exit code 2, no traceback), what ``send`` puts on
the wire (typed text escaped as Slack escapes it) and what ``click`` prints (the
clicker's private answer).
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest

from chalicelib.slack.parse import parse_command_text, parse_interaction, parse_slash_command
from local import dev
from local.slack_standin import slack_escape
from local.stack import CATALOG, Reply, StackHandle, UnknownPerson

KNOWN = "alice, bob, carol, dave"


@pytest.fixture
def no_state(tmp_path: Path) -> list[str]:
    return ["--state", str(tmp_path / "no-such-state.json")]


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    try:
        code = dev.main(argv)
    except SystemExit as exc:  # argparse, or _handle() finding no stack
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


# ---- who acts ------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    pytest.param(["send", "--as", "zed", "/aws-access help"], id="send"),
    pytest.param(["click", "--as", "zed", "approve", "req-20261112-0a11ce"], id="click"),
    pytest.param(["send", "--as", "Alice", "help"], id="keys-are-case-sensitive"),
])
def test_unknown_person_is_one_line_listing_the_known_people(capsys, no_state, argv):
    code, out, err = run(capsys, no_state + argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"python -m local.dev: error: '{argv[2]}' is not a person in policies/access.toml "
                          f"(known: {KNOWN}); to act as someone not in the catalog: --as-slack-id U0STRANGER")


@pytest.mark.parametrize("argv", [
    pytest.param(["assume", "--as", "zed"], id="assume"),
    pytest.param(["assume", "--as", "U0STRANGER"], id="assume-needs-iam-keys"),
    pytest.param(["cloudtrail", "assume_role_bastion_copy", "--as", "zed"], id="cloudtrail"),
])
def test_commands_that_need_iam_users_refuse_strangers(capsys, no_state, argv):
    code, out, err = run(capsys, no_state + argv)
    assert code == 2 and err.count("\n") == 1
    assert f"(known: {KNOWN}); {argv[0]} needs a catalog person (their IAM user)" in err


@pytest.mark.parametrize("value", ["u0stranger", "C0APPROVE1", "U", "U0 X", "alice"])
def test_as_slack_id_must_look_like_a_slack_user_id(capsys, no_state, value):
    code, _, err = run(capsys, no_state + ["send", "--as-slack-id", value, "help"])
    assert code == 2 and err.count("\n") == 1
    assert f"--as-slack-id {value!r} is not a Slack user id" in err


@pytest.mark.parametrize("argv", [
    pytest.param(["send", "--as", "alice", "help"], id="person"),
    pytest.param(["send", "--as", "U0STRANGER", "help"], id="raw-id-in-as"),
    pytest.param(["send", "--as-slack-id", "U0STRANGER", "help"], id="as-slack-id"),
    pytest.param(["click", "--as-slack-id", "W0ENTERPR1", "approve", "req-20261112-0a11ce"], id="click-W-id"),
])
def test_accepted_actors_get_as_far_as_connecting(capsys, no_state, argv):
    code, _, _ = run(capsys, no_state + argv)
    assert "no running dev stack" in str(code) and "make dev" in str(code)


@pytest.mark.parametrize("argv", [
    pytest.param(["send", "help"], id="nobody"),
    pytest.param(["send", "--as", "alice", "--as-slack-id", "U0STRANGER", "help"], id="both"),
    pytest.param(["click", "approve", "req-20261112-0a11ce"], id="click-nobody"),
])
def test_exactly_one_of_as_and_as_slack_id(capsys, no_state, argv):
    code, _, err = run(capsys, no_state + argv)
    assert code == 2 and "--as" in err


def test_help_documents_acting_as_a_stranger(capsys):
    code, out, _ = run(capsys, ["--help"])
    assert code == 0 and "--as-slack-id U0STRANGER" in out and "not in the catalog" in out
    code, out, _ = run(capsys, ["send", "--help"])
    assert code == 0 and "--as-slack-id USER_ID" in out and "who need not be in the catalog" in " ".join(out.split())
    assert "--as-slack-id" in dev.__doc__


def test_the_running_stacks_catalog_names_the_known_people(tmp_path, capsys):
    other = tmp_path / "access.toml"
    other.write_text(CATALOG.read_text().replace(
        "[people.dave]", '[people.erin]\nslack_user = "U0ERIN0001"\niam_user = "erin"\n\n[people.dave]'))
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"catalog": str(other)}))
    code, _, err = run(capsys, ["--state", str(state), "send", "--as", "zed", "help"])
    assert code == 2 and "(known: alice, bob, carol, erin, dave)" in err and str(other) in err


# ---- StackHandle: what goes on the wire -------------------------------------------------------
@pytest.fixture
def handle(monkeypatch) -> tuple[StackHandle, list]:
    h = StackHandle(moto_url="http://127.0.0.1:1", slack_api_url="http://127.0.0.1:1/api/",
                    app_url="http://127.0.0.1:1", world=None, env={"SLACK_SIGNING_SECRET": "s"})
    posted: list = []
    monkeypatch.setattr(h, "post_signed", lambda path, body, **kw: posted.append((path, body)) or Reply(200, {}))
    monkeypatch.setattr(h, "messages", lambda **kw: [])
    return h, posted


def test_signed_command_sends_typed_text_as_slack_does(handle):
    h, posted = handle
    typed = "prod readonly 1h R&D <ops> <!channel> &lt; https://example.com/x"
    h.signed_command("alice", f"/aws-access {typed}")
    [(path, body)] = posted
    form = dict(urllib.parse.parse_qsl(body))
    assert path == "/slack/commands" and form["user_id"] == "U0ALICE001"
    assert form["text"] == slack_escape(typed) == (
        "prod readonly 1h R&amp;D &lt;ops&gt; &lt;!channel&gt; &amp;lt; https://example.com/x")
    # and the app's own parser gets back exactly what was typed
    cmd = parse_slash_command(body.encode())
    assert cmd.text == typed
    assert parse_command_text(cmd.text).reason == "R&D <ops> <!channel> &lt; https://example.com/x"


def test_signed_click_names_the_cards_message(handle, monkeypatch):
    h, posted = handle
    card = {"channel": "C0APPROVE1", "ts": "1794492001.000200", "text": "card", "blocks": [],
            "metadata": {"event_payload": {"request_id": "req-20261112-0a11ce"}}}
    monkeypatch.setattr(h, "messages", lambda **kw: [card])
    h.signed_click("bob", "approve_request", "req-20261112-0a11ce")
    [(path, body)] = posted
    click = parse_interaction(body.encode())
    assert path == "/slack/interactions"
    assert (click.user_id, click.action_id, click.request_id) == ("U0BOB00001", "approve_request",
                                                                  "req-20261112-0a11ce")
    assert (click.channel_id, click.message_ts) == ("C0APPROVE1", "1794492001.000200")


def test_slack_id(handle):
    h, _ = handle
    assert h.slack_id("bob") == "U0BOB00001"
    assert h.slack_id("U0STRANGER") == "U0STRANGER" and h.slack_id("W0ENTERPR1") == "W0ENTERPR1"
    with pytest.raises(UnknownPerson) as err:
        h.slack_id("zed")
    assert isinstance(err.value, KeyError) and err.value.known == ["alice", "bob", "carol", "dave"]
    assert str(err.value).startswith("'zed' is not a person in ") and "known: alice, bob, carol, dave" in str(err.value)
    for not_an_id in ("U-X", "Ualice", "u0stranger"):
        with pytest.raises(UnknownPerson):
            h.slack_id(not_an_id)


# ---- click prints the private answer -------------------------------------------------------------
class FakeHandle:
    """The parts of StackHandle that cmd_click / cmd_send use; ``on_click`` adds messages."""

    def __init__(self, catalog, messages: list[dict], on_click: list[dict], card: dict | None = None,
                 opens: list[dict] | None = None):
        self.catalog = catalog
        self._messages = messages
        self._on_click = on_click
        self._card = card
        self._opens = opens or []
        self._views: list[dict] = []
        self.clicks: list[tuple] = []

    def opened_views(self) -> list[dict]:
        return list(self._views)

    def slack_id(self, person: str) -> str:
        return StackHandle.slack_id(self, person)  # type: ignore[arg-type]

    @property
    def catalog_path(self) -> str:
        return str(CATALOG)

    def messages(self, include_ephemeral: bool = False, **kw) -> list[dict]:
        return [m for m in self._messages if include_ephemeral or not m.get("ephemeral")]

    def signed_click(self, person, action_id, request_id):
        self.clicks.append((person, action_id, request_id))
        self._messages.extend(self._on_click)
        self._views.extend(self._opens)
        return Reply(200, None)

    def signed_command(self, person, text):
        return Reply(200, {"response_type": "ephemeral",
                           "text": "Request `req-1` is waiting in <#C0APPROVE1>; R&amp;D &lt;ops&gt;"})

    def card(self, request_id):
        return self._card


def eph(user: str, ts: str, text: str) -> dict:
    return {"channel": "C0APPROVE1", "ts": ts, "ephemeral": True, "user": user, "text": text, "blocks": []}


def test_click_prints_only_the_clickers_new_private_answer(catalog, capsys):
    old = eph("U0BOB00001", "1.1", "an earlier answer")
    fake = FakeHandle(catalog, [old], on_click=[
        eph("U0CAROL001", "1.2", "someone else's"),
        eph("U0BOB00001", "1.3", "You are not an approver of prod/admin; approvers: @carol &amp; @dave."),
    ])
    assert dev.cmd_click(fake, "bob", "approve", "req-20261112-0a11ce") == 0
    out = capsys.readouterr().out
    assert fake.clicks == [("bob", "approve_request", "req-20261112-0a11ce")]
    assert out.startswith("HTTP 200\n┌─ #aws-access-approvals -> only @bob  (1.3)")
    assert "│ You are not an approver of prod/admin; approvers: @carol & @dave." in out
    assert "earlier" not in out and "someone else" not in out


def test_click_without_a_private_answer_shows_the_card(catalog, capsys):
    card = {"channel": "C0APPROVE1", "ts": "1.0", "event_type": "access_approved", "text": "card",
            "blocks": [{"type": "context", "elements": [{"type": "mrkdwn", "text": "Approved by <@U0BOB00001>"}]}]}
    fake = FakeHandle(catalog, [], on_click=[], card=card)
    dev.cmd_click(fake, "U0STRANGER", "deny", "req-20261112-0a11ce")
    out = capsys.readouterr().out
    assert fake.clicks == [("U0STRANGER", "deny_request", "req-20261112-0a11ce")]
    assert "(no private answer: the click counted); the card now:" in out
    assert "│ Approved by @bob" in out


def test_send_prints_the_reply_as_slack_shows_it(catalog, capsys, monkeypatch, no_state):
    monkeypatch.setattr(dev, "_handle", lambda state: FakeHandle(catalog, [], []))
    assert dev.main(no_state + ["send", "--as", "alice", "prod admin 2h R&D"]) == 0
    out = capsys.readouterr().out
    assert out == "HTTP 200\nRequest `req-1` is waiting in #aws-access-approvals; R&D <ops>\n"


def test_send_prints_how_to_click_the_private_replys_confirm_button(capsys):
    """``make dev``: a break-glass preview's Confirm can be clicked from the command line."""
    value = '{"a":"prod","r":"admin","d":"30m","why":"db down, pager unanswered","u":"U0ALICE001"}'
    reply = Reply(200, {"response_type": "ephemeral", "text": "Break-glass prod/admin for 30m: nothing has happened",
                        "blocks": [{"type": "actions", "elements": [
                            {"type": "button", "action_id": "confirm_break_glass", "value": value,
                             "text": {"type": "plain_text", "text": "Confirm break-glass"}}]}]})
    dev._print_reply(reply, {}, "alice")
    out = capsys.readouterr().out
    assert "[Confirm break-glass] -> python -m local.dev click --as alice confirm_break_glass '" + value + "'" in out


# ---- the request form ------------------------------------------------------------------------
def test_form_sends_a_bare_command_and_finds_the_view_its_trigger_opened(handle, monkeypatch):
    h, posted = handle
    monkeypatch.setattr(h, "opened_views", lambda: [{"id": "V1", "trigger_id": "other"}])
    reply, view = h.signed_form("alice")
    [(path, body)] = posted
    cmd = parse_slash_command(body.encode())
    assert path == "/slack/commands" and (cmd.user_id, cmd.text) == ("U0ALICE001", "")
    assert view is None  # the app did not open one with this command's trigger id
    monkeypatch.setattr("local.slack_client.trigger_id", lambda: cmd.trigger_id)
    monkeypatch.setattr(h, "opened_views", lambda: [{"id": "V2", "trigger_id": cmd.trigger_id}])
    assert h.signed_form("alice")[1] == {"id": "V2", "trigger_id": cmd.trigger_id}


def test_submit_sends_the_values_as_slack_does(handle):
    h, posted = handle
    view = {"id": "V1", "callback_id": "request_access", "blocks": [
        {"type": "input", "block_id": "reason", "element": {"type": "plain_text_input", "action_id": "reason"}}]}
    h.signed_submit("alice", view, {"reason": "R&D <ops>"})
    [(path, body)] = posted
    sub = parse_interaction(body.encode())
    assert path == "/slack/interactions" and sub.values == {"reason": "R&D <ops>"} and sub.view_id == "V1"


def test_submit_wants_block_value_pairs(capsys, no_state):
    code, _, err = run(capsys, no_state + ["submit", "--as", "alice", "role=prod/admin", "2h"])
    assert code == 2 and "'2h' is not block=value" in err


def test_a_click_that_opens_a_form_prints_it_and_how_to_submit_it(catalog, capsys):
    from chalicelib.slack.views import deny_form
    from tests.unit.test_golden import CARDS

    view = {**deny_form(CARDS["card_pending"]), "id": "V0DENY0001"}
    fake = FakeHandle(catalog, [], [], opens=[view])
    assert dev.cmd_click(fake, "bob", "deny_with_reason", "req-20261112-0a11ce") == 0
    out = capsys.readouterr().out
    assert "Deny request" in out and "[block deny_reason]" in out
    assert "python -m local.dev submit --as bob --view V0DENY0001 deny_reason=..." in out
    assert "the click counted" not in out


def test_cloudtrail_reaches_the_handlers_whose_rules_match_it():
    # make dev cloudtrail <event>: the bastion's three rules, matched as EventBridge would
    from local.dev import _rules_for
    from tests.fixtures import load_activity, load_cloudtrail

    assert _rules_for(load_cloudtrail("assume_role_prod_copy")) == ["on_role_assumed"]
    assert _rules_for(load_cloudtrail("heartbeat_dev")) == ["on_heartbeat"]
    assert _rules_for(load_activity("ec2_run_instances_admin")) == ["on_activity"]
    assert _rules_for(load_activity("iam_create_access_key_admin")) == ["on_role_assumed", "on_activity"]
    assert _rules_for(load_cloudtrail("cloudtrail_describe_trails_prod")) == []
