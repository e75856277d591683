"""Slack may deliver one command or click twice (chalicelib/usecases/deliveries.py): the
first delivery acts; a repeat raises Repeated with what the first one answered."""

from __future__ import annotations

import pytest

from chalicelib.usecases.deliveries import Repeated, once
from chalicelib.slack.parse import SlashCommand
from chalicelib.slack.views import APPROVE, DENY
from tests.service.helpers import ask, press, slash


def test_a_repeated_command_acts_once_and_gets_the_first_answer(svc):
    first = slash(svc, "alice", "prod readonly 1h dashboards", delivery="1.2.retry-me")

    with pytest.raises(Repeated) as repeat:
        slash(svc, "alice", "prod readonly 1h dashboards", delivery="1.2.retry-me")

    assert repeat.value.reply == first.text  # Slack shows the retry's answer: the first one, again
    assert len(svc.store.requests()) == 1


def test_a_repeat_after_the_request_ended_makes_no_new_one(svc):
    """The record no longer names the delivery (it was denied since), so the read does not
    see the repeat and the command is decided afresh: the claim on the write stops it."""
    first = slash(svc, "alice", "prod readonly 1h dashboards", delivery="1.2.late")
    rid = first.text.split("`")[1]
    svc.run_all(first.jobs)
    svc.run_all(press(svc, "bob", DENY, rid))

    with pytest.raises(Repeated) as repeat:
        slash(svc, "alice", "prod readonly 1h dashboards", delivery="1.2.late")

    assert repeat.value.reply.startswith("Already received") and rid in repeat.value.reply
    assert [r.request_id for r in svc.store.requests()] == [rid]


def test_another_delivery_is_another_command(svc):
    first = slash(svc, "alice", "prod readonly 1h a", delivery="1.2.a")
    second = slash(svc, "alice", "dev admin 1h", delivery="1.2.b")
    third = slash(svc, "alice", "prod readonly 1h b")  # no delivery id: always acts (here: refused)
    assert first.text.startswith("Request `") and second.text.startswith("Request `")
    assert third.text.startswith("you already have `")
    assert len(svc.store.requests()) == 2


def test_a_repeated_click_acts_once(svc):
    rid = ask(svc)
    follow = press(svc, "bob", APPROVE, rid, delivery="9.9.click")
    svc.run_all(follow)

    with pytest.raises(Repeated) as repeat:
        press(svc, "bob", APPROVE, rid, delivery="9.9.click")

    assert repeat.value.reply is None  # a click's answer is the card itself
    assert svc.store.get(rid).approvers == ("bob",) and len(svc.store.history(rid)) == 2


def test_commands_and_clicks_with_one_trigger_id_are_separate(svc):
    rid = ask(svc)
    slash(svc, "carol", "list", delivery="same")
    press(svc, "bob", APPROVE, rid, delivery="same")
    assert svc.store.get(rid).approvers == ("bob",)


def test_a_failure_releases_the_claim_so_the_redelivery_acts(svc):
    svc.store.fail_next("open_for", ConnectionError("dynamodb throttled"))
    with pytest.raises(ConnectionError):
        slash(svc, "alice", "prod readonly 1h dashboards", delivery="1.2.flaky")
    assert svc.store.requests() == []

    reply = slash(svc, "alice", "prod readonly 1h dashboards", delivery="1.2.flaky")

    assert reply.text.startswith("Request `") and len(svc.store.requests()) == 1


def test_a_command_that_changes_and_sends_nothing_just_answers_again(svc):
    first = slash(svc, "alice", "list", delivery="3.3.list")
    again = slash(svc, "alice", "list", delivery="3.3.list")
    assert again.text == first.text and svc.store.first_delivery("cmd#3.3.list", svc.now()) == (True, None)


def test_a_refused_click_is_answered_once(svc):
    rid = ask(svc)
    follow = press(svc, "dave", APPROVE, rid, delivery="4.4.refused")  # dave may not approve
    assert [type(j).__name__ for j in follow] == ["Ephemeral"]

    with pytest.raises(Repeated):
        press(svc, "dave", APPROVE, rid, delivery="4.4.refused")
    assert svc.store.get(rid).approvers == ()


def test_once_directly(svc):
    calls = []
    assert once(svc, "k", lambda deps: calls.append(1) or "done") == "done"
    with pytest.raises(Repeated) as repeat:  # "done" wrote nothing but had something to send: it claimed "k"
        once(svc, "k", lambda deps: calls.append(2) or "again")
    assert repeat.value.reply is None and calls == [1, 2]  # decided again (read-only), sent nothing
    assert once(svc, None, lambda deps: "no key") == "no key"
    assert once(svc, "", lambda deps: "empty key") == "empty key"


def test_a_repeated_review_command_owes_one_review():
    """``/aws-access review`` writes nothing but owes its DM (the outbox): the owe rides on
    the delivery claim, so Slack's retry of the command owes (and sends) nothing more."""
    from tests.fakes import FakeUserGroups, make_service

    svc = make_service()
    carol = svc.catalog.people["carol"].slack_user
    svc.groups = FakeUserGroups({f"#{svc.catalog.security_channel}": {carol}})
    first = slash(svc, "carol", "review 7d", delivery="3.3.review")
    assert "as a DM" in first.text and len(first.jobs) == 1
    svc.clock.advance(seconds=4)  # Slack retries after 3 s: another `end`, were it owed again
    with pytest.raises(Repeated):
        slash(svc, "carol", "review 7d", delivery="3.3.review")
    owed = [o for o in svc.store.owed if o.key.startswith("review:")]
    assert [(o.request_id, o.job["user_id"]) for o in owed] == [(f"REVIEW#{carol}", carol)]
    svc.run_all(first.jobs)  # delivered: settled
    assert [o for o in svc.store.owed if o.key.startswith("review:")] == []
