"""Wiring a scenario into one SimPy environment and running it.

The life of one request, all in this file:

1. **arrive** - a producer's reusable event fires; the request gets the next id, its
   arrival time, deadline and (pre-drawn) service demand are written to the log;
2. **admit** - a free consumer starts it at once; else it joins the queue if there is
   room; else the queue's overflow rule rejects it or evicts the oldest waiting request;
3. **serve** - the consumer's reusable completion event is scheduled ``service`` seconds on;
4. **finish** - the outcome is ``completed`` if it ended by its deadline, else ``late``;
   the consumer takes the next waiting request (skipping expired ones when
   ``on_expired: skip``) or goes back to the free list.

Speed (see ``docs`` in the README): no SimPy process and no new event object per request.
Each producer and each consumer slot owns one event that is re-armed after it fires, random
numbers come in blocks, and the handlers are closures over local names, because attribute
look-ups are the main cost of a Python event loop. Deadlines need no event: an expired
request is recognised when it reaches the head of the queue.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import simpy
from simpy.events import NORMAL, Event

from sim.arrivals import Floats
from sim.distributions import Distribution
from sim.queues import make_queue
from sim.records import CHUNK, COMPLETED, DROPPED, EXPIRED, LATE, REJECTED, Columns, RequestLog
from sim.schema import ProducerSpec, Scenario

Progress = Callable[[float], None]
"""Called now and then with the current simulated time, when a progress display is wanted."""

# Sub-stream roles: each producer draws arrivals, service demands and patience from its own
# stream, so changing one (say, the queue discipline) leaves the others' numbers unchanged.
ARRIVALS, SERVICE, PATIENCE = range(3)


def stream(seeds: np.random.SeedSequence, *key: int) -> np.random.Generator:
    """An independent generator for one role, keyed by position rather than by spawn order."""
    child = np.random.SeedSequence(seeds.entropy, spawn_key=tuple(seeds.spawn_key) + key)
    return np.random.default_rng(child)


def replication_seeds(seed: int, replication: int) -> np.random.SeedSequence:
    """The seed sequence of one replication: the same whatever the number of replications."""
    return np.random.SeedSequence(seed, spawn_key=(replication,))


@dataclass(frozen=True)
class RunRecords:
    """Everything one run produced: request columns plus the state of the system at the end."""

    columns: Columns
    end_time: float
    queued_at_end: int
    busy_at_end: int
    concurrency: int
    wall_time: float


class _Source:
    """One producer at run time: its block of upcoming arrivals and their pre-drawn demands."""

    __slots__ = (
        "blocks",
        "event",
        "index",
        "length",
        "patience",
        "patience_rng",
        "position",
        "service_dist",
        "service_rng",
        "services",
        "timeout",
        "times",
    )

    def __init__(self, index: int, spec: ProducerSpec, service: Distribution,
                 seeds: np.random.SeedSequence, event: Event) -> None:
        self.index = index
        self.blocks: Iterator[Floats] = spec.arrivals.build().blocks(stream(seeds, index, ARRIVALS))
        self.service_dist = service
        self.service_rng = stream(seeds, index, SERVICE)
        self.timeout = spec.timeout
        self.patience_rng = stream(seeds, index, PATIENCE)
        self.times: list[float] = []
        self.services: list[float] = []
        self.patience: list[float] = []
        """Seconds each request of the block will wait before its client gives up; empty if forever."""
        self.position = 0
        self.length = 0
        self.event = event

    def load(self) -> bool:
        """Fetch the next block of arrivals; False when the producer is done."""
        block = next(self.blocks, None)
        if block is None or len(block) == 0:
            return False
        size = len(block)
        self.times = block.tolist()
        self.services = self.service_dist.sample(self.service_rng, size).tolist()
        if self.timeout is None:
            self.patience = []  # no deadline: the log's default is +inf
        elif isinstance(self.timeout, float):
            self.patience = [self.timeout] * size
        else:
            self.patience = self.timeout.build().sample(self.patience_rng, size).tolist()
        self.position = 0
        self.length = size
        return True


class _Slot:
    """A consumer: one request at a time, and one completion event re-armed for each."""

    __slots__ = ("event", "rid")

    def __init__(self, env: simpy.Environment) -> None:
        self.event = Event(env)
        self.event._ok = True
        self.event._value = self
        self.rid = -1


def _armed(env: simpy.Environment, value: object) -> Event:
    event = Event(env)
    event._ok = True
    event._value = value
    return event


def simulate(scenario: Scenario, seeds: np.random.SeedSequence, progress: Progress | None = None) -> RunRecords:
    """Run ``scenario`` once with the random streams of ``seeds`` and return its records."""
    wall_start = time.perf_counter()
    env = simpy.Environment()
    schedule = env.schedule
    log = RequestLog()
    arrival, deadline, service = log.arrival, log.deadline, log.service
    start, finish, outcome, producer = log.start, log.finish, log.outcome, log.producer

    spec = scenario.queue
    limit = math.inf if spec.capacity is None else spec.capacity
    skip_expired = spec.on_expired == "skip"
    drop_oldest = spec.overflow == "drop-oldest"
    levels = [p.priority or 0 for p in scenario.producers]
    queue = make_queue(spec.discipline, levels, producer.__getitem__)
    push, pop, evict = queue.push, queue.pop, queue.evict

    concurrency = scenario.consumers.concurrency
    free = [_Slot(env) for _ in range(concurrency)]
    free.reverse()  # slot 0 is handed out first: easier to read in traces
    take_free = free.pop
    several_producers = len(scenario.producers) > 1
    count = 0
    allocated = 0

    def begin(slot: _Slot, rid: int, now: float) -> None:
        start[rid] = now
        slot.rid = rid
        event = slot.event
        event.callbacks = [on_finish]
        schedule(event, NORMAL, service[rid])

    def on_finish(event: Event) -> None:
        slot: _Slot = event._value
        now = env.now
        rid = slot.rid
        finish[rid] = now
        outcome[rid] = COMPLETED if now <= deadline[rid] else LATE
        while queue:
            waiting = pop()
            if skip_expired and deadline[waiting] < now:
                outcome[waiting] = EXPIRED
                finish[waiting] = now
                continue
            begin(slot, waiting, now)
            return
        free.append(slot)

    def on_arrival(event: Event) -> None:
        nonlocal count, allocated
        source: _Source = event._value
        now = env.now
        rid = count
        count += 1
        if rid == allocated:
            log.grow()
            allocated += CHUNK
        position = source.position
        arrival[rid] = now
        service[rid] = source.services[position]
        if several_producers:
            producer[rid] = source.index
        if source.patience:
            deadline[rid] = now + source.patience[position]
        if free:
            begin(take_free(), rid, now)
        elif len(queue) < limit:
            push(rid)
        elif drop_oldest and queue:
            victim = evict()
            outcome[victim] = DROPPED
            finish[victim] = now
            push(rid)
        else:
            outcome[rid] = REJECTED
            finish[rid] = now
        position += 1
        if position == source.length:
            if not source.load():
                return
            position = 0
        source.position = position
        event.callbacks = [on_arrival]
        schedule(event, NORMAL, source.times[position] - now)

    horizon = 0.0
    for index, spec_p in enumerate(scenario.producers):
        source = _Source(index, spec_p, scenario.service_of(spec_p), seeds, _armed(env, None))
        source.event._value = source
        horizon = max(horizon, spec_p.arrivals.build().horizon)
        if source.load():
            source.event.callbacks = [on_arrival]
            schedule(source.event, NORMAL, source.times[0])

    _run(env, scenario.until, horizon, progress)

    columns = log.freeze(count)
    if scenario.until is not None:
        end_time = scenario.until
    elif count:
        end_time = float(max(np.nanmax(columns.arrival), np.nanmax(columns.finish, initial=0.0)))
    else:
        end_time = 0.0
    return RunRecords(
        columns=columns,
        end_time=end_time,
        queued_at_end=len(queue),
        busy_at_end=concurrency - len(free),
        concurrency=concurrency,
        wall_time=time.perf_counter() - wall_start,
    )


def _run(env: simpy.Environment, until: float | None, horizon: float, progress: Progress | None) -> None:
    """Run to ``until``, or until no event is left, reporting progress from a ticking event.

    The tick is one more SimPy event every ``step`` of simulated time; it takes event ids
    but never changes the relative order of the model's own events, so results are the
    same with or without it. It stops re-arming itself once it is the only event left.
    """
    if progress is not None:
        end = until if until is not None else horizon
        step = end / 200 if math.isfinite(end) and end > 0 else 1.0
        tick = _armed(env, None)

        def on_tick(event: Event) -> None:
            nonlocal step
            progress(env.now)
            if env.peek() != math.inf:
                if env.now > 2 * end:
                    step *= 2  # draining long after the horizon: tick less often
                event.callbacks = [on_tick]
                schedule(event, NORMAL, step)

        schedule = env.schedule
        tick.callbacks = [on_tick]
        schedule(tick, NORMAL, step)
    env.run(until=until)
