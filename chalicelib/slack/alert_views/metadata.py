"""Slack message metadata for the security channel's alerts (pure: no I/O):
``role_assumed``, ``production_access``, ``grant_used`` and ``identity_changed``
(docs/REFERENCE.md, metadata). Metadata is data, not mrkdwn: values are not escaped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from chalicelib.alerts import AlertKind, Assumption, IdentityChange
from chalicelib.slack.alert_views.text import _z


def _attempts_payload(kind: AlertKind, a: Assumption, attempts: Mapping[str, Any] | None) -> dict:
    """``attempts``, ``first_event_time``, ``last_event_time`` on a failed attempt's line."""
    if kind is not AlertKind.FAILED_ATTEMPT:
        return {}
    attempts = attempts or {}
    first, last = attempts.get("first"), attempts.get("last")
    return {
        "attempts": int(attempts.get("count") or 1),
        "first_event_time": _z(first if isinstance(first, datetime) else a.event_time),
        "last_event_time": _z(last if isinstance(last, datetime) else a.event_time),
    }


def role_assumed_metadata(
    a: Assumption,
    kind: AlertKind,
    *,
    account_key: str | None,
    role_key: str | None,
    request_id: str | None,
    attempts: Mapping[str, Any] | None = None,
) -> dict:
    """Slack message metadata ``role_assumed`` (docs/REFERENCE.md, metadata) for the alert.

    ``request_id`` is None when no approved grant covers the assumption. A failed
    attempt's line also carries ``attempts``, ``first_event_time`` and
    ``last_event_time`` (its group; see :func:`alert_blocks`). Metadata is data, not
    mrkdwn: values are not escaped.
    """
    return {
        "event_type": "role_assumed",
        "event_payload": {
            "account": account_key or a.account_id,
            "role": role_key or a.role_name,
            "role_arn": a.role_arn,
            "iam_user": a.iam_user,
            "event_id": a.event_id,
            "shared_event_id": a.shared_event_id,
            "event_time": _z(a.event_time),
            "request_id": request_id,
            "kind": kind.value,
            **_attempts_payload(kind, a, attempts),
        },
    }


def production_access_metadata(
    a: Assumption, kind: AlertKind, *, account_key: str | None, attempts: Mapping[str, Any] | None = None
) -> dict:
    """Slack message metadata ``production_access``: a way in that is not a role
    assumption (``access``: ``root_session``, ``federation_token``, ``console_login``).
    Its own event type, so a bot counting ``role_assumed`` counts role assumptions only."""
    return {
        "event_type": "production_access",
        "event_payload": {
            "account": account_key or a.account_id or None,
            "access": a.access,
            "event_name": a.event_name,
            "principal_arn": a.role_arn or None,
            "caller_type": a.caller_type,
            "iam_user": a.iam_user,
            "who": a.who,
            "event_id": a.event_id,
            "event_time": _z(a.event_time),
            "mfa": a.mfa,
            "kind": kind.value,
            **_attempts_payload(kind, a, attempts),
        },
    }


def alert_metadata(
    a: Assumption,
    kind: AlertKind,
    *,
    account_key: str | None,
    role_key: str | None,
    request_id: str | None,
    attempts: Mapping[str, Any] | None = None,
) -> dict:
    """``role_assumed`` for a role assumption, ``production_access`` for the other ways in."""
    if a.access == "role":
        return role_assumed_metadata(a, kind, account_key=account_key, role_key=role_key,
                                     request_id=request_id, attempts=attempts)
    return production_access_metadata(a, kind, account_key=account_key, attempts=attempts)


def grant_used_metadata(a: Assumption, *, request_id: str) -> dict:
    """Slack message metadata ``grant_used`` for the threaded reply on the grant's card.

    The security channel's alert carries ``role_assumed``; the reply must not, or every
    production assumption would be counted twice by anyone reading the metadata.
    """
    return {
        "event_type": "grant_used",
        "event_payload": {
            "request_id": request_id,
            "event_id": a.event_id,
            "shared_event_id": a.shared_event_id,
            "event_time": a.event_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }


def identity_changed_metadata(c: IdentityChange, *, person: str, loud: bool) -> dict:
    """Slack message metadata ``identity_changed`` (docs/REFERENCE.md)."""
    return {
        "event_type": "identity_changed",
        "event_payload": {
            "account": c.account_id,
            "person": person,
            "iam_user": c.iam_user,
            "event_name": c.event_name,
            "subject": c.subject,
            "event_id": c.event_id,
            "event_time": _z(c.event_time),
            "actor": c.actor,
            "by_self": c.by_self,
            "mfa": c.mfa,
            "error_code": c.error_code,
            "loud": loud,
        },
    }
