"""Fault injection, a tiny driver and the invariants for the resilience suite.

Faults are injected *below* the app's own retry machinery, so what is tested is
what production would do:

* **AWS** - every client the app builds goes through ``chalicelib.wiring.aws_client``;
  the suite wraps it and registers a botocore ``before-call`` hook on the result, which
  counts *logical* calls (one per operation call or paginator page) and tags a chosen
  call with a header. The tagged call's *attempts* are then answered with a canned AWS
  error response (IAM: XML ``Throttling`` / 500 ``ServiceFailure``; DynamoDB: JSON
  ``ProvisionedThroughputExceededException`` / 500 ``InternalServerError``) at moto's
  ``before-send`` entry point, without executing them. (A ``before-send`` handler of
  our own could not do it: botocore calls every ``before-send`` handler, so moto would
  still execute the request we pretend failed.) The canned response goes through
  botocore's real parser and its real standard-mode retries (``max_attempts=4`` as
  wired; botocore counts that as retries, so 5 attempts); only the back-off *sleep* is
  zero. A transient fault fails one attempt (the retry recovers it); a persistent one
  fails every attempt (the app sees the ``ClientError``). ``stale`` rewrites a
  successful answer instead (IAM's eventual consistency).
* **Slack** - the WebClient is the app's own (``wiring.slack_client``, with its
  retry handlers); a wrapper around its ``api_call`` counts logical Slack calls and
  queues faults in the Slack stand-in (``fail_next``) just before the chosen call,
  so slack-sdk's ``RateLimitErrorRetryHandler`` / ``ServerErrorRetryHandler`` see
  real 429 (with ``Retry-After``) and 500 answers. Their sleeps are recorded, not
  slept: a 429 cell asserts the recorded sleep honoured ``Retry-After``.

A *step* is one logical I/O call in a flow, numbered in the order the fault-free
flow makes them, and labelled with the phase it belongs to (``ack`` for the HTTP
handler, else the job kind, ``sweep``, ``reconcile`` or ``alert``).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable, Optional

from chalicelib.domain.model import GrantStatus, LIVE_GRANT, RequestStatus

APPROVALS, SECURITY = "C0APPROVE1", "C0SECURIT1"
RESULTS: list = []  # CellResult rows of the fault matrix (printed by conftest.py)
RACES: list = []  # (scenario, run, outcome) of the race tests (printed by conftest.py)
DRAWBRIDGE_PATH = "/drawbridge/"


# --------------------------------------------------------------------------- fault kinds
@dataclass(frozen=True)
class FaultKind:
    key: str
    label: str
    persistent: bool  # fails every attempt of a call (beyond the client's retries)
    outage: bool  # ... and every later call of the same operation, until recovery
    aws: dict  # service -> (HTTP status, error code)
    slack: dict  # fail_next(...) arguments queued before one logical Slack call

    def describe(self, target: str) -> str:
        service = target.split(".", 1)[0]
        if service == "slack":
            s = self.slack
            what = (f"ok:false {s['error']}" if "error" in s
                    else f"HTTP {s['status']}" + (f" Retry-After {s['retry_after']}" if s["status"] == 429 else ""))
            n = s.get("times", 1)
            return f"{what} x{n}" if n > 1 else what
        status, code = self.aws[service]
        return f"{code} ({status})"


TRANSIENT = FaultKind(
    "transient", "one attempt fails; the client's own retry must absorb it", False, False,
    {"iam": (400, "Throttling"), "dynamodb": (400, "ProvisionedThroughputExceededException")},
    {"times": 1, "status": 429, "retry_after": 3})
BLIP = FaultKind(
    "blip", "one call fails through all its retries; later calls work", True, False,
    {"iam": (500, "ServiceFailure"), "dynamodb": (500, "InternalServerError")},
    {"times": 3, "status": 500})  # 1 try + 2 retries (ServerErrorRetryHandler(max_retry_count=2))
OUTAGE = FaultKind(
    "outage", "this and every later call of the operation fail until recovery", True, True,
    {"iam": (400, "Throttling"), "dynamodb": (400, "ProvisionedThroughputExceededException")},
    {"times": 1, "error": "fatal_error"})  # ok:false is never retried by slack-sdk
KINDS = {k.key: k for k in (TRANSIENT, BLIP, OUTAGE)}


def _aws_error(service: str, status: int, code: str, url: str):
    from botocore.awsrequest import AWSResponse
    from moto.core.botocore_stubber import MockRawResponse

    if service == "dynamodb":  # JSON 1.0 protocol
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}",
                           "message": f"injected {code}"}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "injected"}
    else:  # query protocol (IAM)
        body = (f"<ErrorResponse><Error><Type>{'Sender' if status < 500 else 'Receiver'}</Type>"
                f"<Code>{code}</Code><Message>injected {code}</Message></Error>"
                f"<RequestId>injected</RequestId></ErrorResponse>").encode()
        headers = {"Content-Type": "text/xml"}
    return AWSResponse(url, status, headers, MockRawResponse(body))


@dataclass(frozen=True)
class Step:
    index: int
    phase: str
    target: str  # "dynamodb.GetItem", "iam.CreatePolicy", "slack.chat.update"
    instance: int = 0  # which run of the phase (a flow may run the same job twice)

    @property
    def label(self) -> str:
        return f"{self.index:02d} {self.phase:<22} {self.target}"


class Injector:
    """Counts logical I/O calls of the app and fails the chosen ones."""

    def __init__(self, standin):
        self.standin = standin
        self.phase = "setup"
        self.phase_instance = 0
        self.recording = False
        self.trace: list[Step] = []
        self.plan: Optional[tuple[int, FaultKind]] = None
        self.down: set[str] = set()
        self.down_services: set[str] = set()
        self.stale: dict[str, Callable] = {}  # target -> rewrite of its parsed answer (eventual consistency)
        self.fired: list[Step] = []
        self.slack_sleeps: list[float] = []
        self.aws_retries = 0
        self._attempt_faults: dict[str, list] = {}
        self._next_id = 0
        self._instances = 0
        self._lock = threading.Lock()

    def next_instance(self) -> int:
        with self._lock:
            self._instances += 1
            return self._instances

    # -- control --------------------------------------------------------------------
    def start(self, plan: Optional[tuple[int, FaultKind]] = None) -> None:
        self.trace, self.fired, self.down, self.down_services = [], [], set(), set()
        self.plan, self.recording = plan, True
        self.slack_sleeps = []

    def take_down(self, service: str, kind: "FaultKind") -> None:
        """Every call to ``service`` (e.g. "iam") fails with ``kind`` until clear()."""
        self.recording = True
        self.plan = (-1, kind)
        self.down_services = getattr(self, "down_services", set()) | {service}

    def clear(self) -> None:
        """Recovery: every fault is gone (what was armed and not consumed is dropped)."""
        self.recording, self.plan, self.down, self.down_services = False, None, set(), set()
        self.stale = {}

    def _decide(self, target: str) -> Optional[FaultKind]:
        if not self.recording:
            return None
        step = Step(len(self.trace), self.phase, target, self.phase_instance)
        self.trace.append(step)
        if self.plan is None:
            return None
        at, kind = self.plan
        if step.index == at or target in self.down or target.split(".", 1)[0] in self.down_services:
            self.fired.append(step)
            if kind.outage:
                self.down.add(target)
            return kind
        return None

    # -- AWS (botocore hooks) -------------------------------------------------------
    # botocore calls *every* before-send handler (moto's in-process stubber is one), so a
    # handler of ours could not stop moto from executing a request we pretend failed.
    # Instead before-call tags a chosen call with a header, and the stubber's entry point
    # (wrapped in install()) answers that call's first attempt(s) with the canned error
    # without executing it. Untagged requests (the suite's own clients) pass untouched.
    FAULT_HEADER = "x-resilience-fault"

    def attach(self, client) -> None:
        client.meta.events.register_first("before-call", self._before_call)
        client.meta.events.register("after-call", self._after_call)

    def _after_call(self, event_name: str, parsed: dict, **_):
        """Stale reads: ``self.stale[target](parsed)`` rewrites a successful answer in place."""
        _, service, op = event_name.split(".", 2)
        rewrite = self.stale.get(f"{service}.{op}")
        if rewrite is not None and "Error" not in parsed:
            rewrite(parsed)

    def _before_call(self, event_name: str, params: dict, **_):
        _, service, op = event_name.split(".", 2)
        kind = self._decide(f"{service}.{op}")
        if kind is None:
            return
        with self._lock:
            self._next_id += 1
            fid = str(self._next_id)
            self._attempt_faults[fid] = [10**6 if kind.persistent else 1, service, *kind.aws[service]]
        params.setdefault("headers", {})[self.FAULT_HEADER] = fid

    def canned_failure(self, request):
        """The injected answer for this attempt of a tagged request, else None."""
        fid = request.headers.get(self.FAULT_HEADER)
        if fid is None:
            return None
        fid = fid.decode() if isinstance(fid, bytes) else fid
        with self._lock:
            fault = self._attempt_faults.get(fid)
            if not fault or fault[0] <= 0:
                return None
            fault[0] -= 1
        _, service, status, code = fault
        return _aws_error(service, status, code, request.url)

    # -- Slack (WebClient.api_call wrapper) -------------------------------------------
    def wrap_slack(self, client):
        real = client.api_call

        def api_call(api_method: str, **kwargs):
            kind = self._decide(f"slack.{api_method}")
            if kind is not None:
                self.standin.fail_next(api_method, **kind.slack)
            return real(api_method, **kwargs)

        client.api_call = api_call
        return client


def install(monkeypatch, injector: Injector) -> None:
    """Route the app's clients through the injector; make retries instant; label phases."""
    import botocore.retries.standard as std
    import slack_sdk.http_retry.builtin_handlers as slack_builtin
    from moto.core.botocore_stubber import BotocoreStubber
    import slack_sdk.http_retry.handler as slack_handler

    from chalicelib import wiring
    from chalicelib.usecases import alert, dispatch, sweep
    from chalicelib.usecases.jobs import as_job

    real_aws, real_slack = wiring.aws_client, wiring.slack_client

    def aws_client(name: str):
        client = real_aws(name)
        injector.attach(client)
        return client

    monkeypatch.setattr(wiring, "aws_client", aws_client)
    monkeypatch.setattr(wiring, "slack_client",
                        lambda token, url, **kw: injector.wrap_slack(real_slack(token, url, **kw)))

    real_stub = BotocoreStubber.__call__

    def stub(self, event_name, request, **kwargs):
        return injector.canned_failure(request) or real_stub(self, event_name, request, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", stub)

    def no_backoff(self, context):
        injector.aws_retries += 1
        return 0

    monkeypatch.setattr(std.ExponentialBackoff, "delay_amount", no_backoff)
    recorded = SimpleNamespace(sleep=lambda s: injector.slack_sleeps.append(s))
    monkeypatch.setattr(slack_builtin, "time", recorded)
    monkeypatch.setattr(slack_handler, "time", recorded)

    def phased(name_of: Callable, fn: Callable):
        def wrapper(*args, **kwargs):
            before = injector.phase, injector.phase_instance
            injector.phase = name_of(*args, **kwargs)
            injector.phase_instance = injector.next_instance()
            try:
                return fn(*args, **kwargs)
            finally:
                injector.phase, injector.phase_instance = before
        return wrapper

    def job_name(deps, job):
        job = as_job(job)
        event_type = getattr(job, "event_type", "")
        return f"{job.kind}:{event_type}" if event_type and job.kind in ("card", "dm") else job.kind

    # The use cases call each other through these module attributes, so patching them
    # labels every run of a job, a sweep, a reconcile and an alert.
    monkeypatch.setattr(dispatch, "run", phased(job_name, dispatch.run))
    monkeypatch.setattr(sweep, "sweep", phased(lambda *a, **k: "sweep", sweep.sweep))
    monkeypatch.setattr(sweep, "reconcile", phased(lambda *a, **k: "reconcile", sweep.reconcile))
    monkeypatch.setattr(alert, "handle", phased(lambda *a, **k: "alert", alert.handle))


# --------------------------------------------------------------------------- observing
@dataclass
class Snapshot:
    """Everything the invariants look at: the table, IAM and Slack."""

    requests: dict  # request id -> Request
    history: dict  # request id -> [AuditEvent]
    attached: dict  # request id -> [IAM users the drawbridge policy is attached to]
    policies: set  # request ids that still have a /drawbridge/ policy at all
    messages: list  # stand-in Messages (current versions)
    security: list
    dms: list
    digests: dict = field(default_factory=dict)  # burst digest key -> the call keys it shows
    cutoffs: dict = field(default_factory=dict)  # role ARN -> (role id, cut-off policy document); chaos only
    expiries: dict = field(default_factory=dict)  # request id -> its grant policy's default-version expiry; chaos only


def digest_members(store) -> dict:
    from chalicelib.adapters.alert_calls import digest_from_item

    items, kwargs = [], {}
    while True:
        page = store._db.scan(TableName=store._table, FilterExpression="SK = :d",
                              ExpressionAttributeValues={":d": {"S": "DIGEST"}}, **kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return {d["key"]: d["member_keys"] for d in map(digest_from_item, items)}
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def all_requests(store) -> list:
    from chalicelib.adapters.store import _request

    items, kwargs = [], {}
    while True:
        page = store._db.scan(TableName=store._table, FilterExpression="SK = :r",
                              ExpressionAttributeValues={":r": {"S": "REQUEST"}}, **kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return sorted((_request(i) for i in items), key=lambda r: r.created_at)
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def drawbridge_policies(iam) -> dict:
    """request id -> users it is attached to, for every /drawbridge/drawbridge-<id> policy."""
    out = {}
    for page in iam.get_paginator("list_policies").paginate(Scope="Local", PathPrefix=DRAWBRIDGE_PATH):
        for p in page["Policies"]:
            if not p["PolicyName"].startswith("drawbridge-"):
                continue
            users = [u["UserName"] for u in iam.list_entities_for_policy(
                PolicyArn=p["Arn"], EntityFilter="User")["PolicyUsers"]]
            out[p["PolicyName"][len("drawbridge-"):]] = users
    return out


def grant_expiries(iam) -> dict:
    """request id -> the ``aws:CurrentTime`` expiry of its grant policy's default version."""
    from chalicelib import policy as pol

    out = {}
    for page in iam.get_paginator("list_policies").paginate(Scope="Local", PathPrefix=DRAWBRIDGE_PATH):
        for p in page["Policies"]:
            if p["PolicyName"].startswith("drawbridge-"):
                doc = iam.get_policy_version(PolicyArn=p["Arn"], VersionId=p["DefaultVersionId"])
                doc = doc["PolicyVersion"]["Document"]
                out[p["PolicyName"][len("drawbridge-"):]] = pol.expiry_of(json.loads(doc) if isinstance(doc, str)
                                                                          else doc)
    return out


def scrub_iam(iam) -> None:
    """Remove every Drawbridge policy (a cell starts from clean IAM)."""
    for page in iam.get_paginator("list_policies").paginate(Scope="Local", PathPrefix=DRAWBRIDGE_PATH):
        for p in page["Policies"]:
            for u in iam.list_entities_for_policy(PolicyArn=p["Arn"], EntityFilter="User")["PolicyUsers"]:
                iam.detach_user_policy(UserName=u["UserName"], PolicyArn=p["Arn"])
            iam.delete_policy(PolicyArn=p["Arn"])


def snapshot(store, iam, standin, with_history: bool = False) -> Snapshot:
    reqs = {r.request_id: r for r in all_requests(store)}
    policies = drawbridge_policies(iam)
    msgs = standin.messages()
    granted_dm = {m.event_payload.get("request_id") for m in msgs if m.event_type == "access_granted"}
    return Snapshot(
        requests=reqs,
        history={rid: store.history(rid) for rid in reqs if rid in granted_dm or with_history},
        attached={rid: users for rid, users in policies.items() if users},
        policies=set(policies),
        messages=msgs,
        security=[m for m in msgs if m.channel == SECURITY],
        dms=[m for m in msgs if m.channel.startswith("D")],
        digests=digest_members(store),
    )


def is_terminal(req) -> bool:
    if req.status is RequestStatus.PENDING:
        return False
    return req.grant_status not in LIVE_GRANT


# --------------------------------------------------------------------------- invariants
INVARIANTS = {
    "I1": "every IAM grant Drawbridge made has an ACTIVE record",
    "I2": "every ACTIVE record has its IAM grant (a FAILED one was told to #security)",
    "I3": "every grant is gone by expiry + one sweep period",
    "I4": "no request is non-terminal past its window",
    "I5": "nobody is DMed 'granted' unless granted (and at most once)",
    "I7": "no false alarm: #security never hears a grant 'vanished' when only Drawbridge touched IAM",
}


def check_consistent(s: Snapshot) -> dict[str, list[str]]:
    """I1, I2, I5: IAM and the table agree; no false 'granted'."""
    bad: dict[str, list[str]] = {"I1": [], "I2": [], "I5": [], "I7": []}
    for rid, users in s.attached.items():
        req = s.requests.get(rid)
        if req is None or req.grant_status is not GrantStatus.ACTIVE:
            bad["I1"].append(f"{rid} attached to {users} but record is "
                             f"{req.grant_status.value if req else 'missing'}")
        elif users != [req.iam_user]:
            bad["I1"].append(f"{rid} attached to {users}, expected [{req.iam_user}]")
    for rid, req in s.requests.items():
        if req.grant_status is GrantStatus.ACTIVE and req.iam_user not in s.attached.get(rid, []):
            bad["I2"].append(f"{rid} ACTIVE without its policy")
        if req.grant_status is GrantStatus.FAILED and not any(
                m.event_type == "grant_failed" and m.event_payload.get("request_id") == rid for m in s.security):
            bad["I2"].append(f"{rid} FAILED but #security was not told")
    granted_dms: dict[str, int] = {}
    for m in s.dms:
        if m.event_type != "access_granted":
            continue
        rid = m.event_payload.get("request_id")
        granted_dms[rid] = granted_dms.get(rid, 0) + 1
        actions = [e.action for e in s.history.get(rid, [])]
        if "granted" not in actions:
            bad["I5"].append(f"{rid}: 'granted' DM but the grant never became ACTIVE")
        if not m.text.startswith("Access granted"):
            bad["I5"].append(f"{rid}: DM tagged access_granted says {m.text[:60]!r}")
    bad["I5"] += [f"{rid}: {n} 'granted' DMs" for rid, n in granted_dms.items() if n > 1]
    bad["I7"] = [f"{m.event_payload.get('request_id')}: {m.text[:90]!r}" for m in s.security
                 if m.event_type == "grant_failed" and "outside Drawbridge" in m.text]
    return {k: v for k, v in bad.items() if v}


def check_settled(s: Snapshot) -> dict[str, list[str]]:
    """I3, I4 (plus I1/I2/I5 again) once every window has passed and the sweep has run."""
    bad = check_consistent(s)
    i3 = [f"{rid} still has its policy (attached to {s.attached.get(rid, [])})" for rid in sorted(s.policies)]
    i4 = [f"{rid} still {r.status.value}/{r.grant_status.value}" for rid, r in s.requests.items()
          if not is_terminal(r)]
    if i3:
        bad["I3"] = i3
    if i4:
        bad["I4"] = i4
    return bad


def card_disagreements(s: Snapshot, catalog) -> list[str]:
    """The card must show (text and metadata) the table's final state."""
    from chalicelib.slack import views

    people = {k: p.slack_user for k, p in catalog.people.items()}
    out = []
    for rid, req in s.requests.items():
        cards = [m for m in s.messages if m.channel == APPROVALS and not m.thread_ts
                 and m.event_payload.get("request_id") == rid]
        if len(cards) != 1:
            out.append(f"{rid}: {len(cards)} cards")
            continue
        card = cards[0]
        role = catalog.find_role(req.account, req.role)
        text, blocks = views.card(req, people, role.approvers)
        want = expected_card_event(req)
        if card.text != text or card.blocks != blocks:
            out.append(f"{rid}: card text {card.text!r} but table renders {text!r}")
        if card.event_type != want:
            out.append(f"{rid}: card metadata {card.event_type} but table state "
                       f"{req.status.value}/{req.grant_status.value} means {want}")
    return out


def expected_card_event(req) -> str:
    g = req.grant_status
    if g is GrantStatus.ACTIVE:
        return "access_granted"
    if g in (GrantStatus.REVOKING, GrantStatus.REVOKED, GrantStatus.FAILED):
        return "access_revoked"
    if g is GrantStatus.EXPIRED:
        return "access_expired"
    if g is GrantStatus.GRANTING:
        return "access_approved"
    return {RequestStatus.DENIED: "access_denied", RequestStatus.CANCELLED: "access_revoked",
            RequestStatus.EXPIRED: "access_expired"}.get(
        req.status, "access_approved" if req.approvals else "access_requested")


def duplicate_transitions(history) -> list[str]:
    """Audit events that repeat a transition (same action, from and to) of one request."""
    seen, dups = set(), []
    for e in history:
        key = (e.action, e.from_status, e.to_status)
        if key in seen and e.action != "grant_attempt_failed":
            dups.append(f"{e.action} {e.from_status}->{e.to_status} twice")
        seen.add(key)
    return dups


@dataclass
class CellResult:
    group: str  # the flow that ran (approve's job steps show as flow "grant")
    index: int
    flow: str
    step: str
    fault: str
    fault_desc: str
    outcome: str
    broken: dict = field(default_factory=dict)

    @property
    def held(self) -> bool:
        return not self.broken
