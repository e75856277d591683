"""One module's import alone, in a fresh process (run as a script): its CPU time.
``BENCH_IMPORT`` names the module. Prints ``BENCH_RESULT {json}``."""

import time

import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402


def main() -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    c0 = time.process_time()
    importlib.import_module(os.environ["BENCH_IMPORT"])
    print("BENCH_RESULT " + json.dumps({"cpu": time.process_time() - c0}), flush=True)


if __name__ == "__main__":
    main()
