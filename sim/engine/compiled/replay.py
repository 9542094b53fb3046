"""Folding a SimPy run's final rows into a :class:`~sim.engine.tally.Tally` (compiled).

The SimPy engine does not update a tally event by event (that would add work to its hot path):
it folds rows once no stage can write to them any more, a chunk at a time
(:mod:`sim.engine.folding`). Folding a row is of two kinds. Counts, sums, sketches and the time
series' event counts do not depend on order: :func:`fold_requests` and :func:`fold_jobs` add them
for a block of rows at once. The step functions (waiting, busy, in the system) must be integrated
in time order: their changes are replayed by :func:`replay_changes`, through the very functions
the compiled kernel calls as it goes (:mod:`sim.engine.compiled.tallying`), so both engines'
streamed summaries agree with each other and with the exact path of :mod:`sim.analysis.metrics`.

A change is a time and a code: ``kind | UP? | ALL? | producer view << 4 | stage view << 12``
(:func:`change_code`): the step function, its direction, and the views it belongs to.
"""

from __future__ import annotations

import math

import numpy as np

from sim.engine.compiled.jit import apart, entry, step
from sim.engine.compiled.tallying import advance, bucket_of, change, count_outcome, room_for
from sim.engine.tally import (
    ARRIVALS,
    ATTEMPTS,
    ATTEMPTS_AT,
    BATCHED_SECONDS,
    COLD_STARTS,
    COLD_STARTS_AT,
    COMPLETED_AT,
    DROPPED_AT,
    DUPLICATES,
    DUPLICATES_AT,
    EXPIRED_AT,
    LAMBDA_GB_SECONDS,
    LAMBDA_INVOCATIONS,
    LATE_AT,
    OFFERED,
    OUTCOME_BASE,
    OVERDUE,
    PRODUCER_VIEWS,
    REJECTED_AT,
    SERVED_AT,
    SQS_REQUESTS,
    STAGE_ARRIVALS_AT,
    STAGE_LOST_AT,
    STAGE_SERVED_AT,
    STAGE_VIEWS,
    THROTTLES,
    WARMUP,
    WASTED,
    Tally,
)

# Outcome codes of sim.engine.records (repeated as literals for Numba; a test checks them).
IN_SYSTEM, COMPLETED, LATE, EXPIRED, REJECTED, DROPPED = 0, 1, 2, 3, 4, 5

UP, ALL_VIEWS = 4, 8
PRODUCER_SHIFT, STAGE_SHIFT = 4, 12

# Rows of the job blocks given to fold_jobs: integers ...
J_STAGE, J_PRODUCER, J_OUTCOME, J_REASON, J_MEASURED, J_THROTTLES, J_COLD_STARTS, J_DUPLICATES = range(8)
JOB_INTS = 8
# ... and floats.
F_ARRIVAL, F_DEADLINE, F_START, F_FINISH, F_GB_SECONDS, F_INVOCATIONS, F_SQS_REQUESTS = range(7)
JOB_FLOATS = 7
# Per stage: whether it is billed like Lambda, whether it is brokered, and its memory (GB).
S_PRICED, S_BROKERED = range(2)


def change_code(kind: int, up: bool, whole: bool, producer_view: int, stage_view: int) -> int:
    """The code of a change of step function ``kind`` in the views named (0: not in that kind of view)."""
    return kind | (UP if up else 0) | (ALL_VIEWS if whole else 0) | producer_view << PRODUCER_SHIFT | (
        stage_view << STAGE_SHIFT)


@entry
def replay_changes(t: Tally, times: np.ndarray, codes: np.ndarray, first: int) -> int:
    """Replay changes ``first ..`` (in time order); return where it stopped (the tally needs more buckets)."""
    for index in range(first, times.shape[0]):
        now = times[index]
        if not room_for(t, now):
            return index
        advance(t, now)
        code = codes[index]
        kind = code & 3
        delta = 1.0 if code & UP else -1.0
        if code & ALL_VIEWS:
            change(t, kind, 0, delta, now)
        producer_view = (code >> PRODUCER_SHIFT) & 255
        if producer_view > 0:
            change(t, kind, producer_view, delta, now)
        stage_view = code >> STAGE_SHIFT
        if stage_view > 0:
            change(t, kind, stage_view, delta, now)
    return int(times.shape[0])


@step
def _at(t: Tally, kind: int, time: float) -> None:
    """Count an event in the time series at ``time`` (a time that did not happen, NaN, is not counted)."""
    if math.isfinite(time):
        t.series[kind, bucket_of(t, time)] += 1


@step
def _still_in(t: Tally, view: int, deadline: float, end: float) -> None:
    """A record still in the system at the end: offered, in the system, overdue if past its deadline."""
    t.counts[view, OFFERED] += 1
    t.counts[view, OUTCOME_BASE + IN_SYSTEM] += 1
    if deadline < end:
        t.counts[view, OVERDUE] += 1


@apart
def _request_series(t: Tally, outcome: int, arrival: float, deadline: float, finish: float) -> None:
    """How a request ended, counted when it happened (as the exact time series counts it)."""
    _at(t, ARRIVALS, arrival)
    if outcome == COMPLETED:
        _at(t, SERVED_AT, finish)
        _at(t, COMPLETED_AT, finish)
    elif outcome == LATE:
        _at(t, SERVED_AT, finish)
        _at(t, LATE_AT, deadline)
    elif outcome == EXPIRED:
        _at(t, EXPIRED_AT, deadline)
    elif outcome == REJECTED:
        _at(t, REJECTED_AT, arrival)
    elif outcome == DROPPED:
        _at(t, DROPPED_AT, finish)


@entry
def fold_requests(t: Tally, producer: np.ndarray, arrival: np.ndarray, deadline: np.ndarray, start: np.ndarray,
                  finish: np.ndarray, outcome: np.ndarray, reason: np.ndarray, end: float) -> None:
    """Requests whose record is final (or, at the end of the run, still in the system): views all and producer."""
    several = t.flags[PRODUCER_VIEWS] > 0
    warmup = t.scalars[WARMUP]
    for row in range(arrival.shape[0]):
        code = int(outcome[row])
        _request_series(t, code, arrival[row], deadline[row], finish[row])
        if arrival[row] < warmup:
            continue
        _count_request(t, 0, code, arrival[row], deadline[row], start[row], finish[row], int(reason[row]), end)
        if several:
            _count_request(t, 1 + int(producer[row]), code, arrival[row], deadline[row], start[row], finish[row],
                           int(reason[row]), end)


@step
def _count_request(t: Tally, view: int, code: int, arrival: float, deadline: float, start: float, finish: float,
                   reason: int, end: float) -> None:
    if code == IN_SYSTEM:
        _still_in(t, view, deadline, end)
    else:  # (wasted work is counted per job: fold_jobs)
        count_outcome(t, view, arrival, start, finish, code, reason, False)


@step
def _usage(t: Tally, view: int, ji: np.ndarray, jf: np.ndarray, row: int, stages: np.ndarray,
           memory_gb: np.ndarray) -> None:
    """A job's usage, added to one of its views (wasted work too: it is counted per job)."""
    stage = ji[J_STAGE, row]
    t.counts[view, THROTTLES] += ji[J_THROTTLES, row]
    t.counts[view, COLD_STARTS] += ji[J_COLD_STARTS, row]
    t.counts[view, DUPLICATES] += ji[J_DUPLICATES, row]
    t.sums[view, SQS_REQUESTS] += jf[F_SQS_REQUESTS, row]
    if stages[S_PRICED, stage] == 1:
        t.sums[view, LAMBDA_INVOCATIONS] += jf[F_INVOCATIONS, row]
        t.sums[view, LAMBDA_GB_SECONDS] += jf[F_GB_SECONDS, row]
    if stages[S_BROKERED, stage] == 1:
        t.sums[view, BATCHED_SECONDS] += jf[F_GB_SECONDS, row] / memory_gb[stage]


@apart
def _job_series(t: Tally, ji: np.ndarray, jf: np.ndarray, row: int) -> None:
    """A job's events in the time series: every attempt, cold starts, duplicates; per stage with several."""
    _at(t, ATTEMPTS_AT, jf[F_ARRIVAL, row])
    if ji[J_COLD_STARTS, row] > 0:
        _at(t, COLD_STARTS_AT, jf[F_START, row])
    if ji[J_DUPLICATES, row] > 0:
        _at(t, DUPLICATES_AT, jf[F_FINISH, row])
    if t.flags[STAGE_VIEWS] == 0:
        return
    stage, outcome = ji[J_STAGE, row], ji[J_OUTCOME, row]
    t.stage_series[STAGE_ARRIVALS_AT, stage, bucket_of(t, jf[F_ARRIVAL, row])] += 1
    finish = jf[F_FINISH, row]
    if math.isfinite(finish):
        if outcome in (COMPLETED, LATE):
            t.stage_series[STAGE_SERVED_AT, stage, bucket_of(t, finish)] += 1
        elif outcome in (REJECTED, DROPPED, EXPIRED):
            t.stage_series[STAGE_LOST_AT, stage, bucket_of(t, finish)] += 1


@entry
def fold_jobs(t: Tally, ji: np.ndarray, jf: np.ndarray, stages: np.ndarray, memory_gb: np.ndarray,
              end: float) -> None:
    """Jobs whose record is final (or, at the end, still in the system): usage and wasted work in the views
    all and producer, everything in their stage's view (with several stages), and their time-series events."""
    producers = t.flags[PRODUCER_VIEWS]
    several_stages = t.flags[STAGE_VIEWS] > 0
    for row in range(ji.shape[1]):
        _job_series(t, ji, jf, row)
        if ji[J_MEASURED, row] == 0:
            continue
        outcome = ji[J_OUTCOME, row]
        wasted = jf[F_FINISH, row] - jf[F_START, row] if outcome == LATE else 0.0
        t.counts[0, ATTEMPTS] += 1
        t.sums[0, WASTED] += wasted
        _usage(t, 0, ji, jf, row, stages, memory_gb)
        if producers > 0:
            view = 1 + ji[J_PRODUCER, row]
            t.counts[view, ATTEMPTS] += 1
            t.sums[view, WASTED] += wasted
            _usage(t, view, ji, jf, row, stages, memory_gb)
        if several_stages:
            view = 1 + producers + ji[J_STAGE, row]
            if outcome == IN_SYSTEM:
                _still_in(t, view, jf[F_DEADLINE, row], end)
            else:
                count_outcome(t, view, jf[F_ARRIVAL, row], jf[F_START, row], jf[F_FINISH, row], outcome,
                              ji[J_REASON, row], True)
            _usage(t, view, ji, jf, row, stages, memory_gb)
