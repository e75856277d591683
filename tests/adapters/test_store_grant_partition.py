"""``grants_ending_after`` (DynamoStore on moto) reads only the records of the principal's
``grants_by_user`` partition: the first-use marker written there when a grant is first used
has no record in it, and must not break the next read (``on_activity``'s covering grant,
``list``'s recently ended grants)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.adapters.store import DynamoStore, create_table_from_template
from chalicelib.domain.model import Principal, Request
from local.seed import TABLE_TEMPLATE
from local.seed import client as aws

T0 = datetime(2026, 11, 12, 14, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(aws_env):
    from moto import mock_aws

    with mock_aws():
        client = aws("dynamodb")
        create_table_from_template(client, "grantpart", str(TABLE_TEMPLATE))
        yield DynamoStore(client, "grantpart")


def test_a_first_use_marker_in_the_partition_is_not_read_as_a_grant(store):
    req, ev = Request.requested(
        T0, request_id="req-20261112-00a001", requester="alice", requester_slack="U0ALICE001",
        principal=Principal.iam_user("alice"), account="prod", account_id="222222222222", role="admin",
        role_arn="arn:aws:iam::222222222222:role/admin", production=True, duration_seconds=7200,
        approvals_required=1, pending_until=T0 + timedelta(hours=1), reason="r")
    store.create(req, ev)
    approved, ev2 = req.approve(T0 + timedelta(minutes=1), "bob")
    store.transition(req, approved, ev2)
    granted, ev3 = approved.granted(T0 + timedelta(minutes=2), "arn:aws:iam::111111111111:policy/x")
    store.transition(approved, granted, ev3)
    assert store.first_use(req.request_id, "alice", T0 + timedelta(hours=3), T0 + timedelta(minutes=3))

    found = store.grants_ending_after(Principal.iam_user("alice"), T0 + timedelta(minutes=5))
    assert [r.request_id for r in found] == [req.request_id]
