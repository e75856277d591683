"""Child processes on 127.0.0.1: free ports, readiness, logs, and stopping them for sure.

:class:`Processes` starts each child in its own process group with its output in
``<log dir>/<name>.log``, waits until it answers, and stops them all (SIGTERM to the
group, SIGKILL after a timeout) when asked, on SIGTERM/SIGHUP (turned into
``SystemExit`` in the main thread, so ``with`` blocks unwind) and at interpreter exit. On
Linux each child also gets SIGTERM if the process that started it dies, even by SIGKILL
(``PR_SET_PDEATHSIG``). Children see :func:`child_base_env`: the shell's environment
minus anything that could point them at a real AWS account or another Slack.

Also the loopback plumbing the stack and its driver share: :func:`free_port`,
:func:`port_open` and :func:`http` (urllib with proxies off).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

HOST = "127.0.0.1"  # loopback only, never all interfaces
DROPPED_PREFIXES = ("AWS_", "DRAWBRIDGE_", "SLACK_", "MOTO_", "TEST_SERVER_MODE")


class StackError(RuntimeError):
    """A part of the local stack did not start (the message says which, and shows its log)."""


# --------------------------------------------------------------------------- loopback
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


def answers(url: str) -> bool:
    """Whether anything answers a GET of ``url`` (any status)."""
    try:
        http("GET", url, timeout=1)
        return True
    except (OSError, urllib.error.URLError):
        return False


def child_base_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The shell's environment without anything that could point a child elsewhere
    (AWS profiles and credentials, a Lambda name, another Slack), loopback never proxied."""
    env = dict(os.environ if env is None else env)
    base = {k: v for k, v in env.items() if not k.upper().startswith(DROPPED_PREFIXES)}
    for var in ("NO_PROXY", "no_proxy"):
        parts = [p for p in base.get(var, "").split(",") if p]
        base[var] = ",".join(parts + [h for h in ("127.0.0.1", "localhost") if h not in parts])
    base["PYTHONUNBUFFERED"] = "1"
    return base


# --------------------------------------------------------------------------- one child
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


# --------------------------------------------------------------------------- the group
class Processes:
    """The children of one stack, their log directory, and their certain end."""

    def __init__(self, *, cwd: str | os.PathLike, ready_timeout: float = 40.0, keep_logs: bool = False,
                 prefix: str = "drawbridge-local-") -> None:
        self.cwd = cwd
        self.ready_timeout = ready_timeout
        self.keep_logs = keep_logs  # else stop() removes the log directory
        self.prefix = prefix
        self.children: list[Child] = []
        self.log_dir: Path | None = None
        self._stopping = threading.Lock()
        self._previous_handlers: dict[int, Any] = {}

    def open(self) -> Path:
        """The log directory, created; from now on stop() runs at exit and on SIGTERM/SIGHUP."""
        self.log_dir = Path(tempfile.mkdtemp(prefix=self.prefix))
        with _LIVE_LOCK:
            _LIVE.add(self)
        self._install_signal_handlers()
        return self.log_dir

    def spawn(self, name: str, cmd: list[str], *, stdout: str = "log", env: dict | None = None,
              port: int | None = None, attempts: int = 3) -> Child:
        """Start ``cmd`` (``{port}`` in it = a free port, unless ``port`` is given). ``stdout``:
        "log" (its log file), "inherit" (this terminal) or "null"; stderr always goes to the log."""
        assert self.log_dir is not None, "open() first"
        log_path = self.log_dir / f"{name}.log"
        for attempt in range(attempts):
            chosen = free_port() if port is None else port
            log = open(log_path, "ab")
            out: Any = {"inherit": None, "null": subprocess.DEVNULL}.get(stdout, log)
            popen = subprocess.Popen(
                [part.replace("{port}", str(chosen)) for part in cmd], cwd=self.cwd,
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

    def wait(self, child: Child, ready: Callable[[], bool]) -> None:
        """Until ``ready()``; StackError (with its log) if the child exits or time runs out."""
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


_LIVE: "set[Processes]" = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        groups = list(_LIVE)
    for group in groups:
        group.stop()
