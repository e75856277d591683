"""Slack request signatures (Slack's documented v0 scheme, 5-minute window).

The check is Slack's recipe in the standard library: ``v0=`` + HMAC-SHA256 of
``v0:<timestamp>:<body>`` under the signing secret, compared in constant time, with the
timestamp at most five minutes from now either way. It is not slack-sdk's
``SignatureVerifier``: importing ``slack_sdk.signature`` imports the whole ``slack_sdk``
package (its ``__init__`` builds WebClient), about a fifth of a cold slash command's CPU,
for an HMAC. tests/unit/test_verify.py holds this to slack-sdk's verifier on random
inputs and to Slack's worked example (docs/decisions/0007-signature-check.md).
"""

from __future__ import annotations

import hashlib
import hmac
import time

MAX_BODY = 64 * 1024  # Slack payloads are far smaller; bigger bodies are refused unread
MAX_AGE = 5 * 60  # seconds either way, as Slack and slack-sdk allow


class WallClock:
    """Seconds since the epoch (anything with ``now()`` can stand in for it in tests)."""

    @staticmethod
    def now() -> float:
        return time.time()


def is_valid(signing_secret: str, body: bytes, headers: dict, clock=None) -> bool:
    if not isinstance(signing_secret, str) or not signing_secret.strip() or len(body) > MAX_BODY:
        return False
    try:
        body.decode("utf-8")  # Slack sends UTF-8 form or JSON text; anything else is not Slack's
    except UnicodeDecodeError:
        return False
    lower = {str(k).lower(): v for k, v in headers.items()}
    timestamp, signature = lower.get("x-slack-request-timestamp"), lower.get("x-slack-signature")
    if not isinstance(timestamp, str) or not isinstance(signature, str):
        return False
    try:
        if abs((clock or WallClock).now() - int(timestamp)) > MAX_AGE:
            return False
    except ValueError:  # not a number (int() also refuses a 5,000-digit one)
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    try:
        return hmac.compare_digest(expected, signature)
    except TypeError:  # a non-ASCII signature cannot be compared as str: it cannot match
        return False
