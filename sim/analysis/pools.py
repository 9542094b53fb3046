"""Consumers over time, from the pools' records: provisioned consumer-seconds, their price, and autoscaling.

Every pool records when each consumer (execution environment) was created and when it left
(:data:`~sim.engine.records.Lifespans`): a fixed pool's consumers live the whole run, a
Lambda-like pool's environments come and go, an autoscaled pool's consumers count from the
start of provisioning to leaving. Their time average is ``mean_consumers``; priced per
consumer-hour (``consumers.hourly_price``) they are the pool's cost. An autoscaled pool also
records its desired count at each change and when each consumer was ready
(:class:`~sim.engine.records.ScalingTrace`): the ``desired`` and ``ready`` time series.
Both the exact and the streamed summaries use these functions.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sim.analysis.intervals import StepFunction
from sim.engine.records import Lifespans, RunRecords
from sim.model.schema import Scenario

Floats = NDArray[np.float64]

SECONDS_PER_HOUR = 3600.0


def _alive_seconds(spans: Lifespans, begin: float, end: float) -> float:
    """Consumer-seconds of ``spans`` (rows ``(from, to)``, ``to`` NaN: still there) within ``[begin, end]``."""
    if len(spans) == 0 or end <= begin:
        return 0.0
    start = np.maximum(spans[:, 0], begin)
    stop = np.minimum(np.where(np.isnan(spans[:, 1]), end, spans[:, 1]), end)
    return float(np.sum(np.maximum(stop - start, 0.0)))


def mean_consumers(records: RunRecords, begin: float, end: float, stage: int | None = None) -> float:
    """Time-average consumers provisioned over ``[begin, end]``, in all stages or one.

    An empty span reads the count at ``begin`` (as the other time averages do).
    """
    pools = records.environments if stage is None else records.environments[stage:stage + 1]
    if end <= begin:
        return float(sum(np.count_nonzero((spans[:, 0] <= begin) & ~(spans[:, 1] <= begin)) for spans in pools))
    return sum(_alive_seconds(spans, begin, end) for spans in pools) / (end - begin)


def pool_cost(records: RunRecords, scenario: Scenario, begin: float, end: float,
              stage: int | None = None) -> float | None:
    """USD of the priced worker pools' consumer-seconds within ``[begin, end]`` (None: no pool is priced)."""
    indexes = range(len(records.environments)) if stage is None else [stage]
    prices = {index: scenario.stage_list[index].consumers.hourly_price for index in indexes}
    priced = {index: price for index, price in prices.items() if price is not None}
    if not priced:
        return None
    return float(sum(_alive_seconds(records.environments[index], begin, end) * price / SECONDS_PER_HOUR
                     for index, price in priced.items()))


def _levels_averaged(times: Floats, levels: Floats, edges: Floats, end: float) -> Floats:
    """Bucket averages of a step function that is ``levels[i]`` from ``times[i]`` on (``times[0]`` = 0)."""
    areas = np.concatenate([[0.0], np.cumsum(levels[:-1] * np.diff(times))])
    clipped = np.minimum(edges, end)
    index = np.searchsorted(times, clipped, side="right") - 1
    integral = areas[index] + levels[index] * (clipped - times[index])
    widths = np.diff(clipped)
    averaged: Floats = np.divide(np.diff(integral), widths, out=np.zeros_like(widths), where=widths > 0)
    return averaged


def _ready_averaged(spans: Lifespans, edges: Floats, end: float) -> Floats:
    """Bucket averages of the consumers ready (rows ``(ready since, left)``, ``left`` NaN: still there)."""
    return StepFunction(spans[:, 0].copy(), np.where(np.isnan(spans[:, 1]), end, spans[:, 1])).bucket_averages(
        edges, end)


def scaling_columns(records: RunRecords, edges: Floats, end: float) -> dict[str, Floats]:
    """``desired`` and ``ready`` per time bucket (time averages, summed over autoscaled stages); with
    several stages also ``<stage>.desired`` and ``<stage>.ready``. Empty without an autoscaled pool."""
    traces = [(name, trace) for name, trace in zip(records.stage_names, records.scaling, strict=False)
              if trace is not None]
    if not traces:
        return {}
    columns: dict[str, Floats] = {"desired": np.zeros(len(edges) - 1), "ready": np.zeros(len(edges) - 1)}
    for name, trace in traces:
        desired = _levels_averaged(trace.desired[:, 0], trace.desired[:, 1], edges, end)
        ready = _ready_averaged(trace.ready, edges, end)
        columns["desired"] += desired
        columns["ready"] += ready
        if len(records.stage_names) > 1:
            columns[f"{name}.desired"], columns[f"{name}.ready"] = desired, ready
    return columns
