"""The compiled engine's event heap: SimPy's ordering, without SimPy.

SimPy keeps ``(time, priority, id, event)`` tuples in a binary heap; ids come from one counter,
so events at the same time and priority fire in the order they were scheduled. Every event the
compiled engine needs is *reusable* (a producer's next arrival, a consumer's completion), and each
has at most one pending occurrence, so the heap holds small integers -- event numbers -- and each
event's time and id live in two arrays. All of qsim's events here have SimPy's ``NORMAL``
priority, so ``(time, id)`` decides the order, exactly as in the SimPy engine.
"""

from __future__ import annotations

import numpy as np

from sim.engine.compiled.jit import step

Ints = np.ndarray
Floats = np.ndarray


@step
def _before(times: Floats, ids: Ints, a: int, b: int) -> bool:
    """Whether event ``a`` fires before event ``b``: earlier time, or same time and scheduled first."""
    return bool(times[a] < times[b] or (times[a] == times[b] and ids[a] < ids[b]))


@step
def heap_push(heap: Ints, size: int, times: Floats, ids: Ints, event: int) -> int:
    """Add ``event`` (its time and id already set); return the new size."""
    position = size
    while position > 0:
        parent = (position - 1) >> 1
        above = heap[parent]
        if _before(times, ids, above, event):
            break
        heap[position] = above
        position = parent
    heap[position] = event
    return size + 1


@step
def heap_pop(heap: Ints, size: int, times: Floats, ids: Ints) -> int:
    """Remove the first event (``heap[0]``, read it before calling); return the new size."""
    size -= 1
    if size == 0:
        return 0
    last = heap[size]
    position = 0
    while True:
        child = 2 * position + 1
        if child >= size:
            break
        if child + 1 < size and _before(times, ids, heap[child + 1], heap[child]):
            child += 1
        if _before(times, ids, last, heap[child]):
            break
        heap[position] = heap[child]
        position = child
    heap[position] = last
    return size
