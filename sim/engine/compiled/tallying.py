"""Folding a run into a :class:`~sim.engine.tally.Tally` as it happens (compiled).

Three kinds of update, called by the kernel (and by any engine that replays its events in time
order): :func:`advance` when the clock moves on, :func:`change` when a step function (queue,
busy, in system) goes up or down, :func:`fold` when a request's record is final. Their meaning
is that of :mod:`sim.analysis.metrics` on full records: a bucket's queue maximum is the highest
level *after* everything that happened at one instant (an arrival and a start at the same time
do not count as a peak), and a time average integrates the level over ``[warm-up, end]``.
"""

from __future__ import annotations

import math

from sim.engine.compiled.jit import apart, step
from sim.engine.tally import (
    ARRIVALS,
    BASE_WIDTH,
    BINS,
    COMPLETED_AT,
    DROPPED_AQM,
    DROPPED_AT,
    DROPPED_OVERFLOW,
    EDGE_HIGH,
    EDGE_LOW,
    ENTERED,
    EXPIRED_AT,
    GAMMA,
    HIGHEST,
    LATE_AT,
    LATENCY,
    LATENCY_SUM,
    LOWEST,
    MIN_INDEX,
    OFFERED,
    OUTCOME_BASE,
    PENDING_PEAKS,
    PREVIOUS,
    QUEUE,
    QUEUE_AREA,
    QUEUE_PEAK,
    REJECTED_AT,
    SERVED,
    SERVED_AT,
    STARTED,
    WAIT,
    WAIT_SUM,
    WARMUP,
    WASTED,
    WIDTH,
    Tally,
    bucket_count,
    grown,
    widened,
    widening,
)

COMPLETED, LATE, EXPIRED, REJECTED, DROPPED = 1, 2, 3, 4, 5
OVERFLOW_REASON, AQM_REASON = 1, 2
INVERSE_LOG_GAMMA = 1.0 / math.log(GAMMA)
_ = BASE_WIDTH, BINS  # (documented with the layout)


@step
def bucket_of(t: Tally, time: float) -> int:
    """The bucket ``[i w, (i + 1) w)`` holding ``time``, with the edges computed as ``i * w`` (like NumPy's)."""
    if t.scalars[EDGE_LOW] <= time < t.scalars[EDGE_HIGH]:
        return int(t.flags[ENTERED])
    width = t.scalars[WIDTH]
    index = int(time / width)
    if (index + 1) * width <= time:
        index += 1
    elif index * width > time:
        index -= 1
    return index


@step
def _sketch(t: Tally, view: int, which: int, value: float) -> None:
    if value <= 0.0:
        t.sketch[view, which, 0] += 1
        return
    clamped = min(max(value, LOWEST), HIGHEST)
    t.sketch[view, which, 1 + math.ceil(math.log(clamped) * INVERSE_LOG_GAMMA) - MIN_INDEX] += 1


@step
def _record_peaks(t: Tally, when: float) -> None:
    """The levels reached at ``when`` (after everything at that instant) may be maxima."""
    counted = when >= t.scalars[WARMUP]
    bucket = bucket_of(t, when)
    for view in range(t.peaked.shape[0]):
        if t.peaked[view] == 1:
            t.peaked[view] = 0
            level = t.level[QUEUE, view]
            if counted and level > t.sums[view, QUEUE_PEAK]:
                t.sums[view, QUEUE_PEAK] = level
            if view == 0 and level > t.peaks[bucket]:
                t.peaks[bucket] = level
    t.flags[PENDING_PEAKS] = 0


@step
def advance(t: Tally, now: float) -> None:
    """The clock moves to ``now``: settle the previous instant's peaks; enter the buckets passed."""
    if t.flags[STARTED] == 1:
        if now == t.scalars[PREVIOUS]:
            return
        if (t.flags[PENDING_PEAKS] == 0 and t.scalars[EDGE_LOW] <= now < t.scalars[EDGE_HIGH]
                and not t.scalars[PREVIOUS] <= t.scalars[WARMUP] < now):
            t.scalars[PREVIOUS] = now  # the common case: nothing to settle, still in the same bucket
            return
    _advance(t, now)


@apart
def _advance(t: Tally, now: float) -> None:
    previous = t.scalars[PREVIOUS]
    if t.flags[PENDING_PEAKS] == 1:
        _record_peaks(t, previous)
    warmup = t.scalars[WARMUP]
    if (t.flags[STARTED] == 0 or previous <= warmup) and now > warmup:
        for view in range(t.peaked.shape[0]):  # the level at the warm-up counts towards the maximum
            t.sums[view, QUEUE_PEAK] = max(t.sums[view, QUEUE_PEAK], t.level[QUEUE, view])
    bucket = bucket_of(t, now)
    first = t.flags[ENTERED] + 1 if t.flags[STARTED] == 1 else 0
    level = t.level[QUEUE, 0]
    for passed in range(first, bucket):
        t.peaks[passed] = max(t.peaks[passed], level)
    if bucket >= first:
        if now > bucket * t.scalars[WIDTH]:
            t.peaks[bucket] = max(t.peaks[bucket], level)
        else:  # `now` is the bucket's first edge: its level there includes what happens at `now`
            t.peaked[0] = 1
            t.flags[PENDING_PEAKS] = 1
        t.flags[ENTERED] = bucket
        t.scalars[EDGE_LOW] = bucket * t.scalars[WIDTH]
        t.scalars[EDGE_HIGH] = (bucket + 1) * t.scalars[WIDTH]
    t.scalars[PREVIOUS] = now
    t.flags[STARTED] = 1


@step
def _spread(t: Tally, kind: int, row: int, level: float, since: float, now: float) -> None:
    """Add ``level`` over ``[since, now)`` to the buckets' integrals (row ``row`` of ``areas``)."""
    if t.scalars[EDGE_LOW] <= since and now <= t.scalars[EDGE_HIGH]:
        t.areas[kind, row, t.flags[ENTERED]] += level * (now - since)
    else:
        _spread_across(t, kind, row, level, since, now)


@apart
def _spread_across(t: Tally, kind: int, row: int, level: float, since: float, now: float) -> None:
    width = t.scalars[WIDTH]
    bucket = bucket_of(t, since)
    begin = since
    while True:
        edge = (bucket + 1) * width
        if edge >= now:
            t.areas[kind, row, bucket] += level * (now - begin)
            return
        t.areas[kind, row, bucket] += level * (edge - begin)
        begin = edge
        bucket += 1


@step
def change(t: Tally, kind: int, view: int, delta: float, now: float) -> None:
    """Step function ``kind`` of ``view`` goes up or down by ``delta`` at ``now``."""
    level = t.level[kind, view]
    since = t.changed[kind, view]
    if level != 0.0 and now > since:
        warmup = t.scalars[WARMUP]
        if now > warmup:
            t.sums[view, QUEUE_AREA + kind] += level * (now - max(since, warmup))
        row = t.area_row[view]
        if row >= 0:
            _spread(t, kind, row, level, since, now)
    t.level[kind, view] = level + delta
    t.changed[kind, view] = now
    if kind == QUEUE and delta > 0:
        t.peaked[view] = 1
        t.flags[PENDING_PEAKS] = 1


@step
def arrive(t: Tally, now: float) -> None:
    t.series[ARRIVALS, bucket_of(t, now)] += 1


@step
def count_outcome(t: Tally, view: int, arrival: float, start: float, finish: float, outcome: int, reason: int,
                  with_waste: bool) -> None:
    """Count a final record in ``view``: its outcome, and the latency and wait of a served one (and, with
    ``with_waste``, a late one's service as wasted work: when the record is a job's, not a request's)."""
    counts = t.counts
    counts[view, OFFERED] += 1
    counts[view, OUTCOME_BASE + outcome] += 1
    if outcome == DROPPED:
        if reason == OVERFLOW_REASON:
            counts[view, DROPPED_OVERFLOW] += 1
        elif reason == AQM_REASON:
            counts[view, DROPPED_AQM] += 1
    elif outcome in (COMPLETED, LATE):
        counts[view, SERVED] += 1
        t.sums[view, LATENCY_SUM] += finish - arrival
        t.sums[view, WAIT_SUM] += start - arrival
        _sketch(t, view, LATENCY, finish - arrival)
        _sketch(t, view, WAIT, start - arrival)
        if with_waste and outcome == LATE:
            t.sums[view, WASTED] += finish - start


@apart
def fold(t: Tally, producer_view: int, arrival: float, deadline: float, start: float, finish: float,
         outcome: int, reason: int) -> None:
    """A request's record is final: count it in the time series and, after the warm-up, its views."""
    series = t.series
    if outcome == COMPLETED:
        bucket = bucket_of(t, finish)
        series[SERVED_AT, bucket] += 1
        series[COMPLETED_AT, bucket] += 1
    elif outcome == LATE:
        series[SERVED_AT, bucket_of(t, finish)] += 1
        series[LATE_AT, bucket_of(t, deadline)] += 1
    elif outcome == EXPIRED:
        series[EXPIRED_AT, bucket_of(t, deadline)] += 1
    elif outcome == REJECTED:
        series[REJECTED_AT, bucket_of(t, arrival)] += 1
    elif outcome == DROPPED:
        series[DROPPED_AT, bucket_of(t, finish)] += 1
    if arrival >= t.scalars[WARMUP]:
        count_outcome(t, 0, arrival, start, finish, outcome, reason, True)
        if producer_view > 0:
            count_outcome(t, producer_view, arrival, start, finish, outcome, reason, True)


@step
def room_for(t: Tally, time: float) -> bool:
    """Whether the time series has a bucket for ``time`` (else the driver grows or widens it)."""
    return bool(bucket_of(t, time) < t.series.shape[1])


@apart
def close(t: Tally, end: float, buckets: int) -> None:
    """The run ended at ``end``: integrate every level up to it and settle the last maxima.

    ``buckets`` is the time series' final number of buckets (at the current width).
    """
    for kind in range(t.level.shape[0]):
        for view in range(t.level.shape[1]):
            change(t, kind, view, 0.0, end)
    if t.flags[PENDING_PEAKS] == 1:
        _record_peaks(t, t.scalars[PREVIOUS])
    previous, warmup = t.scalars[PREVIOUS], t.scalars[WARMUP]
    if t.flags[STARTED] == 0 or previous <= warmup <= end:
        for view in range(t.peaked.shape[0]):
            t.sums[view, QUEUE_PEAK] = max(t.sums[view, QUEUE_PEAK], t.level[QUEUE, view])
    first = t.flags[ENTERED] + 1 if t.flags[STARTED] == 1 else 0
    for passed in range(first, buckets):
        t.peaks[passed] = max(t.peaks[passed], t.level[QUEUE, 0])


def closed(tally: Tally, end: float) -> Tally:
    """The tally of a run that ended at ``end``, closed by :func:`close`, its buckets at their final width.

    Both engines finish a streamed run this way (the compiled driver and the SimPy engine's folder).
    """
    width = float(tally.scalars[WIDTH])
    tally = grown(tally, int(end / width) + 2)
    close(tally, end, bucket_count(end, width))
    return widened(tally, widening(end, float(tally.scalars[BASE_WIDTH])))
