"""Outcomes of commands and clicks, and security notices, in words (pure rendering).

The use cases return values (``chalicelib/usecases/outcomes.py``); this module is the one
place that phrases them for Slack. Refusal reasons come from the domain's decisions as
they are, ready to show.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..domain.duration import format_duration
from ..domain.model import Request, hhmm
from ..usecases import outcomes as o
from .escape import escape_mrkdwn
from .parse import USAGE
from .views import help_text, list_text


def command_reply(outcome: o.Outcome) -> str:
    """The ephemeral answer to a slash command."""
    if isinstance(outcome, (o.Refused, o.Unreadable)):
        return outcome.reason
    if isinstance(outcome, o.NotInCatalog):
        return (f"You are not in the Drawbridge catalog (Slack user `{outcome.slack_user}`); "
                "ask an admin to add you to `policies/access.toml`.")
    if isinstance(outcome, o.WrongWorkspace):
        return WRONG_WORKSPACE
    if isinstance(outcome, o.Help):
        return help_text(outcome.person, outcome.roles, USAGE)
    if isinstance(outcome, o.Listing):
        return (list_text(outcome.own, outcome.now, waiting=outcome.waiting, ended=outcome.ended)
                + _owed_text(outcome.owed))
    if isinstance(outcome, o.UnknownRequest):
        return f"unknown request `{outcome.request_id}` (see `/aws-access list`)"
    if isinstance(outcome, o.ActivityReport):  # (its text is escaped where it is made)
        return f"`{outcome.request_id}` (`{outcome.label}`): {outcome.text}"
    if isinstance(outcome, o.ReviewQueued):
        return (f"Building the access review of the last {outcome.days} day(s); it comes to you as a DM "
                "(a summary, with the CSV and JSON export in its thread).")
    if isinstance(outcome, o.TooBusy):
        return f"`{outcome.request_id}` is changing too fast; try again"
    if isinstance(outcome, o.Requested):
        req = outcome.req
        # nobody: the role's approvers are user groups Slack could not resolve just now
        approvers = ", ".join(f"@{escape_mrkdwn(a)}" for a in outcome.approvers) or "nobody right now"
        return (f"Request `{req.request_id}` for `{req.label}` ({format_duration(req.duration_seconds)}) is "
                f"waiting for approval in <#{outcome.approvals_channel}>: needs {req.approvals_required} "
                f"of {approvers}. I'll DM you when access is granted.")
    if isinstance(outcome, o.ExtensionAsked):
        req, ext = outcome.req, outcome.req.extension
        plus = format_duration(ext.seconds)
        if ext.state == ext.APPROVED:
            return (f"Extending `{req.request_id}` (`{req.label}`) by {plus} now (no approval needed); "
                    "I'll DM you the new expiry.")
        approvers = ", ".join(f"@{escape_mrkdwn(a)}" for a in outcome.approvers)
        return (f"Extension of `{req.request_id}` (`{req.label}`) by {plus} is waiting for approval on its card in "
                f"<#{outcome.approvals_channel}>: needs {ext.required} of {approvers}. Your access stays in force "
                f"until {hhmm(req.expires_at)} meanwhile; I'll DM you when it is decided.")
    if isinstance(outcome, o.Cancelled):
        return f"Cancelled `{outcome.req.request_id}` (`{outcome.req.label}`)."
    if isinstance(outcome, o.Revoking):
        return f"Revoking `{outcome.req.request_id}` (`{outcome.req.label}`) now; the card and a DM will confirm."
    if isinstance(outcome, o.BreakGlassPreview):
        from .views import break_glass_preview

        return break_glass_preview(outcome)[0]
    raise TypeError(f"no reply for {outcome!r}")


def command_blocks(outcome: o.Outcome) -> list[dict] | None:
    """Blocks for the slash command's ephemeral answer, for the outcomes that have buttons
    (the break-glass confirmation); None: the text alone."""
    if isinstance(outcome, o.BreakGlassPreview):
        from .views import break_glass_preview

        return break_glass_preview(outcome)[1]
    return None


def form_not_opened(error: str) -> str:
    """The answer to a bare ``/aws-access`` whose form Slack did not open."""
    return (f"Drawbridge could not open the request form (Slack said `{escape_mrkdwn(error)}`); nothing was "
            "changed. Type `/aws-access &lt;account&gt; &lt;role&gt; &lt;duration&gt; [reason]` instead.\n" + USAGE)


def repeated_command(req: Request) -> str:
    """The answer to a command Slack delivered again after the first delivery acted (its
    answer may never have been shown): what that delivery did, as the request is now."""
    return (f"Already received (Slack sent this command twice; it was done once): request "
            f"`{req.request_id}` for `{req.label}` ({format_duration(req.duration_seconds)}) is "
            f"{req.info.label}. See `/aws-access list`.")


WRONG_WORKSPACE = ("This Drawbridge serves another Slack workspace or app; nothing was changed. "
                   "(Ask your platform team which Slack app to use.)")


_OWED_LABELS = {"card": "the approval card's update", "security:grant_failed": "the notice to #security"}


def _owed_text(owed) -> str:
    """Messages about your requests that Slack has not taken yet (retried until it does)."""
    # not the requester's messages: a cut-off (the "Ended" lines say it), an extension's IAM
    # work (the card says it), the approvers' DMs (extension asks, reminders, review reminders)
    owed = [item for item in owed if not item.key.startswith(("cut", "extend:", "ask:", "remind:", "dm:review:"))]
    if not owed:
        return ""
    lines = []
    for item in owed:
        what = _OWED_LABELS.get(item.key) or (f"your DM ({item.key.split(':')[1].replace('_', ' ')})"
                                               if item.key.startswith("dm:") else item.key)
        tries = f", {item.attempts} retries so far" if item.attempts else ""
        lines.append(f"• `{item.request_id}`: {what} is not delivered yet; retrying{tries}")
    return "\n\nStill to be delivered (Slack did not take it yet):\n" + "\n".join(lines)


def click_reply(outcome: o.Outcome) -> str | None:
    """The private answer to a button click; None when the click counted (the card shows it)."""
    if isinstance(outcome, o.ClickDone):
        return None
    if isinstance(outcome, o.WrongWorkspace):
        return WRONG_WORKSPACE
    if isinstance(outcome, o.UnknownButton):
        return "That button is not one Drawbridge knows; nothing was changed."
    if isinstance(outcome, o.DenyFormNotOpened):
        return (f"Drawbridge could not open the deny form for `{outcome.request_id}` (Slack said "
                f"`{escape_mrkdwn(outcome.error)}`); nothing was changed. Click *Deny with reason…* again, or "
                "*Deny* to deny it without a reason.")
    if isinstance(outcome, o.BadButtonValue):
        return "That button does not carry a valid request id; nothing was changed."
    if isinstance(outcome, o.UnknownRequest):
        return f"Unknown request `{outcome.request_id}`; nothing was changed."
    if isinstance(outcome, o.TooBusy):
        return f"`{outcome.request_id}` is changing too fast; try again."
    if isinstance(outcome, o.BrokeGlass):
        req = outcome.req
        return (f":rotating_light: Break-glass `{req.request_id}`: `{req.label}` is being granted to you now, "
                f"until {hhmm(req.expires_at)} ({format_duration(req.duration_seconds)}); I'll DM you when it is "
                f"in place. <#{outcome.approvals_channel}> and <#{outcome.security_channel}> have been told, and "
                "the role's approvers will review it.")
    if isinstance(outcome, o.Refused):
        reason = outcome.reason
        if not reason.startswith("req-"):
            reason = reason[:1].upper() + reason[1:]
        return reason + "."
    raise TypeError(f"no reply for {outcome!r}")


def security_text(event_type: str, payload: Mapping[str, Any], req: Request | None) -> str:
    """A notice for the security channel, from its metadata (and the record, when there is one)."""
    rid = payload.get("request_id")
    if event_type == "grant_failed":
        who = f" ({req.requester} → `{req.label}`)" if req else ""
        return f":x: Grant {rid}{who} failed and was not applied: {escape_mrkdwn(str(payload.get('reason')))}"
    if event_type == "access_cut":
        users = ", ".join(f"`{escape_mrkdwn(str(u))}`" for u in payload.get("iam_users") or [])
        label = f"`{req.label}`" if req else f"`{payload.get('role_arn')}`"
        scope = ("*every* session of the role issued before it (over the size budget; others must "
                 "assume the role again)" if payload.get("role_wide") else f"sessions of {users} issued before it")
        notes = "".join(f"\n• {escape_mrkdwn(str(n))}" for n in payload.get("notes") or [])
        late = " (late: earlier attempts failed)" if payload.get("late") else ""
        return (f":scissors: Grant {rid} on {label}: cut-off at {payload.get('cut_at')} now denies "
                f"{scope}{late}.{notes}")
    if event_type == "access_cut_failed" and payload.get("iam_users"):  # a copy taken back by the sweep
        users = ", ".join(f"`{escape_mrkdwn(str(u))}`" for u in payload["iam_users"])
        label = f" (`{req.label}`)" if req else ""
        return (f":rotating_light: The copy of grant {rid}{label} taken back from {users}: their live role "
                f"sessions could not be cut off: {escape_mrkdwn(str(payload.get('reason')))}. They keep working "
                f"until {payload.get('live_until')} at the latest; Drawbridge keeps retrying.")
    if event_type == "access_cut_failed":
        who = f" ({req.requester} → `{req.label}`)" if req else ""
        return (f":rotating_light: Grant {rid}{who} has ended, but its live role sessions could not be cut off: "
                f"{escape_mrkdwn(str(payload.get('reason')))}. They keep working until "
                f"{payload.get('live_until')} at the latest; Drawbridge keeps retrying.")
    if event_type == "grant_drift":
        users = [str(u) for u in payload.get("users") or []]
        action = payload.get("action")
        if action == "taken_back_at_end":
            label = f" (`{req.label}`)" if req else ""
            return (f":warning: Drift: grant {rid}{label} was also attached to {', '.join(users)}; "
                    "removed from them as it ended.")
        arn = payload.get("policy_arn")
        if action == "detached":
            owner = req.principal.key if req else None
            strangers = [u for u in users if u != owner]
            return f":warning: Drift: Drawbridge policy `{arn}` was also attached to {', '.join(strangers)}; detached from them."
        return (f":warning: Drift: Drawbridge policy `{arn}` was attached to {', '.join(users) or 'nobody'} "
                f"with {payload.get('state')}; removed.")
    if event_type in BREAK_GLASS_NOTICES:
        return _break_glass_text(event_type, payload, req)
    raise ValueError(f"no security notice for {event_type!r}")


BREAK_GLASS_NOTICES = ("break_glass_used", "break_glass_flagged", "break_glass_review_overdue")


def _break_glass_text(event_type: str, payload: Mapping[str, Any], req: Request | None) -> str:
    """The security channel's break-glass notices: its use and an overdue review loudly
    (``<!here>``, our own literal), a flag plainly. Every value is escaped."""
    rid = escape_mrkdwn(str(payload.get("request_id")))
    who = escape_mrkdwn(str(payload.get("requester") or (req.requester if req else "?")))
    label = escape_mrkdwn(f"{payload.get('account') or (req.account if req else '?')}/"
                          f"{payload.get('role') or (req.role if req else '?')}")
    reason = escape_mrkdwn(str(payload.get("reason") or (req.reason if req else "")))
    if event_type == "break_glass_used":
        return (f"<!here> :rotating_light: *BREAK-GLASS*: @{who} gave themself `{label}` "
                f"(`{escape_mrkdwn(str(payload.get('role_arn')))}`) without approvals, until "
                f"{escape_mrkdwn(str(payload.get('expires_at')))}. Reason: {reason}. Request {rid}; the role's "
                "approvers must review it.")
    if event_type == "break_glass_flagged":
        return (f":triangular_flag_on_post: Break-glass {rid} (@{who} → `{label}`) was *flagged* by "
                f"@{escape_mrkdwn(str(payload.get('flagged_by')))}: {escape_mrkdwn(str(payload.get('note')))}. "
                f"Their reason for it was: {reason}")
    return (f"<!here> :rotating_light: Break-glass {rid} (@{who} → `{label}`, reason: {reason}) was not reviewed "
            f"by the role's approvers in time (due {escape_mrkdwn(str(payload.get('review_due_at')))}, "
            f"approvers reminded up to step {escape_mrkdwn(str(payload.get('reminders')))}): follow it up.")
