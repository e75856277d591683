"""Block Kit and metadata for a call that blinds the alert path (pure: no I/O).

Always loud: a trail stopped, deleted or narrowed, or a forwarding rule deleted,
disabled or emptied, means Drawbridge may see nothing more from that account and
Region. A failed call is loud too (someone tried), and says it failed.
"""

from __future__ import annotations

from slack_sdk.models.blocks import ContextBlock, HeaderBlock, MarkdownTextObject, PlainTextObject, SectionBlock

from chalicelib.alerts import PathTamper, client_label
from chalicelib.slack.alert_views.text import LOUD_MENTION, _e, _z, format_event_time
from chalicelib.slack.escape import escape_mrkdwn

EVENT_TYPE = "alert_path_tampered"

_WHAT = {
    "StopLogging": "stopped logging of trail",
    "DeleteTrail": "deleted trail",
    "UpdateTrail": "changed trail",
    "PutEventSelectors": "changed what is recorded by trail",
    "DeleteRule": "deleted forwarding rule",
    "DisableRule": "disabled forwarding rule",
    "RemoveTargets": "removed targets of forwarding rule",
}


def _where(t: PathTamper, account_key: str | None) -> str:
    account = f"{_e(account_key)} ({_e(t.account_id)})" if account_key else _e(t.account_id)
    return f"account {account}, {_e(t.region)}"


def _rule_kind(name: str | None) -> str:
    """What a watched rule is, by its name: the watchdog's is fixed, the StackSets' forwarding
    rules' are generated, the rest are the bastion's own (``drawbridge-<stage>-…``)."""
    from chalicelib.event_pattern import FORWARDING_RULE_PREFIX, WATCHDOG_RULE_NAME

    if name == WATCHDOG_RULE_NAME:
        return "watchdog rule"
    return "forwarding rule" if (name or "").startswith(FORWARDING_RULE_PREFIX) else "Drawbridge rule"


def tamper_blocks(t: PathTamper, *, account_key: str | None) -> tuple[str, list[dict]]:
    """(fallback ``text``, ``blocks``): always ``<!here>``; a failed call says so."""
    what = _WHAT.get(t.event_name, t.event_name)
    if what.endswith(" forwarding rule"):
        what = what.replace("forwarding rule", _rule_kind(t.target))
    headline = ("Alert path tampered with" if not t.failed
                else f"Alert path tampering attempted (failed: {_e(t.error_code)})")
    sentence = (f"{_e(t.actor)} {_e(what)} {_e(t.target or 'unknown')} in {_where(t, account_key)}, "
                f"from {_e(t.source_ip)} at {format_event_time(t.event_time)}")
    consequence = ("Drawbridge may no longer see ways into this account and Region: "
                   "restore it and ask the caller why." if not t.failed
                   else "Nothing changed, but someone tried: ask the caller why.")
    text = f"{LOUD_MENTION} {headline}: {sentence}"
    context = ContextBlock(elements=[MarkdownTextObject(
        text=" · ".join([f"CloudTrail {_e(t.event_name)}", f"event {_e(t.event_id)}",
                         f"client {escape_mrkdwn(client_label(t.user_agent, False))}"]),
        verbatim=True)])
    blocks = [
        HeaderBlock(text=PlainTextObject(text=f":rotating_light: {headline}"[:150], emoji=True)),
        SectionBlock(text=MarkdownTextObject(text=f"{LOUD_MENTION} :rotating_light: {sentence}. *{consequence}*")),
        context,
    ]
    return text, [block.to_dict() for block in blocks]


def tamper_metadata(t: PathTamper, *, account_key: str | None) -> dict:
    """Slack message metadata ``alert_path_tampered`` (docs/REFERENCE.md)."""
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {
            "account": t.account_id,
            "account_key": account_key,
            "region": t.region,
            "event_name": t.event_name,
            "target": t.target,
            "actor": t.actor,
            "event_id": t.event_id,
            "event_time": _z(t.event_time),
            "error_code": t.error_code,
        },
    }
