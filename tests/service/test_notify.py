"""Jobs that talk to people (chalicelib/usecases/notify.py): the card, DMs, private
answers, security notices. Everything is rendered from the record when the job runs."""

from __future__ import annotations

import pytest

from chalicelib.usecases import jobs
from chalicelib.usecases.notify import post_card, send_dm
from tests.service.helpers import (APPROVALS, SECURITY, approve, ask, card, cards, deny, dm_types, granted,
                                   security, slack_id, slash, state)


def test_the_card_is_posted_once_then_updated_in_place(svc):
    rid = ask(svc, run=False)
    job = jobs.Card(rid, "access_requested", {"request_id": rid})

    post_card(svc, job)
    post_card(svc, job)  # the same job again (a redelivered worker event)

    (msg,) = cards(svc)
    assert svc.store.card(rid) == (msg.channel, msg.ts) and msg.channel == APPROVALS
    assert len(msg.history) == 1 and msg.history[0].text == msg.text

    approve(svc, "bob", rid)
    approve(svc, "carol", rid)
    (msg,) = cards(svc)
    assert [v.event_type for v in msg.history + [msg]] == [
        "access_requested", "access_requested", "access_approved", "access_approved", "access_granted"]


def test_a_late_card_job_shows_the_record_as_it_is_now(svc):
    rid = granted(svc)
    svc.run_all(slash(svc, "alice", f"revoke {rid}").jobs)
    late = jobs.Card(rid, "access_granted", {"request_id": rid, "anything": "stale"})

    post_card(svc, late)

    msg = card(svc, rid)
    assert msg.event_type == "access_revoked"
    assert (msg.payload["request_id"], msg.payload["revoked_by"]) == (rid, "alice")
    assert "revoked by <@U0ALICE001>" in msg.all_text()


def test_a_late_card_job_for_a_revoke_carries_the_documented_payload(svc):
    rid = granted(svc)
    svc.run_all(slash(svc, "alice", f"revoke {rid}").jobs)
    assert card(svc, rid).payload == {"request_id": rid, "revoked_by": "alice"}  # what the in-time job put there

    post_card(svc, jobs.Card(rid, "access_granted", {}))

    assert card(svc, rid).payload == {"request_id": rid, "revoked_by": "alice"}


def test_a_change_while_the_card_is_posted_is_shown_too(svc):
    rid = ask(svc, run=False)
    # bob's approval lands between the job's read and its post
    svc.slack.before_next("post", lambda: approve(svc, "bob", rid, run=False))

    post_card(svc, jobs.Card(rid, "access_requested", {}))

    (msg,) = cards(svc)
    assert msg.event_type == "access_approved" and "1 of 2" in msg.all_text()


def test_two_card_jobs_at_once_leave_one_card(svc):
    rid = ask(svc, run=False)
    job = jobs.Card(rid, "access_requested", {})
    svc.store.before_next("save_card", lambda: post_card(svc, job))  # the other worker saves first

    post_card(svc, job)
    approve(svc, "bob", rid)
    approve(svc, "carol", rid)

    assert [m.event_type for m in cards(svc)] == ["access_granted"]


def test_a_card_for_a_request_that_does_not_exist_posts_nothing(svc):
    post_card(svc, jobs.Card("req-20261112-ffffff", "access_requested", {}))
    assert svc.slack.messages == []


def test_a_dm_is_sent_once_however_often_its_job_runs(svc):
    rid = granted(svc)
    dm = jobs.Dm(rid, "access_granted", {"request_id": rid})
    send_dm(svc, dm)
    send_dm(svc, dm)
    assert dm_types(svc) == ["access_approved", "access_granted"]
    assert svc.slack.dms("U0ALICE001")[0].channel == "D0ALICE001"


def test_a_dm_that_fails_is_sent_by_the_retry(svc):
    rid = ask(svc)
    follow = deny(svc, "bob", rid, run=False)
    svc.slack.fail_next("dm", ConnectionError("slack down"))
    with pytest.raises(ConnectionError):
        svc.run_all(follow)
    assert dm_types(svc) == []
    svc.clock.advance(minutes=1)  # a retry comes later (the sweep's, at the earliest a minute on)
    svc.run_all([j for j in follow if isinstance(j, jobs.Dm)])
    assert dm_types(svc) == ["access_denied"]


def test_a_late_granted_dm_after_a_revoke_says_nothing(svc):
    rid = ask(svc)
    approve(svc, "bob", rid)
    follow = approve(svc, "carol", rid, run=False)
    after_grant = svc.run(jobs.Grant(rid))  # ACTIVE; its card and DM jobs are still queued
    svc.run_all([j for j in follow if isinstance(j, jobs.Card)])
    svc.run_all(slash(svc, "alice", f"revoke {rid}").jobs)
    assert state(svc, rid) == "APPROVED/REVOKED"

    svc.run_all(after_grant)  # the granted card and DM arrive late

    assert dm_types(svc) == ["access_approved", "access_revoked"]
    assert card(svc, rid).event_type == "access_revoked"


def test_dms_go_to_the_requesters_slack_user(svc):
    rid = ask(svc, "dave", "prod admin 1h incident")
    svc.run_all(slash(svc, "bob", f"revoke {rid}").jobs)
    (dm,) = svc.slack.dms(slack_id(svc, "dave"))
    assert dm.channel == "D0DAVE0001" and "was cancelled by <@U0BOB00001>" in dm.text
    assert svc.slack.dms("U0ALICE001") == []


def test_an_ephemeral_answer_reaches_only_the_clicker(svc):
    svc.run(jobs.Ephemeral(APPROVALS, "U0DAVE0001", "You are not an approver."))
    (msg,) = svc.slack.ephemerals()
    assert (msg.channel, msg.user, msg.text) == (APPROVALS, "U0DAVE0001", "You are not an approver.")
    assert svc.slack.posts() == []


@pytest.mark.parametrize("event_type,payload,text", [
    ("grant_failed", {"request_id": "req-20261112-000001", "reason": "limit <!here>"},
     ":x: Grant req-20261112-000001 (alice → `prod/admin`) failed and was not applied: limit &lt;!here&gt;"),
    ("grant_drift", {"request_id": "req-20261101-aaaaaa", "policy_arn": "arn:x", "users": ["dave"],
                     "state": "no record", "action": "removed"},
     ":warning: Drift: Drawbridge policy `arn:x` was attached to dave with no record; removed."),
    ("grant_drift", {"request_id": "req-20261112-000001", "policy_arn": "arn:y", "users": ["alice", "dave"],
                     "state": "record ACTIVE", "action": "detached"},
     ":warning: Drift: Drawbridge policy `arn:y` was also attached to dave; detached from them."),
])
def test_security_notices_are_rendered_from_their_metadata(svc, event_type, payload, text):
    ask(svc)
    svc.run(jobs.Security(event_type, payload))
    (msg,) = security(svc)
    assert (msg.channel, msg.event_type, msg.payload, msg.text) == (SECURITY, event_type, payload, text)


def test_an_unknown_security_notice_is_an_error_and_posts_nothing(svc):
    with pytest.raises(ValueError, match="no security notice"):
        svc.run(jobs.Security("party", {}))
    assert svc.slack.messages == []


def test_jobs_travel_as_wire_dicts_too(svc):
    rid = ask(svc, run=False)
    svc.run_all([jobs.to_wire(jobs.Card(rid, "access_requested", {}))])
    assert len(cards(svc)) == 1
