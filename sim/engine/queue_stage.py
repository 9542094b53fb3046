"""A stage whose consumers take jobs straight from a queue (for broker delivery see :mod:`sim.engine.broker`).

The life of a job here is told in :mod:`sim.engine.stage`; this module wires it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from heapq import heappush
from itertools import count as counter

import numpy as np
import simpy
from simpy.events import NORMAL, Event

from sim.engine.aqm import Codel, FailAtScale, Proportional, Red, Uniforms
from sim.engine.consumers import Execution, FixedPool, Pool, ServerlessPool, Slot
from sim.engine.queues import Queue, make_queue
from sim.engine.records import AQM, COMPLETED, DROPPED, EXPIRED, FAILED, LATE, OVERFLOW, REJECTED, THROTTLE, JobLog
from sim.engine.stage import Listener, Stage, call_at
from sim.model.schema import CodelSpec, FailAtScaleSpec, ProportionalSpec, RedSpec, StageSpec


def wire_queue(env: simpy.Environment, spec: StageSpec, log: JobLog, *, pool: Pool, execution: Execution,
                levels: list[int], producer_names: list[str], aqm_rng: np.random.Generator,
                listener: Listener | None) -> Stage:
    heap = env._queue
    next_id = env._eid
    assert isinstance(next_id, counter)
    arrival, deadline, service = log.arrival, log.deadline, log.service
    start, finish, outcome, reason, producer = log.start, log.finish, log.outcome, log.reason, log.producer
    # The engine meters every scenario that uses scaling, timeouts, failures or slowdowns, so
    # one flag picks the plain hot path or the one that consults Execution and keeps usage.
    metered = log.metered
    cold_starts, throttles, gb_seconds, invocations = log.cold_starts, log.throttles, log.gb_seconds, log.invocations
    memory_gb = spec.consumers.memory_gb

    qspec = spec.queue
    limit = math.inf if qspec.capacity is None else qspec.capacity
    skip_expired = qspec.on_expired == "skip"
    drop_oldest = qspec.overflow == "drop-oldest"
    switch = qspec.switch
    queue = make_queue(qspec.discipline, levels, producer.__getitem__, length=switch.length,
                       wait=switch.wait, arrival=arrival, clock=lambda: env._now)
    push, evict_for = queue.push, queue.evict_for

    def settle(job: int, code: int, now: float, why: int = 0) -> None:
        """The job leaves without being served."""
        outcome[job] = code
        finish[job] = now
        reason[job] = why
        if listener is not None:
            listener.failed(job, code, now)

    def drop_early(job: int, now: float) -> None:
        settle(job, DROPPED, now, AQM)

    early_drop, head = _aqm(qspec.aqm, queue, arrival, drop_early, producer_names, aqm_rng, qspec.capacity)
    note_push = head.note_push if isinstance(head, FailAtScale) else None
    pop: Callable[[], int] = queue.pop
    head_pop = head.pop if head is not None else None

    fixed = isinstance(pool, FixedPool)
    free = pool.free if fixed else []  # the fixed pool's free list, used directly on the hot path
    take_free = free.pop
    serverless = pool if isinstance(pool, ServerlessPool) else None
    scale_pending = False

    def begin(slot: Slot, job: int, now: float, init: float = 0.0, cold: bool = False) -> None:
        start[job] = now
        slot.job = job
        event = slot.event
        event.callbacks = on_finish_callbacks  # SimPy iterates and drops it; reusing one list is safe
        if metered:
            work, slot.reason = execution.run(service[job], now, producer[job])
            if cold:
                cold_starts[job] += 1
            gb_seconds[job] += (init + work) * memory_gb
            invocations[job] += 1
            heappush(heap, (now + init + work, NORMAL, next(next_id), event))
        else:
            heappush(heap, (now + service[job], NORMAL, next(next_id), event))

    def take(now: float) -> int:
        """The next job to serve, or -1 when none is left."""
        while True:
            if head_pop is not None:
                job = head_pop(now)
                if job < 0:
                    return -1
            elif queue:
                job = pop()
            else:
                return -1
            if skip_expired and deadline[job] < now:
                settle(job, EXPIRED, now)
                continue
            return job

    def on_finish(event: Event) -> None:
        slot: Slot = event._value
        now: float = env._now
        job = slot.job
        finish[job] = now
        if metered and slot.reason:
            outcome[job] = FAILED
            reason[job] = slot.reason
            if listener is not None:
                listener.failed(job, FAILED, now)
        else:
            outcome[job] = COMPLETED if now <= deadline[job] else LATE
            if listener is not None:
                listener.served(job, now)
        waiting = take(now)
        if waiting >= 0:
            begin(slot, waiting, now)
        elif fixed:
            free.append(slot)
        else:
            pool.release(slot, now)

    on_finish_callbacks: list[Callable[[Event], None]] = [on_finish]

    def on_allowance(event: Event) -> None:
        """The scaling allowance has refilled: start environments for waiting jobs."""
        nonlocal scale_pending
        scale_pending = False
        now: float = env._now
        assert serverless is not None
        while queue:
            acquired = serverless.acquire(now)
            if acquired is None:
                break
            job = take(now)
            if job < 0:
                serverless.release(acquired[0], now)
                return
            begin(acquired[0], job, now, acquired[1], acquired[2])
        request_allowance(now)

    def request_allowance(now: float) -> None:
        """Wake up when a new environment may be created, if jobs are waiting for one."""
        nonlocal scale_pending
        if serverless is None or scale_pending or not queue or not serverless.can_grow():
            return
        scale_pending = True
        call_at(env, serverless.next_allowance(now), on_allowance)

    def admit(job: int, now: float) -> None:
        if early_drop is not None and early_drop(producer[job], len(queue), not (free or pool.free)):
            settle(job, DROPPED, now, AQM)
        elif free:
            begin(take_free(), job, now)
        elif serverless is not None and (acquired := serverless.acquire(now)) is not None:
            begin(acquired[0], job, now, acquired[1], acquired[2])
        elif len(queue) < limit:
            if note_push is not None:
                note_push(now)
            push(job)
            if serverless is not None:
                request_allowance(now)
        elif drop_oldest and queue and (victim := evict_for(job)) >= 0:
            settle(victim, DROPPED, now, OVERFLOW)
            push(job)
        elif serverless is not None and limit == 0:
            throttles[job] += 1
            settle(job, REJECTED, now, THROTTLE)  # a direct invocation finding no environment: HTTP 429
        else:
            settle(job, REJECTED, now)

    return Stage(spec.name, spec.consumers.concurrency, admit, pool, queue.__len__, lambda: pool.busy,
                 spec.consumers.priced)


EarlyDrop = Red | Proportional
HeadDrop = Codel | FailAtScale


def _aqm(spec: RedSpec | ProportionalSpec | CodelSpec | FailAtScaleSpec | None, queue: Queue,
         arrival: Sequence[float], drop: Callable[[int, float], None], producer_names: list[str],
         rng: np.random.Generator, capacity: int | None) -> tuple[EarlyDrop | None, HeadDrop | None]:
    """The stage's early-drop (on arrival) and head-drop (at dequeue) policies, if any."""
    if spec is None:
        return None, None
    if isinstance(spec, RedSpec | ProportionalSpec):
        scope = [spec.classes is None or name in spec.classes for name in producer_names]
        if isinstance(spec, RedSpec):
            return Red(spec.min, spec.max, spec.max_p, spec.weight, scope, Uniforms(rng)), None
        assert capacity is not None  # the schema requires it
        return Proportional(capacity, scope, Uniforms(rng)), None
    if isinstance(spec, CodelSpec):
        return None, Codel(queue, arrival, drop, spec.target, spec.interval)
    return None, FailAtScale(queue, arrival, drop, spec.target, spec.interval)
