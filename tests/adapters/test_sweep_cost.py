"""What one sweep run costs AWS, counted on the real adapters (DynamoStore, IamGrants) on moto:
the same at every minute of the hour - the quarter hours included, where a deep pass used
to ask IAM about every live grant - and, from 1 to 200 live grants, growing only by the
rotation's slice (ceil(N / 50), capped at VERIFY_CAP), never by N."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import policy as pol
from chalicelib.adapters.iam import IamGrants
from chalicelib.adapters.store import DUE_SHARDS, DynamoStore, create_table_from_template, request_item
from chalicelib.domain.model import Principal, Request
from chalicelib.usecases.sweep import VERIFY_CAP, verify_slice_size
from local.seed import TABLE_TEMPLATE
from local.seed import client as aws
from tests.fakes import FakeClock, FakeGrants, make_service

HOUR_START = datetime(2026, 11, 12, 15, 0, tzinfo=timezone.utc)
ROLE = "arn:aws:iam::222222222222:role/admin"


@pytest.fixture
def world(aws_env):
    from moto import mock_aws

    with mock_aws():
        yield


def live_service(n: int, real: str):
    """The service with ``n`` live grants, each to its own IAM user, made an hour before
    HOUR_START and lasting until well after the hour; ``real`` says which port is the real
    adapter on moto ("iam": IamGrants, in an AWS account of its own so its IAM holds only
    these grants; "dynamodb": DynamoStore) - the other is the in-memory fake, which makes no
    AWS calls (moto's Query walks the whole table: 200 grants on both would take minutes).
    Returns the service and the counter of its AWS calls ("iam.ListPolicies": n, ...)."""
    account = f"{100_000_000_000 + n}"
    calls: Counter = Counter()
    counting = threading.Lock()  # the review's reads run on a thread pool: += on a Counter is not atomic

    def count(event_name: str, **_) -> None:
        with counting:
            calls[event_name.split(".", 1)[1]] += 1  # "before-call.iam.ListPolicies" -> "iam.ListPolicies"

    overrides = {}
    if real == "iam":
        iam = aws("iam", account_id=account)
        iam.meta.events.register("before-call", count)
        overrides["grants"] = IamGrants(iam, account)
    else:
        db = aws("dynamodb", account_id=account)
        create_table_from_template(db, "cost", str(TABLE_TEMPLATE))
        db.meta.events.register("before-call", count)
        overrides["store"] = DynamoStore(db, "cost")
        overrides["grants"] = FakeGrants(account)
    svc = make_service(clock=FakeClock(HOUR_START), **overrides)
    made = HOUR_START - timedelta(hours=1)
    for i in range(n):
        rid, user = f"req-20261112-{n:02x}{i:04x}", f"cost{n}-{i:04d}"
        if real == "iam":
            iam.create_user(UserName=user)
        principal = Principal.iam_user(user)
        req, event = Request.requested(
            made - timedelta(minutes=3), request_id=rid, requester="alice", requester_slack="U0ALICE001",
            principal=principal, account="prod", account_id="222222222222", role="admin", role_arn=ROLE,
            production=True, duration_seconds=6 * 3600, approvals_required=1,
            pending_until=made + timedelta(hours=1), reason="cost")
        after, _ = req.approve(made - timedelta(minutes=1), "bob")
        arn = svc.grants.grant(principal=principal, request_id=rid, tags={}, description="cost",
                               document=pol.grant_policy(ROLE, after.expires_at, rid))
        final, _ = after.granted(made, arn)
        if real == "dynamodb":  # the record only, as the store writes it (no audit events: a smaller table)
            db.put_item(TableName="cost", Item=request_item(final))
        else:
            svc.store.create(final, event)
    for account in svc.catalog.accounts.values():
        # every catalog account's path beats (its last heartbeat dated past the hour: no path
        # goes silent and no account is waited for, the runs' cost is the steady state's)
        svc.store.path_beat(account.id, "eu-west-1", HOUR_START + timedelta(hours=2))
    calls.clear()
    return svc, calls


#: 12 minutes of the hour: each quarter hour (where the deep pass ran) and the minutes around it
AROUND_QUARTERS = [0, 1, 14, 15, 16, 29, 30, 31, 44, 45, 46, 59]


def calls_per_minute(svc, calls: Counter, minutes=range(60)) -> list[Counter]:
    """Each minute of one hour (:00 to :59, or those given): the AWS calls of that
    minute's sweep run."""
    out = []
    for minute in minutes:
        svc.clock.set(HOUR_START + timedelta(minutes=minute))
        calls.clear()
        report = svc.sweep()
        assert (report.drift, report.errors) == (0, 0)
        out.append(Counter(calls))
    return out


def iam_calls(counter: Counter) -> int:
    return sum(n for k, n in counter.items() if k.startswith("iam."))


def test_iam_calls_per_run_are_flat_through_the_hour_and_bounded_from_1_to_200_live_grants(world):
    """1 and 50 live grants at every minute of an hour, 200 at each quarter hour and the
    minutes either side (moto takes ~0.6 s to list 200 policies)."""
    per_n = {n: calls_per_minute(*live_service(n, real="iam")) for n in (1, 50)}
    per_n[200] = calls_per_minute(*live_service(200, real="iam"), minutes=AROUND_QUARTERS)

    for n, minutes in per_n.items():
        k = verify_slice_size(n)
        # every minute alike, the quarter hours included: one ListPolicies page, k holders asked
        assert [dict(m) for m in minutes] == [{"iam.ListPolicies": 1, "iam.ListEntitiesForPolicy": k}] * len(minutes)
    assert [iam_calls(per_n[n][15]) for n in (1, 50)] + [iam_calls(per_n[200][3])] == [2, 2, 5]  # before: 2, 51, 201
    assert max(iam_calls(m) for m in per_n[200]) <= 1 + VERIFY_CAP


def test_table_calls_per_run_are_flat_through_the_hour(world):
    """The table's side of a run: the three reads of the due index (every shard and the
    legacy key), one read of the burst digests still open (alert_digest.flush), one of the
    alert paths' heartbeats (liveness.check), the rotation's cursor (read, moved) and a
    re-read per grant verified. (Around the quarter hours only: each run is 29 Queries,
    ~5 ms apiece on moto.)"""
    for n in (1, 51):
        k = verify_slice_size(n)
        minutes = calls_per_minute(*live_service(n, real="dynamodb"), minutes=AROUND_QUARTERS)
        assert [dict(m) for m in minutes] == [{"dynamodb.Query": 3 * (DUE_SHARDS + 1) + 2,
                                               "dynamodb.GetItem": 1 + k, "dynamodb.UpdateItem": 1}] * 12, n


def test_the_weekly_review_backstop_costs_one_get_item_a_run_and_only_in_its_window(world):
    """The sweep's backstop for the weekly review (usecases/access_review.backstop): from
    Monday 09:20 to Tuesday 09:00 UTC each run reads the week's ``files`` delivery (one
    GetItem) and, the review being done, nothing more; outside that window nothing at all.
    (So the Thursday counts above are unchanged: their runs fall outside the window.)"""
    from chalicelib.usecases.access_review import week_scope

    svc, calls = live_service(0, real="dynamodb")
    monday = datetime(2026, 11, 16, tzinfo=timezone.utc)
    svc.store.begin_delivery(week_scope(monday - timedelta(days=7)), "files", monday + timedelta(hours=9))
    svc.store.finish_delivery(week_scope(monday - timedelta(days=7)), "files", "C0SECURIT1", "1.2")
    runs = {}
    for at in (monday + timedelta(hours=8), monday + timedelta(hours=9, minutes=20), monday + timedelta(hours=20),
               monday + timedelta(days=1, hours=9), monday + timedelta(days=3)):
        svc.clock.set(at)
        for account in svc.catalog.accounts.values():  # days after live_service's beats: no path silent
            svc.store.path_beat(account.id, "eu-west-1", at)
        calls.clear()
        report = svc.sweep()
        assert (report.errors, report.delivered) == (0, 0)
        runs[at] = Counter(calls)
    outside = runs[monday + timedelta(hours=8)]
    assert runs[monday + timedelta(days=1, hours=9)] == outside == runs[monday + timedelta(days=3)]
    for at in (monday + timedelta(hours=9, minutes=20), monday + timedelta(hours=20)):
        assert runs[at] - outside == Counter({"dynamodb.GetItem": 1}) and not (outside - runs[at]), at


def test_an_unfinished_weekly_review_costs_the_sweep_one_get_and_one_update_and_is_never_gathered_there(world):
    """Not done yet (every run of the schedule failed): each run in the window reads the
    ``files`` delivery (GetItem) and tries the backstop's lease (one conditional UpdateItem,
    usecases/access_review.backstop); only the run that takes it hands the review to the
    worker, at most every 15 minutes. The review's own reads (the by_day Queries, per grant)
    happen in the worker, never in the sweep."""
    svc, calls = live_service(0, real="dynamodb")
    handed: list = []
    svc.handoff = handed.append
    monday = datetime(2026, 11, 16, tzinfo=timezone.utc)
    runs = []
    for minutes in (8 * 60, 9 * 60 + 20, 9 * 60 + 21, 9 * 60 + 36):
        at = monday + timedelta(minutes=minutes)
        svc.clock.set(at)
        for account in svc.catalog.accounts.values():
            svc.store.path_beat(account.id, "eu-west-1", at)
        calls.clear()
        report = svc.sweep()
        assert report.errors == 0
        runs.append(Counter(calls))
    outside = runs[0]
    for run in runs[1:]:
        assert run - outside == Counter({"dynamodb.GetItem": 1, "dynamodb.UpdateItem": 1}) and not (outside - run)
    assert len(handed) == 2  # 09:20 and 09:36 (the lease lapsed after 15 minutes), not 09:21
