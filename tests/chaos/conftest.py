"""The chaos smoke run's table, printed in pytest's terminal summary (section "chaos")."""

from __future__ import annotations

RESULTS: list = []  # RunResult of every smoke run (test_chaos_smoke.py)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not RESULTS:
        return
    from tests.chaos.runner import table

    terminalreporter.section("chaos (fixed seeds; `make chaos` runs 300)")
    terminalreporter.write_line(table(sorted(RESULTS, key=lambda r: r.seed), examples=1))
