"""``make review-export`` prints the export on stdout and nothing else (it is piped into a
file or jq): no echoed command line, and the virtualenv set-up's output goes to stderr."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
@pytest.mark.parametrize("fresh", [False, True], ids=["venv-ready", "venv-set-up-first"])
def test_make_review_export_prints_only_the_export(tmp_path, fresh):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    _stub(venv / "bin" / "python", 'echo "section,request_id"')  # stands in for the export
    _stub(venv / "bin" / "pip", 'echo "pip: installing lots of things"')
    _stub(tmp_path / "python3", 'echo "creating a virtualenv"')
    stamp = venv / ".installed-test"
    if not fresh:
        stamp.touch()
        os.utime(stamp, (4102444800, 4102444800))  # newer than the requirements files
    out = subprocess.run(
        ["make", "--no-print-directory", "review-export", f"VENV={venv}", f"BIN={venv / 'bin'}",
         f"STAMP={stamp}", f"PYTHON={tmp_path / 'python3'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout == "section,request_id\n"
    if fresh:
        assert "creating a virtualenv" in out.stderr and "pip: installing" in out.stderr
