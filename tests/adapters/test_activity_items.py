"""The grant activity tally in the table (DynamoStore on moto): one transaction per call
(claim + tally), a repeat changes nothing, a tally moved by another call is re-read."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib.activity import add, parse_call
from chalicelib.adapters.store import DynamoStore, create_table_from_template
from local.seed import TABLE_TEMPLATE
from local.seed import client as aws
from tests.fixtures import load_activity

NOW = datetime(2026, 11, 12, 14, 30, tzinfo=timezone.utc)
RID = "req-20261112-000001"


@pytest.fixture
def store(aws_env):
    from moto import mock_aws

    with mock_aws():
        client = aws("dynamodb")
        create_table_from_template(client, "activity", str(TABLE_TEMPLATE))
        yield DynamoStore(client, "activity")


def _call(name: str):
    return parse_call(load_activity(name))


def test_a_call_is_counted_once(store):
    call = _call("ec2_run_instances_admin")
    first, tally = store.record_activity(RID, call.event_id, lambda old: add(old, call), NOW)
    assert first and tally["calls"] == 1
    assert store.record_activity(RID, call.event_id, lambda old: add(old, call), NOW) == (False, None)
    assert store.activity(RID) == tally
    item = store._db.get_item(TableName="activity", Key={"PK": {"S": f"ACTIVITY#{call.event_id}"},
                                                         "SK": {"S": "CLAIM"}})["Item"]
    assert item["request_id"]["S"] == RID and int(item["ttl"]["N"]) > NOW.timestamp() + 29 * 86400


def test_a_tally_moved_meanwhile_is_read_again_and_nothing_is_lost(store):
    a, b = _call("ec2_run_instances_admin"), _call("kms_put_key_policy_admin")
    rounds = []

    def update(old):
        rounds.append(old)
        if len(rounds) == 1:  # another call of the grant is counted between our read and our write
            store.record_activity(RID, b.event_id, lambda o: add(o, b), NOW)
        return add(old, a)

    first, tally = store.record_activity(RID, a.event_id, update, NOW)
    assert first and len(rounds) == 2 and rounds[0] is None and rounds[1]["calls"] == 1
    assert store.activity(RID)["actions"] == {"kms:PutKeyPolicy": 1, "ec2:RunInstances": 1}


def test_nothing_recorded_is_none(store):
    assert store.activity(RID) is None
