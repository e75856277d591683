"""A Chalice user who runs `chalice deploy` / `chalice package` in a fresh clone gets one
line naming the make target, not a stack trace about a missing policy file (or, worse, a
deployed app without its table and rule state)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import _refuse_bare_chalice_deploy

ROOT = Path(__file__).resolve().parents[2]
CHALICE = str(Path(sys.executable).with_name("chalice"))


@pytest.mark.parametrize("argv, says", [
    ([CHALICE, "deploy"], "make deploy STAGE=dev DEPLOY_BUCKET=<bucket>"),
    ([CHALICE, "deploy", "--stage", "prod"], "make deploy STAGE=prod DEPLOY_BUCKET=<bucket>"),
    ([CHALICE, "--debug", "package", "--stage", "prod", "out"], "make package STAGE=prod"),
    ([CHALICE, "package", "out"], "make package STAGE=dev"),
])
def test_bare_deploy_and_package_name_the_make_target(argv, says):
    with pytest.raises(SystemExit) as exc:
        _refuse_bare_chalice_deploy(argv)
    assert says in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("argv", [
    [CHALICE, "package", "--stage", "dev", "--merge-template", "m.json", "out"],  # what make package runs
    [CHALICE, "local", "--port", "8000"],
    ["/var/runtime/bootstrap.py"],  # Lambda
    [str(Path(sys.executable).with_name("pytest")), "tests"],
    [],
])
def test_everything_else_is_left_alone(argv):
    _refuse_bare_chalice_deploy(argv)


def test_chalice_package_in_a_clone_prints_one_line(tmp_path):
    out = subprocess.run([CHALICE, "package", "--stage", "dev", str(tmp_path / "out")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"})
    assert out.returncode != 0
    assert out.stderr.strip() == ("drawbridge: use `make package STAGE=dev` instead of `chalice package` "
                                  "(it renders the IAM policies, the table and the rule state; docs/DEPLOY.md)")
    assert not (tmp_path / "out").exists()
