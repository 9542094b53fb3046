"""From request records to tidy tables: the per-replication summary and the time series.

Everything here is vectorised over the columns of a run, so summarising a million
requests takes a fraction of a second and no per-request Python. Time-weighted
quantities (queue length, busy consumers, requests in the system) are integrals of step
functions built from the records: each request adds 1 while it waits (or is in service)
and the change points are sorted once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sim.engine import RunRecords
from sim.records import AQM, COMPLETED, DROPPED, EXPIRED, IN_SYSTEM, LATE, OUTCOMES, OVERFLOW, REJECTED, Columns
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
    """Waiting, service and in-system intervals of a run, as step functions.

    Waiting and service are counted per job (a request's visit to a stage); being in the
    system is counted per request end to end, or per job for a stage's own view. The step
    functions over everything are built once and shared by the summary and the time series;
    those for a producer or a stage are built on demand.
    """

    def __init__(self, records: RunRecords) -> None:
        self.records = records
        end = records.end_time
        jobs = records.jobs
        started = ~np.isnan(jobs.start)
        job_left = np.where(np.isnan(jobs.finish), end, jobs.finish)
        job_rejected = jobs.outcome == REJECTED
        # Waiting: arrival until service starts, or until dropped/expired, or until the end.
        self.queue_leave = np.where(started, jobs.start, job_left)
        self.queued = ~job_rejected & (self.queue_leave > jobs.arrival)
        # Service: start until finish (or the end of the run).
        self.busy_end = np.where(started, job_left, np.nan)
        self.busy = started & (self.busy_end > jobs.start)
        self.job_left = job_left
        self.job_in_system = ~job_rejected & (job_left > jobs.arrival)
        # In the system, end to end: arrival until the request's last job left.
        requests = records.columns
        self.system_leave = np.where(np.isnan(requests.finish), end, requests.finish)
        self.in_system = (requests.outcome != REJECTED) & (self.system_leave > requests.arrival)
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

    def queue(self, jobs: Mask | None = None) -> StepFunction:
        """Jobs waiting in a queue (all, or those selected by a mask over jobs)."""
        return self._step("queue", self.records.jobs.arrival, self.queue_leave, self.queued, jobs)

    def service(self, jobs: Mask | None = None, stage: int | None = None) -> StepFunction:
        """Busy consumers: jobs in service, or, in brokered stages, invocations (a batch is one).

        ``stage`` picks one stage's consumers; ``jobs`` (a producer's) counts only job-based
        stages, as a batch mixes producers.
        """
        records = self.records
        brokered = [index for index, calls in enumerate(records.invocations) if calls is not None]
        if not brokered:
            return self._step("service", records.jobs.start, self.busy_end, self.busy, jobs)
        key = f"service-{stage}"
        if jobs is None and key in self._cache:
            return self._cache[key]
        keep = self.busy & ~np.isin(records.jobs.stage, brokered)
        if stage is not None:
            keep &= records.jobs.stage == stage
        if jobs is not None:
            keep &= jobs
        starts, ends = [records.jobs.start[keep]], [self.busy_end[keep]]
        if jobs is None:
            for index in brokered if stage is None else [stage] if stage in brokered else []:
                calls = records.invocations[index]
                assert calls is not None
                begin = np.asarray(calls[0], dtype=float)
                starts.append(begin)
                ends.append(np.minimum(np.asarray(calls[1], dtype=float), records.end_time))
        step = StepFunction(np.concatenate(starts), np.concatenate(ends))
        if jobs is None:
            self._cache[key] = step
        return step

    def system(self, requests: Mask | None = None) -> StepFunction:
        """Requests in the system end to end (waiting or in service anywhere)."""
        return self._step("system", self.records.columns.arrival, self.system_leave, self.in_system, requests)

    def stage_system(self, jobs: Mask) -> StepFunction:
        """Jobs of one stage in that stage (waiting or in service there)."""
        return self._step("stage", self.records.jobs.arrival, self.job_left, self.job_in_system, jobs)


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
    """Per time bucket: counts of what happened in it, and time averages of queues and consumers.

    Counts are of requests (end to end); queue length and busy consumers add up every
    stage. With several stages, ``<stage>.arrivals``, ``.served``, ``.lost``,
    ``.queue_length`` and ``.busy`` columns follow for each.
    """
    c = records.columns
    end = records.end_time
    edges, width = bucket_edges(end, bucket)
    intervals = intervals or Intervals(records)

    def counted(times: Floats) -> NDArray[np.int64]:
        return np.histogram(times, bins=edges)[0]

    served = (c.outcome == COMPLETED) | (c.outcome == LATE)
    timed_out = (c.outcome == LATE) | (c.outcome == EXPIRED)
    queue = intervals.queue()
    columns: dict[str, object] = {
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
        "busy": intervals.service().bucket_averages(edges, end),
        "in_system": intervals.system().bucket_averages(edges, end),
    }
    jobs = records.jobs
    if records.columns is not jobs and len(records.stage_names) == 1:
        columns["attempts"] = counted(jobs.arrival)  # with retries: every try, next to arrivals
    if jobs.usage is not None:
        columns["cold_starts"] = counted(jobs.start[jobs.usage.cold_starts > 0])
        columns["duplicates"] = counted(jobs.finish[jobs.usage.duplicates > 0])
    if records.environments:
        columns["provisioned"] = _provisioned(records).bucket_averages(edges, end)
    if len(records.stage_names) > 1:
        lost = (jobs.outcome == REJECTED) | (jobs.outcome == DROPPED) | (jobs.outcome == EXPIRED)
        job_served = (jobs.outcome == COMPLETED) | (jobs.outcome == LATE)
        for index, name in enumerate(records.stage_names):
            here = jobs.stage == index
            columns[f"{name}.arrivals"] = counted(jobs.arrival[here])
            columns[f"{name}.served"] = counted(jobs.finish[here & job_served])
            columns[f"{name}.lost"] = counted(jobs.finish[here & lost])
            columns[f"{name}.queue_length"] = intervals.queue(here).bucket_averages(edges, end)
            columns[f"{name}.busy"] = intervals.service(stage=index).bucket_averages(edges, end)
    frame = pd.DataFrame(columns)
    frame.attrs["bucket"] = width
    return frame


def _provisioned(records: RunRecords) -> StepFunction:
    """Execution environments alive over time, all stages (warm or busy)."""
    created = np.concatenate([np.asarray(c, dtype=float) for c, _ in records.environments])
    reclaimed = np.concatenate([np.asarray(r, dtype=float) for _, r in records.environments])
    return StepFunction(created, np.where(np.isnan(reclaimed), records.end_time, reclaimed))


def _percentiles(values: Floats, percentiles: tuple[float, ...]) -> list[float]:
    if len(values) == 0:
        return [math.nan] * len(percentiles)
    return [float(v) for v in np.percentile(values, percentiles)]


KEY_COLUMNS = ("scenario", "replication", "producer", "stage")
"""Columns that say what a summary row is about; every other column is a number."""


def summary_columns(scenario: Scenario) -> list[str]:
    """The summary's columns, in order (percentiles as the scenario's report asks)."""
    latency = [f"latency_{percentile_column(p)}" for p in _latency_percentiles(scenario)]
    return [
        *KEY_COLUMNS,
        "offered", "completed", "late", "expired", "rejected", "dropped", "failed", "dead_lettered", "in_system",
        "dropped_overflow", "dropped_aqm",
        "attempts", "retries", "throttles", "cold_starts", "duplicates",
        "timeout_rate", "starvation", "throughput", "goodput",
        "latency_mean", *latency,
        "wait_mean", *[f"wait_{percentile_column(p)}" for p in WAIT_PERCENTILES],
        "wasted_work", "utilization", "mean_queue", "max_queue", "mean_in_system", "cost_usd",
        "sim_time", "wall_time",
    ]  # fmt: skip


def _latency_percentiles(scenario: Scenario) -> tuple[float, ...]:
    return tuple(sorted(set(REQUIRED_PERCENTILES) | set(scenario.report.percentiles)))


@dataclass(frozen=True)
class _View:
    """What one summary row is computed from."""

    producer: str
    stage: str
    rows: Columns
    """Requests (end to end) or one stage's jobs."""
    keep: Mask
    """The measured rows of this group."""
    queue: StepFunction
    busy: StepFunction
    system: StepFunction
    late_jobs: Mask
    concurrency: int
    jobs: Mask
    """The measured jobs of this group (for usage and cost)."""


def _views(records: RunRecords, scenario: Scenario, intervals: Intervals, warmup: float) -> list[_View]:
    """End-to-end rows for all requests and each producer; with several stages, one row per stage."""
    requests, jobs = records.columns, records.jobs
    # A job counts when its request arrived after the warm-up, so every stage sees the same requests.
    measured = requests.arrival >= warmup
    measured_jobs = measured[jobs.request]
    late_jobs = jobs.outcome == LATE
    views = [_View("all", "all", requests, measured, intervals.queue(), intervals.service(), intervals.system(),
                   measured_jobs & late_jobs, records.concurrency, measured_jobs)]
    if len(scenario.producers) > 1:
        for index, producer in enumerate(scenario.producers):
            mine, my_jobs = requests.producer == index, jobs.producer == index
            views.append(_View(producer.name, "all", requests, measured & mine, intervals.queue(my_jobs),
                               intervals.service(my_jobs), intervals.system(mine),
                               measured_jobs & late_jobs & my_jobs, records.concurrency, measured_jobs & my_jobs))
    if len(records.stage_names) > 1:
        for index, name in enumerate(records.stage_names):
            here = jobs.stage == index
            views.append(_View("all", name, jobs, measured_jobs & here, intervals.queue(here),
                               intervals.service(stage=index), intervals.stage_system(here),
                               measured_jobs & late_jobs & here, records.stage_concurrency[index],
                               measured_jobs & here))
    return views


def _batched_busy(records: RunRecords, view: _View, span: float) -> float:
    """A producer's share of brokered stages' busy consumers: its messages' billed seconds over the span.

    Batches mix producers, so a producer's busy time there is its messages' share of each
    invocation (including cold starts, failed and duplicate deliveries).
    """
    usage = records.jobs.usage
    brokered = [index for index, calls in enumerate(records.invocations) if calls is not None]
    if view.producer == "all" or not brokered or usage is None or span <= 0:
        return 0.0
    seconds = 0.0
    for index in brokered:
        mine = view.jobs & (records.jobs.stage == index)
        seconds += float(np.sum(usage.gb_seconds[mine])) / records.stage_memory_gb[index]
    return seconds / span


def _usage(records: RunRecords, scenario: Scenario, view: _View) -> dict[str, float]:
    """Attempts, throttles, cold starts, duplicates and cost of a view's jobs."""
    jobs = records.jobs
    usage = jobs.usage
    offered = int(np.count_nonzero(view.keep))
    if usage is None:
        return {"attempts": offered, "retries": 0, "throttles": 0, "cold_starts": 0, "duplicates": 0,
                "cost_usd": math.nan}
    mask = view.jobs
    if view.stage != "all" or records.columns is records.jobs:
        attempts = offered  # a stage's jobs, or requests that are their one job
    else:
        per_request = view.rows.usage
        assert per_request is not None  # request usage is summed from job usage
        attempts = int(np.sum(per_request.attempt[view.keep]))
    prices = scenario.cost
    lambda_stages = np.flatnonzero(np.array(records.stage_priced, dtype=bool))
    lambda_jobs = mask & np.isin(jobs.stage, lambda_stages)
    priced = bool(len(lambda_stages)) or any(records.stage_brokered)
    cost = (float(np.sum(usage.invocations[lambda_jobs])) * prices.lambda_request
            + float(np.sum(usage.gb_seconds[lambda_jobs])) * prices.lambda_gb_second
            + float(np.sum(usage.sqs_requests[mask])) * prices.sqs_request)
    return {
        "attempts": attempts,
        "retries": attempts - offered if view.stage == "all" else 0,
        "throttles": int(np.sum(usage.throttles[mask])),
        "cold_starts": int(np.sum(usage.cold_starts[mask])),
        "duplicates": int(np.sum(usage.duplicates[mask])),
        "cost_usd": cost if priced else math.nan,
    }


def summarize(records: RunRecords, scenario: Scenario, replication: int,
              intervals: Intervals | None = None, warmup: float | None = None) -> pd.DataFrame:
    """Summary rows: all requests end to end (``producer = stage = "all"``), then each producer
    (with several), then each stage (with several: that stage's jobs, waits and consumers).

    ``warmup`` overrides the scenario's (needed when it is ``auto`` and was estimated from the run).
    """
    intervals = intervals or Intervals(records)
    if warmup is None:
        warmup = 0.0 if scenario.warmup == "auto" else scenario.warmup
    begin, end = warmup, records.end_time
    span = end - begin
    percentiles = _latency_percentiles(scenario)
    jobs = records.jobs
    rows = []
    for view in _views(records, scenario, intervals, warmup):
        c, mask = view.rows, view.keep
        outcome = c.outcome[mask]
        reason = c.reason[mask]
        counts = {label: int(np.count_nonzero(outcome == code)) for code, label in enumerate(OUTCOMES)}
        served = (outcome == COMPLETED) | (outcome == LATE)
        latency = (c.finish[mask] - c.arrival[mask])[served]
        wait = (c.start[mask] - c.arrival[mask])[served]
        offered = len(outcome)
        lost = offered - counts["completed"] - counts["in_system"]
        row: dict[str, object] = {
            "scenario": scenario.name,
            "replication": replication,
            "producer": view.producer,
            "stage": view.stage,
            "offered": offered,
            **{label: counts[label] for label in OUTCOMES if label != "in_system"},
            "in_system": counts["in_system"],
            "dropped_overflow": int(np.count_nonzero((outcome == DROPPED) & (reason == OVERFLOW))),
            "dropped_aqm": int(np.count_nonzero((outcome == DROPPED) & (reason == AQM))),
            **_usage(records, scenario, view),
            "timeout_rate": (counts["late"] + counts["expired"]) / offered if offered else math.nan,
            "starvation": lost / offered if offered else math.nan,
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
            "wasted_work": float(np.sum(jobs.finish[view.late_jobs] - jobs.start[view.late_jobs])),
            "utilization": (view.busy.average(begin, end) + _batched_busy(records, view, span)) / view.concurrency,
            "mean_queue": view.queue.average(begin, end),
            "max_queue": int(view.queue.maximum(begin, end)),
            "mean_in_system": view.system.average(begin, end),
            "sim_time": records.end_time,
            "wall_time": records.wall_time,
        }
        rows.append(row)
    return pd.DataFrame(rows, columns=summary_columns(scenario))


__all__ = ["IN_SYSTEM", "KEY_COLUMNS", "StepFunction", "summarize", "summary_columns", "timeseries"]
