"""A Google Cloud Pub/Sub subscription read by streaming-pull subscribers (``docs/brokers.md``).

- **Flow control**: each subscriber (consumer) holds at most ``max_outstanding`` messages
  delivered and not yet acked; the service pushes messages to subscribers with room, round robin.
- **Leases**: a delivered message must be acked within ``ack_deadline``; the client library
  extends the lease while it holds the message (``lease_extension``), up to ``max_lease``. A lease
  that runs out makes the message deliverable again: it is redelivered while the first copy may
  still be processed (a duplicate). A crashed subscriber stops extending: its messages are
  redelivered ``ack_deadline`` after the crash.
- **Nacks**: a failed processing is nacked and redelivered at once. With a dead-letter topic
  (``max_delivery_attempts``), a message delivered that many times is forwarded there instead.
- **Ordering keys** (``ordering``): messages of one key are delivered in order, the next only
  after the previous one is acked (one outstanding per key); keys go in parallel.
- **Retention**: an unacked message older than ``retention`` is discarded.

Lease deadlines cost one timer per subscriber (re-armed for its earliest deadline), not one per message.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import cast

from sim.engine.brokers.base import BrokerStage, Consumer
from sim.engine.kernel import Reusable
from sim.engine.records import DEAD_LETTERED, DROPPED, IN_SYSTEM, RETENTION
from sim.model.broker_specs import PubSubSpec

ORPHAN = -1
"""The holder of a crashed subscriber's messages until their lease runs out."""


class PubSubStage(BrokerStage):
    """A Pub/Sub subscription and its subscribers (module docstring)."""

    def setup(self, spec: PubSubSpec) -> None:
        self.spec = spec
        self.ready: deque[int] = deque()
        self.waiting_keys: dict[int, deque[int]] = {}
        """Ordering: each busy key's messages waiting for the previous one's ack."""
        self.busy_keys: set[int] = set()
        self.with_room: deque[Consumer] = deque()
        self.lease = spec.max_lease if spec.lease_extension else spec.ack_deadline
        self.holder: dict[int, tuple[int, int]] = {}
        """Message -> (subscriber, delivery serial) of its current lease."""
        self.leases: list[deque[tuple[float, int, int]]] = [deque() for _ in self.consumers]
        self.timer_set = [False] * len(self.consumers)
        for consumer in self.consumers:
            self.listen(consumer)

    def key(self, job: int) -> int:
        return self.log.key[job] if self.spec.ordering and self.log.keyed else -1

    def accept(self, job: int, now: float) -> None:
        """Publish: deliverable now, or behind the previous message of its ordering key."""
        key = self.key(job)
        if key >= 0:
            if key in self.busy_keys:
                self.waiting_keys.setdefault(key, deque()).append(job)
                return
            self.busy_keys.add(key)
        self.ready.append(job)
        self.dispatch(now)

    def release(self, job: int) -> None:
        """The key's message is settled: its next message becomes deliverable."""
        key = self.key(job)
        if key < 0:
            return
        waiting = self.waiting_keys.get(key)
        if waiting:
            self.ready.append(waiting.popleft())
        else:
            self.busy_keys.discard(key)

    def listen(self, consumer: Consumer) -> None:
        if consumer.up and not consumer.waiting and consumer.outstanding < self.spec.max_outstanding:
            consumer.waiting = True
            self.with_room.append(consumer)

    def deliverable(self, job: int, now: float) -> bool:
        log, spec = self.log, self.spec
        if log.outcome[job] == IN_SYSTEM:
            if now - log.arrival[job] > spec.retention:
                self.settle(job, DROPPED, now, RETENTION)
            elif spec.max_delivery_attempts is not None and log.receives[job] >= spec.max_delivery_attempts:
                self.settle(job, DEAD_LETTERED, now)  # forwarded to the dead-letter topic
            else:
                return True
        self.release(job)
        return False

    def dispatch(self, now: float) -> None:
        """Push deliverable messages to subscribers with room, round robin; each gets a lease."""
        ready, with_room = self.ready, self.with_room
        while ready and with_room and not self.down:
            consumer = with_room.popleft()
            consumer.waiting = False
            if not consumer.up or consumer.outstanding >= self.spec.max_outstanding:
                continue
            job = ready.popleft()
            if self.deliverable(job, now):
                self.holder[job] = (consumer.index, self.log.receives[job] + 1)  # the serial hand() gives it
                self.hand(consumer, job, now)
                self.hold(consumer, job, now)
            self.listen(consumer)

    def hold(self, consumer: Consumer, job: int, now: float) -> None:
        """The lease runs out at ``now + lease``; the subscriber's timer wakes at its earliest deadline."""
        index = consumer.index
        self.leases[index].append((now + self.lease, job, self.log.receives[job]))
        if not self.timer_set[index]:
            self.timer_set[index] = True
            self.kernel.call_at(now + self.lease, self.on_lease_end, (index, consumer.generation))

    def on_lease_end(self, event: Reusable) -> None:
        index, generation = cast(tuple[int, int], event.value)
        consumer = self.consumers[index]
        if consumer.generation != generation:
            return  # a crash took over this subscriber's messages
        self.timer_set[index] = False
        leases, now = self.leases[index], event.due
        while leases and leases[0][0] <= now:
            _, job, serial = leases.popleft()
            if self.holder.get(job) == (index, serial):
                del self.holder[job]
                consumer.outstanding -= 1
                self.redeliver(job)
        if leases:
            self.timer_set[index] = True
            self.kernel.call_at(leases[0][0], self.on_lease_end, (index, generation))
        self.listen(consumer)
        self.dispatch(now)

    def redeliver(self, job: int) -> None:
        """Deliverable again, ahead of the rest (its key stays busy, so its order holds)."""
        self.ready.appendleft(job)

    def still_valid(self, consumer: Consumer, job: int, serial: int) -> bool:
        return self.holder.get(job) == (consumer.index, serial)

    def acked(self, consumer: Consumer, job: int, now: float) -> None:
        del self.holder[job]
        self.release(job)
        self.listen(consumer)
        self.dispatch(now)

    def nacked(self, consumer: Consumer, job: int, now: float, reason: int) -> None:
        del self.holder[job]
        self.redeliver(job)
        self.listen(consumer)
        self.dispatch(now)

    def lost(self, consumer: Consumer, deliveries: list[tuple[int, int]], now: float) -> None:
        """Nobody extends the crashed subscriber's leases: its messages come back after ``ack_deadline``."""
        orphans = []
        for job, serial in deliveries:
            if self.holder.get(job) == (consumer.index, serial):
                self.holder[job] = (ORPHAN, serial)
                orphans.append((job, serial))
        self.leases[consumer.index].clear()
        self.timer_set[consumer.index] = False
        if orphans:
            self.kernel.call_at(now + self.spec.ack_deadline, self.on_orphans, orphans)

    def on_orphans(self, event: Reusable) -> None:
        for job, serial in cast(list[tuple[int, int]], event.value):
            if self.holder.get(job) == (ORPHAN, serial):
                del self.holder[job]
                self.redeliver(job)
        self.dispatch(event.due)

    def joined(self, consumer: Consumer, now: float) -> None:
        self.listen(consumer)
        self.dispatch(now)

    def resume(self, now: float) -> None:
        self.dispatch(now)
        super().resume(now)

    def refill(self, consumer: Consumer, now: float) -> None:
        self.listen(consumer)
        self.dispatch(now)

    def held(self) -> Iterable[int]:
        yield from self.ready
        for waiting in self.waiting_keys.values():
            yield from waiting
        yield from (job for job, (holder, _) in self.holder.items() if holder == ORPHAN)
