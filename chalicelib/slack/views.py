"""Block Kit and text for approval cards, DMs and command replies.

Pure rendering: values in, (fallback text, blocks as dicts) out. Every string
that came from a user (reason) or from outside (an IAM error in ``note``) is raw
(what was typed or returned) and is escaped here, exactly once, with
``escape_mrkdwn`` so ``<!channel>``, ``<!here>`` or ``<@U…>`` cannot ping anyone and
``<https://evil|label>`` cannot disguise a link. Text objects that hold such a value
are ``verbatim`` so Slack does not turn a bare URL or ``#channel`` in it into a link
either (explicit ``<@U…>`` mentions of our own still work in them).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Mapping, Sequence
from urllib.parse import urlencode

from typing import TYPE_CHECKING

from ..domain.duration import format_duration
from ..domain.model import GrantStatus, Request, RequestStatus, hhmm, iso_z, parse_iso
from ..cutoff import bound_of as cutoff_bound
from ..domain.timing import MAX_SESSION, sessions_end_by
from .escape import escape_mrkdwn

if TYPE_CHECKING:
    from slack_sdk.models.blocks import MarkdownTextObject

APPROVE = "approve_request"
DENY = "deny_request"
#: opens a small form for the denier's reason (:func:`deny_form`); its Submit denies
DENY_WITH_REASON = "deny_with_reason"
#: the buttons of an extension request on the card (value: the request id; block_id
#: ``extend:<request id>:<extension number>``, so a click on an earlier one is refused)
APPROVE_EXTENSION = "approve_extension"
DENY_EXTENSION = "deny_extension"

# slack_sdk's Block Kit models are imported where a card or DM is built (in the worker), not
# at import: the ack path renders plain text only, and importing slack_sdk.models imports the
# whole slack_sdk package (WebClient included) - a large share of a cold slash command.


def _md(text: str) -> MarkdownTextObject:
    from slack_sdk.models.blocks import MarkdownTextObject

    return MarkdownTextObject(text=text)


def _verbatim(text: str) -> MarkdownTextObject:
    """mrkdwn holding user or outside text (already escaped): no auto-linking of bare
    URLs, channel names or @words in it."""
    from slack_sdk.models.blocks import MarkdownTextObject

    return MarkdownTextObject(text=text, verbatim=True)


def _mention(people: Mapping[str, str], key: str | None) -> str:
    slack = people.get(key or "")
    return f"<@{slack}>" if slack else f"@{escape_mrkdwn(key)}"


def _status_line(req: Request, people: Mapping[str, str]) -> str:
    who = ", ".join(_mention(people, p) for p in req.approvers)
    g = req.grant_status
    if g is GrantStatus.GRANTING:
        return f":hourglass_flowing_sand: Approved by {who}; granting access now…"
    if g is GrantStatus.ACTIVE:
        return (f":white_check_mark: Approved by {who}. *Access granted until {hhmm(req.expires_at)}*"
                f"{_extended_note(req)}")
    if g is GrantStatus.REVOKING:
        return f":hourglass_flowing_sand: Revoking (asked by {_mention(people, req.ended_by)})…"
    if g is GrantStatus.REVOKED:
        return (f":no_entry: Access revoked by {_mention(people, req.ended_by)} "
                f"at {hhmm(req.ended_at)} (approved by {who}){_sessions_note(req)}")
    if g is GrantStatus.EXPIRED:
        return f":hourglass: Access expired at {hhmm(req.expires_at)} (approved by {who}){_sessions_note(req)}"
    if g is GrantStatus.FAILED:
        return (f":x: Approved by {who}, but the grant failed: {escape_mrkdwn(req.note or 'unknown error')}"
                f"{_sessions_note(req) if req.cut_before else ''}")
    if req.status is RequestStatus.DENIED:
        return (f":no_entry_sign: Denied by {_mention(people, req.decided_by)} at {hhmm(req.decided_at)}"
                f"{_denial_reason(req)}")
    if req.status is RequestStatus.CANCELLED:
        return f":wastebasket: Cancelled by {_mention(people, req.decided_by)} at {hhmm(req.decided_at)}"
    if req.status is RequestStatus.EXPIRED:
        return f":hourglass: Expired at {hhmm(req.decided_at)} without enough approvals"
    return f":hourglass_flowing_sand: Waiting for approval (open until {hhmm(req.pending_until)})"


def _denial_reason(req: Request) -> str:
    """The denier's reason (the deny form's), as a quote: empty when none was given."""
    return f": “{escape_mrkdwn(req.note)}”" if req.status is RequestStatus.DENIED and req.note else ""


def _extended_note(req: Request) -> str:
    if not req.extended_seconds:
        return ""
    return f" (extended by {format_duration(req.extended_seconds)})"


def extension_line(req: Request, people: Mapping[str, str], approvers: Sequence[str]) -> str:
    """The card's line about the grant's latest extension request (empty: none)."""
    ext = req.extension
    if ext is None:
        return ""
    plus = format_duration(ext.seconds)
    asked = f"by {_mention(people, req.requester)} at {hhmm(ext.requested_at)}"
    why = f" — {escape_mrkdwn(ext.reason)}" if ext.reason else ""
    if ext.state == ext.PENDING:
        until = hhmm(req.expires_at + timedelta(seconds=ext.seconds))
        who = " ".join(_mention(people, a) for a in approvers if a != req.requester) or "none"
        got = ", ".join(_mention(people, p) for p in ext.approvers) or "none yet"
        return (f":hourglass_flowing_sand: *Extension asked* {asked}: +{plus}, to {until}{why}\n"
                f"Approvals {len(ext.approvals)} of {ext.required}: {got}. Approvers: {who}. "
                f"Access stays in force until {hhmm(req.expires_at)} meanwhile.")
    if ext.state == ext.APPROVED:
        by = ", ".join(_mention(people, p) for p in ext.approvers) or "no approval needed"
        return f":hourglass_flowing_sand: Extension +{plus} approved ({by}); applying it…"
    if ext.state == ext.APPLIED:
        by = ", ".join(_mention(people, p) for p in ext.approvers) or "no approval needed"
        return (f":arrows_clockwise: Extended +{plus} ({by}){why}: until {hhmm(ext.new_expires_at)}, "
                f"was {hhmm(ext.old_expires_at)}")
    if ext.state == ext.DENIED:
        return (f":no_entry_sign: Extension +{plus} {asked} was denied by {_mention(people, ext.decided_by)} "
                f"at {hhmm(ext.decided_at)}")
    if ext.state == ext.LAPSED:
        return f":hourglass: Extension +{plus} {asked} lapsed: {escape_mrkdwn(ext.note or 'the grant ended first')}"
    return f":x: Extension +{plus} could not be applied: {escape_mrkdwn(ext.note or 'unknown error')}"


def card(req: Request, people: Mapping[str, str], approvers: Sequence[str]) -> tuple[str, list[dict]]:
    """The approval card, rendered from the table's record.

    ``people`` maps person keys to Slack user ids; ``approvers`` are the
    role's approvers (mentioned while the request is pending).
    """
    from slack_sdk.models.blocks import ActionsBlock, ButtonElement, ContextBlock, HeaderBlock, SectionBlock

    if req.break_glass:
        return break_glass_card(req, people, approvers)
    prod = " :rotating_light: *production*" if req.production else ""
    reason = escape_mrkdwn(req.reason) if req.reason else "_none given_"
    got = ", ".join(_mention(people, p) for p in req.approvers) or "none yet"
    fields = [
        _verbatim(f"*Requester*\n{_mention(people, req.requester)} (IAM user `{escape_mrkdwn(req.iam_user)}`)"),
        _md(f"*Access*\n`{req.label}`{prod}\n`{req.role_arn}`"),
        _md(f"*Duration*\n{format_duration(req.duration_seconds)}"
            + (f" + {format_duration(req.extended_seconds)} extended" if req.extended_seconds else "")),
        _md(f"*Approvals*\n{len(req.approvals)} of {req.approvals_required}: {got}"),
    ]
    blocks = [
        HeaderBlock(text=f"AWS access request {req.request_id}"),
        SectionBlock(fields=fields),
        SectionBlock(text=_verbatim(f"*Reason*\n{reason}")),
        ContextBlock(elements=[_verbatim(_status_line(req, people))]),  # may hold an IAM error
    ]
    if (line := extension_line(req, people, approvers)):
        blocks.append(SectionBlock(text=_verbatim(line)))  # holds the extension's reason
    ext = req.extension
    if ext is not None and ext.state == ext.PENDING and req.grant_status is GrantStatus.ACTIVE:
        blocks.append(extension_buttons(req))
    if req.status is RequestStatus.PENDING:
        who = " ".join(_mention(people, a) for a in approvers if a != req.requester)
        blocks.append(ContextBlock(elements=[_md(f"Approvers: {who or 'none'}")]))
        blocks.append(ActionsBlock(block_id=f"decide:{req.request_id}", elements=[
            ButtonElement(text="Approve", action_id=APPROVE, value=req.request_id, style="primary"),
            ButtonElement(text="Deny", action_id=DENY, value=req.request_id, style="danger"),
            ButtonElement(text="Deny with reason…", action_id=DENY_WITH_REASON, value=req.request_id),
        ]))
    text = (f"AWS access request {req.request_id}: {req.requester} wants {req.label} for "
            f"{format_duration(req.duration_seconds)} ({req.status.value.lower()}"
            f"{'' if req.grant_status is GrantStatus.NONE else ', ' + req.grant_status.value.lower()})")
    return text, [b.to_dict() for b in blocks]


def switch_role_url(account_id: str, role_name: str, display_name: str) -> str:
    query = urlencode({"account": account_id, "roleName": role_name, "displayName": display_name})
    return f"https://signin.aws.amazon.com/switchrole?{query}"


def role_name_of(role_arn: str) -> str:
    return role_arn.split(":role/", 1)[1]


#: stands in the CLI profile when IAM lists no MFA device for the person
NO_MFA_DEVICE = "YOUR-MFA-DEVICE-ARN"


def cli_profile(req: Request) -> str:
    """The ``~/.aws/config`` profile for aws-vault, naming the MFA device recorded at grant
    time (the catalog's ``mfa_serial`` or the device IAM lists for the user), never a guess."""
    name = f"{req.account}-{req.role}"
    return (
        f"[profile {name}]\n"
        f"source_profile = bastion\n"
        f"role_arn = {req.role_arn}\n"
        f"mfa_serial = {req.mfa_serial or NO_MFA_DEVICE}\n"
        f"role_session_name = {req.iam_user}\n"
    )


def cli_session_profile(req: Request) -> str:
    """The plain-CLI profile: assume the role *from an MFA session*, not from the keys."""
    return (
        f"[profile {req.account}-{req.role}-cli]\n"
        f"source_profile = bastion-mfa\n"
        f"role_arn = {req.role_arn}\n"
        f"role_session_name = {req.iam_user}\n"
    )


def granted_dm(req: Request, bastion_account_id: str, cut_offs: bool = True,
               denied_before: datetime | None = None) -> tuple[str, list[dict]]:
    """Why two CLI flows: the grant requires ``aws:MultiFactorAuthPresent``, which IAM sets
    only for requests signed with credentials that came from an MFA sign-in. A plain
    ``aws --profile`` with ``mfa_serial`` calls AssumeRole with the long-term keys (the MFA
    code only reaches the role's trust policy), so the grant would deny it. aws-vault's
    default flow (GetSessionToken with MFA, then AssumeRole with that session) and an MFA
    session made first with ``aws sts get-session-token`` both pass the grant and the trust."""
    from slack_sdk.models.blocks import ContextBlock, SectionBlock

    url = switch_role_url(req.account_id, role_name_of(req.role_arn), f"{req.label}")
    serial = req.mfa_serial or NO_MFA_DEVICE
    until = f"{iso_z(req.expires_at)} ({hhmm(req.expires_at)})"
    name = f"{req.account}-{req.role}"
    blocks = [
        SectionBlock(text=_md(
            f":white_check_mark: *Access granted: `{req.label}`* ({req.request_id})\n"
            f"You may assume `{req.role_arn}` with MFA until *{until}*. "
            + ("IAM enforces the expiry itself, and when the grant ends (or is revoked) the role denies the "
               "sessions you started under it." if cut_offs else
               "IAM enforces the expiry itself; sessions you start last at most the role's session length."))),
        SectionBlock(text=_md(f"*Console:* <{url}|Switch role to {req.label}>")),
        SectionBlock(text=_md(
            "*aws-vault* (recommended) — add to `~/.aws/config` (`bastion` holds your bastion access "
            f"keys: `aws-vault add bastion`):\n```{cli_profile(req)}```\n"
            f"Then `aws-vault exec {name} -- aws sts get-caller-identity`. aws-vault first opens an MFA "
            "session (GetSessionToken) and assumes the role from it, which is what the grant requires.")),
        SectionBlock(text=_md(
            "*Plain AWS CLI* — the grant needs an MFA *session*; `mfa_serial` on the role profile is not "
            "enough (the CLI would call AssumeRole with your long-term keys). First:\n"
            f"```aws sts get-session-token --profile bastion --serial-number {serial} --token-code <code>```\n"
            "put the three values it returns into a `[bastion-mfa]` section of `~/.aws/credentials` "
            "(`aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`), then add:\n"
            f"```{cli_session_profile(req)}```\n"
            f"and run `aws --profile {name}-cli sts get-caller-identity`.")),
        ContextBlock(elements=[_md(
            ":information_source: IAM can take a moment to apply a new grant; if the first "
            "AssumeRole is denied, wait a few seconds and retry.")]),
    ]
    if denied_before is not None:
        blocks.insert(1, SectionBlock(text=_md(
            f":warning: Your previous grant on `{req.label}` ended moments ago, and the role denies your "
            f"sessions issued before *{denied_before:%H:%M:%S} UTC* (IAM may honour an ended grant that long): "
            "assume the role after that.")))
    if not req.mfa_serial:
        blocks.insert(2, SectionBlock(text=_md(
            f":warning: IAM lists no MFA device for your user `{escape_mrkdwn(req.iam_user)}`, and the "
            "grant works only with MFA: enrol one (IAM console → Security credentials → Assign MFA "
            f"device), then put its ARN in place of `{NO_MFA_DEVICE}`.")))
    text = f"Access granted: {req.label} until {iso_z(req.expires_at)} ({req.request_id})"
    return text, [b.to_dict() for b in blocks]


def extension_buttons(req: Request):
    """The Approve / Deny buttons of the record's extension (on the card and in the
    approvers' DMs): value the request id, block ``extend:<request id>:<n>``."""
    from slack_sdk.models.blocks import ActionsBlock, ButtonElement

    return ActionsBlock(block_id=f"extend:{req.request_id}:{req.extension.n}", elements=[
        ButtonElement(text="Approve extension", action_id=APPROVE_EXTENSION, value=req.request_id, style="primary"),
        ButtonElement(text="Deny extension", action_id=DENY_EXTENSION, value=req.request_id, style="danger"),
    ])


def extension_ask(req: Request, people: Mapping[str, str], approvers: Sequence[str]) -> tuple[str, list[dict]]:
    """The DM that asks an approver about an extension, with its buttons."""
    from slack_sdk.models.blocks import SectionBlock

    ext = req.extension
    why = f": {escape_mrkdwn(ext.reason)}" if ext.reason else ""
    until = hhmm(req.expires_at + timedelta(seconds=ext.seconds))
    text = (f":hourglass_flowing_sand: {_mention(people, req.requester)} asks to extend `{req.label}` "
            f"({req.request_id}) by {format_duration(ext.seconds)}, to {until}{why}. "
            f"{ext.required} approval{'s' if ext.required != 1 else ''} needed; the grant stays in force until "
            f"{hhmm(req.expires_at)} meanwhile, and the request lapses if it ends first.")
    fallback = (f"{req.requester} asks to extend {req.label} ({req.request_id}) by "
                f"{format_duration(ext.seconds)}")
    return fallback, [SectionBlock(text=_verbatim(text)).to_dict(), extension_buttons(req).to_dict()]


def approval_reminder(req: Request, people: Mapping[str, str], n: int) -> tuple[str, list[dict]]:
    """The DM that reminds an approver of a waiting request, with the card's buttons."""
    from slack_sdk.models.blocks import ActionsBlock, ButtonElement, SectionBlock

    why = f": {escape_mrkdwn(req.reason)}" if req.reason else ""
    text = (f":bell: Reminder: {_mention(people, req.requester)} is waiting for `{req.label}` for "
            f"{format_duration(req.duration_seconds)} ({req.request_id}, asked at {hhmm(req.created_at)}){why}. "
            f"{len(req.approvals)} of {req.approvals_required} approvals so far; it expires at "
            f"{hhmm(req.pending_until)} if nobody decides.")
    buttons = ActionsBlock(block_id=f"remind:{req.request_id}:{n}", elements=[
        ButtonElement(text="Approve", action_id=APPROVE, value=req.request_id, style="primary"),
        ButtonElement(text="Deny", action_id=DENY, value=req.request_id, style="danger"),
        ButtonElement(text="Deny with reason…", action_id=DENY_WITH_REASON, value=req.request_id),
    ])
    fallback = f"Reminder: {req.requester} is waiting for {req.label} ({req.request_id})"
    return fallback, [SectionBlock(text=_verbatim(text)).to_dict(), buttons.to_dict()]


def escalation_text(req: Request, people: Mapping[str, str], deciders: Sequence[str]) -> str:
    """The approvals channel's notice of an escalated request (mentions who may decide it)."""
    who = " ".join(_mention(people, p) for p in deciders) or "nobody"
    why = f" ({escape_mrkdwn(req.reason)})" if req.reason else ""
    return (f":rotating_light: Still waiting since {hhmm(req.created_at)}: {_mention(people, req.requester)}'s "
            f"request {req.request_id} for `{req.label}`{why}, {len(req.approvals)} of {req.approvals_required} "
            f"approvals. {who}: approve or deny on its card before {hhmm(req.pending_until)}, when it expires.")


def escalated_dm(req: Request, payload: Mapping, people: Mapping[str, str]) -> str:
    fallback = payload.get("fallback_approvers") or []
    more = (f"; {', '.join(_mention(people, p) for p in fallback)} may approve it too now" if fallback else "")
    return (f":rotating_light: Your request {req.request_id} for `{req.label}` is still waiting, so I raised it "
            f"in the approvals channel{more}. It expires at {hhmm(req.pending_until)} if nobody decides.")


def approval_counted_dm(req: Request, payload: Mapping, people: Mapping[str, str]) -> str:
    """The requester's DM: one approval counted, more needed (from what the job carries, so a
    late DM says what that click did)."""
    have, need = payload.get("approvals", len(req.approvals)), payload.get("required", req.approvals_required)
    return (f":thumbsup: {_mention(people, payload.get('approver'))} approved your request {req.request_id} "
            f"for `{req.label}` ({have} of {need} approvals); it waits for {need - have} more. It expires at "
            f"{hhmm(req.pending_until)} if nobody else decides.")


def reminded_dm(req: Request, payload: Mapping, people: Mapping[str, str]) -> str:
    """The requester's DM: who was reminded about their waiting request."""
    who = ", ".join(_mention(people, p) for p in payload.get("reminded") or []) or "nobody"
    return (f":bell: Your request {req.request_id} for `{req.label}` is still waiting "
            f"({len(req.approvals)} of {req.approvals_required} approvals): I reminded {who}. It expires at "
            f"{hhmm(req.pending_until)} if nobody decides.")


def extension_dm(label: str, event_type: str, payload: Mapping, people: Mapping[str, str]) -> str:
    """The requester's DM about one extension, from what the job that owes it carries (so a
    late DM says what happened to *that* extension, whatever came after)."""
    rid = payload.get("request_id", "")
    if event_type == "access_extended":
        new, old = parse_iso(payload["expires_at"]), parse_iso(payload["old_expires_at"])
        by = ", ".join(_mention(people, p) for p in payload.get("approvers") or []) or "no approval needed"
        return (f":arrows_clockwise: Your access to `{label}` ({rid}) is extended by "
                f"{format_duration(int((new - old).total_seconds()))} ({by}): *until {iso_z(new)} ({hhmm(new)})*, "
                f"was {hhmm(old)}. Nothing to do: your sessions keep working, and you may start new ones until "
                "then.")
    if event_type == "extension_denied":
        return (f":no_entry_sign: Your extension request for `{label}` ({rid}) was denied by "
                f"{_mention(people, payload.get('denied_by'))}; the grant keeps its expiry.")
    return (f":x: Your extension of `{label}` ({rid}) could not be applied: "
            f"{escape_mrkdwn(payload.get('reason') or 'unknown error')}. The grant keeps its expiry.")


def sessions_state(req: Request) -> str:
    """What became of the role sessions an ended grant let the person start (issue 15):
    cut off at the target role, being cut off, still live because cutting them off failed,
    or (cut-offs off) left to run out. Empty for a request that never held a grant."""
    if req.cut_before is None:
        end = sessions_end_by(req) if req.granted_at is not None else None
        return f"sessions already started end by {hhmm(end)} at the latest" if end else ""
    if req.sessions_cut_at is not None:
        return f"live sessions ended at {hhmm(req.sessions_cut_at)}"
    live_until = hhmm(cutoff_bound(req.cut_before) + MAX_SESSION)
    if req.cut_given_up_at is not None:
        return (f":warning: live sessions could not be cut off and ran until {live_until} at the latest "
                f"({escape_mrkdwn(req.cut_note or 'unknown error')})")
    if req.cut_attempts:
        return (f":warning: sessions still live until {live_until} at the latest: cutting them off failed "
                f"({escape_mrkdwn(req.cut_note or 'unknown error')}); Drawbridge keeps trying")
    return "cutting off live sessions…"


def _sessions_note(req: Request) -> str:
    state = sessions_state(req)
    return f"; {state}" if state else ""


def ended_dm(req: Request, people: Mapping[str, str]) -> str:
    text = _ended_dm(req, people)
    ext = req.extension
    if ext is not None and ext.state == ext.LAPSED and req.grant_status is not GrantStatus.ACTIVE:
        text += (f" Your extension request (+{format_duration(ext.seconds)}) lapsed with it: "
                 f"{escape_mrkdwn(ext.note or 'the grant ended first')}.")
    return text


def _ended_dm(req: Request, people: Mapping[str, str]) -> str:
    if req.grant_status is GrantStatus.EXPIRED:
        return (f":hourglass: Your access to `{req.label}` ({req.request_id}) expired at "
                f"{hhmm(req.expires_at)}{_sessions_note(req)}.")
    if req.grant_status is GrantStatus.REVOKED:
        return (f":no_entry: Your access to `{req.label}` ({req.request_id}) was revoked by "
                f"{_mention(people, req.ended_by)} at {hhmm(req.ended_at)}{_sessions_note(req)}.")
    if req.grant_status is GrantStatus.FAILED and req.granted_at is not None:  # it was ACTIVE (vanished)
        return (f":x: Your access to `{req.label}` ({req.request_id}) ended at {hhmm(req.ended_at)}: "
                f"{escape_mrkdwn(req.note or 'unknown error')}{_sessions_note(req)}.")
    if req.grant_status is GrantStatus.FAILED:
        return (f":x: Your request {req.request_id} for `{req.label}` was approved, but the grant "
                f"failed: {escape_mrkdwn(req.note or 'unknown error')}. You have NOT been granted access.")
    if req.status is RequestStatus.DENIED:
        return (f":no_entry_sign: Your request {req.request_id} for `{req.label}` was denied by "
                f"{_mention(people, req.decided_by)}{_denial_reason(req)}.")
    if req.status is RequestStatus.EXPIRED:
        return f":hourglass: Your request {req.request_id} for `{req.label}` expired without enough approvals."
    if req.status is RequestStatus.CANCELLED:
        return f":wastebasket: Your request {req.request_id} for `{req.label}` was cancelled by {_mention(people, req.decided_by)}."
    return f"Your request {req.request_id} for `{req.label}` is {req.status.value.lower()}."


def help_text(person_key: str, roles: Sequence, usage: str) -> str:
    """``usage`` goes in as is (``parse.USAGE``, our own mrkdwn); catalog values are escaped here."""
    if not roles:
        mine = "You may not request any role. Ask an admin to add you to `policies/access.toml`."
    else:
        lines = []
        for r in roles:
            extra = []
            # Only who could approve *this person's* request: never themselves without self_approval.
            who = [a for a in r.approvers if a != person_key or r.self_approval]
            extra.append(f"{r.approvals_required} approval{'s' if r.approvals_required > 1 else ''} "
                         f"from {', '.join('@' + escape_mrkdwn(a.removeprefix('@')) for a in who)}")
            if r.max_extended_duration_seconds > r.max_duration_seconds:
                n = r.extend_approvals
                extra.append(f"extendable to {format_duration(r.max_extended_duration_seconds)} in total"
                             + (f" ({n} approval{'s' if n != 1 else ''})" if n else " (no approval needed)"))
            if r.reason_required:
                extra.append("reason required")
            if r.production:
                extra.append("production")
            if person_key in getattr(r, "break_glass", ()):
                extra.append(f"break-glass up to {format_duration(r.break_glass_max_seconds)}")
            lines.append(f"• `{r.label}` up to {format_duration(r.max_duration_seconds)} — {'; '.join(extra)}")
        mine = f"What you (@{escape_mrkdwn(person_key)}) may request:\n" + "\n".join(lines)
    return f"{usage}\n\n{mine}"


def list_text(reqs: Sequence[Request], now: datetime, waiting: Sequence[Request] = (),
              ended: Sequence[Request] = ()) -> str:
    """``reqs``: the person's own open requests; ``waiting``: pending requests of others
    that they could approve right now; ``ended``: their grants that ended recently, with
    what became of their live sessions."""
    mine = _own_requests(reqs, now)
    if ended:
        lines = [f"• `{r.request_id}` `{r.label}` — {r.info.label} at {hhmm(r.ended_at or r.expires_at)}; "
                 f"{sessions_state(r)}" for r in sorted(ended, key=lambda r: r.ended_at or r.expires_at)]
        mine += "\n\nEnded within the last hour:\n" + "\n".join(lines)
    if not waiting:
        return mine
    lines = []
    for r in sorted(waiting, key=lambda r: r.created_at):
        ext = r.extension
        if r.status is not RequestStatus.PENDING and ext is not None:
            lines.append(f"• `{r.request_id}` @{escape_mrkdwn(r.requester)} asks to extend `{r.label}` by "
                         f"{format_duration(ext.seconds)} (active until {hhmm(r.expires_at)}), "
                         f"{len(ext.approvals)} of {ext.required} approvals")
            continue
        lines.append(f"• `{r.request_id}` @{escape_mrkdwn(r.requester)} wants `{r.label}` for "
                     f"{format_duration(r.duration_seconds)}, {len(r.approvals)} of {r.approvals_required} "
                     f"approvals, open until {hhmm(r.pending_until)}")
    return f"{mine}\n\nWaiting for your approval (on the cards in the approvals channel):\n" + "\n".join(lines)


def _own_requests(reqs: Sequence[Request], now: datetime) -> str:
    if not reqs:
        return "You have no pending or active requests."
    lines = []
    for r in sorted(reqs, key=lambda r: r.created_at):
        if r.status is RequestStatus.PENDING:
            state = f"pending, {len(r.approvals)} of {r.approvals_required} approvals"
        elif r.grant_status is GrantStatus.ACTIVE:
            left = max(0, int((r.expires_at - now).total_seconds()) // 60 * 60)
            state = f"*active* until {hhmm(r.expires_at)} ({format_duration(left)} left)"
            if r.extended_seconds:
                state += f", extended by {format_duration(r.extended_seconds)}"
            ext = r.extension
            if ext is not None and ext.state == ext.PENDING:
                state += (f"; extension +{format_duration(ext.seconds)} waiting, {len(ext.approvals)} of "
                          f"{ext.required} approvals")
            elif ext is not None and ext.state == ext.APPROVED:
                state += f"; extension +{format_duration(ext.seconds)} being applied"
        else:
            state = r.info.label  # the state table's name for it
        lines.append(f"• `{r.request_id}` `{r.label}` {format_duration(r.duration_seconds)} — {state}")
    return "Your requests:\n" + "\n".join(lines)


# --------------------------------------------------------------------------- break-glass

CONFIRM_BREAK_GLASS = "confirm_break_glass"
ACK_BREAK_GLASS = "ack_break_glass"
FLAG_BREAK_GLASS = "flag_break_glass"
#: our own literal mention on break-glass messages; never built from data
HERE = "<!here>"


def break_glass_preview(p) -> tuple[str, list[dict]]:
    """The ephemeral answer to ``/aws-access breakglass ...`` that passed every check
    (``usecases.outcomes.BreakGlassPreview``): what a Confirm does, and the button. Plain
    dicts (the ack path does not import slack_sdk's models)."""
    dur = format_duration(p.seconds)
    prod = " (production)" if p.production else ""
    who = ", ".join(f"@{escape_mrkdwn(a)}" for a in p.approvers) or "nobody"
    review = format_duration(p.review_within_seconds)
    reason = escape_mrkdwn(p.reason)
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": (
            f":rotating_light: *Break-glass: `{p.label}`{prod} for {dur}, without approvals.* Nothing has "
            f"happened yet.\nIf you confirm, Drawbridge grants it to you at once, until about "
            f"*{hhmm(p.until)}* ({dur} from when you confirm), with the same MFA and expiry conditions as "
            "every grant.")}},
        {"type": "section", "text": {"type": "mrkdwn", "text": (
            f"Everyone is told: an `@here` in <#{p.approvals_channel}> and in <#{p.security_channel}> naming "
            f"you, the role, your reason and the end time. The role's approvers ({who}) must then review it "
            f"(acknowledge or flag) within {review}; until they do they are reminded, and after that "
            "#security is.")}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Reason*\n{reason}", "verbatim": True}},
        {"type": "actions", "block_id": "break_glass_confirm", "elements": [
            {"type": "button", "action_id": CONFIRM_BREAK_GLASS, "value": p.confirm, "style": "danger",
             "text": {"type": "plain_text", "text": "Confirm break-glass"}}]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": (
            "Changed your mind? Do nothing (or dismiss this message): nothing happens without Confirm.")}]},
    ]
    text = f"Break-glass {p.label} for {dur}: nothing has happened yet; confirm with the button to grant it."
    return text, blocks


def _break_glass_status(req: Request, people: Mapping[str, str]) -> str:
    g = req.grant_status
    if g is GrantStatus.GRANTING:
        return ":hourglass_flowing_sand: Break-glass: granting access now…"
    if g is GrantStatus.ACTIVE:
        return f":rotating_light: *Break-glass access granted until {hhmm(req.expires_at)}*"
    if g is GrantStatus.REVOKING:
        return f":hourglass_flowing_sand: Revoking (asked by {_mention(people, req.ended_by)})…"
    if g is GrantStatus.REVOKED:
        return f":no_entry: Access revoked by {_mention(people, req.ended_by)} at {hhmm(req.ended_at)}{_sessions_note(req)}"
    if g is GrantStatus.EXPIRED:
        return f":hourglass: Access expired at {hhmm(req.expires_at)}{_sessions_note(req)}"
    return (f":x: The break-glass grant failed: {escape_mrkdwn(req.note or 'unknown error')}"
            f"{_sessions_note(req) if req.cut_before else ''}")


def review_line(req: Request, people: Mapping[str, str], approvers: Sequence[str]) -> str:
    """Where the review of a break-glass grant stands (the card's review line)."""
    if req.review_outcome == "acknowledged":
        return f":white_check_mark: Review: acknowledged by {_mention(people, req.reviewed_by)} at {hhmm(req.reviewed_at)}"
    if req.review_outcome == "flagged":
        return (f":triangular_flag_on_post: Review: *flagged* by {_mention(people, req.reviewed_by)} at "
                f"{hhmm(req.reviewed_at)}: {escape_mrkdwn(req.review_note or '')} (#security was told)")
    who = " ".join(_mention(people, a) for a in approvers if a != req.requester) or "nobody"
    line = (f":eyes: Review: *pending*. An approver of `{req.label}` ({who}) must acknowledge or flag this "
            f"by {hhmm(req.review_due_at) if req.review_due_at else '?'}")
    if req.review_reminders:
        line += f"; reminded {req.review_reminders} time{'s' if req.review_reminders > 1 else ''}"
    if req.review_escalated_at is not None:
        line += f". :warning: Overdue: #security was told at {hhmm(req.review_escalated_at)}"
    return line


def break_glass_card(req: Request, people: Mapping[str, str], approvers: Sequence[str]) -> tuple[str, list[dict]]:
    """The broadcast card of a break-glass grant, in the approvals channel: loud, who, what,
    why and until when, its state, and its review (with the review controls while open)."""
    from slack_sdk.models.blocks import (ActionsBlock, ButtonElement, ContextBlock, HeaderBlock, InputBlock,
                                         PlainTextInputElement, SectionBlock)

    prod = " :rotating_light: *production*" if req.production else ""
    until = f"{iso_z(req.expires_at)} ({hhmm(req.expires_at)})" if req.expires_at else "?"
    blocks = [
        HeaderBlock(text=f"BREAK-GLASS access {req.request_id}"),
        SectionBlock(text=_md(f"{HERE} :rotating_light: {_mention(people, req.requester)} used *break-glass*: "
                              f"`{req.label}` without approvals, until *{until}*.")),
        SectionBlock(fields=[
            _verbatim(f"*Requester*\n{_mention(people, req.requester)} (IAM user `{escape_mrkdwn(req.iam_user)}`)"),
            _md(f"*Access*\n`{req.label}`{prod}\n`{req.role_arn}`"),
            _md(f"*Duration*\n{format_duration(req.duration_seconds)}"),
            _md(f"*Until*\n{until}"),
        ]),
        SectionBlock(text=_verbatim(f"*Reason*\n{escape_mrkdwn(req.reason)}")),
        ContextBlock(elements=[_verbatim(_break_glass_status(req, people))]),
        ContextBlock(elements=[_verbatim(review_line(req, people, approvers))]),
    ]
    if req.review_open:
        blocks.append(ActionsBlock(block_id=f"review:{req.request_id}", elements=[
            ButtonElement(text="Acknowledge", action_id=ACK_BREAK_GLASS, value=req.request_id, style="primary"),
        ]))
        blocks.append(InputBlock(
            block_id=f"flag:{req.request_id}", dispatch_action=True,
            label="Flag it: say what is wrong, then press Enter",
            element=PlainTextInputElement(action_id=FLAG_BREAK_GLASS, max_length=300,
                                          placeholder="e.g. no incident that night; who approved this?")))
    state = req.info.label
    review = "review pending" if req.review_open else f"review {req.review_outcome}"
    text = (f"{HERE} BREAK-GLASS access {req.request_id}: {escape_mrkdwn(req.requester)} gave themself "
            f"{req.label} without approvals until {until} ({state}, {review}): {escape_mrkdwn(req.reason)}")
    return text, [b.to_dict() for b in blocks]


# --------------------------------------------------------------------------- the App Home

#: the Revoke button on an active grant in the App Home (value: the request id)
REVOKE = "revoke_request"
#: at most this many rows per list in the App Home (Slack allows 100 blocks in a view)
HOME_ROWS = 15


def home_view(own: Sequence[Request], waiting: Sequence[Request], people: Mapping[str, str],
              now: datetime, approver: bool) -> dict:
    """The App Home (``views.publish``): the person's active grants (each with a Revoke
    button), their pending requests, and - when they approve some role - what is waiting
    for their approval, with the same Approve / Deny buttons as the card (block
    ``decide:<id>``) or its extension (block ``extend:<id>:<n>``). ``own``: their open
    requests (``store.open_for``); ``waiting``: ``commands.waiting_for``. Every user text
    escaped once, in verbatim text objects."""
    from slack_sdk.models.blocks import (ActionsBlock, ButtonElement, ContextBlock, DividerBlock, HeaderBlock,
                                         SectionBlock)

    blocks: list = [HeaderBlock(text="Drawbridge: your AWS access"),
                    ContextBlock(elements=[_md(f"As of {hhmm(now)}. Request access with `/aws-access`; "
                                               "`/aws-access help` says what you may request.")])]

    def more(rows: Sequence, where: str) -> None:
        if len(rows) > HOME_ROWS:
            blocks.append(ContextBlock(elements=[_md(f"…and {len(rows) - HOME_ROWS} more: {where}")]))

    grants = sorted((r for r in own if r.status is not RequestStatus.PENDING), key=lambda r: r.created_at)
    blocks.append(HeaderBlock(text="Your active grants"))
    if not grants:
        blocks.append(SectionBlock(text=_md("_You have no active grants._")))
    for r in grants[:HOME_ROWS]:
        if r.grant_status is GrantStatus.ACTIVE:
            state = f"until *{hhmm(r.expires_at)}*" + _extended_note(r)
            ext = r.extension
            if ext is not None and ext.state == ext.PENDING:
                state += (f"; extension +{format_duration(ext.seconds)} waiting, {len(ext.approvals)} of "
                          f"{ext.required} approvals")
        else:
            state = r.info.label  # granting, revoking...: no button while it changes
        text = _verbatim(f"`{r.label}` ({r.request_id}) {state}")
        button = (ButtonElement(text="Revoke", action_id=REVOKE, value=r.request_id, style="danger")
                  if r.grant_status is GrantStatus.ACTIVE else None)
        blocks.append(SectionBlock(block_id=f"grant:{r.request_id}", text=text, accessory=button))
    more(grants, "`/aws-access list` shows them all")

    pending = sorted((r for r in own if r.status is RequestStatus.PENDING), key=lambda r: r.created_at)
    blocks += [DividerBlock(), HeaderBlock(text="Your pending requests")]
    if not pending:
        blocks.append(SectionBlock(text=_md("_You have no pending requests._")))
    for r in pending[:HOME_ROWS]:
        got = ", ".join(_mention(people, p) for p in r.approvers) or "none yet"
        blocks.append(SectionBlock(text=_verbatim(
            f"`{r.label}` ({r.request_id}) for {format_duration(r.duration_seconds)}: approvals "
            f"{len(r.approvals)} of {r.approvals_required} ({got}), open until {hhmm(r.pending_until)}")))
    more(pending, "`/aws-access list` shows them all")

    if approver:
        blocks += [DividerBlock(), HeaderBlock(text="Waiting for your approval")]
        if not waiting:
            blocks.append(SectionBlock(text=_md("_Nothing is waiting for your approval._")))
        for r in sorted(waiting, key=lambda r: r.created_at)[:HOME_ROWS]:
            ext = r.extension
            if r.status is not RequestStatus.PENDING and ext is not None:
                why = f" — {escape_mrkdwn(ext.reason)}" if ext.reason else ""
                blocks.append(SectionBlock(text=_verbatim(
                    f"{_mention(people, r.requester)} asks to extend `{r.label}` ({r.request_id}) by "
                    f"{format_duration(ext.seconds)} (active until {hhmm(r.expires_at)}){why}\n"
                    f"Approvals {len(ext.approvals)} of {ext.required}")))
                blocks.append(extension_buttons(r))
                continue
            why = escape_mrkdwn(r.reason) if r.reason else "_no reason given_"
            prod = " :rotating_light: *production*" if r.production else ""
            blocks.append(SectionBlock(text=_verbatim(
                f"{_mention(people, r.requester)} wants `{r.label}`{prod} for {format_duration(r.duration_seconds)} "
                f"({r.request_id}): {why}\nApprovals {len(r.approvals)} of {r.approvals_required}, "
                f"open until {hhmm(r.pending_until)}")))
            blocks.append(ActionsBlock(block_id=f"decide:{r.request_id}", elements=[
                ButtonElement(text="Approve", action_id=APPROVE, value=r.request_id, style="primary"),
                ButtonElement(text="Deny", action_id=DENY, value=r.request_id, style="danger"),
                ButtonElement(text="Deny with reason…", action_id=DENY_WITH_REASON, value=r.request_id),
            ]))
        more(waiting, "`/aws-access list` shows them all")
    return {"type": "home", "blocks": [b.to_dict() for b in blocks]}


def stranger_home() -> dict:
    """The App Home of somebody who is not in the catalog: why there is nothing here."""
    return {"type": "home", "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "Drawbridge"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": (
            "You are not in the Drawbridge catalog, so you cannot request or approve AWS access here. "
            "Ask the platform team to add you to `policies/access.toml`.")}},
    ]}


# --------------------------------------------------------------------------- the request form

#: the request form's ``callback_id`` and block ids (each block's one element has the same action id)
REQUEST_FORM = "request_access"
ROLE_BLOCK, DURATION_BLOCK, REASON_BLOCK = "role", "duration", "reason"
#: the durations the form offers (each no longer than the longest cap it lists), plus each role's cap
FORM_DURATIONS = (15 * 60, 30 * 60, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 12 * 3600, 86400, 2 * 86400, 3 * 86400,
                  7 * 86400)
MAX_OPTIONS = 100  # Slack's limit on a static select's options


def _plain(text: str, limit: int) -> dict:
    return {"type": "plain_text", "text": text if len(text) <= limit else text[:limit - 1] + "…"}


def _option(text: str, value: str, description: str | None = None) -> dict:
    option = {"text": _plain(text, 75), "value": value}
    if description:
        option["description"] = _plain(description, 75)
    return option


def request_form(person_key: str, roles: Sequence, channel_id: str = "") -> dict:
    """The request modal (``views.open``) for what ``person_key`` may request (``roles``:
    ``catalog.requestable_by``, non-empty): one "account / role" select (values
    ``<account>/<role>``), a duration select up to the longest cap among them, and an
    optional reason of at most ``MAX_REASON`` characters. A duration over the chosen
    role's cap, or a missing reason where the role needs one, is refused on submission in
    the one-liner's words. ``private_metadata`` carries the channel the command was typed
    in (where the answer goes); it is never trusted for anything else."""
    import json

    from .parse import MAX_REASON

    shown = list(roles)[:MAX_OPTIONS]
    role_options = []
    for r in shown:
        details = [f"up to {format_duration(r.max_duration_seconds)}"]
        if r.reason_required:
            details.append("reason required")
        if r.production:
            details.append("production")
        role_options.append(_option(r.label, r.label, "; ".join(details)))
    longest = max(r.max_duration_seconds for r in shown)
    seconds = sorted({s for s in FORM_DURATIONS if s <= longest} | {r.max_duration_seconds for r in shown})
    duration_options = [_option(format_duration(s), format_duration(s)) for s in seconds][:MAX_OPTIONS]
    role_select: dict = {"type": "static_select", "action_id": ROLE_BLOCK,
                         "placeholder": _plain("Choose an account and role", 150), "options": role_options}
    if len(role_options) == 1:
        role_select["initial_option"] = role_options[0]
    needs_reason = [r.label for r in shown if r.reason_required]
    reason_hint = (f"Required for {', '.join(needs_reason)}." if needs_reason else "Optional.") + \
        f" At most {MAX_REASON} characters."
    blocks: list[dict] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": (
            f"What you (@{escape_mrkdwn(person_key)}) may request. The role's approvers decide on the "
            "approval card; I'll DM you when access is granted.")}},
        {"type": "input", "block_id": ROLE_BLOCK, "label": _plain("Account / role", 2000), "element": role_select},
        {"type": "input", "block_id": DURATION_BLOCK, "label": _plain("Duration", 2000),
         "hint": _plain("No longer than the role allows (shown next to each role).", 2000),
         "element": {"type": "static_select", "action_id": DURATION_BLOCK,
                     "placeholder": _plain("How long", 150), "options": duration_options}},
        {"type": "input", "block_id": REASON_BLOCK, "label": _plain("Reason", 2000), "optional": True,
         "hint": _plain(reason_hint, 2000),
         "element": {"type": "plain_text_input", "action_id": REASON_BLOCK, "multiline": True,
                     "max_length": MAX_REASON, "placeholder": _plain("e.g. fixing incident 4521", 150)}},
    ]
    if len(roles) > len(shown):
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
            f"Showing the first {len(shown)} of the {len(roles)} roles you may request; for the others, type "
            "`/aws-access &lt;account&gt; &lt;role&gt; &lt;duration&gt; [reason]` (`/aws-access help` lists them).")}]})
    view = {"type": "modal", "callback_id": REQUEST_FORM, "title": _plain("Request AWS access", 24),
            "submit": _plain("Request", 24), "close": _plain("Cancel", 24), "blocks": blocks}
    if channel_id:
        view["private_metadata"] = json.dumps({"channel": channel_id})
    return view


def plain_text(mrkdwn: str) -> str:
    """A reply in our own mrkdwn as plain text (a modal shows its field errors as plain
    text): code quotes dropped, ``&lt;``/``&gt;``/``&amp;`` shown as ``<``/``>``/``&``.
    The words stay the same."""
    return mrkdwn.replace("`", "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# --------------------------------------------------------------------------- the deny form

#: the deny form's ``callback_id`` and its one block (and action) id
DENY_FORM = "deny_request"
DENY_REASON_BLOCK = "deny_reason"


def deny_form(req: Request, channel_id: str = "") -> dict:
    """The small modal a *Deny with reason…* click opens: which request, and an optional
    reason (at most ``MAX_REASON`` characters) the requester will read. Its Submit denies
    the request, decided again then. ``private_metadata`` names the request (and the
    channel to answer in); it is never trusted beyond that: the request is re-read and the
    clicker judged again from the catalog."""
    import json

    from .parse import MAX_REASON

    why = f" — “{req.reason}”" if req.reason else ""
    summary = (f"{req.requester} wants {req.label} for {format_duration(req.duration_seconds)} "
               f"({req.request_id}){why}")
    meta = {"request_id": req.request_id, **({"channel": channel_id} if channel_id else {})}
    return {"type": "modal", "callback_id": DENY_FORM, "title": _plain("Deny request", 24),
            "submit": _plain("Deny", 24), "close": _plain("Cancel", 24),
            "private_metadata": json.dumps(meta),
            "blocks": [
                {"type": "section", "text": _plain(summary, 3000)},
                {"type": "input", "block_id": DENY_REASON_BLOCK, "optional": True,
                 "label": _plain("Why (the requester reads this)", 2000),
                 "hint": _plain(f"Optional; at most {MAX_REASON} characters.", 2000),
                 "element": {"type": "plain_text_input", "action_id": DENY_REASON_BLOCK, "multiline": True,
                             "max_length": MAX_REASON,
                             "placeholder": _plain("e.g. use prod/readonly for this", 150)}},
            ]}
