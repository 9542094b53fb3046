"""What every broker model shares: consumers that process one message at a time, crashes, outages, hops.

The life of a message in any broker model:

1. **publish** - the producer sends it (:meth:`BrokerStage.publish`); while the broker is down the
   send fails (``rejected``, reason ``outage``: the producer's ``retry`` decides). After the
   publish hop the broker **accepts** it (:meth:`BrokerStage.accept`, the broker's own rule: a
   partition log, a queue, a subscriber's output buffer...);
2. **deliver** - the broker hands it to a consumer (:meth:`BrokerStage.hand`): it joins the
   consumer's local buffer (a poll's records, a prefetch window, a receive batch) and is ready
   there after the delivery hop. Every delivery counts in ``receives``;
3. **process** - a consumer runs one message at a time (:meth:`BrokerStage.begin`): its service
   time, slowed down or failed as :class:`~sim.engine.consumers.Execution` says. Each processing
   is an invocation (start, end), which is how busy consumers are counted;
4. **ack or nack** - the first successful processing decides the outcome (``completed`` or
   ``late``); any later one is a ``duplicate``. Then the broker's rule: delete, commit, ack
   (:meth:`BrokerStage.acked`), or, after a failure, redeliver, requeue, dead-letter
   (:meth:`BrokerStage.nacked`).

A **crash** (:meth:`BrokerStage.crash`) loses the consumer's work in progress and its buffer; what
happens to those messages is the broker's rule (:meth:`BrokerStage.lost`). Its pending completion
is cancelled through :meth:`sim.engine.kernel.Kernel.defuse`. Events per message stay few and
constant: a completion, and a publish hop when there is one; deadlines are one event per batch or
per consumer, never one per message and timer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any, cast

import numpy as np

from sim.engine.consumers import Execution
from sim.engine.kernel import Handler, Kernel, Reusable
from sim.engine.records import COMPLETED, IN_SYSTEM, LATE, NO_REASON, OUTAGE, REJECTED, JobLog
from sim.engine.stage import NO_LIVE_JOB, Listener
from sim.model.distributions import Sampler
from sim.model.schema import StageSpec

Delivery = tuple[int, float, int]
"""A message in a consumer's buffer: (job, when it is ready there, its delivery serial)."""


class Consumer:
    """One consumer instance: processes one message at a time, holds a buffer of delivered ones.

    ``serial`` is the delivery count of the message in progress (its ``receives`` when handed over),
    so a broker can tell a stale delivery from the current one; ``outstanding`` counts messages
    delivered and not yet acked, nacked or expired (prefetch and flow control limit it).
    """

    __slots__ = ("buffer", "call", "event", "generation", "index", "job", "outstanding", "reason", "serial", "up",
                 "waiting")

    def __init__(self, kernel: Kernel, index: int) -> None:
        self.event = Reusable(kernel, self)
        self.index = index
        self.buffer: deque[Delivery] = deque()
        self.job = -1
        """The message in progress (-1: idle)."""
        self.up = True
        self.reason = NO_REASON
        """Why the work in progress fails when it ends (0: it succeeds)."""
        self.call = -1
        """Its row in the invocation lists."""
        self.serial = 0
        self.outstanding = 0
        self.waiting = False
        """Listed among the consumers waiting for messages (a long poll, a free prefetch slot)."""
        self.generation = 0
        """Lives so far: a timer set in an earlier life (before a crash) finds another generation."""


class BrokerStage:
    """A brokered stage at run time; subclasses supply the broker's rules (the hooks below)."""

    def __init__(self, kernel: Kernel, spec: StageSpec, log: JobLog, execution: Execution,
                 listener: Listener | None, hops: tuple[np.random.Generator, np.random.Generator]) -> None:
        broker = spec.queue.broker
        assert broker is not None
        self.kernel = kernel
        self.log = log
        self.execution = execution
        self.listener = listener
        self.consumers = [Consumer(kernel, index) for index in range(spec.consumers.concurrency)]
        self.done: list[Handler] = [self.on_done]
        self.memory_gb = spec.consumers.memory_gb
        latency = broker.latency
        self.publish_hop = (Sampler(latency.publish.build(), hops[0])
                            if latency is not None and latency.publish is not None else None)
        self.deliver_hop = (Sampler(latency.deliver.build(), hops[1])
                            if latency is not None and latency.deliver is not None else None)
        self.down = False
        """The broker is in an outage."""
        self.in_transit: set[int] = set()
        """Messages on the publish hop."""
        self.last_arrival: dict[int, float] = {}
        """When each producer's latest message reaches the broker (hops never overtake each other)."""
        self.invocations: tuple[list[float], list[float]] = ([], [])
        self.last_end = 0.0

    # --- the broker's rules ------------------------------------------------------------------

    def setup(self, spec: Any) -> None:
        """Take the ``queue.broker`` block of its kind (its fields are typed there)."""
        raise NotImplementedError

    def accept(self, job: int, now: float) -> None:
        """The message reached the broker."""
        raise NotImplementedError

    def refill(self, consumer: Consumer, now: float) -> None:
        """An idle consumer with an empty buffer asks for messages (a poll, a receive, a free slot)."""
        raise NotImplementedError

    def acked(self, consumer: Consumer, job: int, now: float) -> None:
        """The consumer processed the message successfully (delete, commit, ack)."""

    def nacked(self, consumer: Consumer, job: int, now: float, reason: int) -> None:
        """The processing failed (redeliver, requeue, dead-letter, or fail)."""

    def lost(self, consumer: Consumer, deliveries: list[tuple[int, int]], now: float) -> None:
        """A crash took these (job, serial) deliveries with it: the one in progress first, then the buffer."""

    def joined(self, consumer: Consumer, now: float) -> None:
        """The consumer is up again (after its restart delay)."""

    def resume(self, now: float) -> None:
        """The broker is back from an outage: idle consumers ask for messages again."""
        for consumer in self.consumers:
            if consumer.up and consumer.job < 0:
                self.start_next(consumer, now)

    def outage_began(self, now: float) -> None:
        """The broker went down (Redis drops its subscribers)."""

    def still_valid(self, consumer: Consumer, job: int, serial: int) -> bool:
        """Whether a buffered delivery is still the consumer's to process (a lease may have expired)."""
        return True

    def held(self) -> Iterable[int]:
        """Messages the broker itself holds (not counting consumers' buffers and work)."""
        raise NotImplementedError

    def replayable(self) -> int:
        """The smallest message a broker may deliver again although it left its structures (a log's commit)."""
        return NO_LIVE_JOB

    # --- the shared steps --------------------------------------------------------------------

    def publish(self, job: int, now: float) -> None:
        """The producer sends the message (the stage's ``admit``)."""
        if self.down:
            self.settle(job, REJECTED, now, OUTAGE)
        elif self.publish_hop is None:
            self.accept(job, now)
        else:
            # One connection per producer: its messages reach the broker in the order it sent them.
            producer = self.log.producer[job]
            due = max(now + self.publish_hop(), self.last_arrival.get(producer, now))
            self.last_arrival[producer] = due
            self.in_transit.add(job)
            self.kernel.call_at(due, self._arrive, job)

    def _arrive(self, event: Reusable) -> None:
        job = cast(int, event.value)
        self.in_transit.discard(job)
        now = event.due
        if self.down:
            self.settle(job, REJECTED, now, OUTAGE)  # the broker went down while the message travelled
        else:
            self.accept(job, now)

    def hand(self, consumer: Consumer, job: int, now: float) -> None:
        """Deliver a message into a consumer's buffer; an idle consumer starts on it."""
        receives = self.log.receives
        receives[job] += 1
        ready = now + self.deliver_hop() if self.deliver_hop is not None else now
        consumer.buffer.append((job, ready, receives[job]))
        consumer.outstanding += 1
        if consumer.job < 0:
            self.start_next(consumer, now)

    def start_next(self, consumer: Consumer, now: float) -> None:
        """An idle consumer takes the next valid message of its buffer, or asks the broker for more."""
        buffer = consumer.buffer
        while consumer.job < 0 and consumer.up:
            if not buffer:
                if not self.down:
                    self.refill(consumer, now)
                return
            job, ready, serial = buffer.popleft()
            if self.still_valid(consumer, job, serial):
                self.begin(consumer, job, max(now, ready), serial)

    def begin(self, consumer: Consumer, job: int, start: float, serial: int) -> None:
        """Process one message: one invocation, its completion event re-armed."""
        log = self.log
        if not log.start[job] <= start:  # NaN (never started) or a later start of an earlier call (a hop)
            log.start[job] = start
        work, reason = self.execution.run(log.service[job], start, log.producer[job])
        consumer.job, consumer.reason, consumer.serial = job, reason, serial
        starts, ends = self.invocations
        consumer.call = len(starts)
        starts.append(start)
        ends.append(start + work)
        log.gb_seconds[job] += work * self.memory_gb
        log.invocations[job] += 1
        self.kernel.rearm(consumer.event, self.done, start + work)

    def on_done(self, event: Reusable) -> None:
        """A processing ended: record it, let the broker ack or nack, take the next message."""
        consumer: Consumer = event.owner
        now = event.due
        job = consumer.job
        consumer.job = -1
        self.last_end = now
        current = self.still_valid(consumer, job, consumer.serial)
        if current:
            consumer.outstanding -= 1
        if consumer.reason:
            if current:
                self.nacked(consumer, job, now, consumer.reason)
        else:
            self.succeed(job, now)
            if current:
                self.acked(consumer, job, now)
        self.start_next(consumer, now)

    def succeed(self, job: int, now: float) -> None:
        """The first successful processing decides the outcome; any later one is a duplicate."""
        log = self.log
        if log.outcome[job] == IN_SYSTEM:
            log.outcome[job] = COMPLETED if now <= log.deadline[job] else LATE
            log.finish[job] = now
            if self.listener is not None:
                self.listener.served(job, now)
            self.resolved(job, now)
        else:
            log.duplicates[job] += 1

    def settle(self, job: int, code: int, now: float, why: int = NO_REASON) -> None:
        """The message leaves without a successful processing (rejected, lost, dead-lettered...)."""
        log = self.log
        if log.outcome[job] != IN_SYSTEM:
            return
        log.outcome[job] = code
        log.finish[job] = now
        log.reason[job] = why
        if self.listener is not None:
            self.listener.failed(job, code, now)
        self.resolved(job, now)

    def resolved(self, job: int, now: float) -> None:
        """The message has its outcome (SQS FIFO passes it on to deduplicated copies)."""

    # --- faults ------------------------------------------------------------------------------

    def alive(self) -> list[int]:
        return [consumer.index for consumer in self.consumers if consumer.up]

    def crash(self, indexes: list[int], now: float) -> None:
        """Consumers crash: their work in progress and their buffers are lost (the broker's rule decides the rest)."""
        for index in indexes:
            consumer = self.consumers[index]
            if not consumer.up:
                continue
            consumer.up = False
            consumer.generation += 1
            deliveries = []
            if consumer.job >= 0:
                consumer.event = self.kernel.defuse(consumer.event)
                starts, ends = self.invocations
                cut = max(now, starts[consumer.call])
                self.log.gb_seconds[consumer.job] -= (ends[consumer.call] - cut) * self.memory_gb
                ends[consumer.call] = cut
                deliveries.append((consumer.job, consumer.serial))
                consumer.job = -1
            deliveries.extend((job, serial) for job, _, serial in consumer.buffer)
            consumer.buffer.clear()
            consumer.outstanding = 0
            consumer.waiting = False
            self.lost(consumer, deliveries, now)

    def restart(self, indexes: list[int], now: float) -> None:
        for index in indexes:
            consumer = self.consumers[index]
            if consumer.up:
                continue
            consumer.up = True
            self.joined(consumer, now)
            self.start_next(consumer, now)

    def broker_down(self, now: float) -> None:
        if not self.down:
            self.down = True
            self.outage_began(now)

    def broker_up(self, now: float) -> None:
        if self.down:
            self.down = False
            self.resume(now)

    # --- the end-of-run report ---------------------------------------------------------------

    def _live(self) -> tuple[set[int], set[int]]:
        """Messages still in the system: (held by the broker, transit or buffers; in processing)."""
        outcome = self.log.outcome
        processing = {c.job for c in self.consumers if c.job >= 0 and outcome[c.job] == IN_SYSTEM}
        held = {job for job in self.held() if outcome[job] == IN_SYSTEM}
        held.update(job for job in self.in_transit if outcome[job] == IN_SYSTEM)
        for consumer in self.consumers:
            held.update(job for job, _, _ in consumer.buffer if outcome[job] == IN_SYSTEM)
        return held - processing, processing

    def waiting(self) -> int:
        return len(self._live()[0])

    def serving(self) -> int:
        return len(self._live()[1])

    def oldest_live(self) -> int:
        """The smallest job the stage may still write to (see :attr:`sim.engine.stage.Stage.oldest_live`)."""
        found = [self.replayable()]
        found.extend(self.held())
        found.extend(self.in_transit)
        for consumer in self.consumers:
            if consumer.job >= 0:
                found.append(consumer.job)
            found.extend(job for job, _, _ in consumer.buffer)
        return min(found)
