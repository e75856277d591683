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
UNHEARD = "alert_path_unheard"
HEARD = "alert_path_heard"
#: paths named one by one in a message; more are counted (a Slack section holds 3,000 characters)
LISTED = 20
#: paths the metadata names; more are counted (``count``): the metadata stays small however
#: many accounts and Regions fall silent at once
IN_METADATA = 100


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


def _payload(paths: Sequence[Path]) -> dict:
    return {"count": len(paths), "paths": [
        {"account": p.account, "account_key": p.account_key, "region": p.region, "silent_since": _z(p.silent_since),
         **({"restored_at": _z(p.restored_at)} if p.restored_at else {})} for p in paths[:IN_METADATA]]}


def silent_message(paths: Sequence[Path], now: datetime, *, every: int | None = None) -> tuple[str, list[dict], dict]:
    """(text, blocks, metadata) of the paths whose heartbeats stopped (one sweep's batch).
    ``every``: no known path is beating any more; how many there are (some may have been
    silent, and told, before)."""
    paths = sorted(paths, key=lambda p: (p.account, p.region))

    def since(p: Path) -> str:
        return f"{_hhmm(p.silent_since, day=p.silent_since.date() != now.date())} UTC"

    check = " Until it is back, ways into it may go unseen: check its forwarding rule, its heartbeat schedule and the bastion bus."
    if len(paths) == 1 and not every:
        (p,) = paths
        text = f"{LOUD_MENTION} alert path from {_where(p)} is silent since {since(p)}"
        body = f":warning: {text}.{check}"
    else:
        first = min(p.silent_since for p in paths)
        head = (f"every alert path ({every}) is silent" if every
                else f"the alert path from {len(paths)} accounts and Regions is silent")
        text = f"{LOUD_MENTION} {head} since {_hhmm(first, day=first.date() != now.date())} UTC"
        earlier = every - len(paths) if every else 0
        hint = (" No heartbeat arrives from anywhere: look at the bastion's side first (its heartbeat"
                " rule, the on_heartbeat function, the bastion bus and its policy)."
                + (f" {earlier} of them went silent earlier and were told then." if earlier else "")
                if every else
                " Until they are back, ways into them may go unseen: check their forwarding rules,"
                " heartbeat schedules and the bastion bus.")
        body = f":warning: {text}.{hint}\n" + _listed([f"{_where(p)} since {since(p)}" for p in paths])
    blocks = [SectionBlock(text=MarkdownTextObject(text=body)).to_dict()]
    meta = {"event_type": SILENT, "event_payload": {**_payload(paths), "every": bool(every)}}
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
    return text, blocks, {"event_type": RESTORED, "event_payload": _payload(paths)}


def unheard_message(accounts: Sequence[tuple[str, str | None]], expected_since: datetime) -> tuple[str, list[dict], dict]:
    """(text, blocks, metadata) of catalog accounts no heartbeat has ever come from."""
    accounts = sorted(accounts)
    names = [f"account {_e(a)}" + (f" ({_e(k)})" if k else "") for a, k in accounts]
    if len(names) == 1:
        text = f"{LOUD_MENTION} no heartbeat has ever arrived from {names[0]}"
        body = f":warning: {text}: its alert path may never have worked."
    else:
        text = f"{LOUD_MENTION} no heartbeat has ever arrived from {len(names)} catalog accounts"
        body = f":warning: {text}: their alert paths may never have worked.\n" + _listed(names)
    body += (" Check the drawbridge-member stack instances (every catalog account needs one), their"
             " forwarding rules and heartbeat schedules, and the bastion bus policy.")
    payload = {"expected_since": _z(expected_since), "count": len(accounts),
               "accounts": [{"account": a, "account_key": k} for a, k in accounts[:IN_METADATA]]}
    return text, [SectionBlock(text=MarkdownTextObject(text=body)).to_dict()], {"event_type": UNHEARD,
                                                                                "event_payload": payload}


def heard_message(account: str, account_key: str | None, first: datetime,
                  expected_since: datetime) -> tuple[str, list[dict], dict]:
    """(text, blocks, metadata) of an account told as never heard whose first heartbeat came."""
    named = f" ({_e(account_key)})" if account_key else ""
    text = f"alert path from account {_e(account)}{named} is heard: first heartbeat {_hhmm(first, day=True)} UTC"
    return text, [SectionBlock(text=MarkdownTextObject(text=f":white_check_mark: {text}")).to_dict()], {
        "event_type": HEARD, "event_payload": {"account": account, "account_key": account_key,
                                               "first_heartbeat": _z(first), "expected_since": _z(expected_since)}}


def _z(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
