"""The alert path's heartbeat, pure: which envelopes are believed, when a path is silent,
and how silence and return read."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.alerts.heartbeat import SILENT_AFTER, Heartbeat, is_heartbeat, parse_heartbeat, silent
from chalicelib.slack.alert_views.liveness import (
    IN_METADATA,
    LISTED,
    Path,
    heard_message,
    restored_message,
    silent_message,
    unheard_message,
)
from tests.fixtures import load_cloudtrail

BASTION, CATALOG = "111111111111", ["222222222222", "333333333333"]
T = datetime(2026, 11, 12, 14, 5, tzinfo=timezone.utc)


def parse(event, home_region=None):
    return parse_heartbeat(event, bastion_account_id=BASTION, catalog_account_ids=CATALOG, home_region=home_region)


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


def test_the_bastions_home_region_sends_none():
    # nothing forwards there (the app's own rules read the bus): a heartbeat from it was put by hand
    event = {**load_cloudtrail("heartbeat_dev"), "account": BASTION, "region": "eu-west-1"}
    hb, problem = parse(event, home_region="eu-west-1")
    assert hb is None and "home Region eu-west-1 sends no heartbeat" in problem
    assert parse(event, home_region="us-east-1") == (Heartbeat(BASTION, "eu-west-1"), None)
    # a member account's path in that Region is a path like any other
    assert parse({**event, "account": "333333333333"}, home_region="eu-west-1")[0] is not None


def test_other_events_are_not_heartbeats():
    assert not is_heartbeat(load_cloudtrail("assume_role_bastion_copy"))
    assert not is_heartbeat({**load_cloudtrail("heartbeat_dev"), "detail-type": "Scheduled Event"})
    assert not is_heartbeat("not an event")


def test_a_path_is_silent_after_two_intervals_and_a_grace():
    assert SILENT_AFTER == timedelta(minutes=12)
    assert not silent(T, T + timedelta(minutes=5, seconds=30))  # one late heartbeat
    assert not silent(T, T + timedelta(minutes=10, seconds=30))  # two missed, the second may be on its way
    assert not silent(T, T + timedelta(minutes=12))
    assert silent(T, T + timedelta(minutes=12, seconds=1))


def test_how_silence_and_return_read():
    one = Path("333333333333", "dev", "eu-west-1", T)
    text, _, meta = silent_message([one], T + timedelta(minutes=13))
    assert text == "<!here> alert path from account 333333333333 (dev, eu-west-1) is silent since 14:05 UTC"
    assert meta == {"event_type": "alert_path_silent", "event_payload": {"every": False, "count": 1, "paths": [
        {"account": "333333333333", "account_key": "dev", "region": "eu-west-1", "silent_since": "2026-11-12T14:05:00Z"}]}}
    text, _, meta = restored_message([one._replace(restored_at=T + timedelta(minutes=27))])
    assert text == "alert path from account 333333333333 (dev, eu-west-1) is back (silent 14:05–14:32 UTC)"
    assert meta["event_payload"]["paths"][0]["restored_at"] == "2026-11-12T14:32:00Z"
    text, _, _ = silent_message([one._replace(account_key=None)], T + timedelta(days=1))
    assert "is silent since 2026-11-12 14:05 UTC" in text  # another day: the date too


def test_one_sweeps_silent_paths_share_a_message_and_every_path_points_at_the_bastion():
    paths = [Path("333333333333", "dev", r, T + timedelta(minutes=i)) for i, r in enumerate(("us-east-1", "eu-west-1"))]
    text, blocks, meta = silent_message(paths, T + timedelta(minutes=14))
    assert text == "<!here> the alert path from 2 accounts and Regions is silent since 14:05 UTC"
    body = blocks[0]["text"]["text"]
    assert body.index("(dev, eu-west-1) since 14:06 UTC") < body.index("(dev, us-east-1) since 14:05 UTC")
    assert [p["region"] for p in meta["event_payload"]["paths"]] == ["eu-west-1", "us-east-1"]
    text, blocks, meta = silent_message(paths, T + timedelta(minutes=14), every=2)
    assert text == "<!here> every alert path (2) is silent since 14:05 UTC"
    assert "the bastion's side" in blocks[0]["text"]["text"] and meta["event_payload"]["every"] is True
    assert "went silent earlier" not in blocks[0]["text"]["text"]
    # the last of three, the others told before: still "every", and it says so
    text, blocks, _ = silent_message(paths[:1], T + timedelta(minutes=14), every=3)
    assert text == "<!here> every alert path (3) is silent since 14:05 UTC"
    assert "2 of them went silent earlier and were told then" in blocks[0]["text"]["text"]


def test_a_long_list_is_cut_and_counted():
    paths = [Path(f"{i:012d}", None, "eu-west-1", T) for i in range(LISTED + 5)]
    _, blocks, meta = silent_message(paths, T)
    body = blocks[0]["text"]["text"]
    assert body.count("\n• account ") == LISTED and body.endswith("… and 5 more")
    assert len(meta["event_payload"]["paths"]) == LISTED + 5 == meta["event_payload"]["count"]
    assert len(body) < 3000


def test_the_metadata_names_at_most_a_hundred_paths_and_counts_them_all():
    paths = [Path(f"{i:012d}", None, "eu-west-1", T) for i in range(IN_METADATA + 1)]
    _, _, meta = silent_message(paths, T)
    assert len(meta["event_payload"]["paths"]) == IN_METADATA and meta["event_payload"]["count"] == IN_METADATA + 1


def test_how_never_heard_and_first_heard_read():
    text, blocks, meta = unheard_message([("333333333333", "dev")], T)
    assert text == "<!here> no heartbeat has ever arrived from account 333333333333 (dev)"
    assert "drawbridge-member stack instances" in blocks[0]["text"]["text"]
    assert meta == {"event_type": "alert_path_unheard", "event_payload": {
        "expected_since": "2026-11-12T14:05:00Z", "count": 1,
        "accounts": [{"account": "333333333333", "account_key": "dev"}]}}
    text, _, _ = unheard_message([("333333333333", "dev"), ("222222222222", "prod")], T)
    assert text == "<!here> no heartbeat has ever arrived from 2 catalog accounts"
    text, _, meta = heard_message("333333333333", "dev", T, T - timedelta(minutes=40))
    assert text == "alert path from account 333333333333 (dev) is heard: first heartbeat 2026-11-12 14:05 UTC"
    assert meta == {"event_type": "alert_path_heard", "event_payload": {
        "account": "333333333333", "account_key": "dev", "first_heartbeat": "2026-11-12T14:05:00Z",
        "expected_since": "2026-11-12T13:25:00Z"}}
