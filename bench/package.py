"""Deployment package: the Lambda zip as deployed (after deploy/package.py's slim step), and
what its bytecode is worth at cold start.

Uses the newest ``build/*/deployment.zip`` when ``make package`` made one (an older zip
without bytecode is slimmed in a temporary copy first); otherwise (full run only) builds one
as ``make package`` does - ``chalice package`` with the rendered policies and merge template,
in a temporary copy of the app - and applies the same ``slim()``. That needs PyPI for the
Lambda platform's wheels. Under ``--smoke`` it never builds.

The import row runs ``python -S`` in the unpacked zip (sys.path: the zip, then only what the
Lambda runtime provides, as deploy/package.py's smoke import), ``PYTHONDONTWRITEBYTECODE=1``
as on read-only /var/task, and times importing every chalicelib module plus what the
handlers import on first use - once with the zip's ``.pyc``, once with every ``__pycache__``
removed (so every module is compiled, as at each cold start of a zip without bytecode).
boto3/botocore are imported before the clock starts: they come from the runtime either way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from deploy import package as pkg
from deploy import render

from .harness import NA, ROOT, Row, median, met, ms

GOAL_BYTES = pkg.ZIP_GOAL_BYTES
ROWS = ["Deployment zip size", "boto3 / botocore inside the zip", "Largest parts of the zip",
        "Handler imports from the unpacked zip: with its .pyc / compiling every module"]

TIMED_IMPORTS = r"""
import boto3, botocore.config, botocore.exceptions  # the runtime's: not what is measured
import importlib, json, pkgutil, sys, time
t0 = time.perf_counter()
import app
import chalicelib
for m in pkgutil.walk_packages(chalicelib.__path__, "chalicelib."):
    importlib.import_module(m.name)
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps({"seconds": time.perf_counter() - t0, "modules": len(sys.modules)}))
"""


def row_names() -> list[str]:
    return list(ROWS)


def _build(tmp: Path) -> Path:
    """deployment.zip as `make package STAGE=dev` builds it (policies, merge template,
    `chalice package`, slim), in a temporary copy of the app."""
    stage, region = "dev", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    project = tmp / "drawbridge"
    project.mkdir()
    shutil.copy2(ROOT / "app.py", project / "app.py")
    shutil.copy2(ROOT / "requirements.txt", project / "requirements.txt")
    shutil.copytree(ROOT / "chalicelib", project / "chalicelib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(ROOT / "policies" / "access.toml", project / "chalicelib" / "access.toml")
    (project / ".chalice").mkdir()
    shutil.copy2(ROOT / ".chalice" / "config.json", project / ".chalice" / "config.json")
    render.write_policies(stage, account=render.account_id(), region=region, out_dir=project / ".chalice")
    merge = tmp / f"merge-{stage}.json"
    merge.write_text(json.dumps(render.merge_template(stage), indent=2))
    out = tmp / "out"
    chalice = Path(sys.executable).with_name("chalice")
    proc = subprocess.run([str(chalice), "package", "--stage", stage, "--merge-template", str(merge), str(out)],
                          cwd=project, env={**os.environ, "AWS_DEFAULT_REGION": region},
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"chalice package failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
    zpath = out / "deployment.zip"
    pkg.slim(zpath, pkg.lambda_runtime(json.loads((out / "sam.json").read_text())))
    return zpath


def run(smoke: bool) -> list[Row]:
    runs = 1 if smoke else 5
    built = sorted(ROOT.glob("build/*/deployment.zip"), key=lambda p: p.stat().st_mtime)
    with tempfile.TemporaryDirectory(prefix="drawbridge-bench-") as tmp:
        if built:
            zpath, where = built[-1], str(built[-1].relative_to(ROOT))
            if not _has_bytecode(zpath):  # made before slim() existed: measure what would deploy
                copy = Path(tmp, "deployment.zip")
                shutil.copy2(zpath, copy)
                pkg.slim(copy, pkg.lambda_runtime(json.loads(zpath.with_name("sam.json").read_text())))
                zpath, where = copy, f"{where}, slimmed in a temporary copy"
            return _rows(zpath, where, runs)
        if smoke:
            return [Row(r, "n/a (run make package)", "—", NA) for r in ROWS]
        return _rows(_build(Path(tmp)), "built as make package does, in a temporary directory", runs)


def _has_bytecode(zpath: Path) -> bool:
    with zipfile.ZipFile(zpath) as z:
        return any(n.endswith(".pyc") for n in z.namelist())


def import_seconds(zpath: Path, *, bytecode: bool, runs: int) -> list[float]:
    """Seconds to import the handler modules from the unpacked zip, one fresh process each."""
    times = []
    with pkg.lambda_tree(zpath, bytecode=bytecode) as (code_dir, env):
        for _ in range(runs):
            proc = subprocess.run([sys.executable, "-S", "-c", TIMED_IMPORTS, *pkg.LAZY_IMPORTS], cwd=code_dir,
                                  env={**env, "PYTHONDONTWRITEBYTECODE": "1"}, capture_output=True, text=True,
                                  timeout=120)
            if proc.returncode != 0:
                raise RuntimeError(f"import from the unpacked zip failed: {proc.stderr[-500:]}")
            times.append(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])
    return times


def _rows(zpath: Path, where: str, runs: int) -> list[Row]:
    size = zpath.stat().st_size
    with zipfile.ZipFile(zpath) as z:
        names = z.namelist()
    pyc = sum(1 for n in names if n.endswith(".pyc"))
    boto_files = [n for n in names if n.split("/", 1)[0] in ("boto3", "botocore")]
    largest = pkg.describe_parts(pkg.largest_parts(zpath, 6))
    with_pyc, without = [], []
    for _ in range(runs):  # alternate, so drift on a shared machine hits both alike
        with_pyc += import_seconds(zpath, bytecode=True, runs=1)
        without += import_seconds(zpath, bytecode=False, runs=1)
    fast, slow = median(with_pyc), median(without)
    return [
        Row("Deployment zip size",
            f"{size / 1e6:.2f} MB = {size / 2**20:.2f} MiB ({size:,} bytes; {len(names):,} files, {pyc} of them "
            f".pyc; {where})",
            f"≤ {GOAL_BYTES / 1e6:g} MB", met(size <= GOAL_BYTES)),
        Row("boto3 / botocore inside the zip", f"{len(boto_files)} files under boto3/ or botocore/",
            "not inside", met(not boto_files)),
        Row("Largest parts of the zip", f"{largest} (compressed, bytecode included)", "—", "—"),
        Row("Handler imports from the unpacked zip: with its .pyc / compiling every module",
            f"{ms(fast)} ms / {ms(slow)} ms (median of {runs}, fresh python -S each, PYTHONDONTWRITEBYTECODE=1; "
            "boto3 imported before the clock)", "—", "—"),
    ]
