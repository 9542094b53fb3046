"""Broker delivery: an SQS-like queue read by Lambda-like pollers (``docs/modelling.md``).

At-least-once semantics, event by event:

- **send** - the message becomes visible (a full bounded queue rejects it);
- **receive** - a poller takes up to ``batch.size`` visible messages (waiting up to
  ``batch.window`` to fill a batch). Each receive counts; a message past ``retention`` is
  deleted unprocessed, one received more than ``max_receives`` times goes to the dead-letter
  queue, an expired one is discarded with ``on_expired: skip``. The batch is hidden for
  ``visibility_timeout``;
- **invoke** - the batch runs in one environment (``Σ`` of its messages' service times after
  any cold start). No environment -> throttled: the messages come back when their
  visibility timeout ends. The function timeout fails the whole batch; an error fails the
  whole batch unless ``partial_failures`` (ReportBatchItemFailures) returns only the failed;
- **delete** - messages processed successfully are deleted; failed ones reappear when the
  visibility timeout ends. If processing outlives the visibility timeout, the message
  reappears while still running and can be received and processed again: each extra
  successful processing is a duplicate.

Pollers (the event source mapping's concurrent batches; :class:`PollerState`) start at
``pollers.initial`` when messages arrive at an idle queue and grow by ``pollers.rate`` up to
``pollers.max``; once the queue is empty and idle they scale back, so the next burst ramps up
again. They do not see the function's concurrency, so they can pull more than it may run; a
poller whose batch is throttled backs off for ``pollers.throttle_backoff`` before it receives
again. Retention is applied when a message would be received. Visibility timeouts cost one
event per batch, not per message. An autoscaled pool's consumers are containers that receive
for themselves: a receive happens only when a consumer is idle (never throttled), and a
consumer that becomes ready receives at once.

:class:`_Delivery` wires it, one method per step: :meth:`~_Delivery.send`,
:meth:`~_Delivery.receive`, :meth:`~_Delivery.invoke`, :meth:`~_Delivery.on_invocation_done`
(delete), :meth:`~_Delivery.on_visibility` (redeliver), and the pollers' :meth:`~_Delivery.poll`,
growth and back-off.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import cast

from sim.engine.autoscaled import AutoscaledPool, attach
from sim.engine.consumers import Execution, Pool, Slot
from sim.engine.kernel import Handler, Kernel, Reusable
from sim.engine.records import (
    COMPLETED,
    DEAD_LETTERED,
    DROPPED,
    ERROR,
    EXPIRED,
    IN_SYSTEM,
    LATE,
    NO_REASON,
    REJECTED,
    RETENTION,
    TIMEOUT,
    JobLog,
)
from sim.engine.stage import NO_LIVE_JOB, Listener, Stage
from sim.model.delivery_specs import BatchSpec, DeliverySpec, PollersSpec
from sim.model.schema import StageSpec


class Broker:
    """The visible messages and those in flight; what the end-of-run report needs."""

    def __init__(self) -> None:
        self.visible: deque[int] = deque()
        self.in_flight: dict[int, int] = {}
        """Message -> receipt (batch id) of its latest receive, while hidden."""
        self.processing: dict[int, list[int]] = {}
        """Batch id -> messages, while an invocation runs them."""
        self.invocations: tuple[list[float], list[float]] = ([], [])
        """Start and end of every invocation: the consumers' busy time (a batch is one piece of work)."""

    def oldest(self) -> int:
        """The smallest message id the broker may still read or write (visible, in flight or being
        processed: a message already completed can be processed again as a duplicate), or NO_LIVE_JOB."""
        oldest = min(self.visible, default=NO_LIVE_JOB)
        oldest = min(oldest, min(self.in_flight, default=NO_LIVE_JOB))
        for batch in self.processing.values():
            oldest = min(oldest, min(batch, default=NO_LIVE_JOB))
        return oldest

    def held(self, outcome: object) -> int:
        """Distinct messages still in the broker or being processed."""
        jobs = {job for job in self.visible if outcome[job] == IN_SYSTEM}  # type: ignore[index]
        jobs.update(self.in_flight)
        for batch in self.processing.values():
            jobs.update(job for job in batch if outcome[job] == IN_SYSTEM)  # type: ignore[index]
        return len(jobs)


@dataclass(slots=True)
class PollerState:
    """The event source mapping's pollers at run time."""

    active: int = 0
    """Pollers busy: running a batch's invocation, or backing off after a throttled one."""
    ramp_start: float = math.nan
    """When messages arrived at the idle queue: the pollers ramp up from then (NaN while idle)."""
    window_pending: bool = False
    """A wake-up is scheduled for when the batching window closes."""
    growth_pending: bool = False
    """A wake-up is scheduled for when the ramp allows one more poller."""
    last_end: float = 0.0
    """When the last invocation ended (a duplicate processing may end after every job record)."""


def wire(kernel: Kernel, spec: StageSpec, log: JobLog, *, pool: Pool, execution: Execution,
                listener: Listener | None) -> Stage:
    """Build a stage whose consumers are fed by broker delivery; return it with ``admit`` = send."""
    assert spec.queue.delivery is not None
    delivery = _Delivery(kernel, spec, log, pool, execution, listener)
    broker, state, outcome = delivery.broker, delivery.state, log.outcome
    if delivery.autoscaled is not None:
        visible, in_flight, arrival = broker.visible, broker.in_flight, log.arrival

        def oldest_wait(now: float) -> float:
            waiting = [arrival[job] for job in visible if outcome[job] == IN_SYSTEM]
            return now - min(waiting) if waiting else 0.0

        attach(kernel, delivery.autoscaled, backlog=lambda: len(visible) + len(in_flight), oldest_wait=oldest_wait,
               serve_waiting=delivery.poll)
    return Stage(spec.name, pool.cap, delivery.send, pool, lambda: broker.held(outcome),
                 lambda: 0, spec.consumers.priced, lambda: state.last_end, broker.invocations, broker.oldest)


class _Delivery:
    """One brokered stage at run time: each method is a step of a message's life (module docstring)."""

    __slots__ = ("autoscaled", "batch", "broker", "capacity", "delivery", "done", "execution", "in_flight", "kernel",
                 "listener", "log", "memory_gb", "pollers", "pool", "receipts", "skip_expired", "sqs_requests", "state",
                 "visible")

    def __init__(self, kernel: Kernel, spec: StageSpec, log: JobLog, pool: Pool, execution: Execution,
                 listener: Listener | None) -> None:
        assert spec.queue.delivery is not None
        self.kernel = kernel
        self.log = log
        self.pool = pool
        self.execution = execution
        self.listener = listener
        self.delivery: DeliverySpec = spec.queue.delivery
        self.pollers = spec.queue.pollers or PollersSpec()
        self.batch = spec.consumers.batch or BatchSpec()
        self.capacity = math.inf if spec.queue.capacity is None else spec.queue.capacity
        self.skip_expired = spec.queue.on_expired == "skip"
        self.memory_gb = spec.consumers.memory_gb
        self.broker = Broker()
        self.visible, self.in_flight = self.broker.visible, self.broker.in_flight
        self.sqs_requests = log.sqs_requests
        self.state = PollerState()
        self.receipts = iter(range(1, 2**62))
        self.done: list[Handler] = [self.on_invocation_done]
        self.autoscaled = pool if isinstance(pool, AutoscaledPool) else None
        """Consumers that receive for themselves, when idle (instead of the event source mapping's pollers)."""

    def send(self, job: int, now: float) -> None:
        """SendMessage: the message becomes visible, unless a bounded queue is full."""
        self.sqs_requests[job] += 1
        visible = self.visible
        if len(visible) + len(self.in_flight) >= self.capacity:
            self.settle(job, REJECTED, now)
            return
        state = self.state
        if math.isnan(state.ramp_start):
            state.ramp_start = now
        visible.append(job)
        self.poll(now)

    def settle(self, job: int, code: int, now: float, why: int = NO_REASON) -> None:
        """The message leaves unprocessed (rejected, expired, dead-lettered, past retention)."""
        log = self.log
        log.outcome[job] = code
        log.finish[job] = now
        log.reason[job] = why
        self.in_flight.pop(job, None)
        if self.listener is not None:
            self.listener.failed(job, code, now)

    def allowed(self, now: float) -> int:
        """Pollers the ramp allows at ``now``: ``initial``, plus ``rate`` a second, up to ``max``.

        An autoscaled pool's idle consumers each receive (one receive wakes a dormant autoscaler).
        """
        autoscaled = self.autoscaled
        if autoscaled is not None:
            if autoscaled.dormant:
                autoscaled.wake(now)
            return self.state.active + len(autoscaled.free)
        pollers = self.pollers
        grown = int((now - self.state.ramp_start) * pollers.rate + 1e-9)
        return min(pollers.max, pollers.initial + grown)

    def poll(self, now: float, force: bool = False) -> None:
        """Start receives while messages are visible and pollers are free (``force``: the window closed)."""
        visible, state, batch, pollers = self.visible, self.state, self.batch, self.pollers
        if not visible:
            return
        allowed = self.allowed(now)  # receiving never moves the ramp's start
        while visible and state.active < allowed:
            if batch.window > 0 and len(visible) < batch.size and not force:
                if not state.window_pending:
                    state.window_pending = True
                    self.kernel.call_at(now + batch.window, self.on_window)
                return
            self.receive(now)
        if visible and state.active >= allowed < pollers.max and not state.growth_pending and self.autoscaled is None:
            state.growth_pending = True
            grown = allowed - pollers.initial + 1
            self.kernel.call_at(state.ramp_start + grown / pollers.rate, self.on_growth)

    def receive(self, now: float) -> None:
        """One ReceiveMessage call (every message taken may turn out to be discarded)."""
        log, delivery, visible, in_flight = self.log, self.delivery, self.visible, self.in_flight
        outcome, receives, arrival = log.outcome, log.receives, log.arrival
        taken: list[int] = []
        receipt = next(self.receipts)
        while visible and len(taken) < self.batch.size:
            job = visible.popleft()
            if outcome[job] != IN_SYSTEM:
                continue  # completed by an earlier delivery while it was visible again
            if now - arrival[job] > delivery.retention:
                self.settle(job, DROPPED, now, RETENTION)
                continue
            receives[job] += 1
            if delivery.max_receives is not None and receives[job] > delivery.max_receives:
                self.settle(job, DEAD_LETTERED, now)
                continue
            if self.skip_expired and log.deadline[job] < now:
                self.settle(job, EXPIRED, now)
                continue
            in_flight[job] = receipt
            taken.append(job)
        if not taken:
            return
        sqs_requests = self.sqs_requests
        for job in taken:
            sqs_requests[job] += 1 / len(taken)
        self.kernel.call_at(now + delivery.visibility_timeout, self.on_visibility, (receipt, taken))
        acquired = self.pool.acquire(now)
        if acquired is None:
            for job in taken:
                log.throttles[job] += 1  # the invocation is throttled; the batch returns after the timeout
            self.state.active += 1  # the poller backs off before it receives again
            self.kernel.call_at(now + self.pollers.throttle_backoff, self.on_backoff)
            return
        self.invoke(acquired[0], acquired[1], acquired[2], receipt, taken, now)

    def invoke(self, slot: Slot, init: float, cold: bool, receipt: int, taken: list[int], now: float) -> None:
        """The batch runs in one environment: ``Σ`` of its service times after any cold start."""
        log, execution = self.log, self.execution
        service, producer, start = log.service, log.producer, log.start
        self.state.active += 1
        total = 0.0
        failures = []
        for job in taken:
            work, errors = execution.work(service[job], now, producer[job])
            total += work
            failures.append(ERROR if errors else NO_REASON)
            if math.isnan(start[job]):
                start[job] = now
        if execution.timeout is not None and total > execution.timeout:
            total = execution.timeout
            failures = [TIMEOUT] * len(taken)
        elif any(failures) and not self.batch.partial_failures:
            failures = [ERROR] * len(taken)
        if cold:
            log.cold_starts[taken[0]] += 1
        gb_seconds, invocations, memory_gb = log.gb_seconds, log.invocations, self.memory_gb
        for job in taken:
            gb_seconds[job] += (init + total) * memory_gb / len(taken)
            invocations[job] += 1 / len(taken)
        slot.batch, slot.failures, slot.job = taken, failures, receipt
        self.broker.processing[receipt] = taken
        self.broker.invocations[0].append(now)
        self.broker.invocations[1].append(now + init + total)
        self.kernel.rearm(slot.event, self.done, now + init + total)

    def on_invocation_done(self, event: Reusable) -> None:
        """Delete: messages processed successfully leave (again: a duplicate); the environment is freed."""
        slot: Slot = event.owner
        now = event.due
        log, in_flight, listener, sqs_requests = self.log, self.in_flight, self.listener, self.sqs_requests
        outcome, deadline, finish = log.outcome, log.deadline, log.finish
        succeeded = [job for job, why in zip(slot.batch, slot.failures, strict=True) if not why]
        for job in succeeded:
            if outcome[job] == IN_SYSTEM:
                outcome[job] = COMPLETED if now <= deadline[job] else LATE
                finish[job] = now
                in_flight.pop(job, None)
                if listener is not None:
                    listener.served(job, now)
            else:
                log.duplicates[job] += 1
            sqs_requests[job] += 1 / len(succeeded)  # one DeleteMessageBatch call
        self.broker.processing.pop(slot.job, None)  # only now: the listener may fold rows while the loop runs
        slot.batch, slot.failures = [], []
        self.state.last_end = now
        self.pool.release(slot, now)
        self.state.active -= 1
        self.poll(now)
        self.settle_down(now)

    def on_visibility(self, event: Reusable) -> None:
        """Redeliver: the batch's visibility timeout ended; messages not deleted become visible again."""
        receipt, taken = cast(tuple[int, list[int]], event.value)
        outcome, in_flight, visible = self.log.outcome, self.in_flight, self.visible
        for job in taken:
            if outcome[job] == IN_SYSTEM and in_flight.get(job) == receipt:
                del in_flight[job]
                visible.append(job)
        self.poll(self.kernel.now())

    def on_backoff(self, event: Reusable) -> None:
        """A throttled poller has backed off: it may receive again."""
        self.state.active -= 1
        now = self.kernel.now()
        self.poll(now)
        self.settle_down(now)

    def on_window(self, event: Reusable) -> None:
        """The batching window closed: receive whatever is visible."""
        self.state.window_pending = False
        self.poll(self.kernel.now(), force=True)

    def on_growth(self, event: Reusable) -> None:
        """The ramp allows one more poller."""
        self.state.growth_pending = False
        self.poll(self.kernel.now())

    def settle_down(self, now: float) -> None:
        """When the broker is empty and idle, the mapping scales back: the next burst ramps up from ``initial``."""
        outcome, visible = self.log.outcome, self.visible
        if self.state.active == 0 and not self.in_flight and all(outcome[job] != IN_SYSTEM for job in visible):
            visible.clear()
            self.state.ramp_start = math.nan
