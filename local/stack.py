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

``StackHandle`` is the client half (URLs, keys, secret and the operations); ``make dev``
persists it to ``.drawbridge-dev.json`` so ``python -m local.dev ...`` can drive a
running stack from another terminal.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "policies" / "access.toml"
# the project's own fixtures, the same files the tests read (tests/fixtures/README.md)
FIXTURES_DIR = ROOT / "tests" / "fixtures"
CLOUDTRAIL_DIR = FIXTURES_DIR / "cloudtrail"
REGION = "us-east-1"
HOST = "127.0.0.1"  # loopback only, never all interfaces
DEFAULT_TABLE = "drawbridge-local"
DEFAULT_BOT_TOKEN = "xoxb-local-standin-token"
COMMAND = "/aws-access"
TEAM_ID, API_APP_ID = "T0STANDIN", "A0DRAWBRDG"

Printer = Callable[[str], None]


class StackError(RuntimeError):
    """A part of the local stack did not start (the message says which, and shows its log)."""


# --------------------------------------------------------------------------- small helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


# urllib without any proxy: everything here is loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 30) -> tuple[int, bytes]:
    """One HTTP request; returns (status, body) for every status, raises only on no answer."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _answers(url: str) -> bool:
    try:
        http("GET", url, timeout=1)
        return True
    except (OSError, urllib.error.URLError):
        return False


def iso_z(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """ISO 8601 (``Z`` or offset; naive = UTC) -> aware UTC datetime."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def sign(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 request signature headers for ``body``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def load_cloudtrail(name_or_path: str) -> dict:
    """A whole EventBridge event: a file path, or a fixture name from tests/fixtures/cloudtrail."""
    path = Path(name_or_path)
    if not path.is_file():
        path = CLOUDTRAIL_DIR / name_or_path
        if not path.suffix:
            path = path.with_suffix(".json")
    if not path.is_file():
        known = sorted(p.stem for p in CLOUDTRAIL_DIR.glob("*.json")) if CLOUDTRAIL_DIR.is_dir() else []
        raise FileNotFoundError(f"no CloudTrail event {name_or_path!r} (a path, or one of {known or 'nothing: '}"
                                f"{'' if known else str(CLOUDTRAIL_DIR) + ' is missing'})")
    return json.loads(path.read_text(encoding="utf-8"))


def refresh_cloudtrail(event: dict, *, at: datetime | None = None, iam_user: str | None = None,
                       access_key_id: str | None = None, assumed_role_arn: str | None = None) -> dict:
    """A copy of ``event`` as a new call: fresh event/request/shared ids and, when given, a new
    time (``at``, second precision as CloudTrail writes it), caller and assumed-role ARN."""
    event = copy.deepcopy(event)
    detail = event.setdefault("detail", {})
    event["id"] = str(uuid.uuid4())
    detail["eventID"] = str(uuid.uuid4())
    if "requestID" in detail:
        detail["requestID"] = str(uuid.uuid4())
    if "sharedEventID" in detail:
        detail["sharedEventID"] = str(uuid.uuid4())
    if at is not None:
        event["time"] = detail["eventTime"] = iso_z(at)
    identity = detail.get("userIdentity") or {}
    if iam_user and identity.get("type") == "IAMUser":
        identity["userName"] = iam_user
        identity["arn"] = f"arn:aws:iam::{identity.get('accountId', '')}:user/{iam_user}"
        params = detail.get("requestParameters") or {}
        for key in ("roleSessionName", "sourceIdentity"):
            if key in params:
                params[key] = iam_user
    if access_key_id and "accessKeyId" in identity:
        identity["accessKeyId"] = access_key_id
    user = ((detail.get("responseElements") or {}).get("assumedRoleUser") or {})
    if assumed_role_arn and "arn" in user:
        user["arn"] = assumed_role_arn
    return event


# Handler output (Powertools JSON logs, EMF metrics) printed while the driver runs a
# handler goes to the stack's log file, so the narration stays readable. The Logger
# keeps the stream it was created with, so this forwards to whatever is current.
class _Forward:
    def __init__(self) -> None:
        self.target: Any = None

    def write(self, text: str) -> int:
        target = self.target or sys.__stdout__
        try:
            return target.write(text)
        except ValueError:  # closed
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(Exception):
            (self.target or sys.__stdout__).flush()

    def isatty(self) -> bool:
        return False


_HANDLER_OUT = _Forward()


@dataclass
class Reply:
    status: int
    body: Any

    @property
    def text(self) -> str:
        return self.body.get("text", "") if isinstance(self.body, dict) else str(self.body or "")


# --------------------------------------------------------------------------- the client half


_SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")  # a raw Slack user id, as the app's parser takes it


class UnknownPerson(KeyError):
    """``--as`` named nobody: not a catalog person and not a Slack user id."""

    def __init__(self, person: str, catalog_path: str, known: list[str]) -> None:
        super().__init__(person)
        self.person, self.catalog_path, self.known = person, catalog_path, known

    def __str__(self) -> str:
        return (f"{self.person!r} is not a person in {self.catalog_path} (known: {', '.join(self.known)}; "
                "or a Slack user id such as U0STRANGER for someone not in the catalog)")


class StackHandle:
    """Everything needed to talk to a running local stack (no processes of its own)."""

    def __init__(self, *, moto_url: str, slack_api_url: str, app_url: str, world, env: dict[str, str],
                 catalog_path: str | os.PathLike = CATALOG) -> None:
        from chalicelib.catalog import load_catalog

        self.moto_url = moto_url
        self.slack_api_url = slack_api_url
        self.app_url = app_url
        self.world = world
        self.env = dict(env)  # the app's own environment (what differs from the shell's)
        self.catalog_path = str(catalog_path)
        self.catalog = load_catalog(self.catalog_path)
        self._client_dir: str | None = None
        self.handler_log: Path | None = None

    # ---- identity -------------------------------------------------------------------
    @property
    def signing_secret(self) -> str:
        return self.env["SLACK_SIGNING_SECRET"]

    @property
    def slack_base(self) -> str:
        return self.slack_api_url.rsplit("/api/", 1)[0]

    def slack_id(self, person: str) -> str:
        """The Slack user id of a catalog person (``alice``); a raw Slack user id
        (``U0STRANGER``, ``W…``) is returned as is, to act as someone not in the catalog.
        Anything else raises :class:`UnknownPerson` (a ``KeyError``) naming who is known."""
        if _SLACK_USER_ID.fullmatch(person):
            return person
        try:
            return self.catalog.people[person].slack_user
        except KeyError:
            raise UnknownPerson(person, self.catalog_path, list(self.catalog.people)) from None

    # ---- Slack -> app, over real HTTP, signed like Slack ------------------------------
    def post_signed(self, path: str, body: str, *, secret: str | None = None) -> Reply:
        status, raw = http("POST", self.app_url + path, body.encode(),
                           sign(secret or self.signing_secret, body))
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Reply(status, parsed)

    def signed_command(self, person: str, text: str, *, channel: str | None = None) -> Reply:
        """``person`` types ``/aws-access <text>`` (a leading ``/aws-access`` is dropped).
        ``text`` is what they type; it is sent as Slack sends it (``&``, ``<``, ``>`` escaped)."""
        from local.slack_standin import slack_escape

        text = text.strip()
        if text.split(" ", 1)[0] == COMMAND:
            text = text[len(COMMAND):].strip()
        text = slack_escape(text)
        user = self.slack_id(person)
        channel = channel or self.catalog.approvals_channel
        form = {
            "token": "local-standin-verification-token", "team_id": TEAM_ID, "team_domain": "standin",
            "channel_id": channel, "channel_name": "aws-access-approvals", "user_id": user,
            "user_name": person, "command": COMMAND, "text": text, "api_app_id": API_APP_ID,
            "is_enterprise_install": "false",
            "response_url": f"{self.slack_base}/_standin/response_url/{secrets.token_hex(6)}",
            "trigger_id": f"{int(time.time())}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}",
        }
        return self.post_signed("/slack/commands", urllib.parse.urlencode(form))

    def card(self, request_id: str) -> Optional[dict]:
        """The approval card (top-level message in the approvals channel) of a request."""
        for m in self.messages(channel=self.catalog.approvals_channel):
            if m.get("thread_ts") is None and (m.get("metadata") or {}).get(
                    "event_payload", {}).get("request_id") == request_id:
                return m
        return None

    def signed_click(self, person: str, action_id: str, request_id: str) -> Reply:
        """``person`` clicks the button ``action_id`` (approve_request / deny_request)."""
        user = self.slack_id(person)
        card = self.card(request_id) or {}
        channel = card.get("channel") or self.catalog.approvals_channel
        ts = card.get("ts") or ""
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": person, "name": person, "team_id": TEAM_ID},
            "api_app_id": API_APP_ID, "token": "local-standin-verification-token",
            "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
            "trigger_id": f"{int(time.time())}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}",
            "team": {"id": TEAM_ID, "domain": "standin"}, "enterprise": None, "is_enterprise_install": False,
            "channel": {"id": channel, "name": "aws-access-approvals"},
            "message": {"type": "message", "ts": ts, "text": card.get("text", ""), "blocks": card.get("blocks", [])},
            "state": {"values": {}},
            "response_url": f"{self.slack_base}/_standin/response_url/{secrets.token_hex(6)}",
            "actions": [{"action_id": action_id, "block_id": "req_actions", "value": request_id,
                         "type": "button", "action_ts": f"{time.time():.6f}",
                         "text": {"type": "plain_text", "text": action_id.split("_")[0].title()}}],
        }
        return self.post_signed("/slack/interactions", urllib.parse.urlencode({"payload": json.dumps(payload)}))

    # ---- what Slack shows ------------------------------------------------------------------
    def messages(self, channel: str | None = None, event_type: str | None = None,
                 include_ephemeral: bool = False) -> list[dict]:
        """Messages the stand-in holds (current versions), from its inspection endpoint.
        ``channel`` may be a user id for that user's DM."""
        status, raw = http("GET", f"{self.slack_base}/_standin/messages", timeout=10)
        if status != 200:
            raise StackError(f"Slack stand-in inspection answered HTTP {status}")
        found = json.loads(raw)["messages"]
        if channel:
            channel = "D" + channel[1:] if channel.startswith("U") else channel
        return [m for m in found
                if (include_ephemeral or not m.get("ephemeral"))
                and (channel is None or m.get("channel") == channel)
                and (event_type is None or m.get("event_type") == event_type)]

    # ---- AWS as the people see it ---------------------------------------------------------
    def aws(self, service: str, person: str | None = None):
        """A boto3 client on moto, as ``person`` (their bastion keys) or as the service user."""
        from local.seed import client

        keys = self.world.people[person] if person else self.world.service
        return client(service, keys=keys, endpoint_url=self.moto_url, region=REGION)

    def assume_role(self, person: str, role_arn: str) -> str:
        """``person``'s own sts:AssumeRole; the assumed-role ARN, or the error code."""
        from botocore.exceptions import ClientError

        try:
            resp = self.aws("sts", person).assume_role(RoleArn=role_arn, RoleSessionName=person)
            return resp["AssumedRoleUser"]["Arn"]
        except ClientError as exc:
            return exc.response["Error"]["Code"]

    def attached_policies(self, person: str) -> list[str]:
        iam = self.aws("iam")
        user = self.catalog.people[person].iam_user
        return [p["PolicyName"] for p in iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]]

    # ---- non-HTTP handlers, run here as Lambda would -------------------------------------
    @contextlib.contextmanager
    def app_environ(self) -> Iterator[None]:
        """os.environ = the shell's minus AWS/Drawbridge/Slack settings, plus the app's env."""
        saved = dict(os.environ)
        try:
            os.environ.clear()
            os.environ.update(child_base_env(saved))
            os.environ.update(self.env)
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def invoke(self, name: str, event: Any = None) -> Any:
        """Run the Lambda handler ``name`` in this process with the app's environment."""
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from chalice.test import Client

        from chalicelib import wiring

        with contextlib.redirect_stdout(_HANDLER_OUT):
            from app import app  # Chalice's own log handler binds sys.stdout on first import

        if self._client_dir is None:
            # An empty project dir: no .chalice/config.json, so nothing but self.env
            # reaches the handler (a stage's environment_variables would win otherwise).
            self._client_dir = tempfile.mkdtemp(prefix="drawbridge-invoke-")
            atexit.register(shutil.rmtree, self._client_dir, True)
        # Each Lambda function runs in containers of its own, where the REST entry point
        # (the only place Chalice sets app.lambda_context) never ran. Keep it that way here,
        # whatever this process did with `app` before (e.g. other tests in one pytest run).
        app.__dict__.pop("lambda_context", None)
        log = open(self.handler_log, "a", encoding="utf-8") if self.handler_log else None
        previous = _HANDLER_OUT.target
        try:
            with self.app_environ():
                wiring.reset()  # clients are built for this stack's endpoint and keys
                _HANDLER_OUT.target = log
                with contextlib.redirect_stdout(_HANDLER_OUT), Client(app, project_dir=self._client_dir) as c:
                    return c.lambda_.invoke(name, {} if event is None else event).payload
        finally:
            _HANDLER_OUT.target = previous
            wiring.reset()
            if log is not None:
                log.close()

    def scheduled_event(self, at: datetime | None = None) -> dict:
        """The EventBridge scheduled event the every-minute rule delivers to ``sweep``."""
        at = at or datetime.now(timezone.utc)
        bastion = self.catalog.bastion_account_id
        return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
                "source": "aws.events", "account": bastion, "time": iso_z(at), "region": REGION,
                "resources": [f"arn:aws:events:{REGION}:{bastion}:rule/drawbridge-local-sweep"], "detail": {}}

    def sweep(self, at: datetime | None = None) -> Any:
        """Run the sweep here; with ``at``, inside time_machine.travel(at) (this process only)."""
        if at is None:
            return self.invoke("sweep", self.scheduled_event())
        import time_machine

        with time_machine.travel(at, tick=True):
            return self.invoke("sweep", self.scheduled_event())

    # ---- persistence for `make dev` ----------------------------------------------------------
    def to_state(self) -> dict:
        w = self.world
        return {
            "moto_url": self.moto_url, "slack_api_url": self.slack_api_url, "app_url": self.app_url,
            "catalog": self.catalog_path, "env": self.env, "table": w.table,
            "service_keys": [w.service.access_key_id, w.service.secret_access_key],
            "people_keys": {k: [v.access_key_id, v.secret_access_key] for k, v in w.people.items()},
            "handler_log": str(self.handler_log) if self.handler_log else None,
        }

    @classmethod
    def from_state(cls, state: dict) -> "StackHandle":
        from local.seed import Keys, World

        world = World(service=Keys(*state["service_keys"]),
                      people={k: Keys(*v) for k, v in state["people_keys"].items()}, table=state["table"])
        handle = cls(moto_url=state["moto_url"], slack_api_url=state["slack_api_url"], app_url=state["app_url"],
                     world=world, env=state["env"], catalog_path=state["catalog"])
        handle.handler_log = Path(state["handler_log"]) if state.get("handler_log") else None
        return handle


_DROPPED_PREFIXES = ("AWS_", "DRAWBRIDGE_", "SLACK_", "MOTO_", "TEST_SERVER_MODE")


def child_base_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The shell's environment without anything that could point a child elsewhere
    (AWS profiles and credentials, a Lambda name, another Slack), loopback never proxied."""
    env = dict(os.environ if env is None else env)
    base = {k: v for k, v in env.items() if not k.upper().startswith(_DROPPED_PREFIXES)}
    for var in ("NO_PROXY", "no_proxy"):
        parts = [p for p in base.get(var, "").split(",") if p]
        base[var] = ",".join(parts + [h for h in ("127.0.0.1", "localhost") if h not in parts])
    base["PYTHONUNBUFFERED"] = "1"
    return base


# --------------------------------------------------------------------------- the processes


@dataclass
class Child:
    name: str
    popen: subprocess.Popen
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text[-lines:]) or "    (empty log)"


def _libc_prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()  # looked up here: the child must not import anything between fork and exec


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setsid()  # its own process group: stopped as a group, and Ctrl-C reaches only the driver
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: SIGTERM when the driver dies, even by SIGKILL


def stop_child(child: Child, timeout: float = 5.0) -> None:
    """SIGTERM the child's process group, SIGKILL it after ``timeout``; reap it."""
    p = child.popen
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout)
    # Anything the child left behind in its group goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)


_LIVE: "set[LocalStack]" = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        stacks = list(_LIVE)
    for stack in stacks:
        stack.stop()


APP_STAGE = "local"  # a stage the project config does not define: only its top-level settings apply


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
        self.ready_timeout = ready_timeout
        self.keep_logs = keep_logs
        self.children: list[Child] = []
        self.log_dir: Path | None = None
        self.notes: list[str] = []
        self._started = False
        self._stopping = threading.Lock()
        self._previous_handlers: dict[int, Any] = {}

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
        self.log_dir = Path(tempfile.mkdtemp(prefix="drawbridge-local-"))
        self.handler_log = self.log_dir / "handlers.log"
        with _LIVE_LOCK:
            _LIVE.add(self)
        self._install_signal_handlers()
        try:
            self._start_all()
        except BaseException:
            self.keep_logs = True
            self.stop()
            raise
        return self

    def _start_all(self) -> None:
        from chalicelib.catalog import load_catalog
        from local.seed import seed

        t0 = time.monotonic()
        catalog = load_catalog(self.catalog_path)
        # (1) moto
        moto = self._spawn("moto", [sys.executable, "-m", "moto.server", "-H", HOST, "-p", "{port}"])
        moto_url = f"http://{HOST}:{moto.port}"
        self._wait(moto, lambda: _answers(f"{moto_url}/moto-api/"))
        self.echo(f"moto_server        {moto_url}  (pid {moto.pid})")
        # (2) the Slack stand-in
        ready = self.log_dir / "slack.ready"
        names = [f"{catalog.approvals_channel}=#aws-access-approvals", f"{catalog.security_channel}=#security-alerts",
                 *(f"{p.slack_user}=@{key}" for key, p in catalog.people.items())]
        cmd = [sys.executable, "-m", "local.slack_standin", "--port", "0", "--token", self.bot_token,
               "--ready-file", str(ready), *(arg for name in names for arg in ("--name", name))]
        slack = self._spawn("slack", cmd, stdout=self.slack_output, port=0)
        self._wait(slack, lambda: ready.is_file())
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
        app = self._spawn("app", cmd, env={**child_base_env(), **env}, port=app_port)
        app_url = f"http://{HOST}:{app.port}"
        self._wait(app, lambda: _answers(f"{app_url}/"))
        how = "chalice local" if not note else "LocalDevServer"
        self.echo(f"{'app (' + how + ')':<18} {app_url}  (pid {app.pid})")
        StackHandle.__init__(self, moto_url=moto_url, slack_api_url=slack_api_url, app_url=app_url,
                             world=world, env=env, catalog_path=self.catalog_path)
        self.handler_log = self.log_dir / "handlers.log"
        self.echo(f"ready in {time.monotonic() - t0:.1f} s; logs in {self.log_dir}")

    def _spawn(self, name: str, cmd: list[str], *, stdout: str = "log", env: dict | None = None,
               port: int | None = None, attempts: int = 3) -> Child:
        assert self.log_dir is not None
        log_path = self.log_dir / f"{name}.log"
        for attempt in range(attempts):
            chosen = free_port() if port is None else port
            log = open(log_path, "ab")
            out: Any = {"inherit": None, "null": subprocess.DEVNULL}.get(stdout, log)
            popen = subprocess.Popen(
                [part.replace("{port}", str(chosen)) for part in cmd], cwd=ROOT,
                env=env if env is not None else child_base_env(), stdin=subprocess.DEVNULL,
                stdout=out, stderr=log, preexec_fn=_die_with_parent,
            )
            log.close()
            child = Child(name, popen, chosen, log_path)
            self.children.append(child)
            time.sleep(0.05)
            if child.alive() or port is not None or attempt == attempts - 1:
                return child
            self.children.remove(child)  # probably lost a race for the port: try another
        raise AssertionError("unreachable")

    def _wait(self, child: Child, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if not child.alive():
                raise StackError(f"{child.name} exited with code {child.popen.returncode} before it was ready; "
                                 f"its log ({child.log}):\n{child.log_tail()}")
            time.sleep(0.05)
        raise StackError(f"{child.name} was not ready after {self.ready_timeout:.0f} s; "
                         f"its log ({child.log}):\n{child.log_tail()}")

    def stop(self) -> None:
        """Stop every child (idempotent, safe from atexit and signal handlers)."""
        if not self._stopping.acquire(blocking=False):
            return
        try:
            in_main = threading.current_thread() is threading.main_thread()
            previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
            try:
                for child in reversed(self.children):
                    stop_child(child)
            finally:
                if in_main:  # a second Ctrl-C must not leave half the children running
                    signal.signal(signal.SIGINT, previous_int if previous_int is not None else signal.SIG_DFL)
            self._restore_signal_handlers()
            with _LIVE_LOCK:
                _LIVE.discard(self)
            if self.log_dir is not None and not self.keep_logs:
                shutil.rmtree(self.log_dir, ignore_errors=True)
        finally:
            self._stopping.release()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, _frame):
            raise SystemExit(128 + signum)  # unwinds through `with LocalStack()`, which stops everything

        for sig in (signal.SIGTERM, signal.SIGHUP):
            current = signal.getsignal(sig)
            if current in (signal.SIG_DFL, None):
                self._previous_handlers[sig] = current
                signal.signal(sig, handler)

    def _restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, previous in self._previous_handlers.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous_handlers.clear()

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
