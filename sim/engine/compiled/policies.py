"""Active queue management in the compiled loop: RED and the article's proportional drop on arrival,
CoDel and Facebook's queue timeout at the head -- each a transcription of :mod:`sim.engine.aqm`.
"""

from __future__ import annotations

import math

from sim.engine.compiled.jit import apart, step
from sim.engine.compiled.layout import (
    AQM,
    AQM_CAPACITY,
    ARRIVAL,
    CODEL_COUNT,
    CODEL_DROP_NEXT,
    CODEL_DROPPING,
    CODEL_FIRST_ABOVE,
    CODEL_LAST_COUNT,
    HEAD_INTERVAL,
    HEAD_TARGET,
    LAST_EMPTY,
    PROPORTIONAL,
    QUEUED,
    RED_AVG,
    RED_COUNT,
    RED_MAX,
    RED_MAX_P,
    RED_MIN,
    RED_WEIGHT,
    Arrays,
)
from sim.engine.compiled.steps import pop_waiting, settle, uniform

# Outcome and reason codes of sim.engine.records (repeated as literals for Numba; a test checks them).
COMPLETED, LATE, EXPIRED, REJECTED, DROPPED = 1, 2, 3, 4, 5
OVERFLOW_REASON, AQM_REASON = 1, 2


@step
def _codel_dequeue(a: Arrays, now: float) -> tuple[int, bool]:
    """RFC 8289's ``dodequeue``: the head job and whether CoDel may drop it."""
    if a.istate[QUEUED] == 0:
        a.fstate[CODEL_FIRST_ABOVE] = -1.0
        return -1, False
    job = pop_waiting(a, now)
    sojourn = now - a.jf[ARRIVAL, job & (a.jf.shape[1] - 1)]
    if sojourn < a.fp[HEAD_TARGET] or a.istate[QUEUED] == 0:
        a.fstate[CODEL_FIRST_ABOVE] = -1.0
        return job, False
    if a.fstate[CODEL_FIRST_ABOVE] < 0:
        a.fstate[CODEL_FIRST_ABOVE] = now + a.fp[HEAD_INTERVAL]
        return job, False
    return job, now >= a.fstate[CODEL_FIRST_ABOVE]


@apart
def codel_pop(a: Arrays, now: float) -> int:
    """CoDel's ``dequeue`` (see :class:`sim.engine.aqm.Codel`): drops at the head, then the job to serve."""
    interval, fs, ist = a.fp[HEAD_INTERVAL], a.fstate, a.istate
    job, ok = _codel_dequeue(a, now)
    if job < 0:
        ist[CODEL_DROPPING] = 0
        return -1
    if ist[CODEL_DROPPING] == 1:
        if not ok:
            ist[CODEL_DROPPING] = 0
        while ist[CODEL_DROPPING] == 1 and now >= fs[CODEL_DROP_NEXT]:
            settle(a, job, DROPPED, AQM_REASON, now)
            ist[CODEL_COUNT] += 1
            job, ok = _codel_dequeue(a, now)
            if job < 0:
                ist[CODEL_DROPPING] = 0
                return -1
            if not ok:
                ist[CODEL_DROPPING] = 0
            else:
                fs[CODEL_DROP_NEXT] = fs[CODEL_DROP_NEXT] + interval / math.sqrt(ist[CODEL_COUNT])
    elif ok:
        settle(a, job, DROPPED, AQM_REASON, now)
        job, ok = _codel_dequeue(a, now)
        ist[CODEL_DROPPING] = 1
        delta = ist[CODEL_COUNT] - ist[CODEL_LAST_COUNT]
        ist[CODEL_COUNT] = 1
        if delta > 1 and now - fs[CODEL_DROP_NEXT] < 16 * interval:
            ist[CODEL_COUNT] = delta
        fs[CODEL_DROP_NEXT] = now + interval / math.sqrt(ist[CODEL_COUNT])
        ist[CODEL_LAST_COUNT] = ist[CODEL_COUNT]
    return job


@apart
def fail_at_scale_pop(a: Arrays, now: float) -> int:
    """Facebook's queue timeout (see :class:`sim.engine.aqm.FailAtScale`)."""
    target, interval = a.fp[HEAD_TARGET], a.fp[HEAD_INTERVAL]
    limit = target if now - a.fstate[LAST_EMPTY] > interval else interval
    mask = a.jf.shape[1] - 1
    while a.istate[QUEUED] > 0:
        job = pop_waiting(a, now)
        if now - a.jf[ARRIVAL, job & mask] > limit:
            settle(a, job, DROPPED, AQM_REASON, now)
            continue
        if a.istate[QUEUED] == 0:
            a.fstate[LAST_EMPTY] = now
        return job
    a.fstate[LAST_EMPTY] = now
    return -1


@apart
def early_drop(a: Arrays, producer: int, length: int, must_wait: bool) -> bool:
    """RED (Floyd & Jacobson) or the article's proportional drop; see :mod:`sim.engine.aqm`."""
    if a.ip[AQM] == PROPORTIONAL:
        capacity = a.ip[AQM_CAPACITY]
        if not must_wait or a.early_scope[producer] == 0 or capacity == 0:
            return False
        return bool(uniform(a) < length / capacity)
    fs, ist, fp = a.fstate, a.istate, a.fp
    fs[RED_AVG] += fp[RED_WEIGHT] * (length - fs[RED_AVG])
    if not must_wait or a.early_scope[producer] == 0:
        return False
    if fs[RED_AVG] < fp[RED_MIN]:
        ist[RED_COUNT] = -1
        return False
    if fs[RED_AVG] >= fp[RED_MAX]:
        ist[RED_COUNT] = 0
        return True
    ist[RED_COUNT] += 1
    base = fp[RED_MAX_P] * (fs[RED_AVG] - fp[RED_MIN]) / (fp[RED_MAX] - fp[RED_MIN])
    spread = 1.0 - ist[RED_COUNT] * base
    probability = 1.0 if spread <= base else base / spread
    if uniform(a) < probability:
        ist[RED_COUNT] = 0
        return True
    return False
