"""Use case: request access (chalicelib/usecases/request.py), through the slash command."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.model import GrantStatus, Principal, RequestStatus
from chalicelib.usecases import jobs
from chalicelib.usecases.outcomes import Refused, Requested
from chalicelib.usecases.request import request_access
from chalicelib.slack.parse import RequestCmd
from tests.fakes import SAMPLE_CATALOG, T0, make_service
from tests.service.helpers import APPROVALS, PROD_ADMIN, actions, ask, card, cards, granted, slash, state

# The sample catalog plus a role whose only approver is bob (no self-approval): bob's own
# request for it could never be approved.
SOLO = SAMPLE_CATALOG.read_text() + '\n[accounts.dev.roles.solo]\napprovers = ["bob"]\n'


def test_an_allowed_request_is_stored_pending_and_its_card_posted(svc):
    reply = slash(svc, "alice", "prod admin 2h fixing incident 4521")

    (req,) = svc.store.requests()
    assert reply.text.startswith(f"Request `{req.request_id}` for `prod/admin` (2h) is waiting for approval")
    assert "needs 2 of @bob, @carol" in reply.text
    assert (req.status, req.grant_status, req.version) == (RequestStatus.PENDING, GrantStatus.NONE, 1)
    assert (req.requester, req.requester_slack, req.principal) == ("alice", "U0ALICE001", Principal.iam_user("alice"))
    assert (req.account, req.account_id, req.role, req.role_arn, req.production) == (
        "prod", "222222222222", "admin", PROD_ADMIN, True)
    assert (req.duration_seconds, req.approvals_required, req.reason) == (7200, 2, "fixing incident 4521")
    assert (req.created_at, req.pending_until, req.expires_at) == (T0, T0 + timedelta(hours=1), None)
    assert actions(svc, req.request_id) == [("alice", "requested", "-", "PENDING/NONE")]
    assert svc.store.open_for("alice") == [req]
    assert svc.slack.messages == []  # the card is a job: nothing is posted on the ack path

    payload = {"request_id": req.request_id, "requester": "alice", "account": "prod", "role": "admin",
               "duration_seconds": 7200, "reason": "fixing incident 4521"}
    assert reply.jobs == [jobs.Card(req.request_id, "access_requested", payload)]
    svc.run_all(reply.jobs)
    (msg,) = cards(svc)
    assert (msg.channel, msg.event_type, msg.payload) == (APPROVALS, "access_requested", payload)
    assert msg.has_buttons and "0 of 2" in msg.all_text()
    assert card(svc, req.request_id) is msg


def test_the_pending_window_and_ids_come_from_the_deps():
    svc = make_service(pending_window=timedelta(minutes=30), new_id=lambda now: "req-20261112-abc123")
    assert ask(svc) == "req-20261112-abc123"
    assert svc.store.get("req-20261112-abc123").pending_until == T0 + timedelta(minutes=30)


def test_approvers_named_never_include_the_requester_without_self_approval(svc):
    assert "needs 1 of @carol." in slash(svc, "bob", "prod readonly 1h dashboards").text
    assert "needs 1 of @bob, @carol." in slash(svc, "bob", "dev admin 1h").text  # dev allows self-approval


def test_what_was_typed_is_stored_raw():
    svc = make_service()
    rid = ask(svc, "alice", "prod readonly 1h <!here> & <@U0BOB00001> *bold*")
    assert svc.store.get(rid).reason == "<!here> & <@U0BOB00001> *bold*"
    assert "<!here>" not in card(svc, rid).all_text()  # escaped once, when rendered


REFUSALS = [
    ("unknown account", "alice", "staging admin 1h x", "unknown account 'staging'; accounts: dev, prod"),
    ("unknown role", "alice", "prod root 1h x", "unknown role 'root' in prod; roles: admin, readonly"),
    ("not a requester", "bob", "prod admin 1h incident", "you may not request `prod/admin`"),
    ("unapprovable", "bob", "dev solo 1h",
     "dev/solo needs 1 approval and you are its only approver, so nobody can approve your request"),
    ("bad duration", "alice", "prod admin 2x incident", "'2x' is not a duration; use e.g. 30m, 2h"),
    ("zero duration", "alice", "prod admin 0m incident", "duration must be positive"),
    ("over the role's cap", "alice", "prod admin 5h incident", "prod/admin allows at most 4h"),
    ("over any cap", "alice", "prod admin 999d incident", "prod/admin allows at most 4h"),
    ("no reason for production", "alice", "prod admin 2h",
     "production requests need a reason: `/aws-access prod admin 2h &lt;reason&gt;`"),
]


@pytest.mark.parametrize("why,person,text,reason", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_store_and_post_nothing(why, person, text, reason):
    svc = make_service(SOLO)
    before = svc.store.snapshot()

    reply = slash(svc, person, text)

    assert reason in reply.text
    assert reply.jobs == []
    assert svc.store.snapshot() == before
    assert svc.slack.messages == [] and svc.grants.policies == {}


def test_refused_outcome_is_a_value_not_words():
    svc = make_service()
    person = svc.catalog.people["alice"]
    answer = request_access(svc, person, RequestCmd("prod", "admin", "5h", "x"))
    assert answer == type(answer)(Refused("prod/admin allows at most 4h"), [])
    answer = request_access(svc, person, RequestCmd("prod", "admin", "2h", "x"))
    assert isinstance(answer.outcome, Requested) and answer.outcome.approvers == ("bob", "carol")
    assert answer.outcome.approvals_channel == APPROVALS


def test_a_second_open_request_for_the_same_role_is_refused(svc):
    rid = ask(svc)
    before = svc.store.snapshot()
    reply = slash(svc, "alice", "prod admin 1h again")
    assert reply.text == (f"you already have `{rid}` for `prod/admin` (pending); "
                          f"revoke it first with `/aws-access revoke {rid}`")
    assert svc.store.snapshot() == before and len(cards(svc)) == 1


def test_a_duplicate_of_an_active_grant_says_until_when(svc):
    rid = granted(svc)
    reply = slash(svc, "alice", "prod admin 1h again")
    assert f"you already have `{rid}` for `prod/admin` (active until 16:02 UTC)" in reply.text
    assert len(svc.store.requests()) == 1


def test_a_request_that_ended_no_longer_blocks_the_role(svc):
    rid = ask(svc)
    slash(svc, "alice", f"revoke {rid}")
    assert state(svc, rid) == "CANCELLED/NONE"
    other = ask(svc, "alice", "prod admin 1h again")
    assert other != rid and state(svc, other) == "PENDING/NONE"


def test_the_per_person_limit_counts_open_requests_only():
    svc = make_service(max_open_per_user=2)
    first = ask(svc, "alice", "prod admin 1h a")
    ask(svc, "alice", "prod readonly 1h b")
    before = svc.store.snapshot()

    reply = slash(svc, "alice", "dev admin 1h")
    assert reply.text.startswith("you already have 2 pending or active requests, the most one person may hold "
                                 "at once (2, IAM's managed-policy limit per user); revoke one first")
    assert svc.store.snapshot() == before

    slash(svc, "alice", f"revoke {first}")
    assert state(svc, ask(svc, "alice", "dev admin 1h")) == "PENDING/NONE"
    # the limit is per person: dave holds nothing yet
    assert state(svc, ask(svc, "dave", "prod admin 1h c")) == "PENDING/NONE"


def test_an_id_collision_draws_another_id():
    ids = iter(["req-20261112-aaaaaa", "req-20261112-aaaaaa", "req-20261112-bbbbbb"])
    svc = make_service(new_id=lambda now: next(ids))
    assert ask(svc, "alice") == "req-20261112-aaaaaa"
    assert ask(svc, "dave") == "req-20261112-bbbbbb"
    assert svc.store.get("req-20261112-aaaaaa").requester == "alice"  # not overwritten
    assert [e.actor for e in svc.store.history("req-20261112-aaaaaa")] == ["alice"]


def test_no_free_id_is_an_error_and_stores_nothing_new():
    svc = make_service(new_id=lambda now: "req-20261112-aaaaaa")
    ask(svc, "alice")
    before = svc.store.snapshot()
    with pytest.raises(RuntimeError, match="could not allocate a request id"):
        slash(svc, "dave", "prod admin 1h c")
    assert svc.store.snapshot() == before
