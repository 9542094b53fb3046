"""The faults timeline at run time: crashes, consumer and broker outages (``scenario.faults``).

Every fault is a handful of events on the kernel, drawn before the run from the fault's own
random stream (``FAULT_STREAMS + fault``), so the schedule is the same for every broker model and
for a direct call (common random numbers). A fault acts on a stage through its
:class:`~sim.engine.stage.Faultable`: a broker model (:mod:`sim.engine.brokers`) applies its own
rules to the messages a crashed consumer held; a plain queue or a direct call
(:class:`QueueFaults`) fails the request in progress (``failed``, reason ``crash``: a client's
``retry`` on ``failed`` may try again), and has no broker to take down. Slow periods are
``consumers.slowdowns`` (:func:`sim.model.fault_specs.slowdowns_of`), applied when a stage is wired.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np

from sim.engine.consumers import FixedPool, Slot
from sim.engine.kernel import Kernel, Reusable
from sim.engine.records import CRASH, FAILED
from sim.engine.stage import Faultable, Stage
from sim.engine.streams import FAULT_STREAMS, stream
from sim.model.fault_specs import BrokerOutageSpec, ConsumerOutageSpec, CrashSpec, Victims, fault_stage
from sim.model.schema import Scenario


class QueueFaults:
    """Crashes of the fixed consumers of a plain queue (or of a direct call, ``capacity: 0``).

    A crashed consumer leaves the pool's free list, or, if busy, its completion is cancelled and its
    request fails (``failed``, reason ``crash``). At its restart it takes the next waiting request.
    """

    def __init__(self, kernel: Kernel, pool: FixedPool, stage: Stage, settle: Callable[[int, int, float, int], None],
                 take: Callable[[float], int], begin: Callable[[Slot, int, float], None]) -> None:
        self.kernel = kernel
        self.pool = pool
        self.slots: list[Slot] = sorted(pool.free, key=lambda slot: slot.index)
        self.down: set[int] = set()
        self.settle = settle
        self.take = take
        self.begin = begin
        busy = stage.serving
        stage.serving = lambda: busy() - len(self.down)  # a crashed consumer is not serving anything

    def alive(self) -> list[int]:
        return [slot.index for slot in self.slots if slot.index not in self.down]

    def crash(self, indexes: list[int], now: float) -> None:
        free = self.pool.free
        for index in indexes:
            if index in self.down:
                continue
            self.down.add(index)
            slot = self.slots[index]
            if slot in free:
                free.remove(slot)
            else:
                slot.event = self.kernel.defuse(slot.event)
                self.settle(slot.job, FAILED, now, CRASH)

    def restart(self, indexes: list[int], now: float) -> None:
        for index in indexes:
            if index not in self.down:
                continue
            self.down.discard(index)
            slot = self.slots[index]
            job = self.take(now)
            if job >= 0:
                self.begin(slot, job, now)
            else:
                self.pool.free.append(slot)

    def broker_down(self, now: float) -> None:
        """No broker: nothing to take down."""

    def broker_up(self, now: float) -> None:
        """No broker: nothing to bring back."""


def schedule_faults(kernel: Kernel, scenario: Scenario, stages: list[Stage], seeds: np.random.SeedSequence,
                    horizon: float) -> None:
    """Put every fault of the timeline on the kernel (slow periods are applied at wiring)."""
    names = [spec.name for spec in scenario.stage_list]
    end = scenario.until if scenario.until is not None else horizon
    for index, fault in enumerate(scenario.faults):
        target = stages[fault_stage(fault, names)].faults
        if target is None:
            continue
        if isinstance(fault, CrashSpec):
            rng = stream(seeds, FAULT_STREAMS + index)
            times = [fault.at] if fault.at is not None else _poisson(rng, fault.rate or 1.0, fault.start,
                                                                         fault.stop if fault.stop is not None else end)
            for time in times:
                kernel.call_at(time, partial(_on_crash, kernel, target, fault, rng))
        elif isinstance(fault, ConsumerOutageSpec):
            kernel.call_at(fault.start, partial(_on_outage, kernel, target, fault.end))
        elif isinstance(fault, BrokerOutageSpec):
            kernel.call_at(fault.start, partial(_on_broker, target, True))
            kernel.call_at(fault.end, partial(_on_broker, target, False))


def crash_times(scenario: Scenario, seeds: np.random.SeedSequence, horizon: float) -> list[list[float]]:
    """Per fault, the times its crashes happen (empty for other kinds): what the run will schedule."""
    end = scenario.until if scenario.until is not None else horizon
    found: list[list[float]] = []
    for index, fault in enumerate(scenario.faults):
        if not isinstance(fault, CrashSpec):
            found.append([])
        elif fault.at is not None:
            found.append([fault.at])
        else:
            rng = stream(seeds, FAULT_STREAMS + index)
            found.append(_poisson(rng, fault.rate or 1.0, fault.start, fault.stop if fault.stop is not None else end))
    return found


def _poisson(rng: np.random.Generator, rate: float, start: float, stop: float) -> list[float]:
    """Crash times at ``rate`` in ``[start, stop)``, drawn at once."""
    times: list[float] = []
    if not math.isfinite(stop):
        return times
    now = start
    while True:
        now += float(rng.exponential(1.0 / rate))
        if now >= stop:
            return times
        times.append(now)


def victims(alive: list[int], chosen: Victims, rng: np.random.Generator | None) -> list[int]:
    """Which consumers a crash takes: ``all``, listed ones, or N of those up (the lowest-numbered, or at
    random for crashes at a rate)."""
    if chosen == "all":
        return list(alive)
    if isinstance(chosen, list):
        return [index for index in chosen if index in alive]
    if rng is None:
        return sorted(alive)[:chosen]
    if not alive:
        return []
    picked = rng.choice(len(alive), size=min(chosen, len(alive)), replace=False)
    return sorted(alive[int(i)] for i in picked)


def _on_crash(kernel: Kernel, target: Faultable, fault: CrashSpec, rng: np.random.Generator, event: Reusable) -> None:
    now = event.due
    hit = victims(target.alive(), fault.consumers, rng if fault.rate is not None else None)
    target.crash(hit, now)
    kernel.call_at(now + fault.restart, partial(_on_restart, target, hit))


def _on_outage(kernel: Kernel, target: Faultable, end: float, event: Reusable) -> None:
    hit = target.alive()
    target.crash(hit, event.due)
    kernel.call_at(end, partial(_on_restart, target, hit))


def _on_restart(target: Faultable, hit: list[int], event: Reusable) -> None:
    target.restart(hit, event.due)


def _on_broker(target: Faultable, down: bool, event: Reusable) -> None:
    if down:
        target.broker_down(event.due)
    else:
        target.broker_up(event.due)
