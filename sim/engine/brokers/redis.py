"""Redis pub/sub: fire and forget, at most once (``docs/brokers.md``).

The consumers are one subscribing application sharing its connection to Redis. A published
message reaches the subscriber only if it is connected at that moment; otherwise it is ``lost``
(reason ``disconnected``). Messages the consumers cannot take yet wait in Redis's output buffer
for that client: past ``buffer_hard`` bytes, or above ``buffer_soft`` for ``soft_seconds`` in a
row, Redis disconnects the subscriber and the buffer is lost; it subscribes again ``reconnect``
later. A consumer that crashes loses what it was processing (``lost``, reason ``crash``); when no
consumer is left the subscriber is gone, and so is what was buffered. Nothing is acknowledged and
nothing is redelivered: a failed processing is ``failed``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

from sim.engine.brokers.base import BrokerStage, Consumer
from sim.engine.kernel import Reusable
from sim.engine.records import CRASH, DISCONNECTED, FAILED, LOST
from sim.model.broker_specs import RedisSpec


class RedisStage(BrokerStage):
    """A Redis pub/sub channel and one subscribing application (module docstring)."""

    def setup(self, spec: RedisSpec) -> None:
        self.spec = spec
        self.backlog: deque[int] = deque()
        """The subscriber's output buffer in Redis: published, not yet read."""
        self.idle: deque[Consumer] = deque()
        self.connected = True
        self.reconnecting = False
        self.soft_since = math.nan
        self.soft_epoch = 0
        for consumer in self.consumers:
            self.listen(consumer)

    def listen(self, consumer: Consumer) -> None:
        if consumer.up and not consumer.waiting:
            consumer.waiting = True
            self.idle.append(consumer)

    def accept(self, job: int, now: float) -> None:
        """PUBLISH: to a connected subscriber (read at once by an idle consumer, else buffered), or lost."""
        if not self.connected:
            self.settle(job, LOST, now, DISCONNECTED)
            return
        idle = self.idle
        while idle:
            consumer = idle.popleft()
            consumer.waiting = False
            if consumer.up and consumer.job < 0 and not consumer.buffer:
                self.hand(consumer, job, now)
                return
        self.backlog.append(job)
        self.check_limits(now)

    def buffered_bytes(self) -> float:
        return len(self.backlog) * self.spec.message_bytes

    def check_limits(self, now: float) -> None:
        """client-output-buffer-limit pubsub: the hard limit at once, the soft one after soft_seconds above it."""
        size, spec = self.buffered_bytes(), self.spec
        if size >= spec.buffer_hard:
            self.disconnect(now)
        elif size >= spec.buffer_soft and math.isnan(self.soft_since):
            self.soft_since = now
            self.kernel.call_at(now + spec.soft_seconds, self.on_soft_limit, self.soft_epoch)

    def on_soft_limit(self, event: Reusable) -> None:
        if event.value == self.soft_epoch and self.connected and self.buffered_bytes() >= self.spec.buffer_soft:
            self.disconnect(event.due)

    def below_soft(self) -> None:
        """The buffer fell below the soft limit: the next time above it starts a new count."""
        if not math.isnan(self.soft_since) and self.buffered_bytes() < self.spec.buffer_soft:
            self.soft_since = math.nan
            self.soft_epoch += 1

    def refill(self, consumer: Consumer, now: float) -> None:
        """An idle consumer reads the next buffered message, or waits for the next publish."""
        if self.backlog and self.connected:
            job = self.backlog.popleft()
            self.below_soft()
            self.hand(consumer, job, now)
        else:
            self.listen(consumer)

    def disconnect(self, now: float, reconnect: bool = True) -> None:
        """Redis closes the subscriber's connection: its output buffer is lost."""
        self.connected = False
        for job in self.backlog:
            self.settle(job, LOST, now, DISCONNECTED)
        self.backlog.clear()
        self.soft_since = math.nan
        self.soft_epoch += 1
        if reconnect and not self.reconnecting and any(consumer.up for consumer in self.consumers):
            self.reconnecting = True
            self.kernel.call_at(now + self.spec.reconnect, self.on_reconnect)

    def on_reconnect(self, event: Reusable) -> None:
        self.reconnecting = False
        if not self.down and any(consumer.up for consumer in self.consumers):
            self.connected = True

    def nacked(self, consumer: Consumer, job: int, now: float, reason: int) -> None:
        self.settle(job, FAILED, now, reason)  # nobody will deliver it again

    def lost(self, consumer: Consumer, deliveries: list[tuple[int, int]], now: float) -> None:
        """What the crashed consumer held is gone; with no consumer left, the subscription is gone too."""
        for job, _ in deliveries:
            self.settle(job, LOST, now, CRASH)
        if not any(other.up for other in self.consumers):
            self.disconnect(now, reconnect=False)

    def joined(self, consumer: Consumer, now: float) -> None:
        """A restarted consumer subscribes again (its restart delay covered the reconnection)."""
        if not self.connected and not self.reconnecting and not self.down:
            self.connected = True
        self.listen(consumer)

    def outage_began(self, now: float) -> None:
        self.disconnect(now, reconnect=False)

    def resume(self, now: float) -> None:
        if any(consumer.up for consumer in self.consumers):
            self.connected = True
        super().resume(now)

    def held(self) -> Iterable[int]:
        return self.backlog
