"""Experiments: a base scenario, a grid of sweep points, and how precisely to estimate them.

A scenario file may carry experiment-level keys next to the scenario::

    sweep:                                  # a grid over field paths, as --set takes them
      producers.0.arrivals.rate: [200/s, 600/s, 900/s]
      queue.discipline: [fifo, lifo]
    precision: {metric: latency_p99, relative: 0.05, max_replications: 50}
    plan: {vary: consumers.concurrency, min: 100, max: 5000, targets: ['latency_p99<=2s']}

They say how to run the scenario, not what it is, so they are not part of :class:`Scenario`:
:func:`sim.model.scenario.split_experiment` sets them aside, :mod:`sim.experiments.specs` validates
them (pydantic models, like the scenario), and this module builds the points. Each sweep
point is the base raw data with the point's values applied (like ``--set``) and validated
like any scenario, so a bad sweep value gets the usual one-line error, naming
``sweep.<key>``. Every point is validated when the experiment is loaded, so ``qsim check``
catches them all before anything runs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sim.engine.choice import engine_for
from sim.experiments.specs import NOT_SWEPT, Precision, parse_plan, read_precision, read_sweep
from sim.experiments.targets import PlanSpec
from sim.model.scenario import (
    ScenarioError,
    apply_overrides,
    parse_override,
    read_scenario_data,
    scenario_from_dict,
    split_experiment,
)
from sim.model.schema import Scenario

__all__ = ["NOT_SWEPT", "Experiment", "Point", "Precision", "experiment_from_dict", "load_experiment"]


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
    base = scenario_from_dict(scenario_data, base_dir=base_dir, source=source, where=where)
    raw = base.raw
    grid = read_sweep(extra["sweep"], where) if "sweep" in extra else {}
    grid.update({key: list(values) for key, values in (sweep or {}).items()})
    grid = read_sweep(grid, where) if grid else {}
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
    precision = read_precision(extra["precision"], base, where) if "precision" in extra else None
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
