"""The sweep never runs an access review itself (usecases/sweep.py ``_owed_review``,
usecases/access_review.py ``backstop``): a review can outlast the sweep's 60 s, and Lambda
would kill the sweep with it, every minute, taking the rest of the sweep's work with it.
An owed review's next try is booked before it runs (a lease); in Lambda it goes to the
worker, locally it runs in-process after the lease."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.usecases import access_review, jobs, sweep as sweeping
from chalicelib.usecases.access_review import dm_scope, owed_scope
from chalicelib.usecases.delivery import REVIEW_MAX_ATTEMPTS, key_of
from tests.service.helpers import security

USER = "U0CAROL001"


class LambdaTimeout(BaseException):
    """What Lambda does to a run past its timeout: nothing after it runs, no except clause."""


def owe_review(svc, days: int = 90) -> jobs.AccessReview:
    job = jobs.AccessReview(user_id=USER, days=days, end="2026-11-12T13:00:00Z")
    svc.store.owe(owed_scope(USER), key_of(job), jobs.to_wire(job), svc.clock() - timedelta(minutes=5))
    return job


def owe_notice(svc) -> None:
    """Another owed message, due after the review (a drift notice for #security)."""
    notice = jobs.Security("grant_drift", {"request_id": "req-20261112-0000aa", "policy_arn": "arn:x",
                                           "users": [], "state": "no record", "action": "removed"})
    svc.store.owe("req-20261112-0000aa", key_of(notice), jobs.to_wire(notice), svc.clock() - timedelta(minutes=2))


def review_items(svc, at: datetime) -> list:
    return [o for o in svc.store.owed_due(at) if o.key.startswith("review:")]


def beat(svc) -> None:
    for account in svc.catalog.accounts.values():
        svc.store.path_beat(account.id, "eu-west-1", svc.clock())


def test_a_review_killed_mid_run_does_not_stop_later_owed_items_or_liveness(svc, monkeypatch):
    checks = []
    real_check = sweeping.liveness.check
    monkeypatch.setattr(sweeping.liveness, "check", lambda deps: (checks.append(deps.now()), real_check(deps))[1])
    beat(svc)
    owe_review(svc)
    owe_notice(svc)
    leased = []
    upload = svc.slack.upload_files

    def killed(channel, thread_ts, files):  # the review's files: its first run is killed here
        if leased:
            return upload(channel, thread_ts, files)
        (item,) = review_items(svc, svc.clock() + timedelta(days=1))
        leased.append((item.attempts, review_items(svc, svc.clock())))
        raise LambdaTimeout()

    monkeypatch.setattr(svc.slack, "upload_files", killed)
    with pytest.raises(LambdaTimeout):
        svc.sweep()
    # before the review ran, its next try was booked (attempts 1, not due now) and the
    # alert path had been checked
    assert leased == [(1, [])]
    assert len(checks) == 1
    assert security(svc) == []  # the notice, after the review in the queue, did not get its turn

    for minute in (1, 2):  # the next sweeps: the review is not at the head of the queue any more
        svc.clock.advance(minutes=1)
        beat(svc)
        report = svc.sweep()
        assert report.errors == 0
        if minute == 1:  # the notice's turn came at once; the review's retry is at +2 min
            assert [m.event_type for m in security(svc)] == ["grant_drift"]
    assert len(checks) == 3
    assert len([m for m in svc.slack.dms(USER) if m.event_type == "access_review"]) == 1  # its retry landed
    assert review_items(svc, svc.clock() + timedelta(days=1)) == []


def test_in_lambda_the_sweep_hands_owed_reviews_to_the_worker_and_gives_up_once(svc, monkeypatch):
    handed: list[list] = []
    svc.handoff = handed.append  # the worker invoked; here its job never settles (killed each time)
    monkeypatch.setattr(access_review, "gather", lambda *a, **k: pytest.fail("the sweep gathered a review"))
    beat(svc)
    job = owe_review(svc)
    owe_notice(svc)

    report = svc.sweep()
    assert handed == [[jobs.to_wire(job)]] and report.handed_off == 1
    assert [m.event_type for m in security(svc)] == ["grant_drift"]  # the queue went on past it
    assert review_items(svc, svc.clock()) == []  # leased before the hand-off

    for _ in range(200):  # every retry of the backoff: each one handed on, none run here
        svc.clock.advance(minutes=1)
        beat(svc)
        svc.sweep(on_error=lambda job, exc: None)
    assert len(handed) == REVIEW_MAX_ATTEMPTS
    assert review_items(svc, svc.clock() + timedelta(days=2)) == []  # given up, settled
    (told,) = [m for m in svc.slack.dms(USER) if m.event_type == "access_review_failed"]
    assert "could not be delivered" in told.text
    assert svc.store.delivery(dm_scope(job), "failed").ts == told.ts


def _exhausted(svc, job) -> None:
    """The owed review's attempts used up: each hand-off's run never settled it."""
    svc.handoff = lambda wire: None
    for _ in range(REVIEW_MAX_ATTEMPTS):
        (item,) = review_items(svc, svc.clock() + timedelta(days=1))
        svc.store.retry_later(item, svc.clock() - timedelta(seconds=1))
    (item,) = review_items(svc, svc.clock())
    assert item.attempts == REVIEW_MAX_ATTEMPTS


def test_no_give_up_while_an_attempt_is_delivering_the_review(svc):
    beat(svc)
    job = owe_review(svc)
    _exhausted(svc, job)
    svc.store.begin_delivery(dm_scope(job), "files", svc.clock() - timedelta(seconds=10))  # a worker attaching them

    svc.sweep(on_error=lambda job, exc: None)
    assert [m for m in svc.slack.dms(USER) if m.event_type == "access_review_failed"] == []
    (item,) = review_items(svc, svc.clock() + timedelta(days=1))  # still owed, retried later

    svc.clock.advance(minutes=20)  # that attempt died long ago: now it is given up, and told once
    beat(svc)
    errors: list = []
    svc.sweep(on_error=lambda job, exc: errors.append(exc))
    assert [type(e).__name__ for e in errors] == ["ReviewGivenUp"]
    assert len([m for m in svc.slack.dms(USER) if m.event_type == "access_review_failed"]) == 1
    assert review_items(svc, svc.clock() + timedelta(days=2)) == []


def test_a_give_up_dm_that_fails_leaves_the_review_owed_and_is_told_once_later(svc):
    beat(svc)
    job = owe_review(svc)
    _exhausted(svc, job)
    svc.slack.fail_next("dm", RuntimeError("slack down"))

    svc.sweep(on_error=lambda job, exc: None)
    assert [m for m in svc.slack.dms(USER) if m.event_type == "access_review_failed"] == []
    assert review_items(svc, svc.clock() + timedelta(days=1)) != []  # not settled: still owed

    for _ in range(3):
        svc.clock.advance(minutes=20)
        beat(svc)
        svc.sweep(on_error=lambda job, exc: None)
    assert len([m for m in svc.slack.dms(USER) if m.event_type == "access_review_failed"]) == 1
    assert review_items(svc, svc.clock() + timedelta(days=2)) == []


def test_two_asks_in_one_second_for_different_windows_are_two_owed_reviews(svc):
    seven, thirty = owe_review(svc, days=7), owe_review(svc, days=30)
    assert key_of(seven) == "review:7d:2026-11-12T13:00:00Z" and key_of(thirty) == "review:30d:2026-11-12T13:00:00Z"
    assert sorted(o.key for o in review_items(svc, svc.clock())) == [key_of(thirty), key_of(seven)]
    assert dm_scope(seven) != dm_scope(thirty)

    beat(svc)
    svc.sweep()  # in-process here: each delivered as its own DM, with its own files
    dms = [m for m in svc.slack.dms(USER) if m.event_type == "access_review"]
    assert sorted(m.payload["days"] for m in dms) == [7.0, 30.0]
    assert review_items(svc, svc.clock() + timedelta(days=1)) == []


MONDAY = datetime(2026, 11, 16, tzinfo=timezone.utc)


def test_the_weekly_backstop_starts_at_0920_and_hands_on_at_most_every_15_minutes(svc, monkeypatch):
    """A permanent error (the review never lands): the backstop hands the week's review to
    the worker from 09:20 (after weekly_review's own run and Lambda's retries), then once a
    quarter hour at most - not a full gather every minute for a day."""
    handed: list[list] = []
    svc.handoff = handed.append
    monkeypatch.setattr(access_review, "gather", lambda *a, **k: pytest.fail("the sweep gathered a review"))
    at = {}
    for minute in range(0, 24 * 60 + 1):
        svc.clock.set(MONDAY + timedelta(hours=9, minutes=minute))
        before = len(handed)
        svc.sweep(on_error=lambda job, exc: None)
        if len(handed) > before:
            at[minute] = handed[-1]
    assert min(at) == 20
    gaps = {b - a for a, b in zip(sorted(at), sorted(at)[1:])}
    assert gaps <= {15, 16}  # the lease lapses after 15 minutes: the first sweep after that
    assert max(at) < 24 * 60 and len(at) >= (24 * 60 - 20) // 16  # until Tuesday 09:00, then nothing
    assert set(map(str, at.values())) == {str([{"job": "weekly_review", "start": "2026-11-09T00:00:00Z"}])}


def test_the_weekly_backstop_job_finishes_the_review_in_the_worker(svc):
    svc.clock.set(MONDAY + timedelta(hours=9, minutes=20))
    svc.slack.fail_next("upload_files", RuntimeError("missing_scope"))
    beat(svc)
    report = svc.sweep(on_error=lambda job, exc: None)  # in-process here: the job fails
    assert (report.errors, report.undelivered) == (1, 1)
    svc.clock.advance(minutes=5)
    beat(svc)
    svc.sweep()  # leased for 15 minutes: nothing
    assert svc.store.delivery("REVIEW#2026-W46", "files").ts is None
    svc.clock.advance(minutes=11)
    beat(svc)
    assert svc.sweep().delivered == 1
    assert svc.store.delivery("REVIEW#2026-W46", "files").ts


def test_a_review_delivered_whose_settle_was_lost_is_settled_without_a_failed_dm(svc):
    """(Also an item owed before keys carried the window's length, ``review:<end>``: the
    worker's settle misses it.) At its last attempt the sweep sees the files are there."""
    beat(svc)
    job = owe_review(svc, days=7)
    _exhausted(svc, job)
    svc.store.begin_delivery(dm_scope(job), "files", svc.clock())
    svc.store.finish_delivery(dm_scope(job), "files", USER, "1.2")
    assert svc.sweep().delivered == 1
    assert [m for m in svc.slack.dms(USER) if m.event_type == "access_review_failed"] == []
    assert review_items(svc, svc.clock() + timedelta(days=2)) == []
