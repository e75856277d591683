"""Out-of-process AWS and Slack for Lambda-like child processes.

moto runs as a server (``ThreadedMotoServer`` on 127.0.0.1, in this process) and the
Slack stand-in beside it; children (``bench/_first_request.py``) reach them over HTTP
and hold nothing but the app, as a Lambda instance would: their import times and
memory are the app's alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import Any, Iterator

from .harness import (
    BOT_TOKEN,
    CATALOG,
    FUNCTION,
    ROOT,
    SIGNING_SECRET,
    TABLE,
    base_env,
    create_worker_function,
    patched_env,
)

SIGNING_PARAM = "/drawbridge/bench/slack-signing-secret"
TOKEN_PARAM = "/drawbridge/bench/slack-bot-token"

CHILD = ROOT / "bench" / "_first_request.py"
FLOOR = ROOT / "bench" / "_floor.py"


def _post(url: str, body: Any) -> None:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=30).read()


@dataclass
class ServerStack:
    url: str
    slack: Any  # SlackStandin
    catalog: Any
    world: Any = None

    def reseed(self) -> float:
        """Forget everything, seed again (the worker function too); returns the seeding time."""
        from local.seed import seed

        _post(f"{self.url}/moto-api/reset", {})
        _post(f"{self.url}/moto-api/config", {"lambda": {"use_docker": False}})
        t0 = time.perf_counter()
        self.world = seed(self.catalog, TABLE, endpoint_url=self.url)
        seconds = time.perf_counter() - t0
        create_worker_function(self.world, endpoint_url=self.url)
        ssm = self.client("ssm")
        for name, value in ((SIGNING_PARAM, SIGNING_SECRET), (TOKEN_PARAM, BOT_TOKEN)):
            ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
        return seconds

    def client(self, service: str):
        from local.seed import client

        return client(service, keys=self.world.service, endpoint_url=self.url)

    def env(self, **extra: str) -> dict[str, str]:
        """A Lambda-like child's environment: the service's keys, the emulators' URLs,
        ``AWS_LAMBDA_FUNCTION_NAME`` (so deferred work is one async invoke, as deployed)."""
        alice = {"user_id": self.catalog.people["alice"].slack_user, "user_name": "alice"}  # who types
        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
        env.update(self.world.service.env(), AWS_ENDPOINT_URL=self.url, SLACK_API_URL=self.slack.url,
                   AWS_LAMBDA_FUNCTION_NAME=FUNCTION, PYTHONDONTWRITEBYTECODE="1",
                   DRAWBRIDGE_LOCAL_EMULATION="1",  # "as Lambda", against local emulators
                   # as deployed: the Slack secrets are SecureString parameters in SSM
                   SLACK_SIGNING_SECRET_PARAM=SIGNING_PARAM, SLACK_BOT_TOKEN_PARAM=TOKEN_PARAM,
                   BENCH_SLASH_USER=json.dumps(alice), BENCH_SIGNING_SECRET=SIGNING_SECRET,  # Slack's copy
                   BENCH_FIRST_TEXT="prod readonly 1h cold start",
                   BENCH_SECOND_TEXT="prod admin 1h warm")
        env.update(extra)
        for plain in ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN"):
            env.pop(plain, None)
        return env

    def run(self, script, args: tuple[str, ...] = (), **extra: str) -> tuple[dict, float]:
        """Run a child script (``python [args] script``); its BENCH_RESULT and wall time."""
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, *args, str(script)], cwd=ROOT, env=self.env(**extra),
                              capture_output=True, text=True, timeout=600)
        wall = time.perf_counter() - t0
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(f"{script.name} failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-800:]}")
        return json.loads(line[len("BENCH_RESULT "):]), wall

    def child(self, args: tuple[str, ...] = (), **extra: str) -> tuple[dict, float]:
        """Run the Lambda-like child; returns its BENCH_RESULT and the process's wall time."""
        result, wall = self.run(CHILD, args, **extra)
        if not all("waiting for approval" in t for t in result["texts"]):
            raise RuntimeError(f"the child's requests were not accepted: {result['texts']}")
        return result, wall

    def floor(self) -> tuple[dict, float]:
        """The floor: a fresh ``import boto3`` + one DynamoDB PutItem (bench/_floor.py)."""
        return self.run(FLOOR)


@contextlib.contextmanager
def server_stack() -> Iterator[ServerStack]:
    import logging

    from moto.server import ThreadedMotoServer

    from chalicelib.catalog import load_catalog
    from local.slack_standin import SlackStandin

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        with SlackStandin(token=BOT_TOKEN) as slack, patched_env(base_env()):
            yield ServerStack(url=f"http://{host}:{port}", slack=slack, catalog=load_catalog(CATALOG))
    finally:
        server.stop()
