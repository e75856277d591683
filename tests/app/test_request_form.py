"""The request form through the app (issue 17): signed slash commands and view submissions
under chalice.test.Client, against moto and the Slack stand-in, whose views.open behaves
like Slack's (a trigger id opens one view, within 3 seconds).

A bare ``/aws-access`` opens the form; its Submit makes the request the one-liner makes (the
same card, the same confirmation), and each refusal comes back inline, on its field, in the
one-liner's words, with nothing written.
"""

from __future__ import annotations

import json

import pytest

from chalicelib.slack import views
from local import slack_client
from tests.app.test_lifecycle import request_id_from
from tests.app.test_signature import requests_in_table, table_items
from tests.conftest import SIGNING_SECRET

APPROVALS = "C0APPROVE1"


def options(view: dict, block_id: str) -> list[str]:
    block = next(b for b in view["blocks"] if b.get("block_id") == block_id)
    return [o["value"] for o in block["element"]["options"]]


def form(role: str | None, duration: str | None, reason: str | None = None) -> dict:
    return {views.ROLE_BLOCK: role, views.DURATION_BLOCK: duration, views.REASON_BLOCK: reason}


def test_a_bare_command_opens_the_form_with_what_each_person_may_request(app_client, stack):
    reply, alice = app_client.open_form("alice")
    assert (reply.status, reply.body) == (200, None)  # an empty answer: Slack shows nothing but the form
    assert alice["callback_id"] == views.REQUEST_FORM
    assert options(alice, views.ROLE_BLOCK) == ["dev/admin", "prod/admin", "prod/readonly"]
    assert options(alice, views.DURATION_BLOCK)[-1] == "1d"
    _, bob = app_client.open_form("bob")
    assert options(bob, views.ROLE_BLOCK) == ["dev/admin", "prod/readonly"]
    assert requests_in_table(stack) == []


def test_help_stays_help(app_client, slack):
    assert "What you (@alice) may request" in app_client.command("alice", "help").text
    assert slack.opened_views() == []


def test_a_submission_posts_the_one_liners_card_and_confirmation(app_client, slack, store):
    rid_typed = request_id_from(app_client.command("alice", "dev admin 1h deploying R&D <build>").text)
    typed_card = slack.find("access_requested", APPROVALS)[-1]
    typed_reply = slack.ephemerals("U0ALICE001")
    assert typed_reply == []  # the one-liner's confirmation is its HTTP answer
    app_client.command("alice", f"revoke {rid_typed}")  # cancelled: its card says so now

    _, view = app_client.open_form("alice")
    reply = app_client.submit("alice", view, form("dev/admin", "1h", "deploying R&D <build>"))

    assert (reply.status, reply.body) == (200, None)  # closes the form
    (card,) = slack.find("access_requested", APPROVALS)
    rid = card.event_payload["request_id"]
    assert rid != rid_typed and store.get(rid).requester == "alice"
    assert {**card.event_payload, "request_id": rid_typed} == typed_card.event_payload
    assert card.all_text().replace(rid, rid_typed) == typed_card.all_text()
    assert store.get(rid).reason == "deploying R&D <build>"  # view state is what was typed
    (confirm,) = slack.ephemerals("U0ALICE001")  # where the command was typed (the form's channel)
    assert confirm.channel == APPROVALS
    assert f"Request `{rid}` for `dev/admin` (1h) is waiting for approval" in confirm.text


@pytest.mark.parametrize("person, values, typed, field", [
    ("bob", form("prod/admin", "2h", "incident"), "prod admin 2h incident", "role"),
    ("alice", form("prod/admin", "8h", "incident"), "prod admin 8h incident", "duration"),
    ("alice", form("prod/admin", "2h"), "prod admin 2h", "reason"),
    ("alice", form("prod/root", "2h", "x"), "prod root 2h x", "role"),  # not an option: a forged submission
])
def test_a_refusal_is_shown_on_its_field_in_the_one_liners_words(app_client, stack, slack, person, values, typed,
                                                                    field):
    words = app_client.command(person, typed).text
    _, view = app_client.open_form(person)
    before = table_items(stack, bookkeeping=False)

    reply = app_client.submit(person, view, values)

    assert reply.status == 200
    assert reply.body == {"response_action": "errors", "errors": {field: views.plain_text(words)}}
    assert table_items(stack, bookkeeping=False) == before
    assert slack.find("access_requested") == [] and slack.ephemerals() == []


def test_a_stranger_is_refused_and_nothing_opens(app_client, stack, slack):
    body = slack_client.slash_body("U0STRANGER", "")
    reply = app_client.raw("/slack/commands", body, slack_client.sign(body, SIGNING_SECRET))
    assert "You are not in the Drawbridge catalog" in reply.text
    assert slack.opened_views() == [] and table_items(stack) == []


def test_a_double_submission_makes_one_request(app_client, stack, slack):
    _, view = app_client.open_form("alice")
    body = slack_client.view_submission_body("U0ALICE001", view, form("dev/admin", "2h"))
    first = app_client.raw("/slack/interactions", body, slack_client.sign(body, SIGNING_SECRET))
    again = app_client.raw("/slack/interactions", body, slack_client.sign(body, SIGNING_SECRET))
    assert (first.status, first.body) == (again.status, again.body) == (200, None)
    assert len(requests_in_table(stack)) == 1 and len(slack.find("access_requested")) == 1
    assert len(slack.ephemerals("U0ALICE001")) == 1


def test_a_form_slack_will_not_open_is_answered_with_the_one_liner(app_client, stack, slack):
    trigger = slack_client.trigger_id()
    app_client.open_form("alice", trigger=trigger)
    reply, view = app_client.open_form("alice", trigger=trigger)  # a trigger id is good for one view
    assert view is not None and len(slack.opened_views()) == 1
    assert reply.status == 200 and reply.body["response_type"] == "ephemeral"
    assert "could not open the request form (Slack said `exchanged_trigger_id`)" in reply.text
    assert "`/aws-access &lt;account&gt; &lt;role&gt; &lt;duration&gt; [reason]`" in reply.text
    slack.fail_next("views.open", error="expired_trigger_id")
    assert "Slack said `expired_trigger_id`" in app_client.open_form("bob")[0].text
    assert requests_in_table(stack) == []


def test_the_errors_answer_is_json_slack_can_read(app_client, slack):
    """Slack reads a Submit's errors only from an application/json body."""
    _, view = app_client.open_form("dave")
    resp = app_client.client.http.post("/slack/interactions", headers=slack_client.sign(
        body := slack_client.view_submission_body("U0DAVE0001", view, form("prod/admin", "30m")),
        SIGNING_SECRET), body=body)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    assert json.loads(resp.body)["errors"] == {"reason": "production requests need a reason: "
                                                         "/aws-access prod admin 30m <reason>"}


class DevHandle:
    """What ``python -m local.dev form`` / ``submit`` use of the running stack, on this app."""

    def __init__(self, app_client, slack, catalog):
        self.app, self.slack, self.catalog = app_client, slack, catalog

    def slack_id(self, person: str) -> str:
        return self.app.slack_id(person)

    def signed_form(self, person):
        return self.app.open_form(person)

    def opened_views(self):
        return self.slack.opened_views()

    def signed_submit(self, person, view, values):
        return self.app.submit(person, view, values)

    def messages(self, include_ephemeral: bool = False, **kw):
        found = self.slack.messages() + (self.slack.ephemerals() if include_ephemeral else [])
        return [m.to_dict() for m in found]


def test_the_dev_tool_opens_and_submits_the_form(app_client, slack, catalog, capsys, stack):
    from local import dev

    handle = DevHandle(app_client, slack, catalog)
    assert dev.cmd_form(handle, "bob") == 0
    out = capsys.readouterr().out
    assert "Request AWS access" in out and "│     prod/readonly — up to 8h; reason required; production" in out
    assert "prod/admin" not in out and "submit it: python -m local.dev submit --as bob --view V" in out

    assert dev.cmd_submit(handle, "bob", None, {"role": "prod/readonly", "duration": "1d"}) == 1
    assert capsys.readouterr().out.splitlines()[1] == "  duration: prod/readonly allows at most 8h"
    assert dev.cmd_submit(handle, "bob", None, dev.parse_values(["role=prod/readonly", "duration=1h",
                                                                 "reason=checking a=b"])) == 0
    out = capsys.readouterr().out
    assert "(the form closed)" in out and "is waiting for approval" in out
    assert requests_in_table(stack) and slack.find("access_requested")[0].event_payload["reason"] == "checking a=b"


def test_the_confirmation_is_a_dm_when_the_bot_is_not_in_the_commands_channel(app_client, slack):
    _, view = app_client.open_form("alice")
    slack.fail_next("chat.postEphemeral", error="not_in_channel")
    assert app_client.submit("alice", view, form("dev/admin", "1h")).body is None
    (dm,) = slack.dms("U0ALICE001")
    assert "is waiting for approval" in dm.text and slack.ephemerals() == []
