"""Slack may deliver one command or click twice (chalicelib/usecases/deliveries.py): the
first delivery acts; a repeat raises Repeated with what the first one answered."""

from __future__ import annotations

import pytest

from chalicelib.usecases.deliveries import Repeated, once
from chalicelib.slack.parse import SlashCommand
from chalicelib.slack.views import APPROVE
from tests.service.helpers import ask, press, slash


def test_a_repeated_command_acts_once_and_gets_the_first_answer(svc):
    first = slash(svc, "alice", "prod readonly 1h dashboards", delivery="1.2.retry-me")

    with pytest.raises(Repeated) as repeat:
        slash(svc, "alice", "prod readonly 1h dashboards", delivery="1.2.retry-me")

    assert repeat.value.reply == first.text
    assert len(svc.store.requests()) == 1


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


def test_a_reply_that_cannot_be_remembered_still_stands(svc):
    errors = []
    svc.store.fail_next("remember_reply", ConnectionError("throttled"))
    reply = svc.command(SlashCommand("U0ALICE001", "C1", "prod readonly 1h x", "/aws-access", "", "7.7"),
                        delivery="7.7", on_remember_error=errors.append)

    assert reply.text.startswith("Request `") and len(svc.store.requests()) == 1
    assert [str(e) for e in errors] == ["throttled"]
    with pytest.raises(Repeated) as repeat:
        slash(svc, "alice", "prod readonly 1h x", delivery="7.7")
    assert repeat.value.reply is None and len(svc.store.requests()) == 1


def test_once_directly(svc):
    calls = []
    assert once(svc, "k", lambda: calls.append(1) or "done", remember=str) == "done"
    with pytest.raises(Repeated) as repeat:
        once(svc, "k", lambda: calls.append(2))
    assert repeat.value.reply == "done" and calls == [1]
    assert once(svc, None, lambda: "no key") == "no key"
    assert once(svc, "", lambda: "empty key") == "empty key"
