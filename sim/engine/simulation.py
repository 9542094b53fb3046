"""Wiring a scenario into one SimPy environment and running it.

Producers create requests (:mod:`sim.engine.producers`); each request becomes a job at each
stage it is published to (:mod:`sim.engine.stage` has the life of a job). In a single-stage
scenario a request *is* its one job. With several stages a :class:`~sim.engine.routing.Router`
follows each request through the topology (and with retries a
:class:`~sim.engine.routing.Client` follows its attempts): when a job finishes it publishes a
copy to every stage in ``then`` (fan-out), and a request is resolved when every job it spawned
has left; its deadline covers the whole path.

Every random number comes from a stream named by its role (:mod:`sim.engine.streams`), and
every event goes through :mod:`sim.engine.kernel`, the only module that touches SimPy's
internals. :func:`simulate` returns the :class:`~sim.engine.records.RunRecords` of the run.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.engine import broker, queue_stage
from sim.engine.autoscaled import AutoscaledPool
from sim.engine.brokers import wiring as brokers
from sim.engine.consumers import Execution, Pool, build_pool
from sim.engine.faults import schedule_faults
from sim.engine.folding import Folder
from sim.engine.kept import Kept
from sim.engine.kernel import Handler, Kernel, Reusable
from sim.engine.producers import client_arrivals, direct_arrivals, keyed_arrivals, routed_arrivals, start_producers
from sim.engine.records import JobLog, RequestLog, RunRecords, resolved_share
from sim.engine.routing import Client, Router, Tracker
from sim.engine.stage import Listener, Stage
from sim.engine.streams import (
    PATIENCE,
    RETRIES,
    SERVICE,
    ServiceStreams,
    StageStreams,
    replication_seeds,
    service_streams,
    stage_streams,
    stream,
)
from sim.model.distributions import Sampler
from sim.model.fault_specs import slowdowns_of
from sim.model.keeping import expected_rows, requests_kept
from sim.model.schema import ProducerSpec, Scenario, StageSpec

__all__ = ["ClockCallback", "RunRecords", "replication_seeds", "simulate", "wire_stage"]
# RunRecords and replication_seeds live in records and streams; they are named here too because
# a caller runs one replication as ``simulate(scenario, replication_seeds(seed, r))``.

ClockCallback = Callable[[float, float], None]
"""Called now and then, when a progress display is wanted, with the current simulated time and the
share of the run done (0..1): simulated time over ``until``, else arrivals and resolved requests."""


@dataclass
class _Wired:
    """A scenario wired into a kernel, before its producers start."""

    jobs: JobLog
    stages: list[Stage]
    tracker: Tracker | None
    on_arrival: Handler
    job_count: Callable[[], int]
    service_rng: ServiceStreams
    folder: Folder | None = None
    """With ``report.requests: none | sample N``: folds final rows into streaming statistics as the run goes."""


def simulate(scenario: Scenario, seeds: np.random.SeedSequence, progress: ClockCallback | None = None) -> RunRecords:
    """Run ``scenario`` once with the random streams of ``seeds`` and return its records."""
    wall_start = time.perf_counter()
    kernel = Kernel()
    wired = _wire(kernel, scenario, seeds)
    kept = requests_kept(scenario).kept
    if kept is not None:
        wired.folder = Folder(scenario, kernel, wired.jobs, wired.stages, wired.tracker, wired.job_count,
                              Kept(kept, seeds, wired.tracker is not None, wired.jobs.metered))
    horizon = start_producers(kernel, scenario, seeds, wired.service_rng, wired.on_arrival)
    if scenario.faults:
        schedule_faults(kernel, scenario, wired.stages, seeds, horizon)
    collecting = gc.isenabled()
    gc.disable()  # the run allocates millions of small acyclic tuples; scanning them for cycles is wasted time
    try:
        share = _share_done(scenario.until, horizon, wired) if progress is not None else None
        _run(kernel, scenario.until, horizon, progress, share)
    finally:
        if collecting:
            gc.enable()
    return _records(scenario, wired, wall_start)


def _wire(kernel: Kernel, scenario: Scenario, seeds: np.random.SeedSequence) -> _Wired:
    """Build the job log, the request tracker if any, every stage and the arrival handler."""
    specs = [_with_slow_periods(scenario, index, spec) for index, spec in enumerate(scenario.stage_list)]
    names = [p.name for p in scenario.producers]
    retrying = any(p.retry is not None for p in scenario.producers)
    routed = retrying or len(specs) > 1 or any(len(scenario.entry_stages(p)) > 1 for p in scenario.producers)
    metered = retrying or any(_metered(spec) for spec in specs) or any(p.failure for p in scenario.producers)
    keyed = any(p.key is not None for p in scenario.producers)
    rows = expected_rows(scenario)
    jobs = JobLog(routed, metered=metered, expected_rows=rows, keyed=keyed)
    service_rng = service_streams(seeds)
    streaming = requests_kept(scenario).kept is not None
    tracker = _tracker(kernel, scenario, seeds, jobs, service_rng, RequestLog(streaming, rows)) if routed else None
    failures = [p.failure.probability if p.failure is not None else 0.0 for p in scenario.producers]
    stages = [wire_stage(kernel, spec, jobs, levels=[p.priority or 0 for p in scenario.producers],
                         producer_names=names, producer_failure=failures, streams=stage_streams(seeds, index),
                         listener=tracker, index=index)
              for index, spec in enumerate(specs)]
    on_arrival: Handler
    if isinstance(tracker, Client):
        on_arrival, job_count = client_arrivals(kernel, tracker), tracker.jobs_created
    elif tracker is not None:
        on_arrival, job_count = routed_arrivals(kernel, tracker), tracker.jobs_created
    elif keyed:
        on_arrival, job_count = keyed_arrivals(kernel, jobs, stages[0])
    else:
        on_arrival, job_count = direct_arrivals(kernel, jobs, stages[0], len(names) > 1)
    if tracker is not None:
        tracker.stages = stages
    return _Wired(jobs, stages, tracker, on_arrival, job_count, service_rng)


def _records(scenario: Scenario, wired: _Wired, wall_start: float) -> RunRecords:
    """The run's records: columns frozen to NumPy (or streamed), the state at the end, the environments."""
    stages, tracker, folder = wired.stages, wired.tracker, wired.folder
    queued_at_end = sum(stage.waiting() for stage in stages)  # before the log is frozen (and emptied)
    busy_at_end = sum(stage.serving() for stage in stages)
    requested = tracker.request_count if tracker is not None else wired.job_count()
    tally = None
    if folder is not None:
        end_time = _end_time(scenario, requested, folder.latest_time(), stages)
        tally = folder.finish(end_time)
        columns, job_columns = folder.kept.columns()
        wired.jobs.store.close()
        if tracker is not None:
            tracker.requests.store.close()
    else:
        job_columns = wired.jobs.freeze(wired.job_count())
        columns = tracker.requests.freeze(tracker.request_count, job_columns) if tracker is not None else job_columns
        latest = float(max(np.nanmax(job_columns.arrival), np.nanmax(job_columns.finish, initial=0.0))) if len(
            job_columns) else 0.0
        end_time = _end_time(scenario, requested, latest, stages)
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
        environments=tuple(stage.pool.lifespans(end_time) for stage in stages),
        stage_priced=tuple(stage.priced for stage in stages),
        stage_memory_gb=tuple(spec.consumers.memory_gb for spec in scenario.stage_list),
        invocations=tuple(stage.invocations for stage in stages),
        lag_events=tuple(stage.lag_events() if stage.lag_events is not None else None for stage in stages),
        scaling=tuple(stage.pool.trace() if isinstance(stage.pool, AutoscaledPool) else None for stage in stages),
        tally=tally,
    )


def _end_time(scenario: Scenario, requested: int, latest: float, stages: list[Stage]) -> float:
    """``until``, else the last arrival, finish or invocation end (0 for a run without requests)."""
    if scenario.until is not None:
        return scenario.until
    if requested == 0:
        return 0.0
    return float(max(latest, *(stage.last_activity() for stage in stages)))


def wire_stage(kernel: Kernel, spec: StageSpec, log: JobLog, *, levels: list[int],
               producer_names: list[str], producer_failure: list[float], streams: StageStreams,
               listener: Listener | None, index: int = 0) -> Stage:
    """Build the queue, consumers and event handlers of stage number ``index``."""
    pool: Pool = (AutoscaledPool(kernel, spec.consumers, streams.cold_start) if spec.consumers.autoscale is not None
                  else build_pool(kernel, spec.consumers, streams.cold_start))
    execution = Execution(spec.consumers, streams.failure, producer_failure)
    if spec.queue.delivery is not None:
        return broker.wire(kernel, spec, log, pool=pool, execution=execution, listener=listener)
    if spec.queue.broker is not None:
        return brokers.wire(kernel, spec, log, pool=pool, execution=execution, listener=listener, hops=streams.hops)
    return queue_stage.wire(kernel, spec, log, pool=pool, execution=execution, levels=levels,
                            producer_names=producer_names, aqm_rng=streams.aqm, listener=listener, index=index)


def _metered(spec: StageSpec) -> bool:
    """Whether a stage needs the usage columns (anything beyond a plain worker pool)."""
    consumers, queue = spec.consumers, spec.queue
    return (consumers.priced or queue.delivery is not None or queue.broker is not None
            or consumers.failure is not None or consumers.timeout is not None or bool(consumers.slowdowns))


def _with_slow_periods(scenario: Scenario, index: int, spec: StageSpec) -> StageSpec:
    """The stage with the timeline's ``slowdown`` faults added to its consumers' slowdowns."""
    slow = slowdowns_of(scenario.faults, index, [stage.name for stage in scenario.stage_list])
    if not slow:
        return spec
    consumers = spec.consumers.model_copy(update={"slowdowns": [*spec.consumers.slowdowns, *slow]})
    return spec.model_copy(update={"consumers": consumers})


def _tracker(kernel: Kernel, scenario: Scenario, seeds: np.random.SeedSequence, jobs: JobLog,
             service_rng: ServiceStreams, requests: RequestLog) -> Tracker:
    """The request-level listener: a client that retries, or a router through the stages."""
    producers = scenario.producers
    if any(p.retry is not None for p in producers):
        services = [Sampler(scenario.service_at(0, p), stream(seeds, i, SERVICE, 0, RETRIES)) for i, p in
                    enumerate(producers)]
        patience = [_patience(p, stream(seeds, i, PATIENCE, RETRIES)) for i, p in enumerate(producers)]
        return Client(kernel, jobs, requests, [p.retry for p in producers], services, patience,
                      [stream(seeds, i, RETRIES) for i in range(len(producers))])
    specs = scenario.stage_list
    by_name = {spec.name: index for index, spec in enumerate(specs)}
    samplers = [[Sampler(scenario.service_at(s, p), service_rng(pi, s)) for pi, p in enumerate(producers)]
                for s in range(len(specs))]
    return Router(jobs, requests, [[by_name[t] for t in spec.then] for spec in specs], samplers)


def _patience(producer: ProducerSpec, rng: np.random.Generator) -> Callable[[], float] | None:
    """How long a retry attempt waits before its client gives up (None: forever)."""
    timeout = producer.timeout
    if timeout is None:
        return None
    if isinstance(timeout, float):
        return lambda: timeout
    return Sampler(timeout.build(), rng)


def _share_done(until: float | None, horizon: float, wired: _Wired) -> Callable[[float], float]:
    """The share of the run done at ``now``: of ``until``, else (a request costs about as much to arrive
    as to be resolved) arrivals' share of their horizon x (1 + share of arrived requests resolved) / 2."""
    if until is not None:
        return lambda now: min(1.0, now / until) if until > 0 else 1.0
    tracker = wired.tracker

    def share(now: float) -> float:
        arrived = min(1.0, now / horizon) if 0 < horizon < math.inf else 1.0
        log, count = (tracker.requests, tracker.request_count) if tracker is not None else (wired.jobs,
                                                                                             wired.job_count())
        return arrived * (1 + resolved_share(log, count)) / 2

    return share


def _run(kernel: Kernel, until: float | None, horizon: float, progress: ClockCallback | None,
         share: Callable[[float], float] | None) -> None:
    """Run to ``until``, or until no event is left, reporting progress from a ticking event.

    The tick is one more event every ``step`` of simulated time (adapted to report every 0.1-0.4 s
    of wall time); it takes event ids but never changes the relative order of the model's own
    events, so results are the same with or without it. It stops once it is the only event left.
    """
    if progress is not None and share is not None:
        end = until if until is not None else horizon
        step = max(end / 200, 1e-6) if math.isfinite(end) and end > 0 else 1.0  # > 0: a zero step never ends
        tick = Reusable(kernel)
        last = time.perf_counter()

        def on_tick(event: Reusable) -> None:
            nonlocal step, last
            now = kernel.now()
            progress(now, share(now))
            if kernel.peek() != math.inf:
                wall = time.perf_counter()
                if wall - last < 0.1:
                    step *= 2
                elif wall - last > 0.4:
                    step = max(step / 2, 1e-9)
                last = wall
                kernel.rearm(tick, [on_tick], now + step)

        kernel.rearm(tick, [on_tick], step)
    kernel.run(until)
