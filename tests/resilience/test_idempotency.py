"""A re-invoked worker, a late job and a redelivered event change nothing the second time.

In Lambda the ack path hands its jobs to the ``worker`` function with one asynchronous
invoke; Lambda may deliver that event more than once (and retries a failed one), so
every job list here is run through the real ``worker`` handler twice. EventBridge
may deliver a CloudTrail event twice, too. (A redelivered slash command or click -
same ``trigger_id`` - is tests/app/test_lifecycle.py::test_redelivered_command_and_click_act_once.)
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import time_machine

from chalicelib.domain.model import GrantStatus, RequestStatus
from local.seed import client as aws
from tests.fixtures import load_cloudtrail
from tests.resilience import harness as h

T0 = datetime(2026, 11, 12, 14, 0, tzinfo=timezone.utc)


def service():
    from chalicelib import wiring

    return wiring.service()


def ack_click(person_slack: str, rid: str, action: str = "approve_request") -> list:
    """The ack path of a click, without running its jobs: what the worker is invoked with."""
    from chalicelib.slack.parse import Click

    from chalicelib.usecases.jobs import to_wire

    return [to_wire(j) for j in service().click(Click(action, rid, person_slack, h.APPROVALS, "1.1"))]


def ack_command(person_slack: str, text: str):
    from chalicelib.slack.parse import SlashCommand
    from chalicelib.usecases.jobs import to_wire

    reply = service().command(SlashCommand(person_slack, "C0CMD00001", text, "/aws-access", "https://x.invalid"))
    reply.jobs = [to_wire(j) for j in reply.jobs]  # what the worker is invoked with
    return reply


def worker(app_client, jobs: list) -> dict:
    return app_client.client.lambda_.invoke("worker", {"jobs": jobs, "correlation_id": "test"}).payload


def twice(app_client, jobs: list) -> None:
    for _ in range(2):
        out = worker(app_client, jobs)
        assert out["failed"] == [], out


def snapshot(stack, store, slack):
    return h.snapshot(store, aws("iam", keys=stack.service), slack, with_history=True)


def requested(app_client) -> str:
    text = app_client.command("alice", "prod admin 2h fixing incident 4521").text
    return re.search(r"req-\d{8}-[0-9a-f]{6}", text).group(0)


def assert_coherent(stack, store, slack, catalog, rid):
    s = snapshot(stack, store, slack)
    assert h.check_consistent(s) == {}
    assert h.card_disagreements(s, catalog) == []
    assert h.duplicate_transitions(s.history[rid]) == []
    kinds = [m.event_type for m in s.dms]
    assert len(kinds) == len(set(kinds)), f"a DM was sent twice: {kinds}"
    return s


def test_final_approval_worker_run_twice_grants_once(app_client, stack, slack, store, catalog):
    with time_machine.travel(T0, tick=False) as clock:
        rid = requested(app_client)
        app_client.approve("bob", rid)
        clock.shift(timedelta(minutes=1))
        jobs = ack_click("U0CAROL001", rid)  # [card(access_approved), grant]
        assert [j["job"] for j in jobs] == ["card", "grant"]
        twice(app_client, jobs)

    s = assert_coherent(stack, store, slack, catalog, rid)
    assert s.requests[rid].grant_status is GrantStatus.ACTIVE
    assert s.attached == {rid: ["alice"]}
    assert [m.event_type for m in s.dms] == ["access_approved", "access_granted"]
    assert [e.action for e in s.history[rid]] == ["requested", "approved", "approved", "granted"]


def test_granted_dm_job_run_twice_dms_once(app_client, stack, slack, store, catalog):
    """The worker that ran grant -> card + dm is re-invoked with the dm job (or delivered twice)."""
    from chalicelib.service import granted_payload

    with time_machine.travel(T0, tick=False):
        rid = requested(app_client)
        app_client.approve("bob", rid)
        app_client.approve("carol", rid)  # granted; alice got her DM
        req = store.get(rid)
        dm = {"job": "dm", "request_id": rid, "event_type": "access_granted", "payload": granted_payload(req)}
        card = {"job": "card", "request_id": rid, "event_type": "access_granted", "payload": granted_payload(req)}
        twice(app_client, [dm, card])
        twice(app_client, [{"job": "grant", "request_id": rid}])

    s = assert_coherent(stack, store, slack, catalog, rid)
    assert [m.event_type for m in s.dms] == ["access_approved", "access_granted"]
    assert s.attached == {rid: ["alice"]}


def test_end_grant_worker_run_twice_revokes_once(app_client, stack, slack, store, catalog):
    with time_machine.travel(T0, tick=False) as clock:
        rid = requested(app_client)
        app_client.approve("bob", rid)
        app_client.approve("carol", rid)
        clock.shift(timedelta(minutes=5))
        reply = ack_command("U0ALICE001", f"revoke {rid}")
        assert [j["job"] for j in reply.jobs] == ["end_grant"]
        twice(app_client, reply.jobs)

    s = assert_coherent(stack, store, slack, catalog, rid)
    assert s.requests[rid].grant_status is GrantStatus.REVOKED and s.policies == set()
    assert [m.event_type for m in s.dms] == ["access_approved", "access_granted", "access_revoked"]


def test_deny_worker_run_twice_tells_once(app_client, stack, slack, store, catalog):
    with time_machine.travel(T0, tick=False):
        rid = requested(app_client)
        jobs = ack_click("U0BOB00001", rid, "deny_request")  # [card(access_denied), dm(access_denied)]
        twice(app_client, jobs)

    s = assert_coherent(stack, store, slack, catalog, rid)
    assert s.requests[rid].status is RequestStatus.DENIED
    assert [m.event_type for m in s.dms] == ["access_denied"]


def test_late_granted_dm_after_revocation_says_nothing_false(app_client, stack, slack, store, catalog):
    """A worker event that was delayed past the revocation must not DM 'granted' (or tag a
    revoked notice as access_granted), and a stale card job must not relabel the card."""
    from chalicelib.service import granted_payload

    with time_machine.travel(T0, tick=False) as clock:
        rid = requested(app_client)
        app_client.approve("bob", rid)
        jobs = ack_click("U0CAROL001", rid)
        worker(app_client, [j for j in jobs if j["job"] == "grant"])  # grant (+ its card and DM)
        late = [{"job": "card", "request_id": rid, "event_type": "access_granted",
                 "payload": granted_payload(store.get(rid))},
                {"job": "dm", "request_id": rid, "event_type": "access_granted",
                 "payload": granted_payload(store.get(rid))}]
        clock.shift(timedelta(minutes=5))
        app_client.command("alice", f"revoke {rid}")
        twice(app_client, [jobs[0], *late])  # the approval's card job and the late ones, delivered late

    s = assert_coherent(stack, store, slack, catalog, rid)
    assert [m.event_type for m in s.dms] == ["access_approved", "access_granted", "access_revoked"]
    card = next(m for m in s.messages if m.channel == h.APPROVALS)
    assert card.event_type == "access_revoked"


def test_cloudtrail_event_redelivered_alerts_once(app_client, stack, slack, store):
    event = load_cloudtrail("assume_role_bastion_copy")
    with time_machine.travel(T0, tick=False) as clock:
        rid = requested(app_client)
        clock.shift(timedelta(minutes=2))
        app_client.approve("bob", rid)
        app_client.approve("carol", rid)
        clock.move_to(T0 + timedelta(minutes=5))
        first = app_client.client.lambda_.invoke("on_role_assumed", event).payload
        again = app_client.client.lambda_.invoke("on_role_assumed", load_cloudtrail("assume_role_bastion_copy")).payload
    assert (first["posted"], again["duplicate"]) == (True, True)
    alerts = [m for m in slack.messages(h.SECURITY) if m.event_type == "role_assumed"]
    assert len(alerts) == 1 and alerts[0].event_payload["request_id"] == rid
    assert len(store.uses(rid)) == 1
    assert len([m for m in slack.messages(h.APPROVALS) if m.thread_ts]) == 1  # one "used at" reply
