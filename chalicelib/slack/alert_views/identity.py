"""Block Kit for an IAM change to a Drawbridge person's credentials (pure: no I/O)."""

from __future__ import annotations

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from chalicelib.alerts import IdentityChange, client_label
from chalicelib.slack.alert_views.text import LOUD_MENTION, _e, _mfa_text, format_event_time
from chalicelib.slack.escape import escape_mrkdwn

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
