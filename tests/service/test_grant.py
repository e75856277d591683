"""Jobs that change IAM (chalicelib/usecases/grant.py): make_grant, fail_grant, end_grant."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib import policy as pol
from chalicelib.domain.model import GrantStatus, RequestStatus
from chalicelib.domain.model import iso_z
from chalicelib.usecases import jobs
from chalicelib.usecases.grant import MAX_GRANT_ATTEMPTS, end_grant, make_grant
from chalicelib.usecases.notify import granted_payload
from tests.fakes import FakeGrants, SAMPLE_CATALOG, make_service
from tests.service.helpers import (PROD_ADMIN, SECURITY, actions, approved, card, dm_types, granted, security,
                                   slash, state)


def test_a_grant_is_made_recorded_and_told(svc):
    rid = approved(svc)

    follow = make_grant(svc, jobs.Grant(rid))

    req = svc.store.get(rid)
    arn = "arn:aws:iam::111111111111:policy/drawbridge/drawbridge-" + rid
    assert (req.grant_status, req.granted_at, req.policy_arn) == (GrantStatus.ACTIVE, svc.clock(), arn)
    assert req.mfa_serial == "arn:aws:iam::111111111111:mfa/alice"
    assert actions(svc, rid)[-1] == ("drawbridge", "granted", "APPROVED/GRANTING", "APPROVED/ACTIVE")
    assert svc.store.history(rid)[-1].reason == f"policy {arn}"
    policy = svc.grants.policy(rid)
    assert policy.users == ["alice"]
    assert policy.document == pol.grant_policy(PROD_ADMIN, req.expires_at, rid)
    assert policy.document["Statement"][0]["Condition"]["DateLessThan"] == {"aws:CurrentTime": "2026-11-12T16:02:15Z"}
    assert policy.tags == {"drawbridge:request-id": rid, "drawbridge:expires-at": "2026-11-12T16:02:15Z",
                           "drawbridge:requester": "alice"}
    assert policy.description == f"Drawbridge {rid}: alice -> prod/admin until 2026-11-12T16:02:15Z"

    payload = granted_payload(req)
    assert follow == [jobs.Card(rid, "access_granted", payload), jobs.Dm(rid, "access_granted", payload)]
    svc.run_all(follow)
    msg = card(svc, rid)
    assert (msg.event_type, msg.payload, msg.has_buttons) == ("access_granted", payload, False)
    assert payload["expires_at"] == "2026-11-12T16:02:15Z" and payload["approvers"] == ["bob", "carol"]
    *_, dm = svc.slack.dms("U0ALICE001")  # (after bob's "approved" DM)
    assert dm.event_type == "access_granted" and dm.payload == payload
    text = dm.all_text()
    assert "mfa_serial = arn:aws:iam::111111111111:mfa/alice" in text
    assert "role_arn = arn:aws:iam::222222222222:role/admin" in text and "2026-11-12T16:02:15Z" in text


def test_a_grant_job_run_twice_grants_once(svc):
    rid = approved(svc)
    svc.run_all([jobs.Grant(rid)])
    svc.run_all([jobs.Grant(rid)])
    assert [a[1] for a in actions(svc, rid)].count("granted") == 1
    assert len(svc.grants.policies) == 1 and dm_types(svc) == ["access_approved", "access_granted"]


def test_a_second_worker_finishing_first_is_not_repeated(svc):
    rid = approved(svc)
    svc.store.before_next("transition", lambda: svc.run_all([jobs.Grant(rid)]))

    assert make_grant(svc, jobs.Grant(rid)) == []  # lost to the other worker: nothing more to say

    assert [a[1] for a in actions(svc, rid)].count("granted") == 1
    assert svc.grants.holders(rid) == ["alice"] and dm_types(svc) == ["access_approved", "access_granted"]


def test_the_catalogs_mfa_device_wins():
    text = SAMPLE_CATALOG.read_text().replace(
        'iam_user   = "alice"', 'iam_user   = "alice"\nmfa_serial = "arn:aws:iam::111111111111:mfa/alice-yubikey"')
    svc = make_service(text)
    rid = granted(svc)
    assert svc.store.get(rid).mfa_serial == "arn:aws:iam::111111111111:mfa/alice-yubikey"
    assert "mfa_serial = arn:aws:iam::111111111111:mfa/alice-yubikey" in svc.slack.dms("U0ALICE001")[-1].all_text()


def test_the_first_enabled_device_is_named(svc):
    svc.grants.mfa_devices["alice"] = [("2026-03-01", "arn:aws:iam::111111111111:mfa/alice-phone"),
                                       ("2025-01-01", "arn:aws:iam::111111111111:mfa/alice-key")]
    rid = granted(svc)
    assert svc.store.get(rid).mfa_serial == "arn:aws:iam::111111111111:mfa/alice-key"


@pytest.mark.parametrize("how", ["no device", "lookup fails"])
def test_without_a_device_the_grant_stands_and_the_dm_says_to_enrol(svc, how):
    if how == "no device":
        svc.grants.set_mfa("alice")
    else:
        svc.grants.fail_next("mfa_serial", RuntimeError("AccessDenied"))
    rid = granted(svc)
    req = svc.store.get(rid)
    assert req.grant_status is GrantStatus.ACTIVE and req.mfa_serial is None
    text = svc.slack.dms("U0ALICE001")[-1].all_text()
    assert "mfa_serial = YOUR-MFA-DEVICE-ARN" in text and "enrol one" in text


def test_the_users_policy_limit_fails_the_grant_cleanly():
    grants = FakeGrants(max_attached=2)
    for name in ("team-readonly", "billing"):
        grants.create_policy(name, attach_to=["alice"])  # not Drawbridge's, but they count
    svc = make_service(grants=grants)
    rid = approved(svc)

    svc.run_all([jobs.Grant(rid)])

    req = svc.store.get(rid)
    why = ("IAM user alice already has 2 managed policies attached (the limit is 2); revoke a grant first")
    assert (req.status, req.grant_status, req.note, req.ended_by) == (
        RequestStatus.APPROVED, GrantStatus.FAILED, why, "drawbridge")
    assert actions(svc, rid)[-1] == ("drawbridge", "grant_failed", "APPROVED/GRANTING", "APPROVED/FAILED")
    assert svc.grants.policy(rid) is None and len(svc.grants.attached("alice")) == 2
    msg = card(svc, rid)
    assert msg.event_type == "access_revoked"
    assert msg.payload == {"request_id": rid, "revoked_by": None, "reason": why}
    assert "the grant failed" in msg.all_text()
    *_, dm = svc.slack.dms("U0ALICE001")  # (after bob's "approved" DM)
    assert dm.event_type == "access_revoked" and "You have NOT been granted access" in dm.text
    (notice,) = security(svc)
    assert (notice.channel, notice.event_type, notice.payload) == (SECURITY, "grant_failed",
                                                                   {"request_id": rid, "reason": why})
    assert notice.text.startswith(f":x: Grant {rid} (alice → `prod/admin`) failed and was not applied")
    assert svc.store.open_for("alice") == []


def test_transient_failures_are_counted_then_given_up(svc):
    rid = approved(svc)
    svc.grants.fail_next("grant", RuntimeError("Throttling: Rate exceeded"), times=MAX_GRANT_ATTEMPTS)

    for attempt in range(1, MAX_GRANT_ATTEMPTS):
        with pytest.raises(RuntimeError, match="Throttling"):
            svc.run_all([jobs.Grant(rid)])
        req = svc.store.get(rid)
        assert (req.grant_status, req.grant_attempts, req.note) == (
            GrantStatus.GRANTING, attempt, "RuntimeError: Throttling: Rate exceeded")
        assert actions(svc, rid)[-1] == ("drawbridge", "grant_attempt_failed", "APPROVED/GRANTING",
                                         "APPROVED/GRANTING")
        assert dm_types(svc) == ["access_approved"] and security(svc) == []

    with pytest.raises(RuntimeError, match="Throttling"):
        svc.run_all([jobs.Grant(rid)])
    req = svc.store.get(rid)
    assert (req.grant_status, req.grant_attempts) == (GrantStatus.FAILED, MAX_GRANT_ATTEMPTS)
    assert [a[1] for a in actions(svc, rid)][-3:] == ["grant_attempt_failed", "grant_attempt_failed", "grant_failed"]
    assert dm_types(svc) == ["access_approved", "access_revoked"]
    assert [m.event_type for m in security(svc)] == ["grant_failed"]
    assert card(svc, rid).event_type == "access_revoked"
    svc.run_all([jobs.Grant(rid)])  # a late retry does nothing
    assert svc.grants.policies == {} and state(svc, rid) == "APPROVED/FAILED"


def test_a_transient_failure_then_success(svc):
    rid = approved(svc)
    svc.grants.fail_next("grant", RuntimeError("ServiceFailure"))
    svc.run_all([jobs.Grant(rid)], on_error=lambda job, exc: None)
    assert svc.store.get(rid).grant_attempts == 1
    svc.run_all([jobs.Grant(rid)])
    req = svc.store.get(rid)
    assert (req.grant_status, req.grant_attempts) == (GrantStatus.ACTIVE, 1)


def test_a_grant_that_could_only_be_made_after_its_expiry_fails(svc):
    rid = approved(svc)
    svc.clock.set(svc.store.get(rid).expires_at)

    svc.run_all([jobs.Grant(rid)])

    req = svc.store.get(rid)
    assert req.grant_status is GrantStatus.FAILED
    assert req.note == "the grant could not be applied before it would have expired"
    assert svc.grants.policies == {}
    assert [m.event_type for m in security(svc)] == ["grant_failed"] and dm_types(svc) == ["access_approved", "access_revoked"]


def test_a_failed_grant_whose_clean_up_fails_too_still_tells_everyone():
    grants = FakeGrants(max_attached=0)
    svc = make_service(grants=grants)
    rid = approved(svc)
    grants.fail_next("revoke", RuntimeError("ServiceUnavailable"))

    svc.run_all([jobs.Grant(rid)])

    req = svc.store.get(rid)
    assert req.grant_status is GrantStatus.FAILED
    assert req.note == "IAM user alice already has 0 managed policies attached (the limit is 0); revoke a grant first"
    (notice,) = security(svc)
    assert notice.payload["reason"].endswith(
        "(removing what was made failed too: RuntimeError; the sweep removes it)")
    assert dm_types(svc) == ["access_approved", "access_revoked"]


def test_end_grant_records_revoked_after_iam_lets_go(svc):
    rid = granted(svc)
    slash(svc, "carol", f"revoke {rid}")  # REVOKING; its EndGrant not run yet
    svc.clock.advance(seconds=5)

    follow = end_grant(svc, jobs.EndGrant(rid))

    req = svc.store.get(rid)
    assert req.grant_status is GrantStatus.REVOKED and svc.grants.policy(rid) is None
    payload = {"request_id": rid, "revoked_by": "carol"}
    # the cut-off first (it brings the card up to date itself), then the DM
    assert follow == [jobs.CutSessions(rid), jobs.Dm(rid, "access_revoked", payload)]
    assert end_grant(svc, jobs.EndGrant(rid)) == []  # run again: nothing left to do


def test_end_grant_expires_a_grant_only_when_its_time_is_up(svc):
    rid = granted(svc)
    expires = svc.store.get(rid).expires_at
    svc.clock.set(expires - timedelta(seconds=1))
    assert end_grant(svc, jobs.EndGrant(rid)) == []
    assert state(svc, rid) == "APPROVED/ACTIVE" and svc.grants.holders(rid) == ["alice"]

    svc.clock.set(expires)
    follow = end_grant(svc, jobs.EndGrant(rid))

    assert state(svc, rid) == "APPROVED/EXPIRED" and svc.grants.policy(rid) is None
    assert actions(svc, rid)[-1] == ("drawbridge", "expired", "APPROVED/ACTIVE", "APPROVED/EXPIRED")
    assert follow == [jobs.CutSessions(rid), jobs.Dm(rid, "access_expired", {"request_id": rid})]


def test_a_grant_copied_to_strangers_is_taken_back_from_them_at_the_end(svc):
    rid = granted(svc)
    svc.grants.attach(rid, "dave")  # by hand, in the IAM console
    svc.grants.attach(rid, "bob")

    svc.run_all(slash(svc, "alice", f"revoke {rid}").jobs)

    assert state(svc, rid) == "APPROVED/REVOKED"
    assert svc.grants.policy(rid) is None
    assert svc.grants.attached("dave") == [] and svc.grants.attached("bob") == []
    (notice,) = security(svc)
    assert notice.event_type == "grant_drift"
    assert notice.payload == {"request_id": rid, "users": ["dave", "bob"], "state": "record REVOKED",
                              "action": "taken_back_at_end"}
    assert notice.text == (f":warning: Drift: grant {rid} (`prod/admin`) was also attached to dave, bob; "
                           "removed from them as it ended.")


def test_an_iam_failure_while_ending_leaves_the_record_for_the_retry(svc):
    rid = granted(svc)
    reply = slash(svc, "alice", f"revoke {rid}")
    svc.grants.fail_next("revoke", RuntimeError("ServiceUnavailable"))
    with pytest.raises(RuntimeError):
        svc.run_all(reply.jobs)
    assert state(svc, rid) == "APPROVED/REVOKING" and svc.grants.holders(rid) == ["alice"]
    svc.run_all(reply.jobs)
    assert state(svc, rid) == "APPROVED/REVOKED" and svc.grants.policy(rid) is None
    assert iso_z(svc.store.get(rid).ended_at) == "2026-11-12T14:02:15Z"
