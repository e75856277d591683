"""Reconcile's rotation (chalicelib/usecases/sweep.py): each run asks who holds the policies
of a bounded slice of the live grants, so that every live grant is verified within the hour
however many there are (up to VERIFY_CAP x 60), when runs fail, when grants come and go,
and when two runs overlap; no run asks more than its slice, and none more than VERIFY_CAP.

The sweep runs once per simulated minute (the clock is set, never waited for)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from chalicelib.domain.model import Principal, Request
from chalicelib.usecases import sweep as sweeping
from chalicelib.usecases.sweep import VERIFY_CAP, verify_slice_size
from tests.fakes import T0
from tests.service.helpers import PROD_ADMIN, security, state

HOUR = 60


def rid_of(i: int, day: str = "20261112") -> str:
    """Ids in no particular order within a day (as real ids are)."""
    return f"req-{day}-" + hashlib.sha256(str(i).encode()).hexdigest()[:6]


def add_grants(svc, numbers, day: str = "20261112") -> list[str]:
    """Live grants made a quarter hour before the clock, each to its own IAM user, written
    as the approval path writes them (record in the table, policy attached in IAM)."""
    made = svc.clock() - timedelta(minutes=15)
    rids = []
    for i in numbers:
        rid, user = rid_of(i, day), Principal.iam_user(f"user{i:04d}")
        req, event = Request.requested(
            made - timedelta(minutes=3), request_id=rid, requester="alice", requester_slack="U0ALICE001",
            principal=user, account="prod", account_id="222222222222", role="admin", role_arn=PROD_ADMIN,
            production=True, duration_seconds=6 * 3600, approvals_required=1,
            pending_until=made + timedelta(hours=1), reason="rotation")
        svc.store.create(req, event)
        after, event = req.approve(made - timedelta(minutes=1), "bob")
        svc.store.transition(req, after, event)
        arn = svc.grants.grant(principal=user, request_id=rid, document={"Version": "2012-10-17", "Statement": []},
                               description="", tags={})
        final, event = after.granted(made, arn)
        svc.store.transition(after, final, event)
        rids.append(rid)
    return rids


class Verified:
    """Who holds which policy, as the sweep asked IAM, minute by minute (only answers that
    came back: a call that failed verified nothing)."""

    def __init__(self, svc) -> None:
        self.runs: list[list[str]] = []  # per run: the request ids whose holders were asked for
        ask = svc.grants.attached_principals
        prefix = svc.grants.arn("")

        def asked(arn):
            holders = ask(arn)
            self.runs[-1].append(arn[len(prefix):])
            return holders

        svc.grants.attached_principals = asked

    def minutes(self, rid: str) -> list[int]:
        return [m for m, run in enumerate(self.runs) if rid in run]


def run_minutes(svc, verified: Verified, minutes: int, errors: list | None = None, each=None) -> list:
    """One sweep per minute, at the minute (runs 0, 1, 2, ... at the clock, +1 min, ...);
    their reports."""
    start = svc.clock().replace(second=0, microsecond=0)
    reports = []
    for m in range(minutes):
        svc.clock.set(start + timedelta(minutes=m))
        for account in svc.catalog.accounts.values():  # alert paths beat: these runs are about the rotation
            svc.store.path_beat(account.id, "eu-west-1", svc.clock())
        if each is not None:
            each(m)
        verified.runs.append([])
        reports.append(svc.sweep(on_error=(lambda job, exc: errors.append(exc)) if errors is not None else None))
    return reports


def longest_wait(verified: Verified, rid: str, born: int = 0) -> int:
    """The longest stretch of runs (minutes) the grant went unverified, from ``born`` on."""
    seen = [born - 1] + [m for m in verified.minutes(rid) if m >= born] + [len(verified.runs)]
    return max(b - a - 1 for a, b in zip(seen, seen[1:]))


@pytest.fixture
def busy(svc):
    svc.clock.set(T0 + timedelta(minutes=30))
    return svc, add_grants(svc, range(130))


def test_every_live_grant_is_verified_within_the_hour_and_no_run_asks_more_than_its_slice(busy):
    svc, rids = busy
    verified = Verified(svc)

    run_minutes(svc, verified, 90)

    per_run = {len(run) for run in verified.runs}
    assert per_run == {verify_slice_size(130)} == {3}  # the same every minute, :00 and :15 included
    assert max(longest_wait(verified, rid) for rid in rids) < HOUR  # ceil(130 / 3) = 44 runs a pass
    assert security(svc) == [] and {state(svc, r) for r in rids} == {"APPROVED/ACTIVE"}


def test_a_grant_moved_to_another_single_user_is_found_within_the_hour(busy):
    """The drift only asking who holds a policy can find (its count still reads 1), on grants
    all round the rotation - including ones it has just verified, the worst case."""
    svc, rids = busy
    verified = Verified(svc)
    run_minutes(svc, verified, 17)  # the rotation is somewhere in its pass
    just_done = verified.runs[-1]
    moved = set(just_done) | set(sorted(rids)[::10])
    for rid in moved:
        owner = svc.store.get(rid).principal.name
        svc.grants.detach(rid, owner)
        svc.grants.attach(rid, "dave")
    found: dict[str, int] = {}

    def note(minute: int) -> None:
        found.update({r: minute for r in moved if r not in found and state(svc, r) != "APPROVED/ACTIVE"})

    run_minutes(svc, verified, HOUR + 1, each=note)

    assert set(found) == moved and max(found.values()) <= HOUR  # every one, within the hour
    assert max(found[r] for r in just_done) > 30  # ... and not at once: found by the rotation
    assert {state(svc, r) for r in moved} == {"APPROVED/FAILED"}
    assert all(svc.grants.policy(r) is None for r in moved)  # taken from dave
    assert {state(svc, r) for r in set(rids) - moved} == {"APPROVED/ACTIVE"}
    notices = [m.payload["request_id"] for m in security(svc) if m.event_type == "grant_drift"]
    assert sorted(notices) == sorted(moved)


def test_runs_that_fail_skip_no_grant(busy):
    """Ten runs in the hour fail while the rotation is asking IAM (throttled): the slice
    they were on is verified by the next run that works, and the hour still holds."""
    svc, rids = busy
    verified = Verified(svc)
    errors: list[Exception] = []

    def outage(minute: int) -> None:
        if minute in range(20, 30):
            svc.grants.fail_next("attached_principals", RuntimeError("Throttling"))

    run_minutes(svc, verified, 90, errors, each=outage)

    assert len(errors) == 10 and svc.grants.pending_faults() == {}
    assert all(verified.runs[m] == [] for m in range(20, 30))  # they verified nothing
    assert max(longest_wait(verified, rid) for rid in rids) < HOUR
    assert max(len(run) for run in verified.runs) == 3


def test_grants_that_come_and_go_are_each_verified_within_the_hour_of_being_made(busy):
    """The number of live grants changes during a pass: 26 more (a fifth) are made, while
    26 others are revoked. The new ones carry a later day in their ids, so by id they would
    all sort after every other grant; the rotation's order (a hash of the id) spreads them."""
    svc, rids = busy
    verified = Verified(svc)
    born: dict[str, int] = {rid: 0 for rid in rids}
    gone: set[str] = set()

    def churn(minute: int) -> None:
        if minute % 2 == 0 and minute < 52:
            for rid in add_grants(svc, [1000 + minute], day="20261113"):
                born[rid] = minute
        if minute % 2 == 1 and minute < 53:
            rid = sorted(rids)[minute]
            svc.grants.remove_policy(rid, [svc.store.get(rid).principal])  # revoked, as end_grant leaves it
            req = svc.store.get(rid)
            after, event = req.revoke(svc.clock(), "alice")
            svc.store.transition(req, after, event)
            ended, event = after.revoked(svc.clock())
            svc.store.transition(after, ended, event)
            gone.add(rid)

    run_minutes(svc, verified, 90, each=churn)

    assert len(born) == 130 + 26 and len(gone) == 26
    waits = {rid: longest_wait(verified, rid, born[rid]) for rid in born if rid not in gone}
    assert max(waits.values()) < HOUR
    assert max(len(run) for run in verified.runs) <= verify_slice_size(130 + 26)
    assert security(svc) == []


def test_two_runs_at_once_verify_a_slice_twice_and_skip_none(busy):
    """Every fifth minute a second sweep runs while the first is between reading the cursor
    and moving it: both verify the same slice, one move wins, no grant is passed over."""
    svc, rids = busy
    verified = Verified(svc)

    def overlap(minute: int) -> None:
        if minute % 5 == 0:
            svc.store.before_next("move_verify_cursor", svc.sweep)

    run_minutes(svc, verified, 90, each=overlap)

    assert svc.store.pending_faults() == {}
    assert max(longest_wait(verified, rid) for rid in rids) < HOUR
    assert max(len(run) for run in verified.runs) == 2 * 3  # an overlapped minute: two runs' slices
    assert security(svc) == []


def test_beyond_what_the_cap_covers_in_an_hour_the_report_says_how_long_a_pass_takes(busy, monkeypatch):
    """With the cap at 2, 130 grants take 65 runs a pass: no run asks more than the cap,
    and the report (logged with a warning by the sweep handler) says a pass takes 65
    minutes - past the hour."""
    svc, rids = busy
    monkeypatch.setattr(sweeping, "VERIFY_CAP", 2)
    verified = Verified(svc)

    reports = run_minutes(svc, verified, 90)

    assert max(len(run) for run in verified.runs) == 2
    assert {(r.verified, r.verify_period) for r in reports} == {(2, 65)}
    assert max(longest_wait(verified, rid) for rid in rids) == 64  # stretched past the hour, as reported


def test_the_per_run_cap_does_not_grow_with_the_live_grants(svc):
    """From 1 to 200 live grants (and, for the cap, 5,000: IAM's most customer-managed
    policies per account) a run verifies ceil(N / 50), never more than VERIFY_CAP."""
    assert [verify_slice_size(n) for n in (0, 1, 50, 51, 200, 1500, 1501, 1800, 5000)] == [
        0, 1, 1, 2, 4, 30, 30, 30, 30]
    assert VERIFY_CAP == 30
    svc.clock.set(T0 + timedelta(minutes=30))
    add_grants(svc, range(200))
    verified = Verified(svc)
    run_minutes(svc, verified, HOUR)
    assert {len(run) for run in verified.runs} == {4}
