"""Durations as people type them: ``30m``, ``2h``, ``1h30m``, ``1d``, ``1d12h``.

Pure (stdlib only). Seconds are the unit everywhere else; this module is the
only place that turns them into text and back.
"""

from __future__ import annotations

import re

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
MAX_SECONDS = 365 * DAY  # anything longer is a typo, not a request

_GRAMMAR = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?", re.IGNORECASE)
_MAX_TEXT = 32  # longer input is never a sensible duration; also bounds int() work
_EXAMPLES = "use e.g. 30m, 2h, 1h30m or 1d"


class DurationError(ValueError):
    """A duration the user typed cannot be used; ``str()`` is fit to show them."""


class DurationTooLong(DurationError):
    """Well-formed but longer than anything Drawbridge grants; callers that know a
    tighter cap (a role's ``max_duration``) say that cap instead."""


def parse_duration(text: str) -> int:
    """Return the number of seconds in ``text`` (see the module docstring)."""
    if not isinstance(text, str):
        raise DurationError(f"{text!r} is not a duration; {_EXAMPLES}")
    cleaned = text.strip()
    match = _GRAMMAR.fullmatch(cleaned) if len(cleaned) <= _MAX_TEXT else None
    if match is None or not any(match.groups()):
        raise DurationError(f"'{_shorten(text)}' is not a duration; {_EXAMPLES}")
    days, hours, minutes = (int(part or 0) for part in match.groups())
    seconds = days * DAY + hours * HOUR + minutes * MINUTE
    if seconds <= 0:
        raise DurationError("duration must be positive")
    if seconds > MAX_SECONDS:
        raise DurationTooLong(f"'{cleaned}' is too long; at most {format_duration(MAX_SECONDS)}")
    return seconds


def format_duration(seconds: int) -> str:
    """Canonical short form: 5400 -> ``1h30m``, 90000 -> ``1d1h``, 0 -> ``0m``.

    Seconds below a whole minute are dropped.
    """
    if seconds < 0:
        raise ValueError(f"cannot format a negative duration ({seconds}s)")
    days, rest = divmod(int(seconds), DAY)
    hours, rest = divmod(rest, HOUR)
    minutes = rest // MINUTE
    text = "".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n)
    return text or "0m"


def _shorten(text: str, limit: int = 20) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
