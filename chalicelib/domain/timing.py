"""When things are due, and when a grant could be used (pure, stdlib only).

The sweep reads :func:`due_at` (through the store's sparse index); alerting reads
:func:`grant_window_end` to tie a CloudTrail event to the grant that covered it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .lifecycle import GRANT_RETRY_AFTER, REVOKE_RETRY_AFTER, GrantStatus  # noqa: F401 (re-exported)
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
    state table's ``due`` rule: a record time plus a delay."""
    rule = req.info.due
    if rule is None:
        return None
    field, delay = rule
    base = getattr(req, field) or req.created_at
    return base + delay


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
