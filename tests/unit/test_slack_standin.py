"""The Slack stand-in, driven by a real slack_sdk.WebClient over HTTP."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.models.blocks import (ActionsBlock, ButtonElement, ContextBlock, MarkdownTextObject,
                                     SectionBlock)
from slack_sdk.models.metadata import Metadata

from local.slack_standin import Message, SlackStandin, display_mrkdwn, slack_escape

TOKEN = "xoxb-test-token"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def printed() -> list[str]:
    return []


@pytest.fixture
def standin(printed: list[str]) -> Iterator[SlackStandin]:
    s = SlackStandin(TOKEN, printer=printed.append,
                     channel_names={"C0APPROVE1": "#aws-access-approvals"}).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def client(standin: SlackStandin) -> WebClient:
    return WebClient(token=TOKEN, base_url=standin.url, retry_handlers=[])


def card_blocks() -> list:
    return [
        SectionBlock(text="*AWS access request* from <@U0ALICE001>",
                     fields=[MarkdownTextObject(text="*Account*\nprod"), MarkdownTextObject(text="*Role*\nadmin")]),
        ContextBlock(elements=[MarkdownTextObject(text="request `r-1`")]),
        ActionsBlock(elements=[
            ButtonElement(text="Approve", action_id="approve_request", value="r-1", style="primary"),
            ButtonElement(text="Deny", action_id="deny_request", value="r-1", style="danger"),
        ]),
    ]


META = {"event_type": "access_requested", "event_payload": {"request_id": "r-1", "requester": "alice"}}


def test_post_message_with_blocks_and_metadata_is_recorded(standin: SlackStandin, client: WebClient) -> None:
    resp = client.chat_postMessage(channel="C0APPROVE1", text="AWS access request", blocks=card_blocks(),
                                   metadata=META)
    assert resp["ok"] and resp["channel"] == "C0APPROVE1"
    [msg] = standin.messages("C0APPROVE1")
    assert msg.ts == resp["ts"] and msg.metadata == META and msg.event_type == "access_requested"
    assert msg.blocks[2]["elements"][0]["action_id"] == "approve_request"
    for text in ("AWS access request", "*Account*\nprod", "request `r-1`", "Approve", "Deny"):
        assert text in msg.all_text()
    assert standin.find(event_type="access_requested") == [msg]
    assert standin.calls[-1].method == "chat.postMessage" and standin.calls[-1].error is None


def test_metadata_object_and_increasing_ts(standin: SlackStandin, client: WebClient) -> None:
    a = client.chat_postMessage(channel="C0APPROVE1", text="one",
                                metadata=Metadata(event_type="access_expired", event_payload={"request_id": "r"}))
    b = client.chat_postMessage(channel="C0APPROVE1", text="two")
    assert float(b["ts"]) > float(a["ts"])
    assert [m.event_type for m in standin.messages()] == ["access_expired", None]


def test_form_encoded_json_strings_are_decoded(standin: SlackStandin, client: WebClient) -> None:
    client.api_call("chat.postMessage", params={
        "channel": "C0APPROVE1", "text": "t",
        "blocks": json.dumps([b.to_dict() for b in card_blocks()]), "metadata": json.dumps(META)})
    [msg] = standin.messages()
    assert msg.metadata == META and msg.blocks[0]["type"] == "section"


def test_update_replaces_in_place_and_keeps_history(standin: SlackStandin, client: WebClient) -> None:
    ts = client.chat_postMessage(channel="C0APPROVE1", text="pending", blocks=card_blocks(), metadata=META)["ts"]
    done = {"event_type": "access_granted", "event_payload": {"request_id": "r-1"}}
    client.chat_update(channel="C0APPROVE1", ts=ts, text="granted",
                       blocks=[SectionBlock(text="Granted :white_check_mark:")], metadata=done)
    [msg] = standin.messages()
    assert (msg.ts, msg.text, msg.event_type) == (ts, "granted", "access_granted")
    assert "Approve" not in msg.all_text()
    assert msg.updates[0]["text"] == "pending" and msg.updates[0]["metadata"] == META
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel="C0APPROVE1", ts="1.000100", text="x")
    assert err.value.response["error"] == "message_not_found"


def test_delete_removes_a_message_as_slack_does(standin: SlackStandin, client: WebClient) -> None:
    from chalicelib.adapters.slack_notifier import SlackNotifier

    keep = client.chat_postMessage(channel="C0APPROVE1", text="keep")
    gone = client.chat_postMessage(channel="C0APPROVE1", text="gone")
    client.chat_delete(channel="C0APPROVE1", ts=gone["ts"])
    assert [m.text for m in standin.messages("C0APPROVE1")] == ["keep"]
    with pytest.raises(SlackApiError) as err:
        client.chat_delete(channel="C0APPROVE1", ts=gone["ts"])
    assert err.value.response["error"] == "message_not_found"
    SlackNotifier(client).delete("C0APPROVE1", gone["ts"])  # the adapter: already gone is done
    assert standin.get("C0APPROVE1", keep["ts"]) is not None


def test_ephemeral_thread_reply_and_dm(standin: SlackStandin, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="C0APPROVE1", text="card")["ts"]
    client.chat_postMessage(channel="C0APPROVE1", thread_ts=parent, text="approved by bob")
    resp = client.chat_postEphemeral(channel="C0APPROVE1", user="U0ALICE001", text="not allowed")
    assert resp["message_ts"]
    [eph] = standin.ephemerals("U0ALICE001")
    assert eph.ephemeral and eph.user == "U0ALICE001" and eph.text == "not allowed"
    assert [m.thread_ts for m in standin.messages()] == [None, parent]  # ephemerals not among messages

    opened = client.conversations_open(users="U0ALICE001")["channel"]["id"]
    assert opened == "D0ALICE001"
    assert client.chat_postMessage(channel=opened, text="granted")["channel"] == "D0ALICE001"
    dm = client.chat_postMessage(channel="U0ALICE001", text="expires soon")  # a user id works for posts
    assert dm["channel"] == "D0ALICE001"
    with pytest.raises(SlackApiError, match="channel_not_found"):  # ... but not for updates, as in Slack
        client.chat_update(channel="U0ALICE001", ts=dm["ts"], text="expired")
    client.chat_update(channel=dm["channel"], ts=dm["ts"], text="expired")
    assert [m.text for m in standin.dms("U0ALICE001")] == ["granted", "expired"]
    assert standin.messages("U0ALICE001") == standin.dms("U0ALICE001")
    assert standin.dms("U0ALICE001")[0].dm_user == "U0ALICE001"
    link = client.chat_getPermalink(channel="C0APPROVE1", message_ts=parent)
    assert link["permalink"].endswith(parent.replace(".", ""))


@pytest.mark.parametrize("call, error", [
    (lambda c: c.chat_postMessage(channel="C0APPROVE1"), "no_text"),
    (lambda c: c.chat_postMessage(text="x", channel=""), "channel_not_found"),
    (lambda c: c.chat_postMessage(channel="C1", text="x", metadata={"event_type": "a"}), "invalid_metadata_format"),
    (lambda c: c.api_call("chat.postMessage", params={"channel": "C1", "text": "x", "metadata": "{bad"}),
     "invalid_metadata_format"),
    (lambda c: c.api_call("chat.postMessage", params={"channel": "C1", "blocks": "{}"}), "invalid_blocks_format"),
    (lambda c: c.chat_postMessage(channel="#general", text="x"), "channel_not_found"),
    (lambda c: c.chat_postEphemeral(channel="C1", user="", text="x"), "user_not_found"),
    (lambda c: c.api_call("chat.nonsense"), "unknown_method"),
    (lambda c: WebClient(token="xoxb-wrong", base_url=c.base_url).auth_test(), "invalid_auth"),
    (lambda c: WebClient(base_url=c.base_url).auth_test(), "invalid_auth"),
])
def test_errors_as_slack_reports_them(standin: SlackStandin, client: WebClient, call, error) -> None:
    with pytest.raises(SlackApiError) as err:
        call(client)
    assert err.value.response.status_code == 200 and err.value.response["error"] == error
    assert standin.messages() == [] and standin.calls[-1].error == error


def test_concurrent_posts_get_unique_increasing_ts(standin: SlackStandin, client: WebClient) -> None:
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: client.chat_postMessage(channel="C0APPROVE1", text=str(i)), range(40)))
    stamps = [m.ts for m in standin.messages()]
    assert len(set(stamps)) == 40 and stamps == sorted(stamps, key=float)


def test_auth_test(client: WebClient) -> None:
    assert client.auth_test()["user_id"].startswith("U")


def test_rate_limit_with_retry_after_is_honoured(standin: SlackStandin) -> None:
    client = WebClient(token=TOKEN, base_url=standin.url,
                       retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    standin.fail_next("chat.postMessage", status=429, retry_after=0)
    client.chat_postMessage(channel="C0APPROVE1", text="hello")
    assert len(standin.messages()) == 1
    assert [(c.method, c.error) for c in standin.calls] == [("chat.postMessage", "http_429"),
                                                            ("chat.postMessage", None)]


def test_server_error_is_retried(standin: SlackStandin) -> None:
    retry = ServerErrorRetryHandler(max_retry_count=1, interval_calculator=FixedValueRetryIntervalCalculator(0.01))
    client = WebClient(token=TOKEN, base_url=standin.url, retry_handlers=[retry])
    standin.fail_next("chat.postMessage", status=500)
    client.chat_postMessage(channel="C0APPROVE1", text="hello")
    assert len(standin.messages()) == 1 and len(standin.calls) == 2


def test_injected_failures_without_retry(standin: SlackStandin, client: WebClient) -> None:
    standin.fail_next("chat.update", times=2, error="ratelimited")
    standin.fail_next("chat.postMessage", status=500)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C0APPROVE1", text="x")
    assert err.value.response.status_code == 500
    ts = client.chat_postMessage(channel="C0APPROVE1", text="x")["ts"]
    for _ in range(2):
        with pytest.raises(SlackApiError, match="ratelimited"):
            client.chat_update(channel="C0APPROVE1", ts=ts, text="y")
    client.chat_update(channel="C0APPROVE1", ts=ts, text="y")
    assert [m.text for m in standin.messages()] == ["y"]
    assert [c.error for c in standin.calls] == ["http_500", None, "ratelimited", "ratelimited", None]


def test_inspection_endpoints(standin: SlackStandin, client: WebClient) -> None:
    client.chat_postMessage(channel="C0APPROVE1", text="hello", blocks=card_blocks(), metadata=META)
    base = standin.url.replace("/api/", "/_standin/")
    with urllib.request.urlopen(base + "messages") as resp:
        body = json.load(resp)
    [msg] = body["messages"]
    assert msg["event_type"] == "access_requested" and "Approve" in msg["all_text"]
    assert body["calls"][0]["method"] == "chat.postMessage"
    urllib.request.urlopen(urllib.request.Request(base + "reset", method="POST", data=b"")).close()
    assert standin.messages() == [] and standin.calls == []


def test_printer_is_readable(standin: SlackStandin, client: WebClient, printed: list[str]) -> None:
    ts = client.chat_postMessage(channel="C0APPROVE1", text="x", blocks=card_blocks(), metadata=META)["ts"]
    client.chat_postEphemeral(channel="C0APPROVE1", user="U0ALICE001", text="only you")
    client.chat_postMessage(channel="U0BOB00001", text="granted")
    card, eph, dm = printed
    assert card.startswith(f"┌─ #aws-access-approvals  (new message {ts})  [access_requested]")
    assert "│ [ Approve ]  [ Deny ]" in card and "*Account* prod" in card and card.endswith("└─")
    assert "only @U0ALICE001" in eph and "│ only you" in eph
    assert dm.startswith("┌─ DM @U0BOB00001")


def test_context_manager_stops_server() -> None:
    with SlackStandin(TOKEN) as s:
        url = s.url
        assert WebClient(token=TOKEN, base_url=url).auth_test()["ok"]
    with pytest.raises(Exception):
        urllib.request.urlopen(url + "auth.test", timeout=1)


def test_runs_as_a_process(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-m", "local.slack_standin", "--port", "0", "--token", TOKEN,
                             "--ready-file", str(ready), "--name", "C0APPROVE1=#approvals"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        assert first[0] == "READY"
        deadline = time.monotonic() + 10
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        url = ready.read_text().strip()
        assert url == first[1]
        WebClient(token=TOKEN, base_url=url).chat_postMessage(channel="C0APPROVE1", text="hi there")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "┌─ #approvals" in out and "│ hi there" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---- text as Slack treats it ------------------------------------------------------------
def test_slack_escape_is_exactly_the_three_characters() -> None:
    assert slack_escape("R&D <ops> <!channel>") == "R&amp;D &lt;ops&gt; &lt;!channel&gt;"
    assert slack_escape("&lt; \"quoted\" it's é 🚀") == "&amp;lt; \"quoted\" it's é 🚀"


@pytest.mark.parametrize(("mrkdwn", "shown"), [
    pytest.param("R&amp;D &lt;ops&gt; &lt;!channel&gt;", "R&D <ops> <!channel>", id="escapes-undone"),
    pytest.param("&amp;lt;", "&lt;", id="once-only"),
    pytest.param("hi <@U0BOB00001> and <@U0CAROL001|carol>", "hi @bob and @carol", id="user-mentions"),
    pytest.param("<!here> <!channel> <!everyone>", "@here @channel @everyone", id="broadcasts"),
    pytest.param("<!subteam^S0OPS|@ops> <#C0APPROVE1> <#C0OTHER01|general>", "@ops #aws-access-approvals #general",
                 id="groups-and-channels"),
    pytest.param("<https://x.example/?a=1&amp;b=2|Switch role> <https://y.example>",
                 "Switch role https://y.example", id="links"),
    pytest.param("R&D (raw &, tolerated)", "R&D (raw &, tolerated)", id="raw-ampersand"),
])
def test_display_mrkdwn(mrkdwn: str, shown: str) -> None:
    names = {"U0BOB00001": "@bob", "C0APPROVE1": "#aws-access-approvals"}
    assert display_mrkdwn(mrkdwn, names) == shown


def test_display_mrkdwn_can_show_link_targets() -> None:
    assert display_mrkdwn("<https://x.example/?a=1&amp;b=2|Switch>", show_urls=True) == \
        "Switch (https://x.example/?a=1&b=2)"


def hostile_card() -> list:
    return [
        SectionBlock(text=MarkdownTextObject(text="*Reason*\nR&amp;D &lt;!channel&gt; <!here>", verbatim=True)),
        ContextBlock(elements=[MarkdownTextObject(text="Approvers: <@U0BOB00001>")]),
        ActionsBlock(elements=[ButtonElement(text="<!everyone> & co", action_id="a", value="v")]),
    ]


def test_displayed_text_and_mentions(standin: SlackStandin, client: WebClient) -> None:
    client.chat_postMessage(channel="C0APPROVE1", text="card <!channel>", blocks=hostile_card())
    [msg] = standin.messages()
    # with blocks, Slack shows the blocks (the text is for notifications); plain_text as is
    assert msg.displayed_text() == "*Reason*\nR&D <!channel> @here\nApprovers: @U0BOB00001\n<!everyone> & co"
    assert msg.displayed_text({"U0BOB00001": "@bob"}).endswith("Approvers: @bob\n<!everyone> & co")
    # raw sequences in mrkdwn ping (the fallback text too); escaped ones and plain_text do not
    assert msg.mentions() == ["<!channel>", "<!here>", "<@U0BOB00001>"]
    assert "&lt;!channel&gt;" in msg.all_text()  # all_text stays the raw wire text


def test_displayed_text_without_blocks_is_the_text() -> None:
    msg = Message(channel="C1", ts="1.0", text="only you: &lt;x&gt; <#C0APPROVE1>",
                  attachments=[{"text": "att &amp; <@W0ENT0001|ent>"}])
    assert msg.displayed_text() == "only you: <x> #C0APPROVE1\natt & @ent"
    assert msg.mentions() == ["<@W0ENT0001|ent>"]
    assert Message(channel="C1", ts="1.0", text="&lt;!here&gt; <#C1> <https://x|y>").mentions() == []


def test_printer_and_inspection_show_displayed_text(standin: SlackStandin, client: WebClient,
                                                    printed: list[str]) -> None:
    client.chat_postMessage(channel="C0APPROVE1", text="x", blocks=[
        SectionBlock(text="R&amp;D &lt;ops&gt; <https://x.example/?a=1&amp;b=2|Switch> <@U0ALICE001>")])
    client.chat_postEphemeral(channel="C0APPROVE1", user="U0ALICE001", text="&lt;!channel&gt; as typed")
    card, eph = printed
    assert "│ R&D <ops> Switch (https://x.example/?a=1&b=2) @U0ALICE001" in card
    assert "│ <!channel> as typed" in eph
    base = standin.url.replace("/api/", "/_standin/")
    with urllib.request.urlopen(base + "messages") as resp:
        first, second = json.load(resp)["messages"]
    assert first["displayed_text"] == "R&D <ops> Switch @U0ALICE001" and first["mentions"] == ["<@U0ALICE001>"]
    assert second["displayed_text"] == "<!channel> as typed" and second["mentions"] == []


def test_rate_limits_refuse_posts_and_updates_beyond_a_message_a_second_per_channel():
    """Slack's special limit for posting: ~1 a second per channel, short bursts allowed; the
    429 says when to come back (Retry-After) and changes nothing; other channels are not
    affected; updates count against their channel too (stricter than Slack)."""
    import time_machine

    from chalicelib.adapters.slack_notifier import SlackNotifier
    from chalicelib.domain.errors import RateLimited
    from chalicelib.wiring import slack_client

    t0 = 1_794_492_000.0
    with time_machine.travel(t0, tick=False) as clock, \
            SlackStandin("xoxb-t", rate_limits=True, post_rate=1.0, post_burst=3) as standin:
        slack = SlackNotifier(slack_client("xoxb-t", standin.url, wait_when_rate_limited=False))
        posted = [slack.try_post("C1", f"m{i}", None, "e", {}) for i in range(3)]  # the burst
        with pytest.raises(RateLimited) as refused:
            slack.try_post("C1", "m3", None, "e", {})
        assert refused.value.retry_after == 1.0
        with pytest.raises(RateLimited):
            slack.try_update("C1", posted[0][1], "changed", None, "e", {})
        slack.try_post("C2", "elsewhere", None, "e", {})  # per channel
        assert [m.text for m in standin.messages("C1")] == ["m0", "m1", "m2"]
        assert len(standin.rate_limited()) == 2
        clock.shift(1.0)
        slack.try_update("C1", posted[0][1], "changed", None, "e", {})
        with pytest.raises(RateLimited):
            slack.try_post("C1", "m4", None, "e", {})
        clock.shift(5.0)  # refilled up to the burst, no further
        for i in range(3):
            slack.try_post("C1", f"n{i}", None, "e", {})
        with pytest.raises(RateLimited):
            slack.try_post("C1", "n3", None, "e", {})
        assert [(ch, method, t - t0) for ch, method, t in standin.writes("C1")] == [
            ("C1", "chat.postMessage", 0.0)] * 3 + [("C1", "chat.update", 1.0)] + [("C1", "chat.postMessage", 6.0)] * 3


# ---- the App Home (issue 17) -----------------------------------------------------------------
HOME = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Your grants*"}}]}


def test_views_publish_keeps_the_home_per_user(standin: SlackStandin, client: WebClient, printed) -> None:
    resp = client.views_publish(user_id="U0ALICE001", view=HOME)
    assert resp["ok"] and resp["view"]["type"] == "home" and resp["view"]["blocks"] == HOME["blocks"]
    assert resp["view"]["id"].startswith("V")
    assert standin.home("U0ALICE001")["blocks"] == HOME["blocks"] and standin.home("U0BOB00001") is None
    client.views_publish(user_id="U0ALICE001", view={"type": "home", "blocks": []})  # replaces the view
    assert standin.home("U0ALICE001")["blocks"] == [] and standin.homes() == ["U0ALICE001"]
    assert any("App Home of @U0ALICE001" in p for p in printed)
    assert standin.messages() == []  # a home is not a message
    standin.reset()
    assert standin.home("U0ALICE001") is None


def test_views_publish_takes_a_form_encoded_view(standin: SlackStandin) -> None:
    body = urllib.parse.urlencode({"user_id": "U0BOB00001", "view": json.dumps(HOME)}).encode()
    req = urllib.request.Request(standin.url + "views.publish", data=body, headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req) as resp:
        assert json.loads(resp.read())["ok"] is True
    assert standin.home("U0BOB00001")["blocks"] == HOME["blocks"]


@pytest.mark.parametrize("args, why", [
    ({"view": HOME}, "invalid `user_id`"),
    ({"user_id": "C0APPROVE1", "view": HOME}, "invalid `user_id`"),
    ({"user_id": "U0ALICE001", "view": {"type": "modal", "blocks": []}}, "view type must be `home`"),
    ({"user_id": "U0ALICE001", "view": "not json"}, "must provide an object"),
    ({"user_id": "U0ALICE001", "view": {"type": "home", "blocks": [{"type": "divider"}] * 101}},
     "no more than 100 items"),
])
def test_views_publish_refuses_what_slack_refuses(standin: SlackStandin, client: WebClient, args, why) -> None:
    with pytest.raises(SlackApiError) as err:
        client.api_call("views.publish", json=args)
    assert err.value.response["error"] == "invalid_arguments"
    assert why in err.value.response["response_metadata"]["messages"][0]
    assert standin.homes() == []


def test_views_publish_without_the_home_tab_is_not_enabled() -> None:
    with SlackStandin(TOKEN, home_tab=False) as s:
        with pytest.raises(SlackApiError) as err:
            WebClient(token=TOKEN, base_url=s.url, retry_handlers=[]).views_publish(user_id="U0ALICE001", view=HOME)
        assert err.value.response["error"] == "not_enabled" and s.homes() == []


MODAL = {"type": "modal", "callback_id": "request_access",
         "title": {"type": "plain_text", "text": "Request AWS access"},
         "submit": {"type": "plain_text", "text": "Request"}, "private_metadata": '{"channel": "C0APPROVE1"}',
         "blocks": [{"type": "input", "block_id": "duration", "label": {"type": "plain_text", "text": "Duration"},
                     "element": {"type": "static_select", "action_id": "duration", "options": [
                         {"text": {"type": "plain_text", "text": "1h"}, "value": "1h"}]}}]}


def test_views_open_opens_a_modal_once_per_trigger_id(standin: SlackStandin, client: WebClient, printed) -> None:
    from local.slack_client import trigger_id

    trigger = trigger_id()
    resp = client.views_open(trigger_id=trigger, view=MODAL)
    assert resp["ok"] and resp["view"]["id"].startswith("V") and resp["view"]["callback_id"] == "request_access"
    opened = standin.opened_view(trigger)
    assert opened["blocks"] == MODAL["blocks"] and opened["id"] == resp["view"]["id"]
    assert standin.opened_view() == opened and standin.opened_view(trigger_id()) is None
    assert any('Modal "Request AWS access"' in p for p in printed)
    with pytest.raises(SlackApiError) as err:  # Slack: a trigger id is exchanged for one view
        client.views_open(trigger_id=trigger, view=MODAL)
    assert err.value.response["error"] == "exchanged_trigger_id"
    assert len(standin.opened_views()) == 1 and standin.messages() == []
    standin.reset()
    assert standin.opened_views() == []


def test_views_open_takes_a_form_encoded_view(standin: SlackStandin) -> None:
    from local.slack_client import trigger_id

    body = urllib.parse.urlencode({"trigger_id": trigger_id(), "view": json.dumps(MODAL)}).encode()
    req = urllib.request.Request(standin.url + "views.open", data=body, headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req) as resp:
        assert json.loads(resp.read())["ok"] is True
    assert standin.opened_view()["blocks"] == MODAL["blocks"]


def test_views_open_refuses_a_trigger_id_older_than_3_seconds_or_not_slacks(standin: SlackStandin,
                                                                            client: WebClient) -> None:
    stale = f"{int(time.time()) - 10}.1234567890.{'a' * 32}"
    for trigger, error in ((stale, "expired_trigger_id"), ("", "invalid_trigger_id"), ("abc", "invalid_trigger_id")):
        with pytest.raises(SlackApiError) as err:
            client.api_call("views.open", json={"trigger_id": trigger, "view": MODAL})
        assert err.value.response["error"] == error
    assert standin.opened_views() == []


def _modal(**changes) -> dict:
    return {**MODAL, **changes}


@pytest.mark.parametrize("view, why", [
    ({**MODAL, "type": "home"}, "view type must be `modal`"),
    ("not json", "must provide an object"),
    (_modal(title={"type": "plain_text", "text": "x" * 25}), "must be less than 25 characters"),
    (_modal(title=None), "must provide a plain_text object"),
    (_modal(submit=None), "must provide a submit button"),
    (_modal(blocks=[{"type": "divider"}] * 101), "no more than 100 items"),
    (_modal(callback_id="x" * 256), "must be less than 256 characters"),
    (_modal(private_metadata="x" * 3001), "must be less than 3001 characters"),
    (_modal(blocks=MODAL["blocks"] * 2), "block_id must be unique"),
    (_modal(blocks=[{**MODAL["blocks"][0], "element": {**MODAL["blocks"][0]["element"],
                                                       "options": MODAL["blocks"][0]["element"]["options"] * 101}}]),
     "no more than 100 items"),
])
def test_views_open_refuses_what_slack_refuses(standin: SlackStandin, client: WebClient, view, why) -> None:
    from local.slack_client import trigger_id

    with pytest.raises(SlackApiError) as err:
        client.api_call("views.open", json={"trigger_id": trigger_id(), "view": view})
    assert err.value.response["error"] == "invalid_arguments"
    assert why in err.value.response["response_metadata"]["messages"][0]
    assert standin.opened_views() == []


def test_a_view_submission_carries_the_values_in_the_opened_views_state() -> None:
    from chalicelib.slack.parse import parse_interaction
    from local.slack_client import view_submission_body

    view = {**MODAL, "id": "V00000001", "trigger_id": "t"}
    sub = parse_interaction(view_submission_body("U0ALICE001", view, {"duration": "1h"}).encode())
    assert (sub.user_id, sub.view_id, sub.callback_id, sub.values) == ("U0ALICE001", "V00000001", "request_access",
                                                                      {"duration": "1h"})
    assert parse_interaction(view_submission_body("U0ALICE001", view, {}).encode()).values == {"duration": ""}


def test_verify_request_url_wants_the_challenge_echoed() -> None:
    from local.slack_client import signature

    seen: list[tuple[str, dict]] = []

    def echo(body: str, headers: dict):
        seen.append((body, headers))
        return 200, {"challenge": json.loads(body)["challenge"]}

    assert SlackStandin.verify_request_url(echo, "secret") is True
    body, headers = seen[0]
    assert json.loads(body)["type"] == "url_verification" and headers["Content-Type"] == "application/json"
    assert headers["X-Slack-Signature"] == signature(body, "secret", headers["X-Slack-Request-Timestamp"])
    assert SlackStandin.verify_request_url(lambda b, h: (200, {"challenge": "other"}), "secret") is False
    assert SlackStandin.verify_request_url(lambda b, h: (401, {"error": "x"}), "secret") is False


def test_usergroups_list_and_members_as_slack_answers_them(standin: SlackStandin, client: WebClient) -> None:
    ident = standin.add_usergroup("sre-leads", ["U0BOB00001", "U0CAROL001"], name="SRE leads")
    standin.add_usergroup("old-team", ["U0DAVE0001"], disabled=True)
    listed = client.usergroups_list()["usergroups"]
    assert [(g["id"], g["handle"], g["name"], g["date_delete"]) for g in listed] == \
        [(ident, "sre-leads", "SRE leads", 0)]
    assert "users" not in listed[0]  # only with include_users
    assert client.usergroups_list(include_users=True)["usergroups"][0]["users"] == ["U0BOB00001", "U0CAROL001"]
    assert [g["handle"] for g in client.usergroups_list(include_disabled=True)["usergroups"]] == \
        ["sre-leads", "old-team"]
    assert client.usergroups_users_list(usergroup=ident)["users"] == ["U0BOB00001", "U0CAROL001"]
    standin.set_usergroup_members("sre-leads", ["U0BOB00001"])
    assert client.usergroups_users_list(usergroup=ident)["users"] == ["U0BOB00001"]
    with pytest.raises(SlackApiError) as exc:
        client.usergroups_users_list(usergroup="S0NOPE0000")
    assert exc.value.response["error"] == "no_such_subteam"


def test_the_notifier_opens_views_and_says_why_not(standin: SlackStandin, client: WebClient) -> None:
    from chalicelib.adapters.slack_notifier import SlackNotifier
    from chalicelib.domain.errors import NotInChannel, ViewNotOpened
    from local.slack_client import trigger_id

    slack = SlackNotifier(client)
    trigger = trigger_id()
    slack.open_view(trigger, MODAL)
    assert standin.opened_view(trigger)["callback_id"] == "request_access"
    with pytest.raises(ViewNotOpened) as err:
        slack.open_view(trigger, MODAL)
    assert err.value.error == "exchanged_trigger_id"
    standin.fail_next("chat.postEphemeral", error="not_in_channel")
    with pytest.raises(NotInChannel):
        slack.ephemeral("C0ELSEWHERE", "U0ALICE001", "hello")
    standin.fail_next("chat.postEphemeral", error="invalid_auth")
    with pytest.raises(SlackApiError):  # not a refusal a DM gets round
        slack.ephemeral("C0APPROVE1", "U0ALICE001", "hello")


def test_a_slack_that_does_not_answer_opens_no_view() -> None:
    from chalicelib.adapters.slack_notifier import SlackNotifier
    from chalicelib.domain.errors import ViewNotOpened
    from local.slack_client import trigger_id

    nowhere = WebClient(token=TOKEN, base_url="http://127.0.0.1:9/api/", retry_handlers=[], timeout=2)
    with pytest.raises(ViewNotOpened) as err:
        SlackNotifier(nowhere).open_view(trigger_id(), MODAL)
    assert err.value.error == "no_answer_from_slack"


def test_files_upload_v2_shares_files_in_a_thread_as_slack_does(standin):
    client = WebClient(token=TOKEN, base_url=standin.url)
    post = client.chat_postMessage(channel="C0SECURIT1", text="summary")
    resp = client.files_upload_v2(channel="C0SECURIT1", thread_ts=post["ts"], file_uploads=[
        {"content": "a,b\n1,2\n", "filename": "x.csv", "title": "x.csv"},
        {"content": '{"k": 1}\n', "filename": "x.json", "title": "x.json"}])
    assert [f["name"] for f in resp["files"]] == ["x.csv", "x.json"]
    shared = standin.files("C0SECURIT1", thread_ts=post["ts"])
    assert [(f["name"], f["content"]) for f in shared] == [("x.csv", "a,b\n1,2\n"), ("x.json", '{"k": 1}\n')]
    (reply,) = [m for m in standin.messages("C0SECURIT1") if m.thread_ts == post["ts"]]
    assert [f["name"] for f in reply.files] == ["x.csv", "x.json"]
    # the bytes went to the upload URL (the stand-in's own loopback address), one per file
    assert [c.params["bytes"] for c in standin.calls if c.method == "upload"] == [8, 9]


def test_files_complete_refuses_an_unknown_thread_and_a_file_never_uploaded(standin):
    client = WebClient(token=TOKEN, base_url=standin.url)
    with pytest.raises(SlackApiError) as bad_thread:
        client.files_upload_v2(channel="C0SECURIT1", thread_ts="1.000001", content="x", filename="x.txt")
    assert bad_thread.value.response["error"] == "invalid_thread_ts"
    got = client.files_getUploadURLExternal(filename="y.txt", length=3)
    assert got["upload_url"].startswith("http://127.0.0.1:")
    with pytest.raises(SlackApiError) as never:
        client.files_completeUploadExternal(files=[{"id": got["file_id"], "title": "y"}], channel_id="C0SECURIT1")
    assert never.value.response["error"] == "file_not_found"
    assert standin.files() == []
