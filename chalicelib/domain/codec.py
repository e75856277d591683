"""The one JSON codec for domain records (pure, stdlib only): what the store writes and reads.

``from_json`` checks every field's type, so a record that is not one Drawbridge wrote is
refused with :class:`RecordError`, not half-read.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from enum import Enum
from typing import Any

from .model import Approval, AuditEvent, Extension, GrantStatus, Principal, Request, RequestStatus, parse_iso, utc


def to_json(value: Any) -> str:
    return json.dumps(_plain(value), separators=(",", ":"))


def request_from_json(text: str) -> Request:
    return request_from_dict(json.loads(text))


def event_from_json(text: str) -> AuditEvent:
    data = _object(json.loads(text), "audit event")
    return AuditEvent(
        request_id=_field(data, "request_id", str), seq=_field(data, "seq", int),
        at=_time(data, "at"), actor=_field(data, "actor", str), action=_field(data, "action", str),
        from_status=_field(data, "from_status", str), to_status=_field(data, "to_status", str),
        reason=_field(data, "reason", str, ""),
    )


class RecordError(ValueError):
    """A stored record that is not one Drawbridge wrote (wrong shape or types)."""


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc(value).isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Principal):
        return {"kind": value.kind, "name": value.name}
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


_MISSING = object()


def _object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise RecordError(f"{what} is not a JSON object")
    return value


def _field(data: dict, name: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
    value = data.get(name, default)
    if value is _MISSING:
        raise RecordError(f"record has no {name}")
    if value is default and default is not _MISSING:
        return value
    if isinstance(value, bool) and kind is int or not isinstance(value, kind):
        raise RecordError(f"record field {name} has the wrong type")
    return value


def _time(data: dict, name: str, optional: bool = False) -> datetime | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise RecordError(f"record field {name} is not a time")
    try:
        return parse_iso(value)
    except ValueError:
        raise RecordError(f"record field {name} is not a time") from None


def _principal(data: dict) -> Principal:
    raw = data.get("principal")
    if raw is None and isinstance(data.get("iam_user"), str):  # records written before principals
        return Principal.iam_user(data["iam_user"])
    raw = _object(raw, "principal")
    return Principal(_field(raw, "kind", str), _field(raw, "name", str))


def _approvals(data: dict, name: str) -> tuple[Approval, ...]:
    return tuple(Approval(_field(_object(a, "approval"), "person", str), _time(a, "at"))
                 for a in _field(data, name, list, []))


def _extension(raw: Any) -> Extension | None:
    if raw is None:
        return None
    data = _object(raw, "extension")
    state = _field(data, "state", str)
    if state not in (Extension.PENDING, Extension.APPROVED, Extension.APPLIED, Extension.DENIED,
                     Extension.LAPSED, Extension.FAILED):
        raise RecordError("record field extension.state has an unknown value")
    return Extension(
        n=_field(data, "n", int), seconds=_field(data, "seconds", int), requested_at=_time(data, "requested_at"),
        required=_field(data, "required", int), reason=_field(data, "reason", str, ""), state=state,
        approvals=_approvals(data, "approvals"),
        decided_by=_field(data, "decided_by", (str, type(None)), None),
        decided_at=_time(data, "decided_at", optional=True),
        old_expires_at=_time(data, "old_expires_at", optional=True),
        new_expires_at=_time(data, "new_expires_at", optional=True),
        note=_field(data, "note", (str, type(None)), None),
    )


def request_from_dict(data: Any) -> Request:
    data = _object(data, "request")
    approvals = _field(data, "approvals", list, [])
    try:
        return Request(
            request_id=_field(data, "request_id", str), requester=_field(data, "requester", str),
            requester_slack=_field(data, "requester_slack", str), principal=_principal(data),
            account=_field(data, "account", str), account_id=_field(data, "account_id", str),
            role=_field(data, "role", str), role_arn=_field(data, "role_arn", str),
            production=_field(data, "production", bool), duration_seconds=_field(data, "duration_seconds", int),
            approvals_required=_field(data, "approvals_required", int),
            created_at=_time(data, "created_at"), pending_until=_time(data, "pending_until"),
            reason=_field(data, "reason", str, ""),
            status=RequestStatus(_field(data, "status", str, "PENDING")),
            grant_status=GrantStatus(_field(data, "grant_status", str, "NONE")),
            approvals=tuple(Approval(_field(_object(a, "approval"), "person", str), _time(a, "at"))
                            for a in approvals),
            decided_by=_field(data, "decided_by", (str, type(None)), None),
            decided_at=_time(data, "decided_at", optional=True),
            expires_at=_time(data, "expires_at", optional=True),
            granted_at=_time(data, "granted_at", optional=True),
            ended_at=_time(data, "ended_at", optional=True),
            ended_by=_field(data, "ended_by", (str, type(None)), None),
            policy_arn=_field(data, "policy_arn", (str, type(None)), None),
            mfa_serial=_field(data, "mfa_serial", (str, type(None)), None),
            grant_attempts=_field(data, "grant_attempts", int, 0),
            note=_field(data, "note", (str, type(None)), None),
            cut_before=_time(data, "cut_before", optional=True),
            sessions_cut_at=_time(data, "sessions_cut_at", optional=True),
            cut_attempts=_field(data, "cut_attempts", int, 0),
            cut_note=_field(data, "cut_note", (str, type(None)), None),
            cut_given_up_at=_time(data, "cut_given_up_at", optional=True),
            extension=_extension(data.get("extension")),
            extended_seconds=_field(data, "extended_seconds", int, 0),
            break_glass=_field(data, "break_glass", bool, False),
            review_due_at=_time(data, "review_due_at", optional=True),
            reviewed_at=_time(data, "reviewed_at", optional=True),
            reviewed_by=_field(data, "reviewed_by", (str, type(None)), None),
            review_outcome=_field(data, "review_outcome", (str, type(None)), None),
            review_note=_field(data, "review_note", (str, type(None)), None),
            review_reminders=_field(data, "review_reminders", int, 0),
            review_escalated_at=_time(data, "review_escalated_at", optional=True),
            remind_at=_time(data, "remind_at", optional=True),
            reminders=_field(data, "reminders", int, 0),
            escalate_at=_time(data, "escalate_at", optional=True),
            escalated_at=_time(data, "escalated_at", optional=True),
            version=_field(data, "version", int, 1),
        )
    except ValueError as exc:  # an unknown status value
        raise RecordError(str(exc)) from None
