"""The request state machine, written once (pure data, stdlib only).

A request's state is the pair (decision status, grant status). :data:`STATES` says, for
every state that can exist, what it is called (``label``, used by ``list`` and replies),
which Slack metadata event type a card in that state carries (``event_type``), whether it
is still open (``list`` shows it, it counts against the per-person limit) and when the
sweep must next look at it (``due``). :data:`MOVES` says which moves leave which states
and where they lead; :meth:`chalicelib.domain.model.Request.move` refuses any other
move with :class:`~chalicelib.domain.errors.IllegalTransition`.

Views, the store, the sweep and the use cases read these tables; none of them spells
out the state machine again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import Enum


class RequestStatus(str, Enum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    DENIED = "DENIED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


class GrantStatus(str, Enum):
    NONE = "NONE"
    GRANTING = "GRANTING"
    ACTIVE = "ACTIVE"
    REVOKING = "REVOKING"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    FAILED = "FAILED"


R, G = RequestStatus, GrantStatus
State = tuple[RequestStatus, GrantStatus]

#: grant statuses in which Drawbridge may hold (or be about to hold) an IAM grant
LIVE_GRANT = frozenset({G.GRANTING, G.ACTIVE, G.REVOKING})

#: how long after the final approval a GRANTING request is retried by the sweep
GRANT_RETRY_AFTER = timedelta(minutes=2)
#: how long after a revoke was asked for a REVOKING request is retried by the sweep
REVOKE_RETRY_AFTER = timedelta(minutes=1)


@dataclass(frozen=True)
class StateInfo:
    label: str  # what people read: "pending", "active", ...
    event_type: str  # the card's Slack metadata event type in this state
    open: bool  # shown by `list`, counts against the per-person limit
    #: (record field, delay): the sweep looks again at ``record.<field> + delay``; None: never
    due: tuple[str, timedelta] | None = None


STATES: dict[State, StateInfo] = {
    (R.PENDING, G.NONE): StateInfo("pending", "access_requested", True, ("pending_until", timedelta(0))),
    (R.APPROVED, G.GRANTING): StateInfo("granting", "access_approved", True, ("decided_at", GRANT_RETRY_AFTER)),
    (R.APPROVED, G.ACTIVE): StateInfo("active", "access_granted", True, ("expires_at", timedelta(0))),
    (R.APPROVED, G.REVOKING): StateInfo("revoking", "access_revoked", True, ("ended_at", REVOKE_RETRY_AFTER)),
    (R.APPROVED, G.REVOKED): StateInfo("revoked", "access_revoked", False),
    (R.APPROVED, G.EXPIRED): StateInfo("expired", "access_expired", False),
    (R.APPROVED, G.FAILED): StateInfo("failed", "access_revoked", False),
    (R.DENIED, G.NONE): StateInfo("denied", "access_denied", False),
    (R.CANCELLED, G.NONE): StateInfo("cancelled", "access_revoked", False),
    (R.EXPIRED, G.NONE): StateInfo("expired", "access_expired", False),
}


@dataclass(frozen=True)
class Move:
    action: str  # the audit event's action
    sources: frozenset[State]
    target: State | None  # None: the state does not change (an approval that is not the last)


def _move(action: str, sources: set[State], target: State | None) -> Move:
    return Move(action, frozenset(sources), target)


PENDING = (R.PENDING, G.NONE)
GRANTING = (R.APPROVED, G.GRANTING)
ACTIVE = (R.APPROVED, G.ACTIVE)
REVOKING = (R.APPROVED, G.REVOKING)

#: the states of a grant that ended after it may have been used (its sessions may be cut off)
ENDED = {(R.APPROVED, G.REVOKED), (R.APPROVED, G.EXPIRED), (R.APPROVED, G.FAILED)}

#: the states in which a made grant (approved, or self-granted in an emergency) may be
#: reviewed: not while a job is between IAM and the record (GRANTING, REVOKING), whose
#: write a review would make lose
REVIEWABLE = {ACTIVE} | ENDED

#: every move a request can make, by method name on Request
MOVES: dict[str, Move] = {
    "count_approval": _move("approved", {PENDING}, None),
    # the approvers of a waiting request reminded (usecases/remind.py): recorded, the state stays
    "remind": _move("reminded", {PENDING}, None),
    "escalate": _move("escalated", {PENDING}, None),
    "approve": _move("approved", {PENDING}, GRANTING),
    "deny": _move("denied", {PENDING}, (R.DENIED, G.NONE)),
    "cancel": _move("cancelled", {PENDING}, (R.CANCELLED, G.NONE)),
    "expire_pending": _move("expired", {PENDING}, (R.EXPIRED, G.NONE)),
    "granted": _move("granted", {GRANTING}, ACTIVE),
    "grant_attempt_failed": _move("grant_attempt_failed", {GRANTING}, None),
    # a grant whose policy vanished from IAM while ACTIVE fails too (drift)
    "grant_failed": _move("grant_failed", {GRANTING, ACTIVE}, (R.APPROVED, G.FAILED)),
    "revoke": _move("revoke_requested", {ACTIVE}, REVOKING),
    "revoked": _move("revoked", {REVOKING}, (R.APPROVED, G.REVOKED)),
    "expire_grant": _move("expired", {ACTIVE}, (R.APPROVED, G.EXPIRED)),
    # the session cut-off after a grant ended (usecases/cut.py): recorded, the state stays
    "sessions_cut": _move("sessions_cut", ENDED, None),
    "cut_attempt_failed": _move("cut_attempt_failed", ENDED, None),
    "cut_given_up": _move("cut_given_up", ENDED, None),
    # extensions of an ACTIVE grant (usecases/extend.py): recorded, the state stays
    "request_extension": _move("extension_requested", {ACTIVE}, None),
    "count_extension_approval": _move("extension_approved", {ACTIVE}, None),
    "approve_extension": _move("extension_approved", {ACTIVE}, None),
    "deny_extension": _move("extension_denied", {ACTIVE}, None),
    "extended": _move("extended", {ACTIVE}, None),
    "extension_failed": _move("extension_failed", {ACTIVE}, None),
    # the review of a break-glass grant (usecases/review.py), once it is made and no job is
    # between IAM and the record: recorded, the state stays
    "review_acknowledged": _move("review_acknowledged", REVIEWABLE, None),
    "review_flagged": _move("review_flagged", REVIEWABLE, None),
    "review_reminded": _move("review_reminded", REVIEWABLE, None),
    "review_escalated": _move("review_escalated", REVIEWABLE, None),
}


def info(state: State) -> StateInfo:
    return STATES[state]
