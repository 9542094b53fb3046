"""From request records to tidy tables: the per-replication summary and the time series.

Everything here is vectorised over the columns of a run, so summarising a million
requests takes a fraction of a second and no per-request Python. Time-weighted
quantities (queue length, busy consumers, requests in the system) are integrals of step
functions built from the records: each request adds 1 while it waits (or is in service)
and the change points are sorted once.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sim.engine import RunRecords
from sim.records import COMPLETED, DROPPED, EXPIRED, IN_SYSTEM, LATE, OUTCOMES, REJECTED
from sim.schema import Scenario, percentile_column

Floats = NDArray[np.float64]
Mask = NDArray[np.bool_]

MAX_BUCKETS = 20_000
"""More buckets than this and the time series gets a wider bucket (noted in the manifest)."""

REQUIRED_PERCENTILES = (50.0, 90.0, 99.0, 99.9)
WAIT_PERCENTILES = (50.0, 99.0)


class StepFunction:
    """A count that goes up by one at each ``up`` time and down by one at each ``down`` time.

    At equal times the decrements come first, so a request leaving as another arrives never
    makes the count look higher than it was.
    """

    def __init__(self, up: Floats, down: Floats) -> None:
        times = np.concatenate([up, down])
        deltas = np.concatenate([np.ones(len(up)), -np.ones(len(down))])
        order = np.lexsort((deltas, times))
        self.times = times[order]
        self.levels = np.cumsum(deltas[order])
        widths = np.diff(self.times)
        self._area = np.concatenate([[0.0], np.cumsum(self.levels[:-1] * widths)])

    def level_at(self, points: Floats) -> Floats:
        """The count just after each point (0 before the first change)."""
        index = np.searchsorted(self.times, points, side="right") - 1
        return np.where(index >= 0, self.levels[np.maximum(index, 0)] if len(self.levels) else 0.0, 0.0)

    def integral(self, points: Floats) -> Floats:
        """The area under the count from 0 to each point."""
        if len(self.times) == 0:
            return np.zeros(len(points))
        index = np.searchsorted(self.times, points, side="right") - 1
        safe = np.maximum(index, 0)
        area = self._area[safe] + self.levels[safe] * (points - self.times[safe])
        return np.where(index >= 0, area, 0.0)

    def average(self, begin: float, end: float) -> float:
        """Time average over ``[begin, end]`` (the level at ``begin`` if the span is empty)."""
        if end <= begin:
            return float(self.level_at(np.array([begin]))[0])
        area = self.integral(np.array([begin, end]))
        return float((area[1] - area[0]) / (end - begin))

    def bucket_averages(self, edges: Floats, end: float) -> Floats:
        area = np.diff(self.integral(edges))
        widths = np.minimum(edges[1:], end) - edges[:-1]
        return np.divide(area, widths, out=np.zeros_like(area), where=widths > 0)

    def bucket_maxima(self, edges: Floats) -> Floats:
        """The highest count reached in each bucket ``[edges[i], edges[i+1])``."""
        result = self.level_at(edges[:-1]).astype(float)
        if len(self.times):
            bucket = np.searchsorted(edges, self.times, side="right") - 1
            inside = (bucket >= 0) & (bucket < len(result))
            np.maximum.at(result, bucket[inside], self.levels[inside])
        return result

    def maximum(self, begin: float, end: float) -> float:
        inside = (self.times >= begin) & (self.times <= end)
        start_level = float(self.level_at(np.array([begin]))[0])
        return max(start_level, float(self.levels[inside].max(initial=0.0)))


class Intervals:
    """The waiting, service and in-system intervals of a run's requests."""

    def __init__(self, records: RunRecords) -> None:
        c = records.columns
        end = records.end_time
        self.rejected = c.outcome == REJECTED
        started = ~np.isnan(c.start)
        left = np.where(np.isnan(c.finish), end, c.finish)
        # Waiting: arrival until service starts, or until dropped/expired, or until the end.
        self.queue_leave = np.where(started, c.start, left)
        self.queued = ~self.rejected & (self.queue_leave > c.arrival)
        # Service: start until finish (or the end of the run).
        self.busy_end = np.where(started, left, np.nan)
        self.busy = started & (self.busy_end > c.start)
        self.system_leave = left
        self.in_system = ~self.rejected & (left > c.arrival)

    def queue(self, records: RunRecords, mask: Mask | None = None) -> StepFunction:
        keep = self.queued if mask is None else self.queued & mask
        return StepFunction(records.columns.arrival[keep], self.queue_leave[keep])

    def service(self, records: RunRecords, mask: Mask | None = None) -> StepFunction:
        keep = self.busy if mask is None else self.busy & mask
        return StepFunction(records.columns.start[keep], self.busy_end[keep])

    def system(self, records: RunRecords, mask: Mask | None = None) -> StepFunction:
        keep = self.in_system if mask is None else self.in_system & mask
        return StepFunction(records.columns.arrival[keep], self.system_leave[keep])


def bucket_edges(end: float, bucket: float) -> tuple[Floats, float]:
    """Edges of the time buckets covering ``[0, end]``, widening the bucket past :data:`MAX_BUCKETS`."""
    count = max(1, math.ceil(end / bucket - 1e-9))
    if count > MAX_BUCKETS:
        wanted = end / MAX_BUCKETS
        magnitude = 10 ** math.floor(math.log10(wanted))
        bucket = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= wanted)
        count = max(1, math.ceil(end / bucket - 1e-9))
    return np.arange(count + 1) * bucket, bucket


def timeseries(records: RunRecords, bucket: float) -> pd.DataFrame:
    """Per time bucket: counts of what happened in it, and time averages of queue and consumers."""
    c = records.columns
    end = records.end_time
    edges, width = bucket_edges(end, bucket)
    intervals = Intervals(records)

    def counted(times: Floats) -> NDArray[np.int64]:
        return np.histogram(times, bins=edges)[0]

    served = (c.outcome == COMPLETED) | (c.outcome == LATE)
    timed_out = (c.outcome == LATE) | (c.outcome == EXPIRED)
    queue = intervals.queue(records)
    busy = intervals.service(records)
    frame = pd.DataFrame(
        {
            "time": edges[:-1],
            "arrivals": counted(c.arrival),
            "served": counted(c.finish[served]),
            "completed": counted(c.finish[c.outcome == COMPLETED]),
            "late": counted(c.deadline[c.outcome == LATE]),
            "expired": counted(c.deadline[c.outcome == EXPIRED]),
            "timeouts": counted(c.deadline[timed_out]),
            "rejected": counted(c.arrival[c.outcome == REJECTED]),
            "dropped": counted(c.finish[c.outcome == DROPPED]),
            "queue_length": queue.bucket_averages(edges, end),
            "queue_max": queue.bucket_maxima(edges),
            "busy": busy.bucket_averages(edges, end),
            "in_system": intervals.system(records).bucket_averages(edges, end),
        }
    )
    frame.attrs["bucket"] = width
    return frame


def _percentiles(values: Floats, percentiles: tuple[float, ...]) -> list[float]:
    if len(values) == 0:
        return [math.nan] * len(percentiles)
    return [float(v) for v in np.percentile(values, percentiles)]


def summary_columns(scenario: Scenario) -> list[str]:
    """The summary's columns, in order (percentiles as the scenario's report asks)."""
    latency = [f"latency_{percentile_column(p)}" for p in _latency_percentiles(scenario)]
    return [
        "scenario", "replication", "producer",
        "offered", "completed", "late", "expired", "rejected", "dropped", "in_system",
        "timeout_rate", "throughput", "goodput",
        "latency_mean", *latency,
        "wait_mean", *[f"wait_{percentile_column(p)}" for p in WAIT_PERCENTILES],
        "wasted_work", "utilization", "mean_queue", "max_queue", "mean_in_system",
        "sim_time", "wall_time",
    ]  # fmt: skip


def _latency_percentiles(scenario: Scenario) -> tuple[float, ...]:
    return tuple(sorted(set(REQUIRED_PERCENTILES) | set(scenario.report.percentiles)))


def summarize(records: RunRecords, scenario: Scenario, replication: int) -> pd.DataFrame:
    """One row for all requests (``producer = "all"``) and, with several producers, one per producer."""
    c = records.columns
    intervals = Intervals(records)
    groups: list[tuple[str, Mask | None]] = [("all", None)]
    if len(scenario.producers) > 1:
        groups += [(p.name, c.producer == index) for index, p in enumerate(scenario.producers)]
    measured = c.arrival >= scenario.warmup
    begin, end = scenario.warmup, records.end_time
    span = end - begin
    percentiles = _latency_percentiles(scenario)
    rows = []
    for name, group in groups:
        mask = measured if group is None else measured & group
        outcome = c.outcome[mask]
        counts = {label: int(np.count_nonzero(outcome == code)) for code, label in enumerate(OUTCOMES)}
        served = (outcome == COMPLETED) | (outcome == LATE)
        latency = (c.finish[mask] - c.arrival[mask])[served]
        wait = (c.start[mask] - c.arrival[mask])[served]
        late = outcome == LATE
        wasted = float(np.sum((c.finish[mask] - c.start[mask])[late]))
        offered = int(len(outcome))
        queue = intervals.queue(records, group)
        row: dict[str, object] = {
            "scenario": scenario.name,
            "replication": replication,
            "producer": name,
            "offered": offered,
            **{label: counts[label] for label in OUTCOMES if label != "in_system"},
            "in_system": counts["in_system"],
            "timeout_rate": (counts["late"] + counts["expired"]) / offered if offered else math.nan,
            "throughput": int(served.sum()) / span if span > 0 else math.nan,
            "goodput": counts["completed"] / span if span > 0 else math.nan,
            "latency_mean": float(latency.mean()) if len(latency) else math.nan,
            **{
                f"latency_{percentile_column(p)}": v
                for p, v in zip(percentiles, _percentiles(latency, percentiles), strict=True)
            },
            "wait_mean": float(wait.mean()) if len(wait) else math.nan,
            **{
                f"wait_{percentile_column(p)}": v
                for p, v in zip(WAIT_PERCENTILES, _percentiles(wait, WAIT_PERCENTILES), strict=True)
            },
            "wasted_work": wasted,
            "utilization": intervals.service(records, group).average(begin, end) / records.concurrency,
            "mean_queue": queue.average(begin, end),
            "max_queue": int(queue.maximum(begin, end)),
            "mean_in_system": intervals.system(records, group).average(begin, end),
            "sim_time": records.end_time,
            "wall_time": records.wall_time,
        }
        rows.append(row)
    return pd.DataFrame(rows, columns=summary_columns(scenario))


__all__ = ["IN_SYSTEM", "StepFunction", "summarize", "timeseries", "summary_columns"]
