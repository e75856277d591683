"""The access review through the app (chalice.test.Client, moto, the Slack stand-in over HTTP):
a week of realistic access (grants approved and used, activity, a break-glass, a denied
request, a refused and an uncovered assumption, a dev grant), then the weekly_review schedule
fired twice (one post in #security, its CSV and JSON in the thread), ``/aws-access review``
by a member of the security channel (a DM with the files) and by anybody else (refused,
nothing sent), and the CLI export against the same table.

Story (UTC): Thursday 2026-11-12 alice is refused by AWS at 13:58 (no grant yet), holds
prod/admin from 14:02:15 for 2 h (bob and carol approve; she assumes it at 14:03:07 and makes
four write calls) and prod/readonly from 14:20 for 1 h (never used); dave's prod/admin
request is denied by bob; bob self-approves dev/admin (not production). Friday alice breaks
glass on prod/admin for 1 h; nobody reviews it. Saturday 03:00 somebody assumes prod/admin
with no grant. The review runs Monday 2026-11-16 09:00 for Monday 11-09 to Monday 11-16.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from datetime import datetime, timedelta, timezone

import pytest
import time_machine

from local import slack_client
from tests.conftest import sign
from tests.fixtures import load_activity, load_cloudtrail

SECURITY = "C0SECURIT1"
THU = datetime(2026, 11, 12, 14, 0, 0, tzinfo=timezone.utc)
MONDAY_9 = datetime(2026, 11, 16, 9, 0, tzinfo=timezone.utc)
ADMIN_CALLS = ["ec2_run_instances_admin", "s3_put_bucket_policy_admin", "iam_create_access_key_admin",
               "kms_put_key_policy_admin"]
REASON = "the payments database is down and the pager is silent"


def _rid(reply) -> str:
    return re.search(r"req-\d{8}-[0-9a-f]{6}", reply.text).group(0)


def _lambda(app_client, name: str, event: dict, at: datetime) -> dict:
    with time_machine.travel(at, tick=False):
        return app_client.client.lambda_.invoke(name, event).payload


def _scheduled(app_client) -> dict:
    return app_client.client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event",
                                                      detail={}, resources=[])


@pytest.fixture
def week(app_client, slack):
    """The week's access (see the module docstring): the request ids by name."""
    app = app_client
    ids = {}
    refused = _lambda(app, "on_role_assumed", load_cloudtrail("assume_role_denied"), THU - timedelta(minutes=1))
    assert refused["kind"] == "failed_attempt"
    with time_machine.travel(THU, tick=False) as clock:
        ids["admin"] = _rid(app.command("alice", "prod admin 2h fix incident 4521"))
        clock.move_to(THU + timedelta(minutes=2))
        app.approve("bob", ids["admin"])
        clock.move_to(THU + timedelta(minutes=2, seconds=15))
        app.approve("carol", ids["admin"])
        clock.move_to(THU + timedelta(minutes=19))
        ids["readonly"] = _rid(app.command("alice", "prod readonly 1h =HYPERLINK(\"http://x\") look around"))
        clock.move_to(THU + timedelta(minutes=20))
        app.approve("bob", ids["readonly"])
        clock.move_to(THU + timedelta(minutes=40))
        ids["denied"] = _rid(app.command("dave", "prod admin 1h curious"))
        clock.move_to(THU + timedelta(minutes=41))
        app.deny("bob", ids["denied"])
        clock.move_to(THU + timedelta(hours=1))
        ids["dev"] = _rid(app.command("bob", "dev admin 1h"))
        app.approve("bob", ids["dev"])
    used = _lambda(app, "on_role_assumed", load_cloudtrail("assume_role_bastion_copy"), THU + timedelta(minutes=5))
    assert used["kind"] == "covered" and used["request_id"] == ids["admin"]
    for name in ADMIN_CALLS:
        assert _lambda(app, "on_activity", load_activity(name), THU + timedelta(minutes=30))["kind"] == "counted"
    with time_machine.travel(THU + timedelta(hours=3), tick=False):
        app.sweep()  # the three grants expire

    friday = THU + timedelta(days=1)
    with time_machine.travel(friday, tick=False) as clock:
        reply = app.command("alice", f"breakglass prod admin 1h {REASON}")
        (button,) = [e for b in reply.body["blocks"] if b["type"] == "actions" for e in b["elements"]]
        clock.shift(timedelta(seconds=30))
        body = slack_client.click_body(app.slack_id("alice"), "confirm_break_glass", button["value"],
                                       channel_id="C0CMD00001", message_ts="1794492000.000300",
                                       block_id="break_glass_confirm")
        assert app.raw("/slack/interactions", body, sign(body)).status == 200
    ids["break_glass"] = next(m.event_payload["request_id"] for m in slack.find(event_type="break_glass_used"))
    with time_machine.travel(friday + timedelta(hours=2), tick=False):
        app.sweep()  # it expires; nobody acknowledges it

    uncovered = copy.deepcopy(load_cloudtrail("assume_role_bastion_copy"))
    uncovered["detail"].update(eventTime="2026-11-14T03:00:00Z", eventID="e7e70000-0000-4000-8000-0000000000aa",
                               sharedEventID="5a5ed000-0000-4000-8000-0000000000aa")
    uncovered["time"] = "2026-11-14T03:00:00Z"
    out = _lambda(app, "on_role_assumed", uncovered, datetime(2026, 11, 14, 3, 1, tzinfo=timezone.utc))
    assert out["kind"] == "uncovered"
    slack.set_channel_members(SECURITY, [app.slack_id("carol"), "U0AWSBOT01"])  # carol; not dave
    return ids


def _check_export(ids: dict, files: list[dict], *, week_start: str, week_end: str) -> None:
    """The two files: the same review, as CSV and as JSON."""
    assert sorted(f["name"].rsplit(".", 1)[1] for f in files) == ["csv", "json"]
    doc = json.loads(next(f["content"] for f in files if f["name"].endswith(".json")))
    assert doc["window"]["start"] == week_start and doc["window"]["end"] == week_end
    grants = {g["request_id"]: g for g in doc["grants"]}
    assert set(grants) == {ids["admin"], ids["readonly"], ids["break_glass"]}  # production only
    assert doc["non_production_grants"] == 1  # bob's dev grant, counted
    admin = grants[ids["admin"]]
    assert (admin["uses"], admin["write_calls"], admin["never_used"]) == (1, 4, False)
    assert admin["hours_in_window"] == 2.0 and admin["approvers"] == ["bob", "carol"]
    assert admin["ended_how"].startswith("expired")
    assert grants[ids["readonly"]]["never_used"] is True
    bg = grants[ids["break_glass"]]
    assert bg["break_glass"] is True and bg["review_state"] == "overdue" and bg["hours_in_window"] == 1.0
    kinds = sorted((d["kind"], d["person"]) for d in doc["denied"])
    assert kinds == [("failed_attempt", "alice"), ("request_denied", "dave")]
    assert [(d["kind"], d["account"]) for d in doc["no_grant"]] == [("uncovered", "prod")]  # a section of its own
    assert doc["records_without_audit_trail"] == [] and all(g["audit"] is None for g in doc["grants"])
    assert doc["window"]["generated_at"]
    assert {p["person"]: p["grants"] for p in doc["people"]} == {"alice": 3}

    rows = list(csv.reader(io.StringIO(next(f["content"] for f in files if f["name"].endswith(".csv")))))
    assert rows[0][:3] == ["section", "request_id", "person"]
    assert sorted(r[0] for r in rows[1:]) == ["denied"] * 2 + ["grant"] * 3 + ["no_grant", "person", "window"]
    readonly = next(r for r in rows if r[1] == ids["readonly"])
    assert readonly[rows[0].index("reason")].startswith("'=HYPERLINK")  # a formula, defused


def test_the_weekly_review_is_posted_once_with_its_files(app_client, slack, store, week):
    first = _lambda(app_client, "weekly_review", _scheduled(app_client), MONDAY_9)
    again = _lambda(app_client, "weekly_review", _scheduled(app_client), MONDAY_9 + timedelta(minutes=1))
    assert first["ts"] == again["ts"] and first["scope"] == "REVIEW#2026-W46"

    (post,) = slack.find(event_type="access_review", channel=SECURITY)
    assert post.event_payload == {"window_start": "2026-11-09T00:00:00Z", "window_end": "2026-11-16T00:00:00Z",
                                  "days": 7.0, "grants": 3, "never_used": 2, "break_glass": 1, "denied": 2,
                                  "no_grant": 1, "no_audit_trail": 0}
    text = post.displayed_text()
    for needed in ("Weekly access review", week["admin"], "never used", "break-glass: overdue", "0 flagged",
                   "1 request(s) denied", "1 non-production grant", "*Access with no grant*", "grant-hours",
                   "Sat 2026-11-14 03:00 uncovered", "(generated Mon 2026-11-16 09:00 UTC)"):
        assert needed in text, needed
    assert post.mentions() == []  # a summary pings nobody

    files = slack.files(SECURITY, thread_ts=post.ts)
    assert len(files) == 2 and len(slack.files()) == 2  # the second run shared nothing more
    _check_export(week, files, week_start="2026-11-09T00:00:00Z", week_end="2026-11-16T00:00:00Z")
    # the table remembers both deliveries (the message, then its files)
    assert store.delivery("REVIEW#2026-W46", "access_review").ts == post.ts
    assert store.delivery("REVIEW#2026-W46", "files").ts == post.ts


def test_review_on_demand_is_for_the_security_channel_only(app_client, slack, week):
    carol, dave = app_client.slack_id("carol"), app_client.slack_id("dave")
    at = MONDAY_9 + timedelta(hours=1)
    dave_dms, carol_dms, messages = slack.dms(dave), slack.dms(carol), slack.messages()
    with time_machine.travel(at, tick=False):
        refused = app_client.command("dave", "review 7d")
    assert refused.status == 200 and refused.body["response_type"] == "ephemeral"
    assert "Only members of the security channel" in refused.text
    assert slack.dms(dave) == dave_dms and slack.messages() == messages and slack.files() == []  # nothing sent

    for bad, says in (("review 0d", "1 to 90 days, not 0"), ("review 400d", "1 to 90 days, not 400"),
                      ("review foo", "'foo' is not a number of days"), ("review 7d 30d", "usage")):
        with time_machine.travel(at, tick=False):
            reply = app_client.command("carol", bad)
        assert says in reply.text, (bad, reply.text)
    assert slack.dms(carol) == carol_dms and slack.messages() == messages and slack.files() == []

    with time_machine.travel(at, tick=False):
        ack = app_client.command("carol", "review 7d")
    assert ack.body["response_type"] == "ephemeral" and "as a DM" in ack.text
    (dm,) = [m for m in slack.dms(carol) if m.event_type == "access_review"]
    assert dm.event_payload["window_start"] == "2026-11-09T10:00:00Z"
    assert dm.event_payload["window_end"] == "2026-11-16T10:00:00Z"
    assert dm.event_payload["grants"] == 3 and dm.event_payload["denied"] == 2 and dm.event_payload["no_grant"] == 1
    files = slack.files(dm.channel, thread_ts=dm.ts)
    _check_export(week, files, week_start="2026-11-09T10:00:00Z", week_end="2026-11-16T10:00:00Z")
    assert not slack.find(event_type="access_review", channel=SECURITY)  # on demand: only the DM


def test_the_cli_export_reads_the_same_rows(app_client, week, capsys):
    from chalicelib import review_export

    buf = io.StringIO()
    assert review_export.main(["--since", "7d", "--format", "json", "--end", "2026-11-16T00:00:00Z"], out=buf,
                              clock=lambda: MONDAY_9) == 0
    _check_export(week, [{"name": "x.json", "content": buf.getvalue()}, {"name": "x.csv", "content": _csv()}],
                  week_start="2026-11-09T00:00:00Z", week_end="2026-11-16T00:00:00Z")
    with pytest.raises(SystemExit):
        review_export.main(["--since", "400d"])


def _csv() -> str:
    from chalicelib import review_export

    buf = io.StringIO()
    review_export.main(["--since", "7d", "--format", "csv", "--end", "2026-11-16T00:00:00Z"], out=buf,
                       clock=lambda: MONDAY_9)
    return buf.getvalue()


def test_review_is_refused_when_slack_cannot_say_who_is_in_the_security_channel(app_client, slack):
    # the stand-in answers channel_not_found for a channel whose members were never set
    with time_machine.travel(MONDAY_9, tick=False):
        reply = app_client.command("carol", "review")
    assert "Only members of the security channel" in reply.text
    assert slack.messages() == [] and slack.files() == []


@pytest.mark.parametrize("method", ["chat.postMessage", "files.completeUploadExternal"])
def test_an_on_demand_review_that_slack_refused_is_delivered_by_the_sweep_once(app_client, slack, store, week,
                                                                               method):
    carol = app_client.slack_id("carol")
    at = MONDAY_9 + timedelta(hours=1)
    slack.fail_next(method, error="internal_error")  # Slack refuses the first attempt
    with time_machine.travel(at, tick=False):
        ack = app_client.command("carol", "review 7d")
    assert "as a DM" in ack.text
    dms = [m for m in slack.dms(carol) if m.event_type == "access_review"]
    assert len(dms) == (0 if method == "chat.postMessage" else 1) and slack.files() == []
    assert [o.key for o in store.owed_due(at + timedelta(hours=1)) if o.key.startswith("review:")] == \
        ["review:7d:2026-11-16T10:00:00Z"]

    for minutes in (2, 5, 30):  # the sweep's retry delivers it; later sweeps do nothing more
        with time_machine.travel(at + timedelta(minutes=minutes), tick=False):
            app_client.sweep()
    (dm,) = [m for m in slack.dms(carol) if m.event_type == "access_review"]
    assert dm.event_payload["window_end"] == "2026-11-16T10:00:00Z"
    files = slack.files(dm.channel, thread_ts=dm.ts)
    assert len(files) == 2 and len(slack.files(dm.channel)) == 2  # (the sweep also posted the weekly review)
    _check_export(week, files, week_start="2026-11-09T10:00:00Z", week_end="2026-11-16T10:00:00Z")
    assert [o for o in store.owed_due(at + timedelta(days=1)) if o.key.startswith("review:")] == []  # settled


def test_an_on_demand_review_slack_never_takes_is_given_up_and_the_person_told(app_client, slack, store, week):
    carol = app_client.slack_id("carol")
    at = MONDAY_9 + timedelta(hours=1)
    slack.fail_next("files.completeUploadExternal", error="missing_scope", times=50)
    with time_machine.travel(at, tick=False):
        app_client.command("carol", "review 7d")
    with time_machine.travel(at + timedelta(minutes=1), tick=False) as clock:
        for _ in range(12):  # every retry of the backoff, and then some
            clock.shift(timedelta(minutes=16))
            app_client.sweep()
    assert [o for o in store.owed_due(at + timedelta(days=2)) if o.key.startswith("review:")] == []  # given up
    (told,) = [m for m in slack.dms(carol) if m.event_type == "access_review_failed"]
    assert "could not be delivered (ref `" in told.displayed_text()
    assert slack.files(told.channel) == []


def test_the_sweep_posts_the_weekly_review_once_when_slack_was_down_at_nine(app_client, slack, store, week,
                                                                            caplog):
    slack.fail_next("chat.postMessage", error="internal_error", times=3)  # the run and Lambda's two retries
    for minutes in (0, 1, 3):
        with pytest.raises(Exception):
            _lambda(app_client, "weekly_review", _scheduled(app_client), MONDAY_9 + timedelta(minutes=minutes))
    assert any("weekly access review failed (ref " in r.getMessage() for r in caplog.records)
    assert not slack.find(event_type="access_review", channel=SECURITY)

    for minutes in (4, 19, 20, 21, 60):  # from 09:20 the sweep finishes it; later sweeps do nothing
        with time_machine.travel(MONDAY_9 + timedelta(minutes=minutes), tick=False):
            app_client.sweep()
        if minutes < 20:  # the schedule's run and Lambda's retries may take until ~09:18 (300 s each)
            assert not slack.find(event_type="access_review", channel=SECURITY)
    (post,) = slack.find(event_type="access_review", channel=SECURITY)
    files = slack.files(SECURITY, thread_ts=post.ts)
    assert len(files) == 2 and len(slack.files()) == 2
    _check_export(week, files, week_start="2026-11-09T00:00:00Z", week_end="2026-11-16T00:00:00Z")
    assert store.delivery("REVIEW#2026-W46", "files").ts == post.ts


def test_the_sweep_attaches_the_weekly_reviews_files_when_only_they_failed(app_client, slack, store, week):
    slack.fail_next("files.completeUploadExternal", error="internal_error", times=3)
    for minutes in (0, 1, 3):
        with pytest.raises(Exception):
            _lambda(app_client, "weekly_review", _scheduled(app_client), MONDAY_9 + timedelta(minutes=minutes))
    (post,) = slack.find(event_type="access_review", channel=SECURITY)  # the message once, no files
    assert slack.files() == []
    for minutes in (5, 20, 30):
        with time_machine.travel(MONDAY_9 + timedelta(minutes=minutes), tick=False):
            app_client.sweep()
        if minutes == 5:
            assert slack.files() == []  # not yet: the backstop starts at 09:20
    assert slack.find(event_type="access_review", channel=SECURITY) == [post]
    assert len(slack.files(SECURITY, thread_ts=post.ts)) == 2 and len(slack.files()) == 2



def test_the_review_does_not_trust_a_record_its_audit_trail_does_not_back(app_client, slack, store, week):
    """Records edited in the table by hand (moto): the admin grant claims 5 h more (an
    extension with no ``extended`` event), the break-glass claims an acknowledged review, and a
    grant is made up out of nothing (no event at all). The review tells each by its trail."""
    import dataclasses

    from chalicelib.adapters.store import request_item
    from chalicelib.domain.lifecycle import GrantStatus

    db, table = store._db, store._table
    admin = store.get(week["admin"])
    db.put_item(TableName=table, Item=request_item(admin.change(
        expires_at=admin.expires_at + timedelta(hours=5), ended_at=admin.ended_at + timedelta(hours=5),
        extended_seconds=5 * 3600)))
    bg = store.get(week["break_glass"])
    db.put_item(TableName=table, Item=request_item(bg.change(review_outcome="acknowledged", reviewed_by="mallory")))
    made_up = dataclasses.replace(store.get(week["readonly"]), request_id="req-20261113-abcdef",
                                  grant_status=GrantStatus.ACTIVE, ended_at=None, ended_by=None,
                                  expires_at=MONDAY_9 + timedelta(days=3))
    db.put_item(TableName=table, Item=request_item(made_up))  # live (the due index), no event

    out = _lambda(app_client, "weekly_review", _scheduled(app_client), MONDAY_9)
    assert out["grants"] == 3 and out["no_audit_trail"] == 1 and out["break_glass"] == 1
    (post,) = slack.find(event_type="access_review", channel=SECURITY)
    doc = json.loads(next(f["content"] for f in slack.files(SECURITY, thread_ts=post.ts)
                          if f["name"].endswith(".json")))
    grants = {g["request_id"]: g for g in doc["grants"]}
    assert grants[week["admin"]]["hours_in_window"] == 2.0  # not 7: the extension has no event
    assert "expiry" in grants[week["admin"]]["audit"]
    assert grants[week["break_glass"]]["review_state"] == "overdue"  # not acknowledged: no event says so
    assert grants[week["break_glass"]]["reviewed_by"] is None and "review" in grants[week["break_glass"]]["audit"]
    (flagged,) = doc["records_without_audit_trail"]
    assert flagged["request_id"] == "req-20261113-abcdef" and flagged["audit"] == "record without audit trail"
    assert {p["person"]: p["grants"] for p in doc["people"]} == {"alice": 3}  # the made-up grant in no total
    assert "record(s) without audit trail" in post.displayed_text()


def test_files_shared_before_their_answer_was_lost_are_not_shared_again(app_client, slack, store, week):
    """files.completeUploadExternal shared the files but its answer never came back: the
    retry finds them in the thread (conversations.replies) instead of sharing them twice."""
    from chalicelib.adapters.slack_notifier import SlackNotifier

    real_upload = SlackNotifier.upload_files

    def upload_then_lose_the_answer(self, *args, **kwargs):
        real_upload(self, *args, **kwargs)
        raise ConnectionResetError("the answer was lost")

    SlackNotifier.upload_files = upload_then_lose_the_answer
    try:
        with pytest.raises(Exception):
            _lambda(app_client, "weekly_review", _scheduled(app_client), MONDAY_9)
    finally:
        SlackNotifier.upload_files = real_upload
    (post,) = slack.find(event_type="access_review", channel=SECURITY)
    assert len(slack.files(SECURITY, thread_ts=post.ts)) == 2
    again = _lambda(app_client, "weekly_review", _scheduled(app_client), MONDAY_9 + timedelta(minutes=2))
    assert again["ts"] == post.ts
    assert len(slack.files()) == 2  # found in the thread, not shared again
    assert store.delivery("REVIEW#2026-W46", "files").ts == post.ts
    assert any(c.method == "conversations.replies" for c in slack.calls)
