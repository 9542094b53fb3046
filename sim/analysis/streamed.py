"""The summary and time series of a streamed run, from its :class:`~sim.engine.tally.Tally`.

The same columns, with the same meaning, as :mod:`sim.analysis.metrics` computes from full
records; counts and time averages agree with it (up to the rounding of sums), and percentiles
come from the tally's sketch, within a relative :data:`~sim.engine.tally.ACCURACY` (0.5 %) of a
value of the right rank. Rows: all requests, each producer (with several), each stage (with
several: its jobs, waits and consumers), as in the exact summary.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sim.analysis.metrics import WAIT_PERCENTILES, latency_percentiles, provisioned, summary_columns
from sim.analysis.pools import mean_consumers, pool_cost, scaling_columns
from sim.engine.records import OUTCOMES, RunRecords
from sim.engine.tally import (
    ARRIVALS,
    ATTEMPTS,
    ATTEMPTS_AT,
    BATCHED_SECONDS,
    BUSY,
    BUSY_AREA,
    COLD_STARTS,
    COLD_STARTS_AT,
    COMPLETED_AT,
    DROPPED_AQM,
    DROPPED_AT,
    DROPPED_OVERFLOW,
    DUPLICATES,
    DUPLICATES_AT,
    EXPIRED_AT,
    GAMMA,
    LAMBDA_GB_SECONDS,
    LAMBDA_INVOCATIONS,
    LATE_AT,
    LATENCY,
    LATENCY_SUM,
    MIN_INDEX,
    OFFERED,
    OUTCOME_BASE,
    OVERDUE,
    PRODUCER_VIEWS,
    QUEUE,
    QUEUE_AREA,
    QUEUE_PEAK,
    REJECTED_AT,
    SERVED,
    SERVED_AT,
    SQS_REQUESTS,
    STAGE_ARRIVALS_AT,
    STAGE_LOST_AT,
    STAGE_SERVED_AT,
    STAGE_VIEWS,
    SYSTEM,
    SYSTEM_AREA,
    THROTTLES,
    WAIT,
    WAIT_SUM,
    WASTED,
    WIDTH,
    bucket_count,
    series_edges,
)
from sim.model.schema import Scenario, percentile_column

Floats = NDArray[np.float64]


def sketch_values(bins: NDArray[np.int64]) -> Floats:
    """The value each bin of a sketch stands for (within 0.5 % of every value counted in it)."""
    indexes = np.arange(len(bins)) - 1 + MIN_INDEX
    values: Floats = np.where(np.arange(len(bins)) == 0, 0.0, 2 * GAMMA ** indexes.astype(float) / (GAMMA + 1))
    return values


def sketch_histogram(bins: NDArray[np.int64], edges: Floats) -> Floats:
    """How many values of a sketch fall between consecutive ``edges`` (each bin's count spread evenly
    over its range ``(gamma^(i-1), gamma^i]``, so that bins narrower than the edges do not alias)."""
    indexes = np.arange(1, len(bins)) - 1 + MIN_INDEX
    uppers = GAMMA ** indexes.astype(float)
    points = np.concatenate([[0.0, uppers[0] / GAMMA], uppers])
    cumulative = np.concatenate([[float(bins[0]), float(bins[0])], np.cumsum(bins[1:]) + float(bins[0])])
    below = np.interp(edges, points, cumulative, left=0.0)
    below[edges <= 0] = 0.0  # values of 0 count in the interval that starts at 0
    counts: Floats = np.diff(below)
    return counts


def sketch_quantiles(bins: NDArray[np.int64], levels: Floats) -> Floats:
    """Quantiles (levels in [0, 1]) of the values in a sketch, interpolated like ``numpy.percentile``."""
    total = int(bins.sum())
    if total == 0:
        return np.full(len(levels), np.nan)
    values = sketch_values(bins)
    cumulative = np.cumsum(bins)
    rank = levels * (total - 1)
    low, high = np.floor(rank).astype(np.int64), np.ceil(rank).astype(np.int64)
    below = values[np.searchsorted(cumulative, low, side="right")]
    above = values[np.searchsorted(cumulative, high, side="right")]
    found: Floats = below + (rank - low) * (above - below)
    return found


@dataclass(frozen=True)
class _View:
    """One summary row: which tally view, what it is about, and over how many consumers."""

    index: int
    producer: str
    stage: str
    concurrency: int


def _views(records: RunRecords, scenario: Scenario) -> list[_View]:
    tally = records.tally
    assert tally is not None
    views = [_View(0, "all", "all", records.concurrency)]
    if tally.flags[PRODUCER_VIEWS] > 0:
        views += [_View(1 + index, p.name, "all", records.concurrency) for index, p in enumerate(scenario.producers)]
    if tally.flags[STAGE_VIEWS] > 0:
        first = 1 + int(tally.flags[PRODUCER_VIEWS])
        views += [_View(first + index, "all", name, records.stage_concurrency[index])
                  for index, name in enumerate(records.stage_names)]
    return views


def _usage(records: RunRecords, scenario: Scenario, view: _View, offered: int) -> dict[str, float]:
    """Attempts, throttles, cold starts, duplicates and cost, as :func:`sim.analysis.metrics.summarize` has them."""
    tally = records.tally
    assert tally is not None
    if records.jobs.usage is None:
        return {"attempts": offered, "retries": 0, "throttles": 0, "cold_starts": 0, "duplicates": 0,
                "cost_usd": math.nan}
    counts, sums = tally.counts[view.index], tally.sums[view.index]
    whole = view.stage == "all"
    attempts = int(counts[ATTEMPTS]) if whole and records.columns is not records.jobs else offered
    prices = scenario.cost
    priced = any(records.stage_priced) or bool(records.brokered_stages)
    cost = (float(sums[LAMBDA_INVOCATIONS]) * prices.lambda_request + float(sums[LAMBDA_GB_SECONDS])
            * prices.lambda_gb_second + float(sums[SQS_REQUESTS]) * prices.sqs_request)
    return {"attempts": attempts, "retries": attempts - offered if whole else 0,
            "throttles": int(counts[THROTTLES]), "cold_starts": int(counts[COLD_STARTS]),
            "duplicates": int(counts[DUPLICATES]), "cost_usd": cost if priced else math.nan}


def _consumers(records: RunRecords, scenario: Scenario, view: _View, warmup: float, busy_share: float,
               usage_cost: float) -> dict[str, float]:
    """Mean consumers provisioned and the cost with the priced pools' share (a producer's: by busy time)."""
    stage = None if view.stage == "all" else records.stage_names.index(view.stage)
    pools = pool_cost(records, scenario, warmup, records.end_time, stage=stage)
    if pools is not None:
        share = busy_share if view.producer != "all" else 1.0
        usage_cost = pools * share + (0.0 if math.isnan(usage_cost) else usage_cost)
    return {"mean_consumers": mean_consumers(records, warmup, records.end_time, stage=stage), "cost_usd": usage_cost}


def _row(records: RunRecords, view: _View, scenario: Scenario, span: float) -> dict[str, object]:
    tally = records.tally
    assert tally is not None
    counts, sums = tally.counts[view.index], tally.sums[view.index]
    offered = int(counts[OFFERED])
    outcome = {label: int(counts[OUTCOME_BASE + code]) for code, label in enumerate(OUTCOMES)}
    served = int(counts[SERVED])
    overdue = int(counts[OVERDUE])
    lost = offered - outcome["completed"] - outcome["in_system"] + overdue
    percentiles = latency_percentiles(scenario)
    latency = sketch_quantiles(tally.sketch[view.index, LATENCY], np.array(percentiles) / 100)
    wait = sketch_quantiles(tally.sketch[view.index, WAIT], np.array(WAIT_PERCENTILES) / 100)

    def per_second(value: float) -> float:
        return value / span if span > 0 else math.nan

    def averaged(area: int, kind: int) -> float:
        """A time average over [warm-up, end]; an empty span reads the level there (as the exact path does)."""
        return float(sums[area]) / span if span > 0 else float(tally.level[kind, view.index])

    # A producer's share of brokered stages' consumers: its messages' part of each invocation.
    batched = float(sums[BATCHED_SECONDS]) / span if view.producer != "all" and span > 0 else 0.0
    return {
        "offered": offered, **{label: outcome[label] for label in OUTCOMES if label != "in_system"},
        "in_system": outcome["in_system"], "overdue": overdue,
        "dropped_overflow": int(counts[DROPPED_OVERFLOW]), "dropped_aqm": int(counts[DROPPED_AQM]),
        **_usage(records, scenario, view, offered),
        "timeout_rate": (outcome["late"] + outcome["expired"] + overdue) / offered if offered else math.nan,
        "starvation": lost / offered if offered else math.nan,
        "throughput": per_second(served), "goodput": per_second(outcome["completed"]),
        "latency_mean": sums[LATENCY_SUM] / served if served else math.nan,
        **{f"latency_{percentile_column(p)}": float(v) for p, v in zip(percentiles, latency, strict=True)},
        "wait_mean": sums[WAIT_SUM] / served if served else math.nan,
        **{f"wait_{percentile_column(p)}": float(v) for p, v in zip(WAIT_PERCENTILES, wait, strict=True)},
        "wasted_work": float(sums[WASTED]),
        "utilization": (averaged(BUSY_AREA, BUSY) + batched) / view.concurrency,
        "mean_queue": averaged(QUEUE_AREA, QUEUE), "max_queue": int(sums[QUEUE_PEAK]),
        "mean_in_system": averaged(SYSTEM_AREA, SYSTEM),
    }  # fmt: skip


def streamed_summary(records: RunRecords, scenario: Scenario, replication: int, warmup: float) -> pd.DataFrame:
    """Summary rows of a streamed run: all requests, then each producer and each stage (with several)."""
    span = records.end_time - warmup
    rows: list[dict[str, object]] = []
    for view in _views(records, scenario):
        row: dict[str, object] = {"scenario": scenario.name, "replication": replication, "producer": view.producer,
                                  "stage": view.stage}
        row.update(_row(records, view, scenario, span))
        busy = float(row["utilization"]) * view.concurrency  # type: ignore[arg-type]
        all_busy = float(rows[0]["utilization"]) * records.concurrency if rows else busy  # type: ignore[arg-type]
        row.update(_consumers(records, scenario, view, warmup, busy / all_busy if all_busy > 0 else 0.0,
                              float(row["cost_usd"])))  # type: ignore[arg-type]
        row.update({"sim_time": records.end_time, "wall_time": records.wall_time, "engine": records.engine})
        rows.append(row)
    return pd.DataFrame(rows, columns=summary_columns(scenario))


def _bucketed(values: np.ndarray, count: int, combine: Callable[..., Any] = np.add) -> np.ndarray:
    """The first ``count`` buckets; the last takes in bucket ``count`` (what happened in the hair
    between the last whole bucket and the end, and an event exactly at the end: the last bin is closed)."""
    values = values[: count + 1].copy()
    if len(values) > count:
        values[count - 1] = combine(values[count - 1], values[count])
    return values[:count]



def streamed_timeseries(records: RunRecords) -> pd.DataFrame:
    """The time series of a streamed run: counts per bucket, and queue, busy and in-system averages."""
    tally = records.tally
    assert tally is not None
    end = records.end_time
    width = float(tally.scalars[WIDTH])
    count = bucket_count(end, width)
    edges = series_edges(count, width, end)
    widths = np.minimum(edges[1:], end) - edges[:-1]

    def counted(kind: int) -> NDArray[np.int64]:
        return _bucketed(tally.series[kind], count)

    def average(kind: int, row: int = 0) -> Floats:
        area = _bucketed(tally.areas[kind, row], count)
        averaged: Floats = np.divide(area, widths, out=np.zeros_like(area), where=widths > 0)
        return averaged

    late, expired = counted(LATE_AT), counted(EXPIRED_AT)
    columns: dict[str, object] = {
        "time": edges[:-1], "arrivals": counted(ARRIVALS), "served": counted(SERVED_AT),
        "completed": counted(COMPLETED_AT), "late": late, "expired": expired, "timeouts": late + expired,
        "rejected": counted(REJECTED_AT), "dropped": counted(DROPPED_AT), "queue_length": average(QUEUE),
        "queue_max": _bucketed(tally.peaks, count, np.maximum), "busy": average(BUSY), "in_system": average(SYSTEM),
    }  # fmt: skip
    several = tally.flags[STAGE_VIEWS] > 0
    if records.columns is not records.jobs and not several:
        columns["attempts"] = counted(ATTEMPTS_AT)  # with retries: every try, next to arrivals
    if records.jobs.usage is not None:
        columns["cold_starts"] = counted(COLD_STARTS_AT)
        columns["duplicates"] = counted(DUPLICATES_AT)
    if records.environments:
        columns["provisioned"] = provisioned(records).bucket_averages(edges, end)
    columns.update(scaling_columns(records, edges, end))  # autoscaled pools, if any
    if several:
        for index, name in enumerate(records.stage_names):
            stage = tally.stage_series[:, index]
            columns[f"{name}.arrivals"] = _bucketed(stage[STAGE_ARRIVALS_AT], count)
            columns[f"{name}.served"] = _bucketed(stage[STAGE_SERVED_AT], count)
            columns[f"{name}.lost"] = _bucketed(stage[STAGE_LOST_AT], count)
            columns[f"{name}.queue_length"] = average(QUEUE, 1 + index)
            columns[f"{name}.busy"] = average(BUSY, 1 + index)
    frame = pd.DataFrame(columns)
    frame.attrs["bucket"] = width
    return frame
