"""A stage whose consumers take jobs straight from a queue (for broker delivery see :mod:`sim.engine.broker`).

The life of a job here is told in :mod:`sim.engine.stage`; this module wires it, one
function per step: :func:`_admitter` (admit), :func:`_starter` (start service),
:func:`_finisher` (finish), :func:`_taker` (the next job to serve), :func:`_settler` (leave
unserved), :func:`_scaler` (wait for a serverless pool's scaling allowance) and
:func:`_autoscaled` (an autoscaled pool's new consumers take waiting jobs; one due to leave
takes none).

Each step is a closure made once per stage. The steps share a :class:`_Wiring`, but each
copies the fields it uses into its own local names when it is made: in the hot path a
closure variable costs less than an attribute look-up.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from heapq import heappush
from typing import Protocol

import numpy as np
from simpy.events import NORMAL

from sim.engine.aqm import Codel, EarlyDrop, FailAtScale, HeadDrop, Proportional, Red
from sim.engine.autoscaled import AutoscaledPool, attach
from sim.engine.consumers import Execution, FixedPool, Pool, ServerlessPool, Slot
from sim.engine.faults import QueueFaults
from sim.engine.kernel import Handler, Kernel, Reusable
from sim.engine.queues import Queue, queue_for
from sim.engine.records import (
    AQM,
    COMPLETED,
    DROPPED,
    EXPIRED,
    FAILED,
    IN_SYSTEM,
    LATE,
    OVERFLOW,
    REJECTED,
    THROTTLE,
    JobLog,
)
from sim.engine.rows import numpy_of
from sim.engine.stage import NO_LIVE_JOB, Admit, Listener, Stage
from sim.engine.streams import uniform_stream
from sim.model.schema import CodelSpec, FailAtScaleSpec, ProportionalSpec, RedSpec, StageSpec

Settle = Callable[[int, int, float, int], None]
"""``settle(job, outcome, now, reason)``: the job leaves without being served."""

Take = Callable[[float], int]
"""``take(now)``: the next job to serve, or -1 when none is left."""


class Begin(Protocol):
    """``begin(slot, job, now, init, cold)``: ``slot`` starts ``job`` (after ``init`` seconds of cold start)."""

    def __call__(self, slot: Slot, job: int, now: float, init: float = 0.0, cold: bool = False) -> None: ...


@dataclass(slots=True)
class _Wiring:
    """What the steps of one queue stage share (each copies the fields it uses into locals)."""

    kernel: Kernel
    log: JobLog
    queue: Queue
    pool: Pool
    execution: Execution
    listener: Listener | None
    memory_gb: float
    limit: float
    """Room in the queue (infinite when unbounded)."""
    skip_expired: bool
    drop_oldest: bool
    early_drop: EarlyDrop | None = None
    head: HeadDrop | None = None
    finished: list[Handler] = field(default_factory=list)
    """The slots' completion handler, once made (``begin`` binds this list before it is filled)."""


def wire(kernel: Kernel, spec: StageSpec, log: JobLog, *, pool: Pool, execution: Execution,
               levels: list[int], producer_names: list[str], aqm_rng: np.random.Generator,
               listener: Listener | None, index: int = 0) -> Stage:
    """Build a stage (number ``index``) whose consumers take jobs from its queue; return it with ``admit``."""
    qspec = spec.queue
    queue = queue_for(qspec.discipline, levels, log.producer.__getitem__, length=qspec.switch.length,
                        wait=qspec.switch.wait, arrival=log.arrival, clock=kernel.clock())
    wiring = _Wiring(kernel, log, queue, pool, execution, listener, memory_gb=spec.consumers.memory_gb,
                     limit=math.inf if qspec.capacity is None else qspec.capacity,
                     skip_expired=qspec.on_expired == "skip", drop_oldest=qspec.overflow == "drop-oldest")
    settle = _settler(wiring)

    def drop_early(job: int, now: float) -> None:
        settle(job, DROPPED, now, AQM)

    wiring.early_drop, wiring.head = _aqm(qspec.aqm, queue, log.arrival, drop_early, producer_names, aqm_rng,
                                          qspec.capacity)
    begin = _starter(wiring)
    take = _taker(wiring, settle)
    finisher_take = _autoscaled(wiring, take, begin) if isinstance(pool, AutoscaledPool) else take
    wiring.finished.append(_finisher(wiring, finisher_take, begin))
    admit = _admitter(wiring, settle, begin, _scaler(wiring, take, begin))
    stage = Stage(spec.name, pool.cap, admit, pool, queue.__len__, lambda: pool.busy, spec.consumers.priced)
    stage.oldest_live = lambda: oldest_in_system(log, index if log.routed else None)
    if isinstance(pool, FixedPool):
        stage.faults = QueueFaults(kernel, pool, stage, settle, take, begin)  # crashes (sim.engine.faults)
    return stage


def oldest_in_system(log: JobLog, stage: int | None) -> int:
    """The oldest job (of ``stage``) not yet folded that is waiting or in service, or NO_LIVE_JOB.

    At a queue stage a job is waiting or in service exactly while its outcome is ``in_system``
    (every step that takes it out writes its outcome), so the log itself says: no per-event work.
    """
    first, last = log.folded, log.allocated
    live = numpy_of(log.outcome, first, last) == IN_SYSTEM
    if stage is not None:
        live &= numpy_of(log.stage, first, last) == stage
    found = int(np.argmax(live)) if len(live) else 0
    return first + found if len(live) and live[found] else NO_LIVE_JOB


def _settler(w: _Wiring) -> Settle:
    """Leaving unserved: rejected, dropped, expired. The listener (router or client) is told."""
    finish, outcome, reason = w.log.finish, w.log.outcome, w.log.reason
    listener = w.listener

    def settle(job: int, code: int, now: float, why: int = 0) -> None:
        outcome[job] = code
        finish[job] = now
        reason[job] = why
        if listener is not None:
            listener.failed(job, code, now)

    return settle


def _admitter(w: _Wiring, settle: Settle, begin: Begin, request_allowance: Callable[[float], None] | None) -> Admit:
    """Step 1, admit: drop early, start at once, queue, evict the oldest, or reject."""
    producer, throttles = w.log.producer, w.log.throttles
    queue, pool, limit, drop_oldest = w.queue, w.pool, w.limit, w.drop_oldest
    push, evict_for = queue.push, queue.evict_for
    early_drop = w.early_drop
    note_push = w.head.note_push if isinstance(w.head, FailAtScale) else None
    free = pool.free if isinstance(pool, FixedPool) else []  # the fixed pool's free list, used directly
    take_free = free.pop
    serverless = pool if isinstance(pool, ServerlessPool) else None
    elastic = pool if isinstance(pool, ServerlessPool | AutoscaledPool) else None  # slots handed out by acquire

    def admit(job: int, now: float) -> None:
        if early_drop is not None and early_drop(producer[job], len(queue), not (free or pool.free)):
            settle(job, DROPPED, now, AQM)
        elif free:
            begin(take_free(), job, now)
        elif elastic is not None and (acquired := elastic.acquire(now)) is not None:
            begin(acquired[0], job, now, acquired[1], acquired[2])
        elif len(queue) < limit:
            if note_push is not None:
                note_push(now)
            push(job)
            if request_allowance is not None:
                request_allowance(now)
        elif drop_oldest and queue and (victim := evict_for(job)) >= 0:
            settle(victim, DROPPED, now, OVERFLOW)
            push(job)
        elif serverless is not None and limit == 0:
            throttles[job] += 1
            settle(job, REJECTED, now, THROTTLE)  # a direct invocation finding no environment: HTTP 429
        else:
            settle(job, REJECTED, now, 0)

    return admit


def _starter(w: _Wiring) -> Begin:
    """Step 2, start: the slot's completion is scheduled (its event re-armed, as ``Kernel.rearm`` does)."""
    heap, ids = w.kernel.heap, w.kernel.ids
    start, service, producer = w.log.start, w.log.service, w.log.producer
    # The engine meters every scenario that uses scaling, timeouts, failures or slowdowns, so
    # one flag picks the plain hot path or the one that consults Execution and keeps usage.
    metered = w.log.metered
    cold_starts, gb_seconds, invocations = w.log.cold_starts, w.log.gb_seconds, w.log.invocations
    execution, memory_gb, finished = w.execution, w.memory_gb, w.finished

    def begin(slot: Slot, job: int, now: float, init: float = 0.0, cold: bool = False) -> None:
        start[job] = now
        slot.job = job
        event = slot.event
        event.callbacks = finished  # SimPy iterates and drops it; reusing one list is safe
        if metered:
            work, slot.reason = execution.run(service[job], now, producer[job])
            if cold:
                cold_starts[job] += 1
            gb_seconds[job] += (init + work) * memory_gb
            invocations[job] += 1
            due = now + init + work
        else:
            due = now + service[job]
        event.due = due
        heappush(heap, (due, NORMAL, next(ids), event))

    return begin


def _finisher(w: _Wiring, take: Take, begin: Begin) -> Handler:
    """Step 3, finish: record the outcome, tell the listener, start the next job or free the slot."""
    finish, outcome, reason, deadline = w.log.finish, w.log.outcome, w.log.reason, w.log.deadline
    metered, listener, pool = w.log.metered, w.listener, w.pool
    fixed = isinstance(pool, FixedPool)
    free = pool.free if fixed else []

    def on_finish(event: Reusable) -> None:
        slot: Slot = event.owner
        now = event.due
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

    return on_finish


def _taker(w: _Wiring, settle: Settle) -> Take:
    """Step 4, next: the job a freed consumer serves, skipping expired ones and head drops."""
    queue, deadline, skip_expired = w.queue, w.log.deadline, w.skip_expired
    pop: Callable[[], int] = queue.pop
    head_pop = w.head.pop if w.head is not None else None

    def take(now: float) -> int:
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
                settle(job, EXPIRED, now, 0)
                continue
            return job

    return take


def _scaler(w: _Wiring, take: Take, begin: Begin) -> Callable[[float], None] | None:
    """A serverless pool's growth: while jobs wait, wake up when a new environment may be created.

    Returns ``request_allowance(now)`` (None for a fixed pool, which never grows).
    """
    serverless = w.pool if isinstance(w.pool, ServerlessPool) else None
    if serverless is None:
        return None
    kernel, queue = w.kernel, w.queue
    pending = False

    def on_allowance(event: Reusable) -> None:
        """The scaling allowance has refilled: start environments for waiting jobs."""
        nonlocal pending
        pending = False
        now = kernel.now()
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
        nonlocal pending
        if pending or not queue or not serverless.can_grow():
            return
        pending = True
        kernel.call_at(serverless.next_allowance(now), on_allowance)

    return request_allowance


def _autoscaled(w: _Wiring, take: Take, begin: Begin) -> Take:
    """An autoscaled pool: start its autoscaler; return the finishers' ``take``.

    A consumer that becomes ready takes waiting jobs; a consumer that finishes while busy
    consumers are asked to leave takes no new job (its release makes it leave).
    """
    pool = w.pool
    assert isinstance(pool, AutoscaledPool)
    queue, arrival = w.queue, w.log.arrival

    def serve_waiting(now: float) -> None:
        while pool.free and queue:
            job = take(now)
            if job < 0:
                return
            acquired = pool.acquire(now)
            assert acquired is not None
            begin(acquired[0], job, now)

    def oldest_wait(now: float) -> float:
        if not queue:
            return 0.0
        # Job ids grow with arrival time, so the smallest id waiting is the oldest job.
        oldest = queue[0] if isinstance(queue, deque) else min(queue.waiting())
        return now - arrival[oldest]

    attach(w.kernel, pool, backlog=lambda: len(queue) + pool.busy, oldest_wait=oldest_wait,
           serve_waiting=serve_waiting)

    def take_unless_leaving(now: float) -> int:
        return -1 if pool.surplus else take(now)

    return take_unless_leaving


def _aqm(spec: RedSpec | ProportionalSpec | CodelSpec | FailAtScaleSpec | None, queue: Queue,
         arrival: Sequence[float], drop: Callable[[int, float], None], producer_names: list[str],
         rng: np.random.Generator, capacity: int | None) -> tuple[EarlyDrop | None, HeadDrop | None]:
    """The stage's early-drop (on arrival) and head-drop (at dequeue) policies, if any."""
    if spec is None:
        return None, None
    if isinstance(spec, RedSpec | ProportionalSpec):
        scope = [spec.classes is None or name in spec.classes for name in producer_names]
        if isinstance(spec, RedSpec):
            return Red(spec.min, spec.max, spec.max_p, spec.weight, scope, uniform_stream(rng)), None
        assert capacity is not None  # the schema requires it
        return Proportional(capacity, scope, uniform_stream(rng)), None
    if isinstance(spec, CodelSpec):
        return None, Codel(queue, arrival, drop, spec.target, spec.interval)
    return None, FailAtScale(queue, arrival, drop, spec.target, spec.interval)
