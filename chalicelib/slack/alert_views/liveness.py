"""The alert path's silence and return, for the security channel (pure: no I/O).

"alert path from account 333333333333 (dev, eu-west-1) is silent since 14:05 UTC" is loud
(``<!here>``): until it is back, ways into that account and Region may go unseen. Its
return is a quiet line that says how long it was silent.
"""

from __future__ import annotations

from datetime import datetime, timezone

from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock

from chalicelib.slack.alert_views.text import LOUD_MENTION, _e

SILENT = "alert_path_silent"
RESTORED = "alert_path_restored"


def _hhmm(moment: datetime, *, day: bool) -> str:
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M") if day else moment.strftime("%H:%M")


def _path(account: str, account_key: str | None, region: str) -> str:
    named = f"{_e(account_key)}, " if account_key else ""
    return f"alert path from account {_e(account)} ({named}{_e(region)})"


def silent_message(account: str, account_key: str | None, region: str, since: datetime,
                   now: datetime) -> tuple[str, list[dict], dict]:
    """(text, blocks, metadata) of a path whose heartbeats stopped after ``since``."""
    when = _hhmm(since, day=since.date() != now.date())
    text = f"{LOUD_MENTION} {_path(account, account_key, region)} is silent since {when} UTC"
    more = (" Until it is back, ways into this account and Region may go unseen: check its"
            " forwarding rule, the heartbeat schedule and the bastion bus.")
    blocks = [SectionBlock(text=MarkdownTextObject(text=f":warning: {text}.{more}")).to_dict()]
    meta = {"event_type": SILENT, "event_payload": {
        "account": account, "account_key": account_key, "region": region,
        "silent_since": _z(since)}}
    return text, blocks, meta


def restored_message(account: str, account_key: str | None, region: str, since: datetime,
                     back: datetime) -> tuple[str, list[dict], dict]:
    """(text, blocks, metadata) of a silent path whose heartbeat arrived again at ``back``."""
    day = since.date() != back.date()
    text = (f"{_path(account, account_key, region)} is back "
            f"(silent {_hhmm(since, day=day)}–{_hhmm(back, day=day)} UTC)")
    blocks = [SectionBlock(text=MarkdownTextObject(text=f":white_check_mark: {text}")).to_dict()]
    meta = {"event_type": RESTORED, "event_payload": {
        "account": account, "account_key": account_key, "region": region,
        "silent_since": _z(since), "restored_at": _z(back)}}
    return text, blocks, meta


def _z(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
