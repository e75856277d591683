"""Values in the security channel's alerts (pure: no I/O): every untrusted value is
escaped exactly once (:func:`_e`), times read the same everywhere.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from chalicelib.alerts import parse_utc
from chalicelib.slack.escape import escape_mrkdwn

LOUD_MENTION = "<!here>"  # our literal text, only on UNCOVERED; never built from data
_MAX_VALUE = 300  # characters per escaped value: keeps every text object under Slack's limits
_NONE = "—"


def _e(value: Any, *, limit: int = _MAX_VALUE) -> str:
    """Escape one untrusted value, then cut it to ``limit`` characters (never inside an
    entity such as ``&amp;``); a dash for missing values."""
    if value is None or value == "":
        return _NONE
    text = escape_mrkdwn(str(value))
    if len(text) > limit:
        cut = text[: limit - 1]
        amp = cut.rfind("&")
        if amp != -1 and ";" not in cut[amp:]:
            cut = cut[:amp]  # drop a half entity
        text = cut + "…"
    return text


def format_event_time(moment: datetime) -> str:
    """``2026-11-12 14:03:07 UTC``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _hhmm(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%H:%M UTC")


def _iso_display(value: Any) -> str:
    parsed = parse_utc(value)
    return format_event_time(parsed) if parsed else _e(value)


def _mfa_text(mfa: bool | None) -> str:
    return {True: "yes", False: "no", None: "unknown"}[mfa]


def _z(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
