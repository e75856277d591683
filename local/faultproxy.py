"""A small fault-injecting HTTP proxy for one upstream (moto_server, or the Slack stand-in).

Put it between the app's real clients and the local AWS or Slack, then choose what goes
wrong, for which calls, how often::

    with FaultProxy("http://127.0.0.1:5000", seed=7, name="aws") as aws:
        os.environ["AWS_ENDPOINT_URL"] = aws.url         # boto3 now talks to the proxy
        aws.add("iam:ListPolicies", delay(1.5))           # every ListPolicies waits 1.5 s
        aws.add("dynamodb:TransactWriteItems", lose_response(), probability=0.2)
        aws.add("iam:*", error(500, code="ServiceFailure"), count=3)
        ...
        aws.faults_off()                                  # recovery: everything passes again
        print(aws.report())                               # what was injected, call by call

A call is named ``<service>:<action>``, matched with :mod:`fnmatch` patterns:

* DynamoDB (JSON protocol): the ``X-Amz-Target`` header, ``DynamoDB_20120810.GetItem`` ->
  ``dynamodb:GetItem``;
* IAM, STS and other query-protocol services: the ``Action=`` form field, with the service
  from the SigV4 credential scope of ``Authorization`` (``.../us-east-1/iam/aws4_request``)
  or, failing that, the ``Host`` name -> ``iam:CreatePolicy``;
* Slack Web API: the path ``/api/<method>`` -> ``slack:chat.postMessage``.

What a rule can do to a matching call (each a small value made by a factory below):

* :func:`error` - answer at once without forwarding: an AWS-shaped error (JSON for
  DynamoDB, the query protocol's XML for IAM/STS) or, for Slack, HTTP ``status`` with
  ``{"ok": false, "error": ...}``; :func:`throttle` is the throttling flavour (AWS
  ``ThrottlingException`` 400, Slack HTTP 429 with ``Retry-After``), :func:`slack_error`
  Slack's ``HTTP 200 {"ok": false, "error": name}``;
* :func:`delay` - wait, then forward (the call succeeds, late);
* :func:`drop` - close the connection without forwarding (the call never happened);
* :func:`lose_response` - forward, let the upstream act, then close the client's connection
  without answering (the call happened; the client cannot know, and its retry repeats it).

A rule fires with a ``probability`` (drawn from ``random.Random(seed)``, one draw per
matching call, in arrival order), at most ``count`` times, after letting the first ``skip``
matching calls through, and only when ``when(call)`` (optional) says so. Rules are tried in
the order they were added; the first that fires decides. Every call is recorded with the
decision taken (``log``, ``injected()``, ``report()``), so a failing seed shows what was
injected where. ``faults_off()`` lets everything through (rules are kept; ``faults_on()``
arms them again); ``clear()`` forgets rules and the log.

DynamoDB idempotency: ``TransactWriteItems`` carries a ``ClientRequestToken`` (botocore
fills one per call and repeats it on retries); real DynamoDB answers a repeat of a
successful transaction with success, without applying it again. moto does not implement
that, so after a *lost response* the client's retry would fail its conditions and look like
a conflict that real DynamoDB never reports. The proxy fills the gap (``dynamodb_idempotency``,
on by default): a repeated token whose first call succeeded gets that first answer again.

Threaded (``http.server.ThreadingHTTPServer`` + ``http.client``), bound to 127.0.0.1 on a
free port, stdlib only; stop it with ``stop()`` or by leaving the ``with`` block.
"""

from __future__ import annotations

import fnmatch
import http.client
import json
import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional
from urllib.parse import parse_qsl, urlsplit

from local.background import ServedInBackground

__all__ = ["FaultProxy", "Call", "Rule", "Decision", "error", "throttle", "slack_error", "delay", "drop",
           "lose_response", "call_name"]

HOST = "127.0.0.1"
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade", "content-length"}
_SCOPE = re.compile(r"Credential=[^/,]+/\d{8}/[^/,]+/([^/,]+)/aws4_request")


# --------------------------------------------------------------------------- what a call is
@dataclass(frozen=True)
class Call:
    """One request through the proxy, as the rules see it."""

    service: str  # "dynamodb", "iam", "sts", "slack", or "" when unknown
    action: str  # "TransactWriteItems", "CreatePolicy", "chat.postMessage", ...
    method: str
    path: str
    headers: dict  # lower-case names
    body: bytes

    @property
    def name(self) -> str:
        return f"{self.service}:{self.action}"

    @property
    def protocol(self) -> str:
        """"json" (DynamoDB & co), "query" (IAM, STS: XML answers) or "slack"."""
        if self.service == "slack":
            return "slack"
        return "json" if "x-amz-target" in self.headers else "query"

    def form(self) -> dict:
        """The body's form fields (query protocol, Slack form posts); {} if it is not a form."""
        try:
            return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError):
            return {}

    def json(self) -> dict:
        try:
            data = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def params(self) -> dict:
        """What the call carries, whatever its encoding (JSON body, form body or query string)."""
        out = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        ctype = self.headers.get("content-type", "")
        out.update(self.json() if "json" in ctype else self.form())
        return out


def call_name(method: str, path: str, headers: dict, body: bytes) -> tuple[str, str]:
    """(service, action) of a request, from the AWS wire protocols or Slack's path."""
    headers = {k.lower(): v for k, v in headers.items()}
    route = urlsplit(path).path
    if route.startswith("/api/"):
        return "slack", route[len("/api/"):]
    target = headers.get("x-amz-target")
    if target:
        prefix, _, action = target.partition(".")
        service = prefix.split("_", 1)[0].lower()
        return {"dynamodb": "dynamodb", "dynamodbstreams": "dynamodbstreams"}.get(service, service), action
    action = dict(parse_qsl(urlsplit(path).query)).get("Action", "")
    if not action and body:
        try:
            action = dict(parse_qsl(body.decode("utf-8"))).get("Action", "")
        except (UnicodeDecodeError, ValueError):
            action = ""
    scope = _SCOPE.search(headers.get("authorization", ""))
    service = scope.group(1) if scope else headers.get("host", "").split(".", 1)[0].split(":", 1)[0]
    return service, action


# --------------------------------------------------------------------------- what a rule does
@dataclass(frozen=True)
class Error:
    status: int
    body: Optional[bytes | dict | str] = None
    code: Optional[str] = None
    headers: tuple = ()
    kind: str = "error"

    def describe(self) -> str:
        extra = dict(self.headers)
        what = f"{self.status}" + (f" {self.code}" if self.code else "")
        if "Retry-After" in extra:
            what += f" Retry-After {extra['Retry-After']}"
        return f"{self.kind} {what}"

    def render(self, call: Call) -> tuple[int, dict, bytes]:
        headers = dict(self.headers)
        if self.body is not None:
            body = self.body
            if isinstance(body, dict):
                headers.setdefault("Content-Type", "application/json; charset=utf-8")
                body = json.dumps(body).encode()
            elif isinstance(body, str):
                body = body.encode()
            return self.status, headers, body
        code = self.code or ("InternalFailure" if self.status >= 500 else "ThrottlingException")
        status = self.status
        if call.protocol != "slack" and self.kind == "throttle":
            status = 400  # AWS says throttling with 400 and the code; Retry-After is Slack's
            code = self.code or ("Throttling" if call.protocol == "query" else "ThrottlingException")
        if call.protocol == "slack":
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
            slack_code = self.code or ("ratelimited" if self.status == 429 else "internal_error")
            return self.status, headers, json.dumps({"ok": False, "error": slack_code}).encode()
        if call.protocol == "json":
            headers.setdefault("Content-Type", "application/x-amz-json-1.0")
            headers.setdefault("x-amzn-RequestId", "faultproxy")
            prefix = "com.amazonaws.dynamodb.v20120810#" if call.service == "dynamodb" else ""
            return status, headers, json.dumps({"__type": prefix + code,
                                                     "message": f"injected by faultproxy: {code}"}).encode()
        headers.setdefault("Content-Type", "text/xml")
        side = "Receiver" if status >= 500 else "Sender"
        xml = (f"<ErrorResponse><Error><Type>{side}</Type><Code>{code}</Code>"
               f"<Message>injected by faultproxy: {code}</Message></Error>"
               f"<RequestId>faultproxy</RequestId></ErrorResponse>")
        return status, headers, xml.encode()


@dataclass(frozen=True)
class Delay:
    seconds: float
    kind: str = "delay"

    def describe(self) -> str:
        return f"delay {self.seconds:g}s"


@dataclass(frozen=True)
class Drop:
    reset: bool = False  # RST instead of a clean close
    kind: str = "drop"

    def describe(self) -> str:
        return "drop (not forwarded)" + (" RST" if self.reset else "")


@dataclass(frozen=True)
class LoseResponse:
    kind: str = "lose_response"

    def describe(self) -> str:
        return "lose_response (forwarded, answer lost)"


Action = Error | Delay | Drop | LoseResponse


def error(status: int = 500, body: bytes | dict | str | None = None, *, code: str | None = None,
          headers: dict | None = None) -> Error:
    """Answer ``status`` without forwarding. ``body`` given: sent as is (a dict as JSON).
    Else shaped for the call's protocol with ``code`` (default ``InternalFailure`` for 5xx,
    ``ThrottlingException`` otherwise; Slack: ``internal_error`` / ``ratelimited``)."""
    return Error(status, body, code, tuple((headers or {}).items()))


def throttle(retry_after: int = 1) -> Error:
    """Throttling as each upstream says it: Slack HTTP 429 + ``Retry-After``; AWS answers
    the 400 ``ThrottlingException`` (the header is ignored by AWS clients)."""
    return Error(429, None, None, (("Retry-After", str(retry_after)),), kind="throttle")


def slack_error(name: str = "fatal_error") -> Error:
    """Slack's application-level failure: HTTP 200 ``{"ok": false, "error": name}``."""
    return Error(200, {"ok": False, "error": name}, name, kind="slack_error")


def delay(seconds: float) -> Delay:
    return Delay(float(seconds))


def drop(reset: bool = False) -> Drop:
    return Drop(reset)


def lose_response() -> LoseResponse:
    return LoseResponse()


@dataclass(eq=False)
class Rule:
    match: str  # fnmatch pattern on "<service>:<action>", e.g. "iam:*", "slack:chat.*"
    action: Action
    probability: float = 1.0
    count: Optional[int] = None  # fire at most this many times (None: no limit)
    skip: int = 0  # let this many matching calls through first
    when: Optional[Callable[[Call], bool]] = None
    name: str = ""
    seen: int = 0  # matching calls so far
    fired: int = 0

    def matches(self, call: Call) -> bool:
        return fnmatch.fnmatchcase(call.name, self.match) and (self.when is None or bool(self.when(call)))

    def describe(self) -> str:
        bits = [f"{self.match} -> {self.action.describe()}"]
        if self.probability < 1:
            bits.append(f"p={self.probability:g}")
        if self.count is not None:
            bits.append(f"x{self.count}")
        if self.skip:
            bits.append(f"after {self.skip}")
        return " ".join(bits) + (f" [{self.name}]" if self.name else "")


@dataclass(frozen=True)
class Decision:
    seq: int
    at: float  # seconds since the proxy started (monotonic)
    call: str  # "iam:CreatePolicy"
    action: str  # "pass", or the injected action's description
    rule: str = ""  # the rule's name or pattern
    status: Optional[int] = None  # what the upstream answered (None: not forwarded / no answer)
    note: str = ""

    @property
    def injected(self) -> bool:
        return self.action != "pass"

    def line(self) -> str:
        up = f" upstream {self.status}" if self.status is not None else ""
        return (f"#{self.seq:04d} +{self.at:7.3f}s {self.call:<40} {self.action}"
                f"{' [' + self.rule + ']' if self.rule else ''}{up}{' ' + self.note if self.note else ''}")


# --------------------------------------------------------------------------- the proxy
class FaultProxy(ServedInBackground):
    """A threaded HTTP proxy to ``upstream`` with a settable, thread-safe rule table."""

    def __init__(self, upstream: str, *, seed: int = 0, name: str = "", port: int = 0,
                 dynamodb_idempotency: bool = True, upstream_timeout: float = 30.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http://host:port URL, not {upstream!r}")
        self.upstream = upstream
        self.name = name or parts.netloc
        self._up_host, self._up_port = parts.hostname, parts.port or 80
        self._up_prefix = parts.path.rstrip("/")
        self._port = port
        self._timeout = upstream_timeout
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._enabled = True
        self._rng = random.Random(seed)
        self.seed = seed
        self.log: list[Decision] = []
        self._seq = 0
        self._t0 = time.monotonic()
        self._idempotency = dynamodb_idempotency
        self._tokens: dict[str, tuple[int, list, bytes]] = {}
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # ---- lifecycle -------------------------------------------------------------
    def start(self) -> "FaultProxy":
        return self._serve(self._port, _Handler, f"faultproxy-{self.name}", proxy=self)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FaultProxy is not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The proxy's base URL, with the upstream's path (``.../api/`` for the stand-in)."""
        return f"http://{HOST}:{self.port}{self._up_prefix}" + ("/" if self._up_prefix else "")

    # ---- the rule table ----------------------------------------------------------
    def add(self, match: str, action: Action, *, probability: float = 1.0, count: int | None = None,
            skip: int = 0, when: Callable[[Call], bool] | None = None, name: str = "") -> Rule:
        if not 0 <= probability <= 1:
            raise ValueError("probability must be within [0, 1]")
        rule = Rule(match, action, probability, count, skip, when, name)
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule: Rule) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r is not rule]

    @property
    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    def faults_off(self) -> None:
        """Every call passes from now on (the rules stay, for ``faults_on`` and the report)."""
        with self._lock:
            self._enabled = False

    def faults_on(self) -> None:
        with self._lock:
            self._enabled = True

    @property
    def enabled(self) -> bool:
        return self._enabled

    def clear(self, seed: int | None = None) -> None:
        """Forget rules, the log and remembered transaction tokens; faults on; reseed if given."""
        with self._lock:
            self._rules.clear()
            self.log = []
            self._seq = 0
            self._t0 = time.monotonic()
            self._tokens.clear()
            self._enabled = True
            if seed is not None:
                self.seed = seed
                self._rng = random.Random(seed)

    # ---- what happened -----------------------------------------------------------
    def injected(self) -> list[Decision]:
        with self._lock:
            return [d for d in self.log if d.injected]

    def calls(self, pattern: str = "*") -> list[Decision]:
        with self._lock:
            return [d for d in self.log if fnmatch.fnmatchcase(d.call, pattern)]

    def report(self, everything: bool = False) -> str:
        """The rules (matched / fired) and every injected decision (``everything``: every call)."""
        with self._lock:
            rules = [f"  rule {r.describe()}: matched {r.seen}, fired {r.fired}" for r in self._rules]
            log = [d for d in self.log if everything or d.injected or d.note]
            total, injected = len(self.log), sum(d.injected for d in self.log)
        lines = [f"faultproxy {self.name} (seed {self.seed}) -> {self.upstream}: {total} calls, {injected} injected",
                 *rules, *("  " + d.line() for d in log)]
        return "\n".join(lines)

    # ---- deciding (called by the handler threads) ----------------------------------
    def _decide(self, call: Call) -> tuple[int, Optional[Rule]]:
        with self._lock:
            self._seq += 1
            seq = self._seq
            if not self._enabled:
                return seq, None
            for rule in self._rules:
                if not rule.matches(call):
                    continue
                rule.seen += 1
                if rule.seen <= rule.skip:
                    continue
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                if rule.probability < 1 and self._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                return seq, rule
            return seq, None

    def _record(self, seq: int, call: Call, action: str, rule: Optional[Rule], status: Optional[int] = None,
                note: str = "") -> None:
        d = Decision(seq, time.monotonic() - self._t0, call.name, action,
                     (rule.name or rule.match) if rule else "", status, note)
        with self._lock:
            self.log.append(d)

    def _token(self, call: Call) -> Optional[str]:
        if not (self._idempotency and call.service == "dynamodb" and call.action == "TransactWriteItems"):
            return None
        token = call.json().get("ClientRequestToken")
        return token if isinstance(token, str) and token else None

    def _forward(self, call: Call) -> tuple[int, list, bytes]:
        conn = http.client.HTTPConnection(self._up_host, self._up_port, timeout=self._timeout)
        try:
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            headers = {k: v for k, v in call.headers.items() if k not in _HOP_BY_HOP}
            headers["content-length"] = str(len(call.body))
            conn.request(call.method, call.path, body=call.body if call.body or call.method != "GET" else None,
                         headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP], data
        finally:
            conn.close()

    def handle(self, call: Call) -> tuple[str, Optional[tuple[int, list, bytes]], Optional[Drop]]:
        """What to do with one call: ("answer", (status, headers, body), None) or
        ("close", None, drop-or-None). Runs in the handler's thread."""
        seq, rule = self._decide(call)
        action = rule.action if rule else None
        if isinstance(action, Delay):
            time.sleep(action.seconds)
        if isinstance(action, Error):
            status, headers, body = action.render(call)
            self._record(seq, call, action.describe(), rule)
            return "answer", (status, list(headers.items()), body), None
        if isinstance(action, Drop):
            self._record(seq, call, action.describe(), rule)
            return "close", None, action
        token = self._token(call)
        if token is not None:
            with self._lock:
                replay = self._tokens.get(token)
            if replay is not None:
                self._record(seq, call, action.describe() if action else "pass", rule, replay[0],
                             note="(repeated ClientRequestToken: the first answer, not applied again)")
                if isinstance(action, LoseResponse):
                    return "close", None, None
                return "answer", replay, None
        try:
            answer = self._forward(call)
        except OSError as exc:  # the upstream itself failed: the client sees a dropped connection
            self._record(seq, call, action.describe() if action else "pass", rule,
                         note=f"(upstream unreachable: {type(exc).__name__})")
            return "close", None, None
        if token is not None and answer[0] == 200:
            with self._lock:
                self._tokens[token] = answer
        self._record(seq, call, action.describe() if action else "pass", rule, answer[0])
        if isinstance(action, LoseResponse):
            return "close", None, None
        return "answer", answer, None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect
    server_version = "faultproxy/1"

    def setup(self) -> None:
        super().setup()
        # Small header and body writes on a keep-alive connection would otherwise meet Nagle's
        # algorithm and the client's delayed ACK: 40 ms per call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet
        pass

    @property
    def proxy(self) -> FaultProxy:
        return self.server.proxy  # type: ignore[attr-defined]

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        body = self._body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        service, action = call_name(self.command, self.path, headers, body)
        call = Call(service, action, self.command, self.path, headers, body)
        what, answer, dropped = self.proxy.handle(call)
        if what == "close":
            if dropped is not None and dropped.reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        status, resp_headers, data = answer
        self.send_response(status)
        for k, v in resp_headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        if headers.get("connection", "").lower() == "close":
            self.send_header("Connection", "close")
            self.close_connection = True
        self._headers_buffer.append(b"\r\n")  # end_headers(), with the body in the same write
        if self.command != "HEAD":
            self._headers_buffer.append(data)
        self.flush_headers()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve
