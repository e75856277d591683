"""The alert path proves it is alive, through the app (chalice.test.Client, moto's table,
the Slack stand-in): heartbeats arrive on on_role_assumed, the minute sweep notices when
one path's stop. Silence is posted once however many sweeps see it, the return once however
many heartbeats bring it; an unknown account's heartbeat registers nothing."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import time_machine

from tests.app.test_role_assumed import alerts
from tests.fixtures import load_cloudtrail

T0 = datetime(2026, 11, 12, 14, 5, tzinfo=timezone.utc)


def beat(app_client, at: datetime, account: str = "333333333333", region: str = "eu-west-1"):
    event = copy.deepcopy(load_cloudtrail("heartbeat_dev"))
    event.update(account=account, region=region, time=at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    with time_machine.travel(at, tick=False):
        return app_client.client.lambda_.invoke("on_role_assumed", event).payload


def sweep(app_client, at: datetime):
    with time_machine.travel(at, tick=False):
        return app_client.sweep().payload


def path_alerts(slack, event_type=None):
    return [m for m in alerts(slack) if m.event_type in ((event_type,) if event_type
                                                          else ("alert_path_silent", "alert_path_restored"))]


def test_heartbeats_on_time_post_nothing(app_client, slack, store):
    for i in range(5):
        assert beat(app_client, T0 + timedelta(minutes=5 * i))["kind"] == "heartbeat"
        sweep(app_client, T0 + timedelta(minutes=5 * i + 4))
    assert path_alerts(slack) == []
    (path,) = store.paths()
    assert (path["account"], path["region"], path["last_seen"]) == ("333333333333", "eu-west-1", "2026-11-12T14:25:00Z")


def test_a_silent_path_is_posted_once_and_its_return_once(app_client, slack, store):
    beat(app_client, T0)
    beat(app_client, T0 + timedelta(minutes=5), region="us-east-1")  # another path, still beating
    for minute in range(6, 11):  # one heartbeat late is not silence yet
        sweep(app_client, T0 + timedelta(minutes=minute))
        if minute == 10:
            beat(app_client, T0 + timedelta(minutes=minute), region="us-east-1")
    assert path_alerts(slack) == []
    for minute in range(11, 30):  # every minute, as the sweep runs
        sweep(app_client, T0 + timedelta(minutes=minute))
        if minute % 5 == 0:
            beat(app_client, T0 + timedelta(minutes=minute), region="us-east-1")
    (silent,) = path_alerts(slack)
    assert silent.text == "<!here> alert path from account 333333333333 (dev, eu-west-1) is silent since 14:05 UTC"
    assert silent.event_payload == {"account": "333333333333", "account_key": "dev", "region": "eu-west-1",
                                    "silent_since": "2026-11-12T14:05:00Z"}

    out = beat(app_client, T0 + timedelta(minutes=27))
    assert (out["kind"], out["posted"]) == ("heartbeat", True)
    assert beat(app_client, T0 + timedelta(minutes=27, seconds=30)).get("posted") is False  # the next one: nothing
    for minute in range(28, 40):
        sweep(app_client, T0 + timedelta(minutes=minute))
        if minute % 5 == 2:
            beat(app_client, T0 + timedelta(minutes=minute))
        if minute % 5 == 0:
            beat(app_client, T0 + timedelta(minutes=minute), region="us-east-1")
    silent_again, back = path_alerts(slack)
    assert silent_again.ts == silent.ts
    assert back.event_type == "alert_path_restored"
    assert back.text == "alert path from account 333333333333 (dev, eu-west-1) is back (silent 14:05–14:32 UTC)"
    assert [p["silent_since"] for p in store.paths()] == [None, None]


def test_a_redelivered_return_is_told_once(app_client, slack):
    beat(app_client, T0)
    sweep(app_client, T0 + timedelta(minutes=11))
    back_at = T0 + timedelta(minutes=20)
    beat(app_client, back_at)
    beat(app_client, back_at)  # EventBridge's redelivery of the same heartbeat
    assert [m.event_type for m in path_alerts(slack)] == ["alert_path_silent", "alert_path_restored"]


def test_a_return_slack_refused_is_finished_by_the_sweep(app_client, slack, store):
    beat(app_client, T0)
    sweep(app_client, T0 + timedelta(minutes=11))
    slack.fail_next("chat.postMessage", error="fatal_error")
    try:
        beat(app_client, T0 + timedelta(minutes=20))
    except Exception:  # noqa: BLE001 - the handler raises so that Lambda retries it
        pass
    assert [m.event_type for m in path_alerts(slack)] == ["alert_path_silent"]
    report = sweep(app_client, T0 + timedelta(minutes=22))
    assert report["paths_restored"] == 1
    sweep(app_client, T0 + timedelta(minutes=23))
    assert [m.event_type for m in path_alerts(slack)] == ["alert_path_silent", "alert_path_restored"]


def test_an_unknown_accounts_heartbeat_is_ignored(app_client, slack, store):
    out = beat(app_client, T0, account="444444444444")
    assert out["kind"] == "ignored" and "neither the bastion nor a catalog account" in out["reason"]
    assert store.paths() == []
    sweep(app_client, T0 + timedelta(minutes=30))
    assert path_alerts(slack) == []


def test_the_bastions_other_regions_beat_too(app_client, slack):
    beat(app_client, T0, account="111111111111", region="eu-central-1")
    sweep(app_client, T0 + timedelta(minutes=12))
    (silent,) = path_alerts(slack)
    assert silent.text.startswith("<!here> alert path from account 111111111111 (bastion, eu-central-1) is silent")


def test_a_silence_slack_refused_is_posted_by_the_next_sweep_once(app_client, slack):
    beat(app_client, T0)
    beat(app_client, T0, region="us-east-1")
    slack.fail_next("chat.postMessage", error="fatal_error")
    report = sweep(app_client, T0 + timedelta(minutes=11))
    assert report["errors"] == 1
    assert len(path_alerts(slack, "alert_path_silent")) == 1  # the other path was still told
    for minute in range(12, 16):
        sweep(app_client, T0 + timedelta(minutes=minute))
    assert sorted(m.event_payload["region"] for m in path_alerts(slack, "alert_path_silent")) == [
        "eu-west-1", "us-east-1"]
