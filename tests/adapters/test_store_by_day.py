"""The ``by_day`` index (DynamoStore on moto, and the in-memory fake answering the same): every
audit event and every denied attempt of the alert path is found by time, one Query per day
of the window; covered uses and other items are not in it; an event written without day keys
(before the index existed) is not found."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.adapters.store import DynamoStore, create_table_from_template
from chalicelib.domain.model import Principal, Request
from local.seed import TABLE_TEMPLATE
from local.seed import client as aws
from tests.fakes import InMemoryStore

T0 = datetime(2026, 11, 16, 23, 30, tzinfo=timezone.utc)  # a Monday, half an hour before Tuesday
TABLE = "byday"


@pytest.fixture(params=["dynamodb", "memory"])
def store(request, aws_env):
    if request.param == "memory":
        yield InMemoryStore()
        return
    from moto import mock_aws

    with mock_aws():
        client = aws("dynamodb")
        create_table_from_template(client, TABLE, str(TABLE_TEMPLATE))
        counting = _Counting(client)
        s = DynamoStore(counting, TABLE)
        s.counting = counting
        yield s


class _Counting:
    """The client, counting Query calls on the ``by_day`` index."""

    def __init__(self, client):
        self._c, self.by_day = client, 0

    def query(self, **kwargs):
        if kwargs.get("IndexName") == "by_day":
            self.by_day += 1
        return self._c.query(**kwargs)

    def __getattr__(self, name):
        return getattr(self._c, name)


def new(rid: str, at: datetime):
    return Request.requested(
        at, request_id=rid, requester="alice", requester_slack="U0ALICE001", principal=Principal.iam_user("alice"),
        account="prod", account_id="222222222222", role="admin", role_arn="arn:aws:iam::222222222222:role/admin",
        production=True, duration_seconds=7200, approvals_required=1, pending_until=at + timedelta(hours=1),
        reason="r")


def attempt(kind: str, at: datetime, **more) -> dict:
    return {"kind": kind, "event_id": f"e-{kind}-{at:%H%M}", "event_time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "role_arn": "arn:aws:iam::222222222222:role/admin", "account": "prod", "role": "admin",
            "iam_user": "mallory", "error_code": "AccessDenied" if kind == "failed_attempt" else None,
            "request_id": None, **more}


def test_events_and_denied_attempts_are_found_by_time_across_days(store):
    req, ev = new("req-20261116-000001", T0)
    store.create(req, ev)
    later, ev2 = req.deny(T0 + timedelta(hours=1), "bob", "denied", why="not today")  # Tuesday 00:30
    store.transition(req, later, ev2)
    store.claim_alert("fail-1", attempt("failed_attempt", T0 + timedelta(minutes=10)), T0)
    store.claim_call("unc-1", "e-unc", attempt("uncovered", T0 + timedelta(minutes=50)), T0, token="t")
    store.claim_call("cov-1", "e-cov", attempt("covered", T0 + timedelta(minutes=20), request_id="req-x"), T0,
                     token="t", use=("req-x", "sk"))

    trail = store.events_between(T0 - timedelta(hours=1), T0 + timedelta(hours=2))
    assert [(e.request_id, e.action) for e in trail.events] == [("req-20261116-000001", "requested"),
                                                                ("req-20261116-000001", "denied")]
    assert [a["kind"] for a in trail.attempts] == ["failed_attempt", "uncovered"]  # a covered use is not denied

    # [start, end): the request at T0 itself is in a window starting at T0, not in one ending there
    assert [e.action for e in store.events_between(T0, T0 + timedelta(minutes=5)).events] == ["requested"]
    assert store.events_between(T0 - timedelta(hours=1), T0).events == []
    only_tuesday = store.events_between(T0 + timedelta(minutes=30), T0 + timedelta(days=1))
    assert [e.action for e in only_tuesday.events] == ["denied"]
    assert [a["kind"] for a in only_tuesday.attempts] == ["uncovered"]  # 00:20 Tuesday


def test_one_query_per_day_of_the_window(store):
    if not hasattr(store, "counting"):
        pytest.skip("the query count is the adapter's")
    store.events_between(T0, T0 + timedelta(days=7))
    assert store.counting.by_day == 8  # Monday 23:30 .. next Monday 23:30 touches 8 UTC days
    store.counting.by_day = 0
    store.events_between(datetime(2026, 11, 16, tzinfo=timezone.utc), datetime(2026, 11, 23, tzinfo=timezone.utc))
    assert store.counting.by_day == 7


def test_an_event_written_before_the_index_existed_is_not_found(store):
    if not hasattr(store, "counting"):
        pytest.skip("an item without day keys is the table's")
    from chalicelib.adapters.store import event_item

    req, ev = new("req-20261116-000002", T0)
    item = {k: v for k, v in event_item(ev).items() if k not in ("day_pk", "day_sk")}
    store.counting.put_item(TableName=TABLE, Item=item)
    assert store.events_between(T0 - timedelta(days=1), T0 + timedelta(days=1)).events == []
