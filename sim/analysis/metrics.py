"""From request records to tidy tables: the per-replication summary and the time series.

Everything here is vectorised over the columns of a run, so summarising a million
requests takes a fraction of a second and no per-request Python. Time-weighted
quantities (queue length, busy consumers, requests in the system) are integrals of step
functions built from the records: each request adds 1 while it waits (or is in service)
and the change points are sorted once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sim.analysis.brokered import broker_columns, broker_cost, consumer_lag, out_of_order
from sim.analysis.intervals import Intervals, StepFunction, bucket_edges
from sim.analysis.pools import mean_consumers, pool_cost, scaling_columns
from sim.engine.records import AQM, COMPLETED, DROPPED, EXPIRED, IN_SYSTEM, LATE, OUTCOMES, OVERFLOW, REJECTED, Columns
from sim.engine.simulation import RunRecords
from sim.engine.tally import MAX_BUCKETS
from sim.model.schema import Scenario, percentile_column

Floats = NDArray[np.float64]
Mask = NDArray[np.bool_]


REQUIRED_PERCENTILES = (50.0, 90.0, 99.0, 99.9)
WAIT_PERCENTILES = (50.0, 99.0)


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
        columns["provisioned"] = provisioned(records).bucket_averages(edges, end)
    columns.update(scaling_columns(records, edges, end))
    if any(records.lag_events):
        columns["lag"] = consumer_lag(records).bucket_averages(edges, end)
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


def provisioned(records: RunRecords) -> StepFunction:
    """Execution environments alive over time, all stages (warm or busy)."""
    spans = np.concatenate(records.environments)  # rows (created, reclaimed); NaN: alive at the end
    created, reclaimed = spans[:, 0], spans[:, 1]
    return StepFunction(created, np.where(np.isnan(reclaimed), records.end_time, reclaimed))


def _percentiles(values: Floats, percentiles: tuple[float, ...]) -> list[float]:
    if len(values) == 0:
        return [math.nan] * len(percentiles)
    return [float(v) for v in np.percentile(values, percentiles)]


KEY_COLUMNS = ("scenario", "replication", "producer", "stage")
"""Columns that say what a summary row is about; every other column is a number (but ``engine``)."""
LABEL_COLUMNS = ("engine",)
"""Text columns that describe the run, not a group of its rows: which engine computed it."""


BROKER_ORDER = ("out_of_order",)
BROKER_BACKLOG = ("max_in_system",)
"""Columns of scenarios with keys, broker models or faults (:mod:`sim.analysis.brokered`)."""


def summary_columns(scenario: Scenario) -> list[str]:
    """The summary's columns, in order (percentiles as the scenario's report asks)."""
    latency = [f"latency_{percentile_column(p)}" for p in latency_percentiles(scenario)]
    broker = 1 if broker_columns(scenario) else 0
    return [
        *KEY_COLUMNS,
        "offered", "completed", "late", "expired", "rejected", "dropped", "failed", "dead_lettered", "lost",
        "in_system", "overdue", "dropped_overflow", "dropped_aqm",
        "attempts", "retries", "throttles", "cold_starts", "duplicates", *BROKER_ORDER[:broker],
        "timeout_rate", "starvation", "throughput", "goodput",
        "latency_mean", *latency,
        "wait_mean", *[f"wait_{percentile_column(p)}" for p in WAIT_PERCENTILES],
        "wasted_work", "utilization", "mean_queue", "max_queue", "mean_in_system", *BROKER_BACKLOG[:broker],
        "mean_consumers", "cost_usd",
        "sim_time", "wall_time", *LABEL_COLUMNS,
    ]  # fmt: skip


def latency_percentiles(scenario: Scenario) -> tuple[float, ...]:
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
    queue: Callable[[], StepFunction]
    busy: Callable[[], StepFunction]
    system: Callable[[], StepFunction]
    """Made when needed and dropped after use: each is the size of the run."""
    concurrency: int
    jobs: Mask
    """The measured jobs of this group (for usage and cost)."""


def _views(records: RunRecords, scenario: Scenario, intervals: Intervals, warmup: float) -> list[_View]:
    """End-to-end rows for all requests and each producer; with several stages, one row per stage."""
    requests, jobs = records.columns, records.jobs
    # A job counts when its request arrived after the warm-up, so every stage sees the same requests.
    measured = requests.arrival >= warmup
    measured_jobs = measured[jobs.request]
    views = [_View("all", "all", requests, measured, intervals.queue, intervals.service, intervals.system,
                   records.concurrency, measured_jobs)]
    if len(scenario.producers) > 1:
        for index, producer in enumerate(scenario.producers):
            mine, my_jobs = requests.producer == index, jobs.producer == index
            views.append(_View(producer.name, "all", requests, measured & mine, partial(intervals.queue, my_jobs),
                               partial(intervals.service, my_jobs), partial(intervals.system, mine),
                               records.concurrency, measured_jobs & my_jobs))
    if len(records.stage_names) > 1:
        for index, name in enumerate(records.stage_names):
            here = jobs.stage == index
            views.append(_View("all", name, jobs, measured_jobs & here, partial(intervals.queue, here),
                               partial(intervals.service, stage=index), partial(intervals.stage_system, here),
                               records.stage_concurrency[index], measured_jobs & here))
    return views


def _queue_stats(queue: StepFunction, begin: float, end: float) -> dict[str, float]:
    return {"mean_queue": queue.average(begin, end), "max_queue": int(queue.maximum(begin, end))}


def _batched_busy(records: RunRecords, view: _View, span: float) -> float:
    """A producer's share of brokered stages' busy consumers: its messages' billed seconds over the span.

    Batches mix producers, so a producer's busy time there is its messages' share of each
    invocation (including cold starts, failed and duplicate deliveries).
    """
    usage = records.jobs.usage
    brokered = records.brokered_stages
    if view.producer == "all" or not brokered or usage is None or span <= 0:
        return 0.0
    seconds = 0.0
    for index in brokered:
        mine = view.jobs & (records.jobs.stage == index)
        seconds += float(np.sum(usage.gb_seconds[mine])) / records.stage_memory_gb[index]
    return seconds / span


def _broker_measures(records: RunRecords, view: _View, begin: float, end: float) -> dict[str, float]:
    """Out-of-order deliveries per key and the peak backlog (:mod:`sim.analysis.brokered`)."""
    return {"out_of_order": out_of_order(records.jobs, view.jobs),
            "max_in_system": view.system().maximum(begin, end)}


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
    brokers = broker_cost(records, scenario, mask)
    priced = bool(len(lambda_stages)) or brokers is not None
    cost = (float(np.sum(usage.invocations[lambda_jobs])) * prices.lambda_request
            + float(np.sum(usage.gb_seconds[lambda_jobs])) * prices.lambda_gb_second + (brokers or 0.0))
    return {
        "attempts": attempts,
        "retries": attempts - offered if view.stage == "all" else 0,
        "throttles": int(np.sum(usage.throttles[mask])),
        "cold_starts": int(np.sum(usage.cold_starts[mask])),
        "duplicates": int(np.sum(usage.duplicates[mask])),
        "cost_usd": cost if priced else math.nan,
    }


def _consumers(records: RunRecords, scenario: Scenario, view: _View, window: tuple[float, float], busy_share: float,
               usage_cost: float) -> dict[str, float]:
    """Mean consumers provisioned and the cost with the priced pools' share (a producer's: by busy time)."""
    stage = None if view.stage == "all" else records.stage_names.index(view.stage)
    pools = pool_cost(records, scenario, *window, stage=stage)
    if pools is not None:
        share = busy_share if view.producer != "all" else 1.0
        usage_cost = pools * share + (0.0 if math.isnan(usage_cost) else usage_cost)
    return {"mean_consumers": mean_consumers(records, *window, stage=stage), "cost_usd": usage_cost}


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
    percentiles = latency_percentiles(scenario)
    jobs = records.jobs
    late = jobs.outcome == LATE
    rows = []
    all_busy = 0.0
    for view in _views(records, scenario, intervals, warmup):
        busy = view.busy().average(begin, end) + _batched_busy(records, view, span)
        all_busy = busy if view.producer == view.stage == "all" else all_busy  # the first view
        usage = _usage(records, scenario, view)
        c, mask = view.rows, view.keep
        outcome = c.outcome[mask]
        reason = c.reason[mask]
        counts = {label: int(np.count_nonzero(outcome == code)) for code, label in enumerate(OUTCOMES)}
        served = (outcome == COMPLETED) | (outcome == LATE)
        latency = (c.finish[mask] - c.arrival[mask])[served]
        wait = (c.start[mask] - c.arrival[mask])[served]
        offered = len(outcome)
        # Still in the system at the end but past the deadline: the client has already given up.
        overdue = int(np.count_nonzero((outcome == IN_SYSTEM) & (c.deadline[mask] < end)))
        lost = offered - counts["completed"] - counts["in_system"] + overdue
        row: dict[str, object] = {
            "scenario": scenario.name,
            "replication": replication,
            "producer": view.producer,
            "stage": view.stage,
            "offered": offered,
            **{label: counts[label] for label in OUTCOMES if label != "in_system"},
            "in_system": counts["in_system"],
            "overdue": overdue,
            "dropped_overflow": int(np.count_nonzero((outcome == DROPPED) & (reason == OVERFLOW))),
            "dropped_aqm": int(np.count_nonzero((outcome == DROPPED) & (reason == AQM))),
            **usage,
            "timeout_rate": (counts["late"] + counts["expired"] + overdue) / offered if offered else math.nan,
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
            "wasted_work": float(np.sum((jobs.finish - jobs.start)[view.jobs & late])),
            "utilization": busy / view.concurrency,
            **_queue_stats(view.queue(), begin, end),
            "mean_in_system": view.system().average(begin, end),
            **(_broker_measures(records, view, begin, end) if broker_columns(scenario) else {}),
            **_consumers(records, scenario, view, (begin, end), busy / all_busy if all_busy > 0 else 0.0,
                         usage["cost_usd"]),
            "sim_time": records.end_time,
            "wall_time": records.wall_time,
            "engine": records.engine,
        }
        rows.append(row)
    return pd.DataFrame(rows, columns=summary_columns(scenario))


__all__ = [
    "IN_SYSTEM", "KEY_COLUMNS", "LABEL_COLUMNS", "MAX_BUCKETS", "Intervals", "StepFunction", "bucket_edges",
    "summarize", "summary_columns", "timeseries",
]  # fmt: skip
