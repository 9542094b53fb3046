"""Time-weighted counts from request records: step functions and the intervals they are built from.

Queue length, busy consumers and requests in the system are integrals of step functions:
each request adds 1 while it waits (or is in service), and the change points are sorted
once, so averages and maxima over any window are a few binary searches. :mod:`sim.analysis.metrics`
builds the summary and time series on top.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from sim.engine.records import REJECTED
from sim.engine.simulation import RunRecords
from sim.engine.tally import MAX_BUCKETS, bucket_count, factor, series_edges, widening

__all__ = ["MAX_BUCKETS", "Intervals", "StepFunction", "bucket_edges"]

MAX_RATIO = 1e15
"""Runs up to this many scenario buckets long widen by the nested factors (10^15: 1 us over 30 years)."""

Floats = NDArray[np.float64]
Mask = NDArray[np.bool_]



class StepFunction:
    """A count that goes up by one at each ``up`` time and down by one at each ``down`` time.

    Kept as the two sorted time arrays, so the count and its integral at any set of points
    are two binary searches each: the area from 0 to ``x`` is
    ``x (N_up - N_down) - (sum of ups <= x - sum of downs <= x)``. At equal times the
    decrements count first, so a request leaving as another arrives never makes the count
    look higher than it was. The arrays given are taken over (sorted in place), and running
    sums are made per query, so a million-request run holds two arrays, not four.
    """

    def __init__(self, up: Floats, down: Floats) -> None:
        self.up = _sorted(up)
        self.down = _sorted(down)

    def level_at(self, points: Floats) -> Floats:
        """The count just after each point."""
        ups = np.searchsorted(self.up, points, side="right")
        downs = np.searchsorted(self.down, points, side="right")
        return (ups - downs).astype(float)

    def integral(self, points: Floats) -> Floats:
        """The area under the count from 0 to each point."""
        ups = np.searchsorted(self.up, points, side="right")
        downs = np.searchsorted(self.down, points, side="right")
        up_sums = np.concatenate([[0.0], np.cumsum(self.up)])[ups]
        down_sums = np.concatenate([[0.0], np.cumsum(self.down)])[downs]
        area: Floats = points * (ups - downs) - (up_sums - down_sums)
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
        first = int(np.searchsorted(self.up, begin, side="left"))
        last = int(np.searchsorted(self.up, end, side="right"))
        if last <= first:
            return start_level
        return max(start_level, float(self._levels_after_ups()[first:last].max()))


def _sorted(values: Floats) -> Floats:
    """``values`` sorted, in place when it is a copy we own (as boolean indexing makes)."""
    if len(values) > 1 and not bool(np.all(values[1:] >= values[:-1])):
        if values.base is None and values.flags.writeable:
            values.sort()
        else:
            values = np.sort(values)
    return values


class Intervals:
    """Waiting, service and in-system intervals of a run, as step functions made on demand.

    Waiting and service are counted per job (a request's visit to a stage); being in the
    system is counted per request end to end, or per job for a stage's own view. Nothing of
    the size of the run is kept between calls: each step function is built when asked for
    and dropped after use, which keeps a million-request run well under 200 MB.
    """

    def __init__(self, records: RunRecords) -> None:
        self.records = records
        self.end = records.end_time

    def _job_left(self) -> Floats:
        finish = self.records.jobs.finish
        left: Floats = np.where(np.isnan(finish), self.end, finish)
        return left

    def queue(self, jobs: Mask | None = None) -> StepFunction:
        """Jobs waiting in a queue (all, or those selected by a mask over jobs)."""
        columns = self.records.jobs
        started = ~np.isnan(columns.start)
        # Waiting: arrival until service starts, or until dropped/expired, or until the end.
        leave = np.where(started, columns.start, self._job_left())
        keep = (columns.outcome != REJECTED) & (leave > columns.arrival)
        if jobs is not None:
            keep &= jobs
        return StepFunction(columns.arrival[keep], leave[keep])

    def service(self, jobs: Mask | None = None, stage: int | None = None) -> StepFunction:
        """Busy consumers: jobs in service, or, in brokered stages, invocations (a batch is one).

        ``stage`` picks one stage's consumers; ``jobs`` (a producer's) counts only job-based
        stages, as a batch mixes producers.
        """
        records = self.records
        columns = records.jobs
        started = ~np.isnan(columns.start)
        busy_end = np.where(started, self._job_left(), np.nan)
        keep = started & (busy_end > columns.start)
        brokered = records.brokered_stages
        if brokered:
            keep &= ~np.isin(columns.stage, brokered)
        if stage is not None:
            keep &= columns.stage == stage
        if jobs is not None:
            keep &= jobs
        starts, ends = [columns.start[keep]], [busy_end[keep]]
        if jobs is None:
            for index in brokered if stage is None else [stage] if stage in brokered else []:
                calls = records.invocations[index]
                assert calls is not None
                starts.append(np.asarray(calls[0], dtype=float))
                ends.append(np.minimum(np.asarray(calls[1], dtype=float), self.end))
        if len(starts) == 1:
            return StepFunction(starts[0], ends[0])
        return StepFunction(np.concatenate(starts), np.concatenate(ends))

    def system(self, requests: Mask | None = None) -> StepFunction:
        """Requests in the system end to end (waiting or in service anywhere)."""
        columns = self.records.columns
        leave = np.where(np.isnan(columns.finish), self.end, columns.finish)
        keep = (columns.outcome != REJECTED) & (leave > columns.arrival)
        if requests is not None:
            keep &= requests
        return StepFunction(columns.arrival[keep], leave[keep])

    def stage_system(self, jobs: Mask) -> StepFunction:
        """Jobs of one stage in that stage (waiting or in service there)."""
        columns = self.records.jobs
        leave = self._job_left()
        keep = (columns.outcome != REJECTED) & (leave > columns.arrival) & jobs
        return StepFunction(columns.arrival[keep], leave[keep])


def bucket_edges(end: float, bucket: float) -> tuple[Floats, float]:
    """Edges of the time buckets covering ``[0, end]``; past :data:`MAX_BUCKETS` the bucket widens by the
    factors 2, 10, 20, 100, ... (the rule a streamed run's tally follows too).

    Any ``bucket`` > 0, however small against ``end``, gives at most :data:`MAX_BUCKETS` buckets: a
    bucket more than 10^15 times smaller than the run (scenarios refuse buckets under 1 us, so
    only a direct call gets here) widens to a round number of seconds instead.
    """
    ratio = end / bucket if bucket > 0 else math.inf
    if ratio <= MAX_RATIO:
        width = bucket * factor(widening(end, bucket))
    else:  # also an infinite ratio (a subnormal bucket)
        wanted = end / MAX_BUCKETS
        magnitude = 10.0 ** math.floor(math.log10(wanted))
        width = next((m * magnitude for m in (1.0, 2.0, 5.0) if m * magnitude >= wanted), 10.0 * magnitude)
    edges: Floats = series_edges(bucket_count(end, width), width, end)
    return edges, float(width)
