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

from sim.engine.compiled.heap import heap_pop
from sim.engine.compiled.jit import entry, step
from sim.engine.compiled.layout import (
    AQM,
    ARRIVAL,
    BUDGET_SPENT,
    CODEL,
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
    HEAP_SIZE,
    JOBS,
    LAST_EMPTY,
    LIMIT,
    NEED_BLOCK,
    NEED_UNIFORMS,
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
    RING_FULL,
    SERIES_FULL,
    SERVICE,
    SKIP_EXPIRED,
    START,
    STREAMING,
    UNIFORM_AT,
    UNTIL,
    Arrays,
)
from sim.engine.compiled.policies import codel_pop, early_drop, fail_at_scale_pop
from sim.engine.compiled.steps import begin, fold_final, pop_waiting, schedule, settle, shift_level
from sim.engine.compiled.tallying import advance as advance_clock
from sim.engine.compiled.tallying import arrive, room_for
from sim.engine.compiled.waiting import evict_for, oldest, push
from sim.engine.tally import BUSY, QUEUE, SYSTEM

# Outcome and reason codes of sim.engine.records (repeated as literals for Numba; a test checks them).
COMPLETED, LATE, EXPIRED, REJECTED, DROPPED = 1, 2, 3, 4, 5
OVERFLOW_REASON, AQM_REASON = 1, 2


@step
def _take(a: Arrays, now: float) -> int:
    """The next job to serve, skipping expired ones with ``on_expired: skip``; -1 when none is left."""
    policy = a.ip[AQM]
    mask = a.jf.shape[1] - 1
    while True:
        if policy == CODEL:
            job = codel_pop(a, now)
        elif policy == FAIL_AT_SCALE:
            job = fail_at_scale_pop(a, now)
        elif a.istate[QUEUED] > 0:
            job = pop_waiting(a, now)
        else:
            return -1
        if job < 0:
            return -1
        if a.ip[SKIP_EXPIRED] == 1 and a.jf[DEADLINE, job & mask] < now:
            settle(a, job, EXPIRED, 0, now)
            continue
        return job


@step
def _admit(a: Arrays, job: int, producer: int, now: float) -> None:
    """Offer a new job: early drop, a free consumer, the queue, the overflow rule (as ``admit``)."""
    ist, ip = a.istate, a.ip
    policy = ip[AQM]
    level = a.level[producer] if ip[DISCIPLINE] == PRIORITY else 0
    queued, limit = ist[QUEUED], ip[LIMIT]
    if (policy in (RED, PROPORTIONAL)) and early_drop(a, producer, queued, ist[FREE_TOP] == 0):
        settle(a, job, DROPPED, AQM_REASON, now)
    elif ist[FREE_TOP] > 0:
        ist[FREE_TOP] -= 1
        begin(a, a.free[ist[FREE_TOP]], job, now)
    elif limit < 0 or queued < limit:
        if policy == FAIL_AT_SCALE and queued == 0:
            a.fstate[LAST_EMPTY] = now
        push(a.q, a.q_head, a.q_size, level, job)
        ist[QUEUED] += 1
        shift_level(a, QUEUE, producer, 1.0, now)
    else:
        victim = -1
        if ip[DROP_OLDEST] == 1 and queued > 0:
            victim = evict_for(ip[DISCIPLINE], a.q, a.q_head, a.q_size, level)
        if victim >= 0:
            shift_level(a, QUEUE, a.ji[PRODUCER, victim & (a.jf.shape[1] - 1)], -1.0, now)
            settle(a, victim, DROPPED, OVERFLOW_REASON, now)
            push(a.q, a.q_head, a.q_size, level, job)
            shift_level(a, QUEUE, producer, 1.0, now)
        else:
            settle(a, job, REJECTED, 0, now)


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
    shift_level(a, SYSTEM, producer, 1.0, now)
    _admit(a, job, producer, now)
    position += 1
    a.block_position[producer] = position
    if position == a.block_length[producer]:
        a.istate[PENDING] = producer  # the driver loads the next block; the re-arm happens on re-entry
        return NEED_BLOCK
    schedule(a, producer, a.arrival_times[producer, position])
    return DONE


@step
def _on_finish(a: Arrays, slot: int, now: float) -> None:
    job = a.slot_job[slot]
    row = job & (a.jf.shape[1] - 1)
    a.jf[FINISH, row] = now
    a.ji[OUTCOME, row] = COMPLETED if now <= a.jf[DEADLINE, row] else LATE
    producer = a.ji[PRODUCER, row]
    shift_level(a, BUSY, producer, -1.0, now)
    shift_level(a, SYSTEM, producer, -1.0, now)
    fold_final(a, row)
    waiting = _take(a, now)
    if waiting >= 0:
        begin(a, slot, waiting, now)
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
            schedule(a, pending, a.arrival_times[pending, 0])
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
        now = a.heap_time[0]
        if bounded and now >= until:
            return DONE  # SimPy's stop event at `until` is URGENT: nothing at that instant runs
        if ip[STREAMING] == 1:
            if not room_for(a.tally, now):
                return SERIES_FULL
            advance_clock(a.tally, now)
        ist[HEAP_SIZE] = heap_pop(a.heap, a.heap_time, a.heap_id, ist[HEAP_SIZE])
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
    schedule(a, producer, a.arrival_times[producer, 0])
