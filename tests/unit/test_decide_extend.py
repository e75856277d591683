"""The extension rules as pure decisions (chalicelib/domain/decide.py): who may ask, how much,
who approves, and what the job that changes IAM re-derives before it does (defence in depth).

The role is the sample catalog's prod/admin (max 4h, extended at most 8h, one extension
approval from bob or carol), varied with dataclasses.replace.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.catalog import load_catalog
from chalicelib.domain.decide import (ExtensionTrail, Outcome, decide_extend, decide_extension_approval,
                                      decide_extension_deny, decide_extension_grant)
from chalicelib.domain.model import Approval, Extension, GrantStatus, Principal, Request, RequestStatus
from tests.fakes import SAMPLE_CATALOG

CATALOG = load_catalog(SAMPLE_CATALOG)
ROLE = CATALOG.find_role("prod", "admin")
ALICE = CATALOG.people["alice"]
T0 = datetime(2026, 11, 12, 14, 0, tzinfo=timezone.utc)
DECIDED = T0 + timedelta(minutes=2)
NOW = T0 + timedelta(hours=1)


def active(**fields) -> Request:
    """alice's ACTIVE 2h prod/admin grant, approved by bob and carol at 14:02."""
    base = Request(
        request_id="req-20261112-0a11ce", requester="alice", requester_slack="U0ALICE001",
        principal=Principal.iam_user("alice"), account="prod", account_id="222222222222", role="admin",
        role_arn=ROLE.role_arn, production=True, duration_seconds=7200, approvals_required=2, created_at=T0,
        pending_until=T0 + timedelta(hours=1), reason="incident", status=RequestStatus.APPROVED,
        grant_status=GrantStatus.ACTIVE, approvals=(Approval("bob", T0), Approval("carol", DECIDED)),
        decided_by="carol", decided_at=DECIDED, expires_at=DECIDED + timedelta(hours=2), granted_at=DECIDED)
    return dataclasses.replace(base, **fields)


def asked(seconds: int = 3600, required: int = 1, **ext) -> Request:
    return active(extension=Extension(n=1, seconds=seconds, requested_at=NOW, required=required, **ext))


def approved_by(*people: str, seconds: int = 3600) -> Request:
    """Approved by ``people``; by nobody: asked where none was needed (applied at once)."""
    return asked(seconds, required=1 if people else 0, state=Extension.APPROVED,
                 approvals=tuple(Approval(p, NOW) for p in people), decided_by=people[-1] if people else "alice",
                 decided_at=NOW)


@pytest.mark.parametrize(("person", "duration", "reason", "role", "allowed", "says"), [
    ("alice", "1h", "still on it", ROLE, True, ""),
    ("alice", "6h", "still on it", ROLE, True, ""),  # 2h + 6h = the 8h cap exactly
    ("alice", "6h1m", "still on it", ROLE, False, "can be extended by at most 6h"),
    ("bob", "1h", "still on it", ROLE, False, "only the requester (@alice)"),
    ("alice", "1h", "", ROLE, False, "production extensions need a reason"),
    ("alice", "3h", "x", dataclasses.replace(ROLE, max_extended_duration_seconds=ROLE.max_duration_seconds), False,
     "can be extended by at most 2h"),
    ("alice", "1h", "x", dataclasses.replace(ROLE, requesters=("dave",)), False, "may no longer request"),
    ("alice", "1h", "x", dataclasses.replace(ROLE, extend_approvals=3), False, "needs 3 approvals"),
    ("alice", "1h", "x", None, False, "no longer in the catalog"),
])
def test_who_may_ask_for_how_much(person, duration, reason, role, allowed, says):
    decision = decide_extend(active(), role, person, duration=duration, reason=reason, now=NOW)
    assert decision.allowed is allowed and says in decision.reason


def test_only_an_active_grant_before_its_expiry_and_one_extension_at_a_time():
    late = DECIDED + timedelta(hours=2)
    assert "expired at 16:02 UTC" in decide_extend(active(), ROLE, "alice", duration="1h", reason="x", now=late).reason
    revoking = active(grant_status=GrantStatus.REVOKING, ended_by="bob", ended_at=NOW)
    assert "only an active grant" in decide_extend(revoking, ROLE, "alice", duration="1h", reason="x", now=NOW).reason
    assert "already has an extension of 1h" in decide_extend(asked(), ROLE, "alice", duration="1h", reason="x",
                                                             now=NOW).reason


@pytest.mark.parametrize(("clicker", "role", "outcome", "says"), [
    ("bob", ROLE, Outcome.APPROVED, "final approval of the extension (1 of 1)"),
    ("dave", ROLE, Outcome.REFUSED, "not an approver"),
    ("alice", dataclasses.replace(ROLE, approvers=("alice", "bob")), Outcome.REFUSED, "your own extension"),
    ("bob", dataclasses.replace(ROLE, extend_approvals=2), Outcome.COUNTED, "extension approval 1 of 2"),
    ("bob", dataclasses.replace(ROLE, max_extended_duration_seconds=2 * 3600 + 60), Outcome.REFUSED,
     "the catalog changed"),
    (None, ROLE, Outcome.REFUSED, "not in the Drawbridge catalog"),
])
def test_who_approves_an_extension(clicker, role, outcome, says):
    decision = decide_extension_approval(asked(), role, clicker, NOW)
    assert decision.outcome is outcome and says in decision.reason


def test_a_decided_or_lapsed_extension_takes_no_more_clicks():
    denied = asked(state=Extension.DENIED, decided_by="carol", decided_at=NOW)
    assert "already denied by @carol" in decide_extension_approval(denied, ROLE, "bob", NOW).reason
    assert "already approved by @bob" in decide_extension_deny(approved_by("bob"), ROLE, "carol", NOW).reason
    ended = dataclasses.replace(asked(), grant_status=GrantStatus.EXPIRED)
    assert "lapsed" in decide_extension_approval(ended, ROLE, "bob", NOW).reason


def trail(recorded=(), seconds: int = 3600, **changes) -> ExtensionTrail:
    """The audit trail Drawbridge would have written for ``approved_by``'s record."""
    fields = dict(approved_at=DECIDED, asked_by="alice", asked_at=NOW, asked_seconds=seconds, approvers=list(recorded))
    return ExtensionTrail(**{**fields, **changes})


LATER = NOW + timedelta(minutes=1)
PROD_SELF = dataclasses.replace(ROLE, approvers=("alice", "bob"), self_approval=True)


@pytest.mark.parametrize(("req", "role", "history", "allowed", "says"), [
    (approved_by("bob"), ROLE, trail(["bob"]), True, "1 of 1"),
    (approved_by("bob"), ROLE, trail([]), False, "0 of 1 extension approvals count"),  # not in the audit trail
    (approved_by("dave"), ROLE, trail(["dave"]), False, "0 of 1"),  # not an approver
    (approved_by("bob"), dataclasses.replace(ROLE, extend_approvals=2), trail(["bob"]), False, "1 of 2"),
    (approved_by("bob", seconds=7 * 3600), ROLE, trail(["bob"], 7 * 3600), False, "past the 8h"),
    (approved_by(), dataclasses.replace(ROLE, extend_approvals=0), trail(), False, "does not allow self-extension"),
    (approved_by(), dataclasses.replace(ROLE, extend_approvals=0, self_extend=True), trail(), True, "no approval"),
    (asked(), ROLE, trail(["bob"]), False, "no approved extension"),
    # the requester approving their own production extension: only with self_extend too
    (approved_by("alice"), PROD_SELF, trail(["alice"]), False, "0 of 1"),
    (approved_by("alice"), dataclasses.replace(PROD_SELF, self_extend=True), trail(["alice"]), True, "1 of 1"),
    # fields edited in the table: the audit trail disagrees
    (approved_by("bob", seconds=6 * 3600), ROLE, trail(["bob"], 3600), False, "not the one the requester asked"),
    (approved_by("bob"), ROLE, trail(["bob"], asked_by="bob"), False, "not the one the requester asked"),
    (approved_by("bob"), ROLE, trail(["bob"], asked_seconds=None), False, "not the one the requester asked"),
    (approved_by("bob"), ROLE, trail(["bob"], approved_at=DECIDED + timedelta(hours=3)), False,
     "approval time is not the audit trail's"),
    (dataclasses.replace(approved_by("bob"), decided_at=NOW, expires_at=NOW + timedelta(hours=2)), ROLE,
     trail(["bob"]), False, "approval time is not the audit trail's"),
    (dataclasses.replace(approved_by("bob"), extension=dataclasses.replace(approved_by("bob").extension,
                                                                           decided_at=LATER + timedelta(days=1))),
     ROLE, trail(["bob"]), False, "not asked and approved while the grant was in force"),
    (dataclasses.replace(approved_by("bob"), role_arn="arn:aws:iam::222222222222:role/other"), ROLE, trail(["bob"]),
     False, "not the catalog's"),
    (dataclasses.replace(approved_by("bob"), principal=Principal.iam_user("mallory")), ROLE, trail(["bob"]), False,
     "grantee"),
    (dataclasses.replace(approved_by("bob"), extension=dataclasses.replace(
        approved_by("bob").extension, decided_at=DECIDED + timedelta(hours=2, seconds=1))), ROLE, trail(["bob"]),
     False, "not asked and approved while the grant was in force"),
])
def test_the_job_re_derives_the_extension_before_iam_changes(req, role, history, allowed, says):
    decision = decide_extension_grant(req, role, ALICE, history, LATER + timedelta(hours=1))
    assert decision.allowed is allowed and says in decision.reason


def test_a_requester_approving_their_own_production_extension_needs_self_extend():
    assert "is production and self_extend is off" in decide_extension_approval(asked(), PROD_SELF, "alice", NOW).reason
    assert decide_extension_approval(asked(), dataclasses.replace(PROD_SELF, self_extend=True), "alice",
                                     NOW).outcome is Outcome.APPROVED
    dev = dataclasses.replace(PROD_SELF, production=False)
    assert decide_extension_approval(asked(), dev, "alice", NOW).outcome is Outcome.APPROVED
