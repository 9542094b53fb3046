"""The compiled engine's event loop: the life of a job of :mod:`sim.engine.queue_stage`, in Numba.

Each function mirrors its SimPy counterpart step for step -- admit, begin, finish, take -- and
schedules events in the same order, so every event gets the same place in the heap and every
request the same arrival, start, finish and outcome, float for float. The loop runs until it
needs something only Python has (a producer's next block of arrivals, more uniform draws, a
bigger ring of job rows, more queue room) or its event budget is spent, and returns a status
saying which; the driver (:mod:`sim.engine.compiled.driver`) supplies it and calls again.
"""

from __future__ import annotations

import math

from sim.engine.compiled.heap import heap_pop, heap_push
from sim.engine.compiled.jit import apart, entry, step
from sim.engine.compiled.layout import (
    AQM,
    AQM_CAPACITY,
    ARRIVAL,
    BUDGET_SPENT,
    CODEL,
    CODEL_COUNT,
    CODEL_DROP_NEXT,
    CODEL_DROPPING,
    CODEL_FIRST_ABOVE,
    CODEL_LAST_COUNT,
    DEADLINE,
    DISCIPLINE,
    DONE,
    DROP_OLDEST,
    EMITTED,
    EVENT_BUDGET,
    EVENTS,
    FAIL_AT_SCALE,
    FINISH,
    FREE_TOP,
    HAS_UNTIL,
    HEAD_INTERVAL,
    HEAD_TARGET,
    HEAP_SIZE,
    JOBS,
    LAST_EMPTY,
    LIMIT,
    NEED_BLOCK,
    NEED_UNIFORMS,
    NEXT_ID,
    NOW,
    OUTCOME,
    PENDING,
    PRIORITY,
    PRODUCER,
    PRODUCERS,
    PROPORTIONAL,
    QUEUE_FULL,
    QUEUED,
    REASON,
    RED,
    RED_AVG,
    RED_COUNT,
    RED_MAX,
    RED_MAX_P,
    RED_MIN,
    RED_WEIGHT,
    RING_FULL,
    SERIES_FULL,
    SERVICE,
    SEVERAL_PRODUCERS,
    SKIP_EXPIRED,
    START,
    STREAMING,
    UNIFORM_AT,
    UNTIL,
    Arrays,
)
from sim.engine.compiled.tallying import advance as advance_clock
from sim.engine.compiled.tallying import arrive, change, close, fold, room_for
from sim.engine.compiled.waiting import evict_for, oldest, push, serve
from sim.engine.tally import BUSY, QUEUE, SYSTEM

# Outcome and reason codes of sim.engine.records (repeated as literals for Numba; a test checks them).
COMPLETED, LATE, EXPIRED, REJECTED, DROPPED = 1, 2, 3, 4, 5
OVERFLOW_REASON, AQM_REASON = 1, 2


@step
def _schedule(a: Arrays, event: int, time: float) -> None:
    a.event_time[event] = time
    a.event_id[event] = a.istate[NEXT_ID]
    a.istate[NEXT_ID] += 1
    a.istate[HEAP_SIZE] = heap_push(a.heap, a.istate[HEAP_SIZE], a.event_time, a.event_id, event)


@step
def _level(a: Arrays, kind: int, producer: int, delta: float, now: float) -> None:
    """A step function (queue, busy, in system) of all requests and of the producer moves."""
    if a.ip[STREAMING] == 1:
        change(a.tally, kind, 0, delta, now)
        if a.ip[SEVERAL_PRODUCERS] == 1:
            change(a.tally, kind, producer + 1, delta, now)


@step
def _final(a: Arrays, row: int) -> None:
    """The job's record is final: fold it into the streaming statistics."""
    if a.ip[STREAMING] == 1:
        producer = a.ji[PRODUCER, row]
        view = producer + 1 if a.ip[SEVERAL_PRODUCERS] == 1 else 0
        fold(a.tally, view, a.jf[ARRIVAL, row], a.jf[DEADLINE, row], a.jf[START, row], a.jf[FINISH, row],
             a.ji[OUTCOME, row], a.ji[REASON, row])


@step
def _settle(a: Arrays, job: int, code: int, why: int, now: float) -> None:
    """The job leaves without being served."""
    row = job & (a.jf.shape[1] - 1)
    a.ji[OUTCOME, row] = code
    a.jf[FINISH, row] = now
    a.ji[REASON, row] = why
    _level(a, SYSTEM, a.ji[PRODUCER, row], -1.0, now)
    _final(a, row)


@step
def _begin(a: Arrays, slot: int, job: int, now: float) -> None:
    row = job & (a.jf.shape[1] - 1)
    a.jf[START, row] = now
    a.slot_job[slot] = job
    _level(a, BUSY, a.ji[PRODUCER, row], 1.0, now)
    _schedule(a, a.ip[PRODUCERS] + slot, now + a.jf[SERVICE, row])


@step
def _pop_waiting(a: Arrays, now: float) -> int:
    """The discipline's next job (the queue is not empty)."""
    a.istate[QUEUED] -= 1
    mask = a.jf.shape[1] - 1
    job = serve(a.ip[DISCIPLINE], a.q, a.q_head, a.q_size, a.istate[QUEUED] + 1, a.ip, a.fp, a.jf, mask, now)
    _level(a, QUEUE, a.ji[PRODUCER, job & mask], -1.0, now)
    return job


@step
def _codel_dequeue(a: Arrays, now: float) -> tuple[int, bool]:
    """RFC 8289's ``dodequeue``: the head job and whether CoDel may drop it."""
    if a.istate[QUEUED] == 0:
        a.fstate[CODEL_FIRST_ABOVE] = -1.0
        return -1, False
    job = _pop_waiting(a, now)
    sojourn = now - a.jf[ARRIVAL, job & (a.jf.shape[1] - 1)]
    if sojourn < a.fp[HEAD_TARGET] or a.istate[QUEUED] == 0:
        a.fstate[CODEL_FIRST_ABOVE] = -1.0
        return job, False
    if a.fstate[CODEL_FIRST_ABOVE] < 0:
        a.fstate[CODEL_FIRST_ABOVE] = now + a.fp[HEAD_INTERVAL]
        return job, False
    return job, now >= a.fstate[CODEL_FIRST_ABOVE]


@apart
def _codel_pop(a: Arrays, now: float) -> int:
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
            _settle(a, job, DROPPED, AQM_REASON, now)
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
        _settle(a, job, DROPPED, AQM_REASON, now)
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
def _fail_at_scale_pop(a: Arrays, now: float) -> int:
    """Facebook's queue timeout (see :class:`sim.engine.aqm.FailAtScale`)."""
    target, interval = a.fp[HEAD_TARGET], a.fp[HEAD_INTERVAL]
    limit = target if now - a.fstate[LAST_EMPTY] > interval else interval
    mask = a.jf.shape[1] - 1
    while a.istate[QUEUED] > 0:
        job = _pop_waiting(a, now)
        if now - a.jf[ARRIVAL, job & mask] > limit:
            _settle(a, job, DROPPED, AQM_REASON, now)
            continue
        if a.istate[QUEUED] == 0:
            a.fstate[LAST_EMPTY] = now
        return job
    a.fstate[LAST_EMPTY] = now
    return -1


@step
def _take(a: Arrays, now: float) -> int:
    """The next job to serve, skipping expired ones with ``on_expired: skip``; -1 when none is left."""
    policy = a.ip[AQM]
    mask = a.jf.shape[1] - 1
    while True:
        if policy == CODEL:
            job = _codel_pop(a, now)
        elif policy == FAIL_AT_SCALE:
            job = _fail_at_scale_pop(a, now)
        elif a.istate[QUEUED] > 0:
            job = _pop_waiting(a, now)
        else:
            return -1
        if job < 0:
            return -1
        if a.ip[SKIP_EXPIRED] == 1 and a.jf[DEADLINE, job & mask] < now:
            _settle(a, job, EXPIRED, 0, now)
            continue
        return job


@step
def _uniform(a: Arrays) -> float:
    value = a.uniforms[a.istate[UNIFORM_AT]]
    a.istate[UNIFORM_AT] += 1
    return float(value)


@apart
def _early_drop(a: Arrays, producer: int, length: int, must_wait: bool) -> bool:
    """RED (Floyd & Jacobson) or the article's proportional drop; see :mod:`sim.engine.aqm`."""
    if a.ip[AQM] == PROPORTIONAL:
        capacity = a.ip[AQM_CAPACITY]
        if not must_wait or a.early_scope[producer] == 0 or capacity == 0:
            return False
        return bool(_uniform(a) < length / capacity)
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
    if _uniform(a) < probability:
        ist[RED_COUNT] = 0
        return True
    return False


@step
def _admit(a: Arrays, job: int, producer: int, now: float) -> None:
    """Offer a new job: early drop, a free consumer, the queue, the overflow rule (as ``admit``)."""
    ist, ip = a.istate, a.ip
    policy = ip[AQM]
    level = a.level[producer] if ip[DISCIPLINE] == PRIORITY else 0
    queued, limit = ist[QUEUED], ip[LIMIT]
    if (policy in (RED, PROPORTIONAL)) and _early_drop(a, producer, queued, ist[FREE_TOP] == 0):
        _settle(a, job, DROPPED, AQM_REASON, now)
    elif ist[FREE_TOP] > 0:
        ist[FREE_TOP] -= 1
        _begin(a, a.free[ist[FREE_TOP]], job, now)
    elif limit < 0 or queued < limit:
        if policy == FAIL_AT_SCALE and queued == 0:
            a.fstate[LAST_EMPTY] = now
        push(a.q, a.q_head, a.q_size, level, job)
        ist[QUEUED] += 1
        _level(a, QUEUE, producer, 1.0, now)
    else:
        victim = -1
        if ip[DROP_OLDEST] == 1 and queued > 0:
            victim = evict_for(ip[DISCIPLINE], a.q, a.q_head, a.q_size, level)
        if victim >= 0:
            _level(a, QUEUE, a.ji[PRODUCER, victim & (a.jf.shape[1] - 1)], -1.0, now)
            _settle(a, victim, DROPPED, OVERFLOW_REASON, now)
            push(a.q, a.q_head, a.q_size, level, job)
            _level(a, QUEUE, producer, 1.0, now)
        else:
            _settle(a, job, REJECTED, 0, now)


@step
def _on_arrival(a: Arrays, producer: int, now: float) -> int:
    """A producer's arrival: a new job (every column written: the ring reuses rows), then re-arm."""
    job = a.istate[JOBS]
    a.istate[JOBS] += 1
    position = a.block_position[producer]
    row = job & (a.jf.shape[1] - 1)
    a.jf[ARRIVAL, row] = now
    a.jf[SERVICE, row] = a.demands[producer, position]
    a.jf[DEADLINE, row] = now + a.patience[producer, position]
    a.jf[START, row] = math.nan
    a.jf[FINISH, row] = math.nan
    a.ji[OUTCOME, row] = 0
    a.ji[REASON, row] = 0
    a.ji[PRODUCER, row] = producer
    if a.ip[STREAMING] == 1:
        arrive(a.tally, now)
    _level(a, SYSTEM, producer, 1.0, now)
    _admit(a, job, producer, now)
    position += 1
    a.block_position[producer] = position
    if position == a.block_length[producer]:
        a.istate[PENDING] = producer  # the driver loads the next block; the re-arm happens on re-entry
        return NEED_BLOCK
    _schedule(a, producer, a.arrival_times[producer, position])
    return DONE


@step
def _on_finish(a: Arrays, slot: int, now: float) -> None:
    job = a.slot_job[slot]
    row = job & (a.jf.shape[1] - 1)
    a.jf[FINISH, row] = now
    a.ji[OUTCOME, row] = COMPLETED if now <= a.jf[DEADLINE, row] else LATE
    producer = a.ji[PRODUCER, row]
    _level(a, BUSY, producer, -1.0, now)
    _level(a, SYSTEM, producer, -1.0, now)
    _final(a, row)
    waiting = _take(a, now)
    if waiting >= 0:
        _begin(a, slot, waiting, now)
    else:
        a.slot_job[slot] = -1
        a.free[a.istate[FREE_TOP]] = slot
        a.istate[FREE_TOP] += 1


@step
def _needs(a: Arrays) -> int:
    """What the next event might need that only the driver can give (0: nothing)."""
    ist = a.istate
    if ist[JOBS] - ist[EMITTED] >= a.jf.shape[1]:
        return RING_FULL
    policy = a.ip[AQM]
    if (policy in (RED, PROPORTIONAL)) and ist[UNIFORM_AT] >= a.uniforms.shape[0]:
        return NEED_UNIFORMS
    if a.ip[LIMIT] < 0:  # an unbounded queue may need more room; a bounded one was sized to fit
        for level in range(a.q.shape[0]):
            if a.q_size[level] >= a.q.shape[1]:
                return QUEUE_FULL
    return 0


@entry
def advance(a: Arrays) -> int:
    """Run events until the driver is needed or none is left; return why it stopped."""
    ist, ip = a.istate, a.ip
    pending = ist[PENDING]
    if pending >= 0:
        ist[PENDING] = -1
        if a.block_length[pending] > 0:
            a.block_position[pending] = 0
            _schedule(a, pending, a.arrival_times[pending, 0])
    producers = ip[PRODUCERS]
    until = a.fp[UNTIL]
    bounded = ip[HAS_UNTIL] == 1
    for _ in range(ip[EVENT_BUDGET]):
        if ist[HEAP_SIZE] == 0:
            return DONE
        need = _needs(a)
        if need != 0:
            return need
        event = a.heap[0]
        now = a.event_time[event]
        if bounded and now >= until:
            return DONE  # SimPy's stop event at `until` is URGENT: nothing at that instant runs
        if ip[STREAMING] == 1:
            if not room_for(a.tally, now):
                return SERIES_FULL
            advance_clock(a.tally, now)
        ist[HEAP_SIZE] = heap_pop(a.heap, ist[HEAP_SIZE], a.event_time, a.event_id)
        a.fstate[NOW] = now
        ist[EVENTS] += 1
        if event < producers:
            if _on_arrival(a, event, now) == NEED_BLOCK:
                return NEED_BLOCK
        else:
            _on_finish(a, event - producers, now)
    return BUDGET_SPENT


@entry
def live_floor(a: Arrays) -> int:
    """The smallest job id still waiting or in service (rows below it are final); JOBS if none."""
    floor = a.istate[JOBS]
    waiting = oldest(a.q, a.q_head, a.q_size)
    if waiting >= 0:
        floor = min(floor, waiting)
    for slot in range(a.slot_job.shape[0]):
        job = a.slot_job[slot]  # -1 while the slot is idle
        if 0 <= job < floor:
            floor = job
    return int(floor)


@entry
def start_producer(a: Arrays, producer: int) -> None:
    """Schedule a producer's first arrival (the driver calls this in producer order, as SimPy does)."""
    a.block_position[producer] = 0
    _schedule(a, producer, a.arrival_times[producer, 0])


@entry
def close_tally(a: Arrays, end: float, buckets: int) -> None:
    """Integrate the streaming statistics up to ``end`` (see :func:`sim.engine.compiled.tallying.close`)."""
    close(a.tally, end, buckets)
