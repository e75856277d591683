"""chalicelib.slack.parse: slash-command text, slash-command bodies and button clicks."""

from __future__ import annotations

import json
import urllib.parse
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.slack.parse import (
    MAX_REASON,
    USAGE,
    BadPayload,
    Click,
    CommandError,
    FieldError,
    HelpCmd,
    ListCmd,
    RequestCmd,
    RevokeCmd,
    SlashCommand,
    ViewSubmission,
    decode_entities,
    is_request_id,
    parse_command_text,
    parse_interaction,
    parse_slash_command,
    request_from_form,
)
from local.slack_standin import slack_escape
from tests.fixtures import load_slack

REVOKE_USAGE = "usage: `/aws-access revoke &lt;request-id&gt;` (see `/aws-access list`)"


def not_an_id(word: str) -> str:
    return f"'{word}' is not a request id (they look like req-20261112-3fa9c1)"


# ==== parse_command_text =============================================================
@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("", HelpCmd(), id="empty"),
    pytest.param("   \t ", HelpCmd(), id="blank"),
    pytest.param("help", HelpCmd(), id="help"),
    pytest.param("HELP", HelpCmd(), id="HELP"),
    pytest.param("  Help  ", HelpCmd(), id="padded-Help"),
    pytest.param("--help", HelpCmd(), id="--help"),
    pytest.param("-h", HelpCmd(), id="-h"),
    pytest.param("help prod", HelpCmd(), id="help-ignores-args"),
    pytest.param("list", ListCmd(), id="list"),
    pytest.param("LIST", ListCmd(), id="LIST"),
    pytest.param("revoke req-20261112-3fa9c1", RevokeCmd("req-20261112-3fa9c1"), id="revoke"),
    pytest.param("Revoke REQ-20261112-3FA9C1", RevokeCmd("req-20261112-3fa9c1"), id="revoke-upper-case"),
    pytest.param("revoke `req-20261112-3fa9c1`", RevokeCmd("req-20261112-3fa9c1"), id="revoke-backticks"),
    pytest.param("prod admin 2h", RequestCmd("prod", "admin", "2h", ""), id="request-no-reason"),
    pytest.param("prod admin 2h fix incident 4521", RequestCmd("prod", "admin", "2h", "fix incident 4521"),
                 id="request-with-reason"),
    pytest.param("PROD Admin 1H30m  Fix   the <thing> &  now ",
                 RequestCmd("prod", "admin", "1H30m", "Fix the <thing> & now"),
                 id="request-keys-lowered-reason-words-kept"),
    pytest.param("prod admin 2h " + "x" * MAX_REASON, RequestCmd("prod", "admin", "2h", "x" * MAX_REASON),
                 id="reason-at-limit"),
    pytest.param("prod admin 2h list", RequestCmd("prod", "admin", "2h", "list"), id="verb-word-in-reason"),
])
def test_parse_command_text(text, expected):
    assert parse_command_text(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("list mine", "`list` takes no arguments", id="list-with-args"),
    pytest.param("revoke", REVOKE_USAGE, id="revoke-missing-id"),
    pytest.param("revoke req-20261112-3fa9c1 now", REVOKE_USAGE, id="revoke-extra-args"),
    pytest.param("revoke req-1", not_an_id("req-1"), id="revoke-bad-id"),
    pytest.param("revoke req-20261112-3fa9cg", not_an_id("req-20261112-3fa9cg"), id="revoke-non-hex"),
    pytest.param("revoke req-20261112-3fa9c1a", not_an_id("req-20261112-3fa9c1a"), id="revoke-too-long"),
    pytest.param("revoke " + "y" * 60, not_an_id("y" * 40), id="revoke-bad-id-shortened-to-40"),
])
def test_parse_command_text_errors(text, message):
    with pytest.raises(CommandError) as err:
        parse_command_text(text)
    assert str(err.value) == message


@pytest.mark.parametrize("text", [
    pytest.param("prod", id="one-word"),
    pytest.param("prod admin", id="two-words"),
])
def test_request_needs_three_words(text):
    with pytest.raises(CommandError) as err:
        parse_command_text(text)
    assert str(err.value) == "a request needs an account, a role and a duration.\n" + USAGE
    assert "/aws-access &lt;account&gt; &lt;role&gt; &lt;duration&gt; [reason ...]" in str(err.value)


def test_reason_over_the_limit_is_refused():
    with pytest.raises(CommandError) as err:
        parse_command_text("prod admin 2h " + "x" * (MAX_REASON + 1))
    assert str(err.value) == "the reason is 301 characters; keep it to 300 or fewer"


def test_reason_limit_counts_the_joined_words():
    # 100 two-character words: 299 characters once joined with single spaces
    words = " ".join(["ab"] * 100)
    assert parse_command_text(f"prod admin 2h {words}").reason == words
    with pytest.raises(CommandError):
        parse_command_text(f"prod admin 2h {words} abcd")


# ==== parse_slash_command ============================================================
def test_parse_slash_command_fixture():
    body = load_slack("slash_command.txt").encode()
    assert parse_slash_command(body) == SlashCommand(
        user_id="U0ALICE001",
        channel_id="C0APPROVE1",
        text="prod admin 2h fix incident 4521",
        command="/aws-access",
        response_url="https://hooks.slack.com/commands/T0TEAM0001/1111111111111/EXAMPLEresponseURLtoken01",
        trigger_id="1111111111111.2222222222.00000000000000000000000000000a11",
        team_id="T0TEAM0001",
        api_app_id="A0EXAMPLE01",
    )


def test_parse_slash_command_defaults():
    assert parse_slash_command(b"user_id=W0ENTERPR1&command=") == SlashCommand(
        user_id="W0ENTERPR1", channel_id="", text="", command="/aws-access", response_url="")


@pytest.mark.parametrize("body", [
    pytest.param(b"", id="empty"),
    pytest.param(b"channel_id=C0APPROVE1&text=help", id="missing-user_id"),
    pytest.param(b"user_id=&text=help", id="blank-user_id"),
    pytest.param(b"user_id=alice&text=help", id="user-name-not-id"),
    pytest.param(b"user_id=C0APPROVE1", id="channel-id-as-user"),
    pytest.param(b"user_id=U0ALICE001&text=\xff\xfe", id="not-utf8"),
    pytest.param(b"\xc3\x28", id="invalid-utf8-sequence"),
    pytest.param(b"user_id", id="field-without-equals"),
])
def test_parse_slash_command_bad_payload(body):
    with pytest.raises(BadPayload):
        parse_slash_command(body)


def test_user_id_with_trailing_newline_is_refused():
    with pytest.raises(BadPayload):
        parse_slash_command(b"user_id=U0ALICE001%0A&text=help")


# ==== parse_interaction ==============================================================
def form(payload) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return urllib.parse.urlencode({"payload": text}).encode()


@pytest.mark.parametrize(("fixture", "action_id"), [
    pytest.param("block_actions_approve", "approve_request", id="approve"),
    pytest.param("block_actions_deny", "deny_request", id="deny"),
])
def test_parse_interaction_fixture(fixture, action_id):
    payload = load_slack(fixture)
    assert parse_interaction(form(payload)) == Click(
        action_id=action_id,
        request_id=payload["actions"][0]["value"],
        user_id=payload["user"]["id"],
        channel_id=payload["channel"]["id"],
        message_ts=payload["container"]["message_ts"],
        trigger_id=payload["trigger_id"],
        team_id=payload["team"]["id"],
        api_app_id=payload["api_app_id"],
    )


def test_parse_interaction_approve_fixture_values():
    assert parse_interaction(form(load_slack("block_actions_approve"))) == Click(
        action_id="approve_request", request_id="req-20261112-0001", user_id="U0BOB00001",
        channel_id="C0APPROVE1", message_ts="1794492001.000200",
        trigger_id="1111111111111.2222222222.00000000000000000000000000000b02",
        team_id="T0TEAM0001", api_app_id="A0EXAMPLE01")


def test_channel_falls_back_to_the_container():
    payload = load_slack("block_actions_approve")
    del payload["channel"]
    payload["container"]["channel_id"] = "C0OTHER001"
    click = parse_interaction(form(payload))
    assert (click.channel_id, click.message_ts) == ("C0OTHER001", "1794492001.000200")


def test_no_channel_or_container_gives_empty_strings():
    payload = load_slack("block_actions_approve")
    payload["channel"] = None
    payload["container"] = "not an object"
    click = parse_interaction(form(payload))
    assert (click.channel_id, click.message_ts, click.request_id) == ("", "", "req-20261112-0001")


def test_a_view_submission_is_flattened_to_block_ids_and_values():
    sub = parse_interaction(form(load_slack("view_submission")))
    assert isinstance(sub, ViewSubmission)
    assert (sub.user_id, sub.team_id, sub.api_app_id) == ("U0ALICE001", "T0TEAM0001", "A0EXAMPLE01")
    assert (sub.callback_id, sub.view_id, sub.view_hash) == ("aws_access_request", "V0EXAMPLE01", "1794491975.EXAMPLE1")
    assert sub.values == {"account_block": "prod", "role_block": "admin", "duration_block": "2h",
                          "reason_block": "fix incident 4521"}
    assert json.loads(sub.private_metadata) == {"channel_id": "C0APPROVE1"}
    assert sub.value("nothing") == ""


def test_a_view_submission_left_empty_reads_as_empty_strings_and_its_text_is_not_decoded():
    payload = load_slack("view_submission")
    values = payload["view"]["state"]["values"]
    values["role_block"]["role_select"]["selected_option"] = None
    values["reason_block"]["reason_input"]["value"] = "R&D &lt;ops&gt;"  # view state is not escaped by Slack
    values["duration_block"]["duration_select"] = "not an object"
    sub = parse_interaction(form(payload))
    assert (sub.value("role_block"), sub.value("duration_block")) == ("", "")
    assert sub.value("reason_block") == "R&D &lt;ops&gt;"


def test_a_double_submission_is_one_delivery_and_a_changed_value_another():
    payload = load_slack("view_submission")
    first, again = parse_interaction(form(payload)), parse_interaction(form(payload))
    payload["view"]["state"]["values"]["duration_block"]["duration_select"]["selected_option"]["value"] = "1h"
    changed = parse_interaction(form(payload))
    assert first.delivery == again.delivery != changed.delivery
    assert first.delivery.startswith("V0EXAMPLE01#")


@pytest.mark.parametrize("payload", [
    {"type": "view_submission", "view": {"id": "V1"}},
    {"type": "view_submission", "user": {"id": "U0ALICE001"}},
    {"type": "view_submission", "user": {"id": "nobody"}, "view": {"id": "V1"}},
    {"type": "view_submission", "user": {"id": "U0ALICE001"}, "view": {"callback_id": "x"}},
])
def test_a_view_submission_without_a_user_or_a_view_is_unreadable(payload):
    with pytest.raises(BadPayload):
        parse_interaction(form(payload))


@pytest.mark.parametrize("fields, expected", [
    (("prod/admin", "2h", "  fixing   incident\n4521 "), RequestCmd("prod", "admin", "2h", "fixing incident 4521")),
    (("Dev/Admin", "1d", ""), RequestCmd("dev", "admin", "1d", "")),
])
def test_a_request_forms_fields_make_the_one_liners_request(fields, expected):
    assert request_from_form(*fields) == expected


@pytest.mark.parametrize("fields, block, words", [
    (("", "2h", "x"), "role", "choose an account and role"),
    (("prod", "2h", "x"), "role", "choose an account and role"),
    (("prod/a<b", "2h", "x"), "role", "is not a role"),
    (("prod/admin", "", "x"), "duration", "choose a duration"),
    (("prod/admin", "2h&", "x"), "duration", "is not a duration"),
    (("prod/admin", "2h", "x" * (MAX_REASON + 1)), "reason",
     f"the reason is {MAX_REASON + 1} characters; keep it to {MAX_REASON} or fewer"),
])
def test_a_request_forms_mistakes_name_their_field_in_the_one_liners_words(fields, block, words):
    with pytest.raises(FieldError) as caught:
        request_from_form(*fields)
    assert caught.value.block_id == block and words in str(caught.value)


def test_other_types_are_ignored():
    assert parse_interaction(form({"type": "shortcut", "user": {"id": "U0ALICE001"}})) is None


def _with_actions(actions) -> dict:
    payload = load_slack("block_actions_approve")
    payload["actions"] = actions
    return payload


def _with_user(user) -> dict:
    payload = load_slack("block_actions_approve")
    payload["user"] = user
    return payload


@pytest.mark.parametrize("body", [
    pytest.param(b"", id="empty-body"),
    pytest.param(b"token=x&type=block_actions", id="missing-payload"),
    pytest.param(form("{not json"), id="non-json"),
    pytest.param(form("[1, 2]"), id="json-list"),
    pytest.param(form('"block_actions"'), id="json-string"),
    pytest.param(form("null"), id="json-null"),
    pytest.param(b"payload=%7B%7D\xff", id="not-utf8"),
    pytest.param(form(_with_actions({"action_id": "approve_request"})), id="actions-not-a-list"),
    pytest.param(form(_with_actions(None)), id="actions-missing"),
    pytest.param(form(_with_actions([])), id="no-action"),
    pytest.param(form(_with_actions([load_slack("block_actions_approve")["actions"][0]] * 2)),
                 id="two-actions"),
    pytest.param(form(_with_actions(["approve_request"])), id="action-not-an-object"),
    pytest.param(form(_with_user(None)), id="no-user"),
    pytest.param(form(_with_user({"id": "alice"})), id="user-id-not-an-id"),
    pytest.param(form(_with_user({"name": "bob"})), id="user-without-id"),
])
def test_parse_interaction_bad_payload(body):
    with pytest.raises(BadPayload):
        parse_interaction(body)


@pytest.mark.parametrize("value", [
    pytest.param(12345, id="number"),
    pytest.param(None, id="null"),
    pytest.param(["req-20261112-0001"], id="list"),
    pytest.param({"request_id": "req-20261112-0001"}, id="object"),
])
def test_non_string_button_value_gives_empty_request_id(value):
    payload = load_slack("block_actions_approve")
    payload["actions"][0]["value"] = value
    click = parse_interaction(form(payload))
    assert click == Click(action_id="approve_request", request_id="", user_id="U0BOB00001",
                          channel_id="C0APPROVE1", message_ts="1794492001.000200",
                          trigger_id=payload["trigger_id"], team_id="T0TEAM0001", api_app_id="A0EXAMPLE01")
    assert not is_request_id(click.request_id)


def test_missing_button_value_gives_empty_request_id():
    payload = load_slack("block_actions_approve")
    del payload["actions"][0]["value"]
    assert parse_interaction(form(payload)).request_id == ""


def test_button_value_is_passed_through_unvalidated():
    # parse does not judge the id; the service checks is_request_id before any lookup
    payload = load_slack("block_actions_approve")
    payload["actions"][0]["value"] = "req-20261112-0001; DROP"
    assert parse_interaction(form(payload)).request_id == "req-20261112-0001; DROP"


def test_deeply_nested_payload_is_a_bad_payload():
    with pytest.raises(BadPayload):
        parse_interaction(form("[" * 20000))


# ==== is_request_id ==================================================================
@pytest.mark.parametrize(("value", "ok"), [
    ("req-20261112-0a11ce", True),
    ("req-20261112-0A11CE", False),
    ("req-2026111-0a11ce", False),
    ("req-20261112-0a11c", False),
    (" req-20261112-0a11ce", False),
    ("", False),
])
def test_is_request_id(value, ok):
    assert is_request_id(value) is ok


@pytest.mark.parametrize("value", [
    pytest.param("req-20261112-0a11ce\n", id="trailing-newline"),
    pytest.param("req-\u0662\u0660\u0662\u0666\u0661\u0661\u0661\u0662-0a11ce", id="arabic-indic-digits"),
])
def test_is_request_id_refuses_lookalikes(value):
    assert is_request_id(value) is False


# ==== properties =====================================================================
COMMANDS = (RequestCmd, HelpCmd, ListCmd, RevokeCmd)


@settings(max_examples=300)
@given(st.text())
def test_any_text_is_a_command_or_a_command_error(text):
    try:
        cmd = parse_command_text(text)
    except CommandError as exc:
        assert str(exc)
    else:
        assert isinstance(cmd, COMMANDS)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(["help", "list", "revoke", "prod", "admin", "2h", "req-20261112-0a11ce",
                                 " ", "\t", "\n", "x" * 100, "é", "<!channel>"]), max_size=12).map("".join))
def test_wordy_text_is_a_command_or_a_command_error(text):
    try:
        cmd = parse_command_text(text)
    except CommandError:
        return
    assert isinstance(cmd, COMMANDS)
    if isinstance(cmd, RequestCmd):
        assert len(cmd.reason) <= MAX_REASON
        assert cmd.reason == " ".join(text.split()[3:])


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_any_bytes_to_parse_slash_command(body):
    try:
        result = parse_slash_command(body)
    except BadPayload:
        return
    assert isinstance(result, SlashCommand)


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_any_bytes_to_parse_interaction(body):
    try:
        result = parse_interaction(body)
    except BadPayload:
        return
    assert result is None or isinstance(result, Click)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children,
                                                                       max_size=3),
    max_leaves=10,
)


@settings(max_examples=300)
@given(st.fixed_dictionaries(
    {}, optional={"type": st.sampled_from(["block_actions", "view_submission"]) | st.text(max_size=5),
                  "user": JSONISH | st.fixed_dictionaries({"id": st.sampled_from(["U0BOB00001", "x"])}),
                  "actions": JSONISH | st.lists(st.dictionaries(
                      st.sampled_from(["action_id", "value"]), JSONISH), min_size=1, max_size=2),
                  "channel": JSONISH, "container": JSONISH,
                  "view": JSONISH | st.fixed_dictionaries({"id": JSONISH, "state": st.fixed_dictionaries(
                      {"values": st.dictionaries(st.text(max_size=5), JSONISH, max_size=3)})})}))
def test_any_json_object_to_parse_interaction(payload):
    try:
        result = parse_interaction(form(payload))
    except BadPayload:
        return
    assert result is None or isinstance(result, (Click, ViewSubmission))
    if isinstance(result, ViewSubmission):
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in result.values.items())
        return
    if isinstance(result, Click):
        assert all(isinstance(v, str) for k, v in vars(result).items() if k != "extension")
        assert isinstance(result.extension, int) and result.extension == 0  # no extension block_id here


request_ids = st.builds(
    lambda d, h: f"req-{d:%Y%m%d}-{h}",
    st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
    st.text(alphabet="0123456789abcdef", min_size=6, max_size=6),
)


@given(request_ids, st.sampled_from(["{}", "`{}`", "  {}  "]), st.booleans())
def test_valid_request_ids_round_trip_through_revoke(rid, shape, upper):
    word = shape.format(rid.upper() if upper else rid)
    assert parse_command_text(f"revoke {word}") == RevokeCmd(rid)
    assert is_request_id(rid)


# ==== typed text: Slack escapes & < >, parse decodes once ===========================
@pytest.mark.parametrize(("sent", "typed"), [
    pytest.param("R&amp;D &lt;ops&gt;", "R&D <ops>", id="all-three"),
    pytest.param("&amp;lt;", "&lt;", id="typed-entity-stays-literal"),
    pytest.param("&amp;amp;", "&amp;", id="typed-amp-entity"),
    pytest.param("&amp;gt;&lt;", "&gt;<", id="mixed"),
    pytest.param("&lt;!channel&gt; &lt;@U0EVIL0001&gt;", "<!channel> <@U0EVIL0001>", id="mentions-as-text"),
    pytest.param("&lt;https://evil|x&gt;", "<https://evil|x>", id="link-syntax-as-text"),
    pytest.param("prod admin 2h fix incident 4521", "prod admin 2h fix incident 4521", id="plain"),
    pytest.param("a & b; &quot; &#39; &nbsp;", "a & b; &quot; &#39; &nbsp;", id="other-entities-untouched"),
    pytest.param("", "", id="empty"),
])
def test_decode_entities(sent, typed):
    assert decode_entities(sent) == typed


@settings(max_examples=500)
@given(st.text() | st.lists(st.sampled_from(["&", "<", ">", "amp;", "lt;", "gt;", "&amp;", "&lt;", "x", " "]),
                            max_size=20).map("".join))
def test_decode_undoes_what_slack_sends(typed):
    assert decode_entities(slack_escape(typed)) == typed


def slash(text_as_sent: str) -> bytes:
    return urllib.parse.urlencode({"user_id": "U0ALICE001", "text": text_as_sent}).encode()


def test_slash_command_text_is_what_the_person_typed():
    body = slash(slack_escape("prod readonly 1h R&D <ops> <!channel> &lt; https://example.com/x"))
    assert body == (b"user_id=U0ALICE001&text=prod+readonly+1h+R%26amp%3BD+%26lt%3Bops%26gt%3B+"
                    b"%26lt%3B%21channel%26gt%3B+%26amp%3Blt%3B+https%3A%2F%2Fexample.com%2Fx")
    cmd = parse_slash_command(body)
    assert cmd.text == "prod readonly 1h R&D <ops> <!channel> &lt; https://example.com/x"
    assert parse_command_text(cmd.text) == RequestCmd(
        "prod", "readonly", "1h", "R&D <ops> <!channel> &lt; https://example.com/x")


def test_text_is_decoded_once_not_twice():
    # what Slack sends when someone types the characters "&amp;" -- they must get "&amp;" back
    assert parse_slash_command(slash("fix &amp;amp; check")).text == "fix &amp; check"


def test_reason_limit_counts_the_typed_characters_not_the_escaped_ones():
    typed = "<" * MAX_REASON  # 1,200 characters as Slack sends it
    sent = slack_escape(f"prod admin 2h {typed}")
    assert len(sent) > 4 * MAX_REASON
    assert parse_command_text(parse_slash_command(slash(sent)).text).reason == typed
    with pytest.raises(CommandError, match="the reason is 301 characters"):
        parse_command_text(parse_slash_command(slash(slack_escape(f"prod admin 2h {typed}&"))).text)


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("<!channel> admin 2h", "'&lt;!channel&gt;' is not an account", id="account"),
    pytest.param("prod <https://evil|admin> 2h", "'&lt;https://evil|admin&gt;' is not a role", id="role"),
    pytest.param("prod admin 2h&", "'2h&amp;' is not a duration", id="duration"),
])
def test_markup_in_account_role_or_duration_is_refused_escaped(text, message):
    # later replies quote these words unescaped (unknown account 'x'), so they never get there
    with pytest.raises(CommandError) as err:
        parse_command_text(text)
    assert str(err.value).startswith(message + ": accounts, roles and durations never contain")
    assert "<" not in str(err.value).replace("`", "")


def test_revoke_quotes_a_bad_id_escaped():
    with pytest.raises(CommandError) as err:
        parse_command_text("revoke <!here>")
    assert str(err.value) == not_an_id("&lt;!here&gt;")
