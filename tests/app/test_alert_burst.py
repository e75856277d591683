"""The alert path through the app (chalice.test.Client, moto in-process, the Slack stand-in
over HTTP with Slack's rate limits on): how many AWS calls one CloudTrail event costs, and a
burst of calls within one minute (fewer than the bench's 1,000, to keep `make test` quick:
`python -m bench --only alerts` runs the full 1,000).

AWS calls are counted as the bench's Meter counts them: every botocore
``BaseClient._make_api_call`` the app makes (nothing is mocked; moto answers each one).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import time_machine

from local.events import refresh_cloudtrail
from tests.app.test_role_assumed import granted  # noqa: F401 - the same grant, as a fixture
from tests.fixtures import load_cloudtrail

SECURITY = "C0SECURIT1"
START = datetime(2026, 11, 12, 14, 10, tzinfo=timezone.utc)


@pytest.fixture
def aws_calls(monkeypatch):
    """Every AWS API call the process makes, as 'service.Operation' (the bench's Meter)."""
    import botocore.client

    seen: list[str] = []
    real = botocore.client.BaseClient._make_api_call

    def counted(client, operation_name, api_params):
        seen.append(f"{client.meta.service_model.service_name}.{operation_name}")
        return real(client, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counted)
    return seen


def call_by(who: str, at: datetime, n: int) -> dict:
    e = refresh_cloudtrail(load_cloudtrail("assume_role_bastion_copy"), at=at, iam_user=who)
    e["detail"]["eventID"] = f"e7e70000-0000-4000-8000-{n:012x}"
    e["detail"]["sharedEventID"] = f"5a5ed000-0000-4000-8000-{n:012x}"
    return e


def invoke(app_client, event, at: datetime):
    with time_machine.travel(at, tick=False):
        return app_client.client.lambda_.invoke("on_role_assumed", event).payload


def measured(app_client, slack, aws_calls, event, at) -> tuple[dict, Counter, Counter]:
    aws_before, slack_before = len(aws_calls), len(slack.calls)
    out = invoke(app_client, event, at)
    return (out, Counter(aws_calls[aws_before:]),
            Counter(c.method for c in slack.calls[slack_before:]))


def test_a_covered_and_an_uncovered_call_each_cost_two_aws_calls_and_one_slack_post(
        app_client, slack, granted, aws_calls):
    first = call_by("alice", START, 1)
    out, aws, posts = measured(app_client, slack, aws_calls, first, START)  # the grant's first use
    assert out["posted"] and aws == Counter({"dynamodb.Query": 1, "dynamodb.PutItem": 2, "dynamodb.GetItem": 1})
    assert posts == Counter({"chat.postMessage": 2})  # the alert, and the card's one "first used" reply

    out, aws, posts = measured(app_client, slack, aws_calls, call_by("alice", START, 2), START + timedelta(seconds=5))
    assert (out["kind"], out["posted"]) == ("covered", True)
    assert aws == Counter({"dynamodb.Query": 1, "dynamodb.PutItem": 1}) and posts == Counter({"chat.postMessage": 1})

    out, aws, posts = measured(app_client, slack, aws_calls, call_by("bob", START, 3), START + timedelta(seconds=10))
    assert (out["kind"], out["posted"]) == ("uncovered", True)
    assert aws == Counter({"dynamodb.Query": 1, "dynamodb.PutItem": 1}) and posts == Counter({"chat.postMessage": 1})

    owner = load_cloudtrail("assume_role_prod_copy")  # the role owner's copy of the first call
    owner["detail"]["sharedEventID"], owner["detail"]["eventTime"] = first["detail"]["sharedEventID"], first["detail"]["eventTime"]
    out, aws, posts = measured(app_client, slack, aws_calls, owner, START + timedelta(seconds=15))
    assert out["duplicate"] and aws == Counter({"dynamodb.Query": 1, "dynamodb.PutItem": 1}) and posts == Counter()


def digests_in_table(store) -> dict:
    from chalicelib.adapters.alert_calls import digest_from_item

    items = store._db.scan(TableName=store._table)["Items"]
    return {d["key"]: d for d in (digest_from_item(i) for i in items if i["SK"]["S"] == "DIGEST")}


def test_a_burst_within_a_minute_over_http_is_recorded_and_each_call_shown_once(
        app_client, slack, granted, store, monkeypatch):
    """120 calls in one minute (2 a second; every tenth by bob, uncovered), Slack at ~1
    message a second per channel (the stand-in's 429 with Retry-After), one digest post's
    answer lost and one 429 injected on top: every call recorded, each shown exactly once
    (its own alert or one digest), bob's named, at most ~60 writes to #security in the minute."""
    from chalicelib.adapters.slack_notifier import SlackNotifier

    slack.rate_limits = True
    real_post, lost = SlackNotifier.try_post, []

    def post_then_lose_a_digest(self, channel, text, blocks, event_type, payload):
        where = real_post(self, channel, text, blocks, event_type, payload)
        if event_type == "role_assumed_digest" and not lost:
            lost.append(where)
            raise ConnectionResetError("the answer was lost")
        return where

    monkeypatch.setattr(SlackNotifier, "try_post", post_then_lose_a_digest)
    n = 120
    events = [(START + timedelta(seconds=60 * i / n), call_by("bob" if i % 10 == 9 else "alice",
                                                               START + timedelta(seconds=60 * i / n - 3), 100 + i))
              for i in range(n)]
    outcomes = []
    for i, (arrive, e) in enumerate(events):
        if i == n // 2:
            slack.fail_next("chat.update", status=429, retry_after=2)
        outcomes.append(invoke(app_client, e, arrive))
    for minutes in (2, 3):
        with time_machine.travel(START + timedelta(minutes=minutes), tick=False):
            app_client.sweep()

    keys = [e["detail"]["sharedEventID"] for _, e in events]
    calls = {k: store.call(k) for k in keys}
    assert all(calls.values())  # every call recorded ...
    assert {k: (c["record"]["kind"], c["record"]["request_id"]) for k, c in calls.items()} == {
        e["detail"]["sharedEventID"]: ("uncovered", None) if e["detail"]["userIdentity"]["userName"] == "bob"
        else ("covered", granted) for _, e in events}  # ... with its grant, or flagged uncovered

    messages = slack.messages(SECURITY)
    own = Counter(m.event_payload["shared_event_id"] for m in messages if m.event_type == "role_assumed")
    posted = [m for m in messages if m.event_type == "role_assumed_digest"]
    by_key = Counter(m.event_payload["digest"] for m in posted)
    assert lost and {k: c for k, c in by_key.items() if c > 1} == {}  # the lost answer was found, not reposted
    table = digests_in_table(store)
    seen = Counter(own)
    for m in posted:
        d = table[m.event_payload["digest"]]
        assert m.event_payload["calls"] == d["members"] == d["shown"]
        seen.update(d["member_keys"])
        if m.event_payload["kind"] == "uncovered":
            assert "<!here>" in m.text and all(eid in m.all_text() for eid in m.event_payload["event_ids"])
    assert {k: c for k, c in seen.items() if c != 1} == {} and sorted(seen) == sorted(keys)
    for k, c in calls.items():  # the record says where: a digest, or its own alert
        assert (c["digest"] in by_key) if c["digest"] else own[k] == 1
    bob = {e["detail"]["eventID"] for _, e in events if e["detail"]["userIdentity"]["userName"] == "bob"}
    named = {eid for m in messages if "<!here>" in m.text
             for eid in (m.event_payload.get("event_ids") or [m.event_payload.get("event_id")])}
    assert named == bob

    writes = [t for ch, _, t in slack.writes(SECURITY)]
    assert len([t for t in writes if t < (START + timedelta(minutes=1)).timestamp()]) <= 63
    assert max(sum(1 for u in writes if t <= u < t + 1) for t in writes) <= 3
    assert slack.rate_limited()  # Slack did refuse some: the path above is the one under test
    assert sum(1 for o in outcomes if o.get("grouped")) > n // 2
