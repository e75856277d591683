"""The people and the machinery of one chaos run, and the scenarios they play.

A :class:`Run` is one seed: the scenario the seed picks arms the proxies (which calls fail,
how, how often - all drawn from ``random.Random(seed)``) and plays its actors, some of them
at the same moment on their own threads and services (:meth:`Run.together`):

* people: ``request`` (a slash command), ``click`` (Approve / Deny on the card), ``revoke``;
* the machinery: ``sweep`` (the every-minute schedule), ``assume`` (a CloudTrail AssumeRole
  call delivered to ``on_role_assumed``: both copies, and EventBridge's redeliveries).

Each actor behaves as in production: the ack path's exception is the "unexpected error
(ref ...)" a person sees, and a "try again" answer is a visible failure too (both are
repeated in recovery); a worker job that fails is logged and lost (the sweep repairs what it
can); a failed ``on_role_assumed`` invocation is redelivered; a failed sweep runs again next
minute. Time is the run's :class:`~tests.chaos.world.SimClock`, moved by the scenario.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

from local.faultproxy import delay, drop, error, lose_response, slack_error, throttle

from .world import APPROVALS

MIN = timedelta(minutes=1)
RID = re.compile(r"req-\d{8}-[0-9a-f]{6}")
ADMIN_ARN = "arn:aws:iam::222222222222:role/admin"


# --------------------------------------------------------------------------- one run
@dataclass
class Run:
    seed: int
    scenario: str
    world: object
    rng: random.Random
    rids: dict = field(default_factory=dict)  # label -> request id
    visible: list = field(default_factory=list)  # (what, callable) a person repeats in recovery
    undelivered: list = field(default_factory=list)  # CloudTrail events whose invocation failed
    delivered: list = field(default_factory=list)  # ... and those that were handled
    calls: list = field(default_factory=list)  # dedupe keys of the production AssumeRole calls made
    job_errors: list = field(default_factory=list)
    timeline: list = field(default_factory=list)
    past_expiry: bool = False  # recovery moves time past every window (checkpoint B)
    _next_service: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def clock(self):
        return self.world.clock

    @property
    def catalog(self):
        return self.world.catalog

    def note(self, text: str) -> None:
        with self._lock:
            self.timeline.append(f"{self.clock.now:%H:%M:%S} {text}")

    def service(self):
        with self._lock:
            svc = self.world.services[self._next_service % len(self.world.services)]
            self._next_service += 1
            return svc

    def _on_error(self, who: str):
        from chalicelib.usecases.jobs import describe

        def on_error(job, exc):
            d = describe(job)
            text = " ".join(str(exc).split())
            self.job_errors.append(f"{self.clock.now:%H:%M:%S} {who}: job {d['job']} {d.get('request_id') or ''}: "
                                   f"{type(exc).__name__}: {text[:160]}")
        return on_error

    # ---- people ----------------------------------------------------------------------
    def request(self, person: str, text: str, label: str, svc=None) -> str | None:
        from chalicelib.slack.parse import SlashCommand

        svc = svc or self.service()
        user = self.catalog.people[person].slack_user
        try:
            reply = svc.command(SlashCommand(user, "C0CMD00001", text, "/aws-access", "https://hooks.slack.invalid/x"))
        except Exception as exc:  # noqa: BLE001 - the person sees "unexpected error (ref ...)"
            self.note(f"{person} `{text}`: unexpected error ({type(exc).__name__})")
            self.visible.append((f"{person} requests again", lambda: self.request(person, text, label)))
            return None
        m = RID.search(reply.text)
        self.note(f"{person} `{text}`: {reply.text[:90]}")
        if m is None:
            if "try again" in reply.text:
                self.visible.append((f"{person} requests again", lambda: self.request(person, text, label)))
            return None
        self.rids[label] = m.group(0)
        svc.run_all(reply.jobs, on_error=self._on_error(f"{person}'s request"))
        return m.group(0)

    def click(self, person: str, label: str, action: str = "approve_request", svc=None) -> None:
        from chalicelib.slack.parse import Click
        from chalicelib.usecases import jobs as job_types

        rid = self.rids.get(label)
        if rid is None:
            return  # no request (it visibly failed): there is no card to click
        svc = svc or self.service()
        user = self.catalog.people[person].slack_user
        verb = "approves" if action.startswith("approve") else "denies"
        try:
            jobs = svc.click(Click(action, rid, user, APPROVALS, "1.1"))
        except Exception as exc:  # noqa: BLE001
            self.note(f"{person} {verb} {rid}: unexpected error ({type(exc).__name__})")
            self.visible.append((f"{person} {verb} again", lambda: self.click(person, label, action)))
            return
        answer = next((j.text for j in jobs if isinstance(j, job_types.Ephemeral)), None)
        self.note(f"{person} {verb} {rid}: {answer or 'counted'}")
        if answer and "try again" in answer:
            self.visible.append((f"{person} {verb} again", lambda: self.click(person, label, action)))
        svc.run_all(jobs, on_error=self._on_error(f"{person}'s click"))

    def extend(self, person: str, label: str, text: str, svc=None) -> None:
        """``/aws-access extend <the label's request id> <text>``."""
        self._on_request(person, label, "extend", "extends", lambda rid: f"extend {rid} {text}",
                         lambda: self.extend(person, label, text), svc)

    def revoke(self, person: str, label: str, svc=None) -> None:
        self._on_request(person, label, "revoke", "revokes", lambda rid: f"revoke {rid}",
                         lambda: self.revoke(person, label), svc)

    def _on_request(self, person: str, label: str, what: str, verb: str, text, again, svc=None) -> None:
        """A command about the label's request; one that visibly failed is done again in recovery."""
        from chalicelib.slack.parse import SlashCommand

        rid = self.rids.get(label)
        if rid is None:
            return
        svc = svc or self.service()
        user = self.catalog.people[person].slack_user
        try:
            reply = svc.command(SlashCommand(user, "C0CMD00001", text(rid), "/aws-access",
                                             "https://hooks.slack.invalid/x"))
        except Exception as exc:  # noqa: BLE001
            self.note(f"{person} {verb} {rid}: unexpected error ({type(exc).__name__})")
            self.visible.append((f"{person} {verb} again", again))
            return
        self.note(f"{person} {verb} {rid}: {reply.text[:90]}")
        if "try again" in reply.text:
            self.visible.append((f"{person} {verb} again", again))
        svc.run_all(reply.jobs, on_error=self._on_error(f"{person}'s {what}"))

    # ---- the machinery -----------------------------------------------------------------
    def sweep(self, svc=None) -> None:
        svc = svc or self.service()
        try:
            report = svc.sweep(on_error=self._on_error("sweep"))
            self.note(f"sweep: {report.__dict__}")
        except Exception as exc:  # noqa: BLE001 - the next minute's sweep runs again
            self.note(f"sweep failed ({type(exc).__name__}); the next one runs a minute later")

    def deliver(self, event: dict, svc=None) -> bool:
        """One invocation of on_role_assumed; a failure is redelivered in recovery."""
        svc = svc or self.service()
        eid = event["detail"]["eventID"][:8]
        try:
            outcome = svc.role_assumed(event)
        except Exception as exc:  # noqa: BLE001 - Lambda retries / EventBridge redelivers
            self.note(f"CloudTrail {eid}: invocation failed ({type(exc).__name__})")
            with self._lock:
                self.undelivered.append(event)
            return False
        self.note(f"CloudTrail {eid}: {outcome.kind}{' (duplicate)' if outcome.duplicate else ''}")
        with self._lock:
            self.delivered.append(event)
        return True

    def assume_role_call(self, at) -> tuple[dict, dict]:
        """Both copies (the caller's, the role owner's) of one AssumeRole by alice into prod/admin
        at ``at``, with ids drawn from the run's seed."""
        from local.events import refresh_cloudtrail
        from tests.fixtures import load_cloudtrail

        def uid() -> str:  # drawn from the seed, so a rerun shows the same ids in its log
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

        shared, request_id = uid(), uid()
        copies = tuple(refresh_cloudtrail(load_cloudtrail(name), at=at, iam_user="alice")
                       for name in ("assume_role_bastion_copy", "assume_role_prod_copy"))
        for ev in copies:
            ev["id"] = uid()
            d = ev["detail"]
            d["eventID"], d["sharedEventID"], d["requestID"] = uid(), shared, request_id
        self.calls.append(shared)
        return copies

    def together(self, *acts: Callable, offsets: tuple | None = None) -> None:
        """Each act on its own thread and service, released at once (``offsets``: seconds each
        waits after the release)."""
        services = [self.service() for _ in acts]
        barrier = threading.Barrier(len(acts))
        offsets = offsets or (0.0,) * len(acts)
        crashed: list = []

        def body(act, svc, wait):
            try:
                barrier.wait(timeout=30)
                if wait:
                    time.sleep(wait)
                act(svc)
            except Exception as exc:  # noqa: BLE001 - a harness failure, reported with the run
                crashed.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=body, args=(a, s, w), daemon=True)
                   for a, s, w in zip(acts, services, offsets)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        if any(t.is_alive() for t in threads):
            raise RuntimeError("an actor thread hung")
        if crashed:
            raise RuntimeError(f"an actor crashed: {crashed}")


# --------------------------------------------------------------------------- fault plans
AWS_TARGETS = {
    "dynamodb": ["GetItem", "Query", "TransactWriteItems", "PutItem", "DeleteItem", "UpdateItem", "*"],
    "iam": ["ListPolicies", "CreatePolicy", "AttachUserPolicy", "DetachUserPolicy", "DeletePolicy",
            "ListAttachedUserPolicies", "ListEntitiesForPolicy", "GetPolicy", "GetPolicyVersion",
            "ListMFADevices", "*"],
    "slack": ["chat.postMessage", "chat.update", "chat.delete", "chat.postEphemeral", "conversations.history",
              "*"],
}
KINDS = ("error", "throttle", "delay", "drop", "lose_response")


def random_rule(run: Run, services=("dynamodb", "iam", "slack"), kinds=KINDS, name: str = "") -> str:
    """Arm one rule drawn from the seed; returns its description."""
    r = run.rng
    service = r.choice(services)
    target = f"{service}:{r.choice(AWS_TARGETS[service])}"
    kind = r.choice(kinds)
    if kind == "error":
        if service == "slack":
            action = r.choice([slack_error("fatal_error"), error(500), error(503)])
        else:
            action = error(500, code={"dynamodb": "InternalServerError", "iam": "ServiceFailure"}[service])
    elif kind == "throttle":
        action = throttle(retry_after=r.choice([1, 2, 3]))
    elif kind == "delay":
        action = delay(r.choice([0.02, 0.05, 0.1]))
    elif kind == "drop":
        action = drop(reset=r.random() < 0.3)
    else:
        action = lose_response()
    if kind == "delay":
        probability, count = r.choice([0.2, 0.5, 1.0]), r.randint(1, 6)
    elif r.random() < 0.5:
        probability, count = r.choice([0.1, 0.25, 0.5]), None
    else:
        probability, count = r.choice([0.5, 1.0]), r.randint(1, 3)
    proxy = run.world.slack if service == "slack" else run.world.aws
    rule = proxy.add(target, action, probability=probability, count=count, name=name)
    return rule.describe()


def arm(run: Run, n: int, **kwargs) -> None:
    for _ in range(n):
        run.note("fault: " + random_rule(run, **kwargs))


# --------------------------------------------------------------------------- the scenarios
def _granted(run: Run, who: str, text: str, label: str, approvers: tuple) -> None:
    run.request(who, text, label)
    for person in approvers:
        run.clock.advance(timedelta(seconds=20))
        run.click(person, label)


def approvals(run: Run) -> None:
    """alice asks for prod/admin; one approver, then two more at the same moment
    (approve/approve or approve/deny); faults anywhere."""
    r = run.rng
    arm(run, r.randint(1, 3))
    run.request("alice", "prod admin 2h incident 4521", "a")
    first, second, third = r.sample(["bob", "carol", "dave"], 3)
    run.clock.advance(MIN)
    run.click(first, "a")
    run.clock.advance(MIN)
    second_action = "approve_request" if r.random() < 0.7 else "deny_request"
    run.together(lambda s: run.click(second, "a", svc=s),
                 lambda s: run.click(third, "a", second_action, svc=s))
    run.past_expiry = r.random() < 0.5


def revoke_race(run: Run) -> None:
    """The final approval and alice's revoke at the same moment (or just after it)."""
    r = run.rng
    run.request("alice", "prod admin 1h incident 4521", "a")
    run.clock.advance(MIN)
    run.click("dave", "a")
    arm(run, r.randint(1, 3))
    run.clock.advance(MIN)
    run.together(lambda s: run.click("carol", "a", svc=s), lambda s: run.revoke("alice", "a", svc=s),
                 offsets=(0.0, r.choice([0.0, 0.02, 0.05, 0.1])))
    run.past_expiry = r.random() < 0.5


def sweep_vs_approval(run: Run) -> None:
    """The sweep's reconcile meets a final approval: its IAM listing is slow (ListPolicies
    delayed), and the approval (and its grant) land in between. Sometimes two sweeps."""
    r = run.rng
    _granted(run, "bob", "prod readonly 8h on call", "b", ("carol",))  # another live grant
    run.clock.advance(MIN)
    run.request("alice", "prod admin 2h incident 4521", "a")
    run.clock.advance(MIN)
    run.click("dave", "a")
    run.clock.advance(MIN)
    slow = r.choice([0.6, 1.0, 1.5])
    run.world.aws.add("iam:ListPolicies", delay(slow), count=1, name="slow IAM listing")
    run.note(f"fault: iam:ListPolicies -> delay {slow}s x1")
    if r.random() < 0.3:
        arm(run, 1, services=("slack",), kinds=("delay", "error"))
    start = r.choice([0.1, 0.2, 0.3])
    acts = [lambda s: run.sweep(svc=s), lambda s: run.click("carol", "a", svc=s)]
    offsets = [0.0, start]
    if r.random() < 0.3:
        acts.append(lambda s: run.sweep(svc=s))
        offsets.append(r.choice([0.0, 0.05]))
    run.together(*acts, offsets=tuple(offsets))
    run.past_expiry = r.random() < 0.3


def two_sweeps(run: Run) -> None:
    """Two sweeps at once at alice's expiry (one overran its minute), sometimes with bob
    revoking his own grant at the same moment; faults anywhere."""
    r = run.rng
    _granted(run, "alice", "prod admin 1h incident 4521", "a", ("bob", "carol"))
    run.clock.advance(MIN)
    _granted(run, "bob", "prod readonly 2h on call", "b", ("dave",))
    run.clock.advance(MIN)
    run.request("alice", "prod readonly 1h reading logs", "c")  # pending: expires in the sweep
    arm(run, r.randint(1, 3))
    expires = run.world.store.get(run.rids["a"]).expires_at if "a" in run.rids else run.clock.now
    run.clock.set(max(expires, run.clock.now + MIN) + timedelta(seconds=30))
    acts = [lambda s: run.sweep(svc=s), lambda s: run.sweep(svc=s)]
    if r.random() < 0.5:
        acts.append(lambda s: run.revoke("bob", "b", svc=s))
    run.together(*acts, offsets=tuple(r.choice([0.0, 0.01, 0.03]) for _ in acts))
    run.past_expiry = r.random() < 0.5


def iam_outage(run: Run) -> None:
    """IAM fails from the final approval until the grant is given up (3 attempts: the grant job,
    then the sweep's retries), and Slack fails at that moment too."""
    r = run.rng
    run.request("alice", "prod admin 2h incident 4521", "a")
    run.clock.advance(MIN)
    run.click("bob", "a")
    kind = r.choice([error(500, code="ServiceFailure"), throttle(), drop()])
    run.world.aws.add("iam:*", kind, name="IAM down")
    run.note(f"fault: iam:* -> {kind.describe()} (until recovery)")
    whole = r.random() < 0.3

    def slack_down():
        for method in ("chat.postMessage", "chat.update", "chat.delete"):
            action = r.choice([slack_error("fatal_error"), error(500), drop()])
            run.world.slack.add(f"slack:{method}", action, name="Slack down")
            run.note(f"fault: slack:{method} -> {action.describe()} (until recovery)")

    if whole:
        slack_down()
    run.clock.advance(MIN)
    run.click("carol", "a")  # attempt 1 (the worker's grant job)
    for attempt in (2, 3):
        run.clock.advance(2 * MIN)
        if attempt == 3 and not whole:
            slack_down()  # the moment the grant is given up
        run.sweep()
    run.past_expiry = r.random() < 0.3


def slack_lost_responses(run: Run) -> None:
    """Slack accepts a post but the answer never comes back (slack-sdk retries it): the whole
    lifecycle, CloudTrail calls included, under lost responses."""
    r = run.rng
    p = r.choice([0.3, 0.5, 0.8])
    run.world.slack.add("slack:chat.postMessage", lose_response(), probability=p, name="answer lost")
    run.note(f"fault: slack:chat.postMessage -> lose_response p={p}")
    if r.random() < 0.3:
        arm(run, 1, services=("slack",), kinds=("lose_response", "delay"))
    run.request("alice", "prod admin 2h incident 4521", "a")
    run.clock.advance(MIN)
    run.click("bob", "a")
    run.clock.advance(MIN)
    if r.random() < 0.5:
        run.together(lambda s: run.click("carol", "a", svc=s), lambda s: run.click("dave", "a", svc=s))
    else:
        run.click("carol", "a")
    run.clock.advance(MIN)
    for _ in range(r.randint(1, 2)):
        a, b = run.assume_role_call(run.clock.now - timedelta(seconds=10))
        run.together(lambda s: run.deliver(a, svc=s), lambda s: run.deliver(b, svc=s))
    if r.random() < 0.5:
        run.clock.advance(MIN)
        run.revoke("alice", "a")
    else:
        req = run.world.store.get(run.rids["a"]) if "a" in run.rids else None
        if req is not None and req.expires_at is not None:
            run.clock.set(req.expires_at + timedelta(seconds=30))
        run.sweep()
    run.past_expiry = True


def cloudtrail(run: Run) -> None:
    """AssumeRole calls (covered and not), both copies at once and EventBridge redeliveries,
    while DynamoDB and Slack fail."""
    r = run.rng
    run.request("alice", "prod admin 2h incident 4521", "a")
    run.clock.advance(MIN)
    before = run.clock.now - timedelta(seconds=5)  # made before any grant: "NO APPROVED GRANT"
    run.click("bob", "a")
    run.clock.advance(MIN)
    run.click("carol", "a")
    arm(run, r.randint(1, 3), services=("dynamodb", "slack"))
    run.clock.advance(MIN)
    events = []
    for i in range(r.randint(1, 3)):
        at = before if i == 0 and r.random() < 0.4 else run.clock.now - timedelta(seconds=10 + i)
        events.append(run.assume_role_call(at))
    for a, b in events:
        acts = [lambda s, e=a: run.deliver(e, svc=s), lambda s, e=b: run.deliver(e, svc=s)]
        if r.random() < 0.4:  # EventBridge delivers one copy twice, at once
            acts.append(lambda s, e=r.choice((a, b)): run.deliver(e, svc=s))
        run.together(*acts)
    run.past_expiry = r.random() < 0.3


def aws_lost_responses(run: Run) -> None:
    """DynamoDB and IAM act but their answers are lost or the connection drops (the SDK retries):
    the whole lifecycle with a revoke or the expiry."""
    r = run.rng
    for _ in range(r.randint(1, 2)):
        service = r.choice(["dynamodb", "iam"])
        target = f"{service}:{r.choice(AWS_TARGETS[service])}"
        action = r.choice([lose_response(), lose_response(), drop()])
        p = r.choice([0.1, 0.2, 0.4])
        run.world.aws.add(target, action, probability=p, name="answer lost")
        run.note(f"fault: {target} -> {action.describe()} p={p}")
    run.request("alice", "prod admin 2h incident 4521", "a")
    run.clock.advance(MIN)
    run.click("bob", "a")
    run.clock.advance(MIN)
    run.click("carol", "a")
    run.clock.advance(MIN)
    a, b = run.assume_role_call(run.clock.now - timedelta(seconds=10))
    run.together(lambda s: run.deliver(a, svc=s), lambda s: run.deliver(b, svc=s))
    run.clock.advance(MIN)
    if r.random() < 0.5:
        run.revoke("alice", "a")
    else:
        req = run.world.store.get(run.rids["a"]) if "a" in run.rids else None
        if req is not None and req.expires_at is not None:
            run.clock.set(req.expires_at + timedelta(seconds=30))
        run.sweep()
    run.past_expiry = r.random() < 0.5


def mixed(run: Run) -> None:
    """Everything at once: two requesters, racing approvals, a sweep during an approval, a
    revoke, CloudTrail calls, two sweeps; 1-4 faults of any kind anywhere."""
    r = run.rng
    arm(run, r.randint(1, 4))
    run.request("alice", "prod admin 2h incident 4521", "a")
    run.request("bob", "prod readonly 1h on call", "b")
    run.clock.advance(MIN)
    run.together(lambda s: run.click("bob", "a", svc=s), lambda s: run.click("carol", "b", svc=s))
    run.clock.advance(MIN)
    run.together(lambda s: run.click("carol", "a", svc=s), lambda s: run.sweep(svc=s),
                 offsets=(r.choice([0.0, 0.05]), r.choice([0.0, 0.05])))
    run.clock.advance(MIN)
    a, b = run.assume_role_call(run.clock.now - timedelta(seconds=15))
    run.together(lambda s: run.deliver(a, svc=s), lambda s: run.deliver(b, svc=s))
    run.clock.advance(MIN)
    if r.random() < 0.5:
        run.together(lambda s: run.revoke("alice", "a", svc=s), lambda s: run.sweep(svc=s))
    req = run.world.store.get(run.rids["b"]) if "b" in run.rids else None
    if req is not None and req.expires_at is not None:
        run.clock.set(req.expires_at + timedelta(seconds=30))
    run.together(lambda s: run.sweep(svc=s), lambda s: run.sweep(svc=s))
    run.past_expiry = r.random() < 0.5


def extend_race(run: Run) -> None:
    """alice extends her grant; bob approves the extension at the old expiry's edge, against
    the sweep at that moment (and sometimes alice's revoke); faults anywhere."""
    r = run.rng
    _granted(run, "alice", "prod admin 1h incident 4521", "a", ("bob", "carol"))
    run.clock.advance(MIN)
    run.extend("alice", "a", r.choice(["30m still on it", "2h still on it", "7h more than the cap allows"]))
    arm(run, r.randint(1, 3))
    req = run.world.store.get(run.rids["a"]) if "a" in run.rids else None
    if req is not None and req.expires_at is not None:
        run.clock.set(req.expires_at - timedelta(seconds=r.choice([1, 2, 5])))
    acts = [lambda s: run.click("bob", "a", "approve_extension", svc=s), lambda s: run.sweep(svc=s)]
    offsets = [0.0, r.choice([0.0, 0.02, 0.1, 0.3])]
    if r.random() < 0.3:
        acts.append(lambda s: run.revoke("alice", "a", svc=s))
        offsets.append(r.choice([0.0, 0.05]))
    run.together(*acts, offsets=tuple(offsets))
    run.clock.advance(timedelta(seconds=r.choice([10, 30, 90])))  # past the old expiry
    run.sweep()
    run.past_expiry = r.random() < 0.5


def extend_vs_expiry(run: Run) -> None:
    """bob approved alice's extension before her grant's expiry, but its worker died; at the
    old expiry the sweep (which ends grants) and the extension's job run at the same moment,
    IAM slow in between (the switch, or the removal), sometimes a second sweep too."""
    from chalicelib.slack.parse import Click
    from chalicelib.usecases import jobs as job_types

    r = run.rng
    _granted(run, "alice", "prod admin 1h incident 4521", "a", ("bob", "carol"))
    run.clock.advance(MIN)
    run.extend("alice", "a", r.choice(["30m still on it", "2h still on it"]))
    rid = run.rids.get("a")
    req = run.world.store.get(rid) if rid else None
    if req is None or req.extension is None:
        return
    run.clock.set(req.expires_at - timedelta(seconds=r.choice([5, 20])))
    svc = run.service()
    follow = svc.click(Click("approve_extension", rid, run.catalog.people["bob"].slack_user, APPROVALS, "1.1"))
    run.note(f"bob approves the extension of {rid}; its worker dies before the IAM switch")
    svc.run_all([j for j in follow if not isinstance(j, job_types.ExtendGrant)], on_error=run._on_error("click"))
    slow = r.choice([0.3, 0.8, 1.5])
    where = r.choice(["iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:DetachUserPolicy"])
    run.world.aws.add(where, delay(slow), count=1, name=f"slow {where}")
    run.note(f"fault: {where} -> delay {slow}s x1")
    if r.random() < 0.4:
        arm(run, 1)
    run.clock.set(req.expires_at + timedelta(seconds=r.choice([1, 30, 120])))

    def apply(s) -> None:
        run.note(f"the extension's job runs again for {rid}")
        s.run_all([job_types.ExtendGrant(rid, req.extension.n)], on_error=run._on_error("extend job"))

    acts = [lambda s: run.sweep(svc=s), apply]
    offsets = [0.0, r.choice([0.0, 0.05, 0.2, 0.5])]
    if r.random() < 0.3:
        acts.append(lambda s: run.sweep(svc=s))
        offsets.append(r.choice([0.1, 0.6]))
    run.together(*acts, offsets=tuple(offsets))
    run.past_expiry = r.random() < 0.5


SCENARIOS: dict[str, Callable[[Run], None]] = {
    "approvals": approvals,
    "revoke-race": revoke_race,
    "sweep-vs-approval": sweep_vs_approval,
    "two-sweeps": two_sweeps,
    "iam-outage": iam_outage,
    "slack-lost-responses": slack_lost_responses,
    "cloudtrail": cloudtrail,
    "aws-lost-responses": aws_lost_responses,
    "mixed": mixed,
    "extend-race": extend_race,
    "extend-vs-expiry": extend_vs_expiry,
}
