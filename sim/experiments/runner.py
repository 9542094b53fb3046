"""Replications and sweeps: running points x replications and combining them into tidy tables.

Each replication is an independent run with its own random streams, spawned from the seed by
position (replication ``r`` gets the same streams whether 2 or 20 are run, on whichever
executor), and every point of a sweep uses the same seed: common random numbers, so
differences between points come from the points, not from luck. :func:`run` runs one
scenario's replications here; :class:`Runner` runs any points on any executor, through a
resumable cache, with an optional stopping rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sim.analysis.estimates import CONFIDENCE, estimates_table, precise_enough, replications_needed, t_interval
from sim.experiments.cache import ResultCache, run_key, scenario_digest
from sim.experiments.executors import Executor, InProcess, Task
from sim.experiments.replication import Run, RunOutcome, requests_frame, simulate_run
from sim.experiments.sweep import Experiment, Point, Precision, starting_replications
from sim.model.schema import Scenario

__all__ = [
    "CONFIDENCE", "Result", "Run", "RunOutcome", "Runner", "SweepResult", "estimates_table", "requests_frame", "run",
    "run_experiment", "t_interval",
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
    """One row per replication and row group (all requests, each producer, each stage); ``replication``
    is the integer index and counts are integers."""
    outcomes: list[RunOutcome] = field(default_factory=list)
    """Every replication's tables, in replication order (empty when ``runs`` has them all)."""
    seed: int | None = None
    estimates: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per row group: ``stat`` (``mean``, ``ci_low``, ``ci_high``), ``runs``, then every metric as a float
    (see :func:`sim.analysis.estimates.estimates_table`); computed from ``summary`` when not given."""

    def __post_init__(self) -> None:
        if self.estimates.empty and not self.summary.empty:
            self.estimates = estimates_table(self.summary)

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
    runs = []
    for replication in range(count):
        reporter = None if progress is None else _within(progress, replication, count)
        run_ = simulate_run(scenario, seed, replication, reporter)
        runs.append(run_)
        if progress is not None:
            progress((replication + 1) / count, run_.records.end_time)
    per_run = pd.concat([r.summary for r in runs], ignore_index=True)
    return Result(scenario=scenario, runs=runs, summary=per_run, seed=seed)


def _within(progress: FractionCallback, replication: int, count: int) -> Callable[[float, float], None]:
    """Turn one run's progress into the fraction of all replications done."""

    def report(now: float, done: float) -> None:
        progress((replication + done) / count, now)

    return report


RunsDoneCallback = Callable[[int, int], None]
"""Called after each run with (runs finished or found in the cache, runs known so far)."""


RunId = tuple[str, int, int]
"""What identifies a run: the digest of its validated scenario, the seed and the replication."""


class Runner:
    """Runs points x replications on an executor, through a cache, in any order, with the same numbers.

    Outcomes accumulate across calls, so a capacity search that comes back to a point with more
    replications runs only the new ones. They are kept by content -- the digest of the point's
    validated scenario, the seed and the replication -- never by a point's index, which is only
    a label: one runner can serve a sweep, then a comparison, then a plan, and each gets the runs
    of its own scenarios (two points that validate to the same scenario share their runs).
    ``on_outcome`` is called after each computed run has been stored (tests use it to interrupt
    a sweep half-way).
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
        self.outcomes: dict[RunId, RunOutcome] = {}
        self.computed = 0
        self.cached = 0
        self.known = 0
        self._wanted: dict[str, int] = {}
        self._digests: dict[int, tuple[Scenario, str]] = {}

    @property
    def points(self) -> tuple[int, int]:
        """(scenarios with every replication asked for so far, scenarios asked for): for a progress bar."""
        done = sum(1 for digest, count in self._wanted.items()
                   if all((digest, self.seed, r) in self.outcomes for r in range(count)))
        return done, len(self._wanted)

    def digest(self, point: Point) -> str:
        """The content digest of ``point``'s validated scenario (hashed once per scenario object; the
        scenario is kept with its digest so its ``id`` cannot be reused by another object)."""
        found = self._digests.get(id(point.scenario))
        if found is None:
            found = self._digests[id(point.scenario)] = (point.scenario, scenario_digest(point.scenario))
        return found[1]

    def run_id(self, point: Point, replication: int) -> RunId:
        return self.digest(point), self.seed, replication

    def ensure(self, points: Sequence[Point], replications: int | Mapping[int, int], keep_first: bool = False) -> None:
        """Make sure each point has replications ``0..n-1`` (``n`` per point index, or the same for all).

        ``keep_first``: keep replication 0 of the first point with its request records when it
        runs in this process (the results folder shows it request by request).
        """
        tasks: list[Task] = []
        pending: list[RunId] = []
        labels: list[int] = []
        for point in points:
            count = replications if isinstance(replications, int) else replications[point.index]
            digest = self.digest(point)
            self._wanted[digest] = max(count, self._wanted.get(digest, 0))
            for replication in range(count):
                where = (digest, self.seed, replication)
                if where in self.outcomes or where in pending:
                    continue
                key = run_key(digest, self.seed, replication)
                found = self.cache.get(key)
                self.known += 1
                if found is not None:
                    self.outcomes[where] = found
                    self.cached += 1
                    continue
                keep = keep_first and point is points[0] and replication == 0
                tasks.append(Task(point=len(pending), replication=replication, seed=self.seed,
                                  scenario=point.scenario, keep=keep))
                pending.append(where)
                labels.append(point.index)
        if self.progress is not None:
            self.progress(self.computed + self.cached, self.known)
        if not tasks:
            return
        for tagged in self.executor.outcomes(tasks):
            where = pending[tagged.point]  # the task's tag: its position in this batch
            outcome = _as_point(tagged, labels[tagged.point])
            self.cache.put(run_key(*where), outcome)
            self.outcomes[where] = outcome
            self.computed += 1
            if self.progress is not None:
                self.progress(self.computed + self.cached, self.known)
            if self.on_outcome is not None:
                self.on_outcome(outcome)

    def run(self, points: Sequence[Point], replications: int, precision: Precision | None = None,
            keep_first: bool = False) -> None:
        """Run every point with ``replications``; with a stopping rule, add rounds until it holds."""
        counts = {point.index: replications for point in points}
        self.ensure(points, counts, keep_first)
        if precision is None:
            return
        while True:
            wanted = {}
            for point in points:
                values = self.metric(point, counts[point.index], precision.metric)
                if counts[point.index] < precision.max_replications and not precise_enough(values, precision.relative):
                    # Aim at the estimate, but at most double per round: an estimate from a few
                    # replications (with a large t quantile) overshoots, and runs are not free.
                    needed = min(replications_needed(values, precision.relative), 2 * counts[point.index])
                    wanted[point.index] = min(precision.max_replications, max(counts[point.index] + 1, needed))
            if not wanted:
                return
            counts.update(wanted)
            self.ensure([p for p in points if p.index in wanted], counts)

    def replications_of(self, point: Point, count: int | None = None) -> list[RunOutcome]:
        """The point's outcomes in replication order (the contiguous ones from 0, at most ``count``),
        labelled with the point's index."""
        digest = self.digest(point)
        found: list[RunOutcome] = []
        while (count is None or len(found) < count) and (digest, self.seed, len(found)) in self.outcomes:
            found.append(_as_point(self.outcomes[digest, self.seed, len(found)], point.index))
        return found

    def metric(self, point: Point, count: int, column: str) -> np.ndarray:
        """``column`` of the run's headline row (the first: ``producer == all``) for replications ``0..count-1``."""
        digest = self.digest(point)
        return np.array([float(self.outcomes[digest, self.seed, r].summary[column].iloc[0]) for r in range(count)])


def _as_point(outcome: RunOutcome, point: int) -> RunOutcome:
    """An outcome labelled with the point asking for it (the same run may serve several points)."""
    if outcome.point == point:
        return outcome
    return RunOutcome(**{**outcome.__dict__, "point": point})


def first_run(runner: Runner, point: Point) -> Run:
    """Replication 0 of ``point`` with its request records: kept in-process, else simulated again here
    (the same streams give the same run)."""
    outcome = runner.outcomes.get(runner.run_id(point, 0))
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
    """One row per point, replication (and row group), with ``point`` and the swept fields."""
    estimates: pd.DataFrame
    """Per point (and row group): mean, ci_low and ci_high of every metric (the ``stat`` column)."""
    first: Run
    """Replication 0 of the first point, with request records (for ``requests.parquet``)."""
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


def run_experiment(
    experiment: Experiment,
    runner: Runner,
    replications: int,
) -> Result | SweepResult:
    """Run every point of ``experiment``; a scenario without a sweep gives a :class:`Result` as before."""
    runner.run(experiment.points, replications, experiment.precision, keep_first=True)
    outcomes = {point.index: runner.replications_of(point) for point in experiment.points}
    first = first_run(runner, experiment.points[0])
    if not experiment.sweep:
        found = outcomes[0]
        per_run = pd.concat([o.summary for o in found], ignore_index=True)
        return Result(scenario=experiment.base, runs=[first], summary=per_run, outcomes=found, seed=runner.seed)
    per_run = point_frame(experiment.points, outcomes, experiment.axes, lambda o: o.summary)
    estimates = estimates_table(per_run, keys=["point", *experiment.axes])
    return SweepResult(
        experiment=experiment, seed=runner.seed, outcomes=outcomes, summary=per_run, estimates=estimates, first=first,
        executor=runner.executor.description, computed=runner.computed, cached=runner.cached,
    )  # fmt: skip


def sweep(experiment: Experiment, *, seed: int | None = None, replications: int | None = None,
          executor: Executor | None = None, cache: ResultCache | None = None) -> Result | SweepResult:
    """Python entry point: run an experiment (in this process unless given an executor)."""
    runner = Runner(executor or InProcess(), experiment.base.seed if seed is None else seed, cache)
    return run_experiment(experiment, runner, starting_replications(experiment, replications))
