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

    Kept as the two sorted time arrays with their running sums, so the count and its
    integral at any set of points are two binary searches each: the area from 0 to ``x``
    is ``x (N_up - N_down) - (sum of ups <= x - sum of downs <= x)``. At equal times the
    decrements count first, so a request leaving as another arrives never makes the count
    look higher than it was.
    """

    def __init__(self, up: Floats, down: Floats) -> None:
        self.up = np.sort(up)
        self.down = np.sort(down)
        self._up_sums = np.concatenate([[0.0], np.cumsum(self.up)])
        self._down_sums = np.concatenate([[0.0], np.cumsum(self.down)])

    def level_at(self, points: Floats) -> Floats:
        """The count just after each point."""
        ups = np.searchsorted(self.up, points, side="right")
        downs = np.searchsorted(self.down, points, side="right")
        return (ups - downs).astype(float)

    def integral(self, points: Floats) -> Floats:
        """The area under the count from 0 to each point."""
        ups = np.searchsorted(self.up, points, side="right")
        downs = np.searchsorted(self.down, points, side="right")
        area: Floats = points * (ups - downs) - (self._up_sums[ups] - self._down_sums[downs])
        return area

    def _levels_after_ups(self) -> Floats:
        """The count just after each increment: the only places a maximum can be reached."""
        return (np.arange(1, len(self.up) + 1) - np.searchsorted(self.down, self.up, side="right")).astype(float)

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
        result = self.level_at(edges[:-1])
        first = np.searchsorted(self.up, edges[:-1], side="left")
        last = np.searchsorted(self.up, edges[1:], side="left")
        has_ups = last > first
        if has_ups.any():
            # Buckets partition time and ups are sorted, so each non-empty bucket's ups run
            # from its first index to the next non-empty bucket's first index.
            levels = self._levels_after_ups()[: last[-1]]
            peaks = np.maximum.reduceat(levels, first[has_ups])
            result[has_ups] = np.maximum(result[has_ups], peaks)
        return result

    def maximum(self, begin: float, end: float) -> float:
        start_level = float(self.level_at(np.array([begin]))[0])
        inside = (self.up >= begin) & (self.up <= end)
        if not inside.any():
            return start_level
        return max(start_level, float(self._levels_after_ups()[inside].max()))


class Intervals:
    """The waiting, service and in-system intervals of a run's requests, as step functions.

    The step functions over all requests are built once and shared by the summary and the
    time series; per-producer ones are built on demand.
    """

    def __init__(self, records: RunRecords) -> None:
        c = records.columns
        end = records.end_time
        self.records = records
        rejected = c.outcome == REJECTED
        started = ~np.isnan(c.start)
        left = np.where(np.isnan(c.finish), end, c.finish)
        # Waiting: arrival until service starts, or until dropped/expired, or until the end.
        self.queue_leave = np.where(started, c.start, left)
        self.queued = ~rejected & (self.queue_leave > c.arrival)
        # Service: start until finish (or the end of the run).
        self.busy_end = np.where(started, left, np.nan)
        self.busy = started & (self.busy_end > c.start)
        # In the system: arrival until leaving (rejected requests never enter).
        self.system_leave = left
        self.in_system = ~rejected & (left > c.arrival)
        self._cache: dict[str, StepFunction] = {}

    def _step(self, kind: str, begin: Floats, end: Floats, keep: Mask, mask: Mask | None) -> StepFunction:
        if mask is None and kind in self._cache:
            return self._cache[kind]
        if mask is not None:
            keep = keep & mask
        step = StepFunction(begin[keep], end[keep])
        if mask is None:
            self._cache[kind] = step
        return step

    def queue(self, mask: Mask | None = None) -> StepFunction:
        """Requests waiting in the queue (all, or those selected by ``mask``)."""
        return self._step("queue", self.records.columns.arrival, self.queue_leave, self.queued, mask)

    def service(self, mask: Mask | None = None) -> StepFunction:
        """Requests in service, i.e. busy consumers."""
        return self._step("service", self.records.columns.start, self.busy_end, self.busy, mask)

    def system(self, mask: Mask | None = None) -> StepFunction:
        """Requests in the system (waiting or in service)."""
        return self._step("system", self.records.columns.arrival, self.system_leave, self.in_system, mask)


def bucket_edges(end: float, bucket: float) -> tuple[Floats, float]:
    """Edges of the time buckets covering ``[0, end]``, widening the bucket past :data:`MAX_BUCKETS`."""
    count = max(1, math.ceil(end / bucket - 1e-9))
    if count > MAX_BUCKETS:
        wanted = end / MAX_BUCKETS
        magnitude = 10 ** math.floor(math.log10(wanted))
        bucket = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= wanted)
        count = max(1, math.ceil(end / bucket - 1e-9))
    edges: Floats = np.arange(count + 1, dtype=np.float64) * bucket
    return edges, float(bucket)


def timeseries(records: RunRecords, bucket: float, intervals: Intervals | None = None) -> pd.DataFrame:
    """Per time bucket: counts of what happened in it, and time averages of queue and consumers."""
    c = records.columns
    end = records.end_time
    edges, width = bucket_edges(end, bucket)
    intervals = intervals or Intervals(records)

    def counted(times: Floats) -> NDArray[np.int64]:
        return np.histogram(times, bins=edges)[0]

    served = (c.outcome == COMPLETED) | (c.outcome == LATE)
    timed_out = (c.outcome == LATE) | (c.outcome == EXPIRED)
    queue = intervals.queue()
    busy = intervals.service()
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
            "in_system": intervals.system().bucket_averages(edges, end),
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


def summarize(records: RunRecords, scenario: Scenario, replication: int,
              intervals: Intervals | None = None, warmup: float | None = None) -> pd.DataFrame:
    """One row for all requests (``producer = "all"``) and, with several producers, one per producer.

    ``warmup`` overrides the scenario's (needed when it is ``auto`` and was estimated from the run).
    """
    c = records.columns
    intervals = intervals or Intervals(records)
    groups: list[tuple[str, Mask | None]] = [("all", None)]
    if len(scenario.producers) > 1:
        groups += [(p.name, c.producer == index) for index, p in enumerate(scenario.producers)]
    if warmup is None:
        warmup = 0.0 if scenario.warmup == "auto" else scenario.warmup
    measured = c.arrival >= warmup
    begin, end = warmup, records.end_time
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
        offered = len(outcome)
        queue = intervals.queue(group)
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
            "utilization": intervals.service(group).average(begin, end) / records.concurrency,
            "mean_queue": queue.average(begin, end),
            "max_queue": int(queue.maximum(begin, end)),
            "mean_in_system": intervals.system(group).average(begin, end),
            "sim_time": records.end_time,
            "wall_time": records.wall_time,
        }
        rows.append(row)
    return pd.DataFrame(rows, columns=summary_columns(scenario))


__all__ = ["IN_SYSTEM", "StepFunction", "summarize", "summary_columns", "timeseries"]
