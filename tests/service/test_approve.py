"""Use case: Approve / Deny on a card (chalicelib/usecases/approve.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.errors import Conflict
from chalicelib.domain.model import GrantStatus, RequestStatus
from chalicelib.slack.views import APPROVE, DENY
from chalicelib.usecases import jobs
from chalicelib.usecases.approve import decide_click
from chalicelib.usecases.outcomes import ClickDone, TooBusy
from chalicelib.slack.parse import Click
from tests.fakes import SAMPLE_CATALOG, make_service
from tests.service.helpers import (APPROVALS, actions, approve, ask, card, deny, dm_types, ephemeral_texts, press,
                                   slack_id, state)


def test_an_approval_that_is_not_the_last_is_counted(svc):
    rid = ask(svc)
    svc.clock.advance(minutes=2)

    follow = approve(svc, "bob", rid, run=False)

    req = svc.store.get(rid)
    assert (req.status, req.grant_status, req.approvers, req.version) == (
        RequestStatus.PENDING, GrantStatus.NONE, ("bob",), 2)
    assert req.approval_by("bob").at == svc.clock()
    assert actions(svc, rid)[-1] == ("bob", "approved", "PENDING/NONE", "PENDING/NONE")
    assert svc.store.history(rid)[-1].reason == "approval 1 of 2"
    assert follow[0] == jobs.Card(rid, "access_approved", {"request_id": rid, "approver": "bob"})
    svc.run_all(follow)
    msg = card(svc, rid)
    assert msg.event_type == "access_approved" and msg.payload == {"request_id": rid, "approver": "bob"}
    assert "1 of 2" in msg.all_text() and msg.has_buttons
    assert svc.grants.policies == {} and ephemeral_texts(svc, "bob") == []
    # the requester is told of the approval, by DM, and of what it still waits for
    [dm] = svc.slack.dms(slack_id(svc, "alice"))
    assert dm.event_type == "access_approved"
    assert dm.payload == {"request_id": rid, "approver": "bob", "approvals": 1, "required": 2}
    assert f"<@{slack_id(svc, 'bob')}> approved your request {rid}" in dm.text
    assert "(1 of 2 approvals); it waits for 1 more" in dm.text


def test_each_counted_approval_is_told_once_however_often_its_job_runs(svc):
    rid = ask(svc)
    follow = approve(svc, "bob", rid, run=False)
    svc.run_all(follow)
    svc.run_all(follow)  # a re-invoked worker
    svc.sweep()  # and the outbox: nothing is owed any more
    assert dm_types(svc, "alice") == ["access_approved"]


def test_an_approval_dm_that_arrives_after_the_decision_says_nothing(svc):
    rid = ask(svc)
    first = approve(svc, "bob", rid, run=False)  # its worker is slow...
    approve(svc, "carol", rid)  # ...and the final approval's grant lands first
    svc.run_all(first)
    assert dm_types(svc, "alice") == ["access_granted"]  # the granted DM names both approvers
    svc.sweep()
    assert dm_types(svc, "alice") == ["access_granted"]


def test_the_final_approval_starts_the_grant(svc):
    rid = ask(svc)
    approve(svc, "bob", rid)
    svc.clock.advance(minutes=2)

    follow = approve(svc, "carol", rid, run=False)

    req = svc.store.get(rid)
    assert (req.status, req.grant_status, req.approvers) == (RequestStatus.APPROVED, GrantStatus.GRANTING,
                                                             ("bob", "carol"))
    assert (req.decided_by, req.decided_at, req.expires_at) == ("carol", svc.clock(), svc.clock() + timedelta(hours=2))
    assert actions(svc, rid)[-1] == ("carol", "approved", "PENDING/NONE", "APPROVED/GRANTING")
    assert follow == [jobs.Card(rid, "access_approved", {"request_id": rid, "approver": "carol"}), jobs.Grant(rid)]
    assert svc.grants.policies == {}  # the ack path never touches IAM
    svc.run_all(follow)
    assert state(svc, rid) == "APPROVED/ACTIVE"


def test_a_deny_ends_the_request_and_tells_the_requester(svc):
    rid = ask(svc)
    svc.clock.advance(minutes=1)

    follow = deny(svc, "carol", rid, run=False)

    req = svc.store.get(rid)
    assert (req.status, req.grant_status, req.decided_by, req.decided_at) == (
        RequestStatus.DENIED, GrantStatus.NONE, "carol", svc.clock())
    assert actions(svc, rid)[-1] == ("carol", "denied", "PENDING/NONE", "DENIED/NONE")
    payload = {"request_id": rid, "denied_by": "carol"}
    assert follow == [jobs.Card(rid, "access_denied", payload), jobs.Dm(rid, "access_denied", payload)]
    svc.run_all(follow)
    msg = card(svc, rid)
    assert (msg.event_type, msg.payload, msg.has_buttons) == ("access_denied", payload, False)
    (dm,) = svc.slack.dms("U0ALICE001")
    assert dm.event_type == "access_denied" and "was denied by <@U0CAROL001>" in dm.text
    assert svc.store.open_for("alice") == []


def test_self_approval_where_the_role_allows_it(svc):
    rid = ask(svc, "bob", "dev admin 1h")
    approve(svc, "bob", rid)
    assert state(svc, rid) == "APPROVED/ACTIVE" and svc.grants.holders(rid) == ["bob"]


def refusal_world(case: str):
    """(service, request id, who clicks, which button, the reply expected)."""
    svc = make_service()
    rid = ask(svc)
    if case == "not in the catalog":
        return svc, rid, "U0STRANGER", APPROVE, "You are not in the Drawbridge catalog, so you cannot approve requests."
    if case == "not in the catalog (deny)":
        return svc, rid, "U0STRANGER", DENY, "You are not in the Drawbridge catalog, so you cannot deny requests."
    if case == "not an approver":
        return svc, rid, "dave", APPROVE, "You are not an approver of prod/admin; approvers: @bob, @carol."
    if case == "not an approver (deny)":
        return svc, rid, "alice", DENY, "You are not an approver of prod/admin; approvers: @bob, @carol."
    if case == "own request":
        rid = ask(svc, "bob", "prod readonly 1h dashboards")
        return svc, rid, "bob", APPROVE, ("You cannot approve your own request "
                                          "(prod/readonly does not allow self-approval).")
    if case == "twice":
        approve(svc, "bob", rid)
        return svc, rid, "bob", APPROVE, f"You already approved {rid} (1 of 2 approvals)."
    if case == "already denied":
        deny(svc, "carol", rid)
        return svc, rid, "bob", APPROVE, f"{rid} was already denied by @carol at 14:00 UTC."
    if case == "already approved (deny)":
        approve(svc, "bob", rid)
        approve(svc, "carol", rid)
        return svc, rid, "bob", DENY, f"{rid} was already approved by @bob, @carol at 14:00 UTC."
    if case == "pending window over":
        svc.clock.advance(hours=1)
        return svc, rid, "bob", APPROVE, f"{rid} expired at 15:00 UTC without enough approvals."
    if case == "role gone from the catalog":
        svc.catalog = make_service(SAMPLE_CATALOG.read_text().replace("[accounts.prod.roles.admin]",
                                                                      "[accounts.prod.roles.root]")).catalog
        return svc, rid, "bob", APPROVE, f"Prod/admin is no longer in the catalog; nobody can approve {rid}."
    if case == "requester no longer allowed":
        svc.catalog = make_service(SAMPLE_CATALOG.read_text().replace('requesters = ["alice", "dave"]',
                                                                      'requesters = ["dave"]')
                                   .replace('break_glass = ["alice"]', 'break_glass = []')).catalog
        return svc, rid, "bob", APPROVE, (f"@alice may no longer request prod/admin (the catalog changed); "
                                          f"deny {rid} instead.")
    raise AssertionError(case)


CASES = ["not in the catalog", "not in the catalog (deny)", "not an approver", "not an approver (deny)",
         "own request", "twice", "already denied", "already approved (deny)", "pending window over",
         "role gone from the catalog", "requester no longer allowed"]


@pytest.mark.parametrize("case", CASES)
def test_refused_clicks_change_nothing_and_answer_the_clicker(case):
    svc, rid, who, action, reply = refusal_world(case)
    before = svc.store.snapshot()
    iam = {arn: list(p.users) for arn, p in svc.grants.policies.items()}
    posted = len(svc.slack.messages)
    user = who if who.startswith("U") else slack_id(svc, who)

    follow = press(svc, who, action, rid, user_id=user)

    assert follow == [jobs.Ephemeral(APPROVALS, user, reply)]
    svc.run_all(follow)
    assert svc.store.snapshot() == before
    assert {arn: list(p.users) for arn, p in svc.grants.policies.items()} == iam
    (answer,) = svc.slack.messages[posted:]
    assert (answer.kind, answer.user, answer.text) == ("ephemeral", user, reply)


def test_a_catalog_made_stricter_raises_the_approvals_needed(svc):
    rid = ask(svc, "alice", "prod readonly 1h dashboards")  # 1 approval when asked
    svc.catalog = make_service(SAMPLE_CATALOG.read_text().replace(
        'approvers = ["bob", "carol"]       # bob\'s own', 'approvals_required = 2\napprovers = ["bob", "carol"] #'
    ).replace("approvals_required = 1\n", "")).catalog
    assert svc.catalog.find_role("prod", "readonly").approvals_required == 2
    approve(svc, "bob", rid)
    assert state(svc, rid) == "PENDING/NONE"
    # the requester's DM counts as the rule does: against the stricter requirement now
    (told,) = [m for m in svc.slack.dms(slack_id(svc, "alice")) if m.event_type == "access_approved"]
    assert (told.payload["approvals"], told.payload["required"]) == (1, 2) and "waits for 1 more" in told.text
    approve(svc, "carol", rid)
    assert state(svc, rid) == "APPROVED/ACTIVE"


def test_a_deny_with_reason_keeps_its_reason_on_a_card_redrawn_later(svc):
    """bob's approval card job is slow; carol denies with a reason meanwhile: the card drawn
    from the record afterwards still carries the reason in its metadata."""
    from chalicelib.usecases.approve import decide

    rid = ask(svc)
    slow = approve(svc, "bob", rid, run=False)
    svc.run_all(decide(svc, "carol", rid, approve=False, why="use readonly").jobs)
    svc.run_all(slow)
    msg = card(svc, rid)
    assert msg.event_type == "access_denied"
    assert msg.payload == {"request_id": rid, "denied_by": "carol", "reason": "use readonly"}
    assert "use readonly" in msg.all_text()


@pytest.mark.parametrize("action,value,reply", [
    ("launch_missiles", "req-20261112-000001", "That button is not one Drawbridge knows; nothing was changed."),
    (APPROVE, "drop table", "That button does not carry a valid request id; nothing was changed."),
    (APPROVE, "req-20261112-ffffff", "Unknown request `req-20261112-ffffff`; nothing was changed."),
])
def test_clicks_that_name_nothing_known(svc, action, value, reply):
    ask(svc)
    before = svc.store.snapshot()
    follow = press(svc, "bob", action, value)
    assert follow == [jobs.Ephemeral(APPROVALS, "U0BOB00001", reply)]
    assert svc.store.snapshot() == before


def test_two_final_approvers_at_once_end_as_one_grant(svc):
    """bob and carol click together: bob's write loses to carol's, bob re-reads and decides
    again, and his approval becomes the final one. One grant, no repeated event."""
    rid = ask(svc)
    svc.store.before_next("transition", lambda: approve(svc, "carol", rid))

    follow = approve(svc, "bob", rid)

    assert actions(svc, rid) == [
        ("alice", "requested", "-", "PENDING/NONE"),
        ("carol", "approved", "PENDING/NONE", "PENDING/NONE"),
        ("bob", "approved", "PENDING/NONE", "APPROVED/GRANTING"),
        ("drawbridge", "granted", "APPROVED/GRANTING", "APPROVED/ACTIVE"),
    ]
    assert [type(j) for j in follow] == [jobs.Card, jobs.Grant]
    assert svc.grants.holders(rid) == ["alice"] and len(svc.grants.policies) == 1
    assert dm_types(svc) == ["access_approved", "access_granted"]  # carol's, told while it still waited
    assert card(svc, rid).event_type == "access_granted"


def test_an_approval_that_loses_to_a_deny_is_refused_on_the_re_read(svc):
    rid = ask(svc)
    svc.store.before_next("transition", lambda: deny(svc, "carol", rid))

    follow = approve(svc, "bob", rid, run=False)

    assert follow == [jobs.Ephemeral(APPROVALS, "U0BOB00001", f"{rid} was already denied by @carol at 14:00 UTC.")]
    assert state(svc, rid) == "DENIED/NONE"
    assert [a[1] for a in actions(svc, rid)] == ["requested", "denied"]


def test_a_lost_write_is_retried(svc):
    rid = ask(svc)
    svc.store.fail_next("transition", Conflict("lost"))
    follow = approve(svc, "bob", rid, run=False)
    assert [type(j) for j in follow] == [jobs.Card, jobs.Dm]
    assert svc.store.get(rid).approvers == ("bob",)
    assert [a[1] for a in actions(svc, rid)] == ["requested", "approved"]


def test_a_record_that_keeps_changing_is_too_busy(svc):
    rid = ask(svc)
    before = svc.store.snapshot()
    svc.store.fail_next("transition", Conflict("lost"), times=5)
    answer = decide_click(svc, Click(APPROVE, rid, "U0BOB00001", APPROVALS, "1.1"))
    assert answer.outcome == TooBusy(rid) and answer.jobs == []
    assert svc.store.snapshot() == before

    svc.store.fail_next("transition", Conflict("lost"), times=5)
    assert press(svc, "bob", APPROVE, rid) == [
        jobs.Ephemeral(APPROVALS, "U0BOB00001", f"`{rid}` is changing too fast; try again.")]
    assert svc.store.snapshot() == before


def test_a_counted_click_answers_with_the_card_not_a_message(svc):
    rid = ask(svc)
    answer = decide_click(svc, Click(APPROVE, rid, "U0BOB00001", APPROVALS, "1.1"))
    assert answer.outcome == ClickDone()
