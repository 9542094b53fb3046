"""Time-weighted counts from request records: step functions and the intervals they are built from.

Queue length, busy consumers and requests in the system are integrals of step functions:
each request adds 1 while it waits (or is in service), and the change points are sorted
once, so averages and maxima over any window are a few binary searches. :mod:`sim.metrics`
builds the summary and time series on top.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from sim.engine import RunRecords
from sim.records import REJECTED

Floats = NDArray[np.float64]
Mask = NDArray[np.bool_]

MAX_BUCKETS = 20_000
"""More buckets than this and the time series gets a wider bucket (noted in the manifest)."""


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
            if stage is not None:
                here = records.jobs.stage == stage
                jobs = here if jobs is None else jobs & here
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
