"""Consumers: who runs the work, for how long, and whether it fails.

Pools hand out :class:`Slot` objects (one per execution environment) through the :class:`Pool`
interface:

- :class:`FixedPool`: ``concurrency`` workers, all warm from the start (a worker pool);
- :class:`~sim.engine.autoscaled.AutoscaledPool`: a worker pool an HPA-like autoscaler resizes
  (built by :mod:`sim.engine.autoscaled`, which imports this module);
- :class:`ServerlessPool`: Lambda-like environments created on demand (``docs/modelling.md``,
  AWS Lambda): up to ``concurrency`` at once, new ones limited by a token bucket (``rate``, ``burst``),
  each paying a cold start, reclaimed after ``idle_timeout`` unused. Warm environments are
  reused most-recently-used first. Reclaiming is lazy: an idle environment is found stale
  when it would be reused, and its reclaim time (``idle since + idle_timeout``) is recorded
  then, so no event per environment is needed and the provisioned count over time is exact.

:class:`Execution` decides how long a piece of work runs (slowdowns) and whether the attempt
fails (function timeout, errors).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np

from sim.engine.kernel import Kernel, Reusable
from sim.engine.records import ERROR, NO_REASON, TIMEOUT, Lifespans
from sim.engine.streams import uniform_stream
from sim.model.delivery_specs import ScalingSpec
from sim.model.distributions import Sampler
from sim.model.schema import ConsumersSpec

TOKEN_SLACK = 1e-9
"""Refilling ``(1 - tokens) / rate`` seconds later can leave ``tokens`` a rounding error below 1."""


class Slot:
    """An execution environment: one piece of work at a time, and one completion event re-armed for each.

    ``index`` numbers the environments of a pool in creation order (its row in the pool's
    :data:`~sim.engine.records.Lifespans`).
    """

    __slots__ = ("batch", "event", "failures", "free_since", "index", "job", "reason")

    def __init__(self, kernel: Kernel, index: int) -> None:
        self.event = Reusable(kernel, self)
        self.index = index
        self.job = -1
        self.reason = NO_REASON
        """Why the current work fails when it ends (0: it succeeds)."""
        self.free_since = 0.0
        self.batch: list[int] = []
        """Broker delivery: the messages of the invocation in progress..."""
        self.failures: list[int] = []
        """...and why each fails (0: it succeeds)."""


class FixedPool:
    """``concurrency`` always-warm workers."""

    def __init__(self, kernel: Kernel, concurrency: int) -> None:
        self.cap = concurrency
        self.free = [Slot(kernel, index) for index in range(concurrency)]
        self.free.reverse()  # slot 0 is handed out first: easier to read in traces

    def acquire(self, now: float) -> tuple[Slot, float, bool] | None:
        """A free slot, its start-up delay and whether it is new (always 0 and False here), or None."""
        return (self.free.pop(), 0.0, False) if self.free else None

    def release(self, slot: Slot, now: float) -> None:
        self.free.append(slot)

    @property
    def busy(self) -> int:
        return self.cap - len(self.free)

    def lifespans(self, end: float) -> Lifespans:
        """When each environment was created and reclaimed: all live for the whole run."""
        return np.column_stack([np.zeros(self.cap), np.full(self.cap, math.nan)])


class ServerlessPool:
    """Lambda-like environments: created on demand within a scaling allowance, cold on first use."""

    def __init__(self, kernel: Kernel, concurrency: int, scaling: ScalingSpec,
                 rng: np.random.Generator) -> None:
        self.kernel = kernel
        self.cap = concurrency
        self.free: list[Slot] = [Slot(kernel, index) for index in range(scaling.initial)]
        """Warm idle environments, ordered by the time they became idle (most recent last)."""
        self.count = scaling.initial
        """Environments alive (busy or warm)."""
        self.bucket = scaling.bucket
        self.rate = scaling.rate
        self.tokens = self.bucket
        self._refilled_at = 0.0
        self.idle_timeout = scaling.idle_timeout
        self._cold = Sampler(scaling.cold_start.build(), rng) if scaling.cold_start is not None else None
        self.reclaimed: list[float] = [math.nan] * scaling.initial
        """When each environment (by index) was reclaimed; NaN while it is alive."""
        self.created: list[float] = [0.0] * scaling.initial
        """When each environment (by index) was created."""

    @property
    def busy(self) -> int:
        return self.count - len(self.free)

    def _refill(self, now: float) -> None:
        self.tokens = min(self.bucket, self.tokens + (now - self._refilled_at) * self.rate)
        self._refilled_at = now

    def _reclaim(self, slots: list[Slot]) -> None:
        assert self.idle_timeout is not None
        for slot in slots:
            self.reclaimed[slot.index] = slot.free_since + self.idle_timeout
        self.count -= len(slots)

    def reclaim_stale(self, now: float) -> None:
        """Reclaim every environment idle longer than the idle timeout (a prefix of ``free``)."""
        if self.idle_timeout is None or not self.free:
            return
        stale = 0
        while stale < len(self.free) and now - self.free[stale].free_since > self.idle_timeout:
            stale += 1
        if stale:
            self._reclaim(self.free[:stale])
            del self.free[:stale]

    def _cold_start(self) -> float:
        return self._cold() if self._cold is not None else 0.0

    def acquire(self, now: float) -> tuple[Slot, float, bool] | None:
        """A warm environment (no delay), or a new one with its cold start, or None: throttled."""
        self.reclaim_stale(now)
        if self.free:
            return self.free.pop(), 0.0, False
        if self.count >= self.cap:
            return None
        self._refill(now)
        if self.tokens < 1 - TOKEN_SLACK:
            return None
        self.tokens -= 1
        self.count += 1
        slot = Slot(self.kernel, len(self.created))
        self.created.append(now)
        self.reclaimed.append(math.nan)
        return slot, self._cold_start(), True

    def release(self, slot: Slot, now: float) -> None:
        slot.free_since = now
        self.free.append(slot)

    def can_grow(self) -> bool:
        """Whether a new environment could be created once the allowance refills."""
        return self.count < self.cap

    def next_allowance(self, now: float) -> float:
        """When the scaling allowance next has a whole environment to give (strictly later than now)."""
        self._refill(now)
        return max(now + (1.0 - self.tokens) / self.rate, math.nextafter(now, math.inf))

    def lifespans(self, end: float) -> Lifespans:
        """When each environment was created and reclaimed (NaN: alive at ``end``)."""
        self.reclaim_stale(end)
        return np.column_stack([np.array(self.created, dtype=float), np.array(self.reclaimed, dtype=float)])


class Pool(Protocol):
    """The pool interface: what a stage needs from its consumers, whatever kind they are.

    ``cap`` is the most consumers the pool may have at once (a stage's concurrency); ``free``
    the idle slots; ``acquire(now)`` hands out a slot with its start-up delay and whether it is
    new, or None when none can serve now; ``release(slot, now)`` takes a slot back when its work
    is done (a pool may retire it instead, as an autoscaled pool that is shrinking does);
    ``busy`` counts the slots at work; ``lifespans(end)`` says when each consumer was created
    and when it left. Implemented by :class:`FixedPool`, :class:`ServerlessPool` and
    :class:`~sim.engine.autoscaled.AutoscaledPool` (this was a union of the first two: code that
    only named the type keeps working). The hot path of a fixed pool uses its ``free`` list
    directly, so a new kind of pool must not subclass :class:`FixedPool`.
    """

    cap: int
    free: list[Slot]

    def acquire(self, now: float) -> tuple[Slot, float, bool] | None: ...

    def release(self, slot: Slot, now: float) -> None: ...

    @property
    def busy(self) -> int: ...

    def lifespans(self, end: float) -> Lifespans: ...


def build_pool(kernel: Kernel, spec: ConsumersSpec, rng: np.random.Generator) -> Pool:
    if spec.scaling is None:
        return FixedPool(kernel, spec.concurrency)
    return ServerlessPool(kernel, spec.concurrency, spec.scaling, rng)


class Execution:
    """How long work runs and whether it fails: slowdowns, the function timeout, random errors.

    ``run`` returns the seconds the work occupies its environment and the failure reason
    (0 when it succeeds). A failure draw is taken for every piece of work when errors are
    configured, so the random stream stays aligned whatever else changes.
    """

    def __init__(self, spec: ConsumersSpec, rng: np.random.Generator, producer_failure: list[float]) -> None:
        self.slowdowns = [(s.start, s.end, s.factor) for s in spec.slowdowns]
        self.timeout = spec.timeout
        own = spec.failure.probability if spec.failure is not None else 0.0
        # A request fails if the consumer errs or its own payload does (independently).
        self.failure = [1 - (1 - own) * (1 - theirs) for theirs in producer_failure]
        self.uniform: Callable[[], float] | None = uniform_stream(rng) if any(self.failure) else None

    def work(self, service: float, now: float, producer: int) -> tuple[float, bool]:
        """Seconds of work started at ``now`` (slowdowns applied) and whether it errors."""
        for start, end, factor in self.slowdowns:
            if start <= now < end:
                service *= factor
        return service, self.uniform is not None and self.uniform() < self.failure[producer]

    def run(self, service: float, now: float, producer: int) -> tuple[float, int]:
        """Seconds one job occupies its environment, and its failure reason (0: none)."""
        work, errors = self.work(service, now, producer)
        if self.timeout is not None and work > self.timeout:
            return self.timeout, TIMEOUT
        return work, ERROR if errors else NO_REASON
