"""A burst of production role assumptions (issue 14): 1,000 calls within one minute, Slack
allowing ~1 message a second per channel (tests/fakes.py ``FakeNotifier(rate_limit=...)``,
the fake clock spread over the minute). Every call is recorded, shown exactly once (its
own alert or a digest), uncovered calls are named, #security gets at most ~60 writes in
the minute; a 429 or a lost answer neither duplicates nor loses anything.

State-based: the table (records, digests) and the messages the fake Slack holds.
"""

from __future__ import annotations

import copy
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.usecases.alert import handle
from local.events import refresh_cloudtrail
from tests.fakes import FakeClock, FakeNotifier, make_service
from tests.fixtures import load_cloudtrail
from tests.service.helpers import SECURITY, granted

START = datetime(2026, 11, 12, 14, 10, tzinfo=timezone.utc)  # alice's grant runs 14:02:15-16:02:15
RATE = (1.0, 3)  # Slack: one message a second per channel, short bursts of 3


@pytest.fixture
def burst_svc():
    clock = FakeClock()
    svc = make_service(clock=clock, slack=FakeNotifier(rate_limit=RATE, clock=clock))
    svc.rid = granted(svc)  # alice: prod/admin, bob and carol approve
    return svc


def calls(n: int, uncovered_every: int = 20) -> list[tuple[datetime, dict]]:
    """``n`` calls spread evenly over one minute: alice under her grant, every
    ``uncovered_every``-th one bob, who holds no grant (uncovered). CloudTrail's eventTime is
    3 s before arrival; ids are deterministic."""
    base = load_cloudtrail("assume_role_bastion_copy")
    out = []
    for i in range(n):
        arrive = START + timedelta(seconds=60 * i / n)
        who = "bob" if i % uncovered_every == uncovered_every - 1 else "alice"
        e = refresh_cloudtrail(base, at=arrive - timedelta(seconds=3), iam_user=who)
        e["detail"]["eventID"] = f"e7e70000-0000-4000-8000-{i:012x}"
        e["detail"]["sharedEventID"] = f"5a5ed000-0000-4000-8000-{i:012x}"
        out.append((arrive, e))
    return out


def run_burst(svc, events) -> list:
    outcomes = []
    for arrive, e in events:
        svc.clock.set(arrive)
        outcomes.append(handle(svc, e))
    svc.clock.set(START + timedelta(minutes=1, seconds=5))
    svc.sweep()  # shows what the burst's last second left
    svc.clock.advance(minutes=1)
    svc.sweep()
    return outcomes


def shown(svc) -> tuple[Counter, dict]:
    """How often each call is shown in #security (own alerts and digests), and the digests."""
    seen: Counter = Counter()
    digests = {}
    for m in svc.slack.posts(SECURITY):
        if m.event_type == "role_assumed":
            seen[m.payload["shared_event_id"]] += 1
        elif m.event_type == "role_assumed_digest":
            assert m.payload["digest"] not in digests, "a digest posted twice"
            digests[m.payload["digest"]] = m
    store_digests = svc.store.digests()
    for key, m in digests.items():
        d = store_digests[key]
        assert m.payload["calls"] == d["members"] == d["shown"], key  # every member shown
        for member in d["member_keys"]:
            seen[member] += 1
        if m.payload["kind"] == "uncovered":  # named, one line each, never only counted
            assert m.payload["event_ids"] == [line["event_id"] for line in d["lines"]]
            assert all(eid in m.all_text() for eid in m.payload["event_ids"])
            assert "<!here>" in m.text
    return seen, digests


def check_burst(svc, events, outcomes) -> dict:
    keys = [e["detail"]["sharedEventID"] for _, e in events]
    records = svc.store.alerts()
    assert sorted(records) == sorted(keys)  # every call recorded
    for _, e in events:  # ... with its grant, or flagged uncovered
        rec = records[e["detail"]["sharedEventID"]]
        who = e["detail"]["userIdentity"]["userName"]
        assert (rec["kind"], rec["request_id"]) == (("covered", svc.rid) if who == "alice" else ("uncovered", None))
    assert len(svc.store.uses(svc.rid)) == sum(1 for _, e in events if e["detail"]["userIdentity"]["userName"] == "alice")

    seen, digests = shown(svc)
    assert {k: n for k, n in seen.items() if n != 1} == {}  # nobody shown twice ...
    assert sorted(seen) == sorted(keys)  # ... nor left out
    for key in keys:  # a call in a digest is shown by that digest only; its record says which
        in_digest = svc.store.call(key)["digest"]
        assert (in_digest in digests) if in_digest else any(
            m.payload.get("shared_event_id") == key for m in svc.slack.posts(SECURITY, event_type="role_assumed"))

    writes = sorted(t for ch, _, t in svc.slack.writes if ch == SECURITY)
    in_the_minute = [t for t in writes if t < START + timedelta(minutes=1)]
    busiest = max(sum(1 for u in writes if t <= u < t + timedelta(seconds=1)) for t in writes)
    assert len(in_the_minute) <= 60 + RATE[1]  # ~1 a second, short bursts
    assert busiest <= RATE[1]
    return {"writes": len(writes), "in_the_minute": len(in_the_minute), "busiest_second": busiest,
            "digests": len(digests), "own": sum(1 for o in outcomes if o.posted)}


def test_a_thousand_calls_in_a_minute_are_all_recorded_and_each_shown_once(burst_svc):
    events = calls(1000)
    outcomes = run_burst(burst_svc, events)
    figures = check_burst(burst_svc, events, outcomes)
    assert figures["digests"] >= 5 and figures["own"] < 10  # grouped, not 1,000 posts queued
    assert sum(o.grouped for o in outcomes) == 1000 - figures["own"]
    loud = [m for m in burst_svc.slack.posts(SECURITY) if "<!here>" in m.text]
    named = {eid for m in loud for eid in (m.payload.get("event_ids") or [m.payload.get("event_id")])}
    assert named == {e["detail"]["eventID"] for _, e in events if e["detail"]["userIdentity"]["userName"] == "bob"}


def test_the_other_copy_and_redeliveries_in_a_burst_change_nothing(burst_svc):
    events = calls(200)
    run_burst(burst_svc, events)
    before = (copy.deepcopy(burst_svc.store.digests()), len(burst_svc.slack.writes), burst_svc.store.alerts())
    for arrive, e in events[::7]:
        burst_svc.clock.set(arrive + timedelta(minutes=3))
        owner = load_cloudtrail("assume_role_prod_copy")  # the role owner's copy of the same call
        owner["detail"]["sharedEventID"] = e["detail"]["sharedEventID"]
        owner["detail"]["eventTime"] = e["detail"]["eventTime"]
        assert handle(burst_svc, owner).duplicate
        assert handle(burst_svc, copy.deepcopy(e)).duplicate  # EventBridge redelivers
    burst_svc.sweep()
    after = (burst_svc.store.digests(), len(burst_svc.slack.writes), burst_svc.store.alerts())
    assert [d["members"] for d in after[0].values()] == [d["members"] for d in before[0].values()]
    assert after[1:] == before[1:]
    check_burst(burst_svc, events, [])


def test_a_lost_answer_on_a_digest_post_is_found_not_posted_again(burst_svc):
    """Slack posted the digest but the answer was lost: the next flush looks it up by
    metadata before posting (the digest stayed dirty)."""
    slack = burst_svc.slack
    real = slack.try_post
    lost = []

    def post_then_lose(channel, text, blocks, event_type, payload):
        where = real(channel, text, blocks, event_type, payload)
        if event_type == "role_assumed_digest" and not lost:
            lost.append(where)
            raise ConnectionResetError("the answer was lost")
        return where

    slack.try_post = post_then_lose
    events = calls(120)
    outcomes = run_burst(burst_svc, events)
    assert lost, "no digest was posted"
    check_burst(burst_svc, events, outcomes)


def test_a_refused_digest_write_waits_for_retry_after(burst_svc):
    """Slack answers 429 with Retry-After 5 to a digest's update: nothing is written to that
    digest for five seconds, then it shows everything joined meanwhile."""
    from chalicelib.domain.errors import RateLimited

    slack = burst_svc.slack
    refused = []
    real = slack.try_update

    def refuse_once(channel, ts, *rest):
        if not refused:
            refused.append(burst_svc.clock())
            raise RateLimited(5)
        return real(channel, ts, *rest)

    slack.try_update = refuse_once
    events = calls(300)
    outcomes = run_burst(burst_svc, events)
    (when,) = refused
    updates = [t for ch, what, t in slack.writes if what == "update" and when < t]
    assert updates and min(updates) >= when + timedelta(seconds=5) - timedelta(seconds=1)
    check_burst(burst_svc, events, outcomes)
