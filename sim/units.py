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

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_DURATION = re.compile(rf"^\s*({_NUMBER})\s*([a-z]*)\s*$")
_PER = re.compile(rf"^\s*({_NUMBER})?\s*([a-z]+)\s*$")

DURATION_HELP = "write a number with a unit: us, ms, s, min, h or d (e.g. 500ms, 3s); a bare number is seconds"
RATE_HELP = "write events per time, e.g. 900/s, 50/min, 3600/h, 1000/10s; a bare number is per second"


def parse_duration(value: object) -> float:
    """Return ``value`` in seconds; raise ``ValueError`` saying how to write it."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration; {DURATION_HELP}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"not a duration; {DURATION_HELP}")
        number, unit = match.groups()
        if unit == "":
            unit = "s"
        if unit not in DURATION_UNITS:
            raise ValueError(f"unknown time unit {unit!r}; {DURATION_HELP}")
        seconds = float(number) * DURATION_UNITS[unit]
    else:
        raise ValueError(f"not a duration; {DURATION_HELP}")
    if not math.isfinite(seconds):
        raise ValueError(f"a duration must be finite; {DURATION_HELP}")
    return seconds


def parse_rate(value: object) -> float:
    """Return ``value`` in events per second; raise ``ValueError`` saying how to write it."""
    if isinstance(value, bool):
        raise ValueError(f"not a rate; {RATE_HELP}")
    if isinstance(value, int | float):
        rate = float(value)
    elif isinstance(value, str):
        count_text, slash, per_text = value.partition("/")
        try:
            count = float(count_text)
        except ValueError:
            raise ValueError(f"not a rate; {RATE_HELP}") from None
        if not slash:
            rate = count
        else:
            match = _PER.match(per_text)
            if match is None or match.group(2) not in DURATION_UNITS:
                raise ValueError(f"not a rate; {RATE_HELP}")
            span = float(match.group(1) or 1.0) * DURATION_UNITS[match.group(2)]
            if span <= 0:
                raise ValueError(f"the time in a rate must be positive; {RATE_HELP}")
            rate = count / span
    else:
        raise ValueError(f"not a rate; {RATE_HELP}")
    if not math.isfinite(rate):
        raise ValueError(f"a rate must be finite; {RATE_HELP}")
    return rate


def format_duration(seconds: float) -> str:
    """Render seconds with a readable unit (``0.0123`` -> ``12.3ms``), for tables and titles."""
    if not math.isfinite(seconds):
        return str(seconds)
    magnitude = abs(seconds)
    if magnitude == 0:
        return "0s"
    if magnitude < 1e-3:
        return f"{seconds * 1e6:.3g}us"
    if magnitude < 1:
        return f"{seconds * 1e3:.3g}ms"
    if magnitude < 120:
        return f"{seconds:.3g}s"
    if magnitude < 7200:
        return f"{seconds / 60:.3g}min"
    return f"{seconds / 3600:.3g}h"
