"""The random streams of a run: one independent generator per role, keyed by position.

Each producer draws arrivals, service demands (per stage) and patience from its own
stream, and each stage draws its early drops, cold starts and errors from its own, so
changing one thing (the queue discipline, another producer) leaves the other numbers
unchanged: common random numbers across compared scenarios. A stream is named by its
position in a spawn key (``(producer, role)``, ``(STAGE_STREAMS + stage, role)``), never by
the order streams happen to be made in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.model.distributions import Sampler, Uniform

# Roles of a producer's streams: ``(producer, ROLE, ...)``.
ARRIVALS, SERVICE, PATIENCE, RETRIES, KEYS = range(5)
# Roles of a stage's streams: ``(STAGE_STREAMS + stage, ROLE)``; the bare key is the AQM stream.
COLD_STARTS, FAILURES = range(1, 3)
SAMPLE_STREAM = 999_999
"""Spawn key of the stream that picks the kept sample of requests (``report.requests: sample N``)."""
STAGE_STREAMS = 1_000_000
"""Spawn-key namespace for stage-owned streams (AQM drop decisions): ``(STAGE_STREAMS + stage,)``."""
FAULT_STREAMS = 2_000_000
"""Spawn-key namespace for the faults timeline: ``(FAULT_STREAMS + fault,)`` draws that fault's crash
times and victims, so every broker model (and a direct call) sees the same fault schedule."""
BROKER_STREAMS = 3_000_000
"""Spawn-key namespace for a broker's own draws (publish and delivery hops): ``(BROKER_STREAMS + stage, hop)``."""


def replication_seeds(seed: int, replication: int) -> np.random.SeedSequence:
    """The seed sequence of one replication: the same whatever the number of replications."""
    return np.random.SeedSequence(seed, spawn_key=(replication,))


def stream(seeds: np.random.SeedSequence, *key: int) -> np.random.Generator:
    """An independent generator for one role, keyed by position rather than by spawn order."""
    child = np.random.SeedSequence(seeds.entropy, spawn_key=tuple(seeds.spawn_key) + key)
    return np.random.default_rng(child)


def uniform_stream(rng: np.random.Generator) -> Sampler:
    """Uniform(0, 1) numbers drawn from ``rng`` in blocks, handed out one at a time."""
    return Sampler(Uniform(0.0, 1.0), rng)


@dataclass(frozen=True)
class StageStreams:
    """The random streams a stage owns: early drops, cold starts, errors, broker hops."""

    aqm: np.random.Generator
    cold_start: np.random.Generator
    failure: np.random.Generator
    hops: tuple[np.random.Generator, np.random.Generator]
    """A broker's publish and delivery hop times (``queue.broker.latency``)."""


def stage_streams(seeds: np.random.SeedSequence, index: int) -> StageStreams:
    """The streams of stage ``index``."""
    base = STAGE_STREAMS + index
    hops = (stream(seeds, BROKER_STREAMS + index, 0), stream(seeds, BROKER_STREAMS + index, 1))
    return StageStreams(aqm=stream(seeds, base), cold_start=stream(seeds, base, COLD_STARTS),
                        failure=stream(seeds, base, FAILURES), hops=hops)


ServiceStreams = Callable[[int, int], np.random.Generator]
"""The service-demand generator of a (producer, stage)."""


def service_streams(seeds: np.random.SeedSequence) -> ServiceStreams:
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
