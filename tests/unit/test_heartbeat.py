"""The alert path's heartbeat, pure: which envelopes are believed, when a path is silent,
and how silence and return read."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.alerts.heartbeat import SILENT_AFTER, Heartbeat, is_heartbeat, parse_heartbeat, silent
from chalicelib.slack.alert_views.liveness import restored_message, silent_message
from tests.fixtures import load_cloudtrail

BASTION, CATALOG = "111111111111", ["222222222222", "333333333333"]
T = datetime(2026, 11, 12, 14, 5, tzinfo=timezone.utc)


def parse(event):
    return parse_heartbeat(event, bastion_account_id=BASTION, catalog_account_ids=CATALOG)


def test_the_fixture_is_a_heartbeat_of_dev_in_eu_west_1():
    event = load_cloudtrail("heartbeat_dev")
    assert is_heartbeat(event)
    assert parse(event) == (Heartbeat("333333333333", "eu-west-1"), None)
    assert parse({**event, "account": BASTION}) == (Heartbeat(BASTION, "eu-west-1"), None)


@pytest.mark.parametrize("edit, reason", [
    ({"account": "444444444444"}, "neither the bastion nor a catalog account"),
    ({"account": "33333333333"}, "no 12-digit envelope account"),
    ({"region": None}, "no Region"),
    ({"region": "eu-west-1; <!here>"}, "no Region"),
])
def test_envelopes_that_are_not_believed(edit, reason):
    hb, problem = parse({**load_cloudtrail("heartbeat_dev"), **edit})
    assert hb is None and reason in problem


def test_other_events_are_not_heartbeats():
    assert not is_heartbeat(load_cloudtrail("assume_role_bastion_copy"))
    assert not is_heartbeat({**load_cloudtrail("heartbeat_dev"), "detail-type": "Scheduled Event"})
    assert not is_heartbeat("not an event")


def test_a_path_is_silent_after_two_intervals_not_one():
    assert SILENT_AFTER == timedelta(minutes=10)
    assert not silent(T, T + timedelta(minutes=5, seconds=30))  # one late heartbeat
    assert not silent(T, T + timedelta(minutes=10))
    assert silent(T, T + timedelta(minutes=10, seconds=1))


def test_how_silence_and_return_read():
    text, _, meta = silent_message("333333333333", "dev", "eu-west-1", T, T + timedelta(minutes=11))
    assert text == "<!here> alert path from account 333333333333 (dev, eu-west-1) is silent since 14:05 UTC"
    assert meta == {"event_type": "alert_path_silent", "event_payload": {
        "account": "333333333333", "account_key": "dev", "region": "eu-west-1", "silent_since": "2026-11-12T14:05:00Z"}}
    text, _, meta = restored_message("333333333333", "dev", "eu-west-1", T, T + timedelta(minutes=27))
    assert text == "alert path from account 333333333333 (dev, eu-west-1) is back (silent 14:05–14:32 UTC)"
    assert meta["event_payload"]["restored_at"] == "2026-11-12T14:32:00Z"
    text, _, _ = silent_message("333333333333", None, "eu-west-1", T, T + timedelta(days=1))
    assert "is silent since 2026-11-12 14:05 UTC" in text  # another day: the date too
