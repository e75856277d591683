"""The request record, its audit events and the people it names: pure values (stdlib only).

A request has two independent statuses, as in common-fate/glide:

* ``status`` - the decision on the request:
  PENDING -> APPROVED | DENIED | CANCELLED | EXPIRED (nobody decided in time)
* ``grant_status`` - the IAM permission that follows an approval:
  NONE -> GRANTING -> ACTIVE -> REVOKING -> REVOKED
                            -> EXPIRED
          GRANTING -> FAILED

Which moves exist, and what each is called, is written once, in
:mod:`chalicelib.domain.lifecycle`; this module holds the values. Every change of
either status bumps ``version`` and comes with exactly one :class:`AuditEvent`; the
store writes both in one conditional transaction, so the history can never disagree
with the record.

Values are frozen dataclasses (docs/decisions/0005-model-library.md); ``to_json`` /
``from_json`` (:mod:`chalicelib.domain.codec`) are the one codec the store uses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Sequence



from .errors import IllegalTransition
from .lifecycle import LIVE_GRANT, MOVES, STATES, GrantStatus, RequestStatus, StateInfo

__all__ = ["LIVE_GRANT", "SYSTEM", "Approval", "AuditEvent", "Extension", "GrantStatus", "Principal",
           "Request", "RequestStatus", "event_for", "hhmm", "iso_z", "parse_iso", "state_of", "utc"]

#: the actor recorded when Drawbridge itself changes a request (never a catalog person)
SYSTEM = "drawbridge"


def utc(dt: datetime) -> datetime:
    """Normalise to an aware UTC datetime (naive input is taken as UTC)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def iso_z(dt: datetime) -> str:
    """ISO 8601, second precision, UTC with a trailing Z (the format messages carry)."""
    return utc(dt).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def hhmm(dt: datetime) -> str:
    return utc(dt).strftime("%H:%M UTC")


# --------------------------------------------------------------------------- principals


@dataclass(frozen=True)
class Principal:
    """Who a grant is for, as the bastion account knows them.

    Today every person is an IAM user (``kind = "iam_user"``); another identity kind
    (e.g. a federated role session) would be a new kind plus one grants adapter that
    knows how to attach a policy to it. ``key`` is the stable string used in the
    table's indexes: the bare name for IAM users (what earlier records used), and
    ``<kind>:<name>`` for any other kind.
    """

    kind: str
    name: str

    IAM_USER = "iam_user"

    @classmethod
    def iam_user(cls, name: str) -> "Principal":
        return cls(cls.IAM_USER, name)

    @property
    def key(self) -> str:
        return self.name if self.kind == self.IAM_USER else f"{self.kind}:{self.name}"

    def __str__(self) -> str:
        return self.key


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Approval:
    person: str
    at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", utc(self.at))


@dataclass(frozen=True)
class Extension:
    """A request to lengthen an ACTIVE grant (``/aws-access extend``), the latest one a
    record has seen: pending, approved (IAM not changed yet), or how it ended.

    The new expiry is the old one plus ``seconds``: the clock of an extension starts where
    the grant would have ended, not at its approval.
    """

    n: int  # 1 for a grant's first extension request, 2 for its second...
    seconds: int
    requested_at: datetime
    required: int  # distinct approvals it needs (the role's extend_approvals when asked)
    reason: str = ""
    state: str = "pending"  # pending | approved | applied | denied | lapsed | failed
    approvals: tuple[Approval, ...] = ()
    decided_by: str | None = None  # the final approver (the requester when none is needed), the denier
    decided_at: datetime | None = None
    old_expires_at: datetime | None = None  # set when applied
    new_expires_at: datetime | None = None
    note: str | None = None  # why it failed or lapsed

    PENDING = "pending"
    APPROVED = "approved"
    APPLIED = "applied"
    DENIED = "denied"
    LAPSED = "lapsed"
    FAILED = "failed"

    def __post_init__(self) -> None:
        for name in ("requested_at", "decided_at", "old_expires_at", "new_expires_at"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, utc(value))
        object.__setattr__(self, "approvals", tuple(self.approvals))

    @property
    def open(self) -> bool:
        """Still to be decided, or approved and not yet in IAM."""
        return self.state in (self.PENDING, self.APPROVED)

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(a.person for a in self.approvals)

    def approval_by(self, person: str) -> Approval | None:
        return next((a for a in self.approvals if a.person == person), None)


_TIMES = ("remind_at", "escalate_at", "escalated_at", "created_at", "pending_until", "decided_at", "expires_at", "granted_at", "ended_at", "cut_before",
          "sessions_cut_at", "cut_given_up_at", "review_due_at", "reviewed_at", "review_escalated_at")


@dataclass(frozen=True)
class Request:
    """One access request and, once approved, its grant."""

    request_id: str
    requester: str  # catalog person key
    requester_slack: str
    principal: Principal  # who in the bastion receives the grant
    account: str  # catalog account key
    account_id: str
    role: str  # catalog role key
    role_arn: str
    production: bool
    duration_seconds: int
    approvals_required: int
    created_at: datetime
    pending_until: datetime
    reason: str = ""
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
    # -- session cut-off (chalicelib/cutoff.py, usecases/cut.py): set when a grant that was
    # ACTIVE ends while cut-offs are on
    cut_before: datetime | None = None  # the person's role sessions issued before this are to be denied
    sessions_cut_at: datetime | None = None  # when the deny was in the role's cut-off policy
    cut_attempts: int = 0  # failed attempts at writing it
    cut_note: str | None = None  # the last failure, or what else happened (role-wide fallback)
    cut_given_up_at: datetime | None = None  # every session it was to cut had expired first
    # -- extensions (usecases/extend.py): the latest extension request, and what the grant
    # has been lengthened by so far (expires_at already includes it)
    extension: Extension | None = None
    extended_seconds: int = 0
    # -- break-glass (issue 16, usecases/breakglass.py and review.py): a grant the requester
    # made alone in an emergency, and its review by the role's approvers afterwards
    break_glass: bool = False
    review_due_at: datetime | None = None  # unacknowledged past this: #security is told
    reviewed_at: datetime | None = None
    reviewed_by: str | None = None
    review_outcome: str | None = None  # "acknowledged" | "flagged" | None (not reviewed yet)
    review_note: str | None = None  # why it was flagged
    review_reminders: int = 0  # reminder steps sent to the approvers so far
    review_escalated_at: datetime | None = None  # when #security was told it is overdue
    # -- reminders of the approvers while the request waits (usecases/remind.py)
    remind_at: datetime | None = None  # the next reminder is due then (None: no more)
    reminders: int = 0  # reminders sent so far
    escalate_at: datetime | None = None  # when it is escalated if still waiting (None: never)
    escalated_at: datetime | None = None  # when it was: the role's fallback approvers may approve since
    version: int = 1

    def __post_init__(self) -> None:
        for name in _TIMES:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, utc(value))
        object.__setattr__(self, "status", RequestStatus(self.status))
        object.__setattr__(self, "grant_status", GrantStatus(self.grant_status))
        object.__setattr__(self, "approvals", tuple(self.approvals))

    # -- derived views -----------------------------------------------------
    @property
    def label(self) -> str:
        return f"{self.account}/{self.role}"

    @property
    def iam_user(self) -> str:
        """The IAM user name, for the one principal kind that has one (messages, alerts)."""
        return self.principal.name

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(a.person for a in self.approvals)

    def approval_by(self, person: str) -> Approval | None:
        return next((a for a in self.approvals if a.person == person), None)

    @property
    def is_open(self) -> bool:
        """Shown by ``list``: still pending, or holding (or about to hold) a grant."""
        return self.info.open

    @property
    def review_open(self) -> bool:
        """A break-glass grant nobody has acknowledged or flagged yet (one IAM refused before
        it was ever made has nothing to review: #security was told it failed)."""
        never_made = self.grant_status is GrantStatus.FAILED and self.granted_at is None
        return self.break_glass and self.reviewed_at is None and not never_made

    @property
    def duration(self) -> timedelta:
        return timedelta(seconds=self.duration_seconds)

    @property
    def state(self) -> tuple[RequestStatus, GrantStatus]:
        return self.status, self.grant_status

    @property
    def info(self) -> StateInfo:
        """What the state machine says about this state (label, card event type, open, due)."""
        return STATES[self.state]

    def change(self, **fields: Any) -> "Request":
        """A copy with ``fields`` changed and the version bumped (transitions use it)."""
        return dataclasses.replace(self, **fields, version=self.version + 1)

    # -- transitions: each returns (the new record, its audit event) or refuses ----------
    def move(self, name: str, *, at: datetime, actor: str, reason: str = "",
             **fields: Any) -> tuple["Request", "AuditEvent"]:
        """Make the move ``name`` of :data:`~chalicelib.domain.lifecycle.MOVES` with ``fields``
        changed; :class:`IllegalTransition` if this state does not allow it."""
        move = MOVES[name]
        if self.state not in move.sources:
            raise IllegalTransition(f"{self.request_id} is {self.info.label}: '{name}' is not a move from there")
        if move.target is not None:
            fields = {**fields, "status": move.target[0], "grant_status": move.target[1]}
        after = self.change(**fields)
        return after, event_for(self, after, at=at, actor=actor, action=move.action, reason=reason)

    def remind(self, at: datetime, next_at: datetime | None, reminded: Sequence[str]):
        """The approvers were reminded (the state stays); the next reminder is due ``next_at``."""
        who = ", ".join(f"@{p}" for p in reminded) or "nobody"
        return self.move("remind", at=at, actor=SYSTEM, reason=f"reminder {self.reminders + 1}: {who}",
                         reminders=self.reminders + 1, remind_at=next_at)

    def escalate(self, at: datetime, fallback: Sequence[str]):
        """Still waiting at its escalation time: said in the approvals channel, and the role's
        fallback approvers may approve it from now on (the state stays)."""
        who = ", ".join(f"@{p}" for p in fallback) or "no fallback approvers"
        return self.move("escalate", at=at, actor=SYSTEM, reason=f"escalated: {who} may approve too",
                         escalated_at=at, escalate_at=None)

    def count_approval(self, at: datetime, by: str, reason: str = ""):
        return self.move("count_approval", at=at, actor=by, reason=reason,
                         approvals=self.approvals + (Approval(by, at),))

    def approve(self, at: datetime, by: str, reason: str = ""):
        """The final approval: the grant's clock starts now."""
        return self.move("approve", at=at, actor=by, reason=reason, approvals=self.approvals + (Approval(by, at),),
                         decided_by=by, decided_at=at, expires_at=at + self.duration)

    def deny(self, at: datetime, by: str, reason: str = "", why: str = ""):
        """``why``: the denier's own words (the deny form), kept as the record's ``note``."""
        return self.move("deny", at=at, actor=by, reason=f"{reason}: {why}" if why else reason,
                         decided_by=by, decided_at=at, note=why or None)

    def cancel(self, at: datetime, by: str, reason: str = ""):
        return self.move("cancel", at=at, actor=by, reason=reason, decided_by=by, decided_at=at)

    def expire_pending(self, at: datetime, reason: str = ""):
        return self.move("expire_pending", at=at, actor=SYSTEM, reason=reason, decided_by=SYSTEM, decided_at=at)

    def granted(self, at: datetime, policy_arn: str, mfa_serial: str | None = None):
        return self.move("granted", at=at, actor=SYSTEM, reason=f"policy {policy_arn}", granted_at=at,
                         policy_arn=policy_arn, mfa_serial=mfa_serial)

    def grant_attempt_failed(self, at: datetime, note: str):
        return self.move("grant_attempt_failed", at=at, actor=SYSTEM, reason=note,
                         grant_attempts=self.grant_attempts + 1, note=note)

    def grant_failed(self, at: datetime, why: str, attempts: int | None = None,
                     cut_before: datetime | None = None):
        extra = {} if attempts is None else {"grant_attempts": attempts}
        return self.move("grant_failed", at=at, actor=SYSTEM, reason=why, ended_at=at, ended_by=SYSTEM,
                         note=why, cut_before=cut_before, extension=self._lapsed(at), **extra)

    def revoke(self, at: datetime, by: str, reason: str = ""):
        """Asked for: REVOKING until the grant is out of IAM (then :meth:`revoked`)."""
        return self.move("revoke", at=at, actor=by, reason=reason, ended_by=by, ended_at=at,
                         extension=self._lapsed(at))

    def revoked(self, at: datetime, cut_before: datetime | None = None):
        return self.move("revoked", at=at, actor=self.ended_by or SYSTEM, cut_before=cut_before)

    def expire_grant(self, at: datetime, cut_before: datetime | None = None):
        return self.move("expire_grant", at=at, actor=SYSTEM, ended_at=at, ended_by=SYSTEM, cut_before=cut_before,
                         extension=self._lapsed(at))

    # -- extensions of an ACTIVE grant (the state does not change) ------------------------
    def _lapsed(self, at: datetime) -> "Extension | None":
        """The extension as it stands once the grant ends: an open one lapses with it."""
        ext = self.extension
        if ext is None or not ext.open:
            return ext
        note = ("it was approved, but the grant ended before it could be applied" if ext.state == Extension.APPROVED
                else "the grant ended before it was decided")
        return dataclasses.replace(ext, state=Extension.LAPSED, note=note, decided_at=ext.decided_at or at)

    def request_extension(self, at: datetime, *, seconds: int, required: int, reason: str = ""):
        """The requester asks for ``seconds`` more; with ``required`` 0 it is approved at once."""
        n = self.extension.n + 1 if self.extension is not None else 1
        ext = Extension(n=n, seconds=seconds, requested_at=at, required=required, reason=reason)
        if required == 0:
            ext = dataclasses.replace(ext, state=Extension.APPROVED, decided_by=self.requester, decided_at=at)
        from .duration import format_duration

        why = f"+{format_duration(seconds)}" + (f": {reason}" if reason else "")
        return self.move("request_extension", at=at, actor=self.requester, reason=why, extension=ext)

    def count_extension_approval(self, at: datetime, by: str, reason: str = ""):
        ext = self._open_extension(Extension.PENDING)
        return self.move("count_extension_approval", at=at, actor=by, reason=reason,
                         extension=dataclasses.replace(ext, approvals=ext.approvals + (Approval(by, at),)))

    def approve_extension(self, at: datetime, by: str, reason: str = ""):
        """The final approval of the extension: IAM is changed next (:meth:`extended`)."""
        ext = self._open_extension(Extension.PENDING)
        return self.move("approve_extension", at=at, actor=by, reason=reason, extension=dataclasses.replace(
            ext, approvals=ext.approvals + (Approval(by, at),), state=Extension.APPROVED, decided_by=by,
            decided_at=at))

    def deny_extension(self, at: datetime, by: str, reason: str = ""):
        ext = self._open_extension(Extension.PENDING)
        return self.move("deny_extension", at=at, actor=by, reason=reason, extension=dataclasses.replace(
            ext, state=Extension.DENIED, decided_by=by, decided_at=at))

    def extended(self, at: datetime, new_expires_at: datetime):
        """IAM now holds the later expiry: the record follows."""
        ext = self._open_extension(Extension.APPROVED)
        old = self.expires_at
        return self.move("extended", at=at, actor=SYSTEM, reason=f"expiry {iso_z(old) if old else '-'} -> {iso_z(new_expires_at)}",
                         expires_at=new_expires_at, extended_seconds=self.extended_seconds + ext.seconds,
                         extension=dataclasses.replace(ext, state=Extension.APPLIED, old_expires_at=old,
                                                       new_expires_at=new_expires_at))

    def extension_failed(self, at: datetime, why: str):
        ext = self._open_extension(Extension.APPROVED)
        return self.move("extension_failed", at=at, actor=SYSTEM, reason=why,
                         extension=dataclasses.replace(ext, state=Extension.FAILED, note=why,
                                                       decided_at=ext.decided_at or at))

    def _open_extension(self, state: str) -> Extension:
        """The extension, which must be in ``state`` (IllegalTransition otherwise: e.g. an
        extension applied twice, or approved after it was denied)."""
        ext = self.extension
        if ext is None or ext.state != state:
            what = "no extension" if ext is None else f"its extension is {ext.state}"
            raise IllegalTransition(f"{self.request_id} has {what}, not {state}")
        return ext

    # -- the session cut-off that follows an ended grant (the state does not change) -------
    def sessions_cut(self, at: datetime, note: str | None = None):
        before = iso_z(self.cut_before) if self.cut_before else "the end"
        return self.move("sessions_cut", at=at, actor=SYSTEM, reason=f"sessions issued before {before} denied"
                         f"{'; ' + note if note else ''}", sessions_cut_at=at,
                         cut_note=note if note else self.cut_note)

    def cut_attempt_failed(self, at: datetime, note: str):
        return self.move("cut_attempt_failed", at=at, actor=SYSTEM, reason=note,
                         cut_attempts=self.cut_attempts + 1, cut_note=note)

    def cut_given_up(self, at: datetime):
        return self.move("cut_given_up", at=at, actor=SYSTEM,
                         reason="every session the cut-off was to end has expired on its own", cut_given_up_at=at)

    # -- the review of a break-glass grant (the state does not change) ---------------------
    def review_acknowledged(self, at: datetime, by: str):
        return self.move("review_acknowledged", at=at, actor=by, reason="break-glass use acknowledged",
                         reviewed_at=at, reviewed_by=by, review_outcome="acknowledged")

    def review_flagged(self, at: datetime, by: str, why: str):
        return self.move("review_flagged", at=at, actor=by, reason=why, reviewed_at=at, reviewed_by=by,
                         review_outcome="flagged", review_note=why)

    def review_reminded(self, at: datetime, step: int):
        return self.move("review_reminded", at=at, actor=SYSTEM, reason=f"review reminder {step}",
                         review_reminders=step)

    def review_escalated(self, at: datetime):
        return self.move("review_escalated", at=at, actor=SYSTEM,
                         reason="not reviewed in time: #security told", review_escalated_at=at)

    @classmethod
    def requested(cls, at: datetime, **fields: Any) -> tuple["Request", "AuditEvent"]:
        """A new request (PENDING) and its first audit event."""
        req = cls(created_at=at, **fields)
        return req, event_for(None, req, at=at, actor=req.requester, action="requested", reason=req.reason)

    @classmethod
    def broke_glass(cls, at: datetime, **fields: Any) -> tuple["Request", "AuditEvent"]:
        """A break-glass grant: made by the requester alone, APPROVED and GRANTING at once
        (no approvals), with its ``break_glass`` audit event (usecases/breakglass.py)."""
        req = cls(created_at=at, pending_until=at, status=RequestStatus.APPROVED,
                  grant_status=GrantStatus.GRANTING, decided_by=fields["requester"], decided_at=at,
                  expires_at=at + timedelta(seconds=fields["duration_seconds"]), approvals=(),
                  approvals_required=0, break_glass=True, **fields)
        return req, event_for(None, req, at=at, actor=req.requester, action="break_glass", reason=req.reason)

    # -- the store's codec ------------------------------------------------------
    def to_json(self) -> str:
        from .codec import to_json

        return to_json(self)

    @classmethod
    def from_json(cls, text: str) -> "Request":
        from .codec import request_from_json

        return request_from_json(text)


@dataclass(frozen=True)
class AuditEvent:
    """An immutable entry in a request's history (actor, from -> to, when, why)."""

    request_id: str
    seq: int  # the request version this event produced
    at: datetime
    actor: str  # person key, or "drawbridge" for the service itself
    action: str  # requested / approved / denied / granted / revoked / expired ...
    from_status: str  # "PENDING/NONE" style: request status / grant status
    to_status: str
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", utc(self.at))

    def to_json(self) -> str:
        from .codec import to_json

        return to_json(self)

    @classmethod
    def from_json(cls, text: str) -> "AuditEvent":
        from .codec import event_from_json

        return event_from_json(text)


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
