"""Replications and sweeps: running points x replications and combining them into tidy tables.

Each replication is an independent run with its own random streams, spawned from the seed by
position (replication ``r`` gets the same streams whether 2 or 20 are run, on whichever
executor), and every point of a sweep uses the same seed: common random numbers, so
differences between points come from the points, not from luck. :func:`run` runs one
scenario's replications here; :class:`Runner` runs any points on any executor, through a
resumable cache, with an optional stopping rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sim.analysis.estimates import (
    CONFIDENCE,
    precise_enough,
    replication_rows,
    replications_needed,
    t_interval,
    with_intervals,
)
from sim.experiments.cache import ResultCache, run_key, scenario_digest
from sim.experiments.executors import Executor, InProcess, Task
from sim.experiments.replication import Run, RunOutcome, requests_frame, simulate_run
from sim.experiments.sweep import Experiment, Point, Precision, starting_replications
from sim.model.schema import Scenario

__all__ = [
    "CONFIDENCE", "Result", "Run", "RunOutcome", "Runner", "SweepResult", "requests_frame", "run", "run_experiment",
    "t_interval", "with_intervals",
]  # fmt: skip

FractionCallback = Callable[[float, float], None]
"""Called with (fraction of the work done in 0..1, simulated time of the current run)."""


@dataclass
class Result:
    """One scenario's replications, and the combined tables."""

    scenario: Scenario
    runs: list[Run]
    """Full runs (with request records): every replication from :func:`run`; from the command
    line only replication 0 (the others ran elsewhere and sent back their tables)."""
    summary: pd.DataFrame
    """One row per replication and producer group, then ``mean``/``ci_low``/``ci_high`` rows."""
    outcomes: list[RunOutcome] = field(default_factory=list)
    """Every replication's tables, in replication order (empty when ``runs`` has them all)."""
    seed: int | None = None

    @property
    def replications(self) -> int:
        return len(self.outcomes) or len(self.runs)

    @property
    def requests(self) -> pd.DataFrame:
        """One row per request of the first replication."""
        return self.runs[0].requests

    @property
    def timeseries(self) -> pd.DataFrame:
        """Per-bucket series of every replication, with a ``replication`` column."""
        parts = [(o.replication, o.timeseries) for o in self.outcomes] or [(r.replication, r.timeseries)
                                                                         for r in self.runs]
        frame = pd.concat([series.assign(replication=index) for index, series in parts], ignore_index=True)
        frame.attrs["bucket"] = parts[0][1].attrs.get("bucket")
        return frame

    @property
    def warmups(self) -> list[float]:
        """The warm-up left out of each replication (MSER-5's choice with ``warmup: auto``)."""
        return [o.warmup for o in self.outcomes] or [r.warmup for r in self.runs]


def run(
    scenario: Scenario,
    *,
    seed: int | None = None,
    replications: int | None = None,
    progress: FractionCallback | None = None,
) -> Result:
    """Run every replication of ``scenario`` in this process and summarise them.

    ``seed`` and ``replications`` override the scenario's own values.
    """
    seed = scenario.seed if seed is None else seed
    count = scenario.replications if replications is None else replications
    if count < 1:
        raise ValueError(f"replications must be >= 1, got {count}")
    horizon = scenario.until or max(p.arrivals.build().horizon for p in scenario.producers)
    runs = []
    for replication in range(count):
        reporter = None if progress is None else _within(progress, replication, count, horizon)
        run_ = simulate_run(scenario, seed, replication, reporter)
        runs.append(run_)
        if progress is not None:
            progress((replication + 1) / count, run_.records.end_time)
    per_run = pd.concat([r.summary for r in runs], ignore_index=True)
    return Result(scenario=scenario, runs=runs, summary=with_intervals(per_run), seed=seed)


def _within(progress: FractionCallback, replication: int, count: int, horizon: float) -> Callable[[float], None]:
    """Turn one run's simulated time into the fraction of all replications done."""

    def report(now: float) -> None:
        done = min(1.0, now / horizon) if math.isfinite(horizon) and horizon > 0 else 0.5
        progress((replication + done) / count, now)

    return report


RunsDoneCallback = Callable[[int, int], None]
"""Called after each run with (runs finished or found in the cache, runs known so far)."""


class Runner:
    """Runs points x replications on an executor, through a cache, in any order, with the same numbers.

    Outcomes accumulate across calls, so a capacity search that comes back to a point with more
    replications runs only the new ones. ``on_outcome`` is called after each computed run has
    been stored (tests use it to interrupt a sweep half-way).
    """

    def __init__(
        self,
        executor: Executor,
        seed: int,
        cache: ResultCache | None = None,
        progress: RunsDoneCallback | None = None,
        on_outcome: Callable[[RunOutcome], None] | None = None,
    ) -> None:
        self.executor = executor
        self.seed = seed
        self.cache = cache if cache is not None else ResultCache()
        self.progress = progress
        self.on_outcome = on_outcome
        self.outcomes: dict[tuple[int, int], RunOutcome] = {}
        self.computed = 0
        self.cached = 0
        self.known = 0
        self._wanted: dict[int, int] = {}
        self._digests: dict[int, tuple[Scenario, str]] = {}

    @property
    def points(self) -> tuple[int, int]:
        """(points with every replication asked for so far, points asked for): for a progress bar."""
        done = sum(1 for point, count in self._wanted.items() if all((point, r) in self.outcomes for r in range(count)))
        return done, len(self._wanted)

    def _key(self, point: Point, replication: int) -> str:
        # Hashing a scenario (and its data files) once per point, not once per replication; the
        # scenario is kept with its digest so its id cannot be reused by another object.
        found = self._digests.get(id(point.scenario))
        if found is None:
            found = self._digests[id(point.scenario)] = (point.scenario, scenario_digest(point.scenario))
        return run_key(found[1], self.seed, replication)

    def ensure(self, points: Sequence[Point], replications: int | dict[int, int]) -> None:
        """Make sure each point has replications ``0..n-1`` (``n`` per point index, or the same for all)."""
        keys: dict[tuple[int, int], str] = {}
        tasks = []
        for point in points:
            count = replications if isinstance(replications, int) else replications[point.index]
            self._wanted[point.index] = max(count, self._wanted.get(point.index, 0))
            for replication in range(count):
                if (point.index, replication) in self.outcomes:
                    continue
                key = self._key(point, replication)
                found = self.cache.get(key)
                self.known += 1
                if found is not None:
                    self.outcomes[point.index, replication] = _as_point(found, point.index)
                    self.cached += 1
                    continue
                keys[point.index, replication] = key
                tasks.append(Task(point=point.index, replication=replication, seed=self.seed, scenario=point.scenario))
        if self.progress is not None:
            self.progress(self.computed + self.cached, self.known)
        if not tasks:
            return
        for outcome in self.executor.outcomes(tasks):
            where = (outcome.point, outcome.replication)
            self.cache.put(keys[where], outcome)
            self.outcomes[where] = outcome
            self.computed += 1
            if self.progress is not None:
                self.progress(self.computed + self.cached, self.known)
            if self.on_outcome is not None:
                self.on_outcome(outcome)

    def run(self, points: Sequence[Point], replications: int, precision: Precision | None = None) -> None:
        """Run every point with ``replications``; with a stopping rule, add rounds until it holds."""
        counts = {point.index: replications for point in points}
        self.ensure(points, counts)
        if precision is None:
            return
        while True:
            wanted = {}
            for point in points:
                values = self.metric(point.index, counts[point.index], precision.metric)
                if counts[point.index] < precision.max_replications and not precise_enough(values, precision.relative):
                    # Aim at the estimate, but at most double per round: an estimate from a few
                    # replications (with a large t quantile) overshoots, and runs are not free.
                    needed = min(replications_needed(values, precision.relative), 2 * counts[point.index])
                    wanted[point.index] = min(precision.max_replications, max(counts[point.index] + 1, needed))
            if not wanted:
                return
            counts.update(wanted)
            self.ensure([p for p in points if p.index in wanted], counts)

    def replications_of(self, point: int) -> list[RunOutcome]:
        """The point's outcomes in replication order (only the contiguous ones from 0)."""
        found: list[RunOutcome] = []
        while (point, len(found)) in self.outcomes:
            found.append(self.outcomes[point, len(found)])
        return found

    def metric(self, point: int, count: int, column: str) -> np.ndarray:
        """``column`` of the run's headline row (the first: ``producer == all``) for replications ``0..count-1``."""
        return np.array([float(self.outcomes[point, r].summary[column].iloc[0]) for r in range(count)])


def _as_point(outcome: RunOutcome, point: int) -> RunOutcome:
    """A cached outcome may have been computed as another point with the same scenario."""
    if outcome.point == point:
        return outcome
    return RunOutcome(**{**outcome.__dict__, "point": point})


def first_run(runner: Runner, point: Point) -> Run:
    """Replication 0 of ``point`` with its request records: kept in-process, else simulated again here
    (the same streams give the same run)."""
    outcome = runner.outcomes.get((point.index, 0))
    if outcome is not None and outcome.run is not None:
        return outcome.run
    return simulate_run(point.scenario, runner.seed, 0)


def point_frame(points: Sequence[Point], outcomes: dict[int, list[RunOutcome]], axes: Sequence[str],
                table: Callable[[RunOutcome], pd.DataFrame]) -> pd.DataFrame:
    """Per-run tables of every point with ``point`` and one column per swept axis (validated values)."""
    frames = []
    for point in points:
        for outcome in outcomes[point.index]:
            frame = table(outcome).copy()
            position = 1 if "scenario" in frame.columns else 0
            frame.insert(position, "point", point.index)
            for offset, axis in enumerate(axes):
                frame.insert(position + 1 + offset, axis, point.values.get(axis))
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@dataclass
class SweepResult:
    """Every point of a sweep: per-run outcomes and the tidy tables made from them."""

    experiment: Experiment
    seed: int
    outcomes: dict[int, list[RunOutcome]]
    """Per point index, its replications in order."""
    summary: pd.DataFrame
    """One row per point, replication (and producer group), then mean/ci_low/ci_high rows per point."""
    first: Run
    """Replication 0 of the first point, with request records (for ``requests.csv.gz``)."""
    executor: str = ""
    computed: int = 0
    cached: int = 0

    @property
    def points(self) -> list[Point]:
        return self.experiment.points

    @property
    def timeseries(self) -> pd.DataFrame:
        frame = point_frame(self.points, self.outcomes, self.experiment.axes,
                            lambda o: o.timeseries.assign(replication=o.replication))
        frame.attrs["bucket"] = self.first.timeseries.attrs.get("bucket")
        return frame

    def per_run(self) -> pd.DataFrame:
        return replication_rows(self.summary)


def run_experiment(
    experiment: Experiment,
    runner: Runner,
    replications: int,
) -> Result | SweepResult:
    """Run every point of ``experiment``; a scenario without a sweep gives a :class:`Result` as before."""
    runner.run(experiment.points, replications, experiment.precision)
    outcomes = {point.index: runner.replications_of(point.index) for point in experiment.points}
    first = first_run(runner, experiment.points[0])
    if not experiment.sweep:
        found = outcomes[0]
        per_run = pd.concat([o.summary for o in found], ignore_index=True)
        return Result(scenario=experiment.base, runs=[first], summary=with_intervals(per_run), outcomes=found,
                      seed=runner.seed)
    per_run = point_frame(experiment.points, outcomes, experiment.axes, lambda o: o.summary)
    summary = with_intervals(per_run, keys=["point", *experiment.axes])
    return SweepResult(
        experiment=experiment, seed=runner.seed, outcomes=outcomes, summary=summary, first=first,
        executor=runner.executor.description, computed=runner.computed, cached=runner.cached,
    )  # fmt: skip


def sweep(experiment: Experiment, *, seed: int | None = None, replications: int | None = None,
          executor: Executor | None = None, cache: ResultCache | None = None) -> Result | SweepResult:
    """Python entry point: run an experiment (in this process unless given an executor)."""
    runner = Runner(executor or InProcess(), experiment.base.seed if seed is None else seed, cache)
    return run_experiment(experiment, runner, starting_replications(experiment, replications))
