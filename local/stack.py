"""An embedded local Drawbridge: moto_server + the Slack stand-in + ``chalice local``.

Every part runs as its own subprocess, bound to 127.0.0.1 on a free port, and
every byte of traffic stays on the loopback interface::

    with LocalStack() as stack:
        reply = stack.signed_command("alice", "prod admin 2h fixing incident 4521")
        stack.signed_click("bob", "approve_request", request_id)
        stack.messages(channel="C0APPROVE1")
        stack.assume_role("alice", "arn:aws:iam::222222222222:role/admin")
        stack.invoke("sweep", stack.scheduled_event())

Start order: (1) moto_server, (2) the Slack stand-in (its readable transcript goes
to this terminal), then moto is seeded from the catalog and its IAM enforcement is
switched on, (3) the app under ``chalice local`` with an environment that points
it at both. ``chalice local`` serves HTTP only, so the non-HTTP handlers (``sweep``,
``on_role_assumed``) run in *this* (the driver's) process through
``chalice.test.Client(app).lambda_.invoke``, with ``os.environ`` set to exactly the
app's environment: that is how Lambda would call them. It is also why the driver
can move time for them with time-machine without touching the app server or moto.

Children are stopped (SIGTERM to their process group, SIGKILL after a timeout) when
the context exits, on exceptions, on Ctrl-C, on SIGTERM/SIGHUP and at interpreter
exit; on Linux they also get SIGTERM if the driver dies (PR_SET_PDEATHSIG).

This module is the composition; the parts, each importable from here too:

* ``local/procs.py``: the child processes (ports, readiness, logs, stopping them);
* ``local/handle.py``: ``StackHandle``, the client half (URLs, keys, secret and the
  operations); ``make dev`` persists it to ``.drawbridge-dev.json`` so
  ``python -m local.dev ...`` can drive a running stack from another terminal;
* ``local/slack_client.py``: Slack's requests, signed and shaped as Slack sends them;
* ``local/events.py``: CloudTrail and scheduled events, time helpers.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Callable, Optional

from local.events import (
    CLOUDTRAIL_DIR,
    FIXTURES_DIR,
    REGION,
    iso_z,
    load_cloudtrail,
    parse_time,
    refresh_cloudtrail,
)
from local.handle import CATALOG, ROOT, Reply, StackHandle, UnknownPerson
from local.handle import SLACK_USER_ID as _SLACK_USER_ID
from local.procs import (
    HOST,
    Child,
    Processes,
    StackError,
    answers,
    child_base_env,
    free_port,
    http,
    port_open,
    stop_child,
)
from local.procs import DROPPED_PREFIXES as _DROPPED_PREFIXES
from local.slack_client import API_APP_ID, COMMAND, TEAM_ID

# local.stack stays the stack's one public face: what moved to the modules above is re-exported.
__all__ = [
    "API_APP_ID", "APP_STAGE", "CATALOG", "CLOUDTRAIL_DIR", "COMMAND", "DEFAULT_BOT_TOKEN", "DEFAULT_TABLE",
    "FIXTURES_DIR", "HOST", "REGION", "ROOT", "TEAM_ID", "Child", "LocalStack", "Printer", "Processes", "Reply",
    "StackError", "StackHandle", "UnknownPerson", "_SLACK_USER_ID", "answers", "child_base_env", "free_port",
    "http", "iso_z", "load_cloudtrail", "main", "parse_time", "port_open", "refresh_cloudtrail", "serve_app",
    "stop_child",
]

DEFAULT_TABLE = "drawbridge-local"
DEFAULT_BOT_TOKEN = "xoxb-local-standin-token"
APP_STAGE = "local"  # a stage the project config does not define: only its top-level settings apply

Printer = Callable[[str], None]


def _chalice_command(port: int) -> tuple[list[str], str, dict[str, str]]:
    """How to serve the app: (command, note, environment_variables the project config adds).

    ``chalice local --stage local`` when .chalice/config.json exists and its environment for
    that stage sets nothing that points the app elsewhere (AWS_*, DRAWBRIDGE_*, SLACK_*:
    `chalice local` puts the config's variables over the process environment). Otherwise
    the same server, started by this module (``serve_app``), with a note saying why."""
    config = ROOT / ".chalice" / "config.json"
    fallback = [sys.executable, "-m", "local.stack", "serve-app", "--host", HOST, "--port", str(port)]
    if not config.is_file():
        return fallback, ("no .chalice/config.json in the project, so `chalice local` cannot start; "
                          "serving app.py with chalice's own LocalDevServer instead"), {}
    try:
        data = json.loads(config.read_text())
        stage = data.get("stages", {}).get(APP_STAGE, {})
        added = {str(k): str(v) for k, v in {**data.get("environment_variables", {}),
                                             **stage.get("environment_variables", {})}.items()}
    except (ValueError, AttributeError) as exc:
        return fallback, f".chalice/config.json is unreadable ({exc}); using chalice's LocalDevServer", {}
    clashes = sorted(k for k in added if k.upper().startswith(_DROPPED_PREFIXES))
    if clashes:
        return fallback, (f".chalice/config.json sets {', '.join(clashes)} for stage {APP_STAGE!r}, which "
                          "`chalice local` would put over the local stack's settings; using LocalDevServer"), {}
    exe = Path(sys.executable).with_name("chalice")
    cli = [str(exe)] if exe.is_file() else [sys.executable, "-c",
                                            "import sys; from chalice.cli import main; sys.exit(main())"]
    return cli + ["local", "--host", HOST, "--port", str(port), "--no-autoreload", "--stage", APP_STAGE], "", added


class LocalStack(StackHandle):
    """moto_server + Slack stand-in + chalice local as subprocesses on 127.0.0.1."""

    def __init__(self, *, catalog_path: str | os.PathLike = CATALOG, table: str = DEFAULT_TABLE,
                 bot_token: str = DEFAULT_BOT_TOKEN, signing_secret: str | None = None,
                 echo: Optional[Printer] = None, slack_output: str = "inherit",
                 ready_timeout: float = 40.0, keep_logs: bool = False) -> None:
        """``echo``: progress lines (None: silent). ``slack_output``: "inherit" (the stand-in's
        transcript goes to this terminal), "log" (to its log file) or "null"."""
        self.catalog_path = str(catalog_path)
        self.table = table
        self.bot_token = bot_token
        self._secret = signing_secret or secrets.token_hex(16)
        self.echo = echo or (lambda _text: None)
        self.slack_output = slack_output
        self.procs = Processes(cwd=ROOT, ready_timeout=ready_timeout, keep_logs=keep_logs)
        self.notes: list[str] = []
        self._started = False

    # the process group's state, as attributes of the stack
    @property
    def children(self) -> list[Child]:
        return self.procs.children

    @property
    def log_dir(self) -> Path | None:
        return self.procs.log_dir

    @property
    def keep_logs(self) -> bool:
        return self.procs.keep_logs

    @keep_logs.setter
    def keep_logs(self, value: bool) -> None:
        self.procs.keep_logs = value

    @property
    def ready_timeout(self) -> float:
        return self.procs.ready_timeout

    @ready_timeout.setter
    def ready_timeout(self, value: float) -> None:
        self.procs.ready_timeout = value

    # ---- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and issubclass(exc_type, Exception):
            self.keep_logs = True  # a failure: its logs are the evidence (Ctrl-C is not a failure)
        self.stop()

    def __hash__(self) -> int:
        return id(self)

    def start(self) -> "LocalStack":
        if self._started:
            raise StackError("this LocalStack is already started")
        self._started = True
        self.handler_log = self.procs.open() / "handlers.log"
        try:
            self._start_all()
        except BaseException:
            self.keep_logs = True
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every child (idempotent, safe from atexit and signal handlers)."""
        self.procs.stop()

    def _start_all(self) -> None:
        from chalicelib.catalog import load_catalog
        from local.seed import seed

        t0 = time.monotonic()
        catalog = load_catalog(self.catalog_path)
        log_dir = self.procs.log_dir
        assert log_dir is not None
        # (1) moto
        moto = self.procs.spawn("moto", [sys.executable, "-m", "moto.server", "-H", HOST, "-p", "{port}"])
        moto_url = f"http://{HOST}:{moto.port}"
        self.procs.wait(moto, lambda: answers(f"{moto_url}/moto-api/"))
        self.echo(f"moto_server        {moto_url}  (pid {moto.pid})")
        # (2) the Slack stand-in
        ready = log_dir / "slack.ready"
        names = [f"{catalog.approvals_channel}=#aws-access-approvals", f"{catalog.security_channel}=#security-alerts",
                 *(f"{p.slack_user}=@{key}" for key, p in catalog.people.items())]
        cmd = [sys.executable, "-m", "local.slack_standin", "--port", "0", "--token", self.bot_token,
               "--ready-file", str(ready), *(arg for name in names for arg in ("--name", name))]
        slack = self.procs.spawn("slack", cmd, stdout=self.slack_output, port=0)
        self.procs.wait(slack, lambda: ready.is_file())
        slack_api_url = ready.read_text().strip()
        slack.port = urllib.parse.urlsplit(slack_api_url).port or 0
        self.echo(f"Slack stand-in     {slack_api_url}  (pid {slack.pid})")
        # seed, then IAM enforcement on: from here every request must be signed by a moto-issued key
        world = seed(catalog, self.table, endpoint_url=moto_url, region=REGION)
        status, raw = http("POST", f"{moto_url}/moto-api/reset-auth", b"0", {"Content-Type": "text/plain"})
        if status != 200:
            raise StackError(f"moto refused to turn IAM enforcement on: HTTP {status} {raw[:200]!r}")
        self.echo(f"seeded             {len(world.people)} IAM users + drawbridge-service in "
                  f"{catalog.bastion_account_id}, {sum(len(a.roles) for a in catalog.accounts.values())} "
                  f"roles, table {self.table}; IAM enforcement on")
        # (3) the app
        env = {
            "AWS_ENDPOINT_URL": moto_url, "AWS_DEFAULT_REGION": REGION, **world.service.env(),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "DRAWBRIDGE_TABLE": self.table, "DRAWBRIDGE_CATALOG": str(Path(self.catalog_path).resolve()),
            "SLACK_API_URL": slack_api_url, "SLACK_BOT_TOKEN": self.bot_token,
            "SLACK_SIGNING_SECRET": self._secret,
        }
        app_port = free_port()
        cmd, note, added = _chalice_command(app_port)
        if note:
            self.notes.append(note)
        env = {**added, **env}  # what the app really sees; invoke() uses the same
        app = self.procs.spawn("app", cmd, env={**child_base_env(), **env}, port=app_port)
        app_url = f"http://{HOST}:{app.port}"
        self.procs.wait(app, lambda: answers(f"{app_url}/"))
        how = "chalice local" if not note else "LocalDevServer"
        self.echo(f"{'app (' + how + ')':<18} {app_url}  (pid {app.pid})")
        StackHandle.__init__(self, moto_url=moto_url, slack_api_url=slack_api_url, app_url=app_url,
                             world=world, env=env, catalog_path=self.catalog_path)
        self.handler_log = log_dir / "handlers.log"
        self.echo(f"ready in {time.monotonic() - t0:.1f} s; logs in {log_dir}")

    @property
    def signing_secret(self) -> str:
        return self._secret

    def to_state(self) -> dict:
        return {**super().to_state(), "driver_pid": os.getpid(), "log_dir": str(self.log_dir),
                "children": [{"name": c.name, "pid": c.pid, "port": c.port} for c in self.children]}


# --------------------------------------------------------------------------- app server


def serve_app(host: str, port: int) -> None:
    """What ``chalice local --no-autoreload`` does, without needing .chalice/config.json."""
    import logging

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from chalice.config import Config
    from chalice.deploy.validate import validate_routes
    from chalice.local import create_local_server

    from app import app

    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    validate_routes(app.routes)
    config = Config.create(chalice_stage="local", app_name=app.app_name, project_dir=str(ROOT), chalice_app=app)
    server = create_local_server(app, config, host, port)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m local.stack")
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve-app", help="serve app.py like `chalice local` (used by LocalStack)")
    serve.add_argument("--host", default=HOST)
    serve.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.host != HOST:
        parser.error("the local stack binds 127.0.0.1 only")
    serve_app(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
