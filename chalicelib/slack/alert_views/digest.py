"""Block Kit for a burst digest (pure: no I/O): many ways in of one principal in one minute,
one message (chalicelib/usecases/alert_digest.py).

A quiet digest counts covered calls under each grant; a loud one (``<!here>``) names every
uncovered call on a line of its own - an uncovered call is never only a number. Values
from CloudTrail were kept raw in the table and are escaped here, once (:func:`_e`).
Metadata ``role_assumed_digest`` (docs/REFERENCE.md): ``digest`` (its key), ``kind``,
``principal``, ``calls``, ``counts`` (request id -> calls) or ``event_ids`` (the named calls).
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from chalicelib.alerts import Assumption, client_label, parse_utc
from chalicelib.slack.alert_views.text import LOUD_MENTION, _e, _hhmm, _mfa_text, format_event_time
from chalicelib.slack.alert_views.ways_in import access_label

EVENT_TYPE = "role_assumed_digest"
_LINES_PER_SECTION = 8  # a section's text stays under Slack's 3,000 characters


def digest_where(a: Assumption, account_key: str | None, role_label: str | None) -> str:
    """Account / role as a digest names it (raw: escaped when shown)."""
    role = role_label.split("/", 1)[1] if role_label and "/" in role_label else (role_label or a.role_name)
    account = f"{account_key} ({a.account_id})" if account_key else a.account_id
    return f"{account} / {role}" if a.access == "role" else f"{account} ({access_label(a)})"


def digest_line(a: Assumption, account_key: str | None, role_label: str | None) -> dict:
    """What a loud digest shows of one uncovered call (raw values: escaped when shown)."""
    return {"event_id": a.event_id, "event_time": a.event_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "where": digest_where(a, account_key, role_label), "who": a.who,
            "source_ip": "AWS Internal (console)" if a.via_console and a.source_ip == "AWS Internal" else a.source_ip,
            "client": client_label(a.user_agent, a.via_console), "mfa": a.mfa}


def _span(d: dict) -> str:
    first, last = parse_utc(d.get("first")), parse_utc(d.get("last"))
    if first is None:
        return ""
    if last is None or last == first:
        return f"at {format_event_time(first)}"
    lo, hi = min(first, last), max(first, last)
    return f"from {format_event_time(lo)} to {hi:%H:%M:%S} UTC"


def _uncovered_lines(d: dict) -> list[str]:
    out = []
    for line in d.get("lines") or []:
        when = parse_utc(line.get("event_time"))
        out.append(f"• {format_event_time(when) if when else _e(line.get('event_time'))} · *{_e(line.get('where'))}* "
                   f"by {_e(line.get('who'), limit=120)} from {_e(line.get('source_ip'))} · {_e(line.get('client'))} · "
                   f"MFA {_mfa_text(line.get('mfa'))} · event `{_e(line.get('event_id'), limit=64)}`"
                   + (f" · :rotating_light: under BREAK-GLASS grant {_e(line.get('break_glass'))} of "
                      f"{_e(line.get('requester'))} (no approvals)" if line.get("break_glass") else ""))
    return out


def _grant_lines(d: dict) -> list[str]:
    out = []
    for rid, n in sorted(d.get("counts", {}).items(), key=lambda kv: (-kv[1], kv[0])):
        g: dict[str, Any] = d.get("grants", {}).get(rid) or {}
        approvers = ", ".join(str(p) for p in g.get("approvers") or []) or "—"
        expires = parse_utc(g.get("expires_at"))
        out.append(f"• *{_e(g.get('where'))}* under grant {_e(rid)} for {_e(g.get('requester'))} "
                   f"({_e(g.get('reason'), limit=120)}): *{n}* · approved by {_e(approvers)}"
                   + (f" · expires {_hhmm(expires)}" if expires else ""))
    return out


def digest_message(d: dict) -> tuple[str, list[dict], dict]:
    """(fallback ``text``, ``blocks``, metadata) of a digest as the table holds it."""
    n, who = int(d["members"]), (d.get("principal") or "?")
    shown_who = who[len("who:"):][:8] + "…" if who.startswith("who:") else who
    span = _span(d)
    note = "grouped: more than Slack's one message a second; every call is recorded with its grant in the table"
    blocks: list[Block]
    if d.get("loud"):
        lines = _uncovered_lines(d)
        broke = sorted({str(line["break_glass"]) for line in d.get("lines") or [] if line.get("break_glass")})
        glass = len([line for line in d.get("lines") or [] if line.get("break_glass")])
        if broke and glass == len(d.get("lines") or []):  # every call under a break-glass grant
            grants = ", ".join(_e(b) for b in broke)
            text = (f"{LOUD_MENTION} BREAK-GLASS used: {n} production call{'s' if n != 1 else ''} by "
                    f"{_e(shown_who)} {span} under break-glass grant {grants}, each named below")
            head = f":rotating_light: BREAK-GLASS: {n} calls in a burst"
            lead = (f"{LOUD_MENTION} :rotating_light: *BREAK-GLASS* grant {grants} (no approvals) was used for these "
                    f"{n} production calls by {_e(shown_who)} ({span}). Each is named; the grant's review is on "
                    "its card.")
        else:
            text = (f"{LOUD_MENTION} NO APPROVED GRANT: {n} production way{'s' if n != 1 else ''} in by "
                    f"{_e(shown_who)} {span}, each named below")
            head = f":rotating_light: NO APPROVED GRANT: {n} calls in a burst"
            lead = (f"{LOUD_MENTION} :rotating_light: *NO APPROVED GRANT* covers "
                    + (f"{n - glass} of " if glass else "") + f"these {n} production ways in by "
                    f"{_e(shown_who)} ({span})" + (f"; {glass} were under break-glass grants" if glass else "")
                    + ". Each is named: find out who and why.")
        blocks = [
            HeaderBlock(text=PlainTextObject(text=head, emoji=True)),
            SectionBlock(text=MarkdownTextObject(text=lead)),
            *[SectionBlock(text=MarkdownTextObject(text="\n".join(lines[i:i + _LINES_PER_SECTION]), verbatim=True))
              for i in range(0, len(lines), _LINES_PER_SECTION)],
        ]
        payload = {"digest": d["key"], "kind": "break_glass" if broke and glass == len(d.get("lines") or [])
                   else "uncovered", "principal": who, "calls": n,
                   "event_ids": [line.get("event_id") for line in d.get("lines") or []]}
        if broke:
            payload["break_glass"] = broke  # these calls were under break-glass grants (named on their lines)
    else:
        text = f"Production role assumed {n} times by {_e(shown_who)} {span} (grouped)"
        blocks = [
            HeaderBlock(text=PlainTextObject(text=f"Production role assumed ×{n} (burst)", emoji=True)),
            SectionBlock(text=MarkdownTextObject(text=(
                f"{_e(shown_who)} assumed production roles *{n}* times {span}, each covered by an approved grant:\n"
                + "\n".join(_grant_lines(d))), verbatim=True)),
        ]
        payload = {"digest": d["key"], "kind": "covered", "principal": who, "calls": n,
                   "counts": dict(sorted(d.get("counts", {}).items()))}
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"{note} · digest {_e(d['key'])}", verbatim=True)]))
    return text, [b.to_dict() for b in blocks], {"event_type": EVENT_TYPE, "event_payload": payload}
