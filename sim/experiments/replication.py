"""One replication of one scenario: simulate it, choose its warm-up, summarise it.

This is the unit of work every executor runs. Replication ``r`` uses the random streams
``replication_seeds(seed, r)``, which depend only on the seed and ``r``; so a replication's
numbers are the same whichever process, machine or order it runs in, and two scenarios run
with the same seed see the same arrivals and service demands (common random numbers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sim.analysis.estimates import mser_truncation
from sim.analysis.metrics import Intervals, summarize, timeseries
from sim.analysis.streamed import sketch_quantiles, streamed_summary, streamed_timeseries
from sim.engine.choice import simulate_with
from sim.engine.records import COMPLETED, LATE, OUTCOMES, REASONS, Columns, Usage
from sim.engine.simulation import RunRecords, replication_seeds
from sim.engine.tally import LATENCY
from sim.model.schema import Scenario

QUANTILES = np.linspace(0.0, 1.0, 201)
"""Levels at which a run's latency distribution is kept (every half percent): enough for a CDF."""

WARMUP_SERIES = "in_system"
"""The time-series column MSER-5 truncates: the time-average number of requests in the system
per bucket. Unlike a per-bucket mean latency it is defined in every bucket (even one where no
request finished), and it carries the start-up bias directly: the system starts empty."""


@dataclass
class Run:
    """One replication: its records and the tables made from them."""

    replication: int
    records: RunRecords
    summary: pd.DataFrame
    timeseries: pd.DataFrame
    producer_names: list[str] = field(default_factory=list)
    warmup: float = 0.0
    """Seconds left out of request statistics (the scenario's, or MSER-5's choice with ``warmup: auto``)."""

    @property
    def requests(self) -> pd.DataFrame:
        return requests_frame(self.records, self.producer_names)

    @property
    def jobs(self) -> pd.DataFrame | None:
        """Attempts or stage visits, when a request can have more than one (else None)."""
        if self.records.jobs is self.records.columns:
            return None
        return jobs_frame(self.records, self.producer_names)

    @property
    def environments(self) -> pd.DataFrame:
        """Each execution environment's lifespan: ``stage``, ``environment`` (its number in the
        stage, in creation order), ``created`` and ``reclaimed`` (NaN: alive when the run ended;
        a fixed pool's workers are all created at 0 and never reclaimed)."""
        return environments_frame(self.records)


@dataclass
class RunOutcome:
    """What a replication sends back from a worker: small tables, never the per-request columns."""

    point: int
    replication: int
    summary: pd.DataFrame
    timeseries: pd.DataFrame
    latency_quantiles: NDArray[np.float64]
    """Latency of served requests at :data:`QUANTILES` (NaN when nothing was served)."""
    warmup: float
    code: str = ""
    """Fingerprint of the qsim code that computed it (see :func:`sim.experiments.cache.code_fingerprint`)."""
    run: Run | None = None
    """The full run, kept only when it was computed in this process (records are large)."""


def requests_frame(records: RunRecords, producer_names: list[str]) -> pd.DataFrame:
    """The request log as a DataFrame: one row per request, in arrival order.

    With usage metering (scaling, broker delivery, retries...) it also has the request's
    attempts, receives, throttles, cold starts, duplicates and billed GB-seconds.
    """
    c = records.columns
    frame = _common_columns(c, producer_names, "request", c.request)
    if c.key is not None:
        frame["key"] = c.key  # the message's key (-1: none), with producers that draw keys
    if c.usage is not None:
        own_job = records.columns is records.jobs
        frame["attempts"] = np.ones(len(c), dtype=np.int64) if own_job else c.usage.attempt
        _usage_columns(frame, c.usage)
    return frame


def jobs_frame(records: RunRecords, producer_names: list[str]) -> pd.DataFrame:
    """One row per job: a client's attempt (with retries) or a request's visit to a stage (with stages)."""
    j = records.jobs
    frame = _common_columns(j, producer_names, "job", np.arange(len(j)))
    frame.insert(1, "request", j.request)
    stages = pd.Categorical.from_codes(j.stage.astype(np.int64), categories=pd.Index(records.stage_names))
    frame.insert(2, "stage", pd.Series(stages))
    if j.usage is not None:
        frame.insert(4, "attempt", j.usage.attempt)
        _usage_columns(frame, j.usage)
    return frame


def environments_frame(records: RunRecords) -> pd.DataFrame:
    """One row per execution environment of each stage, in creation order (see :attr:`Run.environments`)."""
    spans = [np.asarray(stage, dtype=float).reshape(-1, 2) for stage in records.environments]
    table = np.concatenate([np.empty((0, 2)), *spans])
    counts = np.array([len(stage) for stage in spans], dtype=np.int64)
    first_row = np.repeat(np.cumsum(counts) - counts, counts)  # of each environment's stage
    return pd.DataFrame(
        {
            "stage": pd.Categorical.from_codes(np.repeat(np.arange(len(spans)), counts),
                                               categories=pd.Index(records.stage_names)),
            "environment": np.arange(len(table), dtype=np.int64) - first_row,
            "created": table[:, 0],
            "reclaimed": table[:, 1],
        }
    )


def _common_columns(c: Columns, producer_names: list[str], key: str, ids: NDArray[np.int64]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            key: ids,
            "producer": pd.Categorical.from_codes(c.producer.astype(np.int64), categories=pd.Index(producer_names)),
            "arrival": c.arrival,
            "deadline": c.deadline,
            "service": c.service,
            "start": c.start,
            "finish": c.finish,
            "outcome": pd.Categorical.from_codes(c.outcome.astype(np.int64), categories=pd.Index(OUTCOMES)),
            "reason": pd.Categorical.from_codes(c.reason.astype(np.int64), categories=pd.Index(REASONS)),
        }
    )


def _usage_columns(frame: pd.DataFrame, usage: Usage) -> None:
    for name in ("receives", "throttles", "cold_starts", "duplicates", "gb_seconds"):
        frame[name] = getattr(usage, name)


def auto_warmup(series: pd.DataFrame) -> float:
    """MSER-5 on :data:`WARMUP_SERIES`: the seconds of start-up to leave out."""
    bucket = float(series.attrs.get("bucket") or 0.0)
    buckets = mser_truncation(series[WARMUP_SERIES].to_numpy(dtype=float))
    return buckets * bucket


def simulate_run(
    scenario: Scenario,
    seed: int,
    replication: int,
    progress: Callable[[float, float], None] | None = None,
    phase: Callable[[str], None] | None = None,
) -> Run:
    """Simulate replication ``replication`` of ``scenario`` and summarise it.

    ``progress`` gets (simulated time, share of the run done) during the run; ``phase`` is told
    when the summary starts (for millions of requests it takes a while).

    With ``warmup: auto`` the time series (which does not depend on the warm-up) is computed
    first, MSER-5 picks the truncation from it, and the summary leaves those seconds out.
    The summary gets a ``warmup`` column only then, so other runs keep their columns.
    """
    records = simulate_with(scenario, replication_seeds(seed, replication), progress)
    if phase is not None:
        phase("computing the summary")
    if records.tally is not None:
        records, series, summary, warmup = _streamed(records, scenario, seed, replication)
    else:
        intervals = Intervals(records)
        series = timeseries(records, scenario.report.bucket, intervals)
        if scenario.warmup == "auto":
            warmup = auto_warmup(series)
            summary = summarize(records, scenario, replication, intervals, warmup=warmup)
        else:
            warmup = float(scenario.warmup)
            summary = summarize(records, scenario, replication, intervals)
    if scenario.warmup == "auto":
        summary.insert(list(summary.columns).index("sim_time"), "warmup", warmup)
    return Run(
        replication=replication,
        records=records,
        summary=summary,
        timeseries=series,
        producer_names=[p.name for p in scenario.producers],
        warmup=warmup,
    )


def _streamed(records: RunRecords, scenario: Scenario, seed: int,
              replication: int) -> tuple[RunRecords, pd.DataFrame, pd.DataFrame, float]:
    """Time series and summary from a streamed run's tally.

    With ``warmup: auto`` the run is simulated a second time (the same streams give the same
    run) once MSER-5 has chosen the warm-up from the first run's time series: a tally folds
    each request as it finishes, so it must know the warm-up before the run starts.
    """
    series = streamed_timeseries(records)
    if scenario.warmup != "auto":
        warmup = float(scenario.warmup)
    else:
        warmup = auto_warmup(series)
        measured = scenario.model_copy(update={"warmup": warmup})
        records = simulate_with(measured, replication_seeds(seed, replication))
    return records, series, streamed_summary(records, scenario, replication, warmup), warmup


def latency_quantiles(records: RunRecords, warmup: float = 0.0) -> NDArray[np.float64]:
    """Latency of requests served (completed or late) that arrived after ``warmup``, at :data:`QUANTILES`."""
    if records.tally is not None:  # the sketch of all requests (the tally applied the warm-up)
        return sketch_quantiles(records.tally.sketch[0, LATENCY], QUANTILES)
    c = records.columns
    served = ((c.outcome == COMPLETED) | (c.outcome == LATE)) & (c.arrival >= warmup)
    latency = (c.finish - c.arrival)[served]
    if len(latency) == 0:
        return np.full(len(QUANTILES), np.nan)
    levels: NDArray[np.float64] = np.quantile(latency, QUANTILES)
    return levels


def outcome_of(run: Run, point: int, code: str = "", keep: bool = False) -> RunOutcome:
    """The small, shippable result of ``run`` (with the run itself when ``keep``)."""
    return RunOutcome(
        point=point,
        replication=run.replication,
        summary=run.summary,
        timeseries=run.timeseries,
        latency_quantiles=latency_quantiles(run.records, run.warmup),
        warmup=run.warmup,
        code=code,
        run=run if keep else None,
    )
