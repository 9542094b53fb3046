"""Service-level targets (``latency_p99<=2s``) and the specification of a capacity plan.

A target bounds the *mean over replications* of a summary column: ``latency_p99<=2s`` reads
"the expected p99 latency of a run is at most 2 s". Values take units: durations (``2s``,
``500ms``), rates (``800/s``), shares (``1%`` or ``0.01``) or plain numbers.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sim.analysis.metrics import KEY_COLUMNS, LABEL_COLUMNS, summary_columns
from sim.model.errors import ScenarioError, did_you_mean
from sim.model.schema import Scenario
from sim.model.units import format_duration, parse_duration, parse_rate

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
_TARGET = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*(\S.*?)\s*$")
TARGET_HELP = "write METRIC<=VALUE or METRIC>=VALUE, e.g. 'latency_p99<=2s', 'timeout_rate<=1%', 'goodput>=800/s'"


@dataclass(frozen=True)
class Target:
    """``metric op value``: ``op`` is ``<=``/``<`` (an upper limit) or ``>=``/``>`` (a lower limit)."""

    metric: str
    op: str
    value: float
    text: str

    @property
    def upper(self) -> bool:
        """True for a limit the metric must stay below."""
        return self.op.startswith("<")

    def holds(self, estimate: float) -> bool:
        """Whether ``estimate`` (a confidence bound of the metric) satisfies the target."""
        return not math.isnan(estimate) and _OPERATORS[self.op](estimate, self.value)

    def __str__(self) -> str:
        return self.text


def parse_value(text: str) -> float:
    """``2s`` -> 2.0, ``500ms`` -> 0.5, ``1%`` -> 0.01, ``800/s`` -> 800.0, ``0.01`` -> 0.01."""
    text = text.strip()
    if text.endswith("%"):
        return float(text[:-1]) / 100
    try:
        return float(text)
    except ValueError:
        pass
    if "/" in text:
        return parse_rate(text)
    return parse_duration(text)


def metric_columns(scenario: Scenario) -> list[str]:
    """The summary columns a target or a stopping rule may name."""
    return [c for c in summary_columns(scenario) if c not in KEY_COLUMNS and c not in LABEL_COLUMNS]


def read_target(text: str, columns: Sequence[str]) -> Target:
    """Parse one target whose metric must be one of ``columns``; ``ValueError`` says what is wrong."""
    match = _TARGET.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(TARGET_HELP)
    metric, op, value_text = match.groups()
    if metric not in columns:
        raise ValueError(f"{metric!r} is not a summary column; {did_you_mean(metric, columns)}"
                         f"use one of {', '.join(columns)}")
    try:
        value = parse_value(value_text)
    except ValueError as error:
        raise ValueError(f"{value_text!r} is not a value ({error}); {TARGET_HELP}") from None
    if not math.isfinite(value):
        raise ValueError("the value must be finite")
    return Target(metric=metric, op=op, value=value, text=text.strip())


def parse_target(text: str, scenario: Scenario, where: str = "--target") -> Target:
    """Parse one target and check that its metric is a column of the scenario's summary."""
    try:
        return read_target(text, metric_columns(scenario))
    except ValueError as error:
        raise ScenarioError(f"{where}: got {text!r}: {error}") from None


def format_target_value(target: Target) -> str:
    if target.metric.startswith(("latency", "wait")):
        return format_duration(target.value)
    return f"{target.value:g}"


@dataclass(frozen=True)
class PlanSpec:
    """What ``qsim plan`` searches: the field, its range, the direction and the targets.

    ``maximize`` False: the smallest value meeting every target (capacity: more is better);
    True: the largest (load: more is worse). ``low``/``high`` are as written (``100/s``);
    the planner validates them as points of the scenario.
    """

    path: str
    low: Any
    high: Any
    targets: tuple[Target, ...]
    maximize: bool = False
    replications: int | None = None
    max_replications: int | None = None
    confidence: float = 0.95
    tolerance: float | None = None
