"""End to end over real HTTP: the demo's story on the embedded local stack (subprocesses).

The same harness as ``make demo`` (local.stack.LocalStack + local.demo.run_story), plus
the promise that the stack leaves nothing behind: no process, no listening port, on a
normal exit, on an exception, and when the driver gets Ctrl-C.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local.demo import Story, run_story, summary_line
from local.stack import ROOT, LocalStack, port_open

pytestmark = pytest.mark.e2e


def _groups() -> dict[int, list[int]]:
    """Process group -> member pids, from /proc (Linux)."""
    groups: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if fields[0] != "Z":
            groups.setdefault(int(fields[2]), []).append(int(entry.name))
    return groups


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def assert_nothing_left(children: list[dict]) -> None:
    assert len(children) == 3, children
    groups = _groups() if Path("/proc/self/stat").exists() else {}
    for c in children:
        assert _gone(c["pid"]), f"{c['name']} (pid {c['pid']}) is still running"
        assert c["pid"] not in groups, f"{c['name']}'s process group {c['pid']} still has {groups[c['pid']]}"
        assert c["port"] > 0 and not port_open(c["port"]), f"{c['name']}'s port {c['port']} is still open"


@pytest.fixture(scope="module")
def played():
    """One stack, the whole story, then the stack stopped; what the tests below look at."""
    lines: list[str] = []
    t0 = time.monotonic()
    with LocalStack(slack_output="log") as stack:
        result = run_story(stack, out=lines.append)
        children = [{"name": c.name, "pid": c.pid, "port": c.port} for c in stack.children]
        urls = (stack.moto_url, stack.slack_api_url, stack.app_url)
    return result, lines, children, urls, time.monotonic() - t0


def test_the_demo_story_passes_over_real_http(played):
    result, lines, _, urls, seconds = played
    assert all(url.startswith("http://127.0.0.1:") for url in urls), urls
    assert result.ok, summary_line(result, seconds) + "\n" + "\n".join(lines)
    assert result.passed == list(range(1, result.total + 1)) and result.total == len(Story.STEPS)
    assert seconds < 60


def test_nothing_is_left_after_the_context_exits(played):
    _, _, children, _, _ = played
    assert {c["name"] for c in children} == {"moto", "slack", "app"}
    assert_nothing_left(children)


def test_an_exception_inside_the_context_stops_everything():
    with pytest.raises(RuntimeError, match="boom"):
        with LocalStack(slack_output="null") as stack:
            children = [{"name": c.name, "pid": c.pid, "port": c.port} for c in stack.children]
            assert all(port_open(c["port"]) for c in children)
            raise RuntimeError("boom")
    assert stack.log_dir is not None and stack.log_dir.is_dir()  # kept: a failure's evidence
    shutil.rmtree(stack.log_dir)
    assert_nothing_left(children)


def test_ctrl_c_on_make_dev_stops_everything(tmp_path):
    state = tmp_path / "dev-state.json"
    driver = subprocess.Popen([sys.executable, "-m", "local.dev", "--state", str(state), "up"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 45
        while not state.is_file() and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert state.is_file(), f"make dev did not come up: {driver.poll()=}"
        info = json.loads(state.read_text())
        children = info["children"]
        assert all(port_open(c["port"]) for c in children)
        # a client command against the running stack
        out = subprocess.run([sys.executable, "-m", "local.dev", "--state", str(state), "send", "--as", "alice",
                              "/aws-access prod admin 30m checking"], cwd=ROOT, capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 0 and "HTTP 200" in out.stdout and "req-" in out.stdout, out.stdout + out.stderr
        rid = re.search(r"req-[0-9]{8}-[0-9a-f]{6}", out.stdout).group(0)
        # bob opens his App Home: the request waits for him there, with its buttons
        home = subprocess.run([sys.executable, "-m", "local.dev", "--state", str(state), "home", "--as", "bob"],
                              cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert home.returncode == 0 and "App Home of @bob" in home.stdout, home.stdout + home.stderr
        assert f"click --as bob approve_request {rid}" in home.stdout, home.stdout
        os.kill(driver.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
        output, _ = driver.communicate(timeout=30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 0, output
    assert "stopped; every local process is gone" in output
    assert not state.exists()
    assert_nothing_left(children)
