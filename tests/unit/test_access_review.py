"""The access review, pure (chalicelib/domain/access_review.py): which grants it names and
what it says of each, the denied attempts, the totals, and the CSV / JSON export."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.domain import access_review as ar
from chalicelib.domain.model import Principal, Request

START = datetime(2026, 11, 16, tzinfo=timezone.utc)  # Monday
END = START + timedelta(days=7)
NOW = END + timedelta(hours=9)
H = timedelta(hours=1)


def grant(rid: str, granted: datetime, hours: float, *, who="alice", account="prod", role="admin",
          production=True, ended=True, **more) -> Request:
    req, _ = Request.requested(
        granted - timedelta(minutes=5), request_id=rid, requester=who, requester_slack="U0ALICE001",
        principal=Principal.iam_user(who), account=account, account_id="222222222222", role=role,
        role_arn=f"arn:aws:iam::222222222222:role/{role}", production=production,
        duration_seconds=int(hours * 3600), approvals_required=1, pending_until=granted + H, reason="fix 4521")
    req, _ = req.approve(granted, "bob")  # the clock starts at the approval: expires granted + hours
    req, _ = req.granted(granted, "arn:aws:iam::111111111111:policy/x")
    if ended:
        req, _ = req.expire_grant(granted + timedelta(hours=hours))
    for k, v in more.items():
        req = req.change(**{k: v})
    return req


def build(records, *, uses=None, calls=None, denied=(), attempts=(), catalog=None):
    def production(req):
        return (catalog or {}).get(f"{req.account}/{req.role}", req.production)

    return ar.build(START, END, records=records, denied_events=denied, attempts=attempts, production=production,
                    uses=uses or {}, write_calls=calls or {}, now=NOW)


def test_held_time_is_clipped_to_the_window():
    before = grant("req-20261115-000001", START - 2 * H, 3)  # 1 h inside
    inside = grant("req-20261117-000002", START + 26 * H, 2)
    after = grant("req-20261122-000003", END - H, 4)  # 1 h inside
    outside = grant("req-20261110-000004", START - 30 * H, 2)  # ended a day before the window
    still = grant("req-20261123-000005", END + H, 2, ended=False)  # granted after the window
    held = grant("req-20261122-000006", END - 2 * H, 24, ended=False)  # still held now: 2 h inside
    review = build([before, inside, after, outside, still, held])
    assert {g.request_id: g.held for g in review.grants} == {
        before.request_id: H, inside.request_id: 2 * H, after.request_id: H, held.request_id: 2 * H}
    assert {g.request_id: g.ended_how for g in review.grants}[held.request_id] == "active"
    (alice,) = review.people
    assert alice.grants == 4 and alice.held == 6 * H


def test_never_used_is_no_assumption_and_no_write_call():
    a = grant("req-20261117-00000a", START + H, 1)
    b = grant("req-20261117-00000b", START + 3 * H, 1)
    c = grant("req-20261117-00000c", START + 5 * H, 1)
    review = build([a, b, c], uses={a.request_id: 2, b.request_id: 0}, calls={b.request_id: 3})
    assert [g.never_used for g in review.grants] == [False, False, True]
    assert review.counts() == {"grants": 3, "never_used": 1, "break_glass": 0, "denied": 0, "no_grant": 0,
                               "no_audit_trail": 0}
    assert review.people[0].never_used == 1


def test_break_glass_review_states():
    def bg(rid, hour, **more):
        return grant(rid, START + hour * H, 1, break_glass=True, review_due_at=START + (hour + 2) * H, **more)

    ack = bg("req-20261116-0000a1", 1, review_outcome="acknowledged", reviewed_by="bob",
             reviewed_at=START + 2 * H)
    flag = bg("req-20261116-0000a2", 3, review_outcome="flagged", reviewed_by="carol", review_note="=cmd|x",
              reviewed_at=START + 4 * H)
    overdue = bg("req-20261116-0000a3", 5)
    pending = grant("req-20261123-0000a4", END - H, 1, break_glass=True, review_due_at=NOW + H)
    plain = grant("req-20261116-0000a5", START + 7 * H, 1)
    review = build([ack, flag, overdue, pending, plain])
    assert {g.request_id: g.review for g in review.grants} == {
        ack.request_id: "acknowledged", flag.request_id: "flagged", overdue.request_id: "overdue",
        pending.request_id: "pending", plain.request_id: ""}
    assert len(review.break_glass) == 4 and review.people[0].break_glass == 4
    escalated = bg("req-20261116-0000a6", 9, review_escalated_at=START + 12 * H).change(review_due_at=NOW + H)
    assert build([escalated]).grants[0].review == "overdue"  # #security was told: overdue whatever the clock


def test_non_production_grants_are_counted_not_detailed_and_the_catalog_now_decides():
    prod = grant("req-20261117-0000b1", START + H, 1)
    dev = grant("req-20261117-0000b2", START + H, 1, account="dev", role="poweruser", production=False)
    moved = grant("req-20261117-0000b3", START + H, 1, account="stage", role="admin", production=False)
    review = build([prod, dev, moved], catalog={"stage/admin": True})  # stage became production since
    assert [g.request_id for g in review.grants] == [prod.request_id, moved.request_id]
    assert review.non_production_grants == 1


def test_a_role_removed_from_the_catalog_falls_back_to_the_records_own_flag():
    gone = grant("req-20261117-0000c1", START + H, 1, account="legacy", role="root-ish", production=True)
    gone_dev = grant("req-20261117-0000c2", START + H, 1, account="legacy", role="dev", production=False)
    review = build([gone, gone_dev], catalog={})
    assert [g.request_id for g in review.grants] == [gone.request_id]
    assert review.grants[0].account == "legacy" and review.non_production_grants == 1


def test_denied_attempts_are_denied_requests_uncovered_and_refused_assumptions():
    req, _ = Request.requested(
        START + H, request_id="req-20261116-0000d1", requester="dave", requester_slack="U0DAVE0001",
        principal=Principal.iam_user("dave"), account="prod", account_id="222222222222", role="admin",
        role_arn="arn:aws:iam::222222222222:role/admin", production=True, duration_seconds=3600,
        approvals_required=1, pending_until=START + 2 * H, reason="curious")
    denied, ev = req.deny(START + 90 * timedelta(minutes=1), "bob", "denied", why="no ticket")
    dev_req, _ = Request.requested(
        START + H, request_id="req-20261116-0000d2", requester="dave", requester_slack="U0DAVE0001",
        principal=Principal.iam_user("dave"), account="dev", account_id="333333333333", role="poweruser",
        role_arn="arn:aws:iam::333333333333:role/poweruser", production=False, duration_seconds=3600,
        approvals_required=1, pending_until=START + 2 * H, reason="x")
    dev_denied, dev_ev = dev_req.deny(START + 2 * H, "bob", "denied")
    attempts = [
        {"kind": "uncovered", "event_time": "2026-11-17T10:00:00Z", "account": "prod", "role": "admin",
         "iam_user": "mallory", "error_code": None, "request_id": None},
        {"kind": "failed_attempt", "event_time": "2026-11-16T09:00:00Z", "account": "prod", "role": None,
         "role_arn": "arn:aws:iam::222222222222:role/unknown", "iam_user": "eve", "error_code": "AccessDenied"},
        {"kind": "covered", "event_time": "2026-11-16T09:00:00Z", "iam_user": "alice"},  # not denied
    ]
    review = build([denied, dev_denied], denied=[ev, dev_ev], attempts=attempts)
    assert [(d.kind, d.who, d.detail) for d in review.denied] == [
        ("request_denied", "dave", "denied by bob: no ticket"),  # Monday 01:30
        ("failed_attempt", "eve", "AccessDenied"),  # Monday 09:00
    ]
    assert review.denied[1].role.endswith("role/unknown")  # a role not in the catalog: its ARN
    # access that succeeded with no grant is not "denied": a section of its own
    assert [(d.kind, d.who, d.detail) for d in review.no_grant] == [("uncovered", "mallory", "no approved grant")]
    assert review.grants == [] and review.counts()["denied"] == 2 and review.counts()["no_grant"] == 1


def test_access_with_no_grant_counts_in_production_accounts_and_assume_root_anywhere():
    attempts = [
        {"kind": "uncovered", "event_time": "2026-11-17T10:00:00Z", "account": "prod", "role": "admin",
         "iam_user": "mallory"},
        {"kind": "uncovered", "event_time": "2026-11-17T11:00:00Z", "account": "dev", "role": "admin",
         "iam_user": "mallory"},  # dev is not production (the catalog now): left out
        {"kind": "uncovered", "event_time": "2026-11-17T12:00:00Z", "account": "dev", "role": None,
         "role_arn": "arn:aws:iam::333333333333:root", "iam_user": "mallory", "access": "root_session",
         "event_name": "AssumeRoot"},  # root in any account counts
    ]
    review = ar.build(START, END, records=[], denied_events=[], attempts=attempts, production=lambda r: True,
                      uses={}, write_calls={}, now=NOW, production_account=lambda key: key == "prod")
    assert [(d.account, d.detail) for d in review.no_grant] == [
        ("prod", "no approved grant"), ("dev", "no approved grant (AssumeRoot)")]
    assert review.denied == []
    rows = list(csv.reader(io.StringIO(ar.to_csv(review))))
    assert [r[0] for r in rows[2:]] == ["no_grant", "no_grant"]
    doc = json.loads(ar.to_json(review))
    assert len(doc["no_grant"]) == 2 and doc["denied"] == []


@pytest.fixture
def review():
    g = grant("req-20261117-0000e1", START + H, 2, reason="=HYPERLINK(\"http://x\")")
    g = g.change(reason="=HYPERLINK(\"http://x\")")
    plain = grant("req-20261117-0000e2", START + 5 * H, 1, who="bob")
    return build([g, plain], uses={g.request_id: 1})


def test_csv_has_the_fixed_header_and_one_row_per_grant_denied_and_person(review):
    rows = list(csv.reader(io.StringIO(ar.to_csv(review))))
    assert tuple(rows[0]) == ar.CSV_HEADER
    assert [r[0] for r in rows[1:]] == ["window", "grant", "grant", "person", "person"]
    assert rows[1][-1] == "generated_at 2026-11-23T09:00:00Z" and rows[1][7:9] == ["2026-11-16T00:00:00Z",
                                                                                   "2026-11-23T00:00:00Z"]
    first = dict(zip(ar.CSV_HEADER, rows[2]))
    assert first["request_id"] == "req-20261117-0000e1" and first["hours_in_window"] == "2.0"
    assert first["uses"] == "1" and first["never_used"] == "false" and first["approvers"] == "bob"
    assert all(len(r) == len(ar.CSV_HEADER) for r in rows)


def test_csv_defuses_formulas_in_what_people_typed(review):
    rows = list(csv.reader(io.StringIO(ar.to_csv(review))))
    assert rows[2][ar.CSV_HEADER.index("reason")] == "'=HYPERLINK(\"http://x\")"
    for bad in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert ar.csv_cell(bad) == "'" + bad
    assert ar.csv_cell("fine = ok") == "fine = ok" and ar.csv_cell(None) == "" and ar.csv_cell(True) == "true"


def test_json_has_a_stable_schema(review):
    doc = json.loads(ar.to_json(review))
    assert set(doc) == {"schema", "window", "grants", "denied", "no_grant", "records_without_audit_trail", "people",
                        "non_production_grants"}
    assert doc["schema"] == ar.JSON_SCHEMA
    assert doc["window"] == {"start": "2026-11-16T00:00:00Z", "end": "2026-11-23T00:00:00Z",
                             "generated_at": "2026-11-23T09:00:00Z"}
    assert set(doc["grants"][0]) == {"request_id", "person", "account", "role", "approvers", "reason", "granted_at",
                                     "ended_at", "ended_how", "hours_in_window", "uses", "write_calls",
                                     "never_used", "break_glass", "review_state", "reviewed_by", "review_note",
                                     "audit"}
    assert doc["grants"][0]["reason"] == "=HYPERLINK(\"http://x\")"  # JSON keeps the text as typed
    assert [p["person"] for p in doc["people"]] == ["alice", "bob"]
    assert set(doc["people"][0]) == {"person", "grants", "hours_held", "never_used", "break_glass"}


def test_an_expired_grant_was_held_until_its_expiry_not_until_the_sweep_noticed():
    req, _ = Request.requested(
        START + H, request_id="req-20261116-0000f1", requester="alice", requester_slack="U0ALICE001",
        principal=Principal.iam_user("alice"), account="prod", account_id="222222222222", role="admin",
        role_arn="arn:aws:iam::222222222222:role/admin", production=True, duration_seconds=3600,
        approvals_required=1, pending_until=START + 2 * H, reason="r")
    req, _ = req.approve(START + H, "bob")
    req, _ = req.granted(START + H, "arn:aws:iam::111111111111:policy/x")
    late, _ = req.expire_grant(START + 4 * H)  # IAM stopped it at 2:00; the sweep recorded it at 4:00
    assert build([late]).grants[0].held == H
    revoked, _ = req.revoke(START + H + timedelta(minutes=15), "alice")
    (g,) = build([revoked]).grants
    assert g.held == timedelta(minutes=15) and g.ended_how == "revoked by alice"


def trail(rid: str, granted: datetime, hours: float, *, ended=True, extend: timedelta | None = None):
    """A grant and its audit history, made through the record's own moves."""
    events = []
    req, ev = Request.requested(
        granted - timedelta(minutes=5), request_id=rid, requester="alice", requester_slack="U0ALICE001",
        principal=Principal.iam_user("alice"), account="prod", account_id="222222222222", role="admin",
        role_arn="arn:aws:iam::222222222222:role/admin", production=True, duration_seconds=int(hours * 3600),
        approvals_required=1, pending_until=granted + H, reason="fix 4521")
    events.append(ev)
    for move in (lambda r: r.approve(granted, "bob"), lambda r: r.granted(granted, "arn:aws:iam::1:policy/x")):
        req, ev = move(req)
        events.append(ev)
    if extend:
        for move in (lambda r: r.request_extension(granted + H / 2, seconds=int(extend.total_seconds()), required=0),
                     lambda r: r.extended(granted + H / 2, r.expires_at + extend)):
            req, ev = move(req)
            events.append(ev)
    if ended:
        req, ev = req.expire_grant(req.expires_at)
        events.append(ev)
    return req, events


def test_the_review_tells_a_grant_by_its_audit_trail_not_its_record():
    honest, honest_events = trail("req-20261117-0000f1", START + H, 2, extend=H)
    forged_ext, forged_ext_events = trail("req-20261117-0000f2", START + 5 * H, 1)
    # the record claims 5 h more and an acknowledged review: no event backs either
    forged_ext = forged_ext.change(expires_at=forged_ext.expires_at + 5 * H, ended_at=forged_ext.ended_at + 5 * H,
                                   extended_seconds=5 * 3600, review_outcome="acknowledged", reviewed_by="mallory")
    no_events, _ = trail("req-20261117-0000f3", START + 9 * H, 3)
    review = ar.build(START, END, records=[honest, forged_ext, no_events], denied_events=[], attempts=[],
                      production=lambda r: True, uses={}, write_calls={}, now=NOW,
                      trails={honest.request_id: honest_events, forged_ext.request_id: forged_ext_events})
    by_id = {g.request_id: g for g in review.grants}
    assert by_id[honest.request_id].held == 3 * H and by_id[honest.request_id].audit == ""  # extension backed
    forged = by_id[forged_ext.request_id]
    assert forged.held == H and forged.review == "" and forged.reviewed_by is None
    assert forged.audit == "record differs from its audit trail: expiry, end"
    # a record with no granted event: flagged, and in no total
    assert no_events.request_id not in by_id
    assert [(g.request_id, g.audit) for g in review.no_trail] == [(no_events.request_id, "record without audit trail")]
    assert review.people[0].grants == 2 and review.people[0].held == 4 * H
    assert review.counts()["no_audit_trail"] == 1
    rows = list(csv.reader(io.StringIO(ar.to_csv(review))))
    assert [r[0] for r in rows[1:]].count("no_audit_trail") == 1


def test_a_break_glass_review_is_read_from_its_events():
    req, ev = Request.broke_glass(
        START + H, request_id="req-20261117-0000f4", requester="alice", requester_slack="U0ALICE001",
        principal=Principal.iam_user("alice"), account="prod", account_id="222222222222", role="admin",
        role_arn="arn:aws:iam::222222222222:role/admin", production=True, duration_seconds=3600, reason="fire")
    events = [ev]
    req, ev = req.granted(START + H, "arn:aws:iam::1:policy/x")
    events.append(ev)
    req, ev = req.expire_grant(START + 2 * H)
    events.append(ev)
    forged = req.change(review_outcome="acknowledged", reviewed_by="mallory", review_due_at=START + 3 * H)
    (g,) = ar.build(START, END, records=[forged], denied_events=[], attempts=[], production=lambda r: True,
                    uses={}, write_calls={}, now=NOW, trails={req.request_id: events}).grants
    assert g.break_glass and g.review == "overdue" and g.reviewed_by is None and "review" in g.audit
    req2, ev = forged.change(review_outcome=None, reviewed_by=None).review_flagged(START + 4 * H, "carol", "why?")
    (g,) = ar.build(START, END, records=[req2], denied_events=[], attempts=[], production=lambda r: True,
                    uses={}, write_calls={}, now=NOW, trails={req.request_id: [*events, ev]}).grants
    assert (g.review, g.reviewed_by, g.review_note, g.audit) == ("flagged", "carol", "why?", "")


def test_the_per_grant_reads_run_several_at_a_time(monkeypatch):
    """A 90-day review reads thousands of items per grant found; one after another they could
    outlast the worker's (and the sweep's) 60 s. They run READERS at a time: proven by two
    history reads that each wait for the other to start."""
    import threading

    from chalicelib.ports import Trail
    from chalicelib.usecases import access_review as uc
    from tests.fakes import FakeClock, make_service

    svc = make_service(clock=FakeClock(NOW))
    grants = [grant(f"req-20261117-0000{i:02x}", START + H, 1) for i in range(2)]
    both_started = threading.Barrier(2, timeout=5)
    monkeypatch.setattr(svc.store, "live", lambda: grants)
    monkeypatch.setattr(svc.store, "events_between", lambda start, end: Trail([], []))

    def history(rid):
        both_started.wait()  # BrokenBarrierError after 5 s if the reads run one at a time
        return []

    monkeypatch.setattr(svc.store, "history", history)
    review = uc.gather(svc, START, END)
    assert [g.request_id for g in review.no_trail] == [g.request_id for g in grants]  # no events: flagged
