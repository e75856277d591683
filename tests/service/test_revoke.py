"""Use case: ``/aws-access revoke <id>`` (chalicelib/usecases/revoke.py): cancel a pending
request, or start ending an active grant (the EndGrant job finishes it)."""

from __future__ import annotations

import pytest

from chalicelib.domain.errors import Conflict
from chalicelib.domain.model import GrantStatus, RequestStatus
from chalicelib.usecases import jobs
from chalicelib.usecases.outcomes import Refused, TooBusy, UnknownRequest
from chalicelib.usecases.revoke import revoke
from tests.service.helpers import (actions, approve, ask, card, deny, dm_types, granted, security, slash,
                                   state)


def test_the_requester_cancels_a_pending_request(svc):
    rid = ask(svc)
    approve(svc, "bob", rid)
    svc.clock.advance(minutes=3)

    reply = slash(svc, "alice", f"revoke {rid}")

    assert reply.text == f"Cancelled `{rid}` (`prod/admin`)."
    req = svc.store.get(rid)
    assert (req.status, req.grant_status, req.decided_by, req.decided_at) == (
        RequestStatus.CANCELLED, GrantStatus.NONE, "alice", svc.clock())
    assert actions(svc, rid)[-1] == ("alice", "cancelled", "PENDING/NONE", "CANCELLED/NONE")
    payload = {"request_id": rid, "revoked_by": "alice"}
    assert reply.jobs == [jobs.Card(rid, "access_revoked", payload)]  # no DM: she did it herself
    svc.run_all(reply.jobs)
    msg = card(svc, rid)
    assert (msg.event_type, msg.payload, msg.has_buttons) == ("access_revoked", payload, False)
    assert dm_types(svc) == ["access_approved"] and svc.store.open_for("alice") == []  # bob's, before


def test_an_approver_cancelling_tells_the_requester(svc):
    rid = ask(svc)
    reply = slash(svc, "carol", f"revoke {rid}")
    payload = {"request_id": rid, "revoked_by": "carol"}
    assert reply.jobs == [jobs.Card(rid, "access_revoked", payload), jobs.Dm(rid, "access_revoked", payload)]
    svc.run_all(reply.jobs)
    (dm,) = svc.slack.dms("U0ALICE001")
    assert dm.event_type == "access_revoked" and "was cancelled by <@U0CAROL001>" in dm.text


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_revoking_an_active_grant(svc, who):
    rid = granted(svc)
    svc.clock.advance(minutes=10)

    reply = slash(svc, who, f"revoke {rid}")

    assert reply.text == f"Revoking `{rid}` (`prod/admin`) now; the card and a DM will confirm."
    req = svc.store.get(rid)
    assert (req.grant_status, req.ended_by, req.ended_at) == (GrantStatus.REVOKING, who, svc.clock())
    assert actions(svc, rid)[-1] == (who, "revoke_requested", "APPROVED/ACTIVE", "APPROVED/REVOKING")
    assert reply.jobs == [jobs.EndGrant(rid)]
    assert svc.grants.holders(rid) == ["alice"]  # still in IAM until the job runs

    svc.run_all(reply.jobs)

    assert state(svc, rid) == "APPROVED/REVOKED" and svc.grants.policy(rid) is None
    assert actions(svc, rid)[-2:] == [(who, "revoked", "APPROVED/REVOKING", "APPROVED/REVOKED"),
                                      ("drawbridge", "sessions_cut", "APPROVED/REVOKED", "APPROVED/REVOKED")]
    msg = card(svc, rid)
    assert msg.event_type == "access_revoked" and msg.payload == {"request_id": rid, "revoked_by": who}
    assert dm_types(svc) == ["access_approved", "access_granted", "access_revoked"]
    assert security(svc) == []


def refusal(svc, case):
    rid = ask(svc)
    if case == "a stranger":
        return rid, "dave", (f"only the requester (@alice) or an approver of prod/admin can revoke {rid}")
    if case == "being granted":
        approve(svc, "bob", rid)
        approve(svc, "carol", rid, run=False)  # GRANTING: its Grant job has not run
        return rid, "alice", f"{rid} is being granted right now; try again in a moment"
    if case == "denied":
        deny(svc, "bob", rid)
        return rid, "alice", f"{rid} was already denied by @bob at 14:00 UTC"
    if case == "revoked":
        approve(svc, "bob", rid)
        approve(svc, "carol", rid)
        svc.run_all(slash(svc, "alice", f"revoke {rid}").jobs)
        return rid, "bob", f"{rid} was already revoked by @alice at 14:00 UTC"
    if case == "being revoked":
        approve(svc, "bob", rid)
        approve(svc, "carol", rid)
        slash(svc, "carol", f"revoke {rid}")  # its EndGrant job has not run
        return rid, "alice", f"{rid} is already being revoked (by @carol)"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["a stranger", "being granted", "denied", "revoked", "being revoked"])
def test_refusals_change_nothing(svc, case):
    rid, who, reason = refusal(svc, case)
    before = svc.store.snapshot()
    iam = svc.grants.holders(rid)

    reply = slash(svc, who, f"revoke {rid}")

    assert reply.text == reason and reply.jobs == []
    assert svc.store.snapshot() == before and svc.grants.holders(rid) == iam


def test_outcomes_for_unknown_requests_and_unknown_people(svc):
    rid = ask(svc)
    assert revoke(svc, "alice", "req-20261112-ffffff").outcome == UnknownRequest("req-20261112-ffffff")
    assert revoke(svc, None, rid).outcome == Refused("you are not in the Drawbridge catalog")
    assert slash(svc, "alice", "revoke req-20261112-ffffff").text == (
        "unknown request `req-20261112-ffffff` (see `/aws-access list`)")
    assert state(svc, rid) == "PENDING/NONE"


def test_a_lost_write_is_decided_again(svc):
    rid = granted(svc)
    svc.store.fail_next("transition", Conflict("lost"))
    reply = slash(svc, "alice", f"revoke {rid}")
    assert reply.jobs == [jobs.EndGrant(rid)]
    assert [a[1] for a in actions(svc, rid)][-1] == "revoke_requested"
    assert len(svc.store.history(rid)) == 5


def test_a_revoke_racing_the_sweeps_expiry_is_decided_on_the_new_record(svc):
    rid = granted(svc)
    req = svc.store.get(rid)
    svc.clock.set(req.expires_at)
    svc.store.before_next("transition", lambda: svc.sweep())

    reply = slash(svc, "alice", f"revoke {rid}")

    assert reply.text == f"{rid} already expired at 16:02 UTC" and reply.jobs == []
    assert state(svc, rid) == "APPROVED/EXPIRED"


def test_a_record_that_keeps_changing_is_too_busy(svc):
    rid = ask(svc)
    svc.store.fail_next("transition", Conflict("lost"), times=5)
    assert revoke(svc, "alice", rid).outcome == TooBusy(rid)
    assert state(svc, rid) == "PENDING/NONE"
