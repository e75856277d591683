"""When things are due, and when a grant could be used (pure, stdlib only).

The sweep reads :func:`due_at` (through the store's sparse index); alerting reads
:func:`grant_window_end` to tie a CloudTrail event to the grant that covered it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .lifecycle import GRANT_RETRY_AFTER, REVOKE_RETRY_AFTER, GrantStatus, RequestStatus  # noqa: F401 (re-exported)
from .model import Request

#: IAM is eventually consistent: a listing right after an attach may not show it yet. The
#: sweep's "policy vanished" check leaves a grant alone for this long after it was made.
IAM_SETTLE = timedelta(minutes=5)
#: how long a request may wait for approvals unless configured otherwise
DEFAULT_PENDING_WINDOW = timedelta(hours=1)
#: the longest role session the member template allows (MaxSessionDuration): a session
#: started just before a grant ended keeps working for at most this long (IAM does not
#: end issued sessions when the grant policy goes)
MAX_SESSION = timedelta(hours=1)


def due_at(req: Request) -> datetime | None:
    """When the sweep must next look at this request (None: never again), from the
    state table's ``due`` rule: a record time plus a delay; or, sooner, the next step of
    an open break-glass review (:func:`review_next_at`), whatever the state."""
    rule = req.info.due
    sooner = [at for at in (review_next_at(req), remind_next_at(req)) if at is not None]
    if rule is None:
        return min(sooner, default=None)
    field, delay = rule
    base = getattr(req, field) or req.created_at
    return min([base + delay, *sooner])


def remind_next_at(req: Request) -> datetime | None:
    """When the approvers of a waiting request are next reminded, or it is escalated (None:
    not waiting, or nothing more before it expires)."""
    if req.status is not RequestStatus.PENDING:
        return None
    steps = [at for at in (req.remind_at, req.escalate_at) if at is not None and at < req.pending_until]
    return min(steps, default=None)


def grant_window_end(req: Request) -> datetime | None:
    """The end of the time the grant could be used (for alert correlation)."""
    if req.granted_at is None or req.expires_at is None:
        return None
    if req.grant_status in (GrantStatus.REVOKED, GrantStatus.REVOKING) and req.ended_at:
        return min(req.ended_at, req.expires_at)
    return req.expires_at



def sessions_end_by(req: Request) -> datetime | None:
    """When every role session the grant let someone start has ended at the latest."""
    if req.expires_at is None:
        return None
    end = min(req.ended_at, req.expires_at) if req.ended_at else req.expires_at
    return end + MAX_SESSION


#: the first reminder to review a break-glass grant comes this long after its use; each
#: next one after twice as long (1h, 2h, 4h, 8h...), until it is reviewed or escalated
REVIEW_FIRST_REMINDER = timedelta(hours=1)


def review_reminder_at(req: Request, step: int) -> datetime | None:
    """When reminder ``step`` (1, 2, 3...) of a break-glass review is due."""
    if req.decided_at is None:
        return None
    return req.decided_at + REVIEW_FIRST_REMINDER * (2 ** (step - 1))


def review_steps_due(req: Request, now: datetime) -> int:
    """How many reminder steps are due by ``now`` (before the review's deadline)."""
    step = 0
    while True:
        at = review_reminder_at(req, step + 1)
        if at is None or at > now or (req.review_due_at is not None and at >= req.review_due_at):
            return step
        step += 1


def review_next_at(req: Request) -> datetime | None:
    """The next step of an open break-glass review: the next reminder, or the escalation
    at ``review_due_at``, whichever comes first. None once it is reviewed or escalated
    (or for a grant that is not break-glass): reminders stop there."""
    if not req.review_open or req.review_escalated_at is not None:
        return None
    steps = [at for at in (review_reminder_at(req, req.review_reminders + 1), req.review_due_at) if at is not None]
    if req.review_due_at is not None:
        steps = [at for at in steps if at <= req.review_due_at]
    return min(steps, default=None)
