"""The access review (issue 18): who held production access in a window, for how long, how
often it was used, grants never used, break-glass uses and their review state, denied
attempts; and its CSV / JSON export. Pure (stdlib only): the use case
(usecases/access_review.py) reads the table and hands everything in.

One function builds the review (:func:`build`), one turns it into rows (:func:`grant_row`,
:func:`denied_row`, :func:`person_row`); the Slack files and the CLI export
(``python -m chalicelib.review_export``) both go through :func:`to_csv` / :func:`to_json`,
so they always hold the same rows.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable, Mapping

from .lifecycle import GrantStatus
from .model import AuditEvent, Request, iso_z, parse_iso, utc

__all__ = ["CSV_HEADER", "JSON_SCHEMA", "DeniedAttempt", "GrantUse", "PersonTotal", "Review", "build",
           "csv_cell", "review_state", "to_csv", "to_json"]

#: the ``schema`` value of the JSON export; bumped when a key changes meaning or goes away
JSON_SCHEMA = "drawbridge.access_review/1"
#: the CSV export's columns, in this order, always (one header for the three kinds of row)
CSV_HEADER = ("section", "request_id", "person", "account", "role", "approvers", "reason", "start", "end",
              "ended_how", "hours_in_window", "uses", "write_calls", "never_used", "break_glass",
              "review_state", "grants", "detail")


@dataclass(frozen=True)
class GrantUse:
    """One production grant that was live at some time in the window."""

    request_id: str
    requester: str
    account: str
    role: str
    approvers: tuple[str, ...]
    reason: str
    granted_at: datetime
    ended_at: datetime | None  # None: still held now
    ended_how: str  # active | expired | revoked | failed (+ ", sessions cut")
    held: timedelta  # within the window
    uses: int  # AssumeRole calls the grant covered (the alert path's records)
    write_calls: int  # write calls counted under it (the activity tally)
    break_glass: bool
    review: str  # "" (not break-glass) | acknowledged | flagged | overdue | pending
    reviewed_by: str | None = None
    review_note: str | None = None

    @property
    def never_used(self) -> bool:
        """No assumption of the role and no write call under the grant: the least-privilege
        hint (reads are not tracked, so a grant used only to look is "never used" too)."""
        return self.uses == 0 and self.write_calls == 0


@dataclass(frozen=True)
class DeniedAttempt:
    """A request denied in the window, or a way into a production account no grant covered
    (``uncovered``) or that AWS refused (``failed_attempt``)."""

    at: datetime
    kind: str  # request_denied | uncovered | failed_attempt
    who: str
    account: str
    role: str
    detail: str  # the denier's words / the request's reason, the AWS error code, "no approved grant"
    request_id: str | None = None


@dataclass(frozen=True)
class PersonTotal:
    person: str
    grants: int
    held: timedelta
    never_used: int
    break_glass: int


@dataclass(frozen=True)
class Review:
    start: datetime
    end: datetime
    generated_at: datetime
    grants: list[GrantUse] = field(default_factory=list)
    denied: list[DeniedAttempt] = field(default_factory=list)
    people: list[PersonTotal] = field(default_factory=list)
    non_production_grants: int = 0  # counted, not detailed

    @property
    def never_used(self) -> list[GrantUse]:
        return [g for g in self.grants if g.never_used]

    @property
    def break_glass(self) -> list[GrantUse]:
        return [g for g in self.grants if g.break_glass]

    def counts(self) -> dict:
        """The message metadata's counts (``access_review``)."""
        return {"grants": len(self.grants), "never_used": len(self.never_used),
                "break_glass": len(self.break_glass), "denied": len(self.denied)}


def review_state(req: Request, now: datetime) -> str:
    """Where a break-glass grant's review stands now: acknowledged, flagged, overdue (past
    its review time, or #security was told), pending; "" for any other grant."""
    if not req.break_glass:
        return ""
    if req.review_outcome in ("acknowledged", "flagged"):
        return req.review_outcome
    if req.review_escalated_at is not None or (req.review_due_at is not None and utc(now) > req.review_due_at):
        return "overdue"
    return "pending"


def _ended_how(req: Request) -> str:
    how = {GrantStatus.ACTIVE: "active", GrantStatus.EXPIRED: "expired", GrantStatus.REVOKED: "revoked",
           GrantStatus.REVOKING: "revoked", GrantStatus.FAILED: "failed"}.get(req.grant_status, req.grant_status.value)
    if how == "revoked" and req.ended_by:
        how += f" by {req.ended_by}"
    if req.sessions_cut_at is not None:
        how += ", sessions cut"
    return how


def held_until(req: Request, now: datetime) -> datetime:
    """When the grant stopped letting its holder in: IAM enforces its expiry itself, so an
    expired grant ended at ``expires_at`` even when the sweep recorded it later; a revoked
    or failed one when it was ended; one still held, ``now``. (Role sessions started under
    it may outlive it by up to an hour unless they were cut: not counted here.)"""
    ends = [t for t in (req.ended_at or utc(now), req.expires_at) if t is not None]
    return min(ends)


def build(start: datetime, end: datetime, *, records: Iterable[Request], denied_events: Iterable[AuditEvent],
          attempts: Iterable[dict], production: Callable[[Request], bool], uses: Mapping[str, int],
          write_calls: Mapping[str, int], now: datetime) -> Review:
    """The review of ``[start, end)``.

    ``records``: every request that may have been live in the window (the caller over-reads;
    a grant counts if IAM held it at any moment of the window: granted before ``end`` and not
    ended by ``start``). ``production(req)``: the catalog's word now, or the record's own when
    its role left the catalog. ``denied_events``: the ``denied`` audit events of the window;
    ``attempts``: the alert path's records of denied attempts. ``uses`` / ``write_calls``: per
    request id. ``now``: a grant still held is held until ``now`` (clipped to the window)."""
    start, end, now = utc(start), utc(end), utc(now)
    by_id = {r.request_id: r for r in records}
    grants: list[GrantUse] = []
    other = 0
    for req in by_id.values():
        if req.granted_at is None:
            continue
        until = held_until(req, now)
        if not (req.granted_at < end and until > start):
            continue
        if not production(req):
            other += 1
            continue
        held = max(timedelta(0), min(until, end) - max(req.granted_at, start))
        grants.append(GrantUse(
            request_id=req.request_id, requester=req.requester, account=req.account, role=req.role,
            approvers=req.approvers, reason=req.reason, granted_at=req.granted_at, ended_at=req.ended_at,
            ended_how=_ended_how(req), held=held, uses=uses.get(req.request_id, 0),
            write_calls=write_calls.get(req.request_id, 0), break_glass=req.break_glass,
            review=review_state(req, now), reviewed_by=req.reviewed_by, review_note=req.review_note))
    grants.sort(key=lambda g: (g.granted_at, g.request_id))

    denied: list[DeniedAttempt] = []
    for event in denied_events:
        req = by_id.get(event.request_id)
        if event.action != "denied" or req is None or not production(req):
            continue
        why = req.note or ""
        denied.append(DeniedAttempt(at=event.at, kind="request_denied", who=req.requester, account=req.account,
                                    role=req.role, detail=f"denied by {event.actor}" + (f": {why}" if why else ""),
                                    request_id=req.request_id))
    for rec in attempts:
        kind = rec.get("kind") or ""
        if kind not in ("uncovered", "failed_attempt"):
            continue
        at = rec.get("event_time")
        detail = rec.get("error_code") or ("no approved grant" if kind == "uncovered" else "refused")
        access = rec.get("access")
        if access:
            detail += f" ({rec.get('event_name') or access})"
        denied.append(DeniedAttempt(at=parse_iso(at) if at else start, kind=kind,
                                    who=str(rec.get("iam_user") or rec.get("who") or "unknown"),
                                    account=str(rec.get("account") or "unknown"),
                                    role=str(rec.get("role") or rec.get("role_arn") or ""), detail=detail,
                                    request_id=rec.get("request_id")))
    denied.sort(key=lambda d: (d.at, d.kind, d.who))

    people: dict[str, list[GrantUse]] = {}
    for g in grants:
        people.setdefault(g.requester, []).append(g)
    totals = [PersonTotal(person=p, grants=len(gs), held=sum((g.held for g in gs), timedelta(0)),
                          never_used=sum(g.never_used for g in gs), break_glass=sum(g.break_glass for g in gs))
              for p, gs in people.items()]
    totals.sort(key=lambda t: (-t.held, t.person))
    return Review(start=start, end=end, generated_at=now, grants=grants, denied=denied, people=totals,
                  non_production_grants=other)


# --------------------------------------------------------------------------- export

def hours(held: timedelta) -> float:
    return round(held.total_seconds() / 3600, 2)


def grant_row(g: GrantUse) -> dict:
    return {"request_id": g.request_id, "person": g.requester, "account": g.account, "role": g.role,
            "approvers": list(g.approvers), "reason": g.reason, "granted_at": iso_z(g.granted_at),
            "ended_at": iso_z(g.ended_at) if g.ended_at else None, "ended_how": g.ended_how,
            "hours_in_window": hours(g.held), "uses": g.uses, "write_calls": g.write_calls,
            "never_used": g.never_used, "break_glass": g.break_glass, "review_state": g.review or None,
            "reviewed_by": g.reviewed_by, "review_note": g.review_note}


def denied_row(d: DeniedAttempt) -> dict:
    return {"at": iso_z(d.at), "kind": d.kind, "person": d.who, "account": d.account, "role": d.role,
            "detail": d.detail, "request_id": d.request_id}


def person_row(p: PersonTotal) -> dict:
    return {"person": p.person, "grants": p.grants, "hours_held": hours(p.held), "never_used": p.never_used,
            "break_glass": p.break_glass}


def to_json(review: Review) -> str:
    """The export as JSON: ``{"schema", "window", "grants", "denied", "people",
    "non_production_grants"}``, keys sorted, times ISO 8601 UTC with a Z."""
    doc = {"schema": JSON_SCHEMA,
           "window": {"start": iso_z(review.start), "end": iso_z(review.end),
                      "generated_at": iso_z(review.generated_at)},
           "grants": [grant_row(g) for g in review.grants], "denied": [denied_row(d) for d in review.denied],
           "people": [person_row(p) for p in review.people], "non_production_grants": review.non_production_grants}
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


#: a spreadsheet reads a cell that starts with one of these as a formula (CSV injection)
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    """One CSV cell: booleans as true/false, None as empty, lists joined with spaces, and any
    text a spreadsheet would run as a formula defused with a leading apostrophe (reasons and
    review notes are what people typed)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def to_csv(review: Review) -> str:
    """The export as one CSV (:data:`CSV_HEADER`): a ``grant`` row per production grant, a
    ``denied`` row per denied attempt, a ``person`` row per person's totals."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for g in review.grants:
        r = grant_row(g)
        review_text = " ".join(x for x in (r["review_state"], f"by {r['reviewed_by']}" if r["reviewed_by"] else "",
                                           r["review_note"] or "") if x)
        writer.writerow(csv_cell(v) for v in (
            "grant", r["request_id"], r["person"], r["account"], r["role"], r["approvers"], r["reason"],
            r["granted_at"], r["ended_at"], r["ended_how"], r["hours_in_window"], r["uses"], r["write_calls"],
            r["never_used"], r["break_glass"], review_text, None, None))
    for d in review.denied:
        r = denied_row(d)
        writer.writerow(csv_cell(v) for v in (
            "denied", r["request_id"], r["person"], r["account"], r["role"], None, None, r["at"], None, None,
            None, None, None, None, None, None, None, f"{r['kind']}: {r['detail']}"))
    for p in review.people:
        r = person_row(p)
        writer.writerow(csv_cell(v) for v in (
            "person", None, r["person"], None, None, None, None, None, None, None, r["hours_held"], None, None,
            r["never_used"], r["break_glass"], None, r["grants"], None))
    return out.getvalue()
