"""The small steps every handler of the compiled loop shares: schedule, settle, begin, take from the queue.

Inlined into their callers (see :mod:`sim.engine.compiled.jit`).
"""

from __future__ import annotations

from sim.engine.compiled.heap import heap_push
from sim.engine.compiled.jit import step
from sim.engine.compiled.layout import (
    ARRIVAL,
    DEADLINE,
    DISCIPLINE,
    FINISH,
    HEAP_SIZE,
    NEXT_ID,
    OUTCOME,
    PRODUCER,
    PRODUCERS,
    QUEUED,
    REASON,
    SERVICE,
    SEVERAL_PRODUCERS,
    START,
    STREAMING,
    UNIFORM_AT,
    Arrays,
)
from sim.engine.compiled.tallying import change, fold
from sim.engine.compiled.waiting import serve
from sim.engine.tally import BUSY, QUEUE, SYSTEM

# Outcome and reason codes of sim.engine.records (repeated as literals for Numba; a test checks them).
COMPLETED, LATE, EXPIRED, REJECTED, DROPPED = 1, 2, 3, 4, 5
OVERFLOW_REASON, AQM_REASON = 1, 2


@step
def schedule(a: Arrays, event: int, time: float) -> None:
    ident = a.istate[NEXT_ID]
    a.istate[NEXT_ID] += 1
    a.istate[HEAP_SIZE] = heap_push(a.heap, a.heap_time, a.heap_id, a.istate[HEAP_SIZE], time, ident, event)


@step
def shift_level(a: Arrays, kind: int, producer: int, delta: float, now: float) -> None:
    """A step function (queue, busy, in system) of all requests and of the producer moves."""
    if a.ip[STREAMING] == 1:
        change(a.tally, kind, 0, delta, now)
        if a.ip[SEVERAL_PRODUCERS] == 1:
            change(a.tally, kind, producer + 1, delta, now)


@step
def fold_final(a: Arrays, row: int) -> None:
    """The job's record is final: fold it into the streaming statistics."""
    if a.ip[STREAMING] == 1:
        producer = a.ji[PRODUCER, row]
        view = producer + 1 if a.ip[SEVERAL_PRODUCERS] == 1 else 0
        fold(a.tally, view, a.jf[ARRIVAL, row], a.jf[DEADLINE, row], a.jf[START, row], a.jf[FINISH, row],
             a.ji[OUTCOME, row], a.ji[REASON, row])


@step
def settle(a: Arrays, job: int, code: int, why: int, now: float) -> None:
    """The job leaves without being served."""
    row = job & (a.jf.shape[1] - 1)
    a.ji[OUTCOME, row] = code
    a.jf[FINISH, row] = now
    a.ji[REASON, row] = why
    shift_level(a, SYSTEM, a.ji[PRODUCER, row], -1.0, now)
    fold_final(a, row)


@step
def begin(a: Arrays, slot: int, job: int, now: float) -> None:
    row = job & (a.jf.shape[1] - 1)
    a.jf[START, row] = now
    a.slot_job[slot] = job
    shift_level(a, BUSY, a.ji[PRODUCER, row], 1.0, now)
    schedule(a, a.ip[PRODUCERS] + slot, now + a.jf[SERVICE, row])


@step
def pop_waiting(a: Arrays, now: float) -> int:
    """The discipline's next job (the queue is not empty)."""
    a.istate[QUEUED] -= 1
    mask = a.jf.shape[1] - 1
    job = serve(a.ip[DISCIPLINE], a.q, a.q_head, a.q_size, a.istate[QUEUED] + 1, a.ip, a.fp, a.jf, mask, now)
    shift_level(a, QUEUE, a.ji[PRODUCER, job & mask], -1.0, now)
    return job


@step
def uniform(a: Arrays) -> float:
    value = a.uniforms[a.istate[UNIFORM_AT]]
    a.istate[UNIFORM_AT] += 1
    return float(value)
