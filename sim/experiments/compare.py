"""Comparing scenarios on the same random numbers: a side-by-side table with paired tests.

Every arm runs with the same seed, so when the arms have the same arrival processes,
replication ``r`` of each arm sees the same arrivals, service demands and patience (common
random numbers): the difference between arms is the policy's effect plus much less noise
than two independent runs would have, and the test of a difference is paired
(``scipy.stats.ttest_rel`` over the replication-wise differences, against the first arm).

Arms whose arrivals differ (another rate, another trace) do not share their random numbers:
replication ``r`` of one arm is no pair for replication ``r`` of the other. Then the test is
Welch's unpaired t-test (``scipy.stats.ttest_ind(equal_var=False)``) and the table says so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sim.analysis.estimates import (
    clip_to_range,
    estimates_table,
    paired_p_value,
    significance,
    t_interval,
    welch_p_value,
)
from sim.experiments.replication import RunOutcome
from sim.experiments.runner import Runner, point_frame
from sim.experiments.sweep import Point, experiment_from_dict, parse_sweep_option
from sim.model.scenario import ScenarioError, load_scenario, read_scenario_data, split_experiment
from sim.model.schema import Scenario

DEFAULT_REPLICATIONS = 10
"""Replications per arm when the first scenario asks for only one: a paired test needs several."""

SKIPPED = ("wall_time",)
"""Columns left out of the comparison table: they differ between identical runs."""


@dataclass(frozen=True)
class Arms:
    """What is compared: one point per arm, the first being the baseline."""

    points: list[Point]
    labels: list[str]
    axis: str | None = None
    """The varied field with ``--vary``, else None (arms are files)."""

    @property
    def common_arrivals(self) -> bool:
        """Whether every arm has the same arrival processes (so, run with one seed, the same arrivals)."""
        first = arrival_signature(self.points[0].scenario)
        return all(arrival_signature(point.scenario) == first for point in self.points[1:])

    @property
    def name(self) -> str:
        """Default results folder name."""
        first = self.points[0].scenario.name
        if self.axis is not None:
            return f"{first}-compare"
        return "compare-" + "-vs-".join(p.scenario.name for p in self.points)[:80]


def arrival_signature(scenario: Scenario) -> str:
    """A hash of what decides a scenario's arrivals: each producer's arrival spec, in order (a
    producer's position keys its random stream), and the bytes of any trace file it replays."""
    digest = hashlib.sha256()
    base = scenario.source.parent if scenario.source is not None else Path(".")
    for producer in scenario.producers:
        spec = producer.arrivals.model_dump(mode="json")
        digest.update(json.dumps(spec, sort_keys=True, default=str).encode())
        if isinstance(spec.get("file"), str):
            try:
                digest.update((base / spec["file"]).read_bytes())
            except OSError:
                digest.update(b"unreadable")
    return digest.hexdigest()


def arms_from_files(paths: Sequence[Path], overrides: Mapping[str, Any]) -> Arms:
    """One arm per scenario file (each read as its base scenario; ``--set`` applies to all)."""
    points = []
    for index, path in enumerate(paths):
        scenario = load_scenario(path, overrides)
        points.append(Point(index=index, overrides={}, values={}, scenario=scenario))
    names = [p.scenario.name for p in points]
    labels = [name if names.count(name) == 1 else f"{name}#{i}" for i, name in enumerate(names)]
    return Arms(points=points, labels=labels)


def arms_from_vary(path: Path, vary: str, overrides: Mapping[str, Any]) -> Arms:
    """One arm per value of ``--vary key=v1,v2,...`` applied to one scenario."""
    key, values = parse_sweep_option(vary)
    if len(values) < 2:
        raise ScenarioError(f"--vary {vary!r}: give two or more values to compare, e.g. queue.discipline=fifo,lifo")
    data, _ = split_experiment(read_scenario_data(path, overrides))  # the file's own sweep is not compared
    experiment = experiment_from_dict(data, base_dir=path.parent, source=path, where=str(path), sweep={key: values})
    points = experiment.points
    labels = [point.label for point in points]
    return Arms(points=points, labels=labels, axis=key)


@dataclass
class Comparison:
    """The arms' per-run summaries and the side-by-side table."""

    arms: Arms
    seed: int
    replications: int
    summary: pd.DataFrame
    """Per arm and replication (column ``arm``)."""
    estimates: pd.DataFrame
    """Per arm (and row group): mean, ci_low and ci_high of every metric (the ``stat`` column)."""
    table: pd.DataFrame
    """One row per metric: each arm's mean and CI, and for each non-baseline arm the
    difference from the baseline, the p-value (paired, or Welch's) and a significance mark."""
    outcomes: dict[int, list[RunOutcome]]
    paired: bool = True
    """True when the arms share their arrivals (common random numbers): paired tests; else Welch's."""
    executor: str = ""


def compare(arms: Arms, runner: Runner, replications: int) -> Comparison:
    """Run every arm with the same seed and replications and build the comparison table."""
    runner.run(arms.points, replications)
    outcomes = {point.index: runner.replications_of(point) for point in arms.points}
    axes = [arms.axis] if arms.axis is not None else []
    per_run = point_frame(arms.points, outcomes, axes, lambda o: o.summary)
    per_run.insert(list(per_run.columns).index("point") + 1, "arm", per_run["point"].map(dict(enumerate(arms.labels))))
    estimates = estimates_table(per_run, keys=["point", *axes])
    paired = arms.common_arrivals
    return Comparison(arms=arms, seed=runner.seed, replications=replications, summary=per_run, estimates=estimates,
                      table=comparison_table(arms, outcomes, paired), outcomes=outcomes, paired=paired,
                      executor=runner.executor.description)


def headline(outcomes: Sequence[RunOutcome]) -> pd.DataFrame:
    """The first summary row (``producer == all``) of each replication, numeric columns only."""
    rows = pd.concat([o.summary.iloc[:1] for o in outcomes], ignore_index=True)
    numeric = [c for c in rows.columns if c != "replication" and pd.api.types.is_numeric_dtype(rows[c])]
    return rows[[c for c in numeric if c not in SKIPPED]]


def comparison_table(arms: Arms, outcomes: Mapping[int, Sequence[RunOutcome]], paired: bool = True) -> pd.DataFrame:
    """Metrics down; per arm ``mean``, ``ci_low``, ``ci_high``; per other arm ``diff``, ``p``, ``sig``.

    ``paired``: replication ``r`` of every arm saw the same arrivals (paired t-test); otherwise
    the arms are independent samples (Welch's t-test).
    """
    frames = [headline(outcomes[point.index]) for point in arms.points]
    metrics = [c for c in frames[0].columns if all(c in f.columns for f in frames)]
    rows = []
    for metric in metrics:
        row: dict[str, object] = {"metric": metric}
        base = frames[0][metric].to_numpy(dtype=float)
        for label, frame in zip(arms.labels, frames, strict=True):
            mean, low, high = t_interval(frame[metric].to_numpy(dtype=float))
            low, high = clip_to_range(metric, low, high)
            row.update({f"{label} mean": mean, f"{label} ci_low": low, f"{label} ci_high": high})
        for label, frame in zip(arms.labels[1:], frames[1:], strict=True):
            values = frame[metric].to_numpy(dtype=float)
            count = min(len(base), len(values))
            p_value = paired_p_value(base[:count], values[:count]) if paired else welch_p_value(base, values)
            difference = t_interval(values)[0] - t_interval(base)[0]
            row.update({f"{label} diff": difference, f"{label} p": p_value, f"{label} sig": significance(p_value)})
        rows.append(row)
    return pd.DataFrame(rows)
