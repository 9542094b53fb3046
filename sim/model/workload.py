"""How much work a scenario asks for, before anything runs: requests, jobs, attempts, backlog.

A run keeps every request (and every job: a request's visit to a stage) in memory until it is
summarised, so its size is known from the validated scenario alone: the expected number of
arrivals of each producer (rate x window, ``count``, a burst's ``count``, a trace's length,
a piecewise rate's integral, all cut at ``until``), times the stage visits each request
makes (fan-out multiplies them), times the attempts a retrying client may make (an upper
bound: every attempt is assumed to fail but the last) or the receives of a brokered message
(redeliveries bounded by ``max_receives``, else by how many visibility timeouts fit in the
retention period or the run). :mod:`sim.experiments.budget` turns these counts into memory
and time.

The backlog is what an unbounded entry queue holds when the arrivals stop, if they bring
more work than its consumers can do meanwhile: ``(lambda - c / E[S]) x duration``, less the
``c`` requests in service (client
patience is ignored: an upper bound). ``qsim check`` shows it: without ``until``, the run
goes on until it is served.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from functools import cache

from sim.model.schema import ProducerSpec, Scenario, StageSpec
from sim.model.specs import BurstSpec, PiecewiseSpec, TraceSpec


@dataclass(frozen=True)
class Workload:
    """Expected counts for one run of a scenario (upper bounds where retries or redeliveries are involved)."""

    requests: float
    """Arrivals expected before ``until``."""
    jobs: float
    """Stage visits of requests in stages that take requests from their queue (each attempt one)."""
    client_attempts: float
    """Of ``jobs``, those made by a retrying client (the client costs more per attempt)."""
    receives: float
    """Receives of messages in brokered stages (a message redelivered counts once per receive)."""
    backlog: float
    """Requests waiting in unbounded entry queues when the arrivals stop (0 when capacity keeps up)."""


def arrivals_window(producer: ProducerSpec, until: float | None) -> tuple[float, float]:
    """The span ``[first, last)`` in which ``producer``'s requests arrive, cut at ``until``."""
    spec = producer.arrivals
    end = math.inf if until is None else until
    if isinstance(spec, BurstSpec):
        return spec.at, min(end, spec.at + spec.over)
    if isinstance(spec, TraceSpec):
        times = spec.times
        return (times[0], min(end, times[-1])) if times else (0.0, 0.0)
    if isinstance(spec, PiecewiseSpec):
        return spec.rates[0][0], min(end, spec.stop if spec.stop is not None else math.inf)
    return spec.start, min(end, spec.stop if spec.stop is not None else math.inf)


def expected_arrivals(producer: ProducerSpec, until: float | None) -> float:
    """The number of requests ``producer`` is expected to send before ``until`` (``inf`` if unbounded)."""
    spec = producer.arrivals
    begin, end = arrivals_window(producer, until)
    if isinstance(spec, BurstSpec):
        if until is not None and spec.at >= until:
            return 0.0
        if spec.over == 0:
            return float(spec.count)
        return spec.count * min(1.0, max(0.0, end - begin) / spec.over)
    if isinstance(spec, TraceSpec):
        times = spec.times
        return float(len(times) if until is None else bisect.bisect_left(times, until))
    if isinstance(spec, PiecewiseSpec):
        ends = [t for t, _ in spec.rates[1:]] + [math.inf]
        total = 0.0
        for (start, rate), stop in zip(spec.rates, ends, strict=True):
            span = min(stop, end) - start
            if span > 0 and rate > 0:
                total += rate * span
    else:
        total = spec.rate * max(0.0, end - begin) if end > begin else 0.0
    return min(total, float(spec.count)) if spec.count is not None else total


def _visits(scenario: Scenario) -> dict[int, list[float]]:
    """Per entry stage: how many times a request entering there visits each stage (fan-out multiplies)."""
    stages = scenario.stage_list
    names = {stage.name: index for index, stage in enumerate(stages)}

    @cache
    def from_stage(index: int) -> tuple[float, ...]:
        counts = [0.0] * len(stages)
        counts[index] = 1.0
        for target in stages[index].then:
            for position, count in enumerate(from_stage(names[target])):
                counts[position] += count
        return tuple(counts)

    return {index: list(from_stage(index)) for index in range(len(stages))}


def _receives_per_message(stage: StageSpec, producer: ProducerSpec, until: float | None) -> float:
    """Expected receives of one message: 1 + redeliveries of failed attempts, within their bound."""
    delivery = stage.queue.delivery
    assert delivery is not None
    failure = 1.0
    for spec in (stage.consumers.failure, producer.failure):
        if spec is not None:
            failure *= 1.0 - spec.probability
    failing = 1.0 - failure
    horizon = min(delivery.retention, until if until is not None else math.inf)
    most = delivery.max_receives or max(1.0, math.ceil(horizon / max(delivery.visibility_timeout, 1e-9)))
    if failing >= 1.0:
        return float(most)
    return (1.0 - failing**most) / (1.0 - failing)


def workload(scenario: Scenario) -> Workload:
    """Expected requests, jobs, attempts, receives and backlog of one run of ``scenario``."""
    until = scenario.until
    visits = _visits(scenario)
    stages = scenario.stage_list
    requests = jobs = attempts = receives = 0.0
    for producer in scenario.producers:
        count = expected_arrivals(producer, until)
        requests += count
        tries = producer.retry.attempts if producer.retry is not None else 1
        for entry in scenario.entry_stages(producer):
            for index, times in enumerate(visits[entry]):
                if times == 0:
                    continue
                if stages[index].queue.delivery is not None:
                    receives += count * times * _receives_per_message(stages[index], producer, until)
                else:
                    jobs += count * times * tries
                    attempts += count * times * tries if producer.retry is not None else 0.0
    return Workload(requests=requests, jobs=jobs, client_attempts=attempts, receives=receives,
                    backlog=_backlog(scenario))


def _backlog(scenario: Scenario) -> float:
    """Requests waiting in unbounded entry queues when arrivals stop: ``(lambda - c / E[S]) x duration``,
    less the ``c`` in service."""
    total = 0.0
    for index, stage in enumerate(scenario.stage_list):
        if stage.queue.capacity is not None or stage.queue.delivery is not None:
            continue
        work = count = 0.0
        first, last = math.inf, -math.inf
        for producer in scenario.producers:
            if index not in scenario.entry_stages(producer):
                continue
            arrivals = expected_arrivals(producer, scenario.until)
            if arrivals == 0:
                continue
            begin, end = arrivals_window(producer, scenario.until)
            first, last = min(first, begin), max(last, end)
            work += arrivals * scenario.service_at(index, producer).mean
            count += arrivals
        if count == 0 or not math.isfinite(last) or work == 0:
            continue
        if not math.isfinite(work):  # service times beyond any run: every request waits
            total += count
            continue
        concurrency = stage.consumers.concurrency
        excess = work - concurrency * max(0.0, last - first)  # work left when the arrivals stop
        if excess > 0:
            total += max(0.0, min(count, excess / (work / count)) - concurrency)  # the c in service do not wait
    return total
