"""The alert path's silence and return, for the security channel (pure: no I/O).

"alert path from account 333333333333 (dev, eu-west-1) is silent since 14:05 UTC" is loud
(``<!here>``): until it is back, ways into that account and Region may go unseen. The
paths one sweep finds silent share one message, and when every path is silent it says
where to look first: the bastion's side. A return is a quiet line that says how long the
path was silent.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import NamedTuple, Sequence

from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock

from chalicelib.slack.alert_views.text import LOUD_MENTION, _e

SILENT = "alert_path_silent"
RESTORED = "alert_path_restored"
#: paths named one by one in a message; more are counted (a Slack section holds 3,000 characters)
LISTED = 20


class Path(NamedTuple):
    account: str
    account_key: str | None  # the catalog's name for the account ("bastion" for the bastion)
    region: str
    silent_since: datetime
    restored_at: datetime | None = None


def _hhmm(moment: datetime, *, day: bool) -> str:
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M") if day else moment.strftime("%H:%M")


def _where(p: Path) -> str:
    named = f"{_e(p.account_key)}, " if p.account_key else ""
    return f"account {_e(p.account)} ({named}{_e(p.region)})"


def _listed(lines: list[str]) -> str:
    shown = "\n".join(f"• {line}" for line in lines[:LISTED])
    return shown + (f"\n• … and {len(lines) - LISTED} more" if len(lines) > LISTED else "")


def _payload(paths: Sequence[Path]) -> list[dict]:
    return [{"account": p.account, "account_key": p.account_key, "region": p.region,
             "silent_since": _z(p.silent_since), **({"restored_at": _z(p.restored_at)} if p.restored_at else {})}
            for p in paths]


def silent_message(paths: Sequence[Path], now: datetime, *, every: bool = False) -> tuple[str, list[dict], dict]:
    """(text, blocks, metadata) of the paths whose heartbeats stopped (one sweep's batch).
    ``every``: no known path is beating any more."""
    paths = sorted(paths, key=lambda p: (p.account, p.region))

    def since(p: Path) -> str:
        return f"{_hhmm(p.silent_since, day=p.silent_since.date() != now.date())} UTC"

    check = " Until it is back, ways into it may go unseen: check its forwarding rule, its heartbeat schedule and the bastion bus."
    if len(paths) == 1:
        (p,) = paths
        text = f"{LOUD_MENTION} alert path from {_where(p)} is silent since {since(p)}"
        body = f":warning: {text}.{check}"
    else:
        first = min(p.silent_since for p in paths)
        head = (f"every alert path ({len(paths)}) is silent" if every
                else f"the alert path from {len(paths)} accounts and Regions is silent")
        text = f"{LOUD_MENTION} {head} since {_hhmm(first, day=first.date() != now.date())} UTC"
        hint = (" All at once points at the bastion's side: its heartbeat rule, the on_heartbeat function,"
                " the bastion bus and its policy." if every else
                " Until they are back, ways into them may go unseen: check their forwarding rules,"
                " heartbeat schedules and the bastion bus.")
        body = f":warning: {text}.{hint}\n" + _listed([f"{_where(p)} since {since(p)}" for p in paths])
    blocks = [SectionBlock(text=MarkdownTextObject(text=body)).to_dict()]
    meta = {"event_type": SILENT, "event_payload": {"paths": _payload(paths), "every": every}}
    return text, blocks, meta


def restored_message(paths: Sequence[Path]) -> tuple[str, list[dict], dict]:
    """(text, blocks, metadata) of silent paths whose heartbeat arrived again."""
    paths = sorted(paths, key=lambda p: (p.account, p.region))

    def how_long(p: Path) -> str:
        back = p.restored_at or p.silent_since
        day = p.silent_since.date() != back.date()
        return f"silent {_hhmm(p.silent_since, day=day)}–{_hhmm(back, day=day)} UTC"

    if len(paths) == 1:
        (p,) = paths
        text = f"alert path from {_where(p)} is back ({how_long(p)})"
        body = f":white_check_mark: {text}"
    else:
        text = f"the alert path from {len(paths)} accounts and Regions is back"
        body = f":white_check_mark: {text}\n" + _listed([f"{_where(p)} ({how_long(p)})" for p in paths])
    blocks = [SectionBlock(text=MarkdownTextObject(text=body)).to_dict()]
    return text, blocks, {"event_type": RESTORED, "event_payload": {"paths": _payload(paths)}}


def _z(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
