"""``python -m chalicelib.catalog [path]``: check a catalog file (``make validate-catalog``).

Every error and warning on stderr (``error: …`` first, then ``warning: …``); exit 1 if
there is an error. Otherwise one ``OK:`` line on stdout, and exit 0.
"""

from __future__ import annotations

import argparse
import sys

from chalicelib.catalog import DEFAULT_PATH, CatalogError, load_catalog
from chalicelib.catalog.check import plural


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chalicelib.catalog", description="Validate a Drawbridge access catalog."
    )
    parser.add_argument("path", nargs="?", default=DEFAULT_PATH, help=f"default: {DEFAULT_PATH}")
    args = parser.parse_args(argv)
    try:
        catalog = load_catalog(args.path)
    except CatalogError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        for warning in exc.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return 1
    for warning in catalog.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    roles = catalog.roles()
    production = sum(r.production for r in roles)
    summary = (
        f"OK: {args.path}: {plural(len(catalog.people), 'person', 'people')}, "
        f"{plural(len(catalog.accounts), 'account')}, {plural(len(roles), 'role')} ({production} production)"
    )
    if catalog.warnings:
        summary += f", {plural(len(catalog.warnings), 'warning')}"
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
