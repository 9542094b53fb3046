"""Replications of a scenario and the statistics over them.

Each replication is an independent run with its own random streams, spawned from the
scenario's seed by position (replication ``r`` gets the same streams whether 2 or 20 are
run), so results are reproducible and replications can run anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from sim.engine import RunRecords, replication_seeds, simulate
from sim.metrics import Intervals, summarize, timeseries
from sim.records import OUTCOMES
from sim.schema import Scenario

ProgressFraction = Callable[[float, float], None]
"""Called with (fraction of the work done in 0..1, simulated time of the current run)."""

CONFIDENCE = 0.95


@dataclass
class Run:
    """One replication: its records and the tables made from them."""

    replication: int
    records: RunRecords
    summary: pd.DataFrame
    timeseries: pd.DataFrame

    @property
    def requests(self) -> pd.DataFrame:
        return requests_frame(self.records, self.producer_names)

    producer_names: list[str] = field(default_factory=list)


@dataclass
class Result:
    """What :func:`run` returns: every replication, and the combined tables."""

    scenario: Scenario
    runs: list[Run]
    summary: pd.DataFrame
    """One row per replication and producer group, then ``mean``/``ci_low``/``ci_high`` rows."""

    @property
    def requests(self) -> pd.DataFrame:
        """One row per request of the first replication."""
        return self.runs[0].requests

    @property
    def timeseries(self) -> pd.DataFrame:
        """Per-bucket series of every replication, with a ``replication`` column."""
        frames = [run.timeseries.assign(replication=run.replication) for run in self.runs]
        frame = pd.concat(frames, ignore_index=True)
        frame.attrs["bucket"] = self.runs[0].timeseries.attrs.get("bucket")
        return frame


def requests_frame(records: RunRecords, producer_names: list[str]) -> pd.DataFrame:
    """The request log as a DataFrame: one row per request, in arrival order."""
    c = records.columns
    return pd.DataFrame(
        {
            "request": np.arange(len(c)),
            "producer": pd.Categorical.from_codes(c.producer.astype(np.int64), categories=pd.Index(producer_names)),
            "arrival": c.arrival,
            "deadline": c.deadline,
            "service": c.service,
            "start": c.start,
            "finish": c.finish,
            "outcome": pd.Categorical.from_codes(c.outcome.astype(np.int64), categories=pd.Index(OUTCOMES)),
        }
    )


def run(
    scenario: Scenario,
    *,
    seed: int | None = None,
    replications: int | None = None,
    progress: ProgressFraction | None = None,
) -> Result:
    """Run every replication of ``scenario`` in this process and summarise them.

    ``seed`` and ``replications`` override the scenario's own values.
    """
    seed = scenario.seed if seed is None else seed
    count = scenario.replications if replications is None else replications
    if count < 1:
        raise ValueError(f"replications must be >= 1, got {count}")
    names = [p.name for p in scenario.producers]
    horizon = scenario.until or max(p.arrivals.build().horizon for p in scenario.producers)
    runs = []
    for replication in range(count):
        reporter = None if progress is None else _within(progress, replication, count, horizon)
        records = simulate(scenario, replication_seeds(seed, replication), reporter)
        intervals = Intervals(records)
        runs.append(
            Run(
                replication=replication,
                records=records,
                summary=summarize(records, scenario, replication, intervals),
                timeseries=timeseries(records, scenario.report.bucket, intervals),
                producer_names=names,
            )
        )
        if progress is not None:
            progress((replication + 1) / count, records.end_time)
    per_run = pd.concat([r.summary for r in runs], ignore_index=True)
    return Result(scenario=scenario, runs=runs, summary=with_intervals(per_run))


def _within(progress: ProgressFraction, replication: int, count: int, horizon: float) -> Callable[[float], None]:
    """Turn one run's simulated time into the fraction of all replications done."""

    def report(now: float) -> None:
        done = min(1.0, now / horizon) if math.isfinite(horizon) and horizon > 0 else 0.5
        progress((replication + done) / count, now)

    return report


def t_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval of independent replications (NaNs ignored)."""
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf((1 + confidence) / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def with_intervals(per_run: pd.DataFrame) -> pd.DataFrame:
    """Append ``mean``, ``ci_low`` and ``ci_high`` rows per producer group when there are 2+ replications."""
    if per_run["replication"].nunique() < 2:
        return per_run
    numeric = [c for c in per_run.columns if c not in ("scenario", "replication", "producer")]
    rows = []
    for producer, group in per_run.groupby("producer", sort=False):
        estimates = {column: t_interval(group[column].to_numpy(dtype=float)) for column in numeric}
        for position, label in enumerate(("mean", "ci_low", "ci_high")):
            row: dict[str, object] = {"scenario": group["scenario"].iloc[0], "replication": label, "producer": producer}
            row.update({column: estimates[column][position] for column in numeric})
            rows.append(row)
    combined = pd.concat([per_run.astype({"replication": object}), pd.DataFrame(rows)], ignore_index=True)
    return combined[per_run.columns]
