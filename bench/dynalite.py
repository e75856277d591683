"""dynalite (the npm package: DynamoDB's API on LevelDB, in node) for the alert benchmark.

``available(install=...)``: the path of its ``cli.js`` under ``build/dynalite/`` (git-ignored),
installed there with ``npm install dynalite`` the first time the full benchmark asks for it;
None and why when node or npm are missing (or ``install`` is False and it is not there yet:
``--smoke`` never installs anything). ``running(cli)`` starts it on 127.0.0.1 on a free port
and stops it (by its own pid) when done; ``create_table`` makes the table from
policies/table.json as the app declares it. dynalite has no TransactWriteItems, no TTL and
does not return the item of a failed condition: the alert path needs none of them (a failed
claim is read back with a GetItem there, a third call on that rare path).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from typing import Iterator

from .harness import ROOT

HOME = ROOT / "build" / "dynalite"
CLI = HOME / "node_modules" / "dynalite" / "cli.js"
TEMPLATE = ROOT / "policies" / "table.json"


def available(install: bool) -> tuple[str | None, str]:
    """(path of cli.js, "") or (None, why not)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None, "n/a (needs node and npm)"
    if CLI.exists():
        return str(CLI), ""
    if not install:
        return None, "n/a (--smoke installs nothing; the full run installs dynalite into build/dynalite)"
    HOME.mkdir(parents=True, exist_ok=True)
    if not (HOME / "package.json").exists():
        (HOME / "package.json").write_text('{"name": "drawbridge-bench-dynalite", "private": true}\n')
    proc = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "dynalite"],
                          cwd=HOME, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not CLI.exists():
        return None, f"n/a (npm install dynalite failed: {(proc.stderr or proc.stdout).strip()[-120:]})"
    return str(CLI), ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(cli: str) -> Iterator[str]:
    """dynalite on 127.0.0.1 (in memory), its endpoint URL; stopped when the block ends."""
    port = _free_port()
    proc = subprocess.Popen(["node", cli, "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dynalite did not start: {proc.stdout.read() if proc.stdout else ''}"[:300])
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def create_table(client, table: str) -> None:
    """The table as policies/table.json declares it (keys and indexes; dynalite has no TTL)."""
    (resource,) = [r for r in json.loads(TEMPLATE.read_text())["Resources"].values()
                   if r["Type"] == "AWS::DynamoDB::Table"]
    props = resource["Properties"]
    client.create_table(TableName=table, **{k: props[k] for k in ("AttributeDefinitions", "KeySchema",
                                                                  "BillingMode", "GlobalSecondaryIndexes")})
    for _ in range(300):
        desc = client.describe_table(TableName=table)["Table"]
        if desc["TableStatus"] == "ACTIVE" and all(g.get("IndexStatus") == "ACTIVE"
                                                   for g in desc.get("GlobalSecondaryIndexes", [])):
            return
        time.sleep(0.1)
    raise RuntimeError("dynalite's table did not become ACTIVE")
