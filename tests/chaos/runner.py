"""Run chaos scenarios, recover, check the invariants, and print the table.

One run = one seed: ``SCENARIOS[names[seed % len(names)]]`` (so consecutive seeds cycle
through the scenarios) plays with faults from ``random.Random(seed)``; then recovery:

1. faults off (both proxies let everything through);
2. a sweep three minutes on (a GRANTING grant is retried two minutes after its approval, a
   REVOKING one a minute after the revoke);
3. the people repeat what visibly failed ("unexpected error", "try again"), and every
   CloudTrail event whose invocation failed is delivered again (Lambda's retry, EventBridge);
   one handled event is redelivered too (EventBridge delivers at least once);
4. sweeps one and two minutes later, then ``RETRY_HORIZON`` (15) minutes on and a minute
   after that (the schedule runs one every minute; one that is skipped only delays what it
   would do): **checkpoint A** (every invariant);
5. if the scenario says so, time moves past every expiry and pending window, two sweeps:
   **checkpoint B** (every invariant again; nothing may be left live).
"""

from __future__ import annotations

import random
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from .invariants import INVARIANTS, check
from .scenarios import MIN, SCENARIOS, Run

NAMES = list(SCENARIOS)
#: minutes of sweeps recovery allows before checkpoint A: longer than any back-off the sweep
#: may use between its retries (a minute's sweep that is skipped only delays what it would do)
RETRY_HORIZON = 15


def scenario_for(seed: int) -> str:
    return NAMES[seed % len(NAMES)]


@dataclass
class RunResult:
    seed: int
    scenario: str
    broken: dict = field(default_factory=dict)  # invariant -> ["A: message", ...]
    harness_error: str = ""
    seconds: float = 0.0
    faults: str = ""  # the proxies' reports: rules and every injected decision
    timeline: list = field(default_factory=list)
    job_errors: list = field(default_factory=list)
    checkpoints: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.broken and not self.harness_error

    def describe(self) -> str:
        lines = [f"seed {self.seed} ({self.scenario}): "
                 + ("all invariants held" if self.ok else "BROKEN " + ", ".join(sorted(self.broken))),
                 f"  reproduce: python -m tests.chaos --seed {self.seed} --runs 1 --verbose"]
        if self.harness_error:
            lines.append("  harness error: " + self.harness_error)
        for inv in sorted(self.broken):
            lines.append(f"  {inv} ({INVARIANTS[inv]}):")
            lines += [f"    - {m}" for m in self.broken[inv][:8]]
            if len(self.broken[inv]) > 8:
                lines.append(f"    ... {len(self.broken[inv]) - 8} more")
        lines.append("  what happened:")
        lines += [f"    {t}" for t in self.timeline]
        if self.job_errors:
            lines.append("  job errors (logged by the worker, not retried):")
            lines += [f"    {e}" for e in self.job_errors[:15]]
        lines.append("  injected:")
        lines += [f"    {line}" for line in self.faults.splitlines()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


def _checkpoint(run: Run, label: str, result: RunResult) -> None:
    s = run.world.snapshot()
    bad = check(s, run.catalog, run.clock.now, run.calls)
    for inv, msgs in bad.items():
        result.broken.setdefault(inv, []).extend(f"{label}: {m}" for m in msgs)
    states = sorted(f"{r.status.value}/{r.grant_status.value}" for r in s.requests.values())
    result.checkpoints.append(f"{label} at {run.clock.now:%H:%M}: {', '.join(states) or 'no requests'}; "
                              f"{len(s.policies)} policies; {len(s.messages)} messages")
    run.note(f"checkpoint {label}: {', '.join(states) or 'no requests'}, {len(s.policies)} IAM policies")


def recover(run: Run, result: RunResult) -> None:
    world = run.world
    world.faults_off()
    run.note("faults off")
    run.clock.advance(3 * MIN)
    run.sweep()
    for _ in range(2):  # what visibly failed, repeated (a "try again" may need a second go)
        todo, run.visible = run.visible, []
        for what, again in todo:
            run.note(f"recovery: {what}")
            again()
    for _ in range(3):
        todo, run.undelivered = run.undelivered, []
        for event in todo:
            run.note("recovery: CloudTrail event delivered again")
            run.deliver(event)
    if run.delivered:
        run.deliver(run.rng.choice(run.delivered))  # EventBridge: at least once
    for step in (1, 1, RETRY_HORIZON, 1):
        run.clock.advance(step * MIN)
        run.sweep()
    _checkpoint(run, "A", result)
    if run.past_expiry:
        s = world.snapshot()
        ends = [r.expires_at for r in s.requests.values() if r.expires_at] + \
               [r.pending_until for r in s.requests.values()]
        run.clock.set(max([run.clock.now, *ends]) + MIN)
        run.sweep()
        run.clock.advance(MIN)
        run.sweep()
        _checkpoint(run, "B", result)


def run_one(world, seed: int, scenario: str | None = None, calm: bool = False) -> RunResult:
    """One seed: its scenario with its faults, recovery, the invariants. ``calm``: the same play
    with every fault disarmed (the harness's own check: a calm run must hold everything)."""
    name = scenario or scenario_for(seed)
    started = time.monotonic()
    world.reset(seed)
    run = Run(seed, name, world, random.Random(seed))
    result = RunResult(seed, name)
    if calm:
        world.faults_off()
        run.note("calm run: every fault disarmed")
    try:
        SCENARIOS[name](run)
        recover(run, result)
    except Exception as exc:  # noqa: BLE001 - the harness itself failed: reported as such
        result.harness_error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
    result.seconds = time.monotonic() - started
    result.faults = world.fault_report()
    result.timeline = list(run.timeline)
    result.job_errors = list(run.job_errors)
    return result


# --------------------------------------------------------------------------- the table
def table(results: list[RunResult], examples: int = 3) -> str:
    """scenario x runs x invariant: held / broken counts, then example seeds per broken cell."""
    invs = list(INVARIANTS)
    names = [n for n in NAMES if any(r.scenario == n for r in results)]
    head = (f"| {'scenario':<21} | {'runs':>4} | " + " | ".join(f"{i:^7}" for i in invs)
            + " | harness | s/run |")
    rule = "|" + "-" * 23 + "|" + "-" * 6 + "|" + "|".join("-" * 9 for _ in invs) + "|---------|-------|"
    lines = ["held/broken runs per invariant (checked after recovery, at checkpoints A and B; "
             "s/run: one process's wall time per run)", "", head, rule]
    totals = {i: [0, 0] for i in invs}
    for n in names:
        rs = [r for r in results if r.scenario == n]
        cells = []
        for i in invs:
            broken = sum(i in r.broken for r in rs)
            held = sum(not r.harness_error and i not in r.broken for r in rs)
            totals[i][0] += held
            totals[i][1] += broken
            cells.append(f"{held:>3}/{broken:<3}")
        errs = sum(bool(r.harness_error) for r in rs)
        secs = sum(r.seconds for r in rs) / len(rs)
        lines.append(f"| {n:<21} | {len(rs):>4} | " + " | ".join(f"{c:^7}" for c in cells)
                     + f" | {errs:^7} | {secs:5.2f} |")
    secs = sum(r.seconds for r in results) / max(len(results), 1)
    lines.append(f"| {'all':<21} | {len(results):>4} | "
                 + " | ".join(f"{f'{h:>3}/{b:<3}':^7}" for h, b in totals.values())
                 + f" | {sum(bool(r.harness_error) for r in results):^7} | {secs:5.2f} |")
    lines += ["", *[f"  {k}  {v}" for k, v in INVARIANTS.items()]]
    cells = {}
    for r in results:
        for inv in r.broken:
            cells.setdefault((r.scenario, inv), []).append(r)
    if cells:
        lines += ["", "broken (scenario, invariant): example seeds and what broke"]
        for (n, inv), rs in sorted(cells.items(), key=lambda kv: (names.index(kv[0][0]), kv[0][1])):
            seeds = ", ".join(str(r.seed) for r in rs[:8]) + (" ..." if len(rs) > 8 else "")
            lines.append(f"  {n} {inv}: {len(rs)} run(s), seeds {seeds}")
            for r in rs[:examples]:
                lines.append(f"      {r.seed}: {r.broken[inv][0][:150]}")
    errs = [r for r in results if r.harness_error]
    if errs:
        lines += ["", "harness errors (the run itself failed; not an invariant):"]
        lines += [f"  {r.seed} ({r.scenario}): {r.harness_error.splitlines()[0][:150]}" for r in errs[:10]]
    return "\n".join(lines)


def worker(seeds: list[int], scenario: str | None, queue, calm: bool = False) -> None:
    """One process of ``python -m tests.chaos --jobs N``: its own world, its share of the seeds."""
    from .world import World

    try:
        with World() as world:
            for seed in seeds:
                queue.put(("result", run_one(world, seed, scenario, calm).to_dict()))
    except BaseException as exc:  # noqa: BLE001 - tell the parent, which reports it
        queue.put(("crash", f"{type(exc).__name__}: {exc}"))
    finally:
        queue.put(("done", None))
