"""Use case: the sweep (chalicelib/usecases/sweep.py): expiries and retries from the due
index, then reconciling IAM with the table."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.domain.timing import IAM_SETTLE
from chalicelib.usecases.sweep import SweepReport
from tests.service.helpers import (SECURITY, actions, approve, approved, ask, card, dm_types, granted, security, slash,
                                   state)

AT_1420 = datetime(2026, 11, 12, 14, 20, tzinfo=timezone.utc)  # well after the grants below were made
AT_1430 = datetime(2026, 11, 12, 14, 30, tzinfo=timezone.utc)  # a quarter hour: the same rotation as any minute


def test_a_pending_request_expires_when_its_window_closes(svc):
    rid = ask(svc)
    svc.clock.set(svc.store.get(rid).pending_until - timedelta(seconds=1))
    assert svc.sweep() == SweepReport(looked_at=1, reminded=1)  # escalated (usecases/remind.py): still waiting
    assert state(svc, rid) == "PENDING/NONE"

    svc.clock.advance(seconds=1)
    report = svc.sweep()

    assert (report.looked_at, report.expired_requests) == (1, 1)
    assert state(svc, rid) == "EXPIRED/NONE"
    assert actions(svc, rid)[-1] == ("drawbridge", "expired", "PENDING/NONE", "EXPIRED/NONE")
    assert svc.store.history(rid)[-1].reason == "not approved within 1h"
    msg = card(svc, rid)
    assert (msg.event_type, msg.payload, msg.has_buttons) == ("access_expired", {"request_id": rid}, False)
    assert dm_types(svc) == ["approval_escalated", "access_expired"]
    assert svc.sweep() == SweepReport() and dm_types(svc) == ["approval_escalated", "access_expired"]


def test_a_grant_ends_at_its_expiry(svc):
    rid = granted(svc)
    expires = svc.store.get(rid).expires_at
    svc.clock.set(expires - timedelta(seconds=1))
    assert svc.sweep().looked_at == 0 and state(svc, rid) == "APPROVED/ACTIVE"

    svc.clock.set(expires)
    report = svc.sweep()

    assert (report.looked_at, report.expired_grants, report.drift) == (1, 1, 0)
    assert state(svc, rid) == "APPROVED/EXPIRED" and svc.grants.policies == {}
    assert card(svc, rid).event_type == "access_expired"
    assert dm_types(svc) == ["access_approved", "access_granted", "access_expired"]
    assert svc.store.open_for("alice") == []


def test_a_grant_a_worker_dropped_is_made_by_the_sweep(svc):
    rid = approved(svc)  # final approval at 14:02:15, its Grant job lost
    decided = svc.store.get(rid).decided_at
    svc.clock.set(decided + timedelta(minutes=2) - timedelta(seconds=1))
    assert svc.sweep().looked_at == 0 and state(svc, rid) == "APPROVED/GRANTING"

    svc.clock.set(decided + timedelta(minutes=2))
    report = svc.sweep()

    assert report.retried == 1 and state(svc, rid) == "APPROVED/ACTIVE"
    assert svc.grants.holders(rid) == ["alice"] and dm_types(svc) == ["access_approved", "access_granted"]


def test_a_revoke_a_worker_dropped_is_finished_by_the_sweep(svc):
    rid = granted(svc)
    svc.clock.advance(minutes=5)
    slash(svc, "alice", f"revoke {rid}")  # its EndGrant job lost
    asked = svc.clock()
    svc.clock.set(asked + timedelta(seconds=59))
    svc.sweep()
    assert state(svc, rid) == "APPROVED/REVOKING" and svc.grants.holders(rid) == ["alice"]

    svc.clock.set(asked + timedelta(minutes=1))
    report = svc.sweep()

    assert report.retried == 1 and state(svc, rid) == "APPROVED/REVOKED" and svc.grants.policies == {}
    assert svc.store.get(rid).ended_at == asked  # when it was asked for, not when the sweep finished it


def test_one_failing_item_does_not_stop_the_sweep(svc):
    first = granted(svc, "alice")
    second = granted(svc, "dave", "prod admin 2h other incident")
    svc.clock.set(svc.store.get(second).expires_at)
    svc.grants.fail_next("revoke", RuntimeError("ServiceUnavailable"))
    errors = []

    svc.sweep(on_error=lambda job, exc: errors.append((job, str(exc))))

    assert [e[1] for e in errors] == ["ServiceUnavailable"]
    assert state(svc, first) == "APPROVED/ACTIVE" and state(svc, second) == "APPROVED/EXPIRED"
    svc.sweep()
    assert state(svc, first) == "APPROVED/EXPIRED" and svc.grants.policies == {}


def test_without_an_error_handler_the_first_failure_is_raised(svc):
    rid = granted(svc)
    svc.clock.set(svc.store.get(rid).expires_at)
    svc.grants.fail_next("revoke", RuntimeError("ServiceUnavailable"))
    with pytest.raises(RuntimeError, match="ServiceUnavailable"):
        svc.sweep()
    assert state(svc, rid) == "APPROVED/ACTIVE"


# --------------------------------------------------------------------------- reconcile


def test_a_policy_without_a_live_grant_is_removed_and_reported(svc):
    svc.clock.set(AT_1420)
    restored = svc.grants.create_policy("drawbridge-req-20261101-aaaaaa", "/drawbridge/", attach_to=["dave"])
    foreign = svc.grants.create_policy("team-readonly", "/", attach_to=["dave"])
    lookalike = svc.grants.create_policy("other-thing", "/drawbridge/", attach_to=["dave"])
    other_stage = svc.grants.create_policy("drawbridge-req-20261101-bbbbbb", "/drawbridge/staging/",
                                           attach_to=["dave"])

    report = svc.sweep()

    assert report.drift == 1
    assert restored not in svc.grants.policies
    assert svc.grants.attached("dave") == [foreign, lookalike, other_stage]  # never ours to touch
    (notice,) = security(svc)
    assert (notice.channel, notice.event_type) == (SECURITY, "grant_drift")
    assert notice.payload == {"request_id": "req-20261101-aaaaaa", "policy_arn": restored, "users": ["dave"],
                              "state": "no record", "action": "removed"}
    assert "drawbridge-req-20261101-aaaaaa" in notice.text
    assert svc.sweep().drift == 0


def test_an_ended_grants_policy_restored_by_hand_is_removed(svc):
    rid = granted(svc)
    svc.run_all(slash(svc, "alice", f"revoke {rid}").jobs)
    svc.grants.create_policy(f"drawbridge-{rid}", "/drawbridge/", attach_to=["alice"])
    svc.clock.set(AT_1420)

    assert svc.sweep().drift == 1

    assert svc.grants.policies == {} and state(svc, rid) == "APPROVED/REVOKED"
    (notice,) = security(svc)
    assert (notice.payload["state"], notice.payload["action"]) == ("record REVOKED", "removed")


def test_a_grant_copied_to_someone_else_is_taken_back_from_them_only(svc):
    rid = granted(svc)
    svc.clock.set(AT_1420)
    svc.grants.attach(rid, "dave")

    report = svc.sweep()

    assert report.drift == 1
    assert svc.grants.holders(rid) == ["alice"] and state(svc, rid) == "APPROVED/ACTIVE"
    (notice,) = security(svc)
    assert notice.payload == {"request_id": rid, "policy_arn": svc.grants.arn(rid), "users": ["alice", "dave"],
                              "state": "record ACTIVE", "action": "detached"}
    assert notice.text.endswith("was also attached to dave; detached from them.")


def test_a_grant_moved_to_another_single_user_is_caught_by_the_rotation(svc):
    """Its attachment count still reads 1: only asking who holds it tells. Each run asks
    that of a slice of the live grants (the rotation); the only live grant is in every
    slice. (With many grants, within the hour: tests/service/test_sweep_rotation.py.)"""
    rid = granted(svc)
    svc.grants.detach(rid, "alice")
    svc.grants.attach(rid, "dave")

    svc.clock.set(AT_1420)
    assert svc.reconcile(deep=False) == []  # the count (1) looks right: without asking who, nothing is seen
    assert svc.grants.holders(rid) == ["dave"]

    report = svc.sweep()

    assert (report.drift, report.verified) == (2, 1)  # taken from dave, and alice's grant is gone: FAILED
    assert svc.grants.policies == {}
    assert state(svc, rid) == "APPROVED/FAILED"
    assert [m.event_type for m in security(svc)] == ["grant_drift", "grant_failed"]


def test_a_grant_whose_policy_vanished_fails_once_iam_has_settled(svc):
    rid = granted(svc)  # granted at 14:02:15
    granted_at = svc.store.get(rid).granted_at
    svc.grants.delete(rid)

    svc.clock.set(granted_at + IAM_SETTLE - timedelta(seconds=1))
    assert svc.sweep().drift == 0 and state(svc, rid) == "APPROVED/ACTIVE"  # a fresh grant may not be listed yet

    svc.clock.set(granted_at + IAM_SETTLE)
    report = svc.sweep()

    assert report.drift == 1
    req = svc.store.get(rid)
    why = "the grant's IAM policy vanished (removed outside Drawbridge)"
    assert (req.grant_status.value, req.note) == ("FAILED", why)
    assert actions(svc, rid)[-2:] == [("drawbridge", "grant_failed", "APPROVED/ACTIVE", "APPROVED/FAILED"),
                                      ("drawbridge", "sessions_cut", "APPROVED/FAILED", "APPROVED/FAILED")]
    assert card(svc, rid).payload == {"request_id": rid, "revoked_by": None, "reason": why}
    assert dm_types(svc) == ["access_approved", "access_granted", "access_revoked"]
    (notice,) = security(svc)
    assert notice.payload == {"request_id": rid, "reason": why}
    assert svc.sweep().drift == 0


def test_a_policy_gone_after_expiry_is_not_vanished(svc):
    rid = granted(svc)
    svc.clock.set(svc.store.get(rid).expires_at)
    svc.grants.delete(rid)  # an earlier end_grant removed it from IAM, then crashed before recording

    assert svc.reconcile() == []
    svc.sweep()
    assert state(svc, rid) == "APPROVED/EXPIRED" and security(svc) == []


@pytest.mark.parametrize("in_flight", ["granting", "revoking"])
def test_grants_in_flight_are_left_to_their_jobs(svc, in_flight):
    if in_flight == "granting":
        rid = approved(svc)
        svc.grants.grant(principal=svc.store.get(rid).principal, request_id=rid, document={}, description="",
                         tags={})  # IAM has it; the worker has not recorded it yet
        svc.grants.attach(rid, "dave")
    else:
        rid = granted(svc)
        svc.grants.attach(rid, "dave")
        slash(svc, "alice", f"revoke {rid}")
    svc.clock.set(AT_1430)

    assert svc.reconcile() == []
    assert svc.grants.holders(rid) == ["alice", "dave"] and security(svc) == []


@pytest.mark.parametrize("when", [AT_1420, AT_1430])
def test_a_consistent_world_reports_nothing(svc, when):
    granted(svc, "alice")
    granted(svc, "bob", "dev admin 1d", approvers=("carol",))
    ask(svc, "dave", "prod admin 1h pending")
    svc.clock.set(when)
    svc.sweep()  # the pending request's approvers are reminded (usecases/remind.py): nothing else
    assert svc.sweep() == SweepReport()
    assert security(svc) == []


@pytest.mark.parametrize("hook", [
    pytest.param(("grants", "drawbridge_policies"), id="lands-while-IAM-is-listed"),
    pytest.param(("store", "live"), id="lands-between-the-listing-and-the-table-read"),
])
def test_an_approval_landing_during_reconcile_keeps_its_grant(svc, hook):
    """The sweep's reconcile must never take away a grant that is being made: an approval
    (and its grant) that lands while the sweep looks at IAM and the table - e.g. behind a
    slow ListPolicies - keeps its policy, and nothing is reported as drift. (Before the
    fix, the table was read first: a PENDING snapshot plus a fresh policy was a "stray".)"""
    from chalicelib.usecases.dispatch import run_all
    from chalicelib.usecases.sweep import reconcile

    rid = ask(svc)
    approve(svc, "bob", rid)
    svc.clock.set(AT_1430)  # the only live grant is in the rotation's slice: its holders are asked for

    def has_policy() -> bool:
        return any(arn.endswith(rid) for arn in svc.grants.policies)

    def carol_approves_and_the_grant_is_made():
        approve(svc, "carol", rid)
        assert state(svc, rid) == "APPROVED/ACTIVE" and has_policy()

    port, method = hook
    getattr(svc, port).before_next(method, carol_approves_and_the_grant_is_made)
    report = SweepReport()
    run_all(svc, reconcile(svc, report))

    assert getattr(svc, port).pending_faults() == {}  # the approval did land mid-reconcile
    assert report.drift == 0 and security(svc) == []
    assert state(svc, rid) == "APPROVED/ACTIVE" and has_policy()


def test_a_grant_failure_during_a_slack_outage_is_told_when_slack_is_back(svc):
    """IAM fails until the grant is given up while Slack is down too: the card, the DM and
    #security are owed (recorded with the failure), `list` shows what is still owed, and the
    sweep delivers each exactly once when Slack answers again."""
    from chalicelib.domain.errors import GrantLimitReached

    rid = approved(svc)  # GRANTING; its Grant job not run yet
    svc.grants.fail_next("grant", GrantLimitReached("alice already has 10 managed policies"))
    for method in ("post", "update", "dm"):
        svc.slack.fail_next(method, ConnectionError("slack down"), times=50)
    from chalicelib.usecases import jobs
    svc.run_all([jobs.Grant(rid)], on_error=lambda job, exc: None)
    assert state(svc, rid) == "APPROVED/FAILED"
    assert sorted(o.key for o in svc.store.owed) == ["card", "dm:access_revoked", "security:grant_failed"]
    assert "Still to be delivered" in slash(svc, "alice", "list").text

    svc.clock.advance(minutes=2)
    outage = svc.sweep()
    assert outage.undelivered == 3 and outage.errors >= 3 and len(svc.store.owed) == 3

    svc.slack.clear_faults()  # Slack is back
    svc.clock.advance(minutes=10)
    back = svc.sweep()
    assert back.delivered == 3 and svc.store.owed == []
    assert [m.payload["request_id"] for m in security(svc)] == [rid]
    assert dm_types(svc).count("access_revoked") == 1
    assert card(svc, rid).event_type == "access_revoked"
    svc.clock.advance(minutes=10)
    assert svc.sweep().delivered == 0 and len(security(svc)) == 1  # nothing twice


def test_a_drift_notice_found_during_a_slack_outage_is_delivered_later(svc):
    """The policy is removed at once; the notice about it is owed before IAM changes, so a
    Slack outage delays it but never loses it (no later sweep could find the drift again)."""
    svc.clock.set(AT_1420)
    restored = svc.grants.create_policy("drawbridge-req-20261101-aaaaaa", "/drawbridge/", attach_to=["dave"])
    svc.slack.fail_next("post", ConnectionError("slack down"), times=5)

    first = svc.sweep(on_error=lambda job, exc: None)  # as the Lambda handler runs it: errors logged
    assert first.drift == 1 and first.errors == 1 and restored not in svc.grants.policies
    assert security(svc) == []

    svc.slack.clear_faults()
    svc.clock.advance(minutes=5)
    later = svc.sweep()
    assert later.drift == 0 and later.delivered == 1
    (notice,) = security(svc)
    assert notice.payload["action"] == "removed" and svc.store.owed == []
