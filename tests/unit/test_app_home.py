"""Issue 17's first slice, pure parts: the Events API parser (parse_event), App Home clicks
in parse_interaction, and the App Home view (views.home_view)."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from chalicelib.slack.parse import BadPayload, HomeOpened, UrlVerification, parse_event, parse_interaction
from chalicelib.slack.views import APPROVE, DENY, DENY_WITH_REASON, HOME_ROWS, REVOKE, home_view, stranger_home
from local import slack_client
from tests.unit.test_golden import ACTIVE, ONE_APPROVAL, PENDING, RID, TYPED, t

PEOPLE = {"alice": "U0ALICE001", "bob": "U0BOB00001", "carol": "U0CAROL001"}


# ---- parse_event -----------------------------------------------------------------------------
def test_url_verification_carries_the_challenge():
    body, challenge = slack_client.url_verification_body("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    assert parse_event(body.encode()) == UrlVerification(challenge)


def test_app_home_opened_on_the_home_tab():
    body = slack_client.home_opened_body("U0ALICE001", event="Ev0123ABCD")
    assert parse_event(body.encode()) == HomeOpened("U0ALICE001", "T0STANDIN", "A0DRAWBRDG", "Ev0123ABCD")


@pytest.mark.parametrize("body", [
    slack_client.home_opened_body("U0ALICE001", tab="messages"),  # the Messages tab: nothing to publish
    json.dumps({"type": "event_callback", "event": {"type": "message", "user": "U0ALICE001"}}),
    json.dumps({"type": "app_rate_limited", "minute_rate_limited": 1518467820}),
])
def test_events_drawbridge_does_not_handle_are_none(body):
    assert parse_event(body.encode()) is None


@pytest.mark.parametrize("body", [
    b"not json", b"\xff\xfe", b"[1, 2]", b'"text"',
    b'{"type": "url_verification"}', b'{"type": "url_verification", "challenge": 7}',
    b'{"type": "event_callback"}', b'{"type": "event_callback", "event": []}',
    b'{"type": "event_callback", "event": {"type": "app_home_opened", "tab": "home"}}',
    b'{"type": "event_callback", "event": {"type": "app_home_opened", "user": "<!here>", "tab": "home"}}',
])
def test_malformed_events_are_bad_payloads(body):
    with pytest.raises(BadPayload):
        parse_event(body)


# ---- clicks in the App Home ------------------------------------------------------------------
def test_a_click_in_the_home_has_a_view_container_and_no_channel():
    click = parse_interaction(slack_client.home_click_body("U0ALICE001", REVOKE, RID).encode())
    assert (click.action_id, click.request_id, click.user_id, click.channel_id) == (REVOKE, RID, "U0ALICE001", "")
    assert click.from_home and click.container == "view"


def test_a_click_on_a_card_is_still_from_a_message():
    click = parse_interaction(slack_client.click_body("U0BOB00001", APPROVE, RID).encode())
    assert (click.channel_id, click.from_home) == ("C0APPROVE1", False)


def test_an_extension_button_in_the_home_keeps_its_number():
    body = slack_client.home_click_body("U0BOB00001", "approve_extension", RID, block_id=f"extend:{RID}:3")
    assert parse_interaction(body.encode()).extension == 3


# ---- home_view -------------------------------------------------------------------------------
def all_text(view: dict) -> str:
    return json.dumps(view["blocks"])


def sections(view: dict) -> list[dict]:
    return [b["text"] for b in view["blocks"] if b["type"] == "section" and "text" in b]


def test_the_requesters_home_lists_the_grant_with_a_revoke_button():
    view = home_view([ACTIVE], [], PEOPLE, t(15, 0), approver=False)
    assert view["type"] == "home"
    grant = next(b for b in view["blocks"] if b.get("block_id") == f"grant:{RID}")
    assert grant["text"] == {"type": "mrkdwn", "verbatim": True,
                             "text": f"`prod/admin` ({RID}) until *16:02 UTC*"}
    assert grant["accessory"] == {"type": "button", "action_id": REVOKE, "value": RID, "style": "danger",
                                  "text": {"type": "plain_text", "text": "Revoke", "emoji": True}}
    assert "Waiting for your approval" not in all_text(view)  # not an approver: no such section


def test_a_pending_request_shows_its_approvals_so_far():
    view = home_view([ONE_APPROVAL], [], PEOPLE, t(14, 30), approver=False)
    assert {"type": "mrkdwn", "verbatim": True, "text": (
        f"`prod/admin` ({RID}) for 2h: approvals 1 of 2 (<@U0BOB00001>), open until 15:00 UTC")} in sections(view)
    assert "You have no active grants" in all_text(view)


def test_waiting_requests_have_the_cards_buttons_and_the_reason_escaped_once():
    view = home_view([], [TYPED], PEOPLE, t(14, 30), approver=True)
    (actions,) = [b for b in view["blocks"] if b["type"] == "actions"]
    assert actions["block_id"] == f"decide:{RID}"
    assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [(APPROVE, RID), (DENY, RID), (DENY_WITH_REASON, RID)]
    (line,) = [s for s in sections(view) if "wants" in s["text"]]
    assert line["verbatim"] is True
    assert "R&amp;D &lt;ops&gt; &lt;!channel&gt; https://example.com/x &amp;amp;lt;" in line["text"]
    assert line["text"].startswith("<@U0ALICE001> wants `prod/admin` :rotating_light: *production* for 2h")


def test_empty_states():
    text = all_text(home_view([], [], PEOPLE, t(14, 0), approver=True))
    assert "You have no active grants" in text and "You have no pending requests" in text
    assert "Nothing is waiting for your approval" in text


def test_a_long_list_stays_within_slacks_100_blocks():
    many = [PENDING.change(request_id=f"req-20261112-{i:06x}") for i in range(60)]
    view = home_view(many, many, PEOPLE, t(14, 0), approver=True)
    assert len(view["blocks"]) <= 100
    assert f"and {60 - HOME_ROWS} more" in all_text(view)


def test_the_strangers_home():
    view = stranger_home()
    assert view["type"] == "home" and "not in the Drawbridge catalog" in all_text(view)


def test_parse_and_the_route_module_do_not_import_slack_sdk():
    import subprocess
    import sys

    code = ("import sys, chalicelib.handlers, chalicelib.slack.parse as p;"
            "p.parse_event(b'{\"type\":\"url_verification\",\"challenge\":\"x\"}');"
            "print(any(m.startswith('slack_sdk') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_home_click_body_is_form_encoded_with_a_payload():
    form = urllib.parse.parse_qs(slack_client.home_click_body("U0ALICE001", REVOKE, RID))
    payload = json.loads(form["payload"][0])
    assert payload["container"]["type"] == "view" and "channel" not in payload
