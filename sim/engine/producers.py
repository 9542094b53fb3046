"""Producers at run time: their upcoming arrivals, and the handlers that turn an arrival into jobs.

Speed: each producer is one reusable event (its :class:`Source`), re-armed for each
arrival; arrival times, service demands and patience are drawn ahead in NumPy blocks. Three
handlers: :func:`direct_arrivals` (a single-stage scenario: a request is its one job, the
hot path of most runs), :func:`routed_arrivals` (one job per stage the producer publishes
to) and :func:`client_arrivals` (the first attempt of a client that retries).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from heapq import heappush

import numpy as np
from simpy.events import NORMAL

from sim.engine.kernel import Handler, Kernel, Reusable
from sim.engine.records import JobLog
from sim.engine.routing import Client, Tracker
from sim.engine.stage import Stage
from sim.engine.streams import ARRIVALS, KEYS, PATIENCE, ServiceStreams, stream
from sim.model.arrivals import Floats
from sim.model.schema import ProducerSpec, Scenario


class Source:
    """One producer at run time: its block of upcoming arrivals and their pre-drawn demands.

    ``event`` is its next arrival; ``handlers`` the callbacks list it is re-armed with.
    """

    __slots__ = (
        "blocks",
        "demands",
        "event",
        "handlers",
        "index",
        "key_draw",
        "key_rng",
        "keys",
        "length",
        "patience",
        "patience_rng",
        "position",
        "service_dists",
        "service_rngs",
        "services",
        "targets",
        "timeout",
        "times",
    )

    def __init__(self, kernel: Kernel, index: int, spec: ProducerSpec, scenario: Scenario,
                 seeds: np.random.SeedSequence, service_rng: ServiceStreams) -> None:
        self.event = Reusable(kernel, self)
        self.index = index
        self.blocks: Iterator[Floats] = spec.arrivals.build().blocks(stream(seeds, index, ARRIVALS))
        self.targets = scenario.entry_stages(spec)
        self.service_dists = [scenario.service_at(stage, spec) for stage in self.targets]
        self.service_rngs = [service_rng(index, stage) for stage in self.targets]
        self.timeout = spec.timeout
        self.patience_rng = stream(seeds, index, PATIENCE)
        self.key_draw = spec.key.build() if spec.key is not None else None
        self.key_rng = stream(seeds, index, KEYS)
        self.keys: list[int] = []
        """The key of each request of the block; empty when the producer's messages have no key."""
        self.times: list[float] = []
        self.demands: list[list[float]] = []
        """Per target stage, the service demand of each request of the block."""
        self.services: list[float] = []
        """The demands at the first target (the only one in single-stage scenarios)."""
        self.patience: list[float] = []
        """Seconds each request of the block waits before its client gives up; empty if forever."""
        self.position = 0
        self.length = 0
        self.handlers: list[Handler] = []

    def load(self) -> bool:
        """Fetch the next block of arrivals; False when the producer is done."""
        block = next(self.blocks, None)
        if block is None or len(block) == 0:
            return False
        size = len(block)
        self.times = block.tolist()
        self.demands = [d.sample(rng, size).tolist() for d, rng in zip(self.service_dists, self.service_rngs,
                                                                        strict=True)]
        self.services = self.demands[0]
        if self.timeout is None:
            self.patience = []  # no deadline: the log's default is +inf
        elif isinstance(self.timeout, float):
            self.patience = [self.timeout] * size
        else:
            self.patience = self.timeout.build().sample(self.patience_rng, size).tolist()
        if self.key_draw is not None:
            self.keys = self.key_draw.sample(self.key_rng, size).tolist()
        self.position = 0
        self.length = size
        return True


def start_producers(kernel: Kernel, scenario: Scenario, seeds: np.random.SeedSequence,
                    service_rng: ServiceStreams, on_arrival: Handler) -> float:
    """Schedule every producer's first arrival; return when the last producer stops (its horizon)."""
    handlers = [on_arrival]  # SimPy iterates a callbacks list and drops it: one list serves every arrival
    horizon = 0.0
    for index, producer in enumerate(scenario.producers):
        source = Source(kernel, index, producer, scenario, seeds, service_rng)
        source.handlers = handlers
        horizon = max(horizon, producer.arrivals.build().horizon)
        if source.load():
            kernel.rearm(source.event, handlers, source.times[0])
    return horizon


def direct_arrivals(kernel: Kernel, jobs: JobLog, stage: Stage,
                    several_producers: bool) -> tuple[Handler, Callable[[], int]]:
    """The arrival handler of a single-stage scenario (a request is its one job, same id), and its counter."""
    heap, ids = kernel.heap, kernel.ids
    arrival, deadline, service, producer = jobs.arrival, jobs.deadline, jobs.service, jobs.producer
    admit = stage.admit
    count = 0

    def on_arrival(event: Reusable) -> None:
        nonlocal count
        source: Source = event.owner
        now = event.due
        job = count
        count += 1
        if job == jobs.allocated:
            jobs.grow()
        position = source.position
        arrival[job] = now
        service[job] = source.services[position]
        if several_producers:
            producer[job] = source.index
        if source.patience:
            deadline[job] = now + source.patience[position]
        admit(job, now)
        # Re-arm the producer's event for its next arrival (as _arrivals does, inlined here).
        position += 1
        if position == source.length:
            if not source.load():
                return
            position = 0
        source.position = position
        due = source.times[position]
        event.callbacks = source.handlers
        event.due = due
        heappush(heap, (due, NORMAL, next(ids), event))

    return on_arrival, lambda: count


def keyed_arrivals(kernel: Kernel, jobs: JobLog, stage: Stage) -> tuple[Handler, Callable[[], int]]:
    """The arrival handler of a single-stage scenario whose messages carry keys (not the hot path of plain runs)."""
    arrival, deadline, service, producer, key = jobs.arrival, jobs.deadline, jobs.service, jobs.producer, jobs.key
    admit = stage.admit
    count = 0

    def accept(source: Source, position: int, now: float) -> None:
        nonlocal count
        job = count
        count += 1
        if job == jobs.allocated:
            jobs.grow()
        arrival[job] = now
        service[job] = source.services[position]
        producer[job] = source.index
        if source.patience:
            deadline[job] = now + source.patience[position]
        key[job] = source.keys[position] if source.keys else -1
        admit(job, now)

    return _arrivals(kernel, accept), lambda: count


def client_arrivals(kernel: Kernel, client: Client) -> Handler:
    """The arrival handler when producers retry: each request's first attempt."""

    def accept(source: Source, position: int, now: float) -> None:
        client.next_key = source.keys[position] if source.keys else -1
        client.start(source.index, now, source.patience[position] if source.patience else math.inf,
                     source.services[position])

    return _arrivals(kernel, accept)


def routed_arrivals(kernel: Kernel, router: Tracker) -> Handler:
    """The arrival handler of a multi-stage scenario: one job per stage the producer publishes to."""

    def accept(source: Source, position: int, now: float) -> None:
        deadline = now + source.patience[position] if source.patience else math.inf
        router.next_key = source.keys[position] if source.keys else -1
        rid = router.new_request(source.index, now, deadline, len(source.targets))
        for offset, stage in enumerate(source.targets):
            job = router.new_job(rid, stage, source.index, now, deadline, source.demands[offset][position])
            router.stages[stage].admit(job, now)

    return _arrivals(kernel, accept)


def _arrivals(kernel: Kernel, accept: Callable[[Source, int, float], None]) -> Handler:
    """An arrival handler: ``accept`` the request, then re-arm the producer's event for the next.

    (:func:`direct_arrivals` inlines the same steps: it is the hot path of every single-stage run.)
    """
    heap, ids = kernel.heap, kernel.ids

    def on_arrival(event: Reusable) -> None:
        source: Source = event.owner
        position = source.position
        accept(source, position, event.due)
        position += 1
        if position == source.length:
            if not source.load():
                return
            position = 0
        source.position = position
        due = source.times[position]
        event.callbacks = source.handlers
        event.due = due
        heappush(heap, (due, NORMAL, next(ids), event))

    return on_arrival
