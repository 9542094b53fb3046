"""A RabbitMQ queue pushing to consumers with a prefetch count and manual acks (``docs/brokers.md``).

- **Push**: the queue delivers its ready messages, oldest first, round robin to the consumers that
  have fewer than ``prefetch`` unacknowledged deliveries (``prefetch: 0`` is unlimited). Each
  consumer processes its deliveries one at a time and acks each when done. With ``prefetch: 1``
  the ready queue is shared by all consumers (M/M/c); a large prefetch pushes messages into the
  buffers of busy consumers while others may idle.
- **Nack**: a failed processing is nacked; ``on_failure: requeue`` puts the message back at the
  head of the queue (redelivered), ``reject`` dead-letters it (or discards it: ``failed``).
  ``delivery_limit`` (quorum queues) dead-letters a message returned that many times.
- **Lost connections**: a crashed consumer's unacknowledged messages (in progress and buffered) go
  back to the head of the queue, in their order, and are redelivered. A delivery left unacked
  longer than ``ack_timeout`` closes the consumer's channel the same way (it reconnects at once).
- **Length limit**: ``max_length`` counts ready messages only; when full, ``drop-head`` drops (or
  dead-letters) the oldest, ``reject-publish`` refuses the new one (the producer's retry decides),
  ``reject-publish-dlx`` refuses and dead-letters it.
- **TTL**: a message older than ``message_ttl`` is dropped (or dead-lettered) when it reaches the
  head of the queue.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from typing import cast

from sim.engine.brokers.base import BrokerStage, Consumer
from sim.engine.kernel import Reusable
from sim.engine.records import CRASH, DEAD_LETTERED, DROPPED, FAILED, IN_SYSTEM, OVERFLOW, REJECTED, TTL
from sim.model.broker_specs import RabbitSpec


class RabbitStage(BrokerStage):
    """A RabbitMQ queue and its consumers (module docstring)."""

    def setup(self, spec: RabbitSpec) -> None:
        self.spec = spec
        self.ready: deque[int] = deque()
        self.limit = spec.prefetch if spec.prefetch > 0 else math.inf
        self.with_room: deque[Consumer] = deque()
        """Consumers below their prefetch count, in round-robin order (``waiting`` marks them)."""
        self.delivered: dict[int, float] = {}
        """When each unacknowledged message was delivered (for the acknowledgement timeout)."""
        for consumer in self.consumers:
            self.listen(consumer)

    def accept(self, job: int, now: float) -> None:
        """The message joins the ready queue (within the length limit) and is pushed if a consumer has room."""
        spec, ready = self.spec, self.ready
        if spec.max_length is not None and len(ready) >= spec.max_length and not (self.with_room and not ready):
            if spec.overflow == "reject-publish":
                self.settle(job, REJECTED, now, OVERFLOW)
                return
            if spec.overflow == "reject-publish-dlx":
                self.settle(job, DEAD_LETTERED, now, OVERFLOW)
                return
            if ready:
                self.dead(ready.popleft(), now, OVERFLOW)
            else:
                self.dead(job, now, OVERFLOW)  # max_length 0: nothing may wait
                return
        ready.append(job)
        self.dispatch(now)

    def dead(self, job: int, now: float, why: int) -> None:
        """Dead-lettered when a dead-letter exchange is configured, else dropped."""
        self.settle(job, DEAD_LETTERED if self.spec.dead_letter else DROPPED, now, why)

    def listen(self, consumer: Consumer) -> None:
        if consumer.up and not consumer.waiting and consumer.outstanding < self.limit:
            consumer.waiting = True
            self.with_room.append(consumer)

    def dispatch(self, now: float) -> None:
        """Push ready messages, oldest first, round robin to the consumers with room."""
        ready, with_room, ttl, arrival = self.ready, self.with_room, self.spec.message_ttl, self.log.arrival
        outcome = self.log.outcome
        while ready and with_room and not self.down:
            consumer = with_room.popleft()
            consumer.waiting = False
            if not consumer.up or consumer.outstanding >= self.limit:
                continue
            job = ready.popleft()
            while outcome[job] != IN_SYSTEM or (ttl is not None and now - arrival[job] > ttl):
                if outcome[job] == IN_SYSTEM:
                    self.dead(job, now, TTL)  # expired at the head of the queue
                if not ready:
                    job = -1
                    break
                job = ready.popleft()
            if job >= 0:
                self.delivered[job] = now
                self.hand(consumer, job, now)
            self.listen(consumer)

    def refill(self, consumer: Consumer, now: float) -> None:
        self.listen(consumer)
        self.dispatch(now)

    def begin(self, consumer: Consumer, job: int, start: float, serial: int) -> None:
        """Process; a delivery that will stay unacked past ``ack_timeout`` gets its channel closed then."""
        super().begin(consumer, job, start, serial)
        timeout = self.delivered.get(job, start) + self.spec.ack_timeout
        if self.invocations[1][consumer.call] > timeout:
            self.kernel.call_at(max(start, timeout), self.on_ack_timeout, (consumer.index, consumer.generation))

    def on_ack_timeout(self, event: Reusable) -> None:
        index, generation = cast(tuple[int, int], event.value)
        consumer = self.consumers[index]
        if consumer.up and consumer.generation == generation:
            self.crash([index], event.due)  # the channel is closed: its deliveries are requeued
            self.restart([index], event.due)

    def acked(self, consumer: Consumer, job: int, now: float) -> None:
        self.delivered.pop(job, None)
        self.listen(consumer)
        self.dispatch(now)

    def nacked(self, consumer: Consumer, job: int, now: float, reason: int) -> None:
        """basic.nack: requeue at the head, or reject (dead-letter, or discard: failed)."""
        self.delivered.pop(job, None)
        if self.spec.on_failure == "reject":
            self.settle(job, DEAD_LETTERED if self.spec.dead_letter else FAILED, now, reason)
        else:
            self.requeue([job], now, reason)
        self.listen(consumer)
        self.dispatch(now)

    def requeue(self, jobs: list[int], now: float, why: int) -> None:
        """Back to the head of the queue in their order; past the delivery limit, dead-lettered (or
        dropped) with the reason they came back (an error, a crash)."""
        limit, receives = self.spec.delivery_limit, self.log.receives
        for job in reversed(jobs):
            if self.log.outcome[job] != IN_SYSTEM:
                continue
            if limit is not None and receives[job] >= limit:
                self.dead(job, now, why)
            else:
                self.ready.appendleft(job)

    def lost(self, consumer: Consumer, deliveries: list[tuple[int, int]], now: float) -> None:
        """The connection is gone: every unacknowledged delivery is requeued."""
        jobs = [job for job, _ in deliveries]
        for job in jobs:
            self.delivered.pop(job, None)
        self.requeue(jobs, now, CRASH)
        self.dispatch(now)

    def joined(self, consumer: Consumer, now: float) -> None:
        self.listen(consumer)
        self.dispatch(now)

    def resume(self, now: float) -> None:
        self.dispatch(now)
        super().resume(now)

    def held(self) -> Iterable[int]:
        return self.ready
