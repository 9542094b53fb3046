"""The waiting room of the compiled engine: the four disciplines on ring-buffer deques.

One deque per priority level (one level unless ``discipline: priority``), each a row of ``q``
used as a ring (``head``, ``size`` per row). Jobs enter at the tail in id order, and only the
two ends are ever removed, so every row stays sorted by job id. The rules are those of
:mod:`sim.engine.queues`, function for function: ``serve`` is a discipline's ``pop``,
``evict_for`` its ``evict_for``.
"""

from __future__ import annotations

import numpy as np

from sim.engine.compiled.jit import step
from sim.engine.compiled.layout import ADAPT_BY_LENGTH, ADAPT_LENGTH, ADAPT_WAIT, ADAPTIVE_LIFO, ARRIVAL, LIFO, PRIORITY

Ints = np.ndarray


@step
def push(q: Ints, head: Ints, size: Ints, level: int, job: int) -> None:
    """Append ``job`` at the tail of ``level`` (the caller made sure there is room)."""
    capacity = q.shape[1]
    q[level, (head[level] + size[level]) % capacity] = job
    size[level] += 1


@step
def pop_oldest(q: Ints, head: Ints, size: Ints, level: int) -> int:
    job = q[level, head[level]]
    head[level] = (head[level] + 1) % q.shape[1]
    size[level] -= 1
    return int(job)


@step
def pop_newest(q: Ints, head: Ints, size: Ints, level: int) -> int:
    size[level] -= 1
    return int(q[level, (head[level] + size[level]) % q.shape[1]])


@step
def serve(discipline: int, q: Ints, head: Ints, size: Ints, queued: int, ip: Ints, fp: np.ndarray,
          jf: np.ndarray, mask: int, now: float) -> int:
    """The next job to serve (the queue is not empty): FIFO, LIFO, priority or adaptive LIFO."""
    if discipline == PRIORITY:
        for level in range(q.shape[0]):
            if size[level] > 0:
                return pop_oldest(q, head, size, level)
    if discipline == LIFO:
        return pop_newest(q, head, size, 0)
    if discipline == ADAPTIVE_LIFO:
        if ip[ADAPT_BY_LENGTH] == 1:
            formed = queued >= ip[ADAPT_LENGTH]
        else:
            formed = now - jf[ARRIVAL, q[0, head[0]] & mask] > fp[ADAPT_WAIT]
        if formed:
            return pop_newest(q, head, size, 0)
    return pop_oldest(q, head, size, 0)


@step
def evict_for(discipline: int, q: Ints, head: Ints, size: Ints, level: int) -> int:
    """The job to drop so that one of ``level`` fits (``drop-oldest``), or -1: reject the arrival.

    Priority: the oldest of the lowest-priority level waiting, unless the arrival itself has a
    lower priority than everyone waiting. Other disciplines: the oldest.
    """
    if discipline != PRIORITY:
        return pop_oldest(q, head, size, 0)
    lowest = -1
    for candidate in range(q.shape[0]):
        if size[candidate] > 0:
            lowest = candidate
    if level > lowest:
        return -1
    return pop_oldest(q, head, size, lowest)


@step
def oldest(q: Ints, head: Ints, size: Ints) -> int:
    """The smallest job id waiting (each row is sorted), or -1 when the queue is empty."""
    found = -1
    for level in range(q.shape[0]):
        if size[level] > 0:
            job = q[level, head[level]]
            if found < 0 or job < found:
                found = job
    return int(found)
