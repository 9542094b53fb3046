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

Pollers (the event source mapping's concurrent batches) start at ``pollers.initial`` when
messages arrive at an idle queue and grow by ``pollers.rate`` up to ``pollers.max``; once the
queue is empty and idle they scale back, so the next burst ramps up again. They do not see
the function's concurrency, so they can pull more than it may run; a poller whose batch is
throttled backs off for ``pollers.throttle_backoff`` before it receives again. Retention is
applied when a message would be received. Visibility timeouts cost one event per batch, not
per message.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from heapq import heappush

import simpy
from simpy.events import NORMAL, Event

from sim.engine.consumers import Execution, Pool, Slot
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
from sim.engine.stage import Listener, Stage, call_at
from sim.model.delivery_specs import BatchSpec, PollersSpec
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

    def held(self, outcome: object) -> int:
        """Distinct messages still in the broker or being processed."""
        jobs = {job for job in self.visible if outcome[job] == IN_SYSTEM}  # type: ignore[index]
        jobs.update(self.in_flight)
        for batch in self.processing.values():
            jobs.update(job for job in batch if outcome[job] == IN_SYSTEM)  # type: ignore[index]
        return len(jobs)


def wire_broker(env: simpy.Environment, spec: StageSpec, log: JobLog, *, pool: Pool, execution: Execution,
                listener: Listener | None) -> Stage:
    """Build a stage whose consumers are fed by broker delivery; return it with ``admit`` = send."""
    heap, next_id = env._queue, env._eid
    arrival, deadline, service, producer = log.arrival, log.deadline, log.service, log.producer
    start, finish, outcome, reason = log.start, log.finish, log.outcome, log.reason
    receives, throttles, cold_starts, duplicates = log.receives, log.throttles, log.cold_starts, log.duplicates
    gb_seconds, invocations, sqs_requests = log.gb_seconds, log.invocations, log.sqs_requests
    delivery = spec.queue.delivery
    assert delivery is not None
    pollers = spec.queue.pollers or PollersSpec()
    batch = spec.consumers.batch or BatchSpec()
    capacity = math.inf if spec.queue.capacity is None else spec.queue.capacity
    skip_expired = spec.queue.on_expired == "skip"
    memory_gb = spec.consumers.memory_gb
    broker = Broker()
    visible, in_flight = broker.visible, broker.in_flight
    receipts = iter(range(1, 2**62))
    state = {"active": 0, "first": math.nan, "window": False, "growth": False, "last": 0.0}

    def at(time: float, callback: Callable[[Event], None], value: object = None) -> None:
        call_at(env, time, callback, value)

    def settle(job: int, code: int, now: float, why: int = NO_REASON) -> None:
        outcome[job] = code
        finish[job] = now
        reason[job] = why
        in_flight.pop(job, None)
        if listener is not None:
            listener.failed(job, code, now)

    def allowed(now: float) -> int:
        grown = int((now - state["first"]) * pollers.rate + 1e-9)
        return min(pollers.max, pollers.initial + grown)

    def poll(now: float, force: bool = False) -> None:
        """Start receives while messages are visible and pollers are free."""
        while visible and state["active"] < allowed(now):
            if batch.window > 0 and len(visible) < batch.size and not force:
                if not state["window"]:
                    state["window"] = True
                    at(now + batch.window, on_window)
                return
            receive(now)
        if visible and state["active"] >= allowed(now) < pollers.max and not state["growth"]:
            state["growth"] = True
            grown = allowed(now) - pollers.initial + 1
            at(state["first"] + grown / pollers.rate, on_growth)

    def receive(now: float) -> None:
        """One ReceiveMessage call (every message taken may turn out to be discarded)."""
        taken: list[int] = []
        receipt = next(receipts)
        while visible and len(taken) < batch.size:
            job = visible.popleft()
            if outcome[job] != IN_SYSTEM:
                continue  # completed by an earlier delivery while it was visible again
            if now - arrival[job] > delivery.retention:
                settle(job, DROPPED, now, RETENTION)
                continue
            receives[job] += 1
            if delivery.max_receives is not None and receives[job] > delivery.max_receives:
                settle(job, DEAD_LETTERED, now)
                continue
            if skip_expired and deadline[job] < now:
                settle(job, EXPIRED, now)
                continue
            in_flight[job] = receipt
            taken.append(job)
        if not taken:
            return
        for job in taken:
            sqs_requests[job] += 1 / len(taken)
        at(now + delivery.visibility_timeout, on_visibility, (receipt, taken))
        acquired = pool.acquire(now)
        if acquired is None:
            for job in taken:
                throttles[job] += 1  # the invocation is throttled; the batch returns after the timeout
            state["active"] += 1  # the poller backs off before it receives again
            at(now + pollers.throttle_backoff, on_backoff)
            return
        invoke(acquired[0], acquired[1], acquired[2], receipt, taken, now)

    def invoke(slot: Slot, init: float, cold: bool, receipt: int, taken: list[int], now: float) -> None:
        state["active"] += 1
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
        elif any(failures) and not batch.partial_failures:
            failures = [ERROR] * len(taken)
        if cold:
            cold_starts[taken[0]] += 1
        for job in taken:
            gb_seconds[job] += (init + total) * memory_gb / len(taken)
            invocations[job] += 1 / len(taken)
        slot.batch, slot.failures, slot.job = taken, failures, receipt
        broker.processing[receipt] = taken
        broker.invocations[0].append(now)
        broker.invocations[1].append(now + init + total)
        slot.event.callbacks = [on_invocation_done]
        heappush(heap, (now + init + total, NORMAL, next(next_id), slot.event))

    def on_invocation_done(event: Event) -> None:
        slot: Slot = event._value
        now: float = env._now
        broker.processing.pop(slot.job, None)
        succeeded = [job for job, why in zip(slot.batch, slot.failures, strict=True) if not why]
        for job in succeeded:
            if outcome[job] == IN_SYSTEM:
                outcome[job] = COMPLETED if now <= deadline[job] else LATE
                finish[job] = now
                in_flight.pop(job, None)
                if listener is not None:
                    listener.served(job, now)
            else:
                duplicates[job] += 1
            sqs_requests[job] += 1 / len(succeeded)  # one DeleteMessageBatch call
        slot.batch, slot.failures = [], []
        state["last"] = now
        pool.release(slot, now)
        state["active"] -= 1
        poll(now)
        settle_down(now)

    def on_visibility(event: Event) -> None:
        receipt, taken = event._value
        now: float = env._now
        for job in taken:
            if outcome[job] == IN_SYSTEM and in_flight.get(job) == receipt:
                del in_flight[job]
                visible.append(job)
        poll(now)

    def on_backoff(event: Event) -> None:
        state["active"] -= 1
        now: float = env._now
        poll(now)
        settle_down(now)

    def settle_down(now: float) -> None:
        """When the broker is empty and idle, the mapping scales back: the next burst ramps up from ``initial``."""
        if state["active"] == 0 and not in_flight and all(outcome[job] != IN_SYSTEM for job in visible):
            visible.clear()
            state["first"] = math.nan

    def on_window(event: Event) -> None:
        state["window"] = False
        poll(env._now, force=True)

    def on_growth(event: Event) -> None:
        state["growth"] = False
        poll(env._now)

    def send(job: int, now: float) -> None:
        sqs_requests[job] += 1  # SendMessage
        if len(visible) + len(in_flight) >= capacity:
            settle(job, REJECTED, now)
            return
        if math.isnan(state["first"]):
            state["first"] = now
        visible.append(job)
        poll(now)

    return Stage(spec.name, spec.consumers.concurrency, send, pool, lambda: broker.held(outcome), lambda: 0,
                 spec.consumers.priced, lambda: float(state["last"]), broker.invocations)
