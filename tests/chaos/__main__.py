"""``python -m tests.chaos``: randomized fault scenarios over real HTTP, then the invariants.

    python -m tests.chaos --runs 300 --seed 1000          # what `make chaos` runs
    python -m tests.chaos --seed 1042 --runs 1 --verbose  # one seed again, with its whole story
    python -m tests.chaos --scenario iam-outage --runs 20

Run ``i`` uses seed ``--seed + i``; the seed picks the scenario (seeds cycle through them
unless ``--scenario`` is given), the faults and the interleaving. Prints one table
(scenario x runs x invariant, held/broken) and every broken run's seed, invariant,
timeline and injected faults (``--report FILE`` writes them all); exits 1 if any invariant
broke or a run failed. ``--jobs N`` spreads the runs over N processes, each with its own
moto_server, Slack stand-in and proxies. docs/CHAOS.md explains it all.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue as queues
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300, help="how many scenarios (default 300)")
    parser.add_argument("--seed", type=int, default=1000, help="base seed; run i uses seed+i (default 1000)")
    parser.add_argument("--scenario", help="play only this scenario (default: the seed picks)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="worker processes (default: 2, or 1 on one CPU)")
    parser.add_argument("--verbose", action="store_true", help="print every run's story, not only broken ones")
    parser.add_argument("--report", help="write the table and every broken run's story to this file")
    parser.add_argument("--examples", type=int, default=3, help="example messages per broken cell (default 3)")
    parser.add_argument("--calm", action="store_true",
                        help="the same plays with every fault disarmed (checks the harness: all must hold)")
    args = parser.parse_args(argv)

    from tests.chaos.runner import NAMES, RunResult, table, worker

    if args.scenario and args.scenario not in NAMES:
        parser.error(f"unknown scenario {args.scenario!r}; one of {', '.join(NAMES)}")
    seeds = [args.seed + i for i in range(args.runs)]
    jobs = max(1, min(args.jobs, len(seeds)))
    started = time.monotonic()
    print(f"chaos: {len(seeds)} runs, seeds {seeds[0]}..{seeds[-1]}, {jobs} process(es)"
          + (" (calm: no faults)" if args.calm else ""), flush=True)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(seeds[k::jobs], args.scenario, queue, args.calm), daemon=True)
             for k in range(jobs)]
    for p in procs:
        p.start()
    results: list[RunResult] = []
    crashes: list[str] = []
    done = 0
    try:
        while done < len(procs):
            try:
                kind, payload = queue.get(timeout=2)
            except queues.Empty:
                if not any(p.is_alive() for p in procs):
                    crashes.append("every worker process exited without finishing")
                    break
                continue
            if kind == "result":
                r = RunResult(**payload)
                results.append(r)
                print("." if r.ok else ("E" if r.harness_error else "F"), end="", flush=True)
                if len(results) % 60 == 0:
                    print(f" {len(results)}", flush=True)
                if args.verbose:
                    print("\n" + r.describe(), flush=True)
            elif kind == "crash":
                crashes.append(payload)
            else:
                done += 1
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    elapsed = time.monotonic() - started
    results.sort(key=lambda r: r.seed)
    print()
    text = table(results, args.examples)
    broken = [r for r in results if not r.ok]
    summary = (f"{len(results)} runs in {elapsed:.0f} s ({elapsed / max(len(results), 1):.2f} s/run, {jobs} "
               f"process(es)); {len(results) - len(broken)} held every invariant, {len(broken)} did not")
    print(text)
    print(summary)
    if crashes:
        print("worker crashes:\n  " + "\n  ".join(crashes))
    if args.report:
        with open(args.report, "w") as fh:
            fh.write(text + "\n" + summary + "\n\n" + "\n\n".join(r.describe() for r in broken) + "\n")
        print(f"every broken run's story: {args.report}")
    elif broken and not args.verbose:
        print("\nfirst broken run (all of them: --report FILE):\n" + broken[0].describe())
    missing = len(seeds) - len(results)
    if missing:
        print(f"{missing} run(s) never reported (a worker crashed)")
    return 1 if broken or crashes or missing else 0


if __name__ == "__main__":
    sys.exit(main())
