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

# Per view (all requests, then each producer when there are several): counts ...
OFFERED, SERVED, DROPPED_OVERFLOW, DROPPED_AQM, OVERDUE = range(5)
OUTCOME_BASE = 5
"""``counts[view, OUTCOME_BASE + code]`` counts outcome ``code`` (sim.engine.records.OUTCOMES)."""
COUNTS = OUTCOME_BASE + 8
# ... sums ...
LATENCY_SUM, WAIT_SUM, WASTED, QUEUE_AREA, BUSY_AREA, SYSTEM_AREA, QUEUE_PEAK = range(7)
SUMS = 7
# ... and the two sketches.
LATENCY, WAIT = range(2)

# The followed step functions.
QUEUE, BUSY, SYSTEM = range(3)

# Time-series counts, per bucket (events counted at the time they happen, as in the exact path).
ARRIVALS, SERVED_AT, COMPLETED_AT, LATE_AT, EXPIRED_AT, REJECTED_AT, DROPPED_AT = range(7)
SERIES = 7

# Scalars (float): the warm-up, the bucket width now and the scenario's, the last event time, and
# the edges of the bucket the clock is in (most times fall in it: no division needed).
WARMUP, WIDTH, BASE_WIDTH, PREVIOUS, EDGE_LOW, EDGE_HIGH = range(6)
# Scalars (int): the widening step, the last bucket entered, pending peaks, whether any event happened.
FACTOR_STEP, ENTERED, PENDING_PEAKS, STARTED = range(4)


def factor(step: int) -> int:
    """The bucket widening factors: 1, 2, 10, 20, 100, 200, ... (each a multiple of the one before)."""
    return int((2 if step % 2 else 1) * 10 ** (step // 2))


def bucket_count(end: float, width: float) -> int:
    """How many buckets of ``width`` cover ``[0, end]``: at least one, and the last edge at or past ``end``
    (``end`` a hair past a whole number of buckets, by rounding, does not open one more)."""
    count = max(1, math.ceil(end / width - 1e-9))
    return count + 1 if count * width < end else count


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
    """``[view, 2, BINS]`` int64: latency and wait of served requests."""
    level: np.ndarray
    """``[3, view]`` the current queue, busy and in-system counts."""
    changed: np.ndarray
    """``[3, view]`` when each last changed."""
    peaked: np.ndarray
    """``[view]`` 1 when the queue went up at the current instant (its maximum is read when time moves on)."""
    series: np.ndarray
    """``[SERIES, buckets]`` int64 event counts per bucket."""
    areas: np.ndarray
    """``[3, buckets]`` integrals of the step functions (all requests) per bucket."""
    peaks: np.ndarray
    """``[buckets]`` the highest queue length in each bucket."""
    scalars: np.ndarray
    flags: np.ndarray


def new_tally(views: int, warmup: float, bucket: float) -> Tally:
    """An empty tally (``views`` = 1 + producers when there are several, else 1)."""
    buckets = 64
    scalars = np.zeros(6)
    scalars[WARMUP], scalars[WIDTH], scalars[BASE_WIDTH] = warmup, bucket, bucket
    return Tally(
        counts=np.zeros((views, COUNTS), dtype=np.int64), sums=np.zeros((views, SUMS)),
        sketch=np.zeros((views, 2, BINS), dtype=np.int64), level=np.zeros((3, views)), changed=np.zeros((3, views)),
        peaked=np.zeros(views, dtype=np.int64), series=np.zeros((SERIES, buckets), dtype=np.int64),
        areas=np.zeros((3, buckets)), peaks=np.zeros(buckets), scalars=scalars, flags=np.zeros(4, dtype=np.int64),
    )  # fmt: skip


def grown(tally: Tally, buckets: int) -> Tally:
    """The tally with room for at least ``buckets`` buckets (doubling)."""
    width = tally.series.shape[1]
    while width < buckets:
        width *= 2
    series = np.zeros((SERIES, width), dtype=np.int64)
    areas, peaks = np.zeros((3, width)), np.zeros(width)
    used = tally.series.shape[1]
    series[:, :used], areas[:, :used], peaks[:used] = tally.series, tally.areas, tally.peaks
    return tally._replace(series=series, areas=areas, peaks=peaks)


def merge_buckets(values: np.ndarray, by: int, reduce: str = "sum") -> np.ndarray:
    """Merge every ``by`` consecutive buckets (the last axis); ``reduce`` is ``sum`` or ``max``."""
    count = values.shape[-1]
    padded = math.ceil(count / by) * by
    pad = [(0, 0)] * (values.ndim - 1) + [(0, padded - count)]
    shaped = np.pad(values, pad).reshape(*values.shape[:-1], padded // by, by)
    merged: np.ndarray = shaped.max(axis=-1) if reduce == "max" else shaped.sum(axis=-1)
    return merged
