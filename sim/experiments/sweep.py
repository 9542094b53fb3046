"""Experiments: a base scenario, a grid of sweep points, and how precisely to estimate them.

A scenario file may carry experiment-level keys next to the scenario::

    sweep:                                  # a grid over field paths, as --set takes them
      producers.0.arrivals.rate: [200/s, 600/s, 900/s]
      queue.discipline: [fifo, lifo]
    precision: {metric: latency_p99, relative: 0.05, max_replications: 50}
    plan: {vary: consumers.concurrency, min: 100, max: 5000, targets: ['latency_p99<=2s']}

They say how to run the scenario, not what it is, so they are not part of :class:`Scenario`:
:func:`sim.model.scenario.split_experiment` sets them aside, and this module reads them. Each sweep
point is the base raw data with the point's values applied (like ``--set``) and validated
like any scenario, so a bad sweep value gets the usual one-line error, naming
``sweep.<key>``. Every point is validated when the experiment is loaded, so ``qsim check``
catches them all before anything runs.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sim.engine.choice import engine_for
from sim.experiments.targets import PlanSpec, metric_columns, parse_plan
from sim.model.scenario import (
    EXPERIMENT_KEYS,
    ScenarioError,
    apply_overrides,
    parse_override,
    read_scenario_data,
    refuse_unknown_keys,
    scenario_from_dict,
    split_experiment,
)
from sim.model.schema import Scenario

#: Top-level fields a sweep cannot vary: they name the results or set up the replications.
NOT_SWEPT = ("name", "seed", "replications")


@dataclass(frozen=True)
class Point:
    """One point of a sweep: the values set at it and the scenario they give."""

    index: int
    overrides: dict[str, Any]
    """The swept values as written (``800/s``)."""
    values: dict[str, Any]
    """The same values as validated (``800.0``): numbers in seconds or per second, or text."""
    scenario: Scenario

    @property
    def label(self) -> str:
        """``queue.discipline=lifo, producers.0.arrivals.rate=800/s`` (the scenario name with no values)."""
        if not self.overrides:
            return self.scenario.name
        return ", ".join(f"{key}={_text(value)}" for key, value in self.overrides.items())


@dataclass(frozen=True)
class Precision:
    """The stopping rule: add replications until the 95 % half-width of ``metric`` is at most
    ``relative`` x its mean (at every point), or ``max_replications`` are done."""

    metric: str
    relative: float
    max_replications: int = 50


@dataclass(frozen=True)
class Experiment:
    """A base scenario and what to do with it."""

    base: Scenario
    raw: dict[str, Any]
    """The scenario part as written (after ``--set``), without experiment keys."""
    sweep: dict[str, list[Any]] = field(default_factory=dict)
    points: list[Point] = field(default_factory=list)
    precision: Precision | None = None
    plan: PlanSpec | None = None
    source: Path | None = None

    @property
    def name(self) -> str:
        return self.base.name

    @property
    def axes(self) -> list[str]:
        return list(self.sweep)

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source is not None else Path(".")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...")


def value_at(data: Any, path: str) -> Any:
    """The value at a dotted path of a dumped scenario (``None`` if the path is not there)."""
    node = data
    for key in path.split("."):
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return None
    return node


def _scalar(value: Any) -> Any:
    """A swept value fit for a table column: a mapping or list (a distribution) becomes its YAML text."""
    return _text(value) if isinstance(value, dict | list) else value


def parse_sweep_option(text: str) -> tuple[str, list[Any]]:
    """``key.path=v1,v2,...`` (``--sweep``) into the path and its values, each read as YAML like ``--set``."""
    path, equals, raw = text.partition("=")
    path = path.strip()
    items = [item.strip() for item in raw.split(",")]
    if not equals or not path or "" in path.split(".") or "" in items:
        raise ScenarioError(f"--sweep {text!r}: write key.path=v1,v2,... e.g. producers.0.arrivals.rate=200/s,400/s")
    return path, [parse_override(f"{path}={item}")[1] for item in items]


def build_point(
    raw: dict[str, Any], overrides: Mapping[str, Any], index: int, base_dir: Path, source: Path | None, where: str
) -> Point:
    """Apply ``overrides`` to the base raw data and validate the result as a point."""
    data = apply_overrides(raw, overrides, where=where)
    scenario = scenario_from_dict(data, base_dir=base_dir, source=source, where=where)
    dumped = scenario.model_dump(mode="json")
    # A mapping (a distribution, a queue block) is shown as written: its validated form spells
    # out every default and would bury what the sweep changes.
    values = {key: _text(value) if isinstance(value, dict | list) else _scalar(value_at(dumped, key))
              for key, value in overrides.items()}
    return Point(index=index, overrides=dict(overrides), values=values, scenario=scenario)


def _check_sweep(sweep: Any, where: str) -> dict[str, list[Any]]:
    if not isinstance(sweep, dict) or not sweep:
        raise ScenarioError(
            f"{where}: sweep: got {_text(sweep)}; must be a mapping of field paths to lists of values, "
            "e.g. {producers.0.arrivals.rate: [200/s, 400/s]}"
        )
    checked: dict[str, list[Any]] = {}
    for key, values in sweep.items():
        if not isinstance(key, str) or not key or "" in key.split("."):
            raise ScenarioError(f"{where}: sweep: got the key {key!r}; keys are field paths like queue.discipline")
        if key.split(".")[0] in (*NOT_SWEPT, *EXPERIMENT_KEYS):
            raise ScenarioError(
                f"{where}: sweep.{key}: cannot be swept; every point shares the name, seed and replications "
                "(that is what makes points comparable); sweep a field of the model instead"
            )
        if not isinstance(values, list) or not values:
            raise ScenarioError(f"{where}: sweep.{key}: got {_text(values)}; must be a non-empty list of values")
        texts = [_text(v) for v in values]
        repeated = sorted({t for t in texts if texts.count(t) > 1})
        if repeated:
            raise ScenarioError(f"{where}: sweep.{key}: {repeated[0]} appears twice; list each value once")
        checked[key] = values
    return checked


def _check_precision(spec: Any, base: Scenario, where: str) -> Precision:
    known = ("metric", "relative", "max_replications")
    example = "e.g. {metric: latency_p99, relative: 0.05, max_replications: 50}"
    if not isinstance(spec, dict):
        raise ScenarioError(f"{where}: precision: got {_text(spec)}; must be a mapping, {example}")
    refuse_unknown_keys(spec, known, where, "precision")
    metric = spec.get("metric")
    columns = metric_columns(base)
    if metric not in columns:
        raise ScenarioError(f"{where}: precision.metric: got {_text(metric)}; must be a summary column, e.g. "
                            f"latency_p99, timeout_rate, goodput ({', '.join(columns)})")
    relative = spec.get("relative")
    if isinstance(relative, bool) or not isinstance(relative, int | float) or not 0 < relative < 1:
        raise ScenarioError(f"{where}: precision.relative: got {_text(relative)}; must be a number between 0 and 1 "
                            "(0.05 = a half-width of 5 % of the mean)")
    limit = spec.get("max_replications", 50)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 2:
        raise ScenarioError(f"{where}: precision.max_replications: got {_text(limit)}; must be an integer >= 2")
    return Precision(metric=str(metric), relative=float(relative), max_replications=limit)


def experiment_from_dict(
    data: Any,
    *,
    base_dir: Path | None = None,
    source: Path | None = None,
    where: str = "scenario",
    sweep: Mapping[str, Sequence[Any]] | None = None,
) -> Experiment:
    """Validate raw data with experiment keys: the base scenario, every sweep point, precision and plan.

    ``sweep`` adds axes (or replaces the file's values for an axis), as ``--sweep`` does.
    """
    scenario_data, extra = split_experiment(data)
    if isinstance(scenario_data, dict):
        for key in scenario_data:
            close = difflib.get_close_matches(str(key), EXPERIMENT_KEYS, n=1, cutoff=0.75)
            if close and key not in Scenario.model_fields:
                raise ScenarioError(f"{where}: {key}: unknown key; did you mean {close[0]!r}?")
    base = scenario_from_dict(scenario_data, base_dir=base_dir, source=source, where=where)
    raw = base.raw
    grid = dict(extra["sweep"]) if "sweep" in extra else {}
    if "sweep" in extra:
        _check_sweep(grid, where)
    grid.update({key: list(values) for key, values in (sweep or {}).items()})
    grid = _check_sweep(grid, where) if grid else {}
    folder = base_dir if base_dir is not None else Path(".")
    for key, values in grid.items():  # each value alone first, so an error names the one at fault
        for value in values:
            _point_or_error(raw, {key: value}, folder, source, where, f"sweep.{key}", key)
    points = []
    for index, combination in enumerate(itertools.product(*grid.values())):
        overrides = dict(zip(grid, combination, strict=True))
        label = ", ".join(f"{k}={_text(v)}" for k, v in overrides.items())
        points.append(_point_or_error(raw, overrides, folder, source, where, f"sweep point {label}", None, index))
    if not points:
        points = [Point(index=0, overrides={}, values={}, scenario=base)]
    precision = _check_precision(extra["precision"], base, where) if "precision" in extra else None
    plan = parse_plan(extra["plan"], base, where) if "plan" in extra else None
    for point in points:
        engine_for(point.scenario)  # a one-line error now if the compiled engine was asked for and cannot run it
    return Experiment(base=base, raw=raw, sweep=grid, points=points, precision=precision, plan=plan, source=source)


def _point_or_error(
    raw: dict[str, Any],
    overrides: Mapping[str, Any],
    folder: Path,
    source: Path | None,
    where: str,
    context: str,
    key: str | None,
    index: int = 0,
) -> Point:
    """Build a point, turning its validation error into one line that says which sweep value is at fault."""
    try:
        return build_point(raw, overrides, index, folder, source, where)
    except ScenarioError as error:
        message = str(error).removeprefix(f"{where}: ")
        if key is not None:
            message = message.removeprefix(f"{key}: ")
        raise ScenarioError(f"{where}: {context}: {message}") from None


def load_experiment(
    path: str | Path,
    overrides: Mapping[str, Any] | Iterable[str] = (),
    sweep: Mapping[str, Sequence[Any]] | Iterable[str] | None = None,
) -> Experiment:
    """Read a scenario file with its experiment keys; ``overrides`` as ``--set``, ``sweep`` as ``--sweep``."""
    path = Path(path)
    data = read_scenario_data(path, overrides)
    if sweep is not None and not isinstance(sweep, Mapping):
        sweep = dict(parse_sweep_option(text) for text in sweep)
    return experiment_from_dict(data, base_dir=path.parent, source=path, where=str(path), sweep=sweep)


def starting_replications(experiment: Experiment, replications: int | None = None) -> int:
    """Replications to start each point with: ``replications`` or the scenario's; two at least with a
    stopping rule (a half-width needs two)."""
    count = experiment.base.replications if replications is None else replications
    if experiment.precision is not None:
        count = max(2, min(count, experiment.precision.max_replications))
    return count


def is_number(value: Any) -> bool:
    """A swept value that can be an axis of a curve (not text, not a mapping)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
