"""Numbers in their units, at a precision a reader can take at face value.

Every number qsim shows (terminal tables, report.html, figure labels) goes through here, so
a p99 always reads ``2.23s``, a share ``30.83%``, a rate ``2,939.2/s``, a mean of counts
``1,234.5`` (never ``1234.500``), and a difference of two shares ``+3.2 pp`` (points, not a
relative change). The CSV files keep the raw numbers (seconds, shares, per second).

A swept or planned field is shown in the unit of the scenario field it sets
(:func:`field_kind`): ``producers.0.arrivals.rate`` per second, ``consumers.concurrency`` as a
whole number, ``producers.0.timeout`` as a duration.
"""

from __future__ import annotations

import math
import numbers
import typing
from typing import Any

from pydantic import BaseModel, BeforeValidator

from sim.model.units import format_duration, parse_duration, parse_rate

DURATION_COLUMNS = ("latency", "wait", "sim_time", "wall_time", "warmup")
SHARE_COLUMNS = ("timeout_rate", "utilization", "starvation")
RATE_COLUMNS = ("throughput", "goodput")
COUNT_COLUMNS = ("offered", "completed", "late", "expired", "rejected", "dropped", "failed", "dead_lettered",
                 "in_system", "overdue", "dropped_overflow", "dropped_aqm", "attempts", "retries", "throttles",
                 "cold_starts", "duplicates", "max_queue", "runs", "replications", "probe")
"""Whole numbers in one run; their mean over replications gets at most one decimal."""
LEVEL_COLUMNS = ("mean_queue", "mean_in_system")
"""Time averages of a number of requests."""


def kind_of(column: str) -> str:
    """The unit of a summary column: share, duration, rate, work, usd, count, level or number.

    ``column`` may carry a suffix after a space (``latency_p99 mean`` in a plan's probes).
    """
    base = column.split(" ")[0]
    if base.startswith(SHARE_COLUMNS):
        return "share"
    if base.startswith(DURATION_COLUMNS):
        return "duration"
    if base in RATE_COLUMNS:
        return "rate"
    if base == "wasted_work":
        return "work"
    if base == "cost_usd":
        return "usd"
    if base in COUNT_COLUMNS:
        return "count"
    if base in LEVEL_COLUMNS:
        return "level"
    return "number"


def plain_number(value: float) -> str:
    """A number without an exponent or a 16-digit tail: whole numbers with thousands separators,
    one decimal from 100 up, three significant digits below."""
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    if abs(value) >= 1e-4:
        return f"{value:.3g}"
    return f"{value:.2e}"


def duration(seconds: float) -> str:
    """:func:`~sim.model.units.format_duration`, with thousands separators past a thousand days."""
    if math.isfinite(seconds) and abs(seconds) >= 1000 * 86400:
        return f"{seconds / 86400:,.0f}d"
    return format_duration(seconds)


def _count(value: float) -> str:
    rounded = round(value, 1)
    return f"{int(rounded):,}" if rounded.is_integer() else f"{rounded:,.1f}"


def _usd(value: float) -> str:
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return "$0" if value == 0 else f"${value:.3g}"


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, numbers.Real) and not math.isnan(float(value))


def format_value(column: str, value: object) -> str:
    """One cell, in the column's unit (text is shown as it is, a missing value as ``-``)."""
    if isinstance(value, str):
        return value
    if not _is_number(value):
        return "-"
    number = float(value)  # type: ignore[arg-type]
    kind = kind_of(column)
    if kind == "share":
        return f"{number:,.2%}"
    if kind == "duration":
        return duration(number)
    if kind == "rate":
        return f"{number:,.1f}/s"
    if kind == "work":
        return f"{number:,.1f} s"
    if kind == "usd":
        return _usd(number)
    if kind == "count":
        return _count(number)
    if kind == "level":
        return f"{number:,.1f}" if abs(number) >= 10 else plain_number(round(number, 3))
    return plain_number(number)


def format_compact(column: str, value: float) -> str:
    """A threshold in the column's unit, without padding zeros: ``1%``, ``2s``, ``800/s``."""
    kind = kind_of(column)
    if kind == "share":
        return f"{value * 100:.4g}%"
    if kind == "duration":
        return duration(value)
    if kind == "rate":
        return f"{plain_number(value)}/s"
    if kind == "usd":
        return _usd(value)
    return plain_number(value)


def format_difference(column: str, value: object) -> str:
    """A difference between two means, signed; between two shares in percentage points (``+3.2 pp``)."""
    if not _is_number(value):
        return "-"
    number = float(value)  # type: ignore[arg-type]
    sign = "+" if number > 0 else "-" if number < 0 else "±"
    magnitude = abs(number)
    kind = kind_of(column)
    if kind == "share":
        points = magnitude * 100
        return f"{sign}{points:,.1f} pp" if points >= 1 else f"{sign}{points:.2f} pp"
    if kind == "count":
        return sign + _count(magnitude)
    return sign + format_value(column, magnitude)


def field_kind(scenario: BaseModel, path: str) -> str:
    """The unit of the scenario field at a dotted ``path``: rate, duration, integer, number or text.

    Read from the schema (the parser a field's type validates with), so a sweep over
    ``producers.0.arrivals.rate`` is labelled per second even where the value looks like a
    bare number.
    """
    node: Any = scenario
    annotation: Any = None
    for key in path.split("."):
        if isinstance(node, list | tuple):
            if not (key.isdigit() and int(key) < len(node)):
                return "text"
            node = node[int(key)]
        elif isinstance(node, BaseModel) and key in type(node).model_fields:
            info = type(node).model_fields[key]
            annotation = typing.Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            node = getattr(node, key)
        else:
            return "text"
    parsers = _parsers(annotation)
    if parse_rate in parsers:
        return "rate"
    if parse_duration in parsers:
        return "duration"
    if isinstance(node, bool | str):
        return "text"
    if isinstance(node, int):
        return "integer"
    if isinstance(node, float):
        return "number"
    return "text"


def _parsers(annotation: Any) -> set[Any]:
    """The functions of every ``BeforeValidator`` in an annotation (through ``Annotated`` and unions)."""
    found: set[Any] = set()
    for item in getattr(annotation, "__metadata__", ()):
        if isinstance(item, BeforeValidator):
            found.add(item.func)
    for argument in typing.get_args(annotation):
        if not isinstance(argument, str | int | float):
            found |= _parsers(argument)
    return found


def format_field(kind: str, value: object) -> str:
    """A value of a scenario field in its unit: ``9.55/s``, ``1.5s``, ``4,480``."""
    if not _is_number(value):
        return "-" if value is None else str(value)
    number = float(value)  # type: ignore[arg-type]
    if kind == "rate":
        return f"{plain_number(number)}/s"
    if kind == "duration":
        return duration(number)
    if kind == "integer" and number.is_integer():
        return f"{int(number):,}"
    return plain_number(number)


UNIT_LABELS = {"rate": "per s", "duration": "s"}
"""How an axis label names a field's unit (``producers.0.arrivals.rate (per s)``)."""


def axis_label(scenario: BaseModel, path: str) -> str:
    """A field path with its unit, for the x axis of a curve."""
    unit = UNIT_LABELS.get(field_kind(scenario, path))
    return f"{path} ({unit})" if unit else path


METRIC_UNITS = {"duration": "s", "rate": "per s", "share": "share of requests", "work": "consumer-seconds",
                "usd": "USD"}


def metric_label(column: str) -> str:
    """A summary column with its unit, for a y axis (``latency_p99 (s)``)."""
    unit = METRIC_UNITS.get(kind_of(column))
    return f"{column} ({unit})" if unit else column


def describe_value(kind: str, value: Any) -> str:
    """A swept value for a label: numbers in the field's unit, blocks as one line of YAML, None as ``none``."""
    if value is None:
        return "none"
    if isinstance(value, dict | list):
        import yaml

        return str(yaml.safe_dump(value, default_flow_style=True, width=10_000)).strip().removesuffix("...").strip()
    if isinstance(value, str | bool):
        return str(value)
    return format_field(kind, value)
