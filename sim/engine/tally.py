"""Streaming statistics: what a run folds into as it goes, instead of keeping every request.

With ``report.requests: none`` (or ``sample``), an engine does not keep a row per request for
the summary; it folds each request into a :class:`Tally` when the request's record is final,
and follows three step functions as they change -- requests waiting (queue), in service
(busy), in the system -- integrating them over time. Memory is then bounded by the requests in
the system, not by the length of the run. :mod:`sim.analysis.streamed` turns a tally into the
same summary and time series as the exact path of :mod:`sim.analysis.metrics` computes from
full records: every count, sum and time average agrees (sums up to rounding, the order of
additions differs), and percentiles come from a quantile sketch with a stated relative error.

**The sketch** (DDSketch, Masson, Rim & Lee, VLDB 2019): a value ``x > 0`` falls in bin
``ceil(log_gamma(x))`` with ``gamma = (1 + a) / (1 - a)``; reporting ``2 gamma^i / (gamma + 1)``
for bin ``i`` is within a relative ``a`` of every value in it, so any quantile is within ``a``
(here 0.5 %) of a value of the right rank. Zero (no wait at all) has a bin of its own. Values
are clamped to ``[1e-9 s, 1e9 s]``.

**Time buckets**: a time series has at most :data:`MAX_BUCKETS` buckets; a longer run widens
the bucket by the factors 2, 10, 20, 100, 200, ... of the scenario's (each a multiple of the one
before, so a tally can merge buckets while it runs; the exact path uses the same rule).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

MAX_BUCKETS = 20_000
"""More buckets than this and the time series gets a wider bucket (noted in the manifest)."""

ACCURACY = 0.005
"""Relative error of every percentile computed from the sketch."""
GAMMA = (1 + ACCURACY) / (1 - ACCURACY)
LOWEST, HIGHEST = 1e-9, 1e9
"""Seconds; values outside are counted at the nearest end (a sketch cannot hold every scale)."""
MIN_INDEX = math.ceil(math.log(LOWEST) / math.log(GAMMA))
MAX_INDEX = math.ceil(math.log(HIGHEST) / math.log(GAMMA))
BINS = MAX_INDEX - MIN_INDEX + 2
"""Bin 0 holds zeros; bin ``1 + i - MIN_INDEX`` holds the values of log-bin ``i``."""

# Views: 0 is all requests; then each producer (when there are several); then each stage (when there are
# several: that stage's jobs). Per view, counts ...
OFFERED, SERVED, DROPPED_OVERFLOW, DROPPED_AQM, OVERDUE = range(5)
OUTCOME_BASE = 5
"""``counts[view, OUTCOME_BASE + code]`` counts outcome ``code`` (sim.engine.records.OUTCOMES)."""
ATTEMPTS, THROTTLES, COLD_STARTS, DUPLICATES = range(OUTCOME_BASE + 9, OUTCOME_BASE + 13)
"""Usage, summed over the view's jobs (``ATTEMPTS``: jobs of all requests / a producer's requests).
The 9 counts before them are one per outcome code (``len(sim.engine.records.OUTCOMES)``; records
imports this module, so not by name)."""
COUNTS = OUTCOME_BASE + 13
# ... sums (the three areas follow the order of QUEUE, BUSY, SYSTEM) ...
LATENCY_SUM, WAIT_SUM, WASTED, QUEUE_AREA, BUSY_AREA, SYSTEM_AREA, QUEUE_PEAK = range(7)
LAMBDA_INVOCATIONS, LAMBDA_GB_SECONDS, SQS_REQUESTS, BATCHED_SECONDS = range(7, 11)
"""Billed usage: invocations and GB-seconds of Lambda-billed stages, SQS API calls, and the seconds of
brokered stages' invocations shared out to messages (a producer's busy time there)."""
SUMS = 11
# ... and the two sketches.
LATENCY, WAIT = range(2)

# The followed step functions.
QUEUE, BUSY, SYSTEM = range(3)

# Time-series counts, per bucket (events counted at the time they happen, as in the exact path).
ARRIVALS, SERVED_AT, COMPLETED_AT, LATE_AT, EXPIRED_AT, REJECTED_AT, DROPPED_AT = range(7)
ATTEMPTS_AT, COLD_STARTS_AT, DUPLICATES_AT = range(7, 10)
SERIES = 10
# Per stage (with several), per bucket: its jobs arriving, served, lost (rejected, dropped, expired).
STAGE_ARRIVALS_AT, STAGE_SERVED_AT, STAGE_LOST_AT = range(3)

# Scalars (float): the warm-up, the bucket width now and the scenario's, the last event time, and
# the edges of the bucket the clock is in (most times fall in it: no division needed).
WARMUP, WIDTH, BASE_WIDTH, PREVIOUS, EDGE_LOW, EDGE_HIGH = range(6)
# Scalars (int): the widening step, the last bucket entered, pending peaks, whether any event happened,
# and how many producer and stage views the tally has.
FACTOR_STEP, ENTERED, PENDING_PEAKS, STARTED, PRODUCER_VIEWS, STAGE_VIEWS = range(6)


def factor(step: int) -> int:
    """The bucket widening factors: 1, 2, 10, 20, 100, 200, ... (each a multiple of the one before)."""
    return int((2 if step % 2 else 1) * 10 ** (step // 2))


def bucket_count(end: float, width: float) -> int:
    """How many buckets of ``width`` cover ``[0, end]``: at least one. An ``end`` a hair past a whole
    number of buckets (by rounding) opens no sliver bucket, whose average would be noise: the last
    bucket reaches to ``end`` and takes what happened in that hair (see :func:`series_edges`)."""
    return max(1, math.ceil(end / width - 1e-9))


def series_edges(count: int, width: float, end: float) -> np.ndarray:
    """The ``count + 1`` edges of the time series; the last is moved out to ``end`` if short of it."""
    edges = np.arange(count + 1, dtype=np.float64) * width
    edges[-1] = max(edges[-1], end)
    return edges


def widening(end: float, bucket: float) -> int:
    """The first widening step whose bucket covers ``[0, end]`` in at most :data:`MAX_BUCKETS`."""
    step = 0
    while bucket_count(end, bucket * factor(step)) > MAX_BUCKETS:
        step += 1
    return step


class Tally(NamedTuple):
    """Every accumulator of a streamed run, as arrays an engine (compiled or not) updates in place."""

    counts: np.ndarray
    """``[view, COUNTS]`` int64."""
    sums: np.ndarray
    """``[view, SUMS]`` float64."""
    sketch: np.ndarray
    """``[view, 2, BINS]`` int64: latency and wait of served requests (of a stage view: of its jobs)."""
    level: np.ndarray
    """``[3, view]`` the current queue, busy and in-system counts."""
    changed: np.ndarray
    """``[3, view]`` when each last changed."""
    peaked: np.ndarray
    """``[view]`` 1 when the queue went up at the current instant (its maximum is read when time moves on)."""
    series: np.ndarray
    """``[SERIES, buckets]`` int64 event counts per bucket."""
    areas: np.ndarray
    """``[3, row, buckets]`` integrals of the step functions per bucket: row 0 all requests, row 1 + s stage s."""
    peaks: np.ndarray
    """``[buckets]`` the highest queue length in each bucket."""
    scalars: np.ndarray
    flags: np.ndarray
    area_row: np.ndarray
    """``[view]`` the row of ``areas`` a view's levels are integrated into per bucket (-1: none)."""
    stage_series: np.ndarray
    """``[3, stage, buckets]`` int64 per-stage event counts (STAGE_ARRIVALS_AT ...), with several stages."""


def new_tally(producers: int, stages: int, warmup: float, bucket: float) -> Tally:
    """An empty tally with ``producers`` producer views and ``stages`` stage views (0 when there is only one)."""
    buckets = 64
    views = 1 + producers + stages
    scalars = np.zeros(6)
    scalars[WARMUP], scalars[WIDTH], scalars[BASE_WIDTH] = warmup, bucket, bucket
    flags = np.zeros(6, dtype=np.int64)
    flags[PRODUCER_VIEWS], flags[STAGE_VIEWS] = producers, stages
    area_row = np.full(views, -1, dtype=np.int64)
    area_row[0] = 0
    area_row[1 + producers:] = np.arange(1, 1 + stages)
    return Tally(
        counts=np.zeros((views, COUNTS), dtype=np.int64), sums=np.zeros((views, SUMS)),
        sketch=np.zeros((views, 2, BINS), dtype=np.int64), level=np.zeros((3, views)), changed=np.zeros((3, views)),
        peaked=np.zeros(views, dtype=np.int64), series=np.zeros((SERIES, buckets), dtype=np.int64),
        areas=np.zeros((3, 1 + stages, buckets)), peaks=np.zeros(buckets), scalars=scalars, flags=flags,
        area_row=area_row, stage_series=np.zeros((3, stages, buckets), dtype=np.int64),
    )  # fmt: skip


def producer_view(tally: Tally, producer: int) -> int:
    """The view of ``producer``'s requests (0, all requests, when there is only one producer)."""
    return 1 + producer if tally.flags[PRODUCER_VIEWS] > 0 else 0


def stage_view(tally: Tally, stage: int) -> int:
    """The view of stage ``stage``'s jobs (0 when there is only one stage: it has no view of its own)."""
    return 1 + int(tally.flags[PRODUCER_VIEWS]) + stage if tally.flags[STAGE_VIEWS] > 0 else 0


def grown(tally: Tally, buckets: int) -> Tally:
    """The tally with room for at least ``buckets`` buckets (doubling)."""
    width = used = tally.series.shape[1]
    if width >= buckets:
        return tally
    while width < buckets:
        width *= 2

    def wider(values: np.ndarray) -> np.ndarray:
        larger = np.zeros((*values.shape[:-1], width), dtype=values.dtype)
        larger[..., :used] = values
        return larger

    return tally._replace(series=wider(tally.series), areas=wider(tally.areas), peaks=wider(tally.peaks),
                          stage_series=wider(tally.stage_series))


def widened(tally: Tally, step: int) -> Tally:
    """The tally with buckets of the widening ``step`` (merged from the current, narrower ones)."""
    now = int(tally.flags[FACTOR_STEP])
    if step <= now:
        return tally
    by = factor(step) // factor(now)
    tally = tally._replace(series=merge_buckets(tally.series, by), areas=merge_buckets(tally.areas, by),
                           peaks=merge_buckets(tally.peaks, by, "max"),
                           stage_series=merge_buckets(tally.stage_series, by))
    tally.scalars[WIDTH] = float(tally.scalars[BASE_WIDTH]) * factor(step)
    tally.flags[FACTOR_STEP] = step
    tally.flags[ENTERED] //= by
    tally.scalars[EDGE_LOW] = tally.scalars[EDGE_HIGH] = 0.0  # recomputed at the next instant
    return tally


def fitted(tally: Tally, time: float) -> Tally:
    """The tally with a bucket for ``time``: wider buckets past :data:`MAX_BUCKETS`, else more of them."""
    step = int(tally.flags[FACTOR_STEP])
    while time > MAX_BUCKETS * float(tally.scalars[BASE_WIDTH]) * factor(step) * (1 + 1e-9):
        step += 1
    tally = widened(tally, step)
    return grown(tally, int(time / float(tally.scalars[WIDTH])) + 2)


def merge_buckets(values: np.ndarray, by: int, reduce: str = "sum") -> np.ndarray:
    """Merge every ``by`` consecutive buckets (the last axis); ``reduce`` is ``sum`` or ``max``."""
    count = values.shape[-1]
    padded = math.ceil(count / by) * by
    pad = [(0, 0)] * (values.ndim - 1) + [(0, padded - count)]
    shaped = np.pad(values, pad).reshape(*values.shape[:-1], padded // by, by)
    merged: np.ndarray = shaped.max(axis=-1) if reduce == "max" else shaped.sum(axis=-1)
    return merged
