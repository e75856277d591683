"""`python -m bench --smoke` runs every benchmark at tiny sizes and prints the whole table.

No timing is asserted (a shared CI machine makes times meaningless): only that every
declared row is there, no benchmark failed, and every figure holds a number.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NUMBER = re.compile(r"\d+(\.\d+)?")


def _table(stdout: str) -> list[list[str]]:
    rows = []
    for line in stdout.splitlines():
        if not line.startswith("| ") or line.startswith("| ---") or line.startswith("| Metric |"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        rows.append(cells)
    return rows


def test_smoke_run_prints_every_row_with_numbers():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DRAWBRIDGE_", "SLACK_"))}
    proc = subprocess.run([sys.executable, "-m", "bench", "--smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _table(proc.stdout)
    assert rows, proc.stdout
    assert all(len(r) == 4 for r in rows), rows

    from bench.__main__ import BENCHMARKS

    expected = [name for _, module in BENCHMARKS for name in importlib.import_module(module).row_names()]
    printed = [r[0] for r in rows]
    missing = [name for name in expected if name not in printed]
    assert not missing, f"rows missing from the table: {missing}"

    for metric, figure, goal, met in rows:
        assert "ERROR" not in figure, (metric, figure)
        assert met in {"yes", "no", "—", "n/a"}, (metric, met)
        if figure.startswith("n/a"):
            continue  # the package row, unless build/*/deployment.zip exists
        assert NUMBER.search(figure), (metric, figure)


def test_cheap_moto_transactions_still_roll_back():
    """The benchmarks' shortcut for moto's whole-table snapshot keeps cancelled
    transactions all-or-nothing (bench/harness.py, _cheap_moto)."""
    import contextlib

    from botocore.exceptions import ClientError

    from bench.harness import TABLE, stack

    with contextlib.redirect_stdout(open(os.devnull, "w")), stack() as st:  # noqa: SIM117
        db = st.dynamodb()
        db.put_item(TableName=TABLE, Item={"PK": {"S": "X"}, "SK": {"S": "B"}, "v": {"N": "1"}})
        try:
            db.transact_write_items(TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {"PK": {"S": "X"}, "SK": {"S": "A"}}}},
                {"Put": {"TableName": TABLE, "Item": {"PK": {"S": "X"}, "SK": {"S": "B"}, "v": {"N": "2"}},
                         "ConditionExpression": "attribute_not_exists(PK)"}},
            ])
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "TransactionCanceledException"
        else:
            raise AssertionError("the transaction should have been cancelled")
        assert "Item" not in db.get_item(TableName=TABLE, Key={"PK": {"S": "X"}, "SK": {"S": "A"}})
        assert db.get_item(TableName=TABLE, Key={"PK": {"S": "X"}, "SK": {"S": "B"}})["Item"]["v"] == {"N": "1"}
        db.transact_write_items(TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {"PK": {"S": "X"}, "SK": {"S": "C"}}}}])
        assert "Item" in db.get_item(TableName=TABLE, Key={"PK": {"S": "X"}, "SK": {"S": "C"}})


def test_the_smoke_run_never_installs_dynalite(monkeypatch, tmp_path):
    """`--smoke` asks for dynalite without installing: where it is not installed yet, the row
    says n/a and npm is never run; without node or npm the row says what it needs."""
    import shutil

    from bench import dynalite

    ran = []
    monkeypatch.setattr(dynalite, "CLI", tmp_path / "node_modules" / "dynalite" / "cli.js")
    monkeypatch.setattr(dynalite.subprocess, "run", lambda *a, **k: ran.append(a))
    cli, why = dynalite.available(install=False)
    assert cli is None and why.startswith("n/a") and ran == []
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert dynalite.available(install=True) == (None, "n/a (needs node and npm)") and ran == []
