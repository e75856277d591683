"""Use case: ``/aws-access extend <request-id> <duration> [reason]`` (chalicelib/usecases/extend.py).

The sample catalog's prod/admin: max_duration 4h, max_extended_duration 8h, extend_approvals 1
(bob or carol). ``granted`` approves at 14:02:15, so a 2h grant expires at 16:02:15 and may
be lengthened by at most 6h in total. Each test reads the resulting state: the record, the
audit trail, the grant policy in (fake) IAM, and what Slack shows.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from chalicelib import policy as pol
from chalicelib.domain.model import Extension, GrantStatus, iso_z
from chalicelib.slack.parse import Click
from chalicelib.slack.views import APPROVE_EXTENSION, DENY_EXTENSION
from chalicelib.usecases import jobs
from chalicelib.usecases.grant import end_grant
from tests.fakes import make_service
from tests.service.helpers import (APPROVALS, actions, card, dm_types, ephemeral_texts, granted, press, slack_id,
                                   slash, state)

DECIDED = "2026-11-12T14:02:15Z"
OLD_END = "2026-11-12T16:02:15Z"


def expiry_in_iam(svc, rid: str) -> str | None:
    """The ``aws:CurrentTime`` expiry of the grant policy IAM holds (None: no policy)."""
    found = svc.grants.policy(rid)
    return pol.expiry_of(found.document) if found else None


def extend(svc, rid: str, text: str = "1h still on incident 4521", person: str = "alice"):
    reply = slash(svc, person, f"extend {rid} {text}")
    svc.run_all(reply.jobs)
    return reply


def click(svc, person: str, action: str, rid: str):
    follow = press(svc, person, action, rid)
    svc.run_all(follow)
    return follow


def test_an_extension_waits_for_an_approver_while_the_grant_stays_in_force(svc):
    rid = granted(svc)
    svc.clock.advance(minutes=30)

    reply = extend(svc, rid)

    assert reply.text == (f"Extension of `{rid}` (`prod/admin`) by 1h is waiting for approval on its card in "
                          "<#C0APPROVE1>: needs 1 of @bob, @carol. Your access stays in force until 16:02 UTC "
                          "meanwhile; I'll DM you when it is decided.")
    req = svc.store.get(rid)
    assert (req.grant_status, iso_z(req.expires_at), req.extended_seconds) == (GrantStatus.ACTIVE, OLD_END, 0)
    assert (req.extension.n, req.extension.seconds, req.extension.state, req.extension.reason) == (
        1, 3600, "pending", "still on incident 4521")
    assert actions(svc, rid)[-1] == ("alice", "extension_requested", "APPROVED/ACTIVE", "APPROVED/ACTIVE")
    assert expiry_in_iam(svc, rid) == OLD_END and svc.grants.holders(rid) == ["alice"]  # IAM untouched
    msg = card(svc, rid)
    assert "Extension asked" in msg.all_text() and "+1h, to 17:02 UTC" in msg.all_text()
    buttons = [e["action_id"] for b in msg.blocks if b["type"] == "actions" for e in b["elements"]]
    assert buttons == [APPROVE_EXTENSION, DENY_EXTENSION]
    for approver in ("U0BOB00001", "U0CAROL001"):  # each approver is asked by DM, with the buttons
        (asked,) = svc.slack.dms(approver)
        assert asked.event_type == "extension_requested" and asked.payload["extension"] == 1
        assert "asks to extend `prod/admin`" in asked.all_text() and "by 1h, to 17:02 UTC" in asked.all_text()
        assert [e["action_id"] for b in asked.blocks if b["type"] == "actions" for e in b["elements"]] == [
            APPROVE_EXTENSION, DENY_EXTENSION]
    assert svc.slack.dms("U0ALICE001")[-1].event_type == "access_granted"  # never asked herself


def test_approved_the_new_expiry_is_in_iam_before_the_record_says_so_and_starts_at_the_old_one(svc):
    rid = granted(svc)
    svc.clock.advance(minutes=90)
    extend(svc, rid)
    before = svc.grants.policy(rid).arn
    svc.clock.advance(minutes=5)

    follow = press(svc, "carol", APPROVE_EXTENSION, rid)

    # approved, not applied yet: the old grant is untouched and still the record's expiry
    req = svc.store.get(rid)
    assert req.extension.state == "approved" and iso_z(req.expires_at) == OLD_END
    assert expiry_in_iam(svc, rid) == OLD_END
    assert jobs.ExtendGrant(rid, 1) in follow
    svc.run_all(follow)

    new_end = "2026-11-12T17:02:15Z"  # the old expiry + 1h, not the approval + 1h
    req = svc.store.get(rid)
    assert (iso_z(req.expires_at), req.extended_seconds, req.extension.state) == (new_end, 3600, "applied")
    assert (iso_z(req.extension.old_expires_at), iso_z(req.extension.new_expires_at)) == (OLD_END, new_end)
    found = svc.grants.policy(rid)
    assert (found.arn, found.users, pol.expiry_of(found.document)) == (before, ["alice"], new_end)
    assert found.document == pol.grant_policy(req.role_arn, req.expires_at, rid)  # MFA and role unchanged
    assert found.tags["drawbridge:expires-at"] == new_end
    assert [a[1] for a in actions(svc, rid)[-3:]] == ["extension_requested", "extension_approved", "extended"]
    (dm,) = [m for m in svc.slack.dms("U0ALICE001") if m.event_type == "access_extended"]
    assert dm.payload == {"request_id": rid, "old_expires_at": OLD_END, "expires_at": new_end,
                          "approvers": ["carol"]}
    assert "until 2026-11-12T17:02:15Z (17:02 UTC)" in dm.text
    msg = card(svc, rid)
    assert msg.event_type == "access_granted" and msg.payload["expires_at"] == new_end
    assert "Access granted until 17:02 UTC* (extended by 1h)" in msg.all_text() and not msg.has_buttons
    assert "active* until 17:02 UTC" in slash(svc, "alice", "list").text


def test_the_grant_is_held_throughout_and_never_twice(svc):
    """The state of IAM at every step of an extension: one policy, attached to alice, whose
    expiry is the old one until the switch and the new one after it."""
    rid = granted(svc)
    svc.clock.advance(minutes=60)
    seen: list[tuple[int, list[str], str]] = []

    def look(*_):
        mine = [p for p in svc.grants.policies.values() if "alice" in p.users]
        seen.append((len(mine), svc.grants.holders(rid), expiry_in_iam(svc, rid)))

    extend(svc, rid)
    look()
    for step in press(svc, "bob", APPROVE_EXTENSION, rid):
        look()
        svc.run_all([step])
    look()
    assert seen[0] == (1, ["alice"], OLD_END)
    assert seen[-1] == (1, ["alice"], "2026-11-12T17:02:15Z")
    assert all(n == 1 and holders == ["alice"] for n, holders, _ in seen)
    assert [end for *_, end in seen] == sorted(end for *_, end in seen)  # never goes back


def test_a_denied_extension_leaves_the_grant_as_it_was(svc):
    rid = granted(svc)
    extend(svc, rid)

    click(svc, "bob", DENY_EXTENSION, rid)

    req = svc.store.get(rid)
    assert (req.extension.state, req.extension.decided_by, iso_z(req.expires_at)) == ("denied", "bob", OLD_END)
    assert expiry_in_iam(svc, rid) == OLD_END
    assert actions(svc, rid)[-1] == ("bob", "extension_denied", "APPROVED/ACTIVE", "APPROVED/ACTIVE")
    (dm,) = [m for m in svc.slack.dms("U0ALICE001") if m.event_type == "extension_denied"]
    assert "was denied by <@U0BOB00001>; the grant keeps its expiry" in dm.text
    assert "denied by <@U0BOB00001>" in card(svc, rid).all_text() and not card(svc, rid).has_buttons
    # a later approve click is refused, and a new extension may be asked
    click(svc, "carol", APPROVE_EXTENSION, rid)
    assert "already denied by @bob" in ephemeral_texts(svc, "carol")[-1]
    assert "is waiting for approval" in extend(svc, rid, "30m a little longer").text
    assert svc.store.get(rid).extension.n == 2


def test_a_pending_extension_lapses_when_the_grant_expires(svc):
    rid = granted(svc)
    extend(svc, rid)
    svc.clock.advance(hours=2, minutes=3)

    svc.sweep()

    req = svc.store.get(rid)
    assert req.grant_status is GrantStatus.EXPIRED and svc.grants.policy(rid) is None
    assert (req.extension.state, req.extension.note) == ("lapsed", "the grant ended before it was decided")
    assert "lapsed: the grant ended before it was decided" in card(svc, rid).all_text()
    assert not card(svc, rid).has_buttons
    (dm,) = [m for m in svc.slack.dms("U0ALICE001") if m.event_type == "access_expired"]
    assert "Your extension request (+1h) lapsed with it" in dm.text
    click(svc, "bob", APPROVE_EXTENSION, rid)
    assert "The extension lapsed" in ephemeral_texts(svc, "bob")[-1]
    assert state(svc, rid) == "APPROVED/EXPIRED" and svc.grants.policy(rid) is None


def test_a_pending_extension_lapses_when_the_grant_is_revoked(svc):
    rid = granted(svc)
    extend(svc, rid)
    svc.run_all(slash(svc, "alice", f"revoke {rid}").jobs)
    assert svc.store.get(rid).extension.state == "lapsed"
    click(svc, "bob", APPROVE_EXTENSION, rid)
    assert "The extension lapsed" in ephemeral_texts(svc, "bob")[-1]
    assert state(svc, rid) == "APPROVED/REVOKED" and svc.grants.policy(rid) is None


@pytest.mark.parametrize("text, refusal", [
    ("6h1m", "can be extended by at most 6h"),
    ("9h", "can be extended by at most 6h"),
    ("soon", "is not a duration"),
    ("1h", "production extensions need a reason"),
])
def test_refused_extensions_change_nothing(svc, text, refusal):
    rid = granted(svc)
    before = svc.store.get(rid)
    reply = slash(svc, "alice", f"extend {rid} {text}")
    assert refusal in reply.text and reply.jobs == []
    assert svc.store.get(rid) == before and expiry_in_iam(svc, rid) == OLD_END


def test_the_total_from_approval_never_exceeds_the_cap(svc):
    rid = granted(svc)
    extend(svc, rid, "4h first stretch")
    click(svc, "bob", APPROVE_EXTENSION, rid)
    extend(svc, rid, "2h second stretch")
    click(svc, "carol", APPROVE_EXTENSION, rid)
    req = svc.store.get(rid)
    assert (req.expires_at - req.decided_at) == timedelta(hours=8) and req.extended_seconds == 6 * 3600
    assert expiry_in_iam(svc, rid) == "2026-11-12T22:02:15Z"
    reply = slash(svc, "alice", f"extend {rid} 1m more")
    assert "cannot be extended further" in reply.text and reply.jobs == []


def test_who_may_extend_and_when(svc):
    rid = granted(svc)
    assert "only the requester (@alice)" in slash(svc, "bob", f"extend {rid} 1h why").text
    pending = slash(svc, "dave", "prod admin 1h incident 1").jobs[0].request_id
    assert "only an active grant can be extended" in slash(svc, "dave", f"extend {pending} 1h why").text
    assert "unknown request" in slash(svc, "alice", "extend req-20261112-abcdef 1h why").text
    extend(svc, rid)
    assert "already has an extension of 1h waiting for approval (0 of 1)" in \
        slash(svc, "alice", f"extend {rid} 1h again").text


def test_approvers_only_and_outside_production_a_self_approving_requester_too():
    svc = make_service(SELF_APPROVING)
    rid = granted(svc, "bob", "dev admin 1h", approvers=("bob",))
    extend(svc, rid, "1h", person="bob")
    click(svc, "dave", APPROVE_EXTENSION, rid)
    assert "You are not an approver of dev/admin" in ephemeral_texts(svc, "dave")[-1]
    click(svc, "bob", APPROVE_EXTENSION, rid)  # self_approval: his own click counts
    assert svc.store.get(rid).extension.state == "applied"


def test_each_approver_is_asked_once_even_if_the_job_runs_again_after_a_lost_answer(svc, monkeypatch):
    """Slack posts bob's DM but its answer is lost, so that run stops before carol. The job
    stays owed; the sweep's retries find bob's DM (not posted again) and post carol's."""
    rid = granted(svc)
    real, lost = svc.slack.dm, []

    def post_then_lose(user, text, blocks, event_type, payload):
        where = real(user, text, blocks, event_type, payload)
        if event_type == "extension_requested" and not lost:
            lost.append(user)
            raise ConnectionResetError("the answer was lost")
        return where

    monkeypatch.setattr(svc.slack, "dm", post_then_lose)
    reply = slash(svc, "alice", f"extend {rid} 1h still on it")
    svc.run_all(reply.jobs, on_error=lambda job, exc: None)
    assert lost == ["U0BOB00001"] and "ask:1" in [o.key for o in svc.store.owed_for("alice")]
    for wait in (2, 5):
        svc.clock.advance(minutes=wait)
        svc.sweep()
    assert [len(svc.slack.dms(u)) for u in ("U0BOB00001", "U0CAROL001")] == [1, 1]
    assert [o.key for o in svc.store.owed_for("alice") if o.key.startswith("ask")] == []


def test_an_approver_can_decide_from_the_dm(svc):
    rid = granted(svc)
    extend(svc, rid)
    (asked,) = svc.slack.dms("U0CAROL001")
    (block,) = [b for b in asked.blocks if b["type"] == "actions"]
    n = int(block["block_id"].rsplit(":", 1)[1])
    svc.run_all(svc.click(Click(APPROVE_EXTENSION, rid, "U0CAROL001", asked.channel, asked.ts, extension=n)))
    assert svc.store.get(rid).extension.state == "applied"


def test_a_late_extension_dm_after_the_grant_ended_says_nothing(svc):
    rid = granted(svc)
    extend(svc, rid)
    svc.slack.fail_next("dm", TimeoutError("Slack is down"))
    svc.run_all(press(svc, "bob", APPROVE_EXTENSION, rid), on_error=lambda job, exc: None)
    assert svc.store.get(rid).extension.state == "applied"
    svc.run_all(slash(svc, "alice", f"revoke {rid}").jobs)
    svc.clock.advance(minutes=2)
    svc.sweep()
    assert "access_extended" not in dm_types(svc)  # the revoke's DM is the truth now
    assert [o.key for o in svc.store.owed_for("alice") if o.key.startswith("dm:")] == []


def test_an_earlier_extensions_button_is_refused(svc):
    rid = granted(svc)
    extend(svc, rid)
    click(svc, "bob", DENY_EXTENSION, rid)
    extend(svc, rid, "30m a little longer")
    stale = Click(APPROVE_EXTENSION, rid, slack_id(svc, "carol"), APPROVALS, "1.2", extension=1)
    svc.run_all(svc.click(stale))
    assert "belongs to an earlier extension request" in ephemeral_texts(svc, "carol")[-1]
    assert svc.store.get(rid).extension.state == "pending"


SELF_APPROVING = """
[slack]
approvals_channel = "C0APPROVE1"
security_channel = "C0SECURIT1"
[bastion]
account_id = "111111111111"
[people.bob]
slack_user = "U0BOB00001"
iam_user = "bob"
[people.carol]
slack_user = "U0CAROL001"
iam_user = "carol"
[people.dave]
slack_user = "U0DAVE0001"
iam_user = "dave"
[accounts.dev]
id = "333333333333"
[accounts.dev.roles.admin]
max_duration = "2h"
max_extended_duration = "4h"
approvers = ["bob", "carol"]
self_approval = true
[accounts.sandbox]
id = "444444444444"
[accounts.sandbox.roles.admin]
max_duration = "1h"
max_extended_duration = "3h"
approvers = ["carol"]
extend_approvals = 0
"""


def test_with_no_approval_needed_the_extension_is_applied_at_once():
    svc = make_service(SELF_APPROVING)
    rid = granted(svc, "bob", "sandbox admin 1h", approvers=("carol",))
    reply = extend(svc, rid, "30m", person="bob")
    assert reply.text.startswith(f"Extending `{rid}` (`sandbox/admin`) by 30m now (no approval needed)")
    req = svc.store.get(rid)
    assert (req.extension.state, req.extended_seconds) == ("applied", 1800)
    assert expiry_in_iam(svc, rid) == iso_z(req.expires_at)
    assert [a[1] for a in actions(svc, rid)[-2:]] == ["extension_requested", "extended"]
    assert dm_types(svc, "bob")[-1] == "access_extended"


# --------------------------------------------------------------------------- races


def test_approved_but_not_applied_when_the_grant_expires_it_is_applied_not_ended(svc):
    """The worker that was to apply it died: the sweep finds the grant past its old expiry
    with an approved extension, and applies it instead of ending the grant."""
    rid = granted(svc)
    extend(svc, rid)
    svc.clock.advance(hours=1, minutes=59)
    follow = press(svc, "bob", APPROVE_EXTENSION, rid)
    svc.run_all([j for j in follow if not isinstance(j, jobs.ExtendGrant)])  # the worker dies
    svc.clock.advance(minutes=2)  # past 16:02:15

    svc.sweep()

    req = svc.store.get(rid)
    assert req.grant_status is GrantStatus.ACTIVE and req.extension.state == "applied"
    assert expiry_in_iam(svc, rid) == "2026-11-12T17:02:15Z" and svc.grants.holders(rid) == ["alice"]


def test_an_extension_that_cannot_be_applied_in_time_fails_and_the_grant_ends(svc):
    rid = granted(svc)
    extend(svc, rid)
    svc.clock.advance(hours=1, minutes=59)
    follow = press(svc, "bob", APPROVE_EXTENSION, rid)
    svc.run_all([j for j in follow if not isinstance(j, jobs.ExtendGrant)])
    svc.grants.fail_next("extend", RuntimeError("Throttling"), times=50)
    for _ in range(13):  # every minute for 13 minutes: IAM keeps failing
        svc.clock.advance(minutes=1)
        svc.sweep(on_error=lambda job, exc: None)

    req = svc.store.get(rid)
    assert req.grant_status is GrantStatus.EXPIRED and svc.grants.policy(rid) is None
    assert (req.extension.state, req.extension.note) == (
        "lapsed", "it was approved, but the grant ended before it could be applied")
    (dm,) = [m for m in svc.slack.dms("U0ALICE001") if m.event_type == "access_expired"]
    assert "(+1h) lapsed with it: it was approved, but the grant ended before it could be applied" in dm.text
    assert "extend" not in slash(svc, "alice", "list").text  # owed IAM work is not a message
    svc.clock.advance(minutes=15)
    svc.sweep()  # the owed job runs once more, finds nothing to apply, and is settled
    assert [o.key for o in svc.store.owed_for("alice")] == []


def test_a_revoke_before_the_extension_is_applied_wins(svc):
    rid = granted(svc)
    extend(svc, rid)
    follow = press(svc, "bob", APPROVE_EXTENSION, rid)
    svc.run_all(slash(svc, "alice", f"revoke {rid}").jobs)  # lands before the extension's job
    svc.run_all(follow)

    req = svc.store.get(rid)
    assert req.grant_status is GrantStatus.REVOKED and req.extension.state == "lapsed"
    assert svc.grants.policy(rid) is None


def approved_not_applied(svc, minutes_before_expiry: float = 1) -> str:
    """alice's grant with bob's approval of a 1h extension recorded, its ExtendGrant not run."""
    rid = granted(svc)
    extend(svc, rid)
    svc.clock.set(svc.store.get(rid).expires_at - timedelta(minutes=minutes_before_expiry))
    follow = press(svc, "bob", APPROVE_EXTENSION, rid)
    svc.run_all([j for j in follow if not isinstance(j, jobs.ExtendGrant)])
    assert svc.store.get(rid).extension.state == "approved"
    return rid


def test_an_expiry_waits_while_the_extension_holds_the_grant(svc):
    """The sweep's expiry meets an extension being applied (it holds the grant's lease): the
    expiry removes nothing; the extension lands; the grant lives on, once, in IAM."""
    rid = approved_not_applied(svc)
    svc.clock.advance(minutes=1, seconds=5)  # past the old expiry
    svc.store.take_lease(f"LEASE#GRANT#{rid}", "the-extension-job", svc.clock(), timedelta(minutes=1))

    assert end_grant(svc, jobs.EndGrant(rid)) == []
    assert svc.grants.holders(rid) == ["alice"] and state(svc, rid) == "APPROVED/ACTIVE"

    svc.store.release_lease(f"LEASE#GRANT#{rid}", "the-extension-job")
    svc.sweep()  # the owed ExtendGrant (and the expiry's redirect to it)
    req = svc.store.get(rid)
    assert req.grant_status is GrantStatus.ACTIVE and req.extension.state == "applied"
    assert expiry_in_iam(svc, rid) == iso_z(req.expires_at) == "2026-11-12T17:02:15Z"


def test_an_extension_that_lost_its_lease_after_the_switch_does_not_record_it(svc):
    """The slow answer: the extension's IAM switch took longer than its lease, and another
    job took the grant meanwhile. It records nothing (that job may be removing the policy);
    its retry, once the grant is free, finds IAM switched and records the extension."""
    rid = approved_not_applied(svc, minutes_before_expiry=30)

    def slow_switch():
        svc.clock.advance(minutes=2)  # the lease ran out ...
        svc.store.take_lease(f"LEASE#GRANT#{rid}", "another-job", svc.clock(), timedelta(seconds=30))

    svc.grants.before_next("extend", slow_switch)
    with pytest.raises(Exception, match="lost the lease"):
        svc.run_all([jobs.ExtendGrant(rid, 1)])
    assert svc.store.get(rid).extension.state == "approved"  # not recorded
    assert "extend:1" in [o.key for o in svc.store.owed_for("alice")]  # still owed

    svc.clock.advance(minutes=1)  # the other job's lease ran out too
    svc.sweep()
    req = svc.store.get(rid)
    assert req.extension.state == "applied" and expiry_in_iam(svc, rid) == iso_z(req.expires_at)
    assert [a[1] for a in actions(svc, rid)].count("extended") == 1


def test_a_revoke_landing_between_the_switch_and_its_record_wins(svc):
    rid = approved_not_applied(svc, minutes_before_expiry=30)
    svc.store.before_next("transition", lambda: svc.run_all(slash(svc, "alice", f"revoke {rid}").jobs))

    svc.run_all([jobs.ExtendGrant(rid, 1)])

    req = svc.store.get(rid)
    assert req.grant_status is GrantStatus.REVOKED and req.extension.state == "lapsed"
    assert svc.grants.policy(rid) is None
    assert "extended" not in [a[1] for a in actions(svc, rid)]
    assert [o.key for o in svc.store.owed_for("alice") if o.key.startswith("extend")] == []


def test_an_extension_whose_policy_is_gone_fails_and_says_so(svc):
    """IAM no longer holds the grant when the extension is applied (an expiry raced the
    approval): it fails, the requester is told, and the grant ends as it would have."""
    rid = approved_not_applied(svc)
    svc.grants.delete(rid)

    svc.run_all([jobs.ExtendGrant(rid, 1)])

    req = svc.store.get(rid)
    assert req.extension.state == "failed" and "IAM holds no policy" in req.extension.note
    (dm,) = [m for m in svc.slack.dms("U0ALICE001") if m.event_type == "extension_failed"]
    assert dm.payload == {"request_id": rid, "reason": req.extension.note, "extension": 1}
    assert "could not be applied: IAM holds no policy" in dm.text and "keeps its expiry" in dm.text
    assert ":x: Extension +1h could not be applied" in card(svc, rid).all_text()
    svc.clock.set(req.expires_at + timedelta(seconds=30))
    svc.sweep()
    assert state(svc, rid) == "APPROVED/EXPIRED"


def test_the_extension_job_refuses_what_the_audit_trail_does_not_show(svc):
    """Defence in depth: an 'approved' extension written into the table by anything but an
    approver's click (no extension_approved event) never reaches IAM - whether the writer
    kept the record's version (the audit trail's events are checked) or bumped it (the
    record is not where its audit trail left it)."""
    rid = granted(svc)
    extend(svc, rid)
    req = svc.store.get(rid)
    forged = dataclasses.replace(req, extension=dataclasses.replace(
        req.extension, state=Extension.APPROVED, decided_by="bob", decided_at=svc.clock(),
        approvals=(req.approvals[0],)))
    svc.store._requests[rid] = forged.to_json()  # written behind Drawbridge's back

    svc.run_all([jobs.ExtendGrant(rid, 1)])

    after = svc.store.get(rid)
    assert after.extension.state == "failed" and "0 of 1 extension approvals count" in after.extension.note
    assert iso_z(after.expires_at) == OLD_END and expiry_in_iam(svc, rid) == OLD_END

    extend(svc, rid, "30m again")
    req = svc.store.get(rid)
    bumped = dataclasses.replace(req, version=req.version + 1, extension=dataclasses.replace(
        req.extension, state=Extension.APPROVED, decided_by="bob", decided_at=svc.clock(),
        approvals=(req.approvals[0],)))
    svc.store._requests[rid] = bumped.to_json()
    svc.run_all([jobs.ExtendGrant(rid, 2)])
    assert "not where its audit trail left it" in svc.store.get(rid).extension.note
    assert expiry_in_iam(svc, rid) == OLD_END


def test_a_call_after_the_old_expiry_is_covered_by_the_extended_grant(svc):
    """The alert path's re-check (decide_grant) accepts the extended expiry: a production
    call between the old and the new expiry names the grant; one after the new does not."""
    from chalicelib.usecases.alert import handle
    from tests.fixtures import load_cloudtrail

    rid = granted(svc)
    extend(svc, rid)
    click(svc, "bob", APPROVE_EXTENSION, rid)

    def call(at: str, n: int) -> dict:
        e = load_cloudtrail("assume_role_bastion_copy")
        e["detail"]["eventTime"] = e["time"] = at
        e["detail"]["eventID"] = f"e7e70000-0000-4000-8000-0000000000e{n}"
        e["detail"]["sharedEventID"] = f"5a5ed000-0000-4000-8000-0000000000e{n}"
        return e

    svc.clock.set(svc.store.get(rid).expires_at - timedelta(minutes=30))
    assert handle(svc, call("2026-11-12T16:30:00Z", 1)).kind == "covered"  # after 16:02:15, before 17:02:15
    svc.clock.set(svc.store.get(rid).expires_at + timedelta(minutes=5))
    assert handle(svc, call("2026-11-12T17:05:00Z", 2)).kind == "uncovered"


def test_a_record_edited_to_claim_an_extension_covers_nothing_past_its_real_expiry(svc):
    """The alert path: a grant whose record says it was extended (no ``extended`` event in
    the audit trail) does not make a call after its real expiry look covered."""
    from chalicelib.usecases.alert import handle
    from tests.fixtures import load_cloudtrail

    rid = granted(svc)
    req = svc.store.get(rid)
    forged = dataclasses.replace(req, version=req.version + 1, extended_seconds=3600,
                                 expires_at=req.expires_at + timedelta(hours=1))
    svc.store._requests[rid] = forged.to_json()  # written behind Drawbridge's back
    e = load_cloudtrail("assume_role_bastion_copy")
    e["detail"]["eventTime"] = e["time"] = "2026-11-12T16:30:00Z"
    svc.clock.set(req.expires_at + timedelta(minutes=30))
    assert handle(svc, e).kind == "uncovered"


def test_a_record_edited_to_lengthen_an_approved_extension_moves_nothing(svc):
    """bob approved +1h; before the job runs the record is edited to +6h, and separately to
    a later expiry: the job refuses both, and IAM keeps the real expiry."""
    rid = granted(svc)
    extend(svc, rid)
    follow = press(svc, "bob", APPROVE_EXTENSION, rid)
    svc.run_all([j for j in follow if not isinstance(j, jobs.ExtendGrant)])
    req = svc.store.get(rid)
    longer = dataclasses.replace(req, extension=dataclasses.replace(req.extension, seconds=6 * 3600))
    svc.store._requests[rid] = longer.to_json()

    svc.run_all([jobs.ExtendGrant(rid, 1)])

    after = svc.store.get(rid)
    assert after.extension.state == "failed" and "not the one the requester asked for" in after.extension.note
    assert expiry_in_iam(svc, rid) == OLD_END


def test_an_expiry_edited_in_the_record_is_not_where_the_switch_starts(svc):
    rid = granted(svc)
    extend(svc, rid)
    follow = press(svc, "bob", APPROVE_EXTENSION, rid)
    svc.run_all([j for j in follow if not isinstance(j, jobs.ExtendGrant)])
    req = svc.store.get(rid)
    later = dataclasses.replace(req, expires_at=req.expires_at + timedelta(hours=2))
    svc.store._requests[rid] = later.to_json()

    svc.run_all([jobs.ExtendGrant(rid, 1)])

    after = svc.store.get(rid)
    assert after.extension.state == "failed" and "not at 2026-11-12T18:02:15Z" in after.extension.note
    assert expiry_in_iam(svc, rid) == OLD_END


def test_list_names_an_undelivered_extension_dm_in_words(svc):
    rid = granted(svc)
    extend(svc, rid)
    svc.slack.fail_next("dm", TimeoutError("Slack is down"))
    svc.run_all(press(svc, "bob", APPROVE_EXTENSION, rid), on_error=lambda job, exc: None)
    text = slash(svc, "alice", "list").text
    assert f"• `{rid}`: your DM (access extended) is not delivered yet" in text
    assert "ask:" not in text and "extend:" not in text
