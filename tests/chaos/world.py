"""The chaos suite's world: moto_server and the Slack stand-in, each behind a fault proxy.

::

    app's boto3 clients ──HTTP──▶ FaultProxy "aws"   ──▶ ThreadedMotoServer (one lock per request)
    app's WebClient      ──HTTP──▶ FaultProxy "slack" ──▶ SlackStandin (/api/<method>)
    the checks' own clients ──────────────────────────▶ moto / the stand-in directly (never faulted)

One :class:`World` per process serves every run: :meth:`World.reset` gives a run a fresh
table, IAM without any Drawbridge policy, an empty Slack, proxies without rules (reseeded)
and its own simulated clock. The app's services are built like
``tests/resilience/test_races.py::fresh_service`` (``chalicelib.wiring``, the production
wiring: the same retry settings, lazily built IAM and Slack clients); a small pool of them
stands in for concurrent Lambda invocations, each with its own clients, all reading the
run's clock (``svc.clock``), as every Lambda reads the same time.

Like the race suite, each moto request is made atomic (real DynamoDB's conditional writes
are; moto's server does not serialise them); requests still race over the network.

Waiting is shortened, never skipped: botocore's standard-mode back-off and slack-sdk's
retry sleeps (including ``Retry-After``) are capped at ``MAX_CLIENT_SLEEP`` seconds; the
number of attempts and which calls are retried stay the clients' own.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

from local.faultproxy import FaultProxy
from tests.resilience.test_races import RACE_CATALOG  # the same people and prod/admin

APPROVALS, SECURITY = "C0APPROVE1", "C0SECURIT1"
BOT_TOKEN = "xoxb-chaos-token"
SIGNING_SECRET = "chaos-signing-secret-0000000000000"
TABLE = "chaos"
T0 = datetime(2026, 11, 12, 14, 0, tzinfo=timezone.utc)
MAX_CLIENT_SLEEP = 0.02
POOL = 4

# prod/admin: 2 of bob, carol, dave (so two can finish what a third began); prod/readonly: 1 of
# carol, dave, for alice and bob (a second grant for the sweep and reconcile to look at).
CATALOG = RACE_CATALOG + """
[accounts.prod.roles.readonly]
max_duration = "8h"
approvers = ["carol", "dave"]
approvals_required = 1
requesters = ["alice", "bob"]
"""


def reset_moto(url: str) -> None:
    from local.procs import http

    status, body = http("POST", f"{url}/moto-api/reset", b"")
    if status != 200:
        raise RuntimeError(f"moto reset failed: {status} {body[:200]!r}")


class SimClock:
    """The run's time: set and moved by the scenario, read by every service (thread-safe)."""

    def __init__(self, at: datetime = T0):
        self._at = at
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._at

    @property
    def now(self) -> datetime:
        return self()

    def set(self, at: datetime) -> None:
        with self._lock:
            self._at = at

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._at += delta
            return self._at


class World:
    """Started once per process (``with World() as w``); ``reset(seed)`` before every run."""

    def __init__(self, pool: int = POOL):
        self.pool_size = pool
        self.services: list = []
        self.clock = SimClock()
        self._undo: list = []
        self.client_sleeps: list[float] = []  # what the clients asked to sleep (capped when slept)

    # ---- start / stop ------------------------------------------------------------
    def __enter__(self) -> "World":
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stop()

    def _start(self) -> None:
        from moto.server import ThreadedMotoServer

        from chalicelib import wiring
        from chalicelib.catalog import load_catalog
        from local.seed import client, seed
        from local.slack_standin import SlackStandin

        self._tmp = tempfile.TemporaryDirectory(prefix="drawbridge-chaos-")
        self._undo.append(self._tmp.cleanup)
        catalog_path = Path(self._tmp.name) / "access.toml"
        catalog_path.write_text(CATALOG)
        self.catalog = load_catalog(catalog_path)
        for name in ("werkzeug", "slack_sdk", "botocore", "urllib3"):  # injected failures: quiet logs
            log = logging.getLogger(name)
            self._undo.append(lambda log=log, level=log.level: log.setLevel(level))
            log.setLevel(logging.CRITICAL)

        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto.start()
        self._undo.append(self.moto.stop)
        lock = threading.Lock()
        moto_app = self.moto._server.app  # noqa: SLF001 - atomic requests, as in test_races.py

        def atomic(environ, start_response):
            with lock:
                return list(moto_app(environ, start_response))

        self.moto._server.app = atomic  # noqa: SLF001
        host, port = self.moto.get_host_and_port()
        self.moto_url = f"http://{host}:{port}"
        # moto's backends are global to the process (every in-process moto shares them): start
        # from nothing, and leave nothing behind for the tests that run after us.
        reset_moto(self.moto_url)
        self._undo.append(lambda: reset_moto(self.moto_url))

        self.standin = SlackStandin(token=BOT_TOKEN).start()
        self._undo.append(self.standin.stop)
        self.aws = FaultProxy(self.moto_url, name="aws").start()
        self._undo.append(self.aws.stop)
        self.slack = FaultProxy(self.standin.url, name="slack").start()
        self._undo.append(self.slack.stop)

        saved = dict(os.environ)

        def restore_env():
            os.environ.clear()
            os.environ.update(saved)

        self._undo.append(restore_env)
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_LAMBDA_FUNCTION_NAME", "SLACK_SIGNING_SECRET_PARAM",
                    "SLACK_BOT_TOKEN_PARAM", "DRAWBRIDGE_LOCAL_EMULATION", "DRAWBRIDGE_POLICY_PATH",
                    "DRAWBRIDGE_PENDING_WINDOW", "DRAWBRIDGE_SESSION_CUTOFFS", "DRAWBRIDGE_REVOKER_ROLE",
                    "AWS_ENDPOINT_URL", "MOTO_ACCOUNT_ID"):
            os.environ.pop(var, None)
        os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
        world = seed(self.catalog, TABLE, endpoint_url=self.moto_url)
        self.iam = client("iam", keys=world.service, endpoint_url=self.moto_url)
        self.service_keys = world.service
        self.ddb = client("dynamodb", keys=world.service, endpoint_url=self.moto_url)
        os.environ.update(world.service.env())
        os.environ.update({
            "AWS_ENDPOINT_URL": self.aws.url, "DRAWBRIDGE_CATALOG": str(catalog_path), "DRAWBRIDGE_TABLE": TABLE,
            "SLACK_API_URL": self.slack.url, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        })
        self._patch_sleeps()
        wiring.reset()
        self._undo.append(wiring.reset)

        from chalicelib.adapters.store import DynamoStore

        self.store = DynamoStore(self.ddb, TABLE)  # the checks' own view of the table
        settings = replace(wiring.settings(), table=TABLE)
        for _ in range(self.pool_size):
            svc = wiring._service.__wrapped__(settings, self.aws.url, "us-east-1")  # noqa: SLF001 - one per "Lambda"
            svc.clock = self.clock
            getattr(svc.grants, "arn")  # build the lazy IAM and Slack clients here, not in racing threads
            getattr(svc.slack, "post")
            self.services.append(svc)

    def _patch_sleeps(self) -> None:
        import botocore.retries.standard as std
        import slack_sdk.http_retry.builtin_handlers as slack_builtin
        import slack_sdk.http_retry.handler as slack_handler

        real_delay = std.ExponentialBackoff.delay_amount
        sleeps = self.client_sleeps

        def short_backoff(backoff, context):
            wanted = real_delay(backoff, context)
            sleeps.append(wanted)
            return min(wanted, MAX_CLIENT_SLEEP)

        std.ExponentialBackoff.delay_amount = short_backoff
        self._undo.append(lambda: setattr(std.ExponentialBackoff, "delay_amount", real_delay))

        def short_sleep(seconds):
            sleeps.append(seconds)
            time.sleep(min(seconds, MAX_CLIENT_SLEEP))

        shim = SimpleNamespace(sleep=short_sleep, time=time.time, monotonic=time.monotonic)
        for module in (slack_builtin, slack_handler):
            self._undo.append(lambda m=module, t=module.time: setattr(m, "time", t))
            module.time = shim

    def _stop(self) -> None:
        while self._undo:
            undo = self._undo.pop()
            try:
                undo()
            except Exception:  # noqa: BLE001 - stop everything else regardless
                pass

    # ---- one run -------------------------------------------------------------------
    def reset(self, seed: int, at: datetime = T0) -> None:
        """A clean slate for the run ``seed``: table, IAM, Slack, proxies, clock, request ids."""
        from chalicelib.adapters.store import create_table_from_template
        from local.seed import TABLE_TEMPLATE
        from tests.resilience.harness import scrub_iam

        self.aws.clear(seed=seed)
        self.slack.clear(seed=seed + 1)
        try:
            self.ddb.delete_table(TableName=TABLE)
        except self.ddb.exceptions.ResourceNotFoundException:
            pass
        create_table_from_template(self.ddb, TABLE, str(TABLE_TEMPLATE))
        scrub_iam(self.iam)
        self.standin.reset()
        self.clock.set(at)
        self.client_sleeps.clear()
        ids = random.Random(f"ids-{seed}")
        lock = threading.Lock()
        issued: set = set()

        def new_id(now: datetime) -> str:  # reproducible request ids (and never twice in a run)
            with lock:
                while True:
                    rid = f"req-{now:%Y%m%d}-{ids.getrandbits(24):06x}"
                    if rid not in issued:
                        issued.add(rid)
                        return rid

        for svc in self.services:
            svc.clock = self.clock
            svc.new_id = new_id

    def faults_off(self) -> None:
        self.aws.faults_off()
        self.slack.faults_off()

    def fault_report(self) -> str:
        return "\n".join((self.aws.report(), self.slack.report()))

    def snapshot(self):
        from tests.resilience.harness import snapshot

        from tests.resilience.harness import grant_expiries

        s = snapshot(self.store, self.iam, self.standin, with_history=True)
        s.cutoffs = self.cutoff_documents()
        s.expiries = grant_expiries(self.iam)
        return s

    def cutoff_documents(self) -> dict:
        """role ARN -> (its unique id, its cut-off policy's default document), read in each
        member account through its revoker, past the fault proxy (I8 looks at them)."""
        import boto3

        from chalicelib import cutoff
        from local.seed import REVOKER_ROLE, client

        sts = client("sts", keys=self.service_keys, endpoint_url=self.moto_url)
        out = {}
        for account in self.catalog.accounts.values():
            creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account.id}:role/{REVOKER_ROLE}",
                                    RoleSessionName="chaos-check")["Credentials"]
            iam = boto3.client("iam", endpoint_url=self.moto_url, region_name="us-east-1",
                               aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                               aws_session_token=creds["SessionToken"])
            for role in account.roles.values():
                name = role.role_name.rpartition("/")[2]
                arn = f"arn:aws:iam::{account.id}:policy{cutoff.CUTOFF_POLICY_PATH}{cutoff.cutoff_policy_name(name)}"
                version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
                doc = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
                out[role.role_arn] = (iam.get_role(RoleName=name)["Role"]["RoleId"], doc)
        return out
