"""The alert path proves it is alive, through the app (chalice.test.Client, moto's table,
the Slack stand-in): heartbeats arrive on on_heartbeat, the minute sweep notices when one
path's stop and when it comes back. Silence is posted once however many sweeps see it, the
return once however many heartbeats bring it; the paths one sweep finds silent share one
message; an unknown account's heartbeat registers nothing."""

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
        return app_client.client.lambda_.invoke("on_heartbeat", event).payload


def sweep(app_client, at: datetime):
    with time_machine.travel(at, tick=False):
        return app_client.sweep().payload


def lose_the_next_posts_answer(monkeypatch) -> None:
    """Slack takes the next chat.postMessage, but its answer never comes back."""
    from chalicelib.adapters.slack_notifier import SlackNotifier

    real_post = SlackNotifier.post

    def post_then_lose_the_answer(self, *args, **kwargs):
        real_post(self, *args, **kwargs)
        monkeypatch.setattr(SlackNotifier, "post", real_post)
        raise ConnectionResetError("the answer was lost")

    monkeypatch.setattr(SlackNotifier, "post", post_then_lose_the_answer)


def real_paths(store) -> list[dict]:
    """The paths, without the markers of catalog accounts not heard from yet."""
    return [p for p in store.paths() if p["region"] != "*"]


def path_alerts(slack, event_type=None):
    return [m for m in alerts(slack) if m.event_type in ((event_type,) if event_type
                                                          else ("alert_path_silent", "alert_path_restored"))]


def test_heartbeats_on_time_post_nothing(app_client, slack, store):
    for i in range(5):
        assert beat(app_client, T0 + timedelta(minutes=5 * i))["kind"] == "heartbeat"
        sweep(app_client, T0 + timedelta(minutes=5 * i + 4))
    assert path_alerts(slack) == []
    (path,) = real_paths(store)
    assert (path["account"], path["region"], path["last_seen"]) == ("333333333333", "eu-west-1", "2026-11-12T14:25:00Z")


def test_the_alert_handler_takes_no_heartbeat(app_client, store):
    # a custom source anyone on the bastion bus may put: never on_role_assumed's
    event = copy.deepcopy(load_cloudtrail("heartbeat_dev"))
    with time_machine.travel(T0, tick=False):
        assert app_client.client.lambda_.invoke("on_role_assumed", event).payload["kind"] == "ignored"
    assert real_paths(store) == []


def test_a_silent_path_is_posted_once_and_its_return_once(app_client, slack, store):
    beat(app_client, T0)
    beat(app_client, T0 + timedelta(minutes=5), region="us-east-1")  # another path, still beating
    for minute in range(6, 13):  # two heartbeats missed, but within the grace: not silence yet
        sweep(app_client, T0 + timedelta(minutes=minute))
        if minute == 10:
            beat(app_client, T0 + timedelta(minutes=minute), region="us-east-1")
    assert path_alerts(slack) == []
    for minute in range(13, 30):  # every minute, as the sweep runs
        sweep(app_client, T0 + timedelta(minutes=minute))
        if minute % 5 == 0:
            beat(app_client, T0 + timedelta(minutes=minute), region="us-east-1")
    (silent,) = path_alerts(slack)
    assert silent.text == "<!here> alert path from account 333333333333 (dev, eu-west-1) is silent since 14:05 UTC"
    assert silent.ts and silent.event_payload["paths"] == [
        {"account": "333333333333", "account_key": "dev", "region": "eu-west-1", "silent_since": "2026-11-12T14:05:00Z"}]

    out = beat(app_client, T0 + timedelta(minutes=27))
    assert out == {"kind": "heartbeat", "back": True}
    assert beat(app_client, T0 + timedelta(minutes=27, seconds=30)) == {"kind": "heartbeat"}  # the next one: nothing
    assert len(path_alerts(slack)) == 1  # a heartbeat posts nothing: the sweep tells the return
    for minute in range(28, 40):
        report = sweep(app_client, T0 + timedelta(minutes=minute))
        assert report["paths_restored"] == (1 if minute == 28 else 0)
        if minute % 5 == 2:
            beat(app_client, T0 + timedelta(minutes=minute))
        if minute % 5 == 0:
            beat(app_client, T0 + timedelta(minutes=minute), region="us-east-1")
    silent_again, back = path_alerts(slack)
    assert silent_again.ts == silent.ts
    assert back.event_type == "alert_path_restored"
    assert back.text == "alert path from account 333333333333 (dev, eu-west-1) is back (silent 14:05–14:32 UTC)"
    assert [p["silent_since"] for p in real_paths(store)] == [None, None]


def test_a_redelivered_return_is_told_once(app_client, slack):
    beat(app_client, T0)
    sweep(app_client, T0 + timedelta(minutes=13))
    back_at = T0 + timedelta(minutes=20)
    beat(app_client, back_at)
    beat(app_client, back_at)  # EventBridge's redelivery of the same heartbeat
    sweep(app_client, back_at + timedelta(seconds=30))
    sweep(app_client, back_at + timedelta(minutes=1))
    assert [m.event_type for m in path_alerts(slack)] == ["alert_path_silent", "alert_path_restored"]


def test_a_return_slack_refused_is_told_by_the_next_sweep_once(app_client, slack, store):
    beat(app_client, T0)
    sweep(app_client, T0 + timedelta(minutes=13))
    beat(app_client, T0 + timedelta(minutes=20))
    slack.fail_next("chat.postMessage", error="fatal_error")
    report = sweep(app_client, T0 + timedelta(minutes=21))
    assert report["errors"] == 1 and report["paths_restored"] == 0
    assert [m.event_type for m in path_alerts(slack)] == ["alert_path_silent"]
    assert sweep(app_client, T0 + timedelta(minutes=22))["paths_restored"] == 1
    sweep(app_client, T0 + timedelta(minutes=23))
    assert [m.event_type for m in path_alerts(slack)] == ["alert_path_silent", "alert_path_restored"]


def test_a_lost_answer_is_finished_with_the_same_message(app_client, slack, store, monkeypatch):
    # Slack posted the silence, its answer never came back: the next sweep finds that
    # message (same batch) instead of posting a second one
    lose_the_next_posts_answer(monkeypatch)
    beat(app_client, T0)
    assert sweep(app_client, T0 + timedelta(minutes=13))["errors"] == 1
    assert len(path_alerts(slack, "alert_path_silent")) == 1
    (path,) = real_paths(store)
    assert path["silent_batch"] and not path["silent_posted"]
    sweep(app_client, T0 + timedelta(minutes=14))
    sweep(app_client, T0 + timedelta(minutes=15))
    assert len(path_alerts(slack, "alert_path_silent")) == 1
    assert real_paths(store)[0]["silent_posted"]


def test_an_unknown_accounts_heartbeat_is_ignored(app_client, slack, store):
    out = beat(app_client, T0, account="444444444444")
    assert out["kind"] == "ignored" and "neither the bastion nor a catalog account" in out["reason"]
    assert real_paths(store) == []
    sweep(app_client, T0 + timedelta(minutes=30))
    assert path_alerts(slack) == []


def test_the_bastions_other_regions_beat_too_its_home_region_does_not(app_client, slack, store, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    out = beat(app_client, T0, account="111111111111", region="eu-west-2")
    assert out["kind"] == "ignored" and "home Region eu-west-2" in out["reason"]
    beat(app_client, T0, account="111111111111", region="eu-central-1")
    sweep(app_client, T0 + timedelta(minutes=13))
    (silent,) = path_alerts(slack)
    assert silent.text.startswith("<!here> alert path from account 111111111111 (bastion, eu-central-1) is silent")
    assert [p["region"] for p in real_paths(store)] == ["eu-central-1"]


def test_paths_silent_together_share_one_message_and_all_of_them_point_at_the_bastion(app_client, slack, store):
    for region in ("eu-west-1", "us-east-1"):
        beat(app_client, T0, region=region)
    beat(app_client, T0, account="111111111111", region="eu-central-1")
    for minute in (13, 14, 15):
        sweep(app_client, T0 + timedelta(minutes=minute))
    (silent,) = path_alerts(slack)
    assert silent.text == "<!here> every alert path (3) is silent since 14:05 UTC"
    assert silent.event_payload["every"] is True and len(silent.event_payload["paths"]) == 3
    for region in ("eu-west-1", "us-east-1"):
        beat(app_client, T0 + timedelta(minutes=20), region=region)
    assert sweep(app_client, T0 + timedelta(minutes=21))["paths_restored"] == 2
    _, back = path_alerts(slack)
    assert back.text == "the alert path from 2 accounts and Regions is back"
    assert real_paths(store)[0]["silent_since"] is not None  # the bastion's Region is still silent


def test_a_silence_slack_refused_is_posted_by_the_next_sweep_once(app_client, slack, store):
    beat(app_client, T0)
    beat(app_client, T0 + timedelta(minutes=1), region="us-east-1")
    for minute in range(2, 14):  # a third path keeps beating: no hold, each silence is its own
        if minute % 5 == 2:
            beat(app_client, T0 + timedelta(minutes=minute), account="111111111111", region="eu-central-1")
    slack.fail_next("chat.postMessage", error="fatal_error")
    report = sweep(app_client, T0 + timedelta(minutes=13))
    assert report["errors"] == 1 and path_alerts(slack) == []
    assert sweep(app_client, T0 + timedelta(minutes=14))["paths_silent"] == 1  # the second path, its own batch
    for minute in range(15, 18):
        sweep(app_client, T0 + timedelta(minutes=minute))
    assert sorted(r for m in path_alerts(slack, "alert_path_silent") for r in
                  [p["region"] for p in m.event_payload["paths"]]) == ["eu-west-1", "us-east-1"]
    assert len(path_alerts(slack, "alert_path_silent")) == 2
    assert all(p["silent_posted"] for p in real_paths(store) if p["region"] != "eu-central-1")


def test_a_bastion_outage_with_staggered_heartbeats_is_one_message(app_client, slack, store):
    # every schedule fires at its own minute; when the bastion's side breaks, the paths
    # cross the threshold one sweep after another: held until all are silent, told once
    starts = {("333333333333", "eu-west-1"): 0, ("333333333333", "us-east-1"): 1,
              ("222222222222", "eu-west-1"): 2, ("111111111111", "eu-central-1"): 3}
    for (account, region), minute in starts.items():
        beat(app_client, T0 + timedelta(minutes=minute), account=account, region=region)
    for minute in range(4, 20):
        sweep(app_client, T0 + timedelta(minutes=minute))
    (silent,) = path_alerts(slack)
    assert silent.text == "<!here> every alert path (4) is silent since 14:05 UTC"
    assert silent.event_payload["every"] is True and silent.event_payload["count"] == 4
    assert "look at the bastion's side first" in silent.blocks[0]["text"]["text"]


def test_one_path_among_beating_ones_is_told_alone_and_on_time(app_client, slack):
    # the hold applies only while no path beats: a single broken path is not delayed
    beat(app_client, T0)
    for minute in range(0, 14):
        if minute % 5 == 1:
            beat(app_client, T0 + timedelta(minutes=minute), region="us-east-1")
        sweep(app_client, T0 + timedelta(minutes=minute))
    (silent,) = path_alerts(slack)
    assert silent.text == "<!here> alert path from account 333333333333 (dev, eu-west-1) is silent since 14:05 UTC"
    assert silent.event_payload["every"] is False


def test_a_catalog_account_never_heard_from_is_told_once_and_its_first_heartbeat_too(app_client, slack, store):
    beat(app_client, T0, account="111111111111", region="eu-central-1")  # the bastion's Region beats
    for minute in range(1, 45, 3):
        sweep(app_client, T0 + timedelta(minutes=minute))
        beat(app_client, T0 + timedelta(minutes=minute), account="111111111111", region="eu-central-1")
    (unheard,) = [m for m in alerts(slack) if m.event_type == "alert_path_unheard"]
    assert unheard.text == "<!here> no heartbeat has ever arrived from 2 catalog accounts"
    assert [a["account_key"] for a in unheard.event_payload["accounts"]] == ["prod", "dev"]
    beat(app_client, T0 + timedelta(minutes=46), account="222222222222", region="eu-west-1")
    sweep(app_client, T0 + timedelta(minutes=47))
    sweep(app_client, T0 + timedelta(minutes=48))
    (heard,) = [m for m in alerts(slack) if m.event_type == "alert_path_heard"]
    assert heard.text == "alert path from account 222222222222 (prod) is heard: first heartbeat 2026-11-12 14:51 UTC"
    assert [p["account"] for p in store.paths() if p["region"] == "*"] == ["333333333333"]
    assert len([m for m in alerts(slack) if m.event_type == "alert_path_unheard"]) == 1
    assert path_alerts(slack) == []


def test_no_account_is_waited_for_before_any_path_beats(app_client, slack, store):
    # StackSets that predate the heartbeat, a local stack: nothing is expected yet
    for minute in (0, 31, 90):
        sweep(app_client, T0 + timedelta(minutes=minute))
    assert store.paths() == [] and path_alerts(slack) == []
    assert [m for m in alerts(slack) if m.event_type == "alert_path_unheard"] == []


def test_an_account_heard_before_its_wait_is_over_is_never_told(app_client, slack, store):
    beat(app_client, T0, account="111111111111", region="eu-central-1")
    sweep(app_client, T0)
    for account in ("222222222222", "333333333333"):
        beat(app_client, T0 + timedelta(minutes=5), account=account)
    sweep(app_client, T0 + timedelta(minutes=6))
    assert [p for p in store.paths() if p["region"] == "*"] == []
    sweep(app_client, T0 + timedelta(minutes=40))
    assert [m for m in alerts(slack) if m.event_type in ("alert_path_unheard", "alert_path_heard")] == []


def test_a_heard_message_whose_answer_was_lost_is_found_with_the_same_time(app_client, slack, store, monkeypatch):
    beat(app_client, T0, account="111111111111", region="eu-central-1")
    for minute in (0, 31):
        sweep(app_client, T0 + timedelta(minutes=minute))
    assert len([m for m in alerts(slack) if m.event_type == "alert_path_unheard"]) == 1
    beat(app_client, T0 + timedelta(minutes=33), account="222222222222")
    lose_the_next_posts_answer(monkeypatch)
    assert sweep(app_client, T0 + timedelta(minutes=34))["errors"] == 1
    beat(app_client, T0 + timedelta(minutes=38), account="222222222222")  # last_seen moves on meanwhile
    sweep(app_client, T0 + timedelta(minutes=36 + 3))
    sweep(app_client, T0 + timedelta(minutes=40))
    (heard,) = [m for m in alerts(slack) if m.event_type == "alert_path_heard" and m.event_payload["account"] == "222222222222"]
    assert heard.event_payload["first_heartbeat"] == "2026-11-12T14:38:00Z"
    assert "222222222222" not in [p["account"] for p in store.paths() if p["region"] == "*"]


def test_an_unheard_alert_whose_mark_was_lost_still_gets_its_heard(app_client, slack, store, monkeypatch):
    # the "never heard" post landed, the sweep died before marking it shown: the account's
    # first heartbeat is still told, not dropped with the marker
    from chalicelib.adapters import path_items

    beat(app_client, T0, account="111111111111", region="eu-central-1")
    sweep(app_client, T0)
    real_update = path_items.PathItems.path_update

    def die_before_marking(self, account, region, **kwargs):
        if (kwargs.get("set_") or {}).get("unheard_posted"):
            raise ConnectionResetError("the sweep died here")
        return real_update(self, account, region, **kwargs)

    monkeypatch.setattr(path_items.PathItems, "path_update", die_before_marking)
    sweep(app_client, T0 + timedelta(minutes=31))
    monkeypatch.setattr(path_items.PathItems, "path_update", real_update)
    assert len([m for m in alerts(slack) if m.event_type == "alert_path_unheard"]) == 1
    for account in ("222222222222", "333333333333"):
        beat(app_client, T0 + timedelta(minutes=40), account=account)
    sweep(app_client, T0 + timedelta(minutes=41))
    assert sorted(m.event_payload["account"] for m in alerts(slack) if m.event_type == "alert_path_heard") == [
        "222222222222", "333333333333"]
    assert len([m for m in alerts(slack) if m.event_type == "alert_path_unheard"]) == 1


def test_a_marker_of_an_account_gone_from_the_catalog_is_forgotten(app_client, slack, store):
    beat(app_client, T0, account="111111111111", region="eu-central-1")
    sweep(app_client, T0)
    store.path_create("444444444444", "*", {"expected_since": "2026-11-12T13:00:00Z"})  # left the catalog since
    sweep(app_client, T0 + timedelta(minutes=1))
    assert "444444444444" not in [p["account"] for p in store.paths()]
