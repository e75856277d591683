"""``python -m bench [--smoke] [--only NAME,...] [--json PATH]``: run the benchmarks, print one table.

The table (Markdown) goes to stdout; progress goes to stderr. The app's own JSON
logs are sent to /dev/null while benchmarks run (they are still formatted: that
cost is part of what is measured). Exit status 1 if a benchmark failed to run (its
rows then say ERROR); a missed goal is a figure, not a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import sys
import time
import traceback

#: (name, module) in the order they run: the cold-start subprocesses first, before
#: this process has imported (and warmed) anything heavy.
BENCHMARKS = [
    ("cold", "bench.coldstart"),
    ("ack", "bench.ack"),
    ("lifecycle", "bench.lifecycle"),
    ("sweep", "bench.sweep"),
    ("alerts", "bench.alerts"),
    ("package", "bench.package"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="every benchmark at tiny sizes (seconds)")
    parser.add_argument("--only", default="", help="comma-separated subset: " + ",".join(n for n, _ in BENCHMARKS))
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--logs", action="store_true", help="let the app's logs through to stderr")
    args = parser.parse_args(argv)
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    unknown = only - {n for n, _ in BENCHMARKS}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    from .harness import NO, Row, markdown

    real_stdout = sys.stdout
    # lives as long as the process: the app's logger keeps the stream it was built with
    sink = sys.stderr if args.logs else open(os.devnull, "w")  # noqa: SIM115
    rows: list[Row] = []
    failed = False
    started = time.perf_counter()
    for name, module_name in BENCHMARKS:
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        module = importlib.import_module(module_name)
        try:
            with contextlib.redirect_stdout(sink):
                got = module.run(args.smoke)
        except Exception as exc:  # noqa: BLE001 - report every benchmark, then fail
            failed = True
            traceback.print_exc(file=sys.stderr)
            got = [Row(metric, f"ERROR {type(exc).__name__}: {exc}"[:160], "—", NO)
                   for metric in module.row_names()]
        rows.extend(got)
        print(f"[bench] {name} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

    mode = "smoke sizes" if args.smoke else "full sizes"
    print(f"Drawbridge benchmarks ({mode}; {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{time.perf_counter() - started:.0f} s)\n", file=real_stdout)
    print(markdown(rows), file=real_stdout, flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([r.__dict__ for r in rows], fh, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
