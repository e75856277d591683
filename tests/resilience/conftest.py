"""Resilience suite: races over real HTTP, idempotent jobs, a fault matrix, secrets.

The fault matrix's rows are collected in ``RESULTS`` and printed as one table in
pytest's terminal summary (and written to ``<pytest basetemp>/resilience-faults.txt``).
"""

from __future__ import annotations

from pathlib import Path

from tests.resilience.harness import RACES, RESULTS  # filled by test_faults.py / test_races.py


def fault_table() -> str:
    from tests.resilience.harness import INVARIANTS, KINDS

    if not RESULTS:
        return ""
    kinds = [k for k in KINDS if any(r.fault == k for r in RESULTS)]
    groups = list(dict.fromkeys(r.group for r in RESULTS))
    rows: dict[tuple[str, str], dict] = {}
    for r in sorted(RESULTS, key=lambda r: (groups.index(r.group), r.index)):
        rows.setdefault((r.flow, r.step), {})[r.fault] = r
    width = {k: (22 if k == 'transient' else 54) for k in kinds}
    lines = ["Fault matrix: every logical I/O call of each flow (numbered in fault-free order), failed",
             "three ways, then recovered (faults end; the person repeats what visibly failed, EventBridge",
             "redelivers a failed invocation; the sweep runs every minute).",
             *[f"  {k:<9} {KINDS[k].label}" for k in kinds],
             "Invariants checked after recovery (ok = all held):",
             *[f"  {k}  {v}" for k, v in INVARIANTS.items()],
             "  I6  (alert flow) each AssumeRole call alerts #security exactly once",
             "  H   every signed Slack request got HTTP 200",
             "[lost: ...]: a Slack message the fault-free run shows (a few minutes on, or at the end) is",
             "missing: \"card X\" the card never showed state X, \"DM X\" that DM never came. Not an",
             "invariant (the table stays the truth; /aws-access list shows it): docs/SECURITY.md section 7.",
             "",
             f"{'flow':<8} {'step':<52} " + " ".join(f"{k:<{width[k]}}" for k in kinds)]
    for (flow, step), cells in rows.items():
        repeat = next((c.outcome for c in cells.values() if c.outcome.startswith("= step")), None)
        if repeat:
            lines.append(f"{flow:<8} {step:<52} · the same job code as {repeat[2:]} (not repeated)")
            continue
        out = []
        for k in kinds:
            c = cells.get(k)
            if c is None:
                out.append(f"{'· (same operation above)' if k == 'transient' else '-':<{width[k]}}")
                continue
            mark = "ok" if c.held else "BROKEN " + ",".join(sorted(c.broken))
            out.append(f"{(mark + ' ' + c.outcome)[:width[k]]:<{width[k]}}")
        lines.append(f"{flow:<8} {step:<52} " + " ".join(out))
    ran = [r for r in RESULTS if not r.outcome.startswith("= step")]
    held = sum(r.held for r in ran)
    lines.append("")
    lines.append(f"{len(ran)} cells run over {len(rows)} steps: invariants held in {held}, "
                 f"broken in {len(ran) - held}")
    faults = sorted({r.fault_desc for r in RESULTS if r.fault_desc})
    lines.append("faults injected: " + "; ".join(faults))
    return "\n".join(lines)


def race_table() -> str:
    if not RACES:
        return ""
    from collections import Counter

    lines = ["Races over real HTTP (ThreadedMotoServer + Slack stand-in, one service per thread):"]
    by: dict[str, Counter] = {}
    for scenario, _, outcome in RACES:
        by.setdefault(scenario, Counter())[outcome] += 1
    for scenario, counts in by.items():
        lines.append(f"  {scenario:<34} " + ", ".join(f"{o} x{n}" for o, n in counts.most_common()))
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    text = "\n\n".join(t for t in (race_table(), fault_table()) if t)
    if not text:
        return
    terminalreporter.section("resilience")
    terminalreporter.write_line(text)
    try:
        base = Path(config._tmp_path_factory.getbasetemp())  # noqa: SLF001 - pytest's own tmp dir
        (base / "resilience-faults.txt").write_text(text + "\n")
        terminalreporter.write_line(f"(written to {base / 'resilience-faults.txt'})")
    except Exception:  # noqa: BLE001 - the table on screen is what matters
        pass
