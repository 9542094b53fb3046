"""Wiring a scenario into one SimPy environment and running it.

Producers create requests; each request becomes a job at each stage it is published to
(:mod:`sim.engine.stage` has the life of a job). In a single-stage scenario a request *is* its one
job. With several stages a :class:`~sim.engine.routing.Router` follows each request through the
topology (and with retries a :class:`~sim.engine.routing.Client` follows its attempts): when a job
finishes it publishes a copy to every stage in ``then`` (fan-out), and a request is resolved
when every job it spawned has left; its deadline covers the whole path.

Speed: one reusable SimPy event per producer, re-armed for each arrival; arrival times,
service demands and patience are drawn ahead in NumPy blocks (see :mod:`sim.engine.stage` for the
consumers' side).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from heapq import heappush

import numpy as np
import simpy
from simpy.events import NORMAL, Event

from sim.engine.broker import wire_broker
from sim.engine.consumers import Execution, make_pool
from sim.engine.queue_stage import wire_queue
from sim.engine.records import Columns, JobLog, RequestLog
from sim.engine.routing import Client, Router, Tracker
from sim.engine.stage import Listener, Stage, StageStreams
from sim.model.arrivals import Floats
from sim.model.distributions import Sampler
from sim.model.schema import ProducerSpec, Scenario, StageSpec

Progress = Callable[[float], None]
"""Called now and then with the current simulated time, when a progress display is wanted."""

# Sub-stream roles: each producer draws arrivals, service demands (per stage) and patience
# from its own stream, so changing one thing (the queue discipline, another producer) leaves
# the other numbers unchanged: common random numbers across compared scenarios.
ARRIVALS, SERVICE, PATIENCE, RETRIES = range(4)
COLD_STARTS, FAILURES = range(1, 3)
STAGE_STREAMS = 1_000_000
"""Spawn-key namespace for stage-owned streams (AQM drop decisions): ``(STAGE_STREAMS + stage,)``."""


def stream(seeds: np.random.SeedSequence, *key: int) -> np.random.Generator:
    """An independent generator for one role, keyed by position rather than by spawn order."""
    child = np.random.SeedSequence(seeds.entropy, spawn_key=tuple(seeds.spawn_key) + key)
    return np.random.default_rng(child)


def replication_seeds(seed: int, replication: int) -> np.random.SeedSequence:
    """The seed sequence of one replication: the same whatever the number of replications."""
    return np.random.SeedSequence(seed, spawn_key=(replication,))


@dataclass(frozen=True)
class RunRecords:
    """Everything one run produced: request and job columns plus the state at the end.

    ``columns`` are end-to-end requests; ``jobs`` are stage visits (the same object when
    the scenario has one stage). ``queued_at_end`` and ``busy_at_end`` count jobs.
    """

    columns: Columns
    jobs: Columns
    end_time: float
    queued_at_end: int
    busy_at_end: int
    concurrency: int
    wall_time: float
    stage_names: tuple[str, ...] = ("main",)
    stage_concurrency: tuple[int, ...] = ()
    environments: tuple[tuple[list[float], list[float]], ...] = ()
    """Per stage, when each execution environment was created and reclaimed (NaN: alive at the end)."""
    stage_priced: tuple[bool, ...] = ()
    stage_memory_gb: tuple[float, ...] = ()
    invocations: tuple[tuple[list[float], list[float]] | None, ...] = ()
    """Per brokered stage, start and end of each invocation (busy time is counted from these)."""

    @property
    def brokered_stages(self) -> list[int]:
        """Indexes of the stages fed by broker delivery (the ones with invocation records)."""
        return [index for index, calls in enumerate(self.invocations) if calls is not None]


class _Source:
    """One producer at run time: its block of upcoming arrivals and their pre-drawn demands."""

    __slots__ = (
        "blocks",
        "callbacks",
        "demands",
        "index",
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

    def __init__(self, index: int, spec: ProducerSpec, scenario: Scenario, seeds: np.random.SeedSequence,
                 service_rng: Callable[[int, int], np.random.Generator]) -> None:
        self.index = index
        self.blocks: Iterator[Floats] = spec.arrivals.build().blocks(stream(seeds, index, ARRIVALS))
        self.targets = scenario.entry_stages(spec)
        self.service_dists = [scenario.service_at(stage, spec) for stage in self.targets]
        self.service_rngs = [service_rng(index, stage) for stage in self.targets]
        self.timeout = spec.timeout
        self.patience_rng = stream(seeds, index, PATIENCE)
        self.times: list[float] = []
        self.demands: list[list[float]] = []
        """Per target stage, the service demand of each request of the block."""
        self.services: list[float] = []
        """The demands at the first target (the only one in single-stage scenarios)."""
        self.patience: list[float] = []
        """Seconds each request of the block waits before its client gives up; empty if forever."""
        self.position = 0
        self.length = 0
        self.callbacks: list[Callable[[Event], None]] = []

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
        self.position = 0
        self.length = size
        return True


def simulate(scenario: Scenario, seeds: np.random.SeedSequence, progress: Progress | None = None) -> RunRecords:
    """Run ``scenario`` once with the random streams of ``seeds`` and return its records."""
    wall_start = time.perf_counter()
    env = simpy.Environment()
    heap, next_id = env._queue, env._eid
    specs = scenario.stage_list
    names = [p.name for p in scenario.producers]
    retrying = any(p.retry is not None for p in scenario.producers)
    routed = retrying or len(specs) > 1 or any(len(scenario.entry_stages(p)) > 1 for p in scenario.producers)
    metered = retrying or any(_metered(spec) for spec in specs) or any(p.failure for p in scenario.producers)
    jobs = JobLog(routed, metered=metered)
    service_rng = _service_streams(seeds)
    tracker = _tracker(env, scenario, seeds, jobs, service_rng) if routed else None
    failures = [p.failure.probability if p.failure is not None else 0.0 for p in scenario.producers]
    stages = [wire_stage(env, spec, jobs, levels=[p.priority or 0 for p in scenario.producers],
                         producer_names=names, producer_failure=failures, streams=_stage_streams(seeds, index),
                         listener=tracker)
              for index, spec in enumerate(specs)]
    if isinstance(tracker, Client):
        on_arrival = _client_arrivals(env, tracker)
        job_count = tracker.jobs_created
    elif tracker is not None:
        on_arrival = _routed_arrivals(env, tracker)
        job_count = tracker.jobs_created
    else:
        on_arrival, job_count = _direct_arrivals(env, jobs, stages[0], len(names) > 1)
    if tracker is not None:
        tracker.stages = stages
    callbacks = [on_arrival]  # SimPy iterates a callbacks list and drops it: one list serves every arrival
    horizon = 0.0
    for index, producer in enumerate(scenario.producers):
        event = Event(env)
        event._ok = True
        source = _Source(index, producer, scenario, seeds, service_rng)
        source.callbacks = callbacks
        event._value = source
        horizon = max(horizon, producer.arrivals.build().horizon)
        if source.load():
            event.callbacks = callbacks
            heappush(heap, (source.times[0], NORMAL, next(next_id), event))

    collecting = gc.isenabled()
    gc.disable()  # the run allocates millions of small acyclic tuples; scanning them for cycles is wasted time
    try:
        _run(env, scenario.until, horizon, progress)
    finally:
        if collecting:
            gc.enable()

    queued_at_end = sum(stage.waiting() for stage in stages)  # before the log is frozen (and emptied)
    busy_at_end = sum(stage.serving() for stage in stages)
    job_columns = jobs.freeze(job_count())
    if tracker is not None:
        columns = tracker.requests.freeze(tracker.request_count, job_columns)
    else:
        columns = job_columns
    if scenario.until is not None:
        end_time = scenario.until
    elif len(columns):
        end_time = float(max(np.nanmax(job_columns.arrival), np.nanmax(job_columns.finish, initial=0.0),
                             *(stage.last_activity() for stage in stages)))
    else:
        end_time = 0.0
    return RunRecords(
        columns=columns,
        jobs=job_columns,
        end_time=end_time,
        queued_at_end=queued_at_end,
        busy_at_end=busy_at_end,
        concurrency=sum(stage.concurrency for stage in stages),
        wall_time=time.perf_counter() - wall_start,
        stage_names=tuple(stage.name for stage in stages),
        stage_concurrency=tuple(stage.concurrency for stage in stages),
        environments=tuple(stage.pool.lifetimes(end_time) for stage in stages),
        stage_priced=tuple(stage.priced for stage in stages),
        stage_memory_gb=tuple(spec.consumers.memory_gb for spec in specs),
        invocations=tuple(stage.invocations for stage in stages),
    )


def wire_stage(env: simpy.Environment, spec: StageSpec, log: JobLog, *, levels: list[int],
               producer_names: list[str], producer_failure: list[float], streams: StageStreams,
               listener: Listener | None) -> Stage:
    """Build one stage's queue, consumers and event handlers."""
    pool = make_pool(env, spec.consumers, streams.cold_start)
    execution = Execution(spec.consumers, streams.failure, producer_failure)
    if spec.queue.delivery is not None:
        return wire_broker(env, spec, log, pool=pool, execution=execution, listener=listener)
    return wire_queue(env, spec, log, pool=pool, execution=execution, levels=levels,
                       producer_names=producer_names, aqm_rng=streams.aqm, listener=listener)


def _metered(spec: StageSpec) -> bool:
    """Whether a stage needs the usage columns (anything beyond a plain worker pool)."""
    consumers = spec.consumers
    return (consumers.priced or spec.queue.delivery is not None or consumers.failure is not None
            or consumers.timeout is not None or bool(consumers.slowdowns))


def _stage_streams(seeds: np.random.SeedSequence, index: int) -> StageStreams:
    base = STAGE_STREAMS + index
    return StageStreams(aqm=stream(seeds, base), cold_start=stream(seeds, base, COLD_STARTS),
                        failure=stream(seeds, base, FAILURES))


def _service_streams(seeds: np.random.SeedSequence) -> Callable[[int, int], np.random.Generator]:
    """The service-demand generator of each (producer, stage), made once and shared.

    A producer's demands at a stage come from one generator whether the request was
    published there directly or passed on by another stage, so the two never repeat each
    other's draws.
    """
    made: dict[tuple[int, int], np.random.Generator] = {}

    def service_rng(producer: int, stage: int) -> np.random.Generator:
        if (producer, stage) not in made:
            made[producer, stage] = stream(seeds, producer, SERVICE, stage)
        return made[producer, stage]

    return service_rng


def _tracker(env: simpy.Environment, scenario: Scenario, seeds: np.random.SeedSequence, jobs: JobLog,
             service_rng: Callable[[int, int], np.random.Generator]) -> Tracker:
    """The request-level listener: a client that retries, or a router through the stages."""
    producers = scenario.producers
    if any(p.retry is not None for p in producers):
        services = [Sampler(scenario.service_at(0, p), stream(seeds, i, SERVICE, 0, RETRIES)) for i, p in
                    enumerate(producers)]
        patience = [_patience(p, stream(seeds, i, PATIENCE, RETRIES)) for i, p in enumerate(producers)]
        return Client(env, jobs, RequestLog(), [p.retry for p in producers], services, patience,
                      [stream(seeds, i, RETRIES) for i in range(len(producers))])
    specs = scenario.stage_list
    by_name = {spec.name: index for index, spec in enumerate(specs)}
    samplers = [[Sampler(scenario.service_at(s, p), service_rng(pi, s)) for pi, p in enumerate(producers)]
                for s in range(len(specs))]
    return Router(jobs, RequestLog(), [[by_name[t] for t in spec.then] for spec in specs], samplers)


def _patience(producer: ProducerSpec, rng: np.random.Generator) -> Callable[[], float] | None:
    """How long a retry attempt waits before its client gives up (None: forever)."""
    timeout = producer.timeout
    if timeout is None:
        return None
    if isinstance(timeout, float):
        return lambda: timeout
    return Sampler(timeout.build(), rng)


def _direct_arrivals(env: simpy.Environment, jobs: JobLog, stage: Stage,
                     several_producers: bool) -> tuple[Callable[[Event], None], Callable[[], int]]:
    """The arrival handler of a single-stage scenario (a request is its one job, same id), and its counter."""
    heap, next_id = env._queue, env._eid
    arrival, deadline, service, producer = jobs.arrival, jobs.deadline, jobs.service, jobs.producer
    admit = stage.admit
    count = 0

    def on_arrival(event: Event) -> None:
        nonlocal count
        source: _Source = event._value
        now: float = env._now
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
        event.callbacks = source.callbacks
        heappush(heap, (source.times[position], NORMAL, next(next_id), event))

    return on_arrival, lambda: count


def _client_arrivals(env: simpy.Environment, client: Client) -> Callable[[Event], None]:
    """The arrival handler when producers retry: each request's first attempt."""

    def accept(source: _Source, position: int, now: float) -> None:
        client.start(source.index, now, source.patience[position] if source.patience else math.inf,
                     source.services[position])

    return _arrivals(env, accept)


def _routed_arrivals(env: simpy.Environment, router: Tracker) -> Callable[[Event], None]:
    """The arrival handler of a multi-stage scenario: one job per stage the producer publishes to."""

    def accept(source: _Source, position: int, now: float) -> None:
        deadline = now + source.patience[position] if source.patience else math.inf
        rid = router.new_request(source.index, now, deadline, len(source.targets))
        for offset, stage in enumerate(source.targets):
            job = router.new_job(rid, stage, source.index, now, deadline, source.demands[offset][position])
            router.stages[stage].admit(job, now)

    return _arrivals(env, accept)


def _arrivals(env: simpy.Environment, accept: Callable[[_Source, int, float], None]) -> Callable[[Event], None]:
    """An arrival handler: ``accept`` the request, then re-arm the producer's event for the next.

    (``_direct_arrivals`` inlines the same steps: it is the hot path of every single-stage run.)
    """
    heap, next_id = env._queue, env._eid

    def on_arrival(event: Event) -> None:
        source: _Source = event._value
        position = source.position
        accept(source, position, env._now)
        position += 1
        if position == source.length:
            if not source.load():
                return
            position = 0
        source.position = position
        event.callbacks = source.callbacks
        heappush(heap, (source.times[position], NORMAL, next(next_id), event))

    return on_arrival


def _run(env: simpy.Environment, until: float | None, horizon: float, progress: Progress | None) -> None:
    """Run to ``until``, or until no event is left, reporting progress from a ticking event.

    The tick is one more SimPy event every ``step`` of simulated time; it takes event ids
    but never changes the relative order of the model's own events, so results are the
    same with or without it. It stops re-arming itself once it is the only event left.
    """
    if progress is not None:
        end = until if until is not None else horizon
        step = max(end / 200, 1e-6) if math.isfinite(end) and end > 0 else 1.0  # > 0: a zero step never ends
        tick = Event(env)
        tick._ok = True

        def on_tick(event: Event) -> None:
            nonlocal step
            progress(env.now)
            if env.peek() != math.inf:
                if env.now > 2 * end:
                    step *= 2  # draining long after the horizon: tick less often
                event.callbacks = [on_tick]
                env.schedule(event, NORMAL, step)

        tick.callbacks = [on_tick]
        env.schedule(tick, NORMAL, step)
    env.run(until=until)
