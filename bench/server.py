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

from .harness import BOT_TOKEN, CATALOG, FUNCTION, ROOT, TABLE, base_env, create_worker_function, patched_env

CHILD = ROOT / "bench" / "_first_request.py"


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
        return seconds

    def client(self, service: str):
        from local.seed import client

        return client(service, keys=self.world.service, endpoint_url=self.url)

    def child(self, **extra: str) -> tuple[dict, float]:
        """Run the Lambda-like child; returns its BENCH_RESULT and the process's wall time."""
        alice = {"user_id": self.catalog.people["alice"].slack_user, "user_name": "alice"}  # who types
        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
        env.update(self.world.service.env(), AWS_ENDPOINT_URL=self.url, SLACK_API_URL=self.slack.url,
                   AWS_LAMBDA_FUNCTION_NAME=FUNCTION, PYTHONDONTWRITEBYTECODE="1",
                   DRAWBRIDGE_LOCAL_EMULATION="1",  # "as Lambda", against local emulators
                   BENCH_SLASH_USER=json.dumps(alice), BENCH_FIRST_TEXT="prod admin 1h cold start",
                   BENCH_SECOND_TEXT="prod readonly 1h warm")
        env.update(extra)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(CHILD)], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=600)
        wall = time.perf_counter() - t0
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(f"child failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-800:]}")
        result = json.loads(line[len("BENCH_RESULT "):])
        if not all("waiting for approval" in t for t in result["texts"]):
            raise RuntimeError(f"the child's requests were not accepted: {result['texts']}")
        return result, wall


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
