"""Block Kit for the security channel's alerts (pure: no I/O): ways into an account
(role assumptions, root sessions, federation tokens, console sign-ins) and IAM changes
to a Drawbridge person's credentials.

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

from chalicelib.alerts import AlertKind, Assumption, IdentityChange, client_label, parse_utc
from chalicelib.slack.escape import escape_mrkdwn

__all__ = [
    "LOUD_MENTION",
    "access_label",
    "alert_blocks",
    "alert_metadata",
    "format_event_time",
    "grant_used_metadata",
    "identity_change_blocks",
    "identity_changed_metadata",
    "production_access_metadata",
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

    if kind is AlertKind.COVERED:
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


def _z(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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


# --------------------------------------------------------------------------- IAM changes to a person

_CHANGED = {
    "EnableMFADevice": ("MFA device", "enabled"),
    "DeactivateMFADevice": ("MFA device", "deactivated"),
    "DeleteVirtualMFADevice": ("virtual MFA device", "deleted"),
    "CreateAccessKey": ("access key", "created"),
    "CreateLoginProfile": ("console password (login profile)", "created"),
    "UpdateLoginProfile": ("console password (login profile)", "changed"),
}


def _change_sentence(c: IdentityChange, person: str) -> str:
    thing, verb = _CHANGED.get(c.event_name, (f"credentials ({c.event_name})", "changed"))
    subject = f" {_e(c.subject)}" if c.subject else ""
    where = _e(c.source_ip)
    if c.via_console and c.source_ip == "AWS Internal":
        where = "AWS Internal (console)"
    done = f"was {verb}" if not c.failed else f"was *not* {verb} ({_e(c.error_code)})"
    return (f"{_e(person)}'s {thing}{subject} {done} by {_e(c.actor)} from {where} at "
            f"{format_event_time(c.event_time)} (MFA {_mfa_text(c.mfa)})")


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def identity_change_blocks(c: IdentityChange, *, person: str, loud: bool) -> tuple[str, list[dict]]:
    """(fallback ``text``, ``blocks``): an IAM change to a Drawbridge person's credentials.

    ``person`` is the catalog key. Loud (``<!here>``, a header) when ``loud``
    (:func:`chalicelib.alerts.identity_change_loud`): someone else did it, or the caller's
    session had no MFA. A failed attempt is a quiet line.
    """
    sentence = _change_sentence(c, person)
    why = []
    if not c.by_self:
        why.append("done by someone other than the person")
    if c.mfa is not True:
        why.append("without MFA in the caller's session" if c.mfa is False else "MFA unknown")
    context = ContextBlock(elements=[MarkdownTextObject(
        text=" · ".join([f"CloudTrail {_e(c.event_name)}", f"event {_e(c.event_id)}", _e(c.region),
                         f"account {_e(c.account_id)}", f"client {escape_mrkdwn(client_label(c.user_agent, c.via_console))}"]),
        verbatim=True)])
    blocks: list[Block]
    if loud:
        text = f"{LOUD_MENTION} IAM change on a Drawbridge person: {sentence}"
        blocks = [
            HeaderBlock(text=PlainTextObject(text=":rotating_light: IAM change on a Drawbridge person", emoji=True)),
            SectionBlock(text=MarkdownTextObject(
                text=f"{LOUD_MENTION} :rotating_light: {sentence}. *{_sentence_case('; '.join(why))}*: "
                     "make sure the person knows and agrees."
            )),
            context,
        ]
    else:
        text = f"IAM change on a Drawbridge person: {sentence}"
        blocks = [SectionBlock(text=MarkdownTextObject(text=f":key: {text}", verbatim=True)), context]
    return text, [block.to_dict() for block in blocks]


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
