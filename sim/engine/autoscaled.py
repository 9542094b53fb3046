"""Worker pools an autoscaler resizes: a Kubernetes HPA over a stage's consumers, with KEDA's scale to zero.

:class:`AutoscaledPool` is the pool (the :class:`~sim.engine.consumers.Pool` interface): its
consumers are *starting* (provisioning: a new one serves only after its start-up delay),
*ready* (idle or busy) or gone. Resizing it to a desired count starts new consumers, or
stops them in this order: starting ones (newest first, as Kubernetes removes pending pods
first), then idle ones, then busy ones, which finish the work in hand first (graceful
termination): the next busy consumers to finish leave instead of taking new work. Consumer-
seconds count from the start of provisioning to leaving (what a pod is billed for).

:class:`Autoscaler` is the control loop: one event per tick, re-armed, through
:mod:`sim.engine.kernel`. It syncs every ``sync_period`` (the HPA's rule, :mod:`sim.engine.hpa`)
and, with ``min: 0``, polls every ``polling_interval`` for KEDA's activation (zero -> one
consumer when work waits) and deactivation (back to zero after ``cooldown_period`` without
work). When nothing waits, nothing is busy and the pool is at its minimum (or the rule would
keep its count while idle) it stops ticking (*dormant*), so a run that drains ends; the first
acquire (or, for a broker, the first poll) wakes it, and ticks resume on the same grid of
multiples of the period.

A stage plugs in with :func:`attach`: how much work is waiting (``backlog``), how long the
oldest waiting message has waited, and ``serve_waiting`` (new consumers take waiting work).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from sim.engine.consumers import Slot
from sim.engine.hpa import Hpa
from sim.engine.kernel import Handler, Kernel, Reusable
from sim.engine.records import Lifespans, ScalingTrace
from sim.model.distributions import Sampler
from sim.model.schema import ConsumersSpec

Clocked = Callable[[float], None]


def _nothing(now: float) -> None:
    """The default hook, until a stage or an autoscaler sets its own."""


class AutoscaledPool:
    """Consumers that start, serve and leave as the autoscaler decides (module docstring)."""

    def __init__(self, kernel: Kernel, consumers: ConsumersSpec, rng: np.random.Generator) -> None:
        spec = consumers.autoscale
        assert spec is not None
        self.kernel = kernel
        self.spec = spec
        self.cap = spec.max
        count = consumers.concurrency
        self.free: list[Slot] = [Slot(kernel, index) for index in reversed(range(count))]  # slot 0 serves first
        self.created: list[float] = [0.0] * count
        self.ready_at: list[float] = [0.0] * count
        self.left: list[float] = [math.nan] * count
        """When each consumer (by index) left; NaN while it is there."""
        self.starting: dict[int, Slot] = {}
        """Consumers provisioning, by index, oldest first."""
        self.ready = count
        """Consumers up: idle, busy, or finishing their work before they leave."""
        self.desired = count
        self.surplus = 0
        """Busy consumers asked to leave: the next ones to finish their work go."""
        self.changes: list[tuple[float, int]] = [(0.0, count)]
        self.dormant = False
        """The autoscaler has stopped ticking until work arrives (set by :class:`Autoscaler`)."""
        self.busy_area = self.ready_area = 0.0
        """Busy and ready consumer-seconds since the last sync (for the utilization metric)."""
        self._since = 0.0
        delay = spec.provisioning
        self._delay: Callable[[], float] = (Sampler(delay.build(), rng) if not isinstance(delay, float)
                                            else lambda: delay)
        self._on_ready: list[Handler] = [self._ready]
        self.serve_waiting: Clocked = _nothing
        """Set by the stage: consumers just ready take waiting work."""
        self.wake: Clocked = _nothing
        """Set by the autoscaler: work has arrived while it was dormant."""

    @property
    def busy(self) -> int:
        return self.ready - len(self.free)

    def account(self, now: float) -> None:
        """Add the busy and ready consumer-seconds since the last change."""
        elapsed = now - self._since
        if elapsed > 0:
            self.busy_area += (self.ready - len(self.free)) * elapsed
            self.ready_area += self.ready * elapsed
            self._since = now

    def acquire(self, now: float) -> tuple[Slot, float, bool] | None:
        """An idle ready consumer (no start-up delay: it is already up), or None."""
        if self.dormant:
            self.wake(now)
        if not self.free:
            return None
        self.account(now)
        return self.free.pop(), 0.0, False

    def release(self, slot: Slot, now: float) -> None:
        """Work done: the consumer goes idle, or leaves if busy consumers were asked to."""
        self.account(now)
        if self.surplus:
            self.surplus -= 1
            self._leave(slot, now)
        else:
            self.free.append(slot)

    def resize(self, desired: int, now: float) -> None:
        """Start or stop consumers so that ``desired`` are ready or starting (besides those leaving)."""
        if desired == self.desired:
            return
        self.account(now)
        self.changes.append((now, desired))
        change, self.desired = desired - self.desired, desired
        if change > 0:
            staying = min(change, self.surplus)  # busy consumers due to leave stay after all
            self.surplus -= staying
            for _ in range(change - staying):
                self._start(now)
            return
        stop = -change
        while stop and self.starting:
            index, _ = self.starting.popitem()  # the newest one
            self.left[index] = now
            stop -= 1
        while stop and self.free:
            self._leave(self.free.pop(), now)
            stop -= 1
        self.surplus += stop

    def _start(self, now: float) -> None:
        index = len(self.created)
        slot = Slot(self.kernel, index)
        self.created.append(now)
        self.ready_at.append(math.nan)
        self.left.append(math.nan)
        self.starting[index] = slot
        self.kernel.rearm(slot.event, self._on_ready, now + self._delay())

    def _ready(self, event: Reusable) -> None:
        """Provisioning is over: the consumer serves (unless it was stopped while starting)."""
        slot: Slot = event.owner
        now = event.due
        if self.starting.pop(slot.index, None) is None:
            return
        self.account(now)
        self.ready += 1
        self.ready_at[slot.index] = now
        self.free.append(slot)
        self.serve_waiting(now)

    def _leave(self, slot: Slot, now: float) -> None:
        self.left[slot.index] = now
        self.ready -= 1

    def lifespans(self, end: float) -> Lifespans:
        """When each consumer started provisioning and left (NaN: still there at ``end``)."""
        return np.column_stack([np.array(self.created, dtype=float), np.array(self.left, dtype=float)])

    def trace(self) -> ScalingTrace:
        """Desired consumers at each change, and when each consumer was ready and left."""
        ready_at, left = np.array(self.ready_at, dtype=float), np.array(self.left, dtype=float)
        served = ~np.isnan(ready_at)
        return ScalingTrace(desired=np.array(self.changes, dtype=float).reshape(-1, 2),
                            ready=np.column_stack([ready_at[served], left[served]]))


class Autoscaler:
    """The control loop of one pool: HPA syncs and, with ``min: 0``, KEDA's activation polls."""

    def __init__(self, kernel: Kernel, pool: AutoscaledPool, backlog: Callable[[], int],
                 oldest_wait: Callable[[float], float]) -> None:
        self.kernel = kernel
        self.pool = pool
        self.spec = spec = pool.spec
        self.hpa = Hpa(spec, pool.desired)
        self.backlog = backlog
        self.oldest_wait = oldest_wait
        self.syncs = 1
        """The next sync is the ``syncs``-th multiple of ``sync_period``..."""
        self.polls = 1
        """...and the next activation poll the ``polls``-th multiple of ``polling_interval`` (``min: 0``)."""
        self.last_active = -math.inf
        self.event = Reusable(kernel, self)
        self.callbacks: list[Handler] = [self._on_tick]
        pool.wake = self.wake
        self._arm()

    def _arm(self) -> None:
        spec = self.spec
        due = self.syncs * spec.sync_period
        if spec.min == 0:
            due = min(due, self.polls * spec.polling_interval)
        self.kernel.rearm(self.event, self.callbacks, due)

    def _on_tick(self, event: Reusable) -> None:
        now = event.due
        spec, pool = self.spec, self.pool
        backlog = self.backlog()
        if self.syncs * spec.sync_period <= now:
            self.syncs += 1
            if pool.desired > 0:  # at zero consumers only KEDA acts
                usage = self._usage(now, backlog)
                pool.resize(self.hpa.sync(now, pool.desired, pool.ready, len(pool.starting), usage), now)
            pool.busy_area = pool.ready_area = 0.0
        if spec.min == 0 and self.polls * spec.polling_interval <= now:
            self.polls += 1
            self._activation(now, backlog)
        if backlog == 0 and pool.busy == 0 and self._settled():
            pool.dormant = True
            return
        self._arm()

    def _settled(self) -> bool:
        """Idle: can a later sync still change the count? Not at ``min``, nor when the rule keeps this one."""
        spec, pool = self.spec, self.pool
        if pool.desired == spec.min:
            return True
        if spec.min == 0 or pool.starting:
            return False  # KEDA's cooldown is still to run out; starting consumers will change the reading
        # Idle, every metric reads 0: a disabled scale-down, or a tolerance of 1 or more, keeps the count.
        idle_recommendation = self.hpa.recommend(pool.desired, pool.ready, 0, 0.0)
        return spec.scale_down.select == "disabled" or idle_recommendation >= pool.desired

    def _usage(self, now: float, backlog: int) -> float:
        """What the desired count is proportional to (see :mod:`sim.engine.hpa`)."""
        pool, metric = self.pool, self.spec.metric
        if metric == "backlog":
            return float(backlog)
        if metric == "utilization":
            pool.account(now)
            return pool.busy_area / pool.ready_area * pool.ready if pool.ready_area > 0 else math.nan
        return self.oldest_wait(now) * pool.ready

    def _activation(self, now: float, backlog: int) -> None:
        """KEDA: one consumer when work waits at zero; zero after ``cooldown_period`` without work."""
        pool = self.pool
        if backlog > 0:
            self.last_active = now
            if pool.desired == 0:
                pool.resize(1, now)
        elif pool.desired > 0 and now - self.last_active >= self.spec.cooldown_period:
            pool.resize(0, now)

    def wake(self, now: float) -> None:
        """Work has arrived at a dormant pool: tick again from the next multiple of each period."""
        pool, spec = self.pool, self.spec
        if not pool.dormant:
            return
        pool.dormant = False
        self.syncs = math.floor(now / spec.sync_period) + 1
        self.polls = math.floor(now / spec.polling_interval) + 1
        pool.account(now)
        pool.busy_area = pool.ready_area = 0.0
        self._arm()


def attach(kernel: Kernel, pool: AutoscaledPool, *, backlog: Callable[[], int],
           oldest_wait: Callable[[float], float], serve_waiting: Clocked) -> Autoscaler:
    """Start ``pool``'s autoscaler; the stage says how much work waits and how new consumers take it.

    ``backlog()`` counts messages waiting or in service (KEDA's SQS scaler counts visible and
    in-flight messages); ``oldest_wait(now)`` is how long the oldest waiting one has waited (0
    when none waits); ``serve_waiting(now)`` lets idle consumers take waiting work.
    """
    pool.serve_waiting = serve_waiting
    return Autoscaler(kernel, pool, backlog, oldest_wait)
