"""Durations and rates as people write them, and durations as tables show them."""

from __future__ import annotations

import math

import pytest

from sim.model.units import format_duration, parse_duration, parse_rate


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("3s", 3.0),
        ("2min", 120.0),
        ("1h", 3600.0),
        ("4d", 345_600.0),
        ("250us", 250e-6),
        ("0s", 0.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("1e3ms", 1.0),
        (" 3 s ", 3.0),  # spaces around and between are allowed
        ("7", 7.0),  # a bare number in text is seconds
        (7, 7.0),  # a bare YAML number is seconds
        (0.25, 0.25),
    ],
)
def test_durations_are_read_in_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12, abs=0)


def test_a_negative_duration_keeps_its_sign_for_the_schema_to_refuse() -> None:
    # The parser knows spelling, not rules: the schema refuses it and names the field.
    assert parse_duration("-2s") == -2.0
    assert math.copysign(1.0, parse_duration("-0s")) == 1.0  # no -0.0 leaking into tables


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("3sec", "unknown time unit 'sec'; did you mean 's'?"),
        ("3S", "unknown time unit 'S'; did you mean 's'?"),
        ("2m", "unknown time unit 'm'; did you mean 'min'?"),
        ("2hours", "unknown time unit 'hours'; did you mean 'h'?"),
        ("5µs", "unknown time unit 'µs'; did you mean 'us'?"),
        ("3 parsecs", "unknown time unit 'parsecs'"),
        ("abc", "not a duration"),
        ("", "not a duration"),
        ("3s5", "not a duration"),
        ("1_000s", "not a duration"),
        ("nan", "not a duration"),
        ("1e999s", "must be finite"),
        (10**400, "must be finite"),  # too big for a float: refused, not an OverflowError
        (math.inf, "must be finite"),
        (True, "not a duration"),  # YAML `yes` is not one second
        (None, "not a duration"),
        ([3], "not a duration"),
    ],
)
def test_bad_durations_say_how_to_write_one(text: object, words: str) -> None:
    with pytest.raises(ValueError, match="a bare number is seconds") as caught:
        parse_duration(text)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "per_second"),
    [
        ("900/s", 900.0),
        ("50/min", 50 / 60),
        ("3600/h", 1.0),
        ("1000/10s", 100.0),
        ("3/2min", 3 / 120),
        ("86400/d", 1.0),
        ("5/ms", 5000.0),
        ("1.5/s", 1.5),
        ("1e3/min", 1000 / 60),
        (" 900 / s ", 900.0),
        ("0/s", 0.0),  # piecewise rates may pause
        ("900", 900.0),  # a bare number is per second
        (900, 900.0),
        (2.5, 2.5),
    ],
)
def test_rates_are_read_in_events_per_second(text: object, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second, rel=1e-12, abs=0)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("900/sec", "unknown time unit 'sec'; did you mean 's'?"),
        ("900/x", "unknown time unit 'x'"),
        ("900/0s", "the time in a rate must be positive"),
        ("900/-1s", "the time in a rate must be positive"),
        ("/s", "not a rate"),
        ("900/", "not a rate"),
        ("900/s/s", "not a rate"),
        ("fast", "not a rate"),
        ("1_000/s", "not a rate"),  # same number syntax as durations
        ("inf/s", "not a rate"),
        ("9e999/s", "must be finite"),
        (10**400, "must be finite"),
        (False, "not a rate"),
        ([900], "not a rate"),
    ],
)
def test_bad_rates_say_how_to_write_one(text: object, words: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 900/s") as caught:
        parse_rate(text)
    assert words in str(caught.value)


def test_a_negative_rate_keeps_its_sign_for_the_schema_to_refuse() -> None:
    assert parse_rate("-5/s") == -5.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (250e-6, "250us"),
        (0.0123, "12.3ms"),
        (0.5, "500ms"),
        (3.0, "3s"),
        (90.0, "90s"),
        (150.0, "2.5min"),
        (3 * 3600.0, "3h"),
        (4 * 86400.0, "4d"),
        (-0.5, "-500ms"),
        # Rounding to three digits must not leave a value in the smaller unit as 1e+03.
        (0.9999, "1s"),
        (0.0009999, "1ms"),
        (119.96, "2min"),
        (7199.0, "2h"),
        (1000 * 86400.0, "1000d"),
        (1e9, "11600d"),  # three significant digits, still no exponent
        (math.inf, "inf"),
        (math.nan, "nan"),
    ],
)
def test_format_duration_picks_a_readable_unit(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [1e-6, 3.3e-5, 0.000999, 0.0123, 0.99949, 1.0, 59.9, 119.4, 3599.0, 9e4, 3e6])
def test_format_duration_reads_back_within_its_rounding(seconds: float) -> None:
    text = format_duration(seconds)
    assert "e" not in text.rstrip("d")  # never an exponent
    # Three significant digits: at most half a unit in the third digit, 0.5 %.
    assert parse_duration(text) == pytest.approx(seconds, rel=5e-3)
