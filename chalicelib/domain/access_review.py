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
from typing import Callable, Iterable, Mapping, Sequence

from .lifecycle import GrantStatus
from .model import AuditEvent, Request, iso_z, parse_iso, utc

__all__ = ["CSV_HEADER", "JSON_SCHEMA", "DeniedAttempt", "GrantUse", "PersonTotal", "Review", "build",
           "csv_cell", "review_state", "to_csv", "to_json"]

#: the ``schema`` value of the JSON export; bumped when a key changes meaning or goes away
JSON_SCHEMA = "drawbridge.access_review/2"  # 2: "no_grant" left "denied"; trails
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
    #: where the record says more than its audit trail backs (the trail's word is shown):
    #: "" when they agree; "record without audit trail" for a record with no ``granted`` event
    audit: str = ""

    @property
    def never_used(self) -> bool:
        """No assumption of the role and no write call under the grant: the least-privilege
        hint (reads are not tracked, so a grant used only to look is "never used" too)."""
        return self.uses == 0 and self.write_calls == 0


@dataclass(frozen=True)
class DeniedAttempt:
    """A request denied in the window, or a way into an account that AWS refused
    (``failed_attempt``); and, in :attr:`Review.no_grant`, a successful way into a production
    account (or an AssumeRoot anywhere) that no approved grant covered (``uncovered``)."""

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
    denied: list[DeniedAttempt] = field(default_factory=list)  # denied requests, refused attempts
    people: list[PersonTotal] = field(default_factory=list)
    non_production_grants: int = 0  # counted, not detailed
    #: access that succeeded with no grant covering it (the alert path's ``uncovered``)
    no_grant: list[DeniedAttempt] = field(default_factory=list)
    #: records that claim a grant their audit trail does not have (no ``granted`` event):
    #: shown, flagged, and left out of every total
    no_trail: list[GrantUse] = field(default_factory=list)

    @property
    def never_used(self) -> list[GrantUse]:
        return [g for g in self.grants if g.never_used]

    @property
    def break_glass(self) -> list[GrantUse]:
        return [g for g in self.grants if g.break_glass]

    def counts(self) -> dict:
        """The message metadata's counts (``access_review``)."""
        return {"grants": len(self.grants), "never_used": len(self.never_used),
                "break_glass": len(self.break_glass), "denied": len(self.denied), "no_grant": len(self.no_grant),
                "no_audit_trail": len(self.no_trail)}


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


NO_TRAIL = "record without audit trail"


@dataclass(frozen=True)
class GrantTrail:
    """What a grant's audit history says of it (:func:`from_trail`): the review's word on
    a grant, whatever its record (a stored field alone) claims."""

    granted_at: datetime
    expires_at: datetime  # the first expiry, moved only by ``extended`` events
    ended_at: datetime | None
    ended_how: str
    approvers: tuple[str, ...]
    break_glass: bool
    review: str
    reviewed_by: str | None
    review_note: str | None
    differs: tuple[str, ...]  # the record's fields its trail does not back


def _new_expiry(event: AuditEvent) -> datetime | None:
    try:
        return parse_iso(event.reason.rsplit("-> ", 1)[1].strip())
    except (IndexError, ValueError):
        return None


def from_trail(req: Request, events: Iterable[AuditEvent], now: datetime) -> GrantTrail | None:
    """The grant as its audit history tells it; None when the history has no ``granted``
    event (the record is not backed). Granted at the ``granted`` event; the expiry is the
    final approval's time plus the duration, moved only by ``extended`` events (as the alert
    path trusts an extension only with its event); ended by the first ``revoke_requested``
    / grant ``expired`` / ``grant_failed`` event; break-glass by its ``break_glass`` event;
    its review by ``review_acknowledged`` / ``review_flagged`` / ``review_escalated``."""
    events = sorted(events, key=lambda e: (e.seq, e.at))
    granted = next((e for e in events if e.action == "granted"), None)
    if granted is None:
        return None
    differs: list[str] = []
    start = next((e for e in events if e.action in ("approved", "break_glass")
                  and e.to_status.endswith("/" + GrantStatus.GRANTING.value)), None)
    expires = (start.at if start else granted.at) + timedelta(seconds=req.duration_seconds)
    for e in events:
        if e.action == "extended" and (moved := _new_expiry(e)) is not None:
            expires = moved
    if req.expires_at is not None and req.expires_at != expires:
        differs.append("expiry")
    end = next((e for e in events if e.action in ("revoke_requested", "grant_failed")
                or (e.action == "expired" and e.to_status.endswith("/" + GrantStatus.EXPIRED.value))), None)
    if end is None:
        how, ended_at = "active", None
    elif end.action == "revoke_requested":
        how, ended_at = f"revoked by {end.actor}", end.at
    elif end.action == "grant_failed":
        how, ended_at = "failed", end.at
    else:
        how, ended_at = "expired", end.at
    if any(e.action == "sessions_cut" for e in events):
        how += ", sessions cut"
    if (req.ended_at is None) != (ended_at is None) or (ended_at is not None and req.ended_at != ended_at):
        differs.append("end")
    break_glass = any(e.action == "break_glass" for e in events)
    if break_glass != req.break_glass:
        differs.append("break-glass")
    review, by, note = "", None, None
    if break_glass:
        outcome = [e for e in events if e.action in ("review_acknowledged", "review_flagged")]
        if outcome:
            last = outcome[-1]
            review, by = ("acknowledged" if last.action == "review_acknowledged" else "flagged"), last.actor
            note = last.reason if last.action == "review_flagged" else None
        elif any(e.action == "review_escalated" for e in events) or \
                (req.review_due_at is not None and utc(now) > req.review_due_at):
            review = "overdue"
        else:
            review = "pending"
        if (req.review_outcome or "") != (review if review in ("acknowledged", "flagged") else ""):
            differs.append("review")
    approvers = tuple(dict.fromkeys(e.actor for e in events if e.action == "approved"))
    return GrantTrail(granted_at=granted.at, expires_at=expires, ended_at=ended_at, ended_how=how,
                      approvers=approvers, break_glass=break_glass, review=review, reviewed_by=by, review_note=note,
                      differs=tuple(differs))


def held_until(req: Request, now: datetime) -> datetime:
    """When the grant stopped letting its holder in: IAM enforces its expiry itself, so an
    expired grant ended at ``expires_at`` even when the sweep recorded it later; a revoked
    or failed one when it was ended; one still held, ``now``. (Role sessions started under
    it may outlive it by up to an hour unless they were cut: not counted here.)"""
    ends = [t for t in (req.ended_at or utc(now), req.expires_at) if t is not None]
    return min(ends)


def build(start: datetime, end: datetime, *, records: Iterable[Request], denied_events: Iterable[AuditEvent],
          attempts: Iterable[dict], production: Callable[[Request], bool], uses: Mapping[str, int],
          write_calls: Mapping[str, int], now: datetime,
          trails: Mapping[str, Sequence[AuditEvent]] | None = None,
          production_account: Callable[[str], bool] | None = None) -> Review:
    """The review of ``[start, end)``.

    ``records``: every request that may have been live in the window (the caller over-reads;
    a grant counts if IAM held it at any moment of the window: granted before ``end`` and not
    ended by ``start``). ``production(req)``: the catalog's word now, or the record's own when
    its role left the catalog. ``denied_events``: the ``denied`` audit events of the window;
    ``attempts``: the alert path's records of denied attempts. ``uses`` / ``write_calls``: per
    request id. ``now``: a grant still held is held until ``now`` (clipped to the window).
    ``trails``: each record's audit history (request id -> events): a grant is described by
    its trail (:func:`from_trail`), never by its record alone, and a record with no trail is
    listed in ``no_trail``, flagged; without ``trails`` (pure tests only) records are taken
    as they are. ``production_account(key)``: the catalog's word now on an account, for the
    access with no grant (an AssumeRoot counts in any account)."""
    start, end, now = utc(start), utc(end), utc(now)
    by_id = {r.request_id: r for r in records}
    grants: list[GrantUse] = []
    no_trail: list[GrantUse] = []
    other = 0
    for req in by_id.values():
        trail = None
        if trails is not None:
            trail = from_trail(req, trails.get(req.request_id, ()), now)
        if trail is None and req.granted_at is None:
            continue
        if trail is None:
            granted_at, until = req.granted_at, held_until(req, now)
            approvers, ended_at, how = req.approvers, req.ended_at, _ended_how(req)
            bg, review, by, note = req.break_glass, review_state(req, now), req.reviewed_by, req.review_note
            audit = NO_TRAIL if trails is not None else ""
        else:
            granted_at, approvers, ended_at, how = trail.granted_at, trail.approvers, trail.ended_at, trail.ended_how
            until = min(t for t in (ended_at or now, trail.expires_at) if t is not None)
            bg, review, by, note = trail.break_glass, trail.review, trail.reviewed_by, trail.review_note
            audit = ("record differs from its audit trail: " + ", ".join(trail.differs)) if trail.differs else ""
        if not (granted_at < end and until > start):
            continue
        if not production(req):
            other += 1
            continue
        held = max(timedelta(0), min(until, end) - max(granted_at, start))
        use = GrantUse(
            request_id=req.request_id, requester=req.requester, account=req.account, role=req.role,
            approvers=approvers, reason=req.reason, granted_at=granted_at, ended_at=ended_at,
            ended_how=how, held=held, uses=uses.get(req.request_id, 0),
            write_calls=write_calls.get(req.request_id, 0), break_glass=bg,
            review=review, reviewed_by=by, review_note=note, audit=audit)
        (no_trail if audit == NO_TRAIL else grants).append(use)
    grants.sort(key=lambda g: (g.granted_at, g.request_id))
    no_trail.sort(key=lambda g: (g.granted_at, g.request_id))

    denied: list[DeniedAttempt] = []
    for event in denied_events:
        req = by_id.get(event.request_id)
        if event.action != "denied" or req is None or not production(req):
            continue
        why = req.note or ""
        denied.append(DeniedAttempt(at=event.at, kind="request_denied", who=req.requester, account=req.account,
                                    role=req.role, detail=f"denied by {event.actor}" + (f": {why}" if why else ""),
                                    request_id=req.request_id))
    no_grant: list[DeniedAttempt] = []
    for rec in attempts:
        kind = rec.get("kind") or ""
        if kind not in ("uncovered", "failed_attempt"):
            continue
        if kind == "uncovered" and rec.get("access") != "root_session" and production_account is not None \
                and not production_account(str(rec.get("account") or "")):
            continue  # access with no grant counts in production accounts (AssumeRoot: anywhere)
        at = rec.get("event_time")
        detail = rec.get("error_code") or ("no approved grant" if kind == "uncovered" else "refused")
        access = rec.get("access")
        if access:
            detail += f" ({rec.get('event_name') or access})"
        (no_grant if kind == "uncovered" else denied).append(DeniedAttempt(
            at=parse_iso(at) if at else start, kind=kind, who=str(rec.get("iam_user") or rec.get("who") or "unknown"),
            account=str(rec.get("account") or "unknown"), role=str(rec.get("role") or rec.get("role_arn") or ""),
            detail=detail, request_id=rec.get("request_id")))
    denied.sort(key=lambda d: (d.at, d.kind, d.who))
    no_grant.sort(key=lambda d: (d.at, d.kind, d.who))

    people: dict[str, list[GrantUse]] = {}
    for g in grants:
        people.setdefault(g.requester, []).append(g)
    totals = [PersonTotal(person=p, grants=len(gs), held=sum((g.held for g in gs), timedelta(0)),
                          never_used=sum(g.never_used for g in gs), break_glass=sum(g.break_glass for g in gs))
              for p, gs in people.items()]
    totals.sort(key=lambda t: (-t.held, t.person))
    return Review(start=start, end=end, generated_at=now, grants=grants, denied=denied, people=totals,
                  non_production_grants=other, no_grant=no_grant, no_trail=no_trail)


# --------------------------------------------------------------------------- export

def hours(held: timedelta) -> float:
    return round(held.total_seconds() / 3600, 2)


def grant_row(g: GrantUse) -> dict:
    return {"request_id": g.request_id, "person": g.requester, "account": g.account, "role": g.role,
            "approvers": list(g.approvers), "reason": g.reason, "granted_at": iso_z(g.granted_at),
            "ended_at": iso_z(g.ended_at) if g.ended_at else None, "ended_how": g.ended_how,
            "hours_in_window": hours(g.held), "uses": g.uses, "write_calls": g.write_calls,
            "never_used": g.never_used, "break_glass": g.break_glass, "review_state": g.review or None,
            "reviewed_by": g.reviewed_by, "review_note": g.review_note, "audit": g.audit or None}


def denied_row(d: DeniedAttempt) -> dict:
    return {"at": iso_z(d.at), "kind": d.kind, "person": d.who, "account": d.account, "role": d.role,
            "detail": d.detail, "request_id": d.request_id}


def person_row(p: PersonTotal) -> dict:
    return {"person": p.person, "grants": p.grants, "hours_held": hours(p.held), "never_used": p.never_used,
            "break_glass": p.break_glass}


def to_json(review: Review) -> str:
    """The export as JSON: ``{"schema", "window", "grants", "denied", "no_grant",
    "records_without_audit_trail", "people", "non_production_grants"}``, keys sorted, times
    ISO 8601 UTC with a Z."""
    doc = {"schema": JSON_SCHEMA,
           "window": {"start": iso_z(review.start), "end": iso_z(review.end),
                      "generated_at": iso_z(review.generated_at)},
           "grants": [grant_row(g) for g in review.grants], "denied": [denied_row(d) for d in review.denied],
           "no_grant": [denied_row(d) for d in review.no_grant],
           "records_without_audit_trail": [grant_row(g) for g in review.no_trail],
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
    """The export as one CSV (:data:`CSV_HEADER`): first a ``window`` row (start, end, and
    ``detail`` ``generated_at <time>``), then a ``grant`` row per production grant, a
    ``denied`` row per denied request or refused attempt, a ``no_grant`` row per access with
    no grant, a ``no_audit_trail`` row per record its audit trail does not back, a ``person``
    row per person's totals. A grant row's ``detail`` says where its record and its audit
    trail differ (the trail's word is in the row)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    # the window, and when this file was built (a retry rebuilds it: tells the copies apart)
    writer.writerow(csv_cell(v) for v in (
        "window", None, None, None, None, None, None, iso_z(review.start), iso_z(review.end), None, None, None,
        None, None, None, None, None, f"generated_at {iso_z(review.generated_at)}"))
    for section, rows in (("grant", review.grants), ("no_audit_trail", review.no_trail)):
        for g in rows:
            r = grant_row(g)
            review_text = " ".join(x for x in (r["review_state"], f"by {r['reviewed_by']}" if r["reviewed_by"] else "",
                                               r["review_note"] or "") if x)
            writer.writerow(csv_cell(v) for v in (
                section, r["request_id"], r["person"], r["account"], r["role"], r["approvers"], r["reason"],
                r["granted_at"], r["ended_at"], r["ended_how"], r["hours_in_window"], r["uses"], r["write_calls"],
                r["never_used"], r["break_glass"], review_text, None, r["audit"]))
    for section, rows in (("denied", review.denied), ("no_grant", review.no_grant)):
        for d in rows:
            r = denied_row(d)
            writer.writerow(csv_cell(v) for v in (
                section, r["request_id"], r["person"], r["account"], r["role"], None, None, r["at"], None, None,
                None, None, None, None, None, None, None, f"{r['kind']}: {r['detail']}"))
    for p in review.people:
        r = person_row(p)
        writer.writerow(csv_cell(v) for v in (
            "person", None, r["person"], None, None, None, None, None, None, None, r["hours_held"], None, None,
            r["never_used"], r["break_glass"], None, r["grants"], None))
    return out.getvalue()
