"""Issue 15 through the facade: when a grant ends, the person's live role sessions are cut
off at the target role (chalicelib/usecases/cut.py), and the card, the DM and #security
say so.

The member account is the fake of the ``SessionCuts`` port (tests/fakes.py): the role's
cut-off policy as IAM keeps it (five versions at most, the last one the default). What
the documents deny is judged with the small IAM evaluator of tests/unit/test_cutoff.py,
because neither moto nor the fake evaluates ``aws:TokenIssueTime`` (the adapter's own
round trip through moto's IAM is tests/adapters/test_session_cuts.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib import cutoff
from chalicelib.domain.errors import CutOffsUnavailable
from chalicelib.domain.model import iso_z
from chalicelib.domain.timing import IAM_SETTLE, MAX_SESSION
from chalicelib.usecases import jobs
from chalicelib.usecases.cut import LEASE, lease_key
from tests.fakes import FakeSessionCuts, make_service
from tests.service.helpers import (PROD_ADMIN, card, dm_types, granted, security, slack_id, slash, state)
from tests.unit.test_cutoff import denied


@pytest.fixture
def svc():
    return make_service()


def role_id() -> str:
    return FakeSessionCuts.unique_id(PROD_ADMIN)


def userid(person: str) -> str:
    return f"{role_id()}:{person}"


def policy(svc) -> dict:
    return svc.cuts.document(PROD_ADMIN)


def sweep(svc):
    """As the Lambda handler runs it: a failing job is logged (here: kept), the rest go on."""
    svc.errors = getattr(svc, "errors", [])
    return svc.sweep(on_error=lambda job, exc: svc.errors.append(exc))


def expire(svc, rid: str) -> None:
    svc.clock.set(svc.store.get(rid).expires_at + timedelta(seconds=20))
    sweep(svc)


def revoke(svc, rid: str, by: str = "alice") -> None:
    svc.run_all(slash(svc, by, f"revoke {rid}").jobs)


def cuts_told(svc) -> list:
    return [m for m in security(svc, cuts=True) if m.event_type.startswith("access_cut")]


def dm_text(svc, person: str = "alice") -> str:
    return svc.slack.dms(slack_id(svc, person))[-1].all_text()


# -- expiry and revoke: the statement written, and what it denies -------------------------


def test_expiry_denies_the_persons_sessions_issued_before_the_end(svc):
    rid = granted(svc)  # expires 16:02:15
    expires = svc.store.get(rid).expires_at
    expire(svc, rid)

    assert policy(svc) == {"Version": "2012-10-17", "Statement": [{
        "Sid": "Cut" + rid.replace("-", ""), "Effect": "Deny", "Action": "*", "Resource": "*",
        "Condition": {"StringEquals": {"aws:userid": userid("alice")},
                      "DateLessThan": {"aws:TokenIssueTime": "2026-11-12T16:02:16Z"}}}]}
    # a session issued a minute before the expiry is cut; a later grant's session is not
    assert denied(policy(svc), userid("alice"), expires - timedelta(minutes=1))
    assert not denied(policy(svc), userid("alice"), expires + timedelta(seconds=2))
    assert not denied(policy(svc), userid("bob"), expires - timedelta(minutes=1))
    req = svc.store.get(rid)
    assert (req.grant_status.value, req.cut_before, req.sessions_cut_at) == ("EXPIRED", expires, svc.clock())


def test_revoke_cuts_from_the_detach_plus_propagation(svc):
    rid = granted(svc)
    svc.clock.advance(minutes=10)
    detached = svc.clock()  # the fake clock stands still while the job runs
    revoke(svc, rid)

    (st,) = policy(svc)["Statement"]
    assert st["Condition"]["DateLessThan"]["aws:TokenIssueTime"] == iso_z(detached + IAM_SETTLE + timedelta(seconds=1))
    assert denied(policy(svc), userid("alice"), detached - timedelta(minutes=5))
    assert denied(policy(svc), userid("alice"), detached + timedelta(seconds=30))  # while IAM let go
    assert state(svc, rid) == "APPROVED/REVOKED"


def test_card_dm_and_security_say_when_live_sessions_ended(svc):
    rid = granted(svc)
    expire(svc, rid)
    ended = svc.store.get(rid).sessions_cut_at

    assert f"live sessions ended at {ended:%H:%M} UTC" in card(svc, rid).all_text()
    assert f"live sessions ended at {ended:%H:%M} UTC" in dm_text(svc)
    assert dm_types(svc) == ["access_approved", "access_granted", "access_expired"]
    (told,) = cuts_told(svc)  # a production grant: #security sees its sessions end
    assert told.event_type == "access_cut"
    assert told.payload["request_id"] == rid and told.payload["cut_at"] == "2026-11-12T16:02:16Z"
    assert told.payload["iam_users"] == ["alice"] and told.payload["role_wide"] is False


def test_a_non_production_grant_is_cut_without_a_security_notice(svc):
    rid = granted(svc, text="dev admin 1h looking", approvers=("bob",))
    expire(svc, rid)
    req = svc.store.get(rid)
    assert req.sessions_cut_at is not None
    assert cutoff.enforced(svc.cuts.document(req.role_arn),
                           cutoff.CutOff(FakeSessionCuts.unique_id(req.role_arn), "alice", req.cut_before))
    assert cuts_told(svc) == []


def test_the_card_is_updated_once_for_the_end_and_its_cut(svc):
    rid = granted(svc)
    updates = len(card(svc, rid).history)
    expire(svc, rid)
    assert len(card(svc, rid).history) == updates + 1


# -- other people, clean-up, budget ---------------------------------------------------------


def test_other_peoples_cut_offs_are_kept(svc):
    first = granted(svc, person="dave")
    second = granted(svc)
    svc.clock.advance(minutes=1)
    revoke(svc, first, by="dave")
    dave_doc = policy(svc)
    svc.clock.advance(minutes=3)
    revoke(svc, second)

    sids = [s["Sid"] for s in policy(svc)["Statement"]]
    assert sids == ["Cut" + first.replace("-", ""), "Cut" + second.replace("-", "")]
    assert policy(svc)["Statement"][0] == dave_doc["Statement"][0]


def test_cut_offs_are_removed_once_every_session_they_target_has_expired(svc):
    first = granted(svc, person="dave")
    revoke(svc, first, by="dave")
    svc.clock.advance(timedelta(hours=1, minutes=10))
    second = granted(svc)
    expire(svc, second)

    assert [s["Sid"] for s in policy(svc)["Statement"]] == ["Cut" + second.replace("-", "")]


def test_over_budget_falls_back_to_a_role_wide_cut_off_and_says_so(svc):
    rid = granted(svc)
    # 28 cut-offs of the last half hour (the most one policy holds, chalicelib/cutoff.py)
    # fill the policy by the time alice's grant expires
    end = svc.store.get(rid).expires_at
    full = [cutoff.CutOff(role_id(), f"user{i:02d}", end - timedelta(minutes=30, seconds=i), f"req-20261112-{i:06x}")
            for i in range(28)]
    svc.cuts.write(PROD_ADMIN, cutoff.merge(None, full, end).document)
    expire(svc, rid)

    doc = policy(svc)
    assert doc["Statement"][0]["Sid"] == cutoff.ROLE_WIDE_SID
    assert cutoff.iam_size(doc) <= 6144
    assert all(denied(doc, c.userid, c.end - timedelta(minutes=1)) for c in full)  # nobody's cut-off was lost
    assert denied(doc, userid("alice"), svc.store.get(rid).expires_at - timedelta(minutes=1))
    (told,) = cuts_told(svc)
    assert told.payload["role_wide"] is True and "role-wide" in told.text


def test_statements_drawbridge_did_not_write_are_dropped_and_reported(svc):
    svc.cuts.write(PROD_ADMIN, {"Version": "2012-10-17", "Statement": [
        {"Sid": "HandMade", "Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    rid = granted(svc)
    expire(svc, rid)
    assert [s["Sid"] for s in policy(svc)["Statement"]] == ["Cut" + rid.replace("-", "")]
    (told,) = cuts_told(svc)
    assert "did not write were dropped" in told.text


# -- failure, retry, and never cutting a later grant ---------------------------------------


def test_a_failed_cut_is_said_and_retried_by_the_sweep(svc):
    rid = granted(svc)
    svc.cuts.fail_next("write", CutOffsUnavailable("no revoker in 222222222222"))
    expire(svc, rid)

    req = svc.store.get(rid)
    assert (req.grant_status.value, req.sessions_cut_at, req.cut_attempts) == ("EXPIRED", None, 1)
    live_until = "17:02 UTC"  # the end (16:02:16) plus MAX_SESSION
    assert f"sessions still live until {live_until}" in card(svc, rid).all_text()
    assert f"sessions still live until {live_until}" in dm_text(svc)
    (failed,) = cuts_told(svc)
    assert failed.event_type == "access_cut_failed"
    assert failed.payload == {"request_id": rid, "reason": "CutOffsUnavailable: no revoker in 222222222222",
                              "live_until": "2026-11-12T17:02:16Z"}
    assert policy(svc) == cutoff.document([])  # nothing written

    svc.clock.advance(minutes=2)  # the outbox's first retry
    report = sweep(svc)
    assert report.delivered >= 1
    req = svc.store.get(rid)
    assert req.sessions_cut_at == svc.clock()
    assert denied(policy(svc), userid("alice"), req.expires_at - timedelta(minutes=1))
    assert f"live sessions ended at {req.sessions_cut_at:%H:%M} UTC" in card(svc, rid).all_text()
    assert [m.event_type for m in cuts_told(svc)] == ["access_cut_failed", "access_cut"]
    assert cuts_told(svc)[-1].payload["late"] is True


def test_repeated_failures_tell_security_once(svc):
    rid = granted(svc)
    svc.cuts.fail_next("read", RuntimeError("throttled"), times=4)
    expire(svc, rid)
    for _ in range(3):
        svc.clock.advance(minutes=6)
        sweep(svc)
    assert svc.store.get(rid).cut_attempts == 4
    assert [m.event_type for m in cuts_told(svc)] == ["access_cut_failed"]


def test_the_cut_gives_up_once_every_session_has_expired_on_its_own(svc):
    rid = granted(svc)
    svc.cuts.fail_next("write", RuntimeError("down"), times=1000)
    expire(svc, rid)
    svc.clock.set(svc.store.get(rid).cut_before + MAX_SESSION + timedelta(minutes=1))
    for _ in range(2):
        svc.clock.advance(minutes=16)
        sweep(svc)

    req = svc.store.get(rid)
    assert req.cut_given_up_at is not None and req.sessions_cut_at is None
    assert "could not be cut off and ran until 17:02 UTC at the latest" in card(svc, rid).all_text()
    assert not [o for o in svc.store.owed if o.key == "cut"]  # no longer retried


def test_a_crashed_worker_never_cuts_a_later_valid_grant(svc):
    rid = granted(svc)
    svc.clock.set(svc.store.get(rid).expires_at)
    from chalicelib.usecases.grant import end_grant

    end_grant(svc, jobs.EndGrant(rid))  # recorded EXPIRED, then the worker died: the cut is owed
    assert [o.key for o in svc.store.owed if o.request_id == rid and o.key == "cut"] == ["cut"]
    svc.clock.advance(minutes=5)
    later = granted(svc)  # the same person, the same role, a new grant
    issued = svc.clock() + timedelta(seconds=10)  # a session under the new grant

    svc.clock.advance(minutes=2)
    sweep(svc)  # the owed cut runs now, late
    assert svc.store.get(rid).sessions_cut_at is not None
    assert denied(policy(svc), userid("alice"), svc.store.get(rid).expires_at - timedelta(minutes=1))
    assert not denied(policy(svc), userid("alice"), issued)
    assert state(svc, later) == "APPROVED/ACTIVE"


def test_running_the_cut_again_changes_nothing(svc):
    rid = granted(svc)
    expire(svc, rid)
    writes, version = svc.cuts.writes, svc.store.get(rid).version
    svc.run_all([jobs.CutSessions(rid)])
    assert (svc.cuts.writes, svc.store.get(rid).version) == (writes, version)


def test_another_writer_holding_the_role_leaves_the_cut_to_a_retry(svc):
    rid = granted(svc)
    svc.store.take_lease(lease_key(PROD_ADMIN), "someone-else", svc.store.get(rid).expires_at, LEASE)
    expire(svc, rid)
    # waiting for another writer is not a failure: nothing reported, the outbox retries it
    assert svc.store.get(rid).sessions_cut_at is None and svc.store.get(rid).cut_attempts == 0
    assert policy(svc) == cutoff.document([]) and cuts_told(svc) == []
    assert "cutting off live sessions…" in card(svc, rid).all_text()

    svc.clock.advance(LEASE + timedelta(minutes=1))  # the other holder's lease ran out
    sweep(svc)
    assert svc.store.get(rid).sessions_cut_at is not None


def test_copies_taken_back_at_the_end_have_their_sessions_cut_too(svc):
    rid = granted(svc)
    svc.grants.attach(rid, "dave")  # copied to dave by hand
    expire(svc, rid)
    doc = policy(svc)
    end = svc.store.get(rid).expires_at
    assert denied(doc, userid("alice"), end - timedelta(minutes=1))
    assert denied(doc, userid("dave"), end - timedelta(minutes=1))


def test_a_copy_of_a_live_grant_taken_back_by_the_sweep_has_its_sessions_cut(svc):
    rid = granted(svc)
    svc.clock.advance(minutes=10)
    svc.grants.attach(rid, "dave")
    sweep(svc)

    doc = policy(svc)
    assert denied(doc, userid("dave"), svc.clock() - timedelta(minutes=1))
    assert not denied(doc, userid("alice"), svc.clock() - timedelta(minutes=1))  # her grant stands
    assert state(svc, rid) == "APPROVED/ACTIVE"
    told = cuts_told(svc)
    assert [m.payload["iam_users"] for m in told] == [["dave"]]


def test_with_cut_offs_off_nothing_is_written_and_the_card_says_sessions_run_out():
    svc = make_service(cuts=None)
    rid = granted(svc)
    expire(svc, rid)
    assert svc.store.get(rid).cut_before is None
    assert "sessions already started end by 17:02 UTC at the latest" in card(svc, rid).all_text()
    assert not [o for o in svc.store.owed if o.key.startswith("cut")]


def test_list_shows_what_became_of_live_sessions_for_an_hour(svc):
    rid = granted(svc)
    svc.cuts.fail_next("write", RuntimeError("throttled"))
    expire(svc, rid)
    text = slash(svc, "alice", "list").text
    assert f"`{rid}` `prod/admin` — expired at 16:02 UTC; :warning: sessions still live until 17:02 UTC" in text

    svc.clock.advance(minutes=2)
    sweep(svc)
    cut_at = svc.store.get(rid).sessions_cut_at
    assert f"`{rid}` `prod/admin` — expired at 16:02 UTC; live sessions ended at {cut_at:%H:%M} UTC" \
        in slash(svc, "alice", "list").text

    svc.clock.set(svc.store.get(rid).cut_before + MAX_SESSION + timedelta(seconds=1))
    assert rid not in slash(svc, "alice", "list").text  # every session it could have started is over


def test_a_stale_read_of_the_policy_never_drops_the_last_cut_off_written(svc):
    # IAM's reads are eventually consistent: right after dave's cut-off was written, a read
    # may still show the version before it. Alice's cut, merged from that read alone,
    # would drop dave's; the lease keeps the last document written, so it is merged in too.
    first = granted(svc, person="dave")
    second = granted(svc)
    svc.clock.advance(minutes=10)
    revoke(svc, first, by="dave")
    svc.cuts.stale_reads = 3  # each write is followed by three reads of the version before it
    svc.cuts._stale_left[PROD_ADMIN] = 3
    svc.clock.advance(minutes=1)
    revoke(svc, second)

    doc = policy(svc)
    assert denied(doc, userid("dave"), svc.store.get(first).granted_at + timedelta(minutes=1))
    assert denied(doc, userid("alice"), svc.store.get(second).granted_at + timedelta(minutes=1))
    # and the read-back waited for IAM to show the new version instead of failing
    assert svc.store.get(second).sessions_cut_at is not None and svc.store.get(second).cut_attempts == 0
    assert cuts_told(svc)[-1].event_type == "access_cut"


def test_a_grant_whose_policy_vanished_has_its_sessions_cut_and_the_dm_says_so(svc):
    rid = granted(svc)
    svc.clock.advance(minutes=30)
    svc.grants.delete(rid)  # removed outside Drawbridge while ACTIVE
    sweep(svc)

    req = svc.store.get(rid)
    assert req.grant_status.value == "FAILED" and req.cut_before == svc.clock() + IAM_SETTLE
    assert denied(policy(svc), userid("alice"), svc.clock() - timedelta(minutes=1))
    text = dm_text(svc)
    assert "NOT been granted" not in text  # she had access: it ended
    assert f"ended at {svc.clock():%H:%M} UTC" in text and "live sessions ended at" in text


def test_a_drift_cut_that_fails_is_told_once_and_retried(svc):
    rid = granted(svc)
    svc.clock.advance(minutes=10)
    svc.grants.attach(rid, "dave")
    svc.cuts.fail_next("write", RuntimeError("throttled"), times=2)
    sweep(svc)
    assert svc.grants.holders(rid) == ["alice"]  # taken back from dave at once
    (failed,) = cuts_told(svc)
    assert failed.event_type == "access_cut_failed" and failed.payload["iam_users"] == ["dave"]
    assert "taken back from `dave`" in failed.text

    for _ in range(3):  # the outbox retries it: the second try fails too, the third succeeds
        svc.clock.advance(minutes=3)
        sweep(svc)
    assert denied(policy(svc), userid("dave"), svc.clock() - timedelta(minutes=10))
    assert [m.event_type for m in cuts_told(svc)] == ["access_cut_failed", "access_cut"]


def test_a_writer_that_outlived_its_lease_puts_the_other_writers_cut_off_back(svc):
    # Alice's cut stalls inside its IAM write past its lease; dave's cut takes the lease,
    # writes and records success; then alice's write lands - a version without dave's deny.
    # Alice's job sees the lease changed hands, retries, and the retry merges dave's back.
    first = granted(svc, person="dave")
    second = granted(svc)
    svc.clock.advance(minutes=10)
    from chalicelib.usecases.grant import end_grant

    for rid, who in ((first, "dave"), (second, "alice")):
        slash(svc, who, f"revoke {rid}")  # REVOKING; the worker's job is run by hand below
        end_grant(svc, jobs.EndGrant(rid))  # REVOKED: the cut is owed, not run yet

    def dave_meanwhile():
        svc.clock.advance(LEASE + timedelta(seconds=1))
        svc.run_all([jobs.CutSessions(first)])
    svc.cuts.before_next("write", dave_meanwhile)
    with pytest.raises(Exception, match="lost the lease"):
        svc.run_all([jobs.CutSessions(second)])
    assert svc.store.get(first).sessions_cut_at is not None  # dave's recorded...
    assert not denied(policy(svc), userid("dave"), svc.store.get(first).granted_at + timedelta(minutes=1))  # ...lost
    assert svc.store.get(second).sessions_cut_at is None and svc.store.get(second).cut_attempts == 0
    assert [m.event_type for m in cuts_told(svc)] == ["access_cut"]  # dave's; a lost lease is no failure

    svc.clock.advance(minutes=2)
    sweep(svc)  # alice's cut retried from the outbox
    doc = policy(svc)
    assert denied(doc, userid("dave"), svc.store.get(first).granted_at + timedelta(minutes=1))
    assert denied(doc, userid("alice"), svc.store.get(second).granted_at + timedelta(minutes=1))
    assert svc.store.get(second).sessions_cut_at is not None


def test_a_revoked_grants_policy_put_back_by_hand_has_its_holders_sessions_cut(svc):
    rid = granted(svc)
    svc.clock.advance(minutes=10)
    revoke(svc, rid)
    svc.clock.advance(minutes=10)
    svc.grants.create_policy(f"drawbridge-{rid}", path="/drawbridge/")  # restored while its time still runs
    svc.grants.attach(rid, "dave")
    svc.clock.advance(minutes=5)
    sweep(svc)

    assert svc.grants.policy(rid) is None  # removed, and reported as drift
    assert denied(policy(svc), userid("dave"), svc.clock() - timedelta(minutes=3))
    assert [m.payload["iam_users"] for m in cuts_told(svc) if m.payload.get("late")][-1] == ["dave"]


def test_a_cut_nobody_ran_within_the_hour_is_told_when_given_up(svc):
    rid = granted(svc)
    svc.clock.set(svc.store.get(rid).expires_at)
    from chalicelib.usecases.grant import end_grant

    end_grant(svc, jobs.EndGrant(rid))  # the worker died right after: the cut is owed
    svc.clock.advance(timedelta(hours=1, minutes=2))  # and no sweep ran for an hour
    sweep(svc)
    req = svc.store.get(rid)
    assert req.cut_given_up_at is not None and req.sessions_cut_at is None
    (told,) = cuts_told(svc)
    assert told.event_type == "access_cut_failed" and "not written before" in told.payload["reason"]


def test_a_new_grant_right_after_a_revoke_is_told_when_its_sessions_work(svc):
    # A revoke's cut-off reaches IAM_SETTLE past the detach (IAM may still honour the old
    # grant that long): a new grant made within it works only for sessions issued after it.
    first = granted(svc)
    svc.clock.advance(minutes=10)
    revoke(svc, first)
    bound = svc.store.get(first).cut_before.replace(microsecond=0) + timedelta(seconds=1)
    svc.clock.advance(minutes=1)
    second = granted(svc)  # approved and granted about 2 minutes after the revoke

    assert svc.store.get(second).granted_at < bound
    text = dm_text(svc)
    assert f"denies your sessions issued before *{bound:%H:%M:%S} UTC*" in text
    assert denied(policy(svc), userid("alice"), svc.store.get(second).granted_at + timedelta(seconds=5))
    assert not denied(policy(svc), userid("alice"), bound)  # from then on her new sessions work

    third = granted(svc, person="dave")  # nobody else is told anything of the kind
    assert "denies your sessions" not in dm_text(svc, "dave") and third


def test_a_grant_long_after_a_revoke_says_nothing_of_it(svc):
    first = granted(svc)
    revoke(svc, first)
    svc.clock.advance(minutes=20)
    granted(svc)
    assert "denies your sessions" not in dm_text(svc)
