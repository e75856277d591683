"""Use case: a CloudTrail AssumeRole* event -> the security channel and the grant's card
(chalicelib/usecases/alert.py), with the recorded-shape events of tests/fixtures."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib.usecases.alert import AlertOutcome, handle
from tests.fixtures import cloudtrail_names, load_cloudtrail
from tests.service.helpers import APPROVALS, SECURITY, card, granted, security, slash

SHARED_1 = "5a5ed000-0000-4000-8000-000000000001"  # alice's CLI call at 14:03:07, both copies
DENIED_ID = "e7e70000-0000-4000-8000-000000000005"


def at(hh, mm, ss=0) -> datetime:
    return datetime(2026, 11, 12, hh, mm, ss, tzinfo=timezone.utc)


def event(name: str, event_time: str | None = None) -> dict:
    e = load_cloudtrail(name)
    if event_time is not None:
        e["detail"]["eventTime"] = e["time"] = event_time
    return e


@pytest.fixture
def grant(svc):
    """alice's prod/admin grant: asked 14:00:00, granted 14:02:15, until 16:02:15."""
    return granted(svc)


def role_assumed(svc):
    return svc.slack.posts(SECURITY, event_type="role_assumed")


def test_a_covered_call_names_the_grant_and_replies_on_its_card(svc, grant):
    svc.clock.set(at(14, 3, 9))  # CloudTrail delivers a little later

    outcome = handle(svc, event("assume_role_bastion_copy"))

    assert outcome == AlertOutcome(kind="covered", request_id=grant, posted=True)
    (alert,) = security(svc)
    assert alert.event_type == "role_assumed"
    assert alert.payload == {"account": "prod", "role": "admin", "role_arn": "arn:aws:iam::222222222222:role/admin",
                             "iam_user": "alice", "event_id": "e7e70000-0000-4000-8000-000000000001",
                             "shared_event_id": SHARED_1, "event_time": "2026-11-12T14:03:07Z",
                             "request_id": grant, "kind": "covered"}
    assert alert.text.startswith("Production role assumed:") and f"(grant {grant})" in alert.text
    assert "<!here>" not in alert.all_text()

    record = svc.store.alert(SHARED_1)
    assert (record["kind"], record["request_id"], record["iam_user"], record["mfa"]) == (
        "covered", grant, "alice", True)
    assert svc.store.uses(grant) == [record]

    the_card = card(svc, grant)
    (reply,) = svc.slack.posts(APPROVALS, thread_ts=the_card.ts)
    assert reply.event_type == "grant_used"
    assert reply.payload == {"request_id": grant, "event_id": "e7e70000-0000-4000-8000-000000000001",
                             "shared_event_id": SHARED_1, "event_time": "2026-11-12T14:03:07Z"}
    assert reply.text == ("first used at 14:03 UTC from 203.0.113.10, AWS CLI, MFA "
                          "(every use is alerted in the security channel)")


def test_only_a_grants_first_use_is_told_on_its_card(svc, grant):
    """One Slack call per call: the card's thread hears of the grant's first use only; every
    use is its own alert (and record) in #security."""
    for n in range(3):
        e = event("assume_role_bastion_copy", f"2026-11-12T14:1{n}:00Z")
        e["detail"]["sharedEventID"] = e["detail"]["eventID"] = f"5a5ed000-0000-4000-8000-00000000010{n}"
        assert handle(svc, e).posted
    assert len(role_assumed(svc)) == 3 and len(svc.store.uses(grant)) == 3
    assert len(svc.slack.posts(APPROVALS, thread_ts=card(svc, grant).ts)) == 1


def test_both_copies_and_a_redelivery_give_exactly_one_alert(svc, grant):
    first = handle(svc, event("assume_role_bastion_copy"))
    second = handle(svc, event("assume_role_prod_copy"))
    again = handle(svc, event("assume_role_bastion_copy"))

    assert first.posted and (second.duplicate, second.posted) == (True, False) and again.duplicate
    assert second.request_id == grant  # the role owner's copy finds the grant by its session name
    assert len(role_assumed(svc)) == 1
    assert len(svc.slack.posts(event_type="grant_used")) == 1
    assert len(svc.store.uses(grant)) == 1 and list(svc.store.alerts()) == [SHARED_1]


def test_the_role_owners_copy_alone_is_covered_too(svc, grant):
    assert handle(svc, event("assume_role_prod_copy")) == AlertOutcome("covered", grant, posted=True)


def test_without_a_grant_the_alert_is_loud(svc):
    outcome = handle(svc, event("assume_role_bastion_copy"))

    assert outcome == AlertOutcome(kind="uncovered", request_id=None, posted=True)
    (alert,) = security(svc)
    assert alert.text.startswith("<!here> NO APPROVED GRANT: ")
    assert (alert.payload["kind"], alert.payload["request_id"]) == ("uncovered", None)
    assert svc.store.alert(SHARED_1)["request_id"] is None
    assert svc.slack.posts(event_type="grant_used") == []


@pytest.mark.parametrize("name,kind", [
    ("assume_role_console_switch", "uncovered"),  # alice's grant is for admin, this is readonly
    ("assume_role_with_saml_prod", "uncovered"),  # straight into prod, never through the bastion
])
def test_a_grant_covers_only_its_own_role_and_user(svc, grant, name, kind):
    outcome = handle(svc, event(name))
    assert (outcome.kind, outcome.request_id, outcome.posted) == (kind, None, True)
    assert svc.store.uses(grant) == [] and svc.slack.posts(event_type="grant_used") == []


def test_a_denied_attempt_is_a_quiet_notice_and_recorded(svc):
    outcome = handle(svc, event("assume_role_denied"))

    assert outcome == AlertOutcome(kind="failed_attempt", request_id=None, posted=True)
    (alert,) = security(svc)
    assert alert.text.startswith("Denied attempt on production role") and "<!here>" not in alert.all_text()
    assert alert.payload["kind"] == "failed_attempt"
    assert svc.store.alert(DENIED_ID)["error_code"] == "AccessDenied"  # no sharedEventID: keyed by eventID


def test_a_denied_attempt_during_a_grant_is_still_a_failure(svc, grant):
    outcome = handle(svc, event("assume_role_denied", "2026-11-12T14:30:00Z"))
    assert (outcome.kind, outcome.request_id) == ("failed_attempt", None)
    assert svc.store.uses(grant) == []


class Log:
    def __init__(self):
        self.lines = []

    def info(self, msg, extra=None):
        self.lines.append((msg, extra))


def test_non_production_is_logged_not_posted(svc, grant):
    log = Log()
    outcome = handle(svc, event("assume_role_dev_account"), log=log)
    assert outcome == AlertOutcome(kind="not_production")
    assert svc.slack.posts(SECURITY) == [] and svc.store.alerts() == {}
    assert [extra["kind"] for _, extra in log.lines] == ["not_production"]


def test_an_unknown_account_is_counted_not_posted(svc):
    e = event("assume_role_bastion_copy")
    e["detail"]["requestParameters"]["roleArn"] = "arn:aws:iam::444444444444:role/admin"
    metrics = []

    outcome = handle(svc, e, metric=metrics.append)

    assert outcome == AlertOutcome(kind="unknown_account")
    assert metrics == ["AssumptionInUnknownAccount"]
    assert svc.slack.messages == [] and svc.store.alerts() == {}


def test_events_that_are_not_assumptions_are_ignored(svc):
    assert handle(svc, event("signin_switch_role")) == AlertOutcome(kind="ignored")
    assert handle(svc, {"detail": "junk"}) == AlertOutcome(kind="ignored")
    assert svc.slack.messages == [] and svc.store.alerts() == {}


def test_every_fixture_alerts_at_most_once(svc, grant):
    for name in cloudtrail_names():
        handle(svc, event(name))
        handle(svc, event(name))
    keys = [m.payload["shared_event_id"] or m.payload["event_id"] for m in role_assumed(svc)]
    assert len(keys) == len(set(keys)) == 4  # bastion+prod copies (one call), console switch, denied, SAML


@pytest.mark.parametrize("when,kind", [
    ("2026-11-12T14:02:14Z", "uncovered"),  # a second before the grant
    ("2026-11-12T14:02:15Z", "covered"),  # the grant's own second (CloudTrail has whole seconds)
    ("2026-11-12T16:02:15Z", "covered"),  # its last second
    ("2026-11-12T16:02:16Z", "uncovered"),
])
def test_the_window_is_judged_on_the_event_time(svc, grant, when, kind):
    assert handle(svc, event("assume_role_bastion_copy", when)).kind == kind


def test_a_late_delivery_is_judged_on_when_the_call_was_made(svc, grant):
    svc.clock.set(at(16, 30))
    svc.sweep()  # the grant has expired and ended by the time the event arrives
    assert svc.store.get(grant).grant_status.value == "EXPIRED"
    assert handle(svc, event("assume_role_bastion_copy")) == AlertOutcome("covered", grant, posted=True)


def test_a_call_after_a_revoke_is_not_covered(svc, grant):
    svc.clock.set(at(14, 3))
    svc.run_all(slash(svc, "alice", f"revoke {grant}").jobs)  # ended at 14:03:00
    earlier = event("assume_role_bastion_copy", "2026-11-12T14:02:59Z")
    earlier["detail"]["sharedEventID"] = "5a5ed000-0000-4000-8000-0000000000a1"  # another call
    assert handle(svc, earlier).kind == "covered"
    assert handle(svc, event("assume_role_bastion_copy")).kind == "uncovered"  # 14:03:07


def test_a_failed_grant_covers_nothing(svc, grant):
    svc.grants.delete(grant)
    svc.clock.set(at(14, 20))
    svc.sweep()  # vanished: FAILED
    assert svc.store.get(grant).grant_status.value == "FAILED"
    assert handle(svc, event("assume_role_bastion_copy")).kind == "uncovered"


def test_a_failed_post_is_posted_once_by_the_retry(svc, grant):
    svc.slack.fail_next("try_post", ConnectionError("slack down"))
    with pytest.raises(ConnectionError):
        handle(svc, event("assume_role_bastion_copy"))
    assert role_assumed(svc) == [] and len(svc.store.uses(grant)) == 1  # recorded before it is shown

    svc.clock.advance(minutes=1)  # Lambda's retry of a failed async invocation
    assert handle(svc, event("assume_role_bastion_copy")).posted
    assert handle(svc, event("assume_role_bastion_copy")).duplicate
    assert len(role_assumed(svc)) == 1 and len(svc.store.uses(grant)) == 1


def test_an_invocation_that_died_unseen_is_delivered_once_by_its_retry(svc, grant):
    """The post failed and so did marking the claim (the process died): a copy of the same
    event seconds later takes it for the attempt still running; Lambda's retry a minute
    later looks for the alert, finds none, and posts it once."""
    svc.slack.fail_next("try_post", ConnectionError("slack down"))
    svc.store.fail_next("call_failed", ConnectionError("dynamodb down too"))
    with pytest.raises(ConnectionError):
        handle(svc, event("assume_role_bastion_copy"))
    svc.clock.advance(seconds=5)
    assert handle(svc, event("assume_role_bastion_copy")).duplicate and role_assumed(svc) == []
    svc.clock.advance(minutes=1)
    assert handle(svc, event("assume_role_bastion_copy")).posted
    assert handle(svc, event("assume_role_bastion_copy")).duplicate
    assert len(role_assumed(svc)) == 1


def test_the_facade_hands_events_to_the_same_use_case(svc, grant):
    assert svc.role_assumed(event("assume_role_bastion_copy")) == AlertOutcome("covered", grant, posted=True)


def test_a_failed_first_use_reply_is_logged_and_the_alert_stands(svc, grant):
    """The card's note is one attempt (at most once): its failure neither fails the alert
    nor makes Lambda retry it."""
    warnings = []

    class Log:
        def warning(self, msg, **kw):
            warnings.append(msg)

        info = warning

    svc.store.fail_next("card", ConnectionError("dynamodb blip"))
    outcome = handle(svc, event("assume_role_bastion_copy"), log=Log())
    assert outcome.posted and len(role_assumed(svc)) == 1 and len(svc.store.uses(grant)) == 1
    assert [m for m in svc.slack.posts() if m.thread_ts] == []
    assert warnings == ["first-use reply on the card not posted"]
    svc.clock.advance(minutes=1)
    assert handle(svc, event("assume_role_bastion_copy")).duplicate  # the retry finds the alert
    assert [m for m in svc.slack.posts() if m.thread_ts] == [] and len(role_assumed(svc)) == 1
