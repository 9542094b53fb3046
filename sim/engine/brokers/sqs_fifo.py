"""SQS FIFO queues read by a pool of workers (``docs/brokers.md``).

The producer's key is the message group (no key: one group for everything). Messages of a group
are received in order, and none of a group while any of its messages is in flight (received, not
yet deleted or visible again); groups go in parallel. SendMessage and ReceiveMessage are limited
to ``api_rate`` calls per second each: a send over the quota is throttled (``rejected``, reason
``throttle``: the producer's retry decides), a receive over it waits for the next call the quota
allows. A client's retry of a message it sent less than ``dedup_window`` ago is accepted but not
delivered (deduplication): the retry ends as the first send does.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from typing import cast

from sim.engine.brokers.sqs import SqsStage
from sim.engine.kernel import Reusable
from sim.engine.records import COMPLETED, IN_SYSTEM, LATE, REJECTED, THROTTLE
from sim.model.broker_specs import SqsFifoSpec, SqsSpec


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
        self.dedup_window = fifo.dedup_window
        self.first_sent: dict[int, tuple[int, float]] = {}
        """Request -> (its first accepted attempt, when), for clients that retry."""
        self.copies: dict[int, list[int]] = {}
        """Message -> deduplicated retries waiting for its outcome."""

    def group(self, job: int) -> int:
        return self.log.key[job] if self.log.keyed else -1

    def accept(self, job: int, now: float) -> None:
        """SendMessage within the quota: the message joins its group."""
        if self.sends is not None and not self.sends.take(now):
            self.settle(job, REJECTED, now, THROTTLE)
            return
        self.log.sqs_requests[job] += 1
        if self.deduplicated(job, now):
            return
        group = self.group(job)
        self.groups.setdefault(group, deque()).append(job)
        self.offer(group)
        self.dispatch(now)

    def deduplicated(self, job: int, now: float) -> bool:
        """A retry of a request sent within the deduplication window is accepted but not delivered."""
        log = self.log
        if len(log.request) <= job:
            return False  # requests are their own single job: no message is ever sent twice
        request = log.request[job]
        first = self.first_sent.get(request)
        if first is None or now - first[1] > self.dedup_window:
            self.first_sent[request] = (job, now)
            return False
        if log.outcome[first[0]] == IN_SYSTEM:
            self.copies.setdefault(first[0], []).append(job)
        else:
            self.copy_outcome(first[0], job, now)
        return True

    def resolved(self, job: int, now: float) -> None:
        for copy in self.copies.pop(job, ()):
            self.copy_outcome(job, copy, now)

    def copy_outcome(self, original: int, copy: int, now: float) -> None:
        """The deduplicated retry ends as its first send did (the client hears of that one)."""
        log = self.log
        if log.outcome[original] in (COMPLETED, LATE):
            log.start[copy] = max(log.start[original], log.arrival[copy])
            self.succeed(copy, now)
        else:
            self.settle(copy, log.outcome[original], now, log.reason[original])

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
        for copies in self.copies.values():
            yield from copies
