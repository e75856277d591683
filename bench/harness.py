"""The benchmarks' shared parts: rows of the table, the in-process stack, call meters.

* ``Row``: one line of the printed table (metric, figure, goal, met?).
* ``Meter``: counts and times AWS calls (``BaseClient._make_api_call``) and Slack Web
  API calls (``slack_sdk`` ``api_call``) while a window is open, and how much of the AWS
  time was spent inside moto's request handling (in-process moto is the "server").
* ``_cheap_moto()``: removes two moto costs that grow with the table where DynamoDB's
  do not (see its docstring); ``settle()``: keeps the set-up out of garbage collections.
* ``stack()``: moto in-process seeded from the sample catalog, the Slack stand-in
  over HTTP, and ``chalice.test.Client`` over ``app.py`` - the same set-up as
  tests/conftest.py, without pytest. With ``in_lambda=True`` the app believes it
  runs in Lambda (``AWS_LAMBDA_FUNCTION_NAME``): ``handlers.defer`` invokes the
  worker function asynchronously (moto's Lambda without docker accepts the call and
  drops it), and the stack keeps the jobs so the benchmark can run them afterwards,
  outside any timing, through the app's own ``worker`` handler.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import io
import json
import os
import statistics
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from local import slack_client

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "policies" / "access.toml"
FIXTURES = ROOT / "tests" / "fixtures"  # the project's own (tests/fixtures/README.md)
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-test-token"
TABLE = "drawbridge-bench"
FUNCTION = "drawbridge-dev"  # the API handler's name as Lambda would set it
WORKER = f"{FUNCTION}-worker"  # what wiring.settings() derives from it

YES, NO, INFO, NA = "yes", "no", "—", "n/a"


# ---- the table ------------------------------------------------------------------------
@dataclass
class Row:
    metric: str
    figure: str
    goal: str = "—"
    met: str = INFO


def met(ok: bool | None) -> str:
    return NA if ok is None else (YES if ok else NO)


def markdown(rows: list[Row]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| Metric | Figure | Goal | Met? |", "| --- | --- | --- | --- |"]
    lines += [f"| {cell(r.metric)} | {cell(r.figure)} | {cell(r.goal)} | {cell(r.met)} |" for r in rows]
    return "\n".join(lines)


def ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def pct(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def fmt_counts(counts: Counter, empty: str = "none") -> str:
    """``dynamodb 2 (Query 1, TransactWriteItems 1), lambda 1 (Invoke)`` from 'svc.Op' keys."""
    if not counts:
        return empty
    by_service: dict[str, Counter] = {}
    for key, n in counts.items():
        service, _, op = key.partition(".")
        by_service.setdefault(service, Counter())[op] += n
    parts = []
    for service in sorted(by_service):
        ops = by_service[service]
        detail = ", ".join(f"{op} {n}" if n > 1 or len(ops) > 1 else op for op, n in sorted(ops.items()))
        parts.append(f"{service} {sum(ops.values())} ({detail})")
    return ", ".join(parts)


# ---- meters ------------------------------------------------------------------------------
@dataclass
class Window:
    aws: Counter = field(default_factory=Counter)  # "dynamodb.Query" -> n
    slack: Counter = field(default_factory=Counter)  # "slack.chat.postMessage" -> n (as the client sent them)
    aws_seconds: float = 0.0
    slack_seconds: float = 0.0
    moto_seconds: float = 0.0  # of aws_seconds: inside moto's request handling (the "server side")

    def calls(self) -> Counter:
        return self.aws + self.slack


class Meter:
    """Patches three call sites once; every open window sees every call made meanwhile."""

    def __init__(self) -> None:
        self._open: list[Window] = []
        self._installed = False

    def install(self) -> None:
        if self._installed:
            return
        import botocore.client
        import slack_sdk.web.base_client
        from moto.core.botocore_stubber import BotocoreStubber

        meter = self
        make_api_call = botocore.client.BaseClient._make_api_call
        api_call = slack_sdk.web.base_client.BaseClient.api_call
        process_request = BotocoreStubber.process_request

        def counted_make_api_call(client, operation_name, api_params):
            if not meter._open:
                return make_api_call(client, operation_name, api_params)
            key = f"{client.meta.service_model.service_name}.{operation_name}"
            t0 = time.perf_counter()
            try:
                return make_api_call(client, operation_name, api_params)
            finally:
                dt = time.perf_counter() - t0
                for w in meter._open:
                    w.aws[key] += 1
                    w.aws_seconds += dt

        def counted_api_call(client, api_method, **kwargs):
            if not meter._open:
                return api_call(client, api_method, **kwargs)
            t0 = time.perf_counter()
            try:
                return api_call(client, api_method, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                for w in meter._open:
                    w.slack[f"slack.{api_method}"] += 1
                    w.slack_seconds += dt

        def timed_process_request(stubber, request):
            if not meter._open:
                return process_request(stubber, request)
            t0 = time.perf_counter()
            try:
                return process_request(stubber, request)
            finally:
                dt = time.perf_counter() - t0
                for w in meter._open:
                    w.moto_seconds += dt

        botocore.client.BaseClient._make_api_call = counted_make_api_call
        slack_sdk.web.base_client.BaseClient.api_call = counted_api_call
        BotocoreStubber.process_request = timed_process_request
        _cheap_moto()
        self._installed = True

    @contextlib.contextmanager
    def window(self) -> Iterator[Window]:
        self.install()
        w = Window()
        self._open.append(w)
        try:
            yield w
        finally:
            self._open.remove(w)


METER = Meter()


def _cheap_moto() -> None:
    """moto snapshots the whole table with ``copy.deepcopy`` before every TransactWriteItems
    (to roll back a cancelled transaction): O(table) per write, seconds per call at 100k
    items. Here the snapshot is skipped and the rollback kept: the items the transaction
    touches are remembered before it runs and put back if it fails. (Real DynamoDB has
    no such cost, so this only removes an emulator artefact from the figures.)"""
    import moto.dynamodb.models as models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    class _NoSnapshot:
        @staticmethod
        def deepcopy(value, memo=None):
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(backend, transact_items):
        touched = []
        for item in transact_items:
            op_type, op = next(iter(item.items()))
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op["Item"] if op_type == "Put" else op.get("Key", {})
            if table.hash_key_attr not in key:
                continue
            h = DynamoType(key[table.hash_key_attr])
            r = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            if table.range_key_attr and table.range_key_attr not in key:
                continue
            touched.append((table, h, r, table.get_item(h, r)))
        models.copy = _NoSnapshot
        try:
            return original(backend, transact_items)
        except Exception:
            for table, h, r, before in reversed(touched):
                if r is None:
                    if before is None:
                        table.items.pop(h, None)
                    else:
                        table.items[h] = before
                elif before is None:
                    table.items.get(h, {}).pop(r, None)
                else:
                    table.items[h][r] = before
            raise
        finally:
            models.copy = copy

    models.DynamoDBBackend.transact_write_items = transact_write_items

    # moto's Query walks every item of the table and first sorts them all (slow Python
    # comparisons); the matches are sorted again afterwards, so inside a query the first
    # sort is wasted work: skip it there (Scan, whose paging relies on it, keeps it).
    all_items, query = Table.all_items, Table.query
    in_query = [0]

    def unsorted_all_items(table):
        if not in_query[0]:
            return all_items(table)
        if table.range_key_attr:
            return [item for hash_set in table.items.values() for item in hash_set.values()]
        return list(table.items.values())

    def query_without_presort(table, *args, **kwargs):
        in_query[0] += 1
        try:
            return query(table, *args, **kwargs)
        finally:
            in_query[0] -= 1

    Table.all_items = unsorted_all_items
    Table.query = query_without_presort


# ---- environment -----------------------------------------------------------------------------
_CLEARED = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "MOTO_ACCOUNT_ID",
            "AWS_LAMBDA_FUNCTION_NAME", "DRAWBRIDGE_WORKER_FUNCTION", "DRAWBRIDGE_PENDING_WINDOW",
            "DRAWBRIDGE_LOCAL_EMULATION")


def base_env() -> dict[str, str | None]:
    env: dict[str, str | None] = {k: None for k in _CLEARED}
    env.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="AKIAEXAMPLESEED00001",
               AWS_SECRET_ACCESS_KEY="seed", POWERTOOLS_DEV="false",
               DRAWBRIDGE_TABLE=TABLE, DRAWBRIDGE_CATALOG=str(CATALOG),
               SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET)
    return env


@contextlib.contextmanager
def patched_env(values: dict[str, str | None]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---- fixtures -----------------------------------------------------------------------------------
def load_cloudtrail(name: str) -> dict:
    return json.loads((FIXTURES / "cloudtrail" / f"{name}.json").read_text(encoding="utf-8"))


# ---- the in-process stack ----------------------------------------------------------------------
@dataclass
class Stack:
    client: Any  # chalice.test.Client
    slack: Any  # local.slack_standin.SlackStandin
    world: Any  # local.seed.World
    catalog: Any
    in_lambda: bool
    pending: list[dict] = field(default_factory=list)  # jobs handed to defer, not yet run

    # -- Slack's side --
    def slack_id(self, person: str) -> str:
        return self.catalog.people[person].slack_user

    def _post(self, path: str, body: str) -> tuple[int, Any]:
        resp = self.client.http.post(path, headers=slack_client.sign(body, SIGNING_SECRET), body=body)
        try:
            parsed = json.loads(resp.body) if resp.body else None
        except ValueError:
            parsed = resp.body
        return resp.status_code, parsed

    def command(self, person: str, text: str) -> tuple[int, Any]:
        return self._post("/slack/commands", slack_client.slash_body(self.slack_id(person), text))

    def click(self, person: str, action: str, request_id: str) -> tuple[int, Any]:
        return self._post("/slack/interactions", slack_client.click_body(self.slack_id(person), action, request_id))

    def approve(self, person: str, request_id: str) -> tuple[int, Any]:
        return self.click(person, "approve_request", request_id)

    # -- Lambda's side --
    def run_pending(self) -> None:
        """Run the jobs the acks deferred, as the async worker invocation would."""
        jobs, self.pending = self.pending, []
        if jobs:
            out = self.client.lambda_.invoke("worker", {"jobs": jobs, "correlation_id": "bench"}).payload
            if out.get("failed"):
                raise RuntimeError(f"worker jobs failed: {out}")

    def sweep(self) -> dict:
        event = self.client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])
        return self.client.lambda_.invoke("sweep", event).payload

    def role_assumed(self, event: dict) -> dict:
        return self.client.lambda_.invoke("on_role_assumed", event).payload

    def measure(self, fn: Callable[[], Any]) -> tuple[Any, float, Window]:
        """Run ``fn`` timed; the window's Slack counts are what the stand-in received."""
        before = len(self.slack.calls)
        out, dt, w = timed(fn)
        w.slack = Counter(f"slack.{c.method}" for c in self.slack.calls[before:])
        return out, dt, w

    # -- direct access --
    def store(self):
        from chalicelib import wiring

        return wiring.service().store

    def dynamodb(self):
        from local.seed import client

        return client("dynamodb", keys=self.world.service)

    def iam(self):
        from local.seed import client

        return client("iam", keys=self.world.service)


def create_worker_function(world, endpoint_url: str | None = None) -> None:
    """The async worker as a Lambda function moto knows (no docker: invokes are accepted, not run)."""
    from local.seed import client

    iam = client("iam", keys=world.service, endpoint_url=endpoint_url)
    role = iam.create_role(RoleName="drawbridge-bench-worker", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "lambda.amazonaws.com"}}]}))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", "def worker(event, context):\n    return event\n")
    client("lambda", keys=world.service, endpoint_url=endpoint_url).create_function(
        FunctionName=WORKER, Runtime="python3.12", Role=role["Role"]["Arn"], Handler="app.worker",
        Code={"ZipFile": buf.getvalue()})


@contextlib.contextmanager
def stack(*, in_lambda: bool = False) -> Iterator[Stack]:
    from chalice.test import Client
    from moto import mock_aws

    from app import app
    from chalicelib import handlers, wiring
    from chalicelib.catalog import load_catalog
    from local.seed import seed
    from local.slack_standin import SlackStandin

    METER.install()
    catalog = load_catalog(CATALOG)
    with patched_env(base_env()), mock_aws(config={"lambda": {"use_docker": False}}), \
            SlackStandin(token=BOT_TOKEN) as slack:
        world = seed(catalog, TABLE)
        os.environ.update(world.service.env())
        os.environ["SLACK_API_URL"] = slack.url
        if in_lambda:
            create_worker_function(world)
            os.environ["AWS_LAMBDA_FUNCTION_NAME"] = FUNCTION
            os.environ["DRAWBRIDGE_LOCAL_EMULATION"] = "1"  # "as Lambda", against local emulators
        wiring.reset()
        real_defer = handlers.defer
        st: Stack | None = None

        def recording_defer(jobs: list[dict]) -> None:
            real_defer(jobs)  # in Lambda: one async lambda:Invoke of the worker, as deployed
            if st is not None and st.in_lambda:
                st.pending.extend(jobs)

        handlers.defer = recording_defer
        try:
            # stage "local" (as tests/conftest.py): no deployed-stage env (table names, SSM params)
            with Client(app, stage_name="local", project_dir=str(ROOT)) as client:
                st = Stack(client=client, slack=slack, world=world, catalog=catalog, in_lambda=in_lambda)
                yield st
        finally:
            handlers.defer = real_defer
            wiring.reset()
            gc.unfreeze()


def settle() -> None:
    """Before timing: collect, then freeze what exists (moto's tables and modules, the
    set-up). A Lambda process holds none of that, but CPython's full collections walk
    every tracked object: with moto in-process one costs 100+ ms and lands in whichever
    request triggers it. Objects made while timing are still collected as usual."""
    gc.collect()
    gc.freeze()


def timed(fn: Callable[[], Any]) -> tuple[Any, float, Window]:
    with METER.window() as w:
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
    return out, dt, w
