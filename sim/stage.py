"""One stage: a queue and its pool of consumers, wired into the SimPy environment.

The life of a job (a request's visit to a stage):

1. **admit** - an active-queue-management policy may drop it early; else a free consumer
   starts it at once; else it joins the queue if there is room; else the overflow rule
   rejects it or evicts the oldest waiting job;
2. **serve** - the consumer's reusable completion event is scheduled ``service`` seconds on;
3. **finish** - outcome ``completed`` if it ended by the deadline, else ``late``; the router
   (multi-stage scenarios) passes the request on; the consumer takes the next waiting job,
   skipping expired ones (``on_expired: skip``) and those the head-drop policy drops, or
   goes back to the free list.

Speed (see the README): no SimPy process and no new event object per job. Each consumer
slot owns one event re-armed for each job; handlers are closures over local names, because
attribute look-ups are the main cost of a Python event loop. The hot path reads SimPy's
clock (``env._now``) and pushes ``(time, priority, id, event)`` tuples onto SimPy's own heap
exactly as ``Environment.schedule`` does, without its method call (``tests/test_engine.py``
pins that contract). Deadlines need no event: an expired job is recognised at the head.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from heapq import heappush
from itertools import count as counter

import numpy as np
import simpy
from simpy.events import NORMAL, Event

from sim.aqm import Codel, FailAtScale, Proportional, Red, Uniforms
from sim.queues import Queue, make_queue
from sim.records import AQM, COMPLETED, DROPPED, EXPIRED, LATE, OVERFLOW, REJECTED, JobLog
from sim.schema import CodelSpec, FailAtScaleSpec, ProportionalSpec, RedSpec, StageSpec

Admit = Callable[[int, float], None]
"""Offer job ``job`` to a stage at time ``now``."""


class Router:
    """What a stage tells the rest of a multi-stage topology (single-stage runs have none)."""

    def served(self, job: int, now: float) -> None:
        """The job finished service (completed or late)."""
        raise NotImplementedError

    def failed(self, job: int, outcome: int, now: float) -> None:
        """The job left unserved (rejected, dropped, expired)."""
        raise NotImplementedError


class Slot:
    """A consumer: one job at a time, and one completion event re-armed for each."""

    __slots__ = ("event", "job")

    def __init__(self, env: simpy.Environment) -> None:
        self.event = Event(env)
        self.event._ok = True
        self.event._value = self
        self.job = -1


@dataclass
class Stage:
    """A wired stage: ``admit`` takes jobs; the rest is for the end-of-run report."""

    name: str
    concurrency: int
    admit: Admit
    queue: Queue
    free: list[Slot] = field(default_factory=list)

    @property
    def busy(self) -> int:
        return self.concurrency - len(self.free)


def wire_stage(env: simpy.Environment, spec: StageSpec, log: JobLog, *, levels: list[int],
               producer_names: list[str], aqm_rng: np.random.Generator, router: Router | None) -> Stage:
    """Build one stage's queue, consumers and event handlers; return its ``admit`` function."""
    heap = env._queue
    next_id = env._eid
    assert isinstance(next_id, counter)
    arrival, deadline, service = log.arrival, log.deadline, log.service
    start, finish, outcome, reason, producer = log.start, log.finish, log.outcome, log.reason, log.producer

    qspec = spec.queue
    limit = math.inf if qspec.capacity is None else qspec.capacity
    skip_expired = qspec.on_expired == "skip"
    drop_oldest = qspec.overflow == "drop-oldest"
    switch = qspec.switch
    queue = make_queue(qspec.discipline, levels, producer.__getitem__, length=switch.length,
                       wait=switch.wait, arrival=arrival, clock=lambda: env._now)
    push, evict = queue.push, queue.evict

    def settle(job: int, code: int, now: float, why: int = 0) -> None:
        """The job leaves without being served."""
        outcome[job] = code
        finish[job] = now
        reason[job] = why
        if router is not None:
            router.failed(job, code, now)

    def drop_early(job: int, now: float) -> None:
        settle(job, DROPPED, now, AQM)

    early_drop, head = _aqm(qspec.aqm, queue, arrival, drop_early, producer_names, aqm_rng, qspec.capacity)
    note_push = head.note_push if isinstance(head, FailAtScale) else None
    pop: Callable[[], int] = queue.pop
    head_pop = head.pop if head is not None else None

    concurrency = spec.consumers.concurrency
    free = [Slot(env) for _ in range(concurrency)]
    free.reverse()  # slot 0 is handed out first: easier to read in traces
    take_free = free.pop

    def begin(slot: Slot, job: int, now: float) -> None:
        start[job] = now
        slot.job = job
        event = slot.event
        event.callbacks = on_finish_callbacks  # SimPy iterates and drops it; reusing one list is safe
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
        outcome[job] = COMPLETED if now <= deadline[job] else LATE
        if router is not None:
            router.served(job, now)
        waiting = take(now)
        if waiting >= 0:
            begin(slot, waiting, now)
        else:
            free.append(slot)

    on_finish_callbacks: list[Callable[[Event], None]] = [on_finish]

    def admit(job: int, now: float) -> None:
        if early_drop is not None and early_drop(producer[job], len(queue), not free):
            settle(job, DROPPED, now, AQM)
        elif free:
            begin(take_free(), job, now)
        elif len(queue) < limit:
            if note_push is not None:
                note_push(now)
            push(job)
        elif drop_oldest and queue:
            settle(evict(), DROPPED, now, OVERFLOW)
            push(job)
        else:
            settle(job, REJECTED, now)

    return Stage(spec.name, concurrency, admit, queue, free)


def _aqm(spec: RedSpec | ProportionalSpec | CodelSpec | FailAtScaleSpec | None, queue: Queue, arrival: Sequence[float],
         drop: Callable[[int, float], None], producer_names: list[str], rng: np.random.Generator,
         capacity: int | None) -> tuple[Red | Proportional | None, Codel | FailAtScale | None]:
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
