import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.duration import (
    DAY,
    MAX_SECONDS,
    DurationError,
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800),
        ("1m", 60),
        ("2h", 7200),
        ("1h30m", 5400),
        ("90m", 5400),
        ("1d", 86400),
        ("1d12h", 129600),
        ("1d1h1m", 90060),
        ("1d30m", 88200),
        ("2H", 7200),
        ("1H30M", 5400),
        (" 2h ", 7200),
        ("2h\n", 7200),
        ("0h30m", 1800),
        ("365d", 365 * DAY),
    ],
)
def test_parse_good(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2x", "'2x' is not a duration; use e.g. 30m, 2h, 1h30m or 1d"),
        ("", "'' is not a duration; use e.g. 30m, 2h, 1h30m or 1d"),
        ("2", "'2' is not a duration; use e.g. 30m, 2h, 1h30m or 1d"),
        ("h", "'h' is not a duration; use e.g. 30m, 2h, 1h30m or 1d"),
        ("30m1h", "'30m1h' is not a duration; use e.g. 30m, 2h, 1h30m or 1d"),
        ("1h 30m", "'1h 30m' is not a duration; use e.g. 30m, 2h, 1h30m or 1d"),
        ("-1h", "'-1h' is not a duration; use e.g. 30m, 2h, 1h30m or 1d"),
        ("1.5h", "'1.5h' is not a duration; use e.g. 30m, 2h, 1h30m or 1d"),
        ("30s", "'30s' is not a duration; use e.g. 30m, 2h, 1h30m or 1d"),
        ("0m", "duration must be positive"),
        ("0d0h0m", "duration must be positive"),
        ("366d", "'366d' is too long; at most 365d"),
        ("8761h", "'8761h' is too long; at most 365d"),
        ("99999999999999999999d", "'99999999999999999999d' is too long; at most 365d"),
    ],
)
def test_parse_bad(text: str, message: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    assert str(caught.value) == message


def test_huge_input_is_refused_and_not_echoed_whole() -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration("9" * 5000 + "d")
    assert str(caught.value) == "'9999999999999999999…' is not a duration; use e.g. 30m, 2h, 1h30m or 1d"


def test_unicode_digits_are_not_durations() -> None:
    with pytest.raises(DurationError, match="is not a duration"):
        parse_duration("\u0663h")  # ARABIC-INDIC DIGIT THREE


def test_duration_error_is_a_value_error() -> None:
    assert issubclass(DurationError, ValueError)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (7200, "2h"),
        (5400, "1h30m"),
        (86400, "1d"),
        (90000, "1d1h"),
        (1800, "30m"),
        (60, "1m"),
        (0, "0m"),
        (59, "0m"),
        (119, "1m"),
        (88200, "1d30m"),
        (90060, "1d1h1m"),
        (7 * DAY, "7d"),
    ],
)
def test_format(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_negative_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(-60)


@given(st.integers(min_value=1, max_value=MAX_SECONDS // 60))
def test_round_trip(minutes: int) -> None:
    seconds = minutes * 60
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.integers(min_value=0, max_value=MAX_SECONDS // 60))
def test_format_is_canonical(minutes: int) -> None:
    text = format_duration(minutes * 60)
    assert text and text == text.lower() and " " not in text
    # each unit at most once, and the hour/minute parts never overflow into the next unit
    if "h" in text:
        assert int(text.split("h")[0].split("d")[-1]) < 24
    if text.endswith("m") and minutes:
        assert int(text[:-1].split("h")[-1].split("d")[-1]) < 60


@given(st.text(max_size=40))
def test_arbitrary_text_only_raises_duration_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except DurationError as exc:
        assert str(exc)
    else:
        assert 0 < seconds <= MAX_SECONDS and seconds % 60 == 0


@given(st.from_regex(r"[0-9]{1,4}d?[0-9]{1,4}h?[0-9]{1,4}m?", fullmatch=True))
def test_digit_heavy_text_only_raises_duration_error(text: str) -> None:
    try:
        parse_duration(text)
    except DurationError:
        pass
