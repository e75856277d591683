"""Structured JSON logging (Powertools Logger), built on first use, never at import."""

from __future__ import annotations

import uuid
from functools import lru_cache


@lru_cache(maxsize=1)
def logger():
    from aws_lambda_powertools import Logger

    return Logger(service="drawbridge")


def new_correlation_id() -> str:
    return uuid.uuid4().hex[:12]


#: the invocation's correlation id (set by ``handlers.begin``), for use cases that must name
#: it to a person (an on-demand review given up: "ref <id>")
CORRELATION: dict[str, str] = {}


def correlation_id() -> str:
    return CORRELATION.get("current", "-")


def invocation_id() -> str:
    """The Lambda request id of this invocation (set by ``handlers.begin``): unlike the
    correlation id it stays the same when Lambda retries an asynchronous invocation, so a
    use case can tell its own earlier attempt from another invocation."""
    return CORRELATION.get("invocation", "-")


def metric(name: str, value: float = 1) -> None:
    """One CloudWatch metric (Embedded Metric Format on stdout), namespace Drawbridge."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace="Drawbridge") as m:
        m.add_dimension(name="service", value="drawbridge")
