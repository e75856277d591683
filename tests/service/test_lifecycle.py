"""The state machine (chalicelib/domain/lifecycle.py) as the store sees it: every move
tried from every state. A legal move gives the target state, bumps the version by one and
adds exactly one audit event with the move's action; an illegal one raises
IllegalTransition and changes nothing.

Which moves are legal is written out again here (EXPECTED_MOVES, EXPECTED_STATES), on
purpose: a change to the state machine must be made twice, once in lifecycle.py and once
here, so it is never made by accident."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from chalicelib.domain.errors import Conflict, IllegalTransition
from chalicelib.domain.lifecycle import MOVES, STATES, GrantStatus, RequestStatus
from chalicelib.domain.model import SYSTEM, Extension, Principal, Request, event_for, state_of
from chalicelib.domain.timing import due_at
from tests.fakes import T0, InMemoryStore

AT = T0 + timedelta(minutes=3)
ARN = "arn:aws:iam::111111111111:policy/drawbridge/drawbridge-req-20261112-0a11ce"

#: how each move is made (its named method on Request); a new move must be added here
CALLS = {
    "count_approval": lambda r: r.count_approval(AT, "bob", "approval 1 of 2"),
    "remind": lambda r: r.remind(AT, AT + timedelta(minutes=20), ["bob", "carol"]),
    "escalate": lambda r: r.escalate(AT, ["dave"]),
    "approve": lambda r: r.approve(AT, "carol", "final approval (2 of 2)"),
    "deny": lambda r: r.deny(AT, "bob", "denied by @bob"),
    "cancel": lambda r: r.cancel(AT, "alice", "cancelled by @alice"),
    "expire_pending": lambda r: r.expire_pending(AT, "not approved within 1h"),
    "granted": lambda r: r.granted(AT, ARN, "arn:aws:iam::111111111111:mfa/alice"),
    "grant_attempt_failed": lambda r: r.grant_attempt_failed(AT, "Throttling: slow down"),
    "grant_failed": lambda r: r.grant_failed(AT, "limit reached"),
    "revoke": lambda r: r.revoke(AT, "alice", "revoked by @alice"),
    "revoked": lambda r: r.revoked(AT),
    "expire_grant": lambda r: r.expire_grant(AT),
    "sessions_cut": lambda r: r.sessions_cut(AT),
    "cut_attempt_failed": lambda r: r.cut_attempt_failed(AT, "CutOffsUnavailable: no revoker"),
    "cut_given_up": lambda r: r.cut_given_up(AT),
    "request_extension": lambda r: r.request_extension(AT, seconds=3600, required=1, reason="still on it"),
    "count_extension_approval": lambda r: asked(r).count_extension_approval(AT, "bob", "extension approval 1 of 2"),
    "approve_extension": lambda r: asked(r).approve_extension(AT, "carol", "final approval of the extension"),
    "deny_extension": lambda r: asked(r).deny_extension(AT, "bob", "extension denied by @bob"),
    "extended": lambda r: approved(r).extended(AT, AT + timedelta(hours=3)),
    "extension_failed": lambda r: approved(r).extension_failed(AT, "GrantMismatch: the policy is gone"),
    "review_acknowledged": lambda r: r.review_acknowledged(AT, "bob"),
    "review_flagged": lambda r: r.review_flagged(AT, "carol", "no incident that night"),
    "review_reminded": lambda r: r.review_reminded(AT, 1),
    "review_escalated": lambda r: r.review_escalated(AT),
}
ACTORS = {"count_approval": "bob", "approve": "carol", "deny": "bob", "cancel": "alice", "revoke": "alice",
          "revoked": "carol", "request_extension": "alice", "count_extension_approval": "bob",
          "approve_extension": "carol", "deny_extension": "bob", "review_acknowledged": "bob",
          "review_flagged": "carol"}  # the rest: drawbridge


def asked(r: Request) -> Request:
    """``r`` with an extension waiting for approval (as if asked before; same version)."""
    return dataclasses.replace(r, extension=Extension(n=1, seconds=3600, requested_at=AT, required=2))


def approved(r: Request) -> Request:
    return dataclasses.replace(r, extension=Extension(n=1, seconds=3600, requested_at=AT, required=1,
                                                      state=Extension.APPROVED, decided_by="bob", decided_at=AT))


def base() -> Request:
    req, _ = Request.requested(
        T0, request_id="req-20261112-0a11ce", requester="alice", requester_slack="U0ALICE001",
        principal=Principal.iam_user("alice"), account="prod", account_id="222222222222", role="admin",
        role_arn="arn:aws:iam::222222222222:role/admin", production=True, duration_seconds=7200,
        approvals_required=2, pending_until=T0 + timedelta(hours=1), reason="incident 4521")
    return req


def in_state(state: tuple[RequestStatus, GrantStatus]) -> Request:
    """A plausible record in ``state`` (the fields that state's record would have)."""
    status, grant = state
    req = base()
    fields: dict = {"status": status, "grant_status": grant, "version": 3}
    if status is not RequestStatus.PENDING:
        fields.update(decided_at=T0 + timedelta(minutes=2), decided_by="carol" if status is RequestStatus.APPROVED
                      else "bob")
    if status is RequestStatus.APPROVED:
        fields.update(expires_at=T0 + timedelta(hours=2, minutes=2), approvals=req.approvals)
    if grant in (GrantStatus.ACTIVE, GrantStatus.REVOKING, GrantStatus.REVOKED, GrantStatus.EXPIRED):
        fields.update(granted_at=T0 + timedelta(minutes=2), policy_arn=ARN)
    if grant in (GrantStatus.REVOKING, GrantStatus.REVOKED):
        fields.update(ended_at=T0 + timedelta(minutes=2, seconds=30), ended_by="carol")
    if grant in (GrantStatus.REVOKED, GrantStatus.EXPIRED, GrantStatus.FAILED):
        fields.update(cut_before=T0 + timedelta(minutes=2, seconds=31))
    return dataclasses.replace(req, **fields)


def stored(req: Request) -> InMemoryStore:
    store = InMemoryStore()
    store.create(req, event_for(None, req, at=T0, actor="alice", action="requested"))
    return store


REVIEWABLE = {"APPROVED/ACTIVE", "APPROVED/REVOKED", "APPROVED/EXPIRED", "APPROVED/FAILED"}

#: move -> (audit action, the states it leaves, the state it leads to; None: stays)
EXPECTED_MOVES = {
    "count_approval": ("approved", {"PENDING/NONE"}, None),
    "remind": ("reminded", {"PENDING/NONE"}, None),
    "escalate": ("escalated", {"PENDING/NONE"}, None),
    "approve": ("approved", {"PENDING/NONE"}, "APPROVED/GRANTING"),
    "deny": ("denied", {"PENDING/NONE"}, "DENIED/NONE"),
    "cancel": ("cancelled", {"PENDING/NONE"}, "CANCELLED/NONE"),
    "expire_pending": ("expired", {"PENDING/NONE"}, "EXPIRED/NONE"),
    "granted": ("granted", {"APPROVED/GRANTING"}, "APPROVED/ACTIVE"),
    "grant_attempt_failed": ("grant_attempt_failed", {"APPROVED/GRANTING"}, None),
    "grant_failed": ("grant_failed", {"APPROVED/GRANTING", "APPROVED/ACTIVE"}, "APPROVED/FAILED"),
    "revoke": ("revoke_requested", {"APPROVED/ACTIVE"}, "APPROVED/REVOKING"),
    "revoked": ("revoked", {"APPROVED/REVOKING"}, "APPROVED/REVOKED"),
    "expire_grant": ("expired", {"APPROVED/ACTIVE"}, "APPROVED/EXPIRED"),
    # the session cut-off after a grant ended: recorded, the state stays
    "sessions_cut": ("sessions_cut", {"APPROVED/REVOKED", "APPROVED/EXPIRED", "APPROVED/FAILED"}, None),
    "cut_attempt_failed": ("cut_attempt_failed", {"APPROVED/REVOKED", "APPROVED/EXPIRED", "APPROVED/FAILED"},
                           None),
    "cut_given_up": ("cut_given_up", {"APPROVED/REVOKED", "APPROVED/EXPIRED", "APPROVED/FAILED"}, None),
    # extensions of an active grant: recorded, the state stays
    "request_extension": ("extension_requested", {"APPROVED/ACTIVE"}, None),
    "count_extension_approval": ("extension_approved", {"APPROVED/ACTIVE"}, None),
    "approve_extension": ("extension_approved", {"APPROVED/ACTIVE"}, None),
    "deny_extension": ("extension_denied", {"APPROVED/ACTIVE"}, None),
    "extended": ("extended", {"APPROVED/ACTIVE"}, None),
    "extension_failed": ("extension_failed", {"APPROVED/ACTIVE"}, None),
    # the review of a break-glass grant: from every state a grant can be in once made
    "review_acknowledged": ("review_acknowledged", REVIEWABLE, None),
    "review_flagged": ("review_flagged", REVIEWABLE, None),
    "review_reminded": ("review_reminded", REVIEWABLE, None),
    "review_escalated": ("review_escalated", REVIEWABLE, None),
}
#: state -> (label, the card's metadata event type (docs/REFERENCE.md), open)
EXPECTED_STATES = {
    "PENDING/NONE": ("pending", "access_requested", True),
    "APPROVED/GRANTING": ("granting", "access_approved", True),
    "APPROVED/ACTIVE": ("active", "access_granted", True),
    "APPROVED/REVOKING": ("revoking", "access_revoked", True),
    "APPROVED/REVOKED": ("revoked", "access_revoked", False),
    "APPROVED/EXPIRED": ("expired", "access_expired", False),
    "APPROVED/FAILED": ("failed", "access_revoked", False),
    "DENIED/NONE": ("denied", "access_denied", False),
    "CANCELLED/NONE": ("cancelled", "access_revoked", False),
    "EXPIRED/NONE": ("expired", "access_expired", False),
}


def name(state) -> str:
    return f"{state[0].value}/{state[1].value}"


CASES = [(m, s) for m in EXPECTED_MOVES for s in STATES]


def test_the_tables_are_the_expected_ones():
    assert set(CALLS) == set(MOVES) == set(EXPECTED_MOVES)
    assert {m: (r.action, {name(s) for s in r.sources}, r.target and name(r.target))
            for m, r in MOVES.items()} == EXPECTED_MOVES
    assert {name(s): (i.label, i.event_type, i.open) for s, i in STATES.items()} == EXPECTED_STATES


@pytest.mark.parametrize("move,state", CASES, ids=[f"{m}-from-{s[0].value}/{s[1].value}" for m, s in CASES])
def test_every_move_from_every_state(move, state):
    before = in_state(state)
    store = stored(before)
    action, sources, target = EXPECTED_MOVES[move]
    if name(state) not in sources:
        with pytest.raises(IllegalTransition, match=f"'{move}' is not a move"):
            CALLS[move](before)
        assert store.get(before.request_id) == before
        assert len(store.history(before.request_id)) == 1
        return

    after, event = CALLS[move](before)
    store.transition(before, after, event)

    assert name(after.state) == (target or name(state))
    assert after.version == before.version + 1
    assert store.get(before.request_id) == after
    history = store.history(before.request_id)
    assert len(history) == 2 and history[-1] == event
    assert (event.seq, event.action, event.actor, event.at) == (after.version, action,
                                                                ACTORS.get(move, SYSTEM), AT)
    assert (event.from_status, event.to_status) == (state_of(before), state_of(after))
    with pytest.raises(Conflict):
        store.transition(before, after, event)  # the same write again (a stale retry) loses
    assert len(store.history(before.request_id)) == 2


def test_what_each_move_records():
    pending = in_state((RequestStatus.PENDING, GrantStatus.NONE))
    counted, _ = CALLS["count_approval"](pending)
    assert counted.approvers == ("bob",) and counted.decided_at is None and counted.expires_at is None

    final, _ = CALLS["approve"](counted)
    assert final.approvers == ("bob", "carol") and final.decided_by == "carol"
    assert final.expires_at == AT + timedelta(hours=2)  # the grant's clock starts at the final approval

    granting = in_state((RequestStatus.APPROVED, GrantStatus.GRANTING))
    tried, _ = CALLS["grant_attempt_failed"](granting)
    assert (tried.grant_attempts, tried.note, tried.state) == (1, "Throttling: slow down", granting.state)
    failed, event = tried.grant_failed(AT, "gave up", attempts=3)
    assert (failed.grant_attempts, failed.ended_by, failed.ended_at, failed.note) == (3, SYSTEM, AT, "gave up")
    assert event.reason == "gave up"

    active, _ = CALLS["granted"](granting)
    assert (active.granted_at, active.policy_arn, active.mfa_serial) == (AT, ARN, "arn:aws:iam::111111111111:mfa/alice")

    revoking, _ = CALLS["revoke"](active)
    assert (revoking.ended_by, revoking.ended_at) == ("alice", AT)
    revoked, event = revoking.revoked(AT + timedelta(seconds=5))
    assert event.actor == "alice"  # who asked, not the machinery that finished it


def reachable() -> set:
    seen, todo = set(), [(RequestStatus.PENDING, GrantStatus.NONE)]
    while todo:
        state = todo.pop()
        if state in seen:
            continue
        seen.add(state)
        todo.extend(m.target for m in MOVES.values() if state in m.sources and m.target is not None)
    return seen


def test_states_are_exactly_the_reachable_states():
    targets = {m.target for m in MOVES.values() if m.target is not None}
    sources = {s for m in MOVES.values() for s in m.sources}
    assert targets | sources <= set(STATES), "a move leads to or from a state STATES does not describe"
    assert reachable() == set(STATES), "STATES lists a state no sequence of moves reaches"


def test_open_states_are_exactly_the_ones_the_sweep_tracks():
    # store.live() (used by `list`'s "waiting for your approval" and by reconcile) reads the
    # due index; `list` and the per-person limit read the open index: they must agree.
    for state, info in STATES.items():
        req = in_state(state)
        assert info.open == (due_at(req) is not None), state


def test_terminal_states_have_no_way_out():
    # an ended grant may still record its session cut-off, but never changes state again
    for state, info in STATES.items():
        if not info.open:
            leaving = [name for name, m in MOVES.items() if state in m.sources and m.target is not None]
            assert not leaving, state
