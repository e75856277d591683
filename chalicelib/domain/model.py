"""The request record and its audit events: pure values (stdlib + pydantic).

A request has two independent statuses, as in common-fate/glide:

* ``status`` - the decision on the request:
  PENDING -> APPROVED | DENIED | CANCELLED | EXPIRED (nobody decided in time)
* ``grant_status`` - the IAM permission that follows an approval:
  NONE -> GRANTING -> ACTIVE -> REVOKING -> REVOKED
                            -> EXPIRED
          GRANTING -> FAILED

Every change of either status bumps ``version`` and appends exactly one
``AuditEvent``; the store writes both in one conditional transaction, so the
history can never disagree with the record.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from enum import Enum

from pydantic import BaseModel, ConfigDict, field_validator


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


#: grant statuses in which Drawbridge may hold (or be about to hold) an IAM grant
LIVE_GRANT = frozenset({GrantStatus.GRANTING, GrantStatus.ACTIVE, GrantStatus.REVOKING})


def utc(dt: datetime) -> datetime:
    """Normalise to an aware UTC datetime (naive input is taken as UTC)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def iso_z(dt: datetime) -> str:
    """ISO 8601, second precision, UTC with a trailing Z (the contract's format)."""
    return utc(dt).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def hhmm(dt: datetime) -> str:
    return utc(dt).strftime("%H:%M UTC")


class Approval(BaseModel):
    model_config = ConfigDict(frozen=True)
    person: str
    at: datetime

    _utc = field_validator("at")(lambda cls, v: utc(v))


class Request(BaseModel):
    """One access request and, once approved, its grant."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    requester: str  # catalog person key
    requester_slack: str
    iam_user: str
    account: str  # catalog account key
    account_id: str
    role: str  # catalog role key
    role_arn: str
    production: bool
    duration_seconds: int
    reason: str = ""
    approvals_required: int
    created_at: datetime
    pending_until: datetime
    status: RequestStatus = RequestStatus.PENDING
    grant_status: GrantStatus = GrantStatus.NONE
    approvals: tuple[Approval, ...] = ()
    decided_by: str | None = None
    decided_at: datetime | None = None
    expires_at: datetime | None = None  # fixed at the final approval
    granted_at: datetime | None = None  # when IAM accepted the grant
    ended_at: datetime | None = None  # revoked / expired / failed
    ended_by: str | None = None
    policy_arn: str | None = None
    mfa_serial: str | None = None  # the requester's MFA device, for the DM (looked up at grant time)
    grant_attempts: int = 0
    note: str | None = None  # last failure, for humans
    version: int = 1

    @field_validator(
        "created_at", "pending_until", "decided_at", "expires_at", "granted_at", "ended_at"
    )
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        return None if v is None else utc(v)

    # -- derived views -----------------------------------------------------
    @property
    def label(self) -> str:
        return f"{self.account}/{self.role}"

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(a.person for a in self.approvals)

    def approval_by(self, person: str) -> Approval | None:
        return next((a for a in self.approvals if a.person == person), None)

    @property
    def is_open(self) -> bool:
        """Shown by ``list``: still pending, or holding (or about to hold) a grant."""
        return self.status is RequestStatus.PENDING or self.grant_status in LIVE_GRANT

    @property
    def duration(self) -> timedelta:
        return timedelta(seconds=self.duration_seconds)

    def change(self, **fields) -> "Request":
        """A copy with ``fields`` changed and the version bumped."""
        return self.model_copy(update={**fields, "version": self.version + 1})


class AuditEvent(BaseModel):
    """An immutable entry in a request's history (actor, from -> to, when, why)."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    seq: int  # the request version this event produced
    at: datetime
    actor: str  # person key, or "drawbridge" for the service itself
    action: str  # requested / approved / denied / granted / revoked / expired ...
    from_status: str  # "PENDING/NONE" style: request status / grant status
    to_status: str
    reason: str = ""

    _utc = field_validator("at")(lambda cls, v: utc(v))


def state_of(req: Request) -> str:
    return f"{req.status.value}/{req.grant_status.value}"


def event_for(before: Request | None, after: Request, *, at: datetime, actor: str,
              action: str, reason: str = "") -> AuditEvent:
    return AuditEvent(
        request_id=after.request_id,
        seq=after.version,
        at=at,
        actor=actor,
        action=action,
        from_status=state_of(before) if before else "-",
        to_status=state_of(after),
        reason=reason,
    )
