"""The access review's export, for operators without Slack: the same rows as the files the
weekly review and ``/aws-access review`` share, printed to stdout.

    python -m chalicelib.review_export --since 7d --format csv   (or: make review-export)
    python -m chalicelib.review_export --since 30d --format json --end 2026-11-16T00:00:00Z

Reads the table named by ``DRAWBRIDGE_TABLE`` with the usual boto3 credentials (and
``AWS_ENDPOINT_URL`` / ``AWS_DEFAULT_REGION``), through the store's ``events_between`` (the
``by_day`` index: one Query per day of the window, then each grant found), and the catalog
named by ``DRAWBRIDGE_CATALOG`` (default: policies/access.toml), which says which roles are
production now. Needs only read access: dynamodb:Query and dynamodb:GetItem on the table
and its indexes. Slack is never called.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import datetime, timedelta
from typing import Callable

from .domain.model import parse_iso, utc

_SINCE = re.compile(r"([0-9]{1,4})d")


def _days(text: str) -> int:
    from .usecases.access_review import MAX_DAYS

    match = _SINCE.fullmatch(text.strip().lower())
    if not match or not 1 <= int(match.group(1)) <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{text!r}: give 1d to {MAX_DAYS}d")
    return int(match.group(1))


def _deps(clock: Callable[[], datetime]):
    from . import wiring
    from .adapters.store import DynamoStore
    from .catalog import load_catalog
    from .usecases.deps import Deps

    table = os.environ.get("DRAWBRIDGE_TABLE", "")
    if not table:
        raise SystemExit("review_export: DRAWBRIDGE_TABLE is not set (the table to read)")
    catalog_path = os.environ.get("DRAWBRIDGE_CATALOG") or str(wiring.REPO_CATALOG)
    return Deps(catalog=load_catalog(catalog_path), store=DynamoStore(wiring.aws_client("dynamodb"), table),
                grants=None, slack=None, clock=clock)


def main(argv: list[str] | None = None, out=None, clock: Callable[[], datetime] | None = None) -> int:
    from .domain import access_review as ar
    from .usecases.access_review import gather
    from .wiring import utcnow

    parser = argparse.ArgumentParser(prog="python -m chalicelib.review_export", description=__doc__.split("\n")[0])
    parser.add_argument("--since", type=_days, default=7, help="the window: the last <n> days (1d to 90d; 7d)")
    parser.add_argument("--format", choices=("csv", "json"), default="csv")
    parser.add_argument("--end", type=parse_iso, default=None,
                        help="end of the window, ISO 8601 UTC (default: now); e.g. a Monday 00:00 for a past week")
    args = parser.parse_args(argv)
    deps = _deps(clock or utcnow)
    end = utc(args.end) if args.end else deps.now()
    review = gather(deps, end - timedelta(days=args.since), end)
    (out or sys.stdout).write(ar.to_csv(review) if args.format == "csv" else ar.to_json(review))
    return 0


if __name__ == "__main__":
    sys.exit(main())
