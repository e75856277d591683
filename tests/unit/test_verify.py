"""chalicelib.slack.verify.is_valid: Slack signatures, checked against a fixed clock."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.signature import Clock, SignatureVerifier

from chalicelib.slack.verify import MAX_BODY, is_valid
from tests.fixtures import load_slack

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_794_492_000
BODY = load_slack("slash_command.txt").encode()


class FixedClock(Clock):
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


CLOCK = FixedClock(NOW)


# Deliberately NOT local/slack_client.py's signature(): this test checks the app's verifier
# against a signature computed independently, straight from Slack's documented recipe (and
# pinned to Slack's own worked example below). Were both sides to share one helper, the
# same mistake in it would pass unnoticed; tests/unit/test_slack_client.py checks that the
# shared client agrees with the verifier.
def signature(body: bytes, timestamp: int | str, secret: str = SECRET) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def headers(body: bytes = BODY, timestamp: int | str = NOW, secret: str = SECRET) -> dict:
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": signature(body, timestamp, secret),
            "Content-Type": "application/x-www-form-urlencoded"}


def test_signature_helper_matches_slacks_documented_example():
    # https://api.slack.com/authentication/verifying-requests-from-slack (worked example)
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmib"
            b"IGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    assert signature(body, 1531420618, "8f742231b10e8888abcd99yyyzzz85a5") == \
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_correct_signature_passes():
    assert is_valid(SECRET, BODY, headers(), clock=CLOCK) is True


@pytest.mark.parametrize("case", ["lower", "upper", "mixed"])
def test_header_names_in_any_case(case):
    name = {"lower": str.lower, "upper": str.upper, "mixed": lambda s: s.swapcase()}[case]
    assert is_valid(SECRET, BODY, {name(k): v for k, v in headers().items()}, clock=CLOCK) is True


@pytest.mark.parametrize("age", [-300, -1, 0, 1, 299, 300])
def test_timestamps_within_five_minutes_pass(age):
    ts = NOW - age
    assert is_valid(SECRET, BODY, headers(timestamp=ts), clock=CLOCK) is True


@pytest.mark.parametrize("age", [301, -301, 3600, -86400, NOW])
def test_timestamps_outside_five_minutes_fail(age):
    ts = NOW - age
    assert is_valid(SECRET, BODY, headers(timestamp=ts), clock=CLOCK) is False


def test_same_request_passes_then_goes_stale_as_the_clock_moves():
    h = headers()
    assert is_valid(SECRET, BODY, h, clock=FixedClock(NOW + 300)) is True
    assert is_valid(SECRET, BODY, h, clock=FixedClock(NOW + 301)) is False


def _drop(name: str) -> dict:
    return {k: v for k, v in headers().items() if k != name}


@pytest.mark.parametrize(("secret", "body", "hdrs"), [
    pytest.param("wrong-secret", BODY, headers(), id="wrong-secret"),
    pytest.param(SECRET, BODY, headers(secret="wrong-secret"), id="signed-with-other-secret"),
    pytest.param(SECRET, BODY.replace(b"U0ALICE001", b"U0BOB00001"), headers(), id="tampered-body"),
    pytest.param(SECRET, BODY + b"&x=1", headers(), id="appended-body"),
    pytest.param(SECRET, b"", headers(), id="empty-body"),
    pytest.param(SECRET, BODY, {**headers(), "X-Slack-Request-Timestamp": str(NOW - 1)},
                 id="timestamp-not-the-signed-one"),
    pytest.param(SECRET, BODY, _drop("X-Slack-Signature"), id="missing-signature"),
    pytest.param(SECRET, BODY, _drop("X-Slack-Request-Timestamp"), id="missing-timestamp"),
    pytest.param(SECRET, BODY, {}, id="no-headers"),
    pytest.param(SECRET, BODY, {**headers(), "X-Slack-Signature": ""}, id="empty-signature"),
    pytest.param(SECRET, BODY, {**headers(), "X-Slack-Signature": signature(BODY, NOW)[3:]},
                 id="signature-without-v0"),
    pytest.param(SECRET, BODY, {**headers(), "X-Slack-Signature": signature(BODY, NOW).upper()},
                 id="signature-upper-case"),
    pytest.param(SECRET, BODY, {**headers(), "X-Slack-Signature": "v0=\u00e9\u00e9"}, id="non-ascii-signature"),
    pytest.param(SECRET, BODY, {**headers(), "X-Slack-Request-Timestamp": "soon"}, id="timestamp-not-a-number"),
    pytest.param(SECRET, BODY, {**headers(), "X-Slack-Request-Timestamp": ""}, id="timestamp-empty"),
    pytest.param(SECRET, BODY, {**headers(), "X-Slack-Request-Timestamp": "9" * 5000},
                 id="timestamp-huge"),
    pytest.param("", BODY, headers(secret=""), id="empty-secret"),
])
def test_bad_requests_fail(secret, body, hdrs):
    assert is_valid(secret, body, hdrs, clock=CLOCK) is False


def test_body_of_exactly_64_kib_passes():
    body = b"text=" + b"a" * (MAX_BODY - 5)
    assert len(body) == 64 * 1024
    assert is_valid(SECRET, body, headers(body=body), clock=CLOCK) is True


def test_body_over_64_kib_fails_even_when_signed():
    body = b"text=" + b"a" * (MAX_BODY - 4)
    assert len(body) == 64 * 1024 + 1
    assert is_valid(SECRET, body, headers(body=body), clock=CLOCK) is False


def test_default_clock_is_the_wall_clock():
    import time

    ts = int(time.time())
    assert is_valid(SECRET, BODY, headers(timestamp=ts)) is True
    assert is_valid(SECRET, BODY, headers(timestamp=ts - 3600)) is False


def test_whitespace_only_secret_fails_instead_of_raising():
    assert is_valid("  \n", BODY, headers(secret="  \n"), clock=CLOCK) is False


def slack_sdk_says(secret: str, body: bytes, hdrs: dict, now: float) -> bool:
    """slack-sdk's own verifier, as the reference (an exception is a refusal)."""
    if not secret.strip() or len(body) > MAX_BODY:
        return False
    try:
        return SignatureVerifier(secret, clock=FixedClock(now)).is_valid_request(body, hdrs)
    except (TypeError, ValueError):
        return False


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=300), secret=st.sampled_from([SECRET, "other-secret", " "]),
       skew=st.integers(-400, 400), signer=st.sampled_from([SECRET, "other-secret"]),
       stamp=st.sampled_from(["int", "text", "signed-other", "padded"]),
       mangle=st.sampled_from(["none", "upper", "truncate", "drop", "v1"]))
def test_agrees_with_slack_sdks_verifier(body, secret, skew, signer, stamp, mangle):
    """The standard-library check (chalicelib/slack/verify.py) answers exactly as slack-sdk's
    SignatureVerifier does, for good, stale, tampered and malformed requests."""
    ts = {"int": str(NOW + skew), "text": "soon", "signed-other": str(NOW + skew), "padded": f" {NOW + skew}"}[stamp]
    hdrs = headers(body=body, timestamp=ts if stamp != "text" else NOW, secret=signer)
    hdrs["X-Slack-Request-Timestamp"] = ts if stamp != "signed-other" else str(NOW + skew + 1)
    sig = hdrs["X-Slack-Signature"]
    if mangle == "drop":
        del hdrs["X-Slack-Signature"]
    else:
        hdrs["X-Slack-Signature"] = {"none": sig, "upper": sig.upper(), "truncate": sig[:-1],
                                     "v1": "v1=" + sig[3:]}[mangle]
    assert is_valid(secret, body, hdrs, clock=CLOCK) is slack_sdk_says(secret, body, hdrs, NOW)


def test_the_property_test_sees_both_answers():
    """The comparison above is not vacuous: the reference accepts a good request and refuses a bad one."""
    assert slack_sdk_says(SECRET, BODY, headers(), NOW) is True
    assert slack_sdk_says(SECRET, BODY, headers(secret="x"), NOW) is False
