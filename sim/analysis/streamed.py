"""The summary and time series of a streamed run, from its :class:`~sim.engine.tally.Tally`.

The same columns, with the same meaning, as :mod:`sim.analysis.metrics` computes from full
records; counts and time averages agree with it (up to the rounding of sums), and percentiles
come from the tally's sketch, within a relative :data:`~sim.engine.tally.ACCURACY` (0.5 %) of a
value of the right rank.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sim.analysis.metrics import WAIT_PERCENTILES, latency_percentiles, summary_columns
from sim.analysis.pools import mean_consumers, pool_cost, scaling_columns
from sim.engine.records import OUTCOMES, RunRecords
from sim.engine.tally import (
    ARRIVALS,
    BUSY,
    BUSY_AREA,
    COMPLETED_AT,
    DROPPED_AQM,
    DROPPED_AT,
    DROPPED_OVERFLOW,
    EXPIRED_AT,
    GAMMA,
    LATE_AT,
    LATENCY,
    LATENCY_SUM,
    MIN_INDEX,
    OFFERED,
    OUTCOME_BASE,
    OVERDUE,
    QUEUE,
    QUEUE_AREA,
    QUEUE_PEAK,
    REJECTED_AT,
    SERVED,
    SERVED_AT,
    SYSTEM,
    SYSTEM_AREA,
    WAIT,
    WAIT_SUM,
    WASTED,
    WIDTH,
    Tally,
    bucket_count,
)
from sim.model.schema import Scenario, percentile_column

Floats = NDArray[np.float64]


def sketch_quantiles(bins: NDArray[np.int64], levels: Floats) -> Floats:
    """Quantiles (levels in [0, 1]) of the values in a sketch, interpolated like ``numpy.percentile``."""
    total = int(bins.sum())
    if total == 0:
        return np.full(len(levels), np.nan)
    indexes = np.arange(len(bins)) - 1 + MIN_INDEX
    values = np.where(np.arange(len(bins)) == 0, 0.0, 2 * GAMMA ** indexes.astype(float) / (GAMMA + 1))
    cumulative = np.cumsum(bins)
    rank = levels * (total - 1)
    low, high = np.floor(rank).astype(np.int64), np.ceil(rank).astype(np.int64)
    below = values[np.searchsorted(cumulative, low, side="right")]
    above = values[np.searchsorted(cumulative, high, side="right")]
    found: Floats = below + (rank - low) * (above - below)
    return found


def _row(tally: Tally, view: int, scenario: Scenario, span: float, concurrency: int) -> dict[str, object]:
    counts, sums = tally.counts[view], tally.sums[view]
    offered = int(counts[OFFERED])
    outcome = {label: int(counts[OUTCOME_BASE + code]) for code, label in enumerate(OUTCOMES)}
    served = int(counts[SERVED])
    overdue = int(counts[OVERDUE])
    lost = offered - outcome["completed"] - outcome["in_system"] + overdue
    percentiles = latency_percentiles(scenario)
    latency = sketch_quantiles(tally.sketch[view, LATENCY], np.array(percentiles) / 100)
    wait = sketch_quantiles(tally.sketch[view, WAIT], np.array(WAIT_PERCENTILES) / 100)

    def per_second(value: float) -> float:
        return value / span if span > 0 else math.nan

    def averaged(area: int, kind: int) -> float:
        """A time average over [warm-up, end]; an empty span reads the level there (as the exact path does)."""
        return float(sums[area]) / span if span > 0 else float(tally.level[kind, view])

    return {
        "offered": offered, **{label: outcome[label] for label in OUTCOMES if label != "in_system"},
        "in_system": outcome["in_system"], "overdue": overdue,
        "dropped_overflow": int(counts[DROPPED_OVERFLOW]), "dropped_aqm": int(counts[DROPPED_AQM]),
        "attempts": offered, "retries": 0, "throttles": 0, "cold_starts": 0, "duplicates": 0, "cost_usd": math.nan,
        "timeout_rate": (outcome["late"] + outcome["expired"] + overdue) / offered if offered else math.nan,
        "starvation": lost / offered if offered else math.nan,
        "throughput": per_second(served), "goodput": per_second(outcome["completed"]),
        "latency_mean": sums[LATENCY_SUM] / served if served else math.nan,
        **{f"latency_{percentile_column(p)}": float(v) for p, v in zip(percentiles, latency, strict=True)},
        "wait_mean": sums[WAIT_SUM] / served if served else math.nan,
        **{f"wait_{percentile_column(p)}": float(v) for p, v in zip(WAIT_PERCENTILES, wait, strict=True)},
        "wasted_work": float(sums[WASTED]),
        "utilization": averaged(BUSY_AREA, BUSY) / concurrency,
        "mean_queue": averaged(QUEUE_AREA, QUEUE), "max_queue": int(sums[QUEUE_PEAK]),
        "mean_in_system": averaged(SYSTEM_AREA, SYSTEM),
    }  # fmt: skip


def _pools(records: RunRecords, scenario: Scenario, warmup: float, row: dict[str, object],
           first: dict[str, object]) -> dict[str, object]:
    """Mean consumers provisioned, and a priced pool's cost (a producer's share by its busy time)."""
    end = records.end_time
    pooled: dict[str, object] = {"mean_consumers": mean_consumers(records, warmup, end)}
    cost = pool_cost(records, scenario, warmup, end)
    if cost is not None:
        busy, all_busy = float(row["utilization"]), float(first["utilization"])  # type: ignore[arg-type]
        pooled["cost_usd"] = cost * (busy / all_busy if all_busy > 0 else 0.0)
    return pooled


def streamed_summary(records: RunRecords, scenario: Scenario, replication: int, warmup: float) -> pd.DataFrame:
    """Summary rows (all requests, then each producer with several) of a streamed single-stage run."""
    tally = records.tally
    assert tally is not None
    span = records.end_time - warmup
    names = ["all"] + ([p.name for p in scenario.producers] if tally.counts.shape[0] > 1 else [])
    rows: list[dict[str, object]] = []
    for view, name in enumerate(names):
        row: dict[str, object] = {"scenario": scenario.name, "replication": replication, "producer": name,
                                  "stage": "all"}
        row.update(_row(tally, view, scenario, span, records.concurrency))
        row.update(_pools(records, scenario, warmup, row, rows[0] if rows else row))
        row.update({"sim_time": records.end_time, "wall_time": records.wall_time, "engine": records.engine})
        rows.append(row)
    return pd.DataFrame(rows, columns=summary_columns(scenario))


def streamed_timeseries(records: RunRecords) -> pd.DataFrame:
    """The time series of a streamed run: counts per bucket, and queue, busy and in-system averages."""
    tally = records.tally
    assert tally is not None
    end = records.end_time
    width = float(tally.scalars[WIDTH])
    count = bucket_count(end, width)
    edges = np.arange(count + 1, dtype=np.float64) * width
    widths = np.minimum(edges[1:], end) - edges[:-1]

    def counted(kind: int) -> NDArray[np.int64]:
        values = tally.series[kind, : count + 1].copy()
        if len(values) > count:  # the last bin is closed: an event exactly at the last edge belongs to it
            values[count - 1] += values[count]
        return values[:count]

    def average(kind: int) -> Floats:
        area = tally.areas[kind, :count]
        averaged: Floats = np.divide(area, widths, out=np.zeros_like(area), where=widths > 0)
        return averaged

    late, expired = counted(LATE_AT), counted(EXPIRED_AT)
    frame = pd.DataFrame({
        "time": edges[:-1], "arrivals": counted(ARRIVALS), "served": counted(SERVED_AT),
        "completed": counted(COMPLETED_AT), "late": late, "expired": expired, "timeouts": late + expired,
        "rejected": counted(REJECTED_AT), "dropped": counted(DROPPED_AT), "queue_length": average(QUEUE),
        "queue_max": tally.peaks[:count].copy(), "busy": average(BUSY), "in_system": average(SYSTEM),
    })  # fmt: skip
    if records.environments:
        frame["provisioned"] = float(records.concurrency)
    for column, values in scaling_columns(records, edges, end).items():  # autoscaled pools, if any
        frame[column] = values
    frame.attrs["bucket"] = width
    return frame
