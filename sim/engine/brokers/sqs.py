"""SQS read by a pool of workers (``docs/brokers.md``).

**Standard** (:class:`SqsStage`): a worker with nothing to do long-polls; ReceiveMessage returns up
to ``batch`` visible messages, hidden for ``visibility_timeout``; the worker processes them one
after another and deletes each one it processed successfully. A message not deleted when its
visibility timeout ends becomes visible again and is received again: after a failure, after a
crash, or while its first processing is still running (a duplicate). A message past
``retention`` is deleted unprocessed; one received ``max_receives`` times goes to the dead-letter
queue on its next receive. Visibility costs one event per receive, not per message.

FIFO queues (:mod:`sim.engine.brokers.sqs_fifo`) add message groups, quotas and deduplication.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from itertools import count
from typing import cast

from sim.engine.brokers.base import BrokerStage, Consumer
from sim.engine.kernel import Reusable
from sim.engine.records import DEAD_LETTERED, DROPPED, IN_SYSTEM, RETENTION
from sim.model.broker_specs import SqsSpec


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
