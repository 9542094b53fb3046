"""The engine's one contact with SimPy's internals: scheduling without a method call per event.

SimPy's public way to make something happen later is a new :class:`~simpy.events.Event`
per occurrence, ``succeed()`` or ``Environment.schedule``: an allocation or a method call
at every event. A run of a million requests has two million events (an arrival and a
service completion each), so the engine instead keeps one event per producer and per
consumer slot and re-arms it for each occurrence, pushing onto SimPy's own heap exactly
as ``Environment.schedule`` does. That relies on SimPy internals, and this module is the
only one that names them (``tests/test_kernel.py`` greps ``sim/`` to keep it so and pins
the contract; it was verified on SimPy 4.1.2, hence ``simpy>=4.1,<4.2`` in pyproject.toml):

- ``env._queue`` is a binary heap of ``(time, priority, id, event)`` entries and
  ``env._eid`` an :class:`itertools.count` giving the ids, which break ties between equal
  times and priorities in scheduling order;
- ``env._now`` is the time of the event being processed;
- an event whose ``_ok`` is true has succeeded; when SimPy processes it, it sets
  ``event.callbacks`` to None and calls each callback of the old list with the event,
  never changing that list, so one list can serve every firing of a re-armed event.

The hot path binds :attr:`Kernel.heap` and :attr:`Kernel.ids` to local names once and
inlines :meth:`Kernel.rearm` (a ``heappush`` of ``(due, NORMAL, next(ids), event)``):
attribute look-ups and calls are the main cost of a Python event loop. A handler of a
:class:`Reusable` event reads the current time from the event's own ``due``, which is the
time it was pushed for, so it needs no clock at all. Every event the kernel makes is a
:class:`Reusable`, even one-off ones: SimPy's loop then always sees one class, which keeps
CPython's attribute caches in that loop hot (a loop re-arming events of two classes ran
~20 % slower than one re-arming a single class).
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappush
from itertools import count
from typing import Any

import simpy
from simpy.events import NORMAL, Event, EventPriority

Handler = Callable[["Reusable"], None]
"""The callback of a :class:`Reusable` event: it receives the event, whose ``owner`` it serves."""

Entry = tuple[float, EventPriority, int, Event]
"""One entry of SimPy's event heap: when, priority (lower first), id (scheduling order), event."""


class Reusable(Event):
    """An event that fires again and again: re-armed (callbacks set, pushed again) after each firing.

    It is born succeeded, so SimPy never treats it as failed. ``owner`` is what its handler
    serves (a consumer slot, a producer); ``due`` is the time it was last pushed for: inside
    its handler, the current time.
    """

    __slots__ = ("due", "owner")

    callbacks: list[Handler]

    def __init__(self, kernel: Kernel, owner: Any = None) -> None:
        super().__init__(kernel.env)
        self._ok = True
        self._value = None
        self.owner = owner
        self.due = 0.0


class Kernel:
    """One SimPy environment, seen through the few primitives the engine needs.

    ``heap`` and ``ids`` are public so that hot closures can bind them to local names once;
    everything else goes through the methods.
    """

    __slots__ = ("env", "heap", "ids")

    def __init__(self, env: simpy.Environment | None = None) -> None:
        self.env = simpy.Environment() if env is None else env
        heap, ids = self.env._queue, self.env._eid
        if not isinstance(heap, list) or not isinstance(ids, count):
            raise RuntimeError(f"SimPy {simpy.__version__} changed its event heap: qsim needs simpy>=4.1,<4.2")
        self.heap: list[Entry] = heap
        """SimPy's event heap: push ``(time, priority, next(ids), event)`` onto it with ``heappush``."""
        self.ids: count[int] = ids
        """SimPy's source of event ids (scheduling order)."""

    def now(self) -> float:
        """The current simulated time (a plain attribute read, unlike ``Environment.now``)."""
        now: float = self.env._now
        return now

    def clock(self) -> Callable[[], float]:
        """A function returning the current time, for code that takes a clock."""
        env = self.env
        return lambda: env._now

    def schedule_at(self, time: float, event: Event, priority: EventPriority = NORMAL) -> None:
        """Process ``event`` at absolute ``time`` (``Environment.schedule`` takes a delay)."""
        heappush(self.heap, (time, priority, next(self.ids), event))

    def rearm(self, event: Reusable, callbacks: list[Handler], time: float) -> None:
        """Make ``event`` fire again at ``time``, calling ``callbacks`` (one list may serve every firing).

        The hot path inlines these three lines; keep them the same.
        """
        event.callbacks = callbacks
        event.due = time
        heappush(self.heap, (time, NORMAL, next(self.ids), event))

    def call_at(self, time: float, callback: Handler, value: object = None, priority: EventPriority = NORMAL) -> None:
        """A one-off event at absolute ``time`` that calls ``callback``; it reads ``value`` as ``event.value``."""
        event = Reusable(self)
        event._value = value
        event.due = time
        event.callbacks = [callback]
        heappush(self.heap, (time, priority, next(self.ids), event))

    def defuse(self, event: Reusable) -> Reusable:
        """Make ``event``, already pushed, do nothing when it fires; return a fresh event for its owner.

        A heap entry cannot be taken out cheaply, so the old event stays in the heap with an empty
        callbacks list (SimPy calls nothing) and its owner gets a new event to re-arm: a crashed
        consumer's pending completion is cancelled this way.
        """
        event.callbacks = []
        return Reusable(self, event.owner)

    def peek(self) -> float:
        """The time of the next event (infinity when none is left)."""
        return float(self.env.peek())

    def run(self, until: float | None = None) -> None:
        """Process events until ``until``, or until none is left."""
        self.env.run(until=until)
