"""Failed attempts grouped into one Slack line (chalicelib/usecases/alert.py ``_failed_attempt``):
the interleavings two concurrent handlers can produce, on the in-memory fakes, and the
store methods behind it held to the real DynamoDB adapter (moto)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.alerts import failure_group_key, parse_assumption
from chalicelib.usecases.alert import GROUP_POST_TIMEOUT, AlertOutcome, handle
from tests.fakes import T0, InMemoryStore
from tests.fixtures import load_cloudtrail
from tests.service.helpers import SECURITY


def denied(n: int, minute: int = 2, second: int = 0) -> dict:
    event = load_cloudtrail("assume_role_denied")
    event["detail"]["eventTime"] = event["time"] = f"2026-11-12T14:{minute:02d}:{second:02d}Z"
    event["detail"]["eventID"] = f"e7e70000-0000-4000-8000-{0xd00000 + n:012x}"
    return event


def group_key(event: dict) -> str:
    return failure_group_key(parse_assumption(event, bastion_account_id="111111111111"))


def lines(svc):
    return svc.slack.posts(SECURITY)


def test_an_attempt_counted_while_the_first_is_posting_is_shown_by_the_first(svc):
    svc.clock.set(T0 + timedelta(minutes=5))
    second: list[AlertOutcome] = []
    # The second handler runs exactly while the first is posting the line.
    svc.slack.before_next("post", lambda: second.append(handle(svc, denied(2, second=30))))

    first = handle(svc, denied(1))

    assert first == AlertOutcome(kind="failed_attempt", posted=True)
    assert second == [AlertOutcome(kind="failed_attempt",
                                   reason="counted; the group's first attempt is posting its line")]
    (line,) = lines(svc)
    assert line.payload["attempts"] == 2 and "denied 2 times since 14:02 UTC, last at 14:02" in line.text
    assert len(line.history) == 1  # posted with 1, then updated by the owner's re-read


def test_an_owner_that_died_posting_is_taken_over_after_the_timeout(svc):
    svc.clock.set(T0 + timedelta(minutes=5))
    key = group_key(denied(1))
    # A handler joined and then died (Lambda timeout) before its line was saved.
    svc.store.join_alert_group(key, "dead-handler", datetime(2026, 11, 12, 14, 2, tzinfo=timezone.utc), svc.now())

    assert handle(svc, denied(2, second=10)).posted is False  # the owner may still be posting
    assert lines(svc) == []

    svc.clock.advance(GROUP_POST_TIMEOUT + timedelta(seconds=1))
    assert handle(svc, denied(3, second=20)) == AlertOutcome(kind="failed_attempt", posted=True)
    (line,) = lines(svc)
    assert line.payload["attempts"] == 3  # nothing counted was lost
    assert handle(svc, denied(4, second=40)).updated is True
    assert lines(svc)[0].payload["attempts"] == 4


def test_redelivery_and_both_copies_never_count_twice(svc):
    for _ in range(3):
        handle(svc, denied(1))
    handle(svc, denied(2, second=5))
    (line,) = lines(svc)
    assert line.payload["attempts"] == 2
    assert svc.store.alert_group(group_key(denied(1)))["count"] == 2


def test_a_failed_update_is_undone_and_the_retry_counts_once(svc):
    handle(svc, denied(1))
    svc.slack.fail_next("update", ConnectionError("slack down"))
    with pytest.raises(ConnectionError):
        handle(svc, denied(2, second=5))
    assert svc.store.alert(denied(2)["detail"]["eventID"]) is None
    assert svc.store.alert_group(group_key(denied(1)))["count"] == 1
    assert handle(svc, denied(2, second=5)).updated is True
    assert lines(svc)[0].payload["attempts"] == 2


def test_a_failed_count_releases_the_claim(svc):
    svc.store.fail_next("join_alert_group", ConnectionError("dynamodb down"))
    with pytest.raises(ConnectionError):
        handle(svc, denied(1))
    assert svc.store.alert(denied(1)["detail"]["eventID"]) is None
    assert handle(svc, denied(1)).posted is True


# --------------------------------------------------------------------------- the store, fake and real



# the same store on the in-memory fake and on moto as the fakes contract uses
from tests.service.test_fakes_contract import moto, store  # noqa: E402, F401


def at(minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 12, 14, minute, second, tzinfo=timezone.utc)


def test_store_counts_keeps_first_and_last_and_one_owner(store):
    assert store.alert_group("g") is None
    one = store.join_alert_group("g", "e1", at(5), T0)
    assert one == {"count": 1, "first": "2026-11-12T14:05:00Z", "last": "2026-11-12T14:05:00Z", "owner": "e1",
                   "owned_at": "2026-11-12T14:00:00Z", "channel": None, "ts": None}
    two = store.join_alert_group("g", "e2", at(2), T0 + timedelta(seconds=1))  # arrives late, happened first
    three = store.join_alert_group("g", "e3", at(9), T0 + timedelta(seconds=2))
    assert (two["count"], two["first"], two["owner"]) == (2, "2026-11-12T14:02:00Z", "e1")
    assert (three["count"], three["first"], three["last"]) == (3, "2026-11-12T14:02:00Z", "2026-11-12T14:09:00Z")
    assert store.alert_group("g") == {**three, "owned_at": "2026-11-12T14:00:00Z"}


def test_store_only_the_owner_saves_the_line_once(store):
    store.join_alert_group("g", "e1", at(5), T0)
    store.join_alert_group("g", "e2", at(6), T0)
    assert store.save_alert_group_message("g", "e2", "C1", "1.1") is False
    assert store.save_alert_group_message("g", "e1", "C1", "1.1") is True
    assert store.save_alert_group_message("g", "e1", "C1", "2.2") is False
    assert (store.alert_group("g")["channel"], store.alert_group("g")["ts"]) == ("C1", "1.1")
    assert store.join_alert_group("g", "e3", at(7), T0)["ts"] == "1.1"


def test_store_leave_undoes_a_join_and_frees_an_owner_without_a_line(store):
    store.join_alert_group("g", "e1", at(5), T0)
    store.join_alert_group("g", "e2", at(6), T0)
    store.leave_alert_group("g", "e2")  # not the owner: only the count
    assert (store.alert_group("g")["count"], store.alert_group("g")["owner"]) == (1, "e1")
    store.leave_alert_group("g", "e1")
    assert (store.alert_group("g")["count"], store.alert_group("g")["owner"]) == (0, None)
    assert store.join_alert_group("g", "e3", at(7), T0)["owner"] == "e3"
    store.save_alert_group_message("g", "e3", "C1", "1.1")
    store.leave_alert_group("g", "e3")  # the line exists: ownership stays
    assert store.alert_group("g")["owner"] == "e3"
    store.leave_alert_group("missing", "e1")  # nothing to undo


def test_store_take_over_only_from_the_owner_seen_and_only_without_a_line(store):
    store.join_alert_group("g", "e1", at(5), T0)
    assert store.take_alert_group("g", "someone-else", "e2", T0) is False
    assert store.take_alert_group("g", "e1", "e2", T0 + timedelta(minutes=3)) is True
    assert (store.alert_group("g")["owner"], store.alert_group("g")["owned_at"]) == ("e2", "2026-11-12T14:03:00Z")
    store.save_alert_group_message("g", "e2", "C1", "1.1")
    assert store.take_alert_group("g", "e2", "e3", T0) is False
    assert store.take_alert_group("missing", "e1", "e2", T0) is False
