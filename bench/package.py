"""Deployment package: the Lambda zip's size, and boto3/botocore not inside it.

Uses ``build/*/deployment.zip`` when ``make package`` made one; otherwise (full run
only) builds one with ``chalice package`` in a temporary copy of the app (app.py,
chalicelib/, requirements.txt, the catalog, .chalice/config.json) - that needs PyPI
for the Lambda platform's wheels. Under ``--smoke`` it never builds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

from .harness import NA, ROOT, Row, met

GOAL_MB = 3.0
ROWS = ["Deployment zip size", "boto3 / botocore inside the zip", "Largest parts of the zip"]


def row_names() -> list[str]:
    return list(ROWS)


def _build(tmp: Path) -> Path:
    project = tmp / "drawbridge"
    project.mkdir()
    shutil.copy2(ROOT / "app.py", project / "app.py")
    shutil.copy2(ROOT / "requirements.txt", project / "requirements.txt")
    shutil.copytree(ROOT / "chalicelib", project / "chalicelib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(ROOT / "policies" / "access.toml", project / "chalicelib" / "access.toml")
    (project / ".chalice").mkdir()
    config = ROOT / ".chalice" / "config.json"
    if config.exists():
        for f in (ROOT / ".chalice").glob("*.json"):
            shutil.copy2(f, project / ".chalice" / f.name)
    else:
        (project / ".chalice" / "config.json").write_text(
            '{"version": "2.0", "app_name": "drawbridge", "stages": {"dev": {"api_gateway_stage": "api"}}}')
    out = tmp / "out"
    chalice = Path(sys.executable).with_name("chalice")
    proc = subprocess.run([str(chalice), "package", "--stage", "dev", str(out)], cwd=project,
                          env={**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")},
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"chalice package failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
    return out / "deployment.zip"


def _top(name: str) -> str:
    head = name.split("/", 1)[0]
    if head.endswith((".dist-info", ".libs")):
        head = head.rsplit("-", 1)[0] if head.endswith(".dist-info") else head
        head = head.split("-")[0] + " (metadata/libs)"
    return head


def run(smoke: bool) -> list[Row]:
    built = sorted(ROOT.glob("build/*/deployment.zip"), key=lambda p: p.stat().st_mtime)
    if built:
        zpath, where = built[-1], str(built[-1].relative_to(ROOT))
        return _rows(zpath, where)
    if smoke:
        return [Row(r, "n/a (run make package)", "—", NA) for r in ROWS]
    with tempfile.TemporaryDirectory(prefix="drawbridge-bench-") as tmp:
        zpath = _build(Path(tmp))
        return _rows(zpath, "built by chalice package into a temporary directory")


def _rows(zpath: Path, where: str) -> list[Row]:
    size_mb = zpath.stat().st_size / 2**20
    with zipfile.ZipFile(zpath) as z:
        infos = z.infolist()
    names = [i.filename for i in infos]
    boto_files = [n for n in names if n.split("/", 1)[0] in ("boto3", "botocore")]
    sizes: Counter = Counter()
    for i in infos:
        sizes[_top(i.filename)] += i.compress_size
    largest = ", ".join(f"{name} {n / 2**20:.2f} MB" for name, n in sizes.most_common(5))
    return [
        Row("Deployment zip size", f"{size_mb:.2f} MB ({where}; {len(names):,} files)",
            f"≤ {GOAL_MB:g} MB", met(size_mb <= GOAL_MB)),
        Row("boto3 / botocore inside the zip", f"{len(boto_files)} files under boto3/ or botocore/",
            "not inside", met(not boto_files)),
        Row("Largest parts of the zip", f"{largest} (compressed)", "—", "—"),
    ]
