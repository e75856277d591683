"""Slack request signatures (slack-sdk's SignatureVerifier, 5-minute window)."""

from __future__ import annotations

MAX_BODY = 64 * 1024  # Slack payloads are far smaller; bigger bodies are refused unread


def is_valid(signing_secret: str, body: bytes, headers: dict, clock=None) -> bool:
    from slack_sdk.signature import Clock, SignatureVerifier

    if not signing_secret or not signing_secret.strip() or len(body) > MAX_BODY:
        return False
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        verifier = SignatureVerifier(signing_secret, clock=clock or Clock())
        return verifier.is_valid(body=body, timestamp=lower.get("x-slack-request-timestamp"),
                                 signature=lower.get("x-slack-signature"))
    except (TypeError, ValueError):
        return False
