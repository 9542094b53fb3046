"""Queue disciplines: who waits where, who is served next, who is evicted when full.

A queue holds job ids (ints into the columnar log of stage visits). Every discipline supplies
``push(rid)``, ``pop() -> rid`` (the next to serve; only called when non-empty),
``evict() -> rid`` (the one to drop for ``overflow: drop-oldest``) and ``__len__``.
They are looked up by the name used in scenario files (:data:`DISCIPLINES`). The hot
methods are bound ``deque`` methods where possible, so a push or pop costs no Python call.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol


class Queue(Protocol):
    """What the engine needs from a discipline."""

    def push(self, rid: int, /) -> None: ...

    def pop(self) -> int: ...

    def evict(self) -> int: ...

    def evict_for(self, rid: int, /) -> int: ...

    def __len__(self) -> int: ...

    def waiting(self) -> list[int]: ...


class FifoQueue(deque[int]):
    """First in, first out: fair, but under overload it serves the oldest, most likely dead, requests.

    A ``deque`` subclass so that ``push``, ``pop`` and ``len`` run in C.
    """

    push = deque.append
    pop = deque.popleft
    evict = deque.popleft

    def evict_for(self, rid: int) -> int:
        """Make room for ``rid``: evict the oldest (-1 would mean: reject ``rid`` instead)."""
        return self.popleft()

    def waiting(self) -> list[int]:
        """Ids in serving order (for tests and the end-of-run state)."""
        return list(self)


class LifoQueue(deque[int]):
    """Last in, first out (a stack): serves the freshest request, which is the most likely still alive."""

    push = deque.append
    evict = deque.popleft  # the oldest sits at the bottom of the stack

    def evict_for(self, rid: int) -> int:
        return self.popleft()

    def waiting(self) -> list[int]:
        return list(reversed(self))


class PriorityQueue:
    """Strict non-preemptive priority by level (0 first), FIFO inside a level.

    The article's rule: a new item goes behind every item of equal or higher priority.
    ``level_of(rid)`` gives a request's level. Eviction takes the oldest request of the
    lowest-priority (highest-numbered) non-empty level.
    """

    LEVELS = 10

    def __init__(self, level_of: Callable[[int], int]) -> None:
        self._levels: list[deque[int]] = [deque() for _ in range(self.LEVELS)]
        self._level_of = level_of
        self._size = 0

    def push(self, rid: int) -> None:
        self._levels[self._level_of(rid)].append(rid)
        self._size += 1

    def pop(self) -> int:
        for level in self._levels:
            if level:
                self._size -= 1
                return level.popleft()
        raise IndexError("pop from an empty queue")

    def evict(self) -> int:
        for level in reversed(self._levels):
            if level:
                self._size -= 1
                return level.popleft()
        raise IndexError("evict from an empty queue")

    def evict_for(self, rid: int) -> int:
        """Make room for ``rid``: evict the oldest of the lowest-priority level waiting, unless
        ``rid`` itself has a lower priority than everyone waiting (then -1: reject ``rid``).
        High priority never loses its place to low priority."""
        arriving = self._level_of(rid)
        lowest = max(index for index, level in enumerate(self._levels) if level)
        return -1 if arriving > lowest else self.evict()

    def __len__(self) -> int:
        return self._size

    def waiting(self) -> list[int]:
        return [rid for level in self._levels for rid in level]


class AdaptiveLifoQueue(deque[int]):
    """FIFO while the queue is short, LIFO once a queue has formed (Facebook, "Fail at Scale").

    Normally the oldest request is served, which is fair; when the queue holds ``length``
    requests or more (or, with ``wait``, its oldest has waited longer than that), the
    newest is served instead: under overload it is the one most likely still wanted, and
    the old ones are left to time out. ``arrival`` and ``clock`` give waiting times.
    """

    evict = deque.popleft

    def evict_for(self, rid: int) -> int:
        return self.popleft()

    def __init__(self, length: int | None, wait: float | None, arrival: Sequence[float],
                 clock: Callable[[], float]) -> None:
        super().__init__()
        self._length = length
        self._wait = wait
        self._arrival = arrival
        self._clock = clock

    push = deque.append

    def pop(self) -> int:  # type: ignore[override]
        if self._length is not None:
            formed = len(self) >= self._length
        else:
            assert self._wait is not None
            formed = self._clock() - self._arrival[self[0]] > self._wait
        return super().pop() if formed else self.popleft()

    def waiting(self) -> list[int]:
        return list(self)


def queue_for(discipline: str, levels: Sequence[int], producer_of: Callable[[int], int], *,
               length: int | None = None, wait: float | None = None,
               arrival: Sequence[float] = (), clock: Callable[[], float] = lambda: 0.0) -> Queue:
    """Build the discipline named in a scenario. ``levels[p]`` is producer ``p``'s priority."""
    if discipline == "fifo":
        return FifoQueue()
    if discipline == "lifo":
        return LifoQueue()
    if discipline == "priority":
        return PriorityQueue(lambda rid: levels[producer_of(rid)])
    if discipline == "adaptive-lifo":
        return AdaptiveLifoQueue(length, wait, arrival, clock)
    raise ValueError(f"unknown discipline {discipline!r}")


DISCIPLINES = ("fifo", "lifo", "priority", "adaptive-lifo")
