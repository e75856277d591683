"""Block Kit for a way into an account (pure: no I/O): the security channel's alert for
each :class:`~chalicelib.alerts.AlertKind` (:func:`alert_blocks`) and the threaded reply on
the covering grant's approval card (:func:`usage_reply_text`).
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

from chalicelib.alerts import AlertKind, Assumption, client_label
from chalicelib.slack.alert_views.text import (
    _NONE,
    LOUD_MENTION,
    _e,
    _hhmm,
    _iso_display,
    _mfa_text,
    format_event_time,
)
from chalicelib.slack.escape import escape_mrkdwn


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


def access_label(a: Assumption) -> str:
    """What kind of way in ``a`` is, in words (plain text, no data in it)."""
    if a.access == "root_session":
        return "root session (AssumeRoot)"
    if a.access == "federation_token":
        return "federation token (GetFederationToken)"
    if a.access == "console_login":
        return "root user console sign-in" if a.caller_type == "Root" else "IAM user console sign-in"
    return "production role"


def _detail_fields(a: Assumption, account_key: str | None, role_label: str | None) -> SectionBlock:
    fields = [
        _field("Who", _who(a)),
        _field("Account / role" if a.access == "role" else "Account / principal",
               _account_role(a, account_key, role_label)),
        _field("Event time", format_event_time(a.event_time)),
        _field("Source IP", _source_ip(a)),
        _field("Client", escape_mrkdwn(client_label(a.user_agent, a.via_console))),
        _field("MFA", _mfa_text(a.mfa)),
    ]
    if a.note:
        fields.append(_field("Task policy", _e(a.note)))
    return SectionBlock(fields=fields)


# Why a loud alert for a way in that no grant can cover: what it is, what to find out.
_UNCOVERABLE = {
    "root_session": (
        "a privileged *root session* was opened on a member account with `sts:AssumeRoot`. "
        "Root sessions never go through Drawbridge: find out who opened it and why."
    ),
    "federation_token": (
        "an IAM user of a production account minted *federated-user credentials* with "
        "`sts:GetFederationToken`. No Drawbridge grant can cover them, and they need a long-term "
        "access key in production: find out whose and why."
    ),
    "console_login:Root": (
        "the *root user* signed in to the console. No Drawbridge grant covers root: find out "
        "who holds the root credentials and why they were used."
    ),
    "console_login:IAMUser": (
        "an *IAM user of a production account* signed in to the console. Drawbridge grants roles "
        "to bastion users only: a console password in production bypasses it. Find out whose and why."
    ),
}


def _uncoverable_text(a: Assumption) -> str:
    key = a.access if a.access != "console_login" else f"console_login:{a.caller_type}"
    return _UNCOVERABLE.get(key, _UNCOVERABLE["console_login:IAMUser"])


def _attempts_text(attempts: Mapping[str, Any] | None) -> str | None:
    """``denied 7 times since 14:02 UTC, last at 14:09`` for a grouped line, None for one attempt."""
    if not attempts or int(attempts.get("count") or 1) <= 1:
        return None
    first, last = attempts.get("first"), attempts.get("last")
    since = f" since {_hhmm(first)}" if isinstance(first, datetime) else ""
    until = f", last at {last.astimezone(timezone.utc):%H:%M}" if isinstance(last, datetime) else ""
    return f"denied {int(attempts['count'])} times{since}{until}"


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
    attempts: Mapping[str, Any] | None = None,
) -> tuple[str, list[dict]]:
    """(fallback ``text``, ``blocks`` as dicts) for the security channel.

    ``grant`` (COVERED only): ``request_id, reason, approvers, requester, granted_at,
    expires_at`` (ISO ``Z`` strings). ``attempts`` (FAILED_ATTEMPT only): the group this
    attempt belongs to, ``count``, ``first`` and ``last`` (aware datetimes); with a count
    above one the line says how often and since when. Total over every kind; the
    handler decides from ``kind.posts_to_security_channel`` whether to post at all.
    """
    where = _account_role(a, account_key, role_label)
    when = format_event_time(a.event_time)
    who = _who(a)
    blocks: list[Block]

    if kind is AlertKind.COVERED and grant and grant.get("break_glass"):
        request_id = _e(grant.get("request_id"))
        requester, review = _e(grant.get("requester")), _e(grant.get("review"))
        text = (f"{LOUD_MENTION} BREAK-GLASS grant {request_id} used: {who} → {where} at {when} "
                f"(by @{requester}, review {review})")
        blocks = [
            HeaderBlock(text=PlainTextObject(text=":rotating_light: BREAK-GLASS grant used", emoji=True)),
            SectionBlock(text=MarkdownTextObject(text=(
                f"{LOUD_MENTION} :rotating_light: *BREAK-GLASS* grant {request_id} by @{requester} "
                f"({_e(grant.get('reason'))}), made without approvals, expires "
                f"{_iso_display(grant.get('expires_at'))}. Review: *{review}*."), verbatim=True)),
            _detail_fields(a, account_key, role_label),
            _context(a),
        ]
    elif kind is AlertKind.COVERED:
        request_id = _e(grant.get("request_id")) if grant else _NONE
        text = f"Production role assumed: {who} → {where} at {when} (grant {request_id})"
        blocks = [
            HeaderBlock(text=PlainTextObject(text="Production role assumed", emoji=True)),
            _detail_fields(a, account_key, role_label),
            SectionBlock(text=MarkdownTextObject(text=_grant_text(grant), verbatim=True)),
            _context(a),
        ]
    elif kind is AlertKind.UNCOVERED and a.access != "role":
        label = access_label(a)
        text = f"{LOUD_MENTION} NO APPROVED GRANT: {label} by {who} on {where} at {when}"
        blocks = [
            HeaderBlock(text=PlainTextObject(text=f":rotating_light: NO APPROVED GRANT: {label}", emoji=True)),
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"{LOUD_MENTION} :rotating_light: *NO APPROVED GRANT*: {_uncoverable_text(a)}"
                )
            ),
            _detail_fields(a, account_key, role_label),
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
        on = "on production role" if a.access == "role" else f"({access_label(a)}) on"
        repeated = _attempts_text(attempts)
        if repeated is None:
            text = f"Denied attempt {on} {where} by {who} ({_e(a.error_code)}) at {when}"
            line = (f":no_entry_sign: Denied attempt {on} *{where}* by {who}: "
                    f"{_e(a.error_code)} at {when} from {_source_ip(a)} ({client}, MFA {_mfa_text(a.mfa)})")
        else:
            text = f"Denied attempt {on} {where} by {who} ({_e(a.error_code)}): {repeated}"
            line = (f":no_entry_sign: Denied attempts {on} *{where}* by {who}: {_e(a.error_code)}, "
                    f"*{repeated}* (this one at {when} from {_source_ip(a)}, {client}, MFA {_mfa_text(a.mfa)})")
        blocks = [
            SectionBlock(text=MarkdownTextObject(text=line, verbatim=True)),
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
