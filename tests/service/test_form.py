"""Use case: the request form (chalicelib/usecases/form.py, service.open_form / submit_form)
on the fakes: a bare /aws-access opens it, its Submit makes the one-liner's request, and
each refusal is the one-liner's, on the field it is about."""

from __future__ import annotations

import json

import pytest

from chalicelib.domain.errors import ViewNotOpened
from chalicelib.slack import views
from chalicelib.slack.parse import SlashCommand, ViewSubmission
from chalicelib.usecases import jobs
from chalicelib.usecases.deliveries import Repeated
from tests.fakes import make_service
from tests.service.helpers import APPROVALS, CMD_CHANNEL, ask, slack_id, slash


def open_form(svc, person: str, trigger: str = "1794492000.1.abcdef0123", user_id: str | None = None):
    cmd = SlashCommand(user_id or slack_id(svc, person), CMD_CHANNEL, "", "/aws-access", "https://x.invalid",
                       trigger)
    return svc.open_form(cmd)


def submission(svc, person: str, role: str | None, duration: str | None, reason: str | None = "",
               channel: str | None = CMD_CHANNEL, view_id: str = "V00000001") -> ViewSubmission:
    values = {views.ROLE_BLOCK: role or "", views.DURATION_BLOCK: duration or "", views.REASON_BLOCK: reason or ""}
    return ViewSubmission(slack_id(svc, person), views.REQUEST_FORM, view_id, values,
                          json.dumps({"channel": channel}) if channel else "")


def submit(svc, person, role, duration, reason="", **kw):
    sub = submission(svc, person, role, duration, reason, **kw)
    return svc.submit_form(sub, delivery=sub.delivery)


def options(view: dict, block_id: str) -> list[str]:
    block = next(b for b in view["blocks"] if b.get("block_id") == block_id)
    return [o["value"] for o in block["element"]["options"]]


def test_a_bare_command_opens_the_form_with_what_the_person_may_request(svc):
    assert open_form(svc, "alice").text == ""
    assert open_form(svc, "bob", trigger="1794492000.2.abcdef0123").text == ""
    (alice_trigger, alice), (bob_trigger, bob) = svc.slack.opened
    assert alice_trigger == "1794492000.1.abcdef0123"
    assert options(alice, views.ROLE_BLOCK) == ["dev/admin", "prod/admin", "prod/readonly"]
    assert options(bob, views.ROLE_BLOCK) == ["dev/admin", "prod/readonly"]
    assert svc.store.requests() == []


def test_help_is_still_help_and_the_one_liner_still_works(svc):
    assert "What you (@alice) may request" in slash(svc, "alice", "help").text
    ask(svc, "alice")
    assert svc.slack.opened == []


def test_a_stranger_gets_the_one_liners_refusal_and_nothing_opens(svc):
    reply = open_form(svc, "alice", user_id="U0STRANGER")
    assert reply.text == slash(svc, "alice", "prod admin 2h x", user_id="U0STRANGER").text
    assert "not in the Drawbridge catalog" in reply.text
    assert svc.slack.opened == []


def test_a_form_slack_does_not_open_is_answered_with_the_one_liner(svc):
    svc.slack.fail_next("open_view", ViewNotOpened("expired_trigger_id"))
    reply = open_form(svc, "alice")
    assert "could not open the request form (Slack said `expired_trigger_id`)" in reply.text
    assert "`/aws-access &lt;account&gt; &lt;role&gt; &lt;duration&gt; [reason]`" in reply.text
    assert "Usage:" in reply.text and reply.jobs == []
    assert svc.slack.opened == [] and svc.store.requests() == []


def test_a_submission_makes_the_one_liners_request_card_and_confirmation(svc):
    one_liner = make_service()
    typed = slash(one_liner, "alice", "prod admin 2h fixing incident 4521")
    one_liner.run_all(typed.jobs)

    reply = submit(svc, "alice", "prod/admin", "2h", "fixing incident 4521")
    svc.run_all(reply.jobs)

    assert reply.errors == {}
    (req,) = svc.store.requests()
    (same,) = one_liner.store.requests()
    assert (req.requester, req.label, req.duration_seconds, req.reason) == ("alice", "prod/admin", 7200,
                                                                          "fixing incident 4521")
    assert req.request_id == same.request_id  # the same ids in the same order
    (card,) = svc.slack.posts(APPROVALS)
    (expected,) = one_liner.slack.posts(APPROVALS)
    assert (card.text, card.blocks, card.event_type, card.payload) == \
        (expected.text, expected.blocks, expected.event_type, expected.payload)
    (confirm,) = [m for m in svc.slack.messages if m.kind == "ephemeral"]
    assert (confirm.channel, confirm.user, confirm.text) == (CMD_CHANNEL, "U0ALICE001", typed.text)


def test_without_a_channel_the_confirmation_is_a_dm(svc):
    reply = submit(svc, "alice", "dev/admin", "1h", channel=None)
    assert reply.jobs[0] == jobs.Ephemeral("", "U0ALICE001", reply.jobs[0].text)
    svc.run_all(reply.jobs)
    assert [m.text for m in svc.slack.posts("D0ALICE001")] == [reply.jobs[0].text]


REFUSALS = [  # (person, role, duration, reason, the one-liner's words, the field)
    ("bob", "prod/admin", "2h", "x", "prod admin 2h x", "role"),
    ("alice", "prod/nope", "2h", "x", "prod nope 2h x", "role"),
    ("alice", "nowhere/admin", "2h", "x", "nowhere admin 2h x", "role"),
    ("alice", "prod/admin", "8h", "x", "prod admin 8h x", "duration"),
    ("alice", "prod/admin", "soon", "x", "prod admin soon x", "duration"),
    ("alice", "prod/admin", "2h", "", "prod admin 2h", "reason"),
    ("alice", "prod/admin", "2h", "y" * 301, "prod admin 2h " + "y" * 301, "reason"),
]


@pytest.mark.parametrize("person, role, duration, reason, typed, field", REFUSALS)
def test_each_refusal_is_the_one_liners_on_its_field(svc, person, role, duration, reason, typed, field):
    words = slash(make_service(), person, typed).text
    reply = submit(svc, person, role, duration, reason)
    assert reply.errors == {field: views.plain_text(words)} and reply.jobs == []
    assert svc.store.requests() == [] and svc.slack.messages == []


def test_holding_the_role_already_is_refused_on_the_role(svc):
    ask(svc, "alice", "prod admin 2h incident 4521")
    reply = submit(svc, "alice", "prod/admin", "1h", "again", view_id="V00000002")
    assert list(reply.errors) == ["role"] and "you already have req-" in reply.errors["role"]
    assert len(svc.store.requests()) == 1


def test_an_empty_choice_is_refused_on_its_field(svc):
    assert submit(svc, "alice", None, "2h").errors == {"role": "choose an account and role"}
    assert submit(svc, "alice", "dev/admin", None).errors == {"duration": "choose a duration"}
    assert svc.store.requests() == []


def test_a_stranger_submitting_is_refused_and_nothing_is_written(svc):
    sub = ViewSubmission("U0STRANGER", views.REQUEST_FORM, "V1", {"role": "dev/admin", "duration": "1h"})
    reply = svc.submit_form(sub, delivery=sub.delivery)
    assert "You are not in the Drawbridge catalog" in reply.errors["role"] and "`" not in reply.errors["role"]
    assert svc.store.requests() == []


def test_a_double_submission_makes_one_request(svc):
    sub = submission(svc, "alice", "dev/admin", "1h", "deploy")
    svc.run_all(svc.submit_form(sub, delivery=sub.delivery).jobs)
    with pytest.raises(Repeated):
        svc.submit_form(sub, delivery=sub.delivery)
    assert len(svc.store.requests()) == 1 and len(svc.slack.posts(APPROVALS)) == 1


def test_a_refused_submission_may_be_corrected_and_sent_again(svc):
    assert submit(svc, "alice", "prod/admin", "8h", "x").errors
    assert submit(svc, "alice", "prod/admin", "4h", "x").errors == {}
    assert len(svc.store.requests()) == 1


def test_another_form_is_closed_and_changes_nothing(svc):
    sub = ViewSubmission("U0ALICE001", "aws_access_request", "V1", {"role": "dev/admin", "duration": "1h"})
    assert svc.submit_form(sub, delivery=sub.delivery).errors == {}
    assert svc.store.requests() == []


def test_a_channel_slack_will_not_show_the_confirmation_in_gets_a_dm(svc):
    from chalicelib.domain.errors import NotInChannel

    svc.slack.fail_next("ephemeral", NotInChannel("not_in_channel"))  # the bot is not in CMD_CHANNEL
    reply = submit(svc, "alice", "dev/admin", "1h")
    svc.run_all(reply.jobs)
    (dm,) = svc.slack.posts("D0ALICE001")
    assert "is waiting for approval" in dm.text and dm.event_type == "click_answer"
    assert [m for m in svc.slack.messages if m.kind == "ephemeral"] == []
    assert len(svc.slack.posts(APPROVALS)) == 1
