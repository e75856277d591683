"""The ``due`` index is sharded (DynamoStore on moto): records carry ``DUE#<n>`` and what they
owe ``OWED#<n>``; the sweep's reads merge every shard, keep their limit, and still find
items written before the sharding with the bare ``DUE`` / ``OWED``."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.adapters.store import DUE_SHARDS, DynamoStore, create_table_from_template, due_key, request_item
from chalicelib.domain.model import Principal, Request
from local.seed import TABLE_TEMPLATE
from local.seed import client as aws

T0 = datetime(2026, 11, 12, 14, 0, tzinfo=timezone.utc)
TABLE = "shards"


@pytest.fixture
def db(aws_env):
    from moto import mock_aws

    with mock_aws():
        client = aws("dynamodb")
        create_table_from_template(client, TABLE, str(TABLE_TEMPLATE))
        yield client


def new(rid: str, at: datetime) -> tuple[Request, object]:
    return Request.requested(
        at, request_id=rid, requester="alice", requester_slack="U0ALICE001", principal=Principal.iam_user("alice"),
        account="prod", account_id="222222222222", role="admin", role_arn="arn:aws:iam::222222222222:role/admin",
        production=True, duration_seconds=7200, approvals_required=1, pending_until=at + timedelta(hours=1),
        reason="r")


def rid(i: int) -> str:
    return f"req-20261112-{i:06x}"


def index_keys(db, value: str) -> list[str]:
    """The PK/SK of every item the ``due`` index holds under one partition key value."""
    items = db.query(TableName=TABLE, IndexName="due", KeyConditionExpression="due_pk = :d",
                     ExpressionAttributeValues={":d": {"S": value}})["Items"]
    return [f'{i["PK"]["S"]}/{i["SK"]["S"]}' for i in items]


def test_records_and_what_they_owe_are_spread_over_the_shards(db):
    store = DynamoStore(db, TABLE)
    reqs = []
    for i in range(40):
        req, event = new(rid(i), T0 + timedelta(seconds=i))
        store.create(req, event, owed=[("card", {"job": "card", "request_id": req.request_id})])
        reqs.append(req)

    where = {value: index_keys(db, value) for kind in ("DUE", "OWED")
             for value in [f"{kind}#{n}" for n in range(DUE_SHARDS)] + [kind]}
    assert where["DUE"] == [] and where["OWED"] == []  # nothing new under the un-sharded keys
    for req in reqs:  # each item under its own shard, found nowhere else
        assert [v for v, keys in where.items() if f"REQ#{req.request_id}/REQUEST" in keys] == [
            due_key("DUE", req.request_id)]
        assert [v for v, keys in where.items() if f"REQ#{req.request_id}/OWE#card" in keys] == [
            due_key("OWED", req.request_id)]
    per_shard = Counter(due_key("DUE", r.request_id) for r in reqs)
    assert len(per_shard) == DUE_SHARDS and max(per_shard.values()) <= 40 // DUE_SHARDS * 2  # spread

    assert store.live() == reqs  # merged back into one due_at order
    assert store.due(T0 + timedelta(hours=1, seconds=9)) == reqs[:10]
    assert [o.request_id for o in store.owed_due(T0 + timedelta(minutes=1, seconds=39))] == [
        r.request_id for r in reqs[:40]]


def test_a_limit_bounds_what_is_read_and_returned_across_shards(db):
    store = DynamoStore(db, TABLE)
    reqs = []
    for i in range(30):
        req, event = new(rid(100 + i), T0 - timedelta(hours=2) + timedelta(seconds=i))  # all due by T0
        store.create(req, event)
        reqs.append(req)
    read = []

    def count(parsed, **_):
        read.append(parsed.get("Count", 0))

    db.meta.events.register("after-call.dynamodb.Query", count)
    assert store.due(T0, limit=7) == reqs[:7]  # the 7 oldest of all shards, in order
    assert len(read) == DUE_SHARDS + 1  # one Query per shard (+ the legacy key), one page each
    assert sum(read) <= 30 and max(read) <= 7  # no page larger than the limit


def test_items_written_before_the_sharding_are_still_found_and_move_to_their_shard(db):
    """A deploy needs no migration: the bare "DUE"/"OWED" key is read as one more shard,
    and an item leaves it the next time it is written."""
    store = DynamoStore(db, TABLE)
    old, event = new(rid(1), T0 - timedelta(minutes=30))  # due 14:30 (pending_until)
    legacy_item = {**request_item(old), "due_pk": {"S": "DUE"}}
    db.put_item(TableName=TABLE, Item=legacy_item)
    db.put_item(TableName=TABLE, Item={  # a message owed, as the old code wrote it
        "PK": {"S": f"REQ#{old.request_id}"}, "SK": {"S": "OWE#card"},
        "job": {"S": json.dumps({"job": "card", "request_id": old.request_id})}, "version": {"N": "1"},
        "attempts": {"N": "0"}, "due_pk": {"S": "OWED"}, "due_at": {"S": "2026-11-12T13:31:00Z"},
        "open_pk": {"S": "OPEN#alice"}, "created_at": {"S": "2026-11-12T13:30:00Z"}})
    new_req, event2 = new(rid(2), T0 - timedelta(minutes=40))  # due 14:20, written sharded
    store.create(new_req, event2)

    assert store.live() == [new_req, old]
    assert store.due(T0 + timedelta(minutes=25)) == [new_req]
    assert store.due(T0 + timedelta(minutes=30)) == [new_req, old]
    (owed,) = store.owed_due(T0)
    assert (owed.request_id, owed.key, owed.version) == (old.request_id, "card", 1)

    after, move = old.cancel(T0, "alice")  # ended: leaves the index
    store.transition(old, after, move)
    assert index_keys(db, "DUE") == [] and store.live() == [new_req]
    store.retry_later(owed, T0 + timedelta(minutes=5))  # a retry re-keys it to its shard
    assert index_keys(db, "OWED") == []
    assert index_keys(db, due_key("OWED", old.request_id)) == [f"REQ#{old.request_id}/OWE#card"]
    assert [o.attempts for o in store.owed_due(T0 + timedelta(minutes=5))] == [1]


def test_a_legacy_record_still_live_is_rewritten_to_its_shard_by_its_next_change(db):
    store = DynamoStore(db, TABLE)
    old, _ = new(rid(3), T0)
    db.put_item(TableName=TABLE, Item={**request_item(old), "due_pk": {"S": "DUE"}})
    after, move = old.approve(T0 + timedelta(minutes=2), "bob")  # GRANTING: still live
    store.transition(old, after, move)
    assert index_keys(db, "DUE") == []
    assert index_keys(db, due_key("DUE", old.request_id)) == [f"REQ#{old.request_id}/REQUEST"]
    assert store.live() == [after]


def test_the_table_keeps_its_key_schema():
    """Only the values of due_pk changed: the declared index is what it was, so deploying
    the sharding replaces no table and no index."""
    template = json.loads(TABLE_TEMPLATE.read_text())
    (table,) = template["Resources"].values()
    (due,) = [i for i in table["Properties"]["GlobalSecondaryIndexes"] if i["IndexName"] == "due"]
    assert due["KeySchema"] == [{"AttributeName": "due_pk", "KeyType": "HASH"},
                                {"AttributeName": "due_at", "KeyType": "RANGE"}]
    assert due["Projection"] == {"ProjectionType": "ALL"}
