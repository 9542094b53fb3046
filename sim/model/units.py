"""Durations and rates written the way people write them: ``500ms``, ``3s``, ``900/s``, ``1000/10s``.

Scenario files are read by people, so every time and rate carries its unit. Internally
everything is seconds and events per second (floats); these parsers are the only place
that knows the spelling.
"""

from __future__ import annotations

import math
import re

#: Seconds per unit. ``d`` is there for long retention periods (SQS keeps messages 4 days).
DURATION_UNITS: dict[str, float] = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}

#: Spellings people try that are not units here, and the unit they most likely meant.
#: They are refused (``m`` could be minutes or metres, ``S`` is siemens) but named in the hint.
_LIKELY: dict[str, str] = {
    "µs": "us", "μs": "us", "usec": "us", "msec": "ms", "millis": "ms",
    "sec": "s", "secs": "s", "second": "s", "seconds": "s", "S": "s",
    "m": "min", "mins": "min", "minute": "min", "minutes": "min",
    "hr": "h", "hrs": "h", "hour": "h", "hours": "h", "day": "d", "days": "d",
}

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_DURATION = re.compile(rf"^\s*({_NUMBER})\s*([^\W\d_]*)\s*$")
_RATE = re.compile(rf"^\s*({_NUMBER})\s*(?:/\s*({_NUMBER})?\s*([^\W\d_]*)\s*)?$")

DURATION_HELP = "write a number with a unit: us, ms, s, min, h or d (e.g. 500ms, 3s); a bare number is seconds"
RATE_HELP = "write events per time, e.g. 900/s, 50/min, 3600/h, 1000/10s; a bare number is per second"


def _unit_seconds(unit: str, help_text: str) -> float:
    """Seconds in one ``unit``; an unknown unit names the one that was probably meant."""
    if unit in DURATION_UNITS:
        return DURATION_UNITS[unit]
    lower = unit.lower()
    likely = _LIKELY.get(unit) or _LIKELY.get(lower) or (lower if lower in DURATION_UNITS else None)
    hint = f"did you mean {likely!r}? " if likely else ""
    raise ValueError(f"unknown time unit {unit!r}; {hint}{help_text}")


def _finite(value: int | float, what: str, help_text: str) -> float:
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite; {help_text}")
    return number + 0.0  # -0.0 becomes 0.0


def parse_duration(value: object) -> float:
    """Return ``value`` in seconds; raise ``ValueError`` saying how to write it.

    The sign is kept (``-1s`` is -1.0): whether a negative duration is allowed is the
    schema's decision, which then names the field.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a duration; {DURATION_HELP}")
    if not isinstance(value, str):
        return _finite(value, "a duration", DURATION_HELP)
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"not a duration; {DURATION_HELP}")
    number, unit = match.groups()
    seconds = float(number) * _unit_seconds(unit or "s", DURATION_HELP)
    return _finite(seconds, "a duration", DURATION_HELP)


def parse_rate(value: object) -> float:
    """Return ``value`` in events per second; raise ``ValueError`` saying how to write it."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a rate; {RATE_HELP}")
    if not isinstance(value, str):
        return _finite(value, "a rate", RATE_HELP)
    match = _RATE.match(value)
    if match is None or ("/" in value and not match.group(3)):
        raise ValueError(f"not a rate; {RATE_HELP}")
    count_text, span_text, unit = match.groups()
    if unit is None:
        return _finite(float(count_text), "a rate", RATE_HELP)
    span = float(span_text or 1.0) * _unit_seconds(unit, RATE_HELP)
    if not span > 0:
        raise ValueError(f"the time in a rate must be positive; {RATE_HELP}")
    return _finite(float(count_text) / span, "a rate", RATE_HELP)


#: (threshold, divisor, suffix): a value is shown in the first unit whose threshold its
#: rounded magnitude is below, so 0.9999 s reads ``1s``, not ``1e+03ms``.
_DISPLAY_UNITS = (
    (1e-3, 1e-6, "us"),
    (1.0, 1e-3, "ms"),
    (120.0, 1.0, "s"),
    (7200.0, 60.0, "min"),
    (172800.0, 3600.0, "h"),
    (math.inf, 86400.0, "d"),
)


def format_duration(seconds: float) -> str:
    """Render seconds with a readable unit (``0.0123`` -> ``12.3ms``), for tables and titles.

    Three significant digits, never an exponent for values from 1 ns up; the text reads
    back with :func:`parse_duration` to within the rounding.
    """
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds == 0:
        return "0s"
    magnitude = abs(seconds)
    shown, suffix = magnitude, "s"
    for threshold, divisor, unit in _DISPLAY_UNITS:
        shown, suffix = float(f"{magnitude / divisor:.3g}"), unit
        if shown * divisor < threshold:
            break
    sign = "-" if seconds < 0 else ""
    text = f"{shown:.3g}" if shown < 1000 else f"{shown:.0f}"
    return f"{sign}{text}{suffix}"
