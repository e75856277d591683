"""The table keeps a break-glass grant's review due, in the fake and the real adapter alike
(the contract's ``store`` fixture: in memory, and DynamoDB on moto)."""

from __future__ import annotations

from datetime import timedelta

from chalicelib.domain.model import Principal, Request
from tests.fakes import T0
from tests.service.test_fakes_contract import moto, store  # noqa: F401 (fixtures)

RID = "req-20261112-b0b0b0"


def test_an_ended_break_glass_grant_stays_due_until_it_is_reviewed(store):  # noqa: F811
    req, event = Request.broke_glass(
        T0, request_id=RID, requester="alice", requester_slack="U0ALICE001", principal=Principal.iam_user("alice"),
        account="prod", account_id="222222222222", role="admin", role_arn="arn:aws:iam::222222222222:role/admin",
        production=True, duration_seconds=1800, reason="database down, pager silent",
        review_due_at=T0 + timedelta(hours=4))
    store.create(req, event)
    assert store.open_for("alice") == [req]
    assert store.due(T0 + timedelta(minutes=2)) == [req]  # GRANTING: retried after 2 minutes

    for move in (lambda r: r.granted(T0 + timedelta(seconds=5), "arn:aws:iam::111111111111:policy/x"),
                 lambda r: r.expire_grant(T0 + timedelta(minutes=30)),
                 lambda r: r.review_reminded(T0 + timedelta(hours=1), 1)):
        after, event = move(req)
        store.transition(req, after, event)
        req = after

    assert store.get(RID) == req and req.review_reminders == 1
    assert store.open_for("alice") == []  # ended: no longer counts against the limit
    assert store.due(T0 + timedelta(hours=1, minutes=59)) == []
    assert store.due(T0 + timedelta(hours=2)) == [req]  # the second reminder
    assert [e.action for e in store.history(RID)] == ["break_glass", "granted", "expired", "review_reminded"]

    after, event = req.review_acknowledged(T0 + timedelta(hours=2), "bob")
    store.transition(req, after, event)
    assert store.due(T0 + timedelta(days=2)) == [] and store.live() == []
    assert store.get(RID).review_outcome == "acknowledged"
