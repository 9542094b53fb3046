"""Service-level targets (``latency_p99<=2s``) and the specification of a capacity plan.

A target bounds the *mean over replications* of a summary column: ``latency_p99<=2s`` reads
"the expected p99 latency of a run is at most 2 s". Values take units: durations (``2s``,
``500ms``), rates (``800/s``), shares (``1%`` or ``0.01``) or plain numbers.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sim.analysis.metrics import KEY_COLUMNS, LABEL_COLUMNS, summary_columns
from sim.model.scenario import ScenarioError, refuse_unknown_keys
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


def parse_target(text: str, scenario: Scenario, where: str = "--target") -> Target:
    """Parse one target and check that its metric is a column of the scenario's summary."""
    match = _TARGET.match(text) if isinstance(text, str) else None
    if match is None:
        raise ScenarioError(f"{where}: got {text!r}; {TARGET_HELP}")
    metric, op, value_text = match.groups()
    columns = metric_columns(scenario)
    if metric not in columns:
        close = difflib.get_close_matches(metric, columns, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ScenarioError(f"{where}: got {text!r}: {metric!r} is not a summary column; {hint}"
                            f"use one of {', '.join(columns)}")
    try:
        value = parse_value(value_text)
    except ValueError as error:
        raise ScenarioError(f"{where}: got {text!r}: {value_text!r} is not a value ({error}); {TARGET_HELP}") from None
    if not math.isfinite(value):
        raise ScenarioError(f"{where}: got {text!r}; the value must be finite")
    return Target(metric=metric, op=op, value=value, text=text.strip())


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


PLAN_KEYS = ("vary", "maximize", "min", "max", "targets", "replications", "max_replications", "confidence", "tolerance")


def _positive_int(value: Any, name: str, where: str, least: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ScenarioError(f"{where}: {name}: got {value!r}; must be an integer >= {least}")
    return value


def parse_plan(spec: Any, scenario: Scenario, where: str, name: Callable[[str], str] | None = None) -> PlanSpec:
    """Validate a ``plan:`` mapping (or the same keys gathered from the command line).

    ``name`` says how a key is shown in errors: ``plan.min`` for the file, ``--min`` for a flag.
    """
    label = name or (lambda key: f"plan.{key}")
    if not isinstance(spec, dict):
        raise ScenarioError(f"{where}: plan: got {spec!r}; must be a mapping with keys {', '.join(PLAN_KEYS)}")
    refuse_unknown_keys(spec, PLAN_KEYS, where, "plan")
    given = [key for key in ("vary", "maximize") if spec.get(key) is not None]
    if len(given) != 1:
        raise ScenarioError(f"{where}: {label('vary')}: give exactly one of {label('vary')} (the smallest value "
                            f"meeting the targets, e.g. consumers.concurrency) or {label('maximize')} (the largest, "
                            "e.g. producers.0.arrivals.rate)")
    path = spec[given[0]]
    if not isinstance(path, str) or not path:
        raise ScenarioError(f"{where}: {label(given[0])}: got {path!r}; give a field path like consumers.concurrency")
    for bound in ("min", "max"):
        if spec.get(bound) is None:
            raise ScenarioError(f"{where}: {label(bound)}: missing; give the {bound}imum value to search")
    raw_targets = spec.get("targets")
    if isinstance(raw_targets, str):
        raw_targets = [raw_targets]
    if not isinstance(raw_targets, Sequence) or not raw_targets:
        raise ScenarioError(f"{where}: {label('targets')}: missing; give at least one, e.g. 'latency_p99<=2s'")
    targets = tuple(parse_target(str(t), scenario, f"{where}: {label('targets')}") for t in raw_targets)
    confidence = spec.get("confidence", 0.95)
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0.5 <= confidence < 1:
        raise ScenarioError(f"{where}: {label('confidence')}: got {confidence!r}; must be a number in [0.5, 1), "
                            "e.g. 0.95")
    tolerance = spec.get("tolerance")
    if tolerance is not None and (isinstance(tolerance, bool) or not isinstance(tolerance, int | float)
                                  or not tolerance > 0):
        raise ScenarioError(f"{where}: {label('tolerance')}: got {tolerance!r}; must be a number > 0 "
                            "(in the field's unit: seconds, per second)")
    replications = _positive_int(spec.get("replications"), label("replications"), where, 2)
    most = _positive_int(spec.get("max_replications"), label("max_replications"), where, 2)
    if replications is not None and most is not None and most < replications:
        raise ScenarioError(f"{where}: {label('max_replications')}: got {most}; must be >= replications "
                            f"({replications})")
    return PlanSpec(
        path=path, low=spec["min"], high=spec["max"], targets=targets, maximize=given[0] == "maximize",
        replications=replications, max_replications=most, confidence=float(confidence),
        tolerance=None if tolerance is None else float(tolerance),
    )  # fmt: skip
