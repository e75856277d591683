"""Block Kit for role-assumption alerts in the security channel (pure: no I/O).

What each :class:`~chalicelib.alerts.AlertKind` looks like is decided in
``chalicelib.alerts.AlertKind``'s docstring; this module only renders it.

Safety rule: every string derived from the CloudTrail event (and, to be safe, from
the catalog and the grant) goes through :func:`escape_mrkdwn` exactly once, so a
crafted session name, SAML subject or user agent can never form ``<!channel>``,
``<@U...>`` or a disguised link. The only mention in any output is our own literal
:data:`LOUD_MENTION` on the ``UNCOVERED`` alert. Post these with ``link_names``
unset.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from chalicelib.alerts import AlertKind, Assumption, client_label, parse_utc
from chalicelib.slack.escape import escape_mrkdwn

__all__ = [
    "LOUD_MENTION",
    "alert_blocks",
    "format_event_time",
    "grant_used_metadata",
    "role_assumed_metadata",
    "usage_reply_text",
]

LOUD_MENTION = "<!here>"  # our literal text, only on UNCOVERED; never built from data
_MAX_VALUE = 300  # characters per escaped value: keeps every text object under Slack's limits
_NONE = "—"


def _e(value: Any, *, limit: int = _MAX_VALUE) -> str:
    """Escape one untrusted value, then cut it to ``limit`` characters (never inside an
    entity such as ``&amp;``); a dash for missing values."""
    if value is None or value == "":
        return _NONE
    text = escape_mrkdwn(str(value))
    if len(text) > limit:
        cut = text[: limit - 1]
        amp = cut.rfind("&")
        if amp != -1 and ";" not in cut[amp:]:
            cut = cut[:amp]  # drop a half entity
        text = cut + "…"
    return text


def format_event_time(moment: datetime) -> str:
    """``2026-11-12 14:03:07 UTC``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _hhmm(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%H:%M UTC")


def _iso_display(value: Any) -> str:
    parsed = parse_utc(value)
    return format_event_time(parsed) if parsed else _e(value)


def _mfa_text(mfa: bool | None) -> str:
    return {True: "yes", False: "no", None: "unknown"}[mfa]


def _account_role(a: Assumption, account_key: str | None, role_label: str | None) -> str:
    account = f"{_e(account_key)} ({_e(a.account_id)})" if account_key else _e(a.account_id)
    role = role_label.split("/", 1)[1] if role_label and "/" in role_label else (role_label or a.role_name)
    return f"{account} / {_e(role)}"


def _who(a: Assumption) -> str:
    who = _e(a.who)
    if a.session_name and a.session_name not in a.who:
        who += f" (session {_e(a.session_name, limit=64)})"
    return who


def _source_ip(a: Assumption) -> str:
    if a.via_console and a.source_ip == "AWS Internal":
        return "AWS Internal (console)"
    return _e(a.source_ip)


def _field(label: str, value: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=f"*{label}*\n{value}", verbatim=True)


def _detail_fields(a: Assumption, account_key: str | None, role_label: str | None) -> SectionBlock:
    return SectionBlock(
        fields=[
            _field("Who", _who(a)),
            _field("Account / role", _account_role(a, account_key, role_label)),
            _field("Event time", format_event_time(a.event_time)),
            _field("Source IP", _source_ip(a)),
            _field("Client", escape_mrkdwn(client_label(a.user_agent, a.via_console))),
            _field("MFA", _mfa_text(a.mfa)),
        ]
    )


def _context(a: Assumption) -> ContextBlock:
    copy = "role owner's copy" if a.copy == "role_owner" else "caller's copy"
    parts = [
        f"CloudTrail {_e(a.event_name)}",
        f"event {_e(a.event_id)}",
        _e(a.region),
        f"{copy} (recorded in {_e(a.recipient_account)})",
    ]
    return ContextBlock(elements=[MarkdownTextObject(text=" · ".join(parts), verbatim=True)])


def _grant_text(grant: Mapping[str, Any] | None) -> str:
    if not grant:
        return "*Covering grant*\n" + _NONE
    approvers = grant.get("approvers")
    if isinstance(approvers, (list, tuple)) and approvers:
        approved_by = _e(", ".join(str(p) for p in approvers))
    else:
        approved_by = _NONE
    return (
        "*Covering grant*\n"
        f"Request {_e(grant.get('request_id'))} for {_e(grant.get('requester'))}: {_e(grant.get('reason'))}\n"
        f"Approved by {approved_by} · granted {_iso_display(grant.get('granted_at'))}"
        f" · expires {_iso_display(grant.get('expires_at'))}"
    )


def alert_blocks(
    a: Assumption,
    kind: AlertKind,
    *,
    account_key: str | None,
    role_label: str | None,
    grant: Mapping[str, Any] | None,
) -> tuple[str, list[dict]]:
    """(fallback ``text``, ``blocks`` as dicts) for the security channel.

    ``grant`` (COVERED only): ``request_id, reason, approvers, requester, granted_at,
    expires_at`` (ISO ``Z`` strings). Total over every kind; the handler decides from
    ``kind.posts_to_security_channel`` whether to post at all.
    """
    where = _account_role(a, account_key, role_label)
    when = format_event_time(a.event_time)
    who = _who(a)
    blocks: list[Block]

    if kind is AlertKind.COVERED:
        request_id = _e(grant.get("request_id")) if grant else _NONE
        text = f"Production role assumed: {who} → {where} at {when} (grant {request_id})"
        blocks = [
            HeaderBlock(text=PlainTextObject(text="Production role assumed", emoji=True)),
            _detail_fields(a, account_key, role_label),
            SectionBlock(text=MarkdownTextObject(text=_grant_text(grant), verbatim=True)),
            _context(a),
        ]
    elif kind is AlertKind.UNCOVERED:
        text = f"{LOUD_MENTION} NO APPROVED GRANT: {who} assumed {where} at {when}"
        blocks = [
            HeaderBlock(text=PlainTextObject(text=":rotating_light: NO APPROVED GRANT", emoji=True)),
            SectionBlock(
                text=MarkdownTextObject(
                    text=(
                        f"{LOUD_MENTION} :rotating_light: *NO APPROVED GRANT* covers this production role "
                        "assumption. It may be break-glass, drift (a standing permission Drawbridge did "
                        "not create) or a bypass of Drawbridge: find out who and why."
                    )
                )
            ),
            _detail_fields(a, account_key, role_label),
            _context(a),
        ]
    elif kind is AlertKind.FAILED_ATTEMPT:
        client = escape_mrkdwn(client_label(a.user_agent, a.via_console))
        text = f"Denied attempt on production role {where} by {who} ({_e(a.error_code)}) at {when}"
        blocks = [
            SectionBlock(
                text=MarkdownTextObject(
                    text=(
                        f":no_entry_sign: Denied attempt on production role *{where}* by {who}: "
                        f"{_e(a.error_code)} at {when} from {_source_ip(a)} ({client}, MFA {_mfa_text(a.mfa)})"
                    ),
                    verbatim=True,
                )
            ),
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=f"{_e(a.error_message)} · event {_e(a.event_id)}",
                        verbatim=True,
                    )
                ]
            ),
        ]
    else:
        label = "non-production account" if kind is AlertKind.NOT_PRODUCTION else "account not in the catalog"
        text = f"Role assumed in a {label}: {who} → {where} at {when}"
        blocks = [ContextBlock(elements=[MarkdownTextObject(text=text, verbatim=True)])]

    return text, [block.to_dict() for block in blocks]


def usage_reply_text(a: Assumption) -> str:
    """The threaded reply on the grant's approval card, e.g.
    ``used at 14:03 UTC from 203.0.113.10, AWS CLI, MFA`` or
    ``used at 14:20 UTC via console switch-role``.
    """
    at = _hhmm(a.event_time)
    if a.failed:
        return f"denied at {at} ({_e(a.error_code)}) from {_source_ip(a)}"
    if a.event_name == "AssumeRoleWithSAML":
        return f"used at {at} via SAML {'console sign-in' if a.via_console else 'federation'}"
    if a.via_console:
        return f"used at {at} via console switch-role"
    parts = [f"used at {at}" + (f" from {_e(a.source_ip)}" if a.source_ip else "")]
    parts.append(escape_mrkdwn(client_label(a.user_agent, a.via_console)))
    if a.mfa is not None:
        parts.append("MFA" if a.mfa else "no MFA")
    return ", ".join(parts)


def role_assumed_metadata(
    a: Assumption,
    kind: AlertKind,
    *,
    account_key: str | None,
    role_key: str | None,
    request_id: str | None,
) -> dict:
    """Slack message metadata ``role_assumed`` (docs/REFERENCE.md, metadata) for the alert.

    ``request_id`` is None when no approved grant covers the assumption. Metadata is
    data, not mrkdwn: values are not escaped.
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
            "event_time": a.event_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "request_id": request_id,
            "kind": kind.value,
        },
    }


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
