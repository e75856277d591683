"""Typed text, the whole round trip: Slack escapes it, Drawbridge decodes it once, keeps it
raw in the table and metadata, and escapes it once where it renders it.

``app_client.command`` sends the text the way Slack does (``&``, ``<``, ``>`` escaped,
``tests/conftest.py: slash_body``); the stand-in shows messages the way Slack does
(``Message.displayed_text()``) and says whom they would ping (``Message.mentions()``).
"""

from __future__ import annotations

import re

import pytest

from local.slack_standin import Message, display_mrkdwn

TYPED = "R&D <ops> <!channel> https://example.com/x"
CARD_MENTIONS = {"<@U0ALICE001>", "<@U0BOB00001>", "<@U0CAROL001>"}  # the card's own: requester, approvers
NO_PREPROCESSING = {"type": "mrkdwn", "verbatim": True}


def request_id_from(text: str) -> str:
    m = re.search(r"req-\d{8}-[0-9a-f]{6}", text)
    assert m, text
    return m.group(0)


def reason_object(card: Message) -> dict:
    [section] = [b for b in card.blocks if b["type"] == "section" and "text" in b
                 and b["text"]["text"].startswith("*Reason*")]
    return section["text"]


def assert_shows_typed_and_pings_nobody(card: Message, typed: str) -> None:
    assert typed in card.displayed_text().splitlines()  # exactly what was typed, on its own line
    assert set(card.mentions()) <= CARD_MENTIONS
    wire = card.all_text()
    assert "<!" not in wire and "<https://" not in wire
    reason = reason_object(card)
    assert {k: reason[k] for k in NO_PREPROCESSING} == NO_PREPROCESSING  # no auto-linked bare URL


def test_reason_round_trip(app_client, slack, store):
    reply = app_client.command("alice", f"prod readonly 1h {TYPED}")
    assert reply.status == 200
    rid = request_id_from(reply.text)

    # the ephemeral reply: no mention, nothing double-escaped, shown as meant
    assert Message(channel="C0APPROVE1", ts="0", text=reply.text).mentions() == []
    assert "&amp;" not in reply.text and "<!" not in reply.text
    assert display_mrkdwn(reply.text).startswith(f"Request `{rid}` for `prod/readonly` (1h) is waiting")

    # the table and the metadata hold the raw typed text
    assert store.get(rid).reason == TYPED
    [card] = slack.find(event_type="access_requested", channel="C0APPROVE1")
    assert card.event_payload["reason"] == TYPED

    # the card: escaped exactly once, verbatim, shown as typed, pings only the approvers
    assert reason_object(card)["text"] == "*Reason*\nR&amp;D &lt;ops&gt; &lt;!channel&gt; https://example.com/x"
    assert_shows_typed_and_pings_nobody(card, TYPED)
    assert "&amp;amp;" not in card.all_text() and "R&amp;D" in card.all_text()  # not twice, not never
    assert "<@U0BOB00001>" in card.mentions()

    # every later version of the card still renders the raw reason once
    assert app_client.approve("bob", rid).status == 200
    card = slack.get(card.channel, card.ts)
    assert card.event_type == "access_granted"
    assert_shows_typed_and_pings_nobody(card, TYPED)
    assert store.get(rid).reason == TYPED
    assert all(m.mentions() == [] for m in slack.dms("U0ALICE001"))


@pytest.mark.parametrize("typed", [
    pytest.param("&lt; typed literally &amp; &gt;", id="typed-entities"),
    pytest.param("<https://evil.example|click me> <@U0BOB00001> <!here> <!everyone>", id="link-and-pings"),
    pytest.param("a&b<c>d", id="no-spaces"),
])
def test_any_typed_reason_shows_as_typed(app_client, slack, store, typed):
    rid = request_id_from(app_client.command("alice", f"prod readonly 1h {typed}").text)
    assert store.get(rid).reason == typed
    [card] = slack.find(event_type="access_requested", channel="C0APPROVE1")
    assert card.event_payload["reason"] == typed
    assert_shows_typed_and_pings_nobody(card, typed)


def test_reason_limit_counts_what_was_typed(app_client, slack, store):
    typed = "<>" * 150  # 300 characters typed, 1,200 as Slack sends them
    rid = request_id_from(app_client.command("alice", f"prod readonly 1h {typed}").text)
    assert store.get(rid).reason == typed
    reply = app_client.command("bob", f"prod readonly 1h {typed}&")
    assert reply.text == "the reason is 301 characters; keep it to 300 or fewer"


@pytest.mark.parametrize("typed", [
    pytest.param("<!channel> admin 1h why", id="account"),
    pytest.param("prod <https://evil.example|readonly> 1h why", id="role"),
    pytest.param("prod readonly <!here> why", id="duration"),
    pytest.param("revoke <!everyone>", id="revoke-id"),
])
def test_refusals_that_quote_typed_words_ping_nobody(app_client, slack, store, typed):
    reply = app_client.command("alice", typed)
    assert reply.status == 200
    assert Message(channel="C0APPROVE1", ts="0", text=reply.text).mentions() == []
    assert "<!" not in reply.text and "<https://" not in reply.text
    assert slack.messages() == []  # refused: nothing posted
