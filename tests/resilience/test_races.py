"""Races over real HTTP: two people (or a person and the sweep) act on one request at once.

The AWS side is moto's ``ThreadedMotoServer`` on 127.0.0.1 (real HTTP, boto3 through
``AWS_ENDPOINT_URL``); Slack is the stand-in. Each thread gets its *own* Drawbridge
service - its own boto3 and WebClient objects - the way two Lambda invocations would,
and all threads start at one ``threading.Barrier``. (``chalice.test.Client`` is not
used here: Chalice keeps ``app.current_request`` on the shared app object, so it
cannot serve two threads at once.)

moto's server does not serialise requests, so a DynamoDB conditional write could
interleave with another inside moto (check, other thread's write, apply) - something
real DynamoDB never does. The suite therefore makes each moto request atomic with one
lock around its WSGI app; requests still race over the network in any order.

Every scenario runs RUNS times and must always end in exactly one coherent outcome:
at most one grant (policy), the card's final text and metadata showing the table's
final state, no repeated transition in the audit history, at most one DM per kind.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import pytest

from chalicelib.domain.model import GrantStatus
from chalicelib.usecases.jobs import describe
from tests.conftest import BOT_TOKEN, SIGNING_SECRET
from tests.resilience import harness as h

RUNS = 10

# prod/admin needs 2 approvals out of bob, carol and dave, so a request dave approved can
# be finished by bob and carol at the same time.
RACE_CATALOG = """
[bastion]
account_id = "111111111111"

[slack]
approvals_channel = "C0APPROVE1"
security_channel  = "C0SECURIT1"

[people.alice]
slack_user = "U0ALICE001"
iam_user   = "alice"

[people.bob]
slack_user = "U0BOB00001"
iam_user   = "bob"

[people.carol]
slack_user = "U0CAROL001"
iam_user   = "carol"

[people.dave]
slack_user = "U0DAVE0001"
iam_user   = "dave"

[accounts.prod]
id = "222222222222"
production = true

[accounts.prod.roles.admin]
max_duration = "4h"
approvers = ["bob", "carol", "dave"]
approvals_required = 2
requesters = ["alice"]
max_extended_duration = "6h"
extend_approvals = 1
"""


@dataclass
class RaceWorld:
    url: str
    catalog: object
    standin: object
    iam: object
    ddb: object
    table_template: str
    mp: object = None
    runs: int = 0


@pytest.fixture(scope="module")
def race_world(tmp_path_factory):
    from moto.server import ThreadedMotoServer

    from chalicelib import wiring
    from chalicelib.catalog import load_catalog
    from local.seed import TABLE_TEMPLATE, client, seed
    from local.slack_standin import SlackStandin

    catalog_path = tmp_path_factory.mktemp("race") / "access.toml"
    catalog_path.write_text(RACE_CATALOG)
    catalog = load_catalog(catalog_path)
    quiet = logging.getLogger("werkzeug")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # one access-log line per AWS call otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    lock = threading.Lock()
    moto_app = server._server.app  # noqa: SLF001 - see the module docstring (atomic requests)

    def atomic(environ, start_response):
        with lock:
            return list(moto_app(environ, start_response))

    server._server.app = atomic  # noqa: SLF001
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        with pytest.MonkeyPatch.context() as mp, SlackStandin(token=BOT_TOKEN) as standin:
            for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_LAMBDA_FUNCTION_NAME",
                        "SLACK_SIGNING_SECRET_PARAM", "SLACK_BOT_TOKEN_PARAM"):
                mp.delenv(var, raising=False)
            mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
            world = seed(catalog, "race-seed", endpoint_url=url)
            for k, v in world.service.env().items():
                mp.setenv(k, v)
            mp.setenv("AWS_ENDPOINT_URL", url)
            mp.setenv("DRAWBRIDGE_CATALOG", str(catalog_path))
            mp.setenv("DRAWBRIDGE_TABLE", "race-seed")
            mp.setenv("SLACK_API_URL", standin.url)
            mp.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
            mp.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
            wiring.reset()
            yield RaceWorld(url, catalog, standin, client("iam", keys=world.service, endpoint_url=url),
                            client("dynamodb", keys=world.service, endpoint_url=url), str(TABLE_TEMPLATE), mp)
            wiring.reset()
    finally:
        server.stop()
        quiet.setLevel(level)


# --------------------------------------------------------------------------- helpers
def fresh_service(clock=None):
    """A service with its own clients, as a separate Lambda invocation would have."""
    from chalicelib import wiring

    svc = wiring._service.__wrapped__(  # noqa: SLF001 - uncached: one per thread
        wiring.settings(), os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_DEFAULT_REGION"))
    if clock is not None:
        svc.clock = clock  # the clock is injected; every Lambda reads the same time
    return svc


@dataclass
class Run:
    store: object
    rid: str
    errors: list


def new_run(w: RaceWorld, approved_by: tuple = ("dave",), duration: str = "2h") -> Run:
    """A fresh table; alice asks for prod/admin; ``approved_by`` approve first (no race yet)."""
    from chalicelib.adapters.store import DynamoStore, create_table_from_template
    from chalicelib.slack.parse import Click, SlashCommand

    w.runs += 1
    table = f"race-{w.runs:03d}"
    create_table_from_template(w.ddb, table, w.table_template)
    w.mp.setenv("DRAWBRIDGE_TABLE", table)
    w.standin.reset()
    h.scrub_iam(w.iam)
    svc = fresh_service()
    reply = svc.command(SlashCommand("U0ALICE001", "C0CMD00001", f"prod admin {duration} incident 4521",
                                     "/aws-access", "https://hooks.slack.invalid/x"))
    rid = reply.text.split("`")[1]
    svc.run_all(reply.jobs)
    for person in approved_by:
        svc.run_all(svc.click(Click("approve_request", rid, w.catalog.people[person].slack_user, h.APPROVALS, "1.1")))
    return Run(DynamoStore(w.ddb, table), rid, [])


def click(w, run, person, action="approve_request"):
    from chalicelib.slack.parse import Click

    def act(svc):
        jobs = svc.click(Click(action, run.rid, w.catalog.people[person].slack_user, h.APPROVALS, "1.1"))
        svc.run_all(jobs, on_error=lambda job, exc: run.errors.append(f"{person}: {describe(job)['job']}: {exc!r}"))
    return act


def revoke(w, run, person="alice", when_active=False):
    from chalicelib.slack.parse import SlashCommand

    def act(svc):
        if when_active:  # the revoke lands just as the grant does (the card and DM are on their way)
            deadline = time.monotonic() + 20
            while run.store.get(run.rid).grant_status is not GrantStatus.ACTIVE and time.monotonic() < deadline:
                time.sleep(0.002)
        reply = svc.command(SlashCommand(w.catalog.people[person].slack_user, "C0CMD00001", f"revoke {run.rid}",
                                         "/aws-access", "https://hooks.slack.invalid/x"))
        svc.run_all(reply.jobs, on_error=lambda job, exc: run.errors.append(f"revoke: {describe(job)['job']}: {exc!r}"))
    return act


def sweep(run):
    def act(svc):
        svc.sweep(on_error=lambda job, exc: run.errors.append(f"sweep: {describe(job)['job']}: {exc!r}"))
    return act


def collide(run, *actions, clock=None):
    """Run each action on its own thread and service, all released by one barrier."""
    services = [fresh_service(clock) for _ in actions]
    barrier = threading.Barrier(len(actions))

    def body(act, svc):
        try:
            barrier.wait(timeout=10)
            act(svc)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            run.errors.append(repr(exc))

    threads = [threading.Thread(target=body, args=(a, s)) for a, s in zip(actions, services)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a racing thread hung"


def outcome(req) -> str:
    if req.grant_status is not GrantStatus.NONE:
        return f"{req.status.value}/{req.grant_status.value}".lower()
    return req.status.value.lower()


def check(w: RaceWorld, run: Run, scenario: str, allowed: set[str]) -> str:
    """Every race must end in one coherent state; returns that outcome."""
    s = h.snapshot(run.store, w.iam, w.standin, with_history=True)
    req = s.requests[run.rid]
    got = outcome(req)
    problems = []
    if got not in allowed:
        problems.append(f"outcome {got}, expected one of {sorted(allowed)}")
    if run.errors:
        problems.append(f"job errors: {run.errors}")
    attached = s.attached.get(run.rid, [])
    if len(attached) > 1 or sum(len(u) for u in s.attached.values()) > 1:
        problems.append(f"more than one grant: {s.attached}")
    for key, msgs in h.check_consistent(s).items():
        problems.append(f"{key}: {msgs}")
    problems += h.card_disagreements(s, w.catalog)
    # nothing here is drift or a failure; an ended production grant's cut-off is told once
    problems += [f"#security told: {m.text[:120]!r}" for m in s.security if m.event_type != "access_cut"]
    cuts = [m for m in s.security if m.event_type == "access_cut"]
    if len(cuts) > 1:
        problems.append(f"{len(cuts)} access_cut notices for one grant")
    problems += h.duplicate_transitions(s.history[run.rid])
    kinds = [m.event_type for m in s.dms]
    problems += [f"{k} DMed {kinds.count(k)} times" for k in set(kinds) if kinds.count(k) > 1]
    if req.grant_status is GrantStatus.ACTIVE and "access_granted" not in kinds:
        problems.append("the grant is active but the requester was never told")
    # (a grant revoked before its "granted" DM went out gets only the revoked DM: I5 above)
    h.RACES.append((scenario, w.runs, got))
    assert not problems, f"{scenario} run {w.runs}:\n  " + "\n  ".join(problems)
    return got


# --------------------------------------------------------------------------- the races
def test_two_final_approvals_at_once(race_world):
    """dave approved (1 of 2); bob and carol click Approve at the same moment."""
    w = race_world
    for _ in range(RUNS):
        run = new_run(w)
        collide(run, click(w, run, "bob"), click(w, run, "carol"))
        check(w, run, "approve/approve (bob + carol)", {"approved/active"})
        req = run.store.get(run.rid)
        assert req.approvers[0] == "dave" and len(req.approvers) == 2
        loser = ({"bob", "carol"} - set(req.approvers)).pop()
        (refusal,) = w.standin.ephemerals(w.catalog.people[loser].slack_user)
        assert "already approved" in refusal.text


def test_double_click_by_one_approver(race_world):
    w = race_world
    for _ in range(RUNS):
        run = new_run(w)
        collide(run, click(w, run, "carol"), click(w, run, "carol"))
        check(w, run, "double click (carol x2)", {"approved/active"})
        assert run.store.get(run.rid).approvers == ("dave", "carol")
        assert len(w.standin.ephemerals("U0CAROL001")) == 1  # the second click is told, not counted


def test_approve_and_deny_at_once(race_world):
    w = race_world
    for _ in range(RUNS):
        run = new_run(w)
        collide(run, click(w, run, "carol"), click(w, run, "bob", "deny_request"))
        check(w, run, "approve/deny (carol / bob)", {"approved/active", "denied"})


def test_requester_revokes_while_final_approval_lands(race_world):
    """Either the cancel wins (the approval is refused), or the approval wins and the
    revoke is refused while granting, or it lands after the grant and revokes it."""
    w = race_world
    for _ in range(RUNS):
        run = new_run(w)
        collide(run, click(w, run, "carol"), revoke(w, run))
        check(w, run, "approve/revoke (simultaneous)", {"cancelled", "approved/active", "approved/revoked"})


def test_requester_revokes_as_the_grant_lands(race_world):
    """The revoke arrives right after GRANTING -> ACTIVE, while the approver's worker is still
    updating the card and DMing 'granted': the card and the DMs must still tell the truth."""
    w = race_world
    for _ in range(RUNS):
        run = new_run(w)
        collide(run, click(w, run, "carol"), revoke(w, run, when_active=True))
        check(w, run, "approve/revoke (as the grant lands)", {"approved/revoked"})


def test_revoke_while_the_sweep_expires_the_grant(race_world):
    w = race_world
    for _ in range(RUNS):
        run = new_run(w, approved_by=("dave", "carol"), duration="1h")
        expires = run.store.get(run.rid).expires_at
        at = expires + timedelta(seconds=30)
        collide(run, revoke(w, run), sweep(run), clock=lambda: at)
        check(w, run, "revoke/sweep (at expiry)", {"approved/revoked", "approved/expired"})
        assert h.drawbridge_policies(w.iam) == {}


def test_two_sweeps_at_once_end_the_grant_once(race_world):
    """A sweep that overruns its minute meets the next one on the same expired grant."""
    w = race_world
    for _ in range(RUNS):
        run = new_run(w, approved_by=("dave", "carol"), duration="1h")
        at = run.store.get(run.rid).expires_at + timedelta(seconds=30)
        collide(run, sweep(run), sweep(run), clock=lambda: at)
        check(w, run, "sweep/sweep (at expiry)", {"approved/expired"})
        assert h.drawbridge_policies(w.iam) == {}


def test_both_cloudtrail_copies_at_once_alert_once(race_world):
    """The caller's and the role owner's copy of one AssumeRole arrive at the same moment."""
    from chalicelib.usecases import alert as alerting
    from tests.fixtures import load_cloudtrail

    w = race_world
    for _ in range(RUNS):
        run = new_run(w, approved_by=())
        copies = [load_cloudtrail("assume_role_bastion_copy"), load_cloudtrail("assume_role_prod_copy")]
        outcomes: list = []
        collide(run, *[lambda svc, e=e: outcomes.append(alerting.handle(svc, e)) for e in copies])
        alerts = [m for m in w.standin.messages(h.SECURITY) if m.event_type == "role_assumed"]
        got = "one alert" if len(alerts) == 1 else f"{len(alerts)} alerts"
        h.RACES.append(("alert/alert (both CloudTrail copies)", w.runs, got))
        assert len(alerts) == 1 and sorted(o.duplicate for o in outcomes) == [False, True], (alerts, outcomes)
        assert not run.errors, run.errors
