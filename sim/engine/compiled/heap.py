"""The compiled engine's event heap: SimPy's ordering, without SimPy.

SimPy keeps ``(time, priority, id, event)`` tuples in a binary heap; ids come from one counter,
so events at the same time and priority fire in the order they were scheduled. All of qsim's
events here have SimPy's ``NORMAL`` priority, so ``(time, id)`` decides the order -- a strict
total order (ids are unique), so any correct heap pops events in exactly SimPy's order. This
one is 4-ary (half the levels of a binary heap: with 2,000 consumers a pop walks 6 levels,
not 11) and keeps each entry's time and id beside it, by position, so a comparison reads
adjacent memory instead of following the event number. Every event the engine needs is
reusable (a producer's next arrival, a consumer's completion) and has at most one pending
occurrence, so the heap holds at most producers + consumers entries.
"""

from __future__ import annotations

import numpy as np

from sim.engine.compiled.jit import step

Ints = np.ndarray
Floats = np.ndarray


@step
def heap_push(events: Ints, times: Floats, ids: Ints, size: int, time: float, ident: int, event: int) -> int:
    """Add ``event`` due at ``time`` with scheduling id ``ident``; return the new size."""
    position = size
    while position > 0:
        parent = (position - 1) >> 2
        if times[parent] < time or (times[parent] == time and ids[parent] < ident):
            break
        events[position], times[position], ids[position] = events[parent], times[parent], ids[parent]
        position = parent
    events[position], times[position], ids[position] = event, time, ident
    return size + 1


@step
def heap_pop(events: Ints, times: Floats, ids: Ints, size: int) -> int:
    """Remove the first entry (read ``events[0]`` and ``times[0]`` before calling); return the new size."""
    size -= 1
    if size == 0:
        return 0
    event, time, ident = events[size], times[size], ids[size]
    position = 0
    while True:
        first = 4 * position + 1
        if first >= size:
            break
        best, best_time, best_id = first, times[first], ids[first]
        for child in range(first + 1, min(first + 4, size)):
            if times[child] < best_time or (times[child] == best_time and ids[child] < best_id):
                best, best_time, best_id = child, times[child], ids[child]
        if time < best_time or (time == best_time and ident < best_id):
            break
        events[position], times[position], ids[position] = events[best], best_time, best_id
        position = best
    events[position], times[position], ids[position] = event, time, ident
    return size
