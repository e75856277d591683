"""chalicelib.domain.decide: every approval / denial / revocation rule, from tables.

Each row names the situation (pytest id), builds a Request with ``make_request``
and a role stand-in, and pins the exact Decision (outcome and reason text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.domain.decide import (
    Decision,
    Outcome,
    decide_approval,
    decide_request,
    decide_deny,
    decide_revoke,
    describe_outcome,
)
from chalicelib.domain.model import Approval, GrantStatus, Principal, Request, RequestStatus

RID = "req-20261112-0a11ce"
T0 = datetime(2026, 11, 12, 14, 0, tzinfo=timezone.utc)  # request created
NOW = T0 + timedelta(minutes=5)  # a click while the request is still open
DECIDED = T0 + timedelta(minutes=2)  # 14:02 UTC
ENDED = T0 + timedelta(minutes=45)  # 14:45 UTC


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def make_request(**fields) -> Request:
    """A pending prod/admin request by alice needing 2 approvals; override any field."""
    base = dict(
        request_id=RID,
        requester="alice",
        requester_slack="U0ALICE001",
        principal=Principal.iam_user("alice"),
        account="prod",
        account_id="222222222222",
        role="admin",
        role_arn="arn:aws:iam::222222222222:role/admin",
        production=True,
        duration_seconds=7200,
        reason="fix incident 4521",
        approvals_required=2,
        created_at=T0,
        pending_until=T0 + timedelta(hours=1),
        status=RequestStatus.PENDING,
        grant_status=GrantStatus.NONE,
        approvals=(),
        decided_by=None,
        decided_at=None,
        expires_at=None,
        granted_at=None,
        ended_at=None,
        ended_by=None,
        policy_arn=None,
        grant_attempts=0,
        note=None,
        version=1,
    )
    base.update(fields)
    return Request(**base)


def approvals(*people: str) -> tuple[Approval, ...]:
    return tuple(Approval(person=p, at=at(1 + i)) for i, p in enumerate(people))


@dataclass(frozen=True)
class Role:
    """Stand-in for catalog.Role: only what the rules read."""

    approvers: tuple[str, ...] = ("bob", "carol")
    approvals_required: int = 2
    self_approval: bool = False
    requesters: tuple[str, ...] = ("alice", "bob", "carol", "dave")


ROLE = Role()
ROLE_1 = Role(approvals_required=1)

# -- finished requests, as the service records them -------------------------------
APPROVED_BY = dict(status=RequestStatus.APPROVED, approvals=approvals("bob", "carol"),
                   decided_by="carol", decided_at=DECIDED, expires_at=DECIDED + timedelta(hours=2))
GRANTING = make_request(**APPROVED_BY, grant_status=GrantStatus.GRANTING)
ACTIVE = make_request(**APPROVED_BY, grant_status=GrantStatus.ACTIVE, granted_at=DECIDED,
                      policy_arn="arn:aws:iam::111111111111:policy/drawbridge/drawbridge-" + RID)
REVOKING = ACTIVE.change(grant_status=GrantStatus.REVOKING, ended_by="carol", ended_at=ENDED)
REVOKED = REVOKING.change(grant_status=GrantStatus.REVOKED)
GRANT_EXPIRED = ACTIVE.change(grant_status=GrantStatus.EXPIRED, ended_by="drawbridge",
                              ended_at=DECIDED + timedelta(hours=2, seconds=30))
FAILED = GRANTING.change(grant_status=GrantStatus.FAILED, ended_by="drawbridge", ended_at=at(4),
                         note="LimitExceeded: too many policies attached to alice")
FAILED_NO_NOTE = FAILED.change(note=None)
DENIED = make_request(status=RequestStatus.DENIED, approvals=approvals("carol"),
                      decided_by="bob", decided_at=DECIDED)
CANCELLED = make_request(status=RequestStatus.CANCELLED, decided_by="alice", decided_at=DECIDED)
REQ_EXPIRED = make_request(status=RequestStatus.EXPIRED, approvals=approvals("bob"),
                           decided_by="drawbridge", decided_at=at(60))

#: every request that is no longer pending, with the text describe_outcome gives for it
FINISHED = [
    pytest.param(GRANTING, f"{RID} was already approved by @bob, @carol at 14:02 UTC", id="approved-granting"),
    pytest.param(ACTIVE, f"{RID} was already approved by @bob, @carol at 14:02 UTC", id="approved-active"),
    pytest.param(DENIED, f"{RID} was already denied by @bob at 14:02 UTC", id="denied"),
    pytest.param(CANCELLED, f"{RID} was already cancelled by @alice at 14:02 UTC", id="cancelled"),
    pytest.param(REQ_EXPIRED, f"{RID} expired at 15:00 UTC without enough approvals", id="request-expired"),
    pytest.param(REVOKING, f"{RID} is already being revoked (by @carol)", id="revoking"),
    pytest.param(REVOKED, f"{RID} was already revoked by @carol at 14:45 UTC", id="revoked"),
    pytest.param(GRANT_EXPIRED, f"{RID} already expired at 16:02 UTC", id="grant-expired"),
    pytest.param(FAILED, f"{RID} was approved but the grant failed "
                         "(LimitExceeded: too many policies attached to alice)", id="grant-failed"),
    pytest.param(FAILED_NO_NOTE, f"{RID} was approved but the grant failed (see the card)",
                 id="grant-failed-no-note"),
]


# ==== describe_outcome ===============================================================
@pytest.mark.parametrize(("req", "text"), [
    *FINISHED,
    pytest.param(make_request(), f"{RID} is pending", id="still-pending"),
    pytest.param(GRANT_EXPIRED.change(ended_at=None), f"{RID} already expired at 16:02 UTC",
                 id="grant-expired-without-ended_at-uses-expires_at"),
    pytest.param(REQ_EXPIRED.change(decided_at=None),
                 f"{RID} expired at ? without enough approvals", id="request-expired-no-time"),
    pytest.param(make_request(status=RequestStatus.APPROVED, grant_status=GrantStatus.ACTIVE,
                              decided_at=DECIDED),
                 f"{RID} was already approved by nobody at 14:02 UTC", id="approved-without-approvals"),
])
def test_describe_outcome(req, text):
    assert describe_outcome(req) == text


def test_grant_expired_reports_the_iam_expiry_not_the_clean_up_time():
    late_sweep = ACTIVE.change(grant_status=GrantStatus.EXPIRED, ended_by="drawbridge",
                               ended_at=DECIDED + timedelta(hours=2, minutes=7))
    assert describe_outcome(late_sweep) == f"{RID} already expired at 16:02 UTC"


def test_describe_outcome_reports_times_in_utc_whatever_zone_they_came_in():
    cet = timezone(timedelta(hours=1))
    req = DENIED.change(decided_at=datetime(2026, 11, 12, 15, 2, tzinfo=cet))
    assert describe_outcome(req) == f"{RID} was already denied by @bob at 14:02 UTC"


# ==== decide_approval ================================================================
NOT_APPROVER = "you are not an approver of prod/admin; approvers: @bob, @carol"


@pytest.mark.parametrize(("req", "role", "clicker", "now", "expected"), [
    # who may click
    pytest.param(make_request(), ROLE, None, NOW, Decision(
        Outcome.REFUSED, "you are not in the Drawbridge catalog, so you cannot approve requests"),
        id="clicker-not-in-catalog"),
    pytest.param(make_request(), ROLE, "dave", NOW, Decision(Outcome.REFUSED, NOT_APPROVER),
                 id="not-an-approver"),
    pytest.param(make_request(), Role(approvers=()), "bob", NOW, Decision(
        Outcome.REFUSED, "you are not an approver of prod/admin; approvers: nobody"),
        id="role-without-approvers"),
    pytest.param(make_request(), ROLE, "alice", NOW, Decision(Outcome.REFUSED, NOT_APPROVER),
                 id="requester-not-an-approver"),
    # self-approval
    pytest.param(make_request(), Role(approvers=("alice", "bob")), "alice", NOW, Decision(
        Outcome.REFUSED, "you cannot approve your own request (prod/admin does not allow self-approval)"),
        id="self-approval-refused"),
    pytest.param(make_request(), Role(approvers=("alice", "bob"), self_approval=True), "alice", NOW,
                 Decision(Outcome.COUNTED, "approval 1 of 2"), id="self-approval-allowed-counts"),
    pytest.param(make_request(approvals_required=1), Role(approvers=("alice",), approvals_required=1,
                                                          self_approval=True), "alice", NOW,
                 Decision(Outcome.APPROVED, "final approval (1 of 1)"), id="self-approval-allowed-final"),
    # double click
    pytest.param(make_request(approvals=approvals("bob")), ROLE, "bob", NOW, Decision(
        Outcome.REFUSED, f"you already approved {RID} (1 of 2 approvals)"), id="already-approved-by-you"),
    # counting
    pytest.param(make_request(approvals_required=1), ROLE_1, "bob", NOW,
                 Decision(Outcome.APPROVED, "final approval (1 of 1)"), id="1-of-1-final"),
    pytest.param(make_request(), ROLE, "bob", NOW,
                 Decision(Outcome.COUNTED, "approval 1 of 2"), id="1-of-2-counted"),
    pytest.param(make_request(approvals=approvals("bob")), ROLE, "carol", NOW,
                 Decision(Outcome.APPROVED, "final approval (2 of 2)"), id="2-of-2-final"),
    pytest.param(make_request(approvals_required=3), Role(approvers=("bob", "carol", "dave"),
                                                          approvals_required=3), "dave", NOW,
                 Decision(Outcome.COUNTED, "approval 1 of 3"), id="1-of-3-counted"),
    # A catalog change never loosens a pending request:
    pytest.param(make_request(approvals_required=1), ROLE, "bob", NOW,
                 Decision(Outcome.COUNTED, "approval 1 of 2"),
                 id="catalog-raised-requirement-applies-to-pending"),
    pytest.param(make_request(approvals=(Approval(person="dave", at=NOW),)), ROLE, "bob", NOW,
                 Decision(Outcome.COUNTED, "approval 1 of 2"),
                 id="approval-by-someone-no-longer-an-approver-does-not-count"),
    pytest.param(make_request(), Role(requesters=("dave",)), "bob", NOW,
                 Decision(Outcome.REFUSED, "@alice may no longer request prod/admin (the catalog changed); "
                                           "deny req-20261112-0a11ce instead"),
                 id="requester-no-longer-allowed"),
    # the pending window
    pytest.param(make_request(), ROLE, "bob", T0 + timedelta(minutes=59, seconds=59),
                 Decision(Outcome.COUNTED, "approval 1 of 2"), id="one-second-before-pending_until"),
    pytest.param(make_request(), ROLE, "bob", T0 + timedelta(hours=1), Decision(
        Outcome.REFUSED, f"{RID} expired at 15:00 UTC without enough approvals"), id="at-pending_until"),
    pytest.param(make_request(approvals=approvals("bob")), ROLE, "carol", T0 + timedelta(hours=3),
                 Decision(Outcome.REFUSED, f"{RID} expired at 15:00 UTC without enough approvals"),
                 id="past-pending_until"),
    # role gone from the catalog
    pytest.param(make_request(), None, "bob", NOW, Decision(
        Outcome.REFUSED, f"prod/admin is no longer in the catalog; nobody can approve {RID}"),
        id="role-removed"),
    # a finished request is described even to someone who could not have approved it
    pytest.param(ACTIVE, ROLE, "dave", NOW, Decision(
        Outcome.REFUSED, f"{RID} was already approved by @bob, @carol at 14:02 UTC"),
        id="finished-wins-over-not-approver"),
    pytest.param(DENIED, None, "bob", NOW, Decision(
        Outcome.REFUSED, f"{RID} was already denied by @bob at 14:02 UTC"), id="finished-wins-over-role-removed"),
])
def test_decide_approval(req, role, clicker, now, expected):
    got = decide_approval(req, role, clicker, now)
    assert (got.outcome, got.reason) == (expected.outcome, expected.reason)
    # an approval that counts carries the rule's own count (what the requester's DM says)
    counted = re.search(r"approval \(?(\d+) of (\d+)\)?$", got.reason) if got.allowed else None
    assert (got.count, got.required) == ((int(counted[1]), int(counted[2])) if counted else (0, 0))


@pytest.mark.parametrize(("req", "text"), FINISHED)
def test_approving_a_finished_request_is_refused_with_its_outcome(req, text):
    assert decide_approval(req, ROLE, "bob", NOW) == Decision(Outcome.REFUSED, text)


@pytest.mark.parametrize(("req", "text"), FINISHED)
def test_denying_a_finished_request_is_refused_with_its_outcome(req, text):
    assert decide_deny(req, ROLE, "bob", NOW) == Decision(Outcome.REFUSED, text)


def test_allowed_is_false_only_for_refusals():
    assert [o for o in Outcome if Decision(o, "").allowed] == [
        Outcome.COUNTED, Outcome.APPROVED, Outcome.DENIED, Outcome.CANCEL, Outcome.REVOKE,
        Outcome.REVIEWED]


# ==== decide_deny ====================================================================
@pytest.mark.parametrize(("req", "role", "clicker", "now", "expected"), [
    pytest.param(make_request(), ROLE, None, NOW, Decision(
        Outcome.REFUSED, "you are not in the Drawbridge catalog, so you cannot deny requests"),
        id="clicker-not-in-catalog"),
    pytest.param(make_request(), ROLE, "dave", NOW, Decision(Outcome.REFUSED, NOT_APPROVER),
                 id="not-an-approver"),
    pytest.param(make_request(), ROLE, "alice", NOW, Decision(Outcome.REFUSED, NOT_APPROVER),
                 id="requester-not-an-approver"),
    pytest.param(make_request(), ROLE, "bob", NOW, Decision(Outcome.DENIED, "denied by @bob"),
                 id="approver-denies"),
    pytest.param(make_request(approvals=approvals("bob")), ROLE, "carol", NOW,
                 Decision(Outcome.DENIED, "denied by @carol"), id="deny-after-one-approval"),
    pytest.param(make_request(approvals=approvals("bob")), ROLE, "bob", NOW,
                 Decision(Outcome.DENIED, "denied by @bob"), id="approver-changes-their-mind"),
    pytest.param(make_request(), Role(approvers=("alice", "bob")), "alice", NOW,
                 Decision(Outcome.DENIED, "denied by @alice"), id="requester-who-is-approver-may-deny"),
    pytest.param(make_request(), None, "bob", NOW, Decision(
        Outcome.REFUSED, "you are not an approver of prod/admin; approvers: nobody"), id="role-removed"),
    pytest.param(make_request(), ROLE, "bob", T0 + timedelta(hours=1), Decision(
        Outcome.REFUSED, f"{RID} expired at 15:00 UTC without enough approvals"), id="at-pending_until"),
    pytest.param(CANCELLED, ROLE, "dave", NOW, Decision(
        Outcome.REFUSED, f"{RID} was already cancelled by @alice at 14:02 UTC"),
        id="finished-wins-over-not-approver"),
])
def test_decide_deny(req, role, clicker, now, expected):
    assert decide_deny(req, role, clicker, now) == expected


# ==== decide_revoke ==================================================================
ONLY = f"only the requester (@alice) or an approver of prod/admin can revoke {RID}"


@pytest.mark.parametrize(("req", "role", "actor", "expected"), [
    # who may revoke
    pytest.param(ACTIVE, ROLE, None, Decision(Outcome.REFUSED, "you are not in the Drawbridge catalog"),
                 id="actor-not-in-catalog"),
    pytest.param(ACTIVE, ROLE, "dave", Decision(Outcome.REFUSED, ONLY), id="bystander-active"),
    pytest.param(make_request(), ROLE, "dave", Decision(Outcome.REFUSED, ONLY), id="bystander-pending"),
    pytest.param(DENIED, ROLE, "dave", Decision(Outcome.REFUSED, ONLY), id="bystander-finished"),
    pytest.param(ACTIVE, None, "bob", Decision(Outcome.REFUSED, ONLY), id="role-removed-approver-refused"),
    pytest.param(ACTIVE, None, "alice", Decision(Outcome.REVOKE, "revoked by @alice"),
                 id="role-removed-requester-allowed"),
    # pending -> cancel
    pytest.param(make_request(), ROLE, "alice", Decision(Outcome.CANCEL, "cancelled by @alice"),
                 id="requester-cancels-pending"),
    pytest.param(make_request(approvals=approvals("bob")), ROLE, "carol",
                 Decision(Outcome.CANCEL, "cancelled by @carol"), id="approver-cancels-pending"),
    # active -> revoke
    pytest.param(ACTIVE, ROLE, "alice", Decision(Outcome.REVOKE, "revoked by @alice"),
                 id="requester-revokes-active"),
    pytest.param(ACTIVE, ROLE, "bob", Decision(Outcome.REVOKE, "revoked by @bob"),
                 id="approver-revokes-active"),
    pytest.param(ACTIVE, Role(approvers=("dave",)), "dave", Decision(Outcome.REVOKE, "revoked by @dave"),
                 id="current-approver-who-did-not-approve"),
    # granting -> try later
    pytest.param(GRANTING, ROLE, "alice", Decision(
        Outcome.REFUSED, f"{RID} is being granted right now; try again in a moment"), id="granting"),
    # terminal -> describe
    pytest.param(REVOKING, ROLE, "alice", Decision(
        Outcome.REFUSED, f"{RID} is already being revoked (by @carol)"), id="revoking"),
    pytest.param(REVOKED, ROLE, "alice", Decision(
        Outcome.REFUSED, f"{RID} was already revoked by @carol at 14:45 UTC"), id="revoked"),
    pytest.param(GRANT_EXPIRED, ROLE, "bob", Decision(
        Outcome.REFUSED, f"{RID} already expired at 16:02 UTC"), id="grant-expired"),
    pytest.param(FAILED, ROLE, "alice", Decision(
        Outcome.REFUSED, f"{RID} was approved but the grant failed "
                         "(LimitExceeded: too many policies attached to alice)"), id="grant-failed"),
    pytest.param(DENIED, ROLE, "alice", Decision(
        Outcome.REFUSED, f"{RID} was already denied by @bob at 14:02 UTC"), id="denied"),
    pytest.param(CANCELLED, ROLE, "alice", Decision(
        Outcome.REFUSED, f"{RID} was already cancelled by @alice at 14:02 UTC"), id="cancelled"),
    pytest.param(REQ_EXPIRED, ROLE, "alice", Decision(
        Outcome.REFUSED, f"{RID} expired at 15:00 UTC without enough approvals"), id="request-expired"),
])
def test_decide_revoke(req, role, actor, expected):
    assert decide_revoke(req, role, actor, NOW) == expected


def test_decisions_do_not_change_the_request():
    req = make_request(approvals=approvals("bob"))
    before = req.to_json()
    for decide in (decide_approval, decide_deny, decide_revoke):
        decide(req, ROLE, "carol", NOW)
    assert req.to_json() == before


# ==== decide_request: may this person ask for this role, now? ===========================
@dataclass(frozen=True)
class RequestableRole(Role):
    """Stand-in for catalog.Role with what the request rules read."""

    label: str = "prod/admin"
    role_arn: str = "arn:aws:iam::222222222222:role/admin"
    production: bool = True
    max_duration_seconds: int = 4 * 3600
    reason_required: bool = True


PROD_ADMIN = RequestableRole(requesters=("alice", "dave"))
DEV_ADMIN = RequestableRole(label="dev/admin", role_arn="arn:aws:iam::333333333333:role/admin", production=False,
                            reason_required=False, approvals_required=1, self_approval=True,
                            max_duration_seconds=86400)
ONE_APPROVER = RequestableRole(label="prod/readonly", role_arn="arn:aws:iam::222222222222:role/readonly",
                               approvers=("bob",), approvals_required=1)
OTHER_ROLES = [make_request(request_id=f"req-20261112-00000{i}", role_arn=f"arn:aws:iam::222222222222:role/r{i}")
               for i in range(10)]
SAME_PENDING = [make_request()]
SAME_ACTIVE = [ACTIVE]


@pytest.mark.parametrize("person, role, duration, reason, holding, allowed, expected", [
    pytest.param("alice", PROD_ADMIN, "2h", "incident 4521", [], True, "", id="allowed"),
    pytest.param("bob", DEV_ADMIN, "1d", "", [], True, "", id="allowed-no-reason-needed"),
    pytest.param("carol", PROD_ADMIN, "2h", "x", [], False,
                 "you may not request `prod/admin`; see `/aws-access help` for what you may request",
                 id="not-a-requester"),
    pytest.param("bob", ONE_APPROVER, "1h", "x", [], False,
                 "prod/readonly needs 1 approval and you are its only approver, so nobody can approve your "
                 "request; ask an admin to add another approver or set self_approval = true for prod/readonly "
                 "in the access catalog", id="nobody-could-approve"),
    pytest.param("alice", PROD_ADMIN, "2x", "x", [], False,
                 "'2x' is not a duration; use e.g. 30m, 2h, 1h30m or 1d", id="bad-duration"),
    pytest.param("alice", PROD_ADMIN, "5h", "x", [], False, "prod/admin allows at most 4h", id="over-the-cap"),
    pytest.param("alice", PROD_ADMIN, "400d", "x", [], False, "prod/admin allows at most 4h",
                 id="absurd-duration-names-the-cap"),
    pytest.param("alice", PROD_ADMIN, "2h", "  ", [], False,
                 "production requests need a reason: `/aws-access prod admin 2h &lt;reason&gt;`",
                 id="reason-required"),
    pytest.param("alice", PROD_ADMIN, "2h", "x", SAME_PENDING, False,
                 f"you already have `{RID}` for `prod/admin` (pending); revoke it first with "
                 f"`/aws-access revoke {RID}`", id="already-pending"),
    pytest.param("alice", PROD_ADMIN, "2h", "x", SAME_ACTIVE, False,
                 f"you already have `{RID}` for `prod/admin` (active until 16:02 UTC); revoke it first with "
                 f"`/aws-access revoke {RID}`", id="already-active"),
    pytest.param("alice", PROD_ADMIN, "2h", "x", OTHER_ROLES, False,
                 "you already have 10 pending or active requests, the most one person may hold at once (10, "
                 "IAM's managed-policy limit per user); revoke one first", id="at-the-limit"),
    pytest.param("alice", PROD_ADMIN, "2h", "x", OTHER_ROLES[:9], True, "", id="one-below-the-limit"),
])
def test_decide_request(person, role, duration, reason, holding, allowed, expected):
    decision = decide_request(person, role, duration=duration, reason=reason, open_requests=holding,
                              max_open=10, typed=("prod", "admin"))
    assert (decision.allowed, decision.reason) == (allowed, expected)
    if allowed:
        assert decision.seconds == {"2h": 7200, "1d": 86400}[duration]


def test_decide_request_checks_in_a_fixed_order():
    """A request wrong in every way gets the first rule's reason: who may ask comes first."""
    decision = decide_request("carol", PROD_ADMIN, duration="9h", reason="", open_requests=OTHER_ROLES,
                              max_open=10)
    assert decision.reason.startswith("you may not request `prod/admin`")
