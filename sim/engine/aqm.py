"""Active queue management: dropping requests early, before the queue is full.

Two kinds (sources in ``docs/modelling.md``, queue management):

- **on arrival** (:class:`Red`, :class:`Proportional`): decide whether an arriving request
  that would have to wait is dropped instead;
- **at the head** (:class:`Codel`, :class:`FailAtScale`): wrap the queue's ``pop`` and drop
  requests that have waited too long, measured by their sojourn at dequeue.

Each policy is a small object with the state its algorithm needs. Dropped requests leave
through ``drop(job, now)``, which the stage records as outcome ``dropped``, reason ``aqm``.
Random numbers for the probabilistic policies come in blocks from the stage's own stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from sim.engine.queues import Queue

Drop = Callable[[int, float], None]


class Red:
    """Classic RED (Floyd & Jacobson 1993).

    ``avg`` is an exponentially weighted moving average of the queue length, updated at
    every arrival. Below ``min`` nothing is dropped; at or above ``max`` every arrival that
    must wait is; in between the base probability ``p_b = max_p (avg - min) / (max - min)``
    is spread out by the count correction ``p = p_b / (1 - count p_b)``, where ``count`` is
    the number of arrivals since the last drop, so drops come at roughly even intervals
    instead of in clusters. ``classes`` limits early drops to those producers (the others
    still move the average and are only dropped when the queue is full).

    Floyd's idle-time correction is replaced by updating the average on every arrival,
    including those served at once (with the queue length they see, 0).
    """

    def __init__(self, low: float, high: float, max_p: float, weight: float,
                 in_scope: Sequence[bool], uniform: Callable[[], float]) -> None:
        self.low, self.high, self.max_p, self.weight = low, high, max_p, weight
        self.in_scope = list(in_scope)
        self.uniform = uniform
        self.avg = 0.0
        self.count = -1

    def __call__(self, producer: int, length: int, must_wait: bool) -> bool:
        """Update the average with this arrival; True if it is dropped."""
        self.avg += self.weight * (length - self.avg)
        if not must_wait or not self.in_scope[producer]:
            return False
        if self.avg < self.low:
            self.count = -1
            return False
        if self.avg >= self.high:
            self.count = 0
            return True
        self.count += 1
        base = self.max_p * (self.avg - self.low) / (self.high - self.low)
        spread = 1.0 - self.count * base
        probability = 1.0 if spread <= base else base / spread
        if self.uniform() < probability:
            self.count = 0
            return True
        return False


class Proportional:
    """The encore.dev article's RED: drop with probability ``queue length / capacity``.

    Instantaneous length, no averaging, no thresholds; only ``classes`` are dropped early.
    """

    def __init__(self, capacity: int, in_scope: Sequence[bool], uniform: Callable[[], float]) -> None:
        self.capacity = capacity
        self.in_scope = list(in_scope)
        self.uniform = uniform

    def __call__(self, producer: int, length: int, must_wait: bool) -> bool:
        if not must_wait or not self.in_scope[producer] or self.capacity == 0:
            return False  # with no room at all the overflow rule decides
        return self.uniform() < length / self.capacity


class HeadDrop:
    """A policy that wraps a queue's ``pop`` and drops requests that waited too long at the head."""

    def __init__(self, queue: Queue, arrival: Sequence[float], drop: Drop, target: float, interval: float) -> None:
        self.queue = queue
        self.arrival = arrival
        """Arrival times by job id: the sojourn at dequeue is ``now - arrival[job]``."""
        self.drop = drop
        self.target = target
        self.interval = interval

    def pop(self, now: float) -> int:
        """The next request to serve after any drops; -1 if none is left."""
        raise NotImplementedError


class Codel(HeadDrop):
    """CoDel (Nichols & Jacobson; RFC 8289) on a queue of requests.

    Each request's sojourn is measured when it is dequeued. Once sojourns have stayed at or
    above ``target`` for a whole ``interval``, CoDel enters dropping mode and drops at the
    head; while dropping, the next drop is due at ``drop_next = t + interval / sqrt(count)``,
    so drops accelerate until the sojourn falls below target. The RFC's "at most one packet
    in the queue" guard becomes "the queue is empty after this dequeue": a lone request is
    never dropped. This follows the RFC's pseudocode (``dodequeue``/``dequeue``) line by line.
    """

    def __init__(self, queue: Queue, arrival: Sequence[float], drop: Drop, target: float, interval: float) -> None:
        super().__init__(queue, arrival, drop, target, interval)
        self.first_above_time = -1.0  # -1: not above target
        self.drop_next = 0.0
        self.count = 0
        self.last_count = 0
        self.dropping = False

    def _dodequeue(self, now: float) -> tuple[int, bool]:
        if not self.queue:
            self.first_above_time = -1.0
            return -1, False
        job = self.queue.pop()
        sojourn = now - self.arrival[job]
        if sojourn < self.target or not self.queue:
            self.first_above_time = -1.0
            return job, False
        if self.first_above_time < 0:
            self.first_above_time = now + self.interval
            return job, False
        return job, now >= self.first_above_time

    def _control_law(self, t: float) -> float:
        return t + self.interval / math.sqrt(self.count)

    def pop(self, now: float) -> int:
        """The next request to serve, after the drops CoDel makes now; -1 if none is left."""
        job, ok_to_drop = self._dodequeue(now)
        if job < 0:
            self.dropping = False
            return -1
        if self.dropping:
            if not ok_to_drop:
                self.dropping = False
            while self.dropping and now >= self.drop_next:
                self.drop(job, now)
                self.count += 1
                job, ok_to_drop = self._dodequeue(now)
                if job < 0:
                    self.dropping = False
                    return -1
                if not ok_to_drop:
                    self.dropping = False
                else:
                    self.drop_next = self._control_law(self.drop_next)
        elif ok_to_drop:
            self.drop(job, now)
            job, ok_to_drop = self._dodequeue(now)
            self.dropping = True
            delta = self.count - self.last_count
            self.count = 1
            if delta > 1 and now - self.drop_next < 16 * self.interval:
                self.count = delta
            self.drop_next = self._control_law(now)
            self.last_count = self.count
        return job


class FailAtScale(HeadDrop):
    """Facebook's "controlled delay" for server queues (Maurer, ACM Queue 2015).

    If the queue has not been empty in the last ``interval`` (N, 100 ms), a request that has
    waited longer than ``target`` (M, 5 ms) is dropped at dequeue; if it has been empty
    within N, the limit is N. A standing queue is cut hard; a short burst is let through.
    The stage calls :meth:`note_push` before each push, so the last moment the queue was
    empty is known exactly.
    """

    def __init__(self, queue: Queue, arrival: Sequence[float], drop: Drop, target: float, interval: float) -> None:
        super().__init__(queue, arrival, drop, target, interval)
        self.last_empty = 0.0

    def note_push(self, now: float) -> None:
        if not self.queue:
            self.last_empty = now

    def pop(self, now: float) -> int:
        limit = self.target if now - self.last_empty > self.interval else self.interval
        while self.queue:
            job = self.queue.pop()
            if now - self.arrival[job] > limit:
                self.drop(job, now)
                continue
            if not self.queue:
                self.last_empty = now
            return job
        self.last_empty = now
        return -1


EarlyDrop = Red | Proportional
"""A policy that decides on arrival (the head-drop ones are subclasses of :class:`HeadDrop`)."""
