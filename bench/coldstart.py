"""Cold start: the app's import against boto3's, and a fresh process's first request.

* ``python -X importtime -c "import app"`` and ``... "import boto3"``, alternately,
  each in a fresh subprocess; the figure is the median of the top-level module's
  cumulative import time (what ``-X importtime`` prints on its own line).
* First request: moto runs as a server and the Slack stand-in beside it, both in this
  process, so the child imports nothing but the app (in-process moto would import
  botocore before the clock starts). Per run: reset moto, seed it (timed apart), then a
  fresh ``python bench/_first_request.py`` imports app and hands it one signed slash
  command as the Lambda runtime does, ``app.app(event, context)`` (a new request:
  open-requests query, conditional writes, one async ``lambda:Invoke`` of the worker),
  then a second one. (Not through ``chalice.test.Client``: importing it imports botocore
  and would hide that part of the cold path.)
"""

from __future__ import annotations

import os
import subprocess
import sys

from .harness import ROOT, Row, median, met, ms

GOAL_RATIO = 1.3
GOAL_FIRST_REQUEST = 1.0  # seconds: leaves room in Slack's 3 s for Lambda's own init and slower CPUs


def row_names() -> list[str]:
    return ["Cold import: app", "Cold import: boto3", "Cold import ratio app / boto3",
            "First request in a fresh process (import app + first slash command)",
            "First request: breakdown", "First request: process RSS after it",
            "First request: seeding moto (not part of the cold path)"]


def import_time(module: str) -> float:
    """Cumulative import time (s) of ``module`` in a fresh interpreter, from -X importtime."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
                          timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"import {module} failed: {proc.stderr[-500:]}")
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line.split("|")
        if len(parts) == 3 and parts[2].rstrip() == f" {module}":  # top level: no indentation
            return int(parts[1]) / 1e6
    raise RuntimeError(f"no top-level line for {module} in -X importtime output")


def first_requests(runs: int) -> tuple[list[dict], list[float], list[float]]:
    from .server import server_stack

    results, seeding, walls = [], [], []
    with server_stack() as ss:
        for _ in range(runs):
            seeding.append(ss.reseed())
            result, wall = ss.child()
            results.append(result)
            walls.append(wall)
    return results, seeding, walls


def run(smoke: bool) -> list[Row]:
    runs = 1 if smoke else 7
    app_s, boto_s = [], []
    for _ in range(runs):  # alternate, so drift on a shared machine hits both alike
        app_s.append(import_time("app"))
        boto_s.append(import_time("boto3"))
    app_m, boto_m = median(app_s), median(boto_s)
    ratio = app_m / boto_m

    results, seeding, walls = first_requests(1 if smoke else 5)

    def med(key: str) -> float:
        return median([r[key] for r in results])

    cold = median([r["import_app"] + r["first_command"] for r in results])
    return [
        Row("Cold import: app", f"{ms(app_m)} ms (median of {runs})", f"≤ {GOAL_RATIO}× boto3",
            met(ratio <= GOAL_RATIO)),
        Row("Cold import: boto3", f"{ms(boto_m)} ms (median of {runs})", "—", "—"),
        Row("Cold import ratio app / boto3", f"{ratio:.2f}×", f"≤ {GOAL_RATIO}×", met(ratio <= GOAL_RATIO)),
        Row("First request in a fresh process (import app + first slash command)",
            f"{ms(cold)} ms (median of {len(results)}; whole child process incl. interpreter start "
            f"{ms(median(walls))} ms)",
            f"≤ {GOAL_FIRST_REQUEST * 1000:.0f} ms", met(cold <= GOAL_FIRST_REQUEST)),
        Row("First request: breakdown",
            f"import app {ms(med('import_app'))} + first command {ms(med('first_command'))} ms; "
            f"second command in the same process {ms(med('second_command'))} ms", "—", "—"),
        Row("First request: process RSS after it", f"{med('rss_mb'):.0f} MB (after importing app "
            f"{med('rss_after_import_mb'):.0f} MB; {int(med('modules'))} modules loaded; a full gc.collect() "
            f"then takes {ms(med('gc_full'))} ms)", "—", "—"),
        Row("First request: seeding moto (not part of the cold path)", f"{ms(median(seeding))} ms", "—", "—"),
    ]
