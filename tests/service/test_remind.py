"""Use case: reminders of the approvers of a waiting request (chalicelib/usecases/remind.py),
driven by the sweep. The sample catalog's roles remind after 10 minutes (the default), then
after twice as long each time; requests wait 1 hour."""

from __future__ import annotations

from datetime import timedelta

from chalicelib.slack.parse import Click
from chalicelib.slack.views import APPROVE
from tests.fakes import make_service
from tests.service.helpers import approve, ask, card, dm_types, press, slack_id, state

BOB, CAROL, ALICE = "U0BOB00001", "U0CAROL001", "U0ALICE001"


def reminders(svc, user: str) -> list:
    return [m for m in svc.slack.dms(user) if m.event_type == "approval_reminder"]


def at(svc, rid: str, minutes: float) -> None:
    """The clock ``minutes`` after the request was made, and the sweep."""
    svc.clock.set(svc.store.get(rid).created_at + timedelta(minutes=minutes))
    svc.sweep(on_error=lambda job, exc: None)  # a failed delivery stays owed; the next sweep retries


def test_approvers_are_reminded_after_10_then_30_minutes_each_once(svc):
    rid = ask(svc)
    at(svc, rid, 9)
    assert reminders(svc, BOB) == [] and svc.store.get(rid).reminders == 0
    at(svc, rid, 10)
    at(svc, rid, 10.5)  # a second sweep the same minute sends nothing more
    (first,) = reminders(svc, BOB)
    assert len(reminders(svc, CAROL)) == 1
    assert first.payload == {"request_id": rid, "reminder": 1, "approver": "bob"}
    assert "is waiting for `prod/admin`" in first.all_text() and "expires at 15:00 UTC" in first.all_text()
    assert [e["action_id"] for b in first.blocks if b["type"] == "actions" for e in b["elements"]] == [
        "approve_request", "deny_request", "deny_with_reason"]
    (told,) = [m for m in svc.slack.dms(ALICE) if m.event_type == "approvers_reminded"]
    assert told.payload == {"request_id": rid, "reminded": ["bob", "carol"], "reminder": 1}
    assert "I reminded <@U0BOB00001>, <@U0CAROL001>" in told.text
    at(svc, rid, 29)
    assert len(reminders(svc, BOB)) == 1
    at(svc, rid, 30)  # escalated at 30 minutes (the default escalate_after); the reminder follows
    at(svc, rid, 31)
    assert [m.payload["reminder"] for m in reminders(svc, BOB)] == [1, 2]
    at(svc, rid, 59)  # the next (70 min) would be after the request expires: none
    assert len(reminders(svc, BOB)) == 2 and svc.store.get(rid).reminders == 2
    assert [e.action for e in svc.store.history(rid)].count("reminded") == 2


def test_who_already_approved_is_not_reminded(svc):
    rid = ask(svc)
    svc.clock.advance(minutes=2)
    approve(svc, "bob", rid)
    at(svc, rid, 10)
    assert reminders(svc, BOB) == [] and len(reminders(svc, CAROL)) == 1
    (told,) = [m for m in svc.slack.dms(ALICE) if m.event_type == "approvers_reminded"]
    assert told.payload["reminded"] == ["carol"] and "(1 of 2 approvals)" in told.text


def test_a_decided_request_is_never_reminded(svc):
    rid = ask(svc)
    svc.clock.advance(minutes=2)
    approve(svc, "bob", rid)
    approve(svc, "carol", rid)
    for minutes in (10, 30, 59):
        at(svc, rid, minutes)
    assert reminders(svc, BOB) == reminders(svc, CAROL) == []
    assert "approvers_reminded" not in dm_types(svc)


def test_a_reminder_owed_when_the_request_was_decided_sends_nothing(svc):
    """The sweep recorded reminder 1, Slack was down; bob decided meanwhile: the retried
    reminder reaches nobody and is settled."""
    rid = ask(svc)
    svc.slack.fail_next("dm", TimeoutError("Slack is down"), times=3)
    at(svc, rid, 10)
    assert svc.store.get(rid).reminders == 1 and reminders(svc, BOB) == []
    svc.run_all(press(svc, "bob", "deny_request", rid), on_error=lambda job, exc: None)
    at(svc, rid, 30)
    at(svc, rid, 50)
    assert reminders(svc, BOB) == reminders(svc, CAROL) == []
    assert [o.key for o in svc.store.owed_for("alice") if o.key.startswith(("remind", "dm:approvers"))] == []


def test_an_approver_decides_from_the_reminder(svc):
    rid = ask(svc)
    at(svc, rid, 10)
    (dm,) = reminders(svc, CAROL)
    svc.run_all(svc.click(Click(APPROVE, rid, CAROL, dm.channel, dm.ts)))
    assert svc.store.get(rid).approvers == ("carol",) and state(svc, rid) == "PENDING/NONE"


def test_a_lost_answer_is_found_not_posted_again(svc, monkeypatch):
    rid = ask(svc)
    real, lost = svc.slack.dm, []

    def post_then_lose(user, text, blocks, event_type, payload):
        where = real(user, text, blocks, event_type, payload)
        if event_type == "approval_reminder" and not lost:
            lost.append(user)
            raise ConnectionResetError("the answer was lost")
        return where

    monkeypatch.setattr(svc.slack, "dm", post_then_lose)
    at(svc, rid, 10)
    for minutes in (12, 15, 20):
        at(svc, rid, minutes)
    assert lost and [len(reminders(svc, u)) for u in (BOB, CAROL)] == [1, 1]


def test_remind_after_off_sends_no_reminder():
    from tests.fakes import SAMPLE_CATALOG

    text = SAMPLE_CATALOG.read_text().replace('max_extended_duration = "8h"',
                                              'max_extended_duration = "8h"\nremind_after = "off"')
    svc = make_service(text)
    rid = ask(svc)
    assert svc.store.get(rid).remind_at is None
    for minutes in (10, 30, 59):
        at(svc, rid, minutes)
    assert reminders(svc, BOB) == [] and "approvers_reminded" not in dm_types(svc)
    assert slack_id(svc, "bob") == BOB


def with_fallback(extra: str = "") -> str:
    from tests.fakes import SAMPLE_CATALOG

    return SAMPLE_CATALOG.read_text().replace('max_extended_duration = "8h"',
                                              f'max_extended_duration = "8h"\nfallback_approvers = ["dave"]{extra}')


def test_still_waiting_at_30_minutes_it_is_escalated_and_the_fallback_approvers_may_approve():
    svc = make_service(with_fallback())
    rid = ask(svc)
    svc.clock.advance(minutes=2)
    approve(svc, "bob", rid)
    svc.run_all(press(svc, "dave", APPROVE, rid))  # not yet: dave is only a fallback approver
    assert svc.store.get(rid).approvers == ("bob",)
    at(svc, rid, 30)

    req = svc.store.get(rid)
    assert req.escalated_at == svc.clock() and [e.action for e in svc.store.history(rid)][-1] == "escalated"
    (notice,) = svc.slack.posts("C0APPROVE1", event_type="approval_escalated")
    assert notice.payload == {"escalated_request": rid, "deciders": ["bob", "carol", "dave"]}
    assert card(svc, rid).event_type == "access_approved"  # the card is still the card
    assert "Still waiting since 14:00 UTC" in notice.text and "<@U0DAVE0001>" in notice.text
    (told,) = [m for m in svc.slack.dms(ALICE) if m.event_type == "approval_escalated"]
    assert "<@U0DAVE0001> may approve it too now" in told.text
    at(svc, rid, 31)  # the reminder after it reaches the fallback approver too (bob has approved)
    assert sorted(m.payload["approver"] for m in svc.slack.posts() if m.event_type == "approval_reminder") == [
        "carol", "dave"]

    svc.clock.advance(minutes=1)
    approve(svc, "dave", rid)  # the second approval, by the fallback approver: granted
    assert state(svc, rid) == "APPROVED/ACTIVE" and svc.grants.holders(rid) == ["alice"]
    at(svc, rid, 45)
    assert len(svc.slack.posts("C0APPROVE1", event_type="approval_escalated")) == 1  # once


def test_a_fallback_approval_without_the_escalation_in_the_audit_trail_is_not_granted():
    """Defence in depth: a record edited to look escalated lets dave click, but the grant
    step counts fallback approvers only if the audit trail has the escalation."""
    import dataclasses

    svc = make_service(with_fallback())
    rid = ask(svc)
    svc.clock.advance(minutes=2)
    approve(svc, "bob", rid)
    req = svc.store.get(rid)
    svc.store._requests[rid] = dataclasses.replace(req, escalated_at=svc.clock()).to_json()
    approve(svc, "dave", rid)
    after = svc.store.get(rid)
    assert after.grant_status.value == "FAILED" and "1 of 2 approvals count" in after.note
    assert svc.grants.holders(rid) == []


def test_escalate_after_off_never_escalates():
    svc = make_service(with_fallback('\nescalate_after = "off"'))
    rid = ask(svc)
    for minutes in (30, 45, 59):
        at(svc, rid, minutes)
    assert svc.store.get(rid).escalated_at is None
    assert svc.slack.posts("C0APPROVE1", event_type="approval_escalated") == []
    svc.run_all(press(svc, "dave", APPROVE, rid))
    assert svc.store.get(rid).approvers == ()


def test_fallback_approvers_must_be_people():
    import pytest

    from chalicelib.catalog import CatalogError, parse_catalog

    with pytest.raises(CatalogError, match=r"fallback_approvers\[0\]: 'erin' is not a person"):
        parse_catalog(with_fallback().replace('fallback_approvers = ["dave"]', 'fallback_approvers = ["erin"]'))
