"""The compact per-grant tally of write calls, and its digest. PURE: stdlib only.

A tally is a small JSON document (one table item per grant, well under DynamoDB's 400 KB):

* ``calls`` / ``failed``: write calls seen (failed ones are attempts: counted, and marked);
* ``first`` / ``last``: the earliest and latest CloudTrail ``eventTime`` (ISO ``Z``);
* ``services``: calls per service (exact: there are a few hundred services at most);
* ``actions``: calls per ``service:action``, at most :data:`MAX_ACTIONS` distinct ones;
  calls of any further action count under ``other``;
* ``notable``: the first :data:`MAX_NOTABLE` notable calls (time, action, label, failed,
  event id); ``notable_count`` counts them all.
"""

from __future__ import annotations

from datetime import datetime

from chalicelib.activity.call import Call

MAX_ACTIONS = 50
MAX_NOTABLE = 20
OTHER = "other"


def _z(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def empty() -> dict:
    return {"calls": 0, "failed": 0, "first": None, "last": None, "services": {}, "actions": {},
            "notable": [], "notable_count": 0}


def add(tally: dict | None, call: Call) -> dict:
    """``tally`` with ``call`` counted (a new dict; ``tally`` is not changed)."""
    t = empty() if tally is None else {**tally, "services": dict(tally["services"]),
                                       "actions": dict(tally["actions"]), "notable": list(tally["notable"])}
    t["calls"] += 1
    t["failed"] += 1 if call.failed else 0
    at = _z(call.event_time)
    t["first"] = at if t["first"] is None else min(t["first"], at)
    t["last"] = at if t["last"] is None else max(t["last"], at)
    t["services"][call.service] = t["services"].get(call.service, 0) + 1
    key = call.key if call.key in t["actions"] or len(t["actions"]) < MAX_ACTIONS else OTHER
    t["actions"][key] = t["actions"].get(key, 0) + 1
    if call.notable:
        t["notable_count"] += 1
        if len(t["notable"]) < MAX_NOTABLE:
            t["notable"].append({"at": at, "action": call.key, "label": call.notable, "failed": call.failed,
                                 "event_id": call.event_id})
            t["notable"].sort(key=lambda n: n["at"])
    return t


def _duration(first: str, last: str) -> str:
    from datetime import datetime as dt

    seconds = int((dt.fromisoformat(last.replace("Z", "+00:00"))
                   - dt.fromisoformat(first.replace("Z", "+00:00"))).total_seconds())
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h {rest // 60:02d}m" if hours else f"{rest // 60}m {rest % 60:02d}s"


def digest_payload(request_id: str, tally: dict | None, *, final: bool) -> dict:
    """The ``grant_activity`` metadata payload (docs/REFERENCE.md)."""
    t = tally or empty()
    return {"request_id": request_id, "calls": t["calls"], "failed": t["failed"], "first": t["first"],
            "last": t["last"], "services": dict(sorted(t["services"].items(), key=lambda kv: (-kv[1], kv[0]))),
            "notable": [{"at": n["at"], "action": n["action"], "label": n["label"], "failed": n["failed"]}
                        for n in t["notable"]],
            "notable_count": t["notable_count"], "final": final}


def digest_text(payload: dict) -> str:
    """The digest in words (raw: the caller escapes it for Slack mrkdwn)."""
    head = "Activity under this grant" + ("" if payload["final"] else " so far")
    if not payload["calls"]:
        return f"{head}: never used (no write calls recorded; reads are not tracked)."
    first, last = payload["first"], payload["last"]
    lines = [f"{head}: {payload['calls']} write call{'s' if payload['calls'] != 1 else ''}"
             + (f" ({payload['failed']} failed)" if payload["failed"] else "")
             + f", {first[11:16]}–{last[11:16]} UTC (used for {_duration(first, last)})."]
    lines.append("By service: " + ", ".join(f"{s} {n}" for s, n in payload["services"].items()) + ".")
    if payload["notable"]:
        lines.append(f"Notable ({payload['notable_count']}):")
        lines += [f"• {n['at'][11:19]} {n['action']}: {n['label']}" + (" (failed)" if n["failed"] else "")
                  for n in payload["notable"]]
        if payload["notable_count"] > len(payload["notable"]):
            lines.append(f"• … and {payload['notable_count'] - len(payload['notable'])} more")
    else:
        lines.append("No notable actions.")
    return "\n".join(lines)
