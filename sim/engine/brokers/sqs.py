"""SQS read by a pool of workers: standard queues and FIFO queues (``docs/brokers.md``).

**Standard** (:class:`SqsStage`): a worker with nothing to do long-polls; ReceiveMessage returns up
to ``batch`` visible messages, hidden for ``visibility_timeout``; the worker processes them one
after another and deletes each one it processed successfully. A message not deleted when its
visibility timeout ends becomes visible again and is received again: after a failure, after a
crash, or while its first processing is still running (a duplicate). A message past
``retention`` is deleted unprocessed; one received ``max_receives`` times goes to the dead-letter
queue on its next receive. Visibility costs one event per receive, not per message.

**FIFO** (:class:`SqsFifoStage`): the producer's key is the message group (no key: one group for
everything). Messages of a group are received in order, and none of a group while any of its
messages is in flight (received, not yet deleted or visible again); groups go in parallel.
SendMessage and ReceiveMessage are limited to ``api_rate`` calls per second each: a send over
the quota is throttled (``rejected``, reason ``throttle``: the producer's retry decides), a
receive over it waits for the next call the quota allows.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from itertools import count
from typing import cast

from sim.engine.brokers.base import BrokerStage, Consumer
from sim.engine.kernel import Reusable
from sim.engine.records import DEAD_LETTERED, DROPPED, IN_SYSTEM, REJECTED, RETENTION, THROTTLE
from sim.model.broker_specs import SqsFifoSpec, SqsSpec


class SqsStage(BrokerStage):
    """An SQS standard queue (module docstring)."""

    def setup(self, spec: SqsSpec) -> None:
        self.spec = spec
        self.visible: deque[int] = deque()
        self.in_flight: dict[int, int] = {}
        """Message -> receipt of its latest receive, while hidden."""
        self.receipts = count(1)
        self.hungry: deque[Consumer] = deque()
        """Workers long-polling an empty queue, in the order they started waiting."""
        for consumer in self.consumers:
            self.wait(consumer)

    # --- send ------------------------------------------------------------------------------

    def accept(self, job: int, now: float) -> None:
        """SendMessage: the message becomes visible."""
        self.log.sqs_requests[job] += 1
        self.visible.append(job)
        self.dispatch(now)

    # --- receive -----------------------------------------------------------------------------

    def has_visible(self) -> bool:
        return bool(self.visible)

    def dispatch(self, now: float) -> None:
        """Messages are visible: long-polling workers receive them, longest waiting first."""
        hungry = self.hungry
        while hungry and self.has_visible() and not self.down:
            consumer = hungry[0]
            if not (consumer.up and consumer.job < 0 and not consumer.buffer):
                hungry.popleft()  # crashed, or busy again since it started waiting
                consumer.waiting = False
                continue
            if not self.may_receive(now):
                return
            hungry.popleft()
            consumer.waiting = False
            self.receive(consumer, now)
            self.wait(consumer)

    def refill(self, consumer: Consumer, now: float) -> None:
        """An idle worker receives; with nothing visible (or no quota) it waits, long-polling."""
        if self.has_visible() and self.may_receive(now):
            self.receive(consumer, now)
        self.wait(consumer)

    def wait(self, consumer: Consumer) -> None:
        """A worker that received nothing long-polls until messages are visible."""
        if consumer.up and consumer.job < 0 and not consumer.buffer and not consumer.waiting:
            consumer.waiting = True
            self.hungry.append(consumer)

    def may_receive(self, now: float) -> bool:
        return True

    def receive(self, consumer: Consumer, now: float) -> None:
        """One ReceiveMessage call: up to ``batch`` messages, hidden until the visibility timeout ends."""
        taken = self.take(now)
        if not taken:
            return
        receipt = next(self.receipts)
        in_flight, requests = self.in_flight, self.log.sqs_requests
        for job in taken:
            in_flight[job] = receipt
            requests[job] += 1 / len(taken)
        self.kernel.call_at(now + self.spec.visibility_timeout, self.on_visibility, (receipt, taken))
        for job in taken:
            self.hand(consumer, job, now)

    def admissible(self, job: int, now: float) -> bool:
        """Whether a visible message may be received now; past retention or max receives it leaves."""
        log, spec = self.log, self.spec
        if log.outcome[job] != IN_SYSTEM:
            return False  # processed by an earlier receive while it was visible again
        if now - log.arrival[job] > spec.retention:
            self.settle(job, DROPPED, now, RETENTION)
            return False
        if spec.max_receives is not None and log.receives[job] >= spec.max_receives:
            self.settle(job, DEAD_LETTERED, now)
            return False
        return True

    def take(self, now: float) -> list[int]:
        visible, batch = self.visible, self.spec.batch
        taken: list[int] = []
        while visible and len(taken) < batch:
            job = visible.popleft()
            if self.admissible(job, now):
                taken.append(job)
        return taken

    # --- delete, redeliver ---------------------------------------------------------------------

    def acked(self, consumer: Consumer, job: int, now: float) -> None:
        """DeleteMessage: the message leaves the queue (a copy received again still runs: a duplicate)."""
        self.log.sqs_requests[job] += 1
        self.deleted(job, self.in_flight.pop(job, None) is not None, now)

    def deleted(self, job: int, was_in_flight: bool, now: float) -> None:
        """A hook for FIFO groups."""

    def on_visibility(self, event: Reusable) -> None:
        """The receive's visibility timeout ended: its messages not deleted become visible again."""
        receipt, taken = cast(tuple[int, list[int]], event.value)
        outcome, in_flight = self.log.outcome, self.in_flight
        back = [job for job in taken if outcome[job] == IN_SYSTEM and in_flight.get(job) == receipt]
        for job in back:
            del in_flight[job]
        self.reappear(back)
        self.dispatch(event.due)

    def reappear(self, jobs: list[int]) -> None:
        self.visible.extend(jobs)

    def resume(self, now: float) -> None:
        self.dispatch(now)
        super().resume(now)

    def held(self) -> Iterable[int]:
        yield from self.visible
        yield from self.in_flight


class TokenBucket:
    """An API quota: ``rate`` calls per second, at most a second's worth saved up."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.size = max(1.0, rate)
        self.tokens = self.size
        self.at = 0.0

    def _refill(self, now: float) -> None:
        self.tokens = min(self.size, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens < 1 - 1e-9:
            return False
        self.tokens -= 1
        return True

    def next_call(self, now: float) -> float:
        """When the next call is allowed (strictly later than ``now`` when none is now)."""
        self._refill(now)
        return max(now + (1 - self.tokens) / self.rate, math.nextafter(now, math.inf))


class SqsFifoStage(SqsStage):
    """An SQS FIFO queue (module docstring)."""

    def setup(self, spec: SqsSpec) -> None:
        super().setup(spec)
        fifo = cast(SqsFifoSpec, spec)
        self.groups: dict[int, deque[int]] = {}
        """Group -> its visible messages, in order."""
        self.available: deque[int] = deque()
        """Groups with visible messages and none in flight, in the order they became so."""
        self.listed: set[int] = set()
        self.flying: dict[int, int] = {}
        """Group -> its messages in flight."""
        self.sends = TokenBucket(fifo.api_rate) if fifo.api_rate is not None else None
        self.receives = TokenBucket(fifo.api_rate) if fifo.api_rate is not None else None
        self.wake_pending = False

    def group(self, job: int) -> int:
        return self.log.key[job] if self.log.keyed else -1

    def accept(self, job: int, now: float) -> None:
        """SendMessage within the quota: the message joins its group."""
        if self.sends is not None and not self.sends.take(now):
            self.settle(job, REJECTED, now, THROTTLE)
            return
        self.log.sqs_requests[job] += 1
        group = self.group(job)
        self.groups.setdefault(group, deque()).append(job)
        self.offer(group)
        self.dispatch(now)

    def offer(self, group: int) -> None:
        """A group with visible messages and none in flight may be received from."""
        if group not in self.listed and not self.flying.get(group) and self.groups.get(group):
            self.listed.add(group)
            self.available.append(group)

    def has_visible(self) -> bool:
        return bool(self.available)

    def may_receive(self, now: float) -> bool:
        """ReceiveMessage within the quota; otherwise wake the waiting workers when it allows the next call."""
        if self.receives is None or self.receives.take(now):
            return True
        if not self.wake_pending:
            self.wake_pending = True
            self.kernel.call_at(self.receives.next_call(now), self.on_quota)
        return False

    def on_quota(self, event: Reusable) -> None:
        self.wake_pending = False
        self.dispatch(event.due)

    def take(self, now: float) -> list[int]:
        """As many messages of the first available group as the batch holds, then of the next groups."""
        available, batch, flying = self.available, self.spec.batch, self.flying
        taken: list[int] = []
        while available and len(taken) < batch:
            group = available[0]
            queue = self.groups[group]
            while queue and len(taken) < batch:
                job = queue.popleft()
                if self.admissible(job, now):
                    taken.append(job)
                    flying[group] = flying.get(group, 0) + 1
            if flying.get(group) or not queue:
                available.popleft()
                self.listed.discard(group)
        return taken

    def deleted(self, job: int, was_in_flight: bool, now: float) -> None:
        """The group's next message may be received once none of the group is in flight."""
        if was_in_flight:
            self.landed(self.group(job))
            self.dispatch(now)

    def landed(self, group: int) -> None:
        self.flying[group] -= 1
        if not self.flying[group]:
            del self.flying[group]
            self.offer(group)

    def reappear(self, jobs: list[int]) -> None:
        """Messages back from flight go to the head of their group, in their order."""
        for job in reversed(jobs):
            self.groups[self.group(job)].appendleft(job)
        for job in jobs:
            self.landed(self.group(job))

    def held(self) -> Iterable[int]:
        for queue in self.groups.values():
            yield from queue
        yield from self.in_flight
