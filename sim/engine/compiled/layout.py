"""Names for the slots of the compiled engine's flat state and parameter arrays.

Numba functions take arrays, not objects; these constants say what each slot of the integer
and float arrays holds, so the kernel reads like the SimPy engine it mirrors.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sim.engine.tally import Tally

# Integer parameters (``ip``).
DISCIPLINE, LIMIT, DROP_OLDEST, SKIP_EXPIRED, AQM, PRODUCERS, CONCURRENCY, HAS_UNTIL = range(8)
ADAPT_BY_LENGTH, ADAPT_LENGTH, AQM_CAPACITY, SEVERAL_PRODUCERS, EVENT_BUDGET, STREAMING = range(8, 14)
INT_PARAMS = 14

# Float parameters (``fp``).
UNTIL, ADAPT_WAIT, RED_MIN, RED_MAX, RED_MAX_P, RED_WEIGHT, HEAD_TARGET, HEAD_INTERVAL = range(8)
FLOAT_PARAMS = 8

# Integer state (``istate``).
NEXT_ID, HEAP_SIZE, JOBS, QUEUED, FREE_TOP, PENDING, UNIFORM_AT, RED_COUNT = range(8)
CODEL_COUNT, CODEL_LAST_COUNT, CODEL_DROPPING, EMITTED, EVENTS, STATUS_ARG = range(8, 14)
INT_STATE = 14

# Float state (``fstate``).
NOW, RED_AVG, CODEL_FIRST_ABOVE, CODEL_DROP_NEXT, LAST_EMPTY = range(5)
FLOAT_STATE = 5

# Job columns: rows of the float (``jf``) and small-integer (``ji``) ring buffers.
ARRIVAL, DEADLINE, SERVICE, START, FINISH = range(5)
OUTCOME, REASON, PRODUCER = range(3)

# Disciplines, AQM policies.
FIFO, LIFO, PRIORITY, ADAPTIVE_LIFO = range(4)
NO_AQM, RED, PROPORTIONAL, CODEL, FAIL_AT_SCALE = range(5)

# Why the kernel returned to Python.
DONE, NEED_BLOCK, NEED_UNIFORMS, RING_FULL, QUEUE_FULL, BUDGET_SPENT, SERIES_FULL = range(7)


class Arrays(NamedTuple):
    """Every array of one compiled run, handed to the kernel as one (Numba-typed) named tuple."""

    ip: np.ndarray
    """Integer parameters (slots named above)."""
    fp: np.ndarray
    istate: np.ndarray
    fstate: np.ndarray
    heap: np.ndarray
    """Event numbers by heap position: producer ``p`` is event ``p``; consumer slot ``s`` is event ``producers + s``."""
    heap_time: np.ndarray
    """When the entry at each heap position is due."""
    heap_id: np.ndarray
    """The scheduling id of the entry at each heap position (SimPy's tie-breaker)."""
    jf: np.ndarray
    """Float job columns (rows ARRIVAL..FINISH), a ring indexed by ``job & (width - 1)``."""
    ji: np.ndarray
    """Small-integer job columns (rows OUTCOME, REASON, PRODUCER), the same ring."""
    q: np.ndarray
    q_head: np.ndarray
    q_size: np.ndarray
    slot_job: np.ndarray
    free: np.ndarray
    """Free consumer slots, a stack: the SimPy engine's free list, popped from the end."""
    arrival_times: np.ndarray
    """Per producer, its current block of arrivals, their service demands and patience."""
    demands: np.ndarray
    patience: np.ndarray
    block_length: np.ndarray
    block_position: np.ndarray
    level: np.ndarray
    """Per producer, its priority level (0 first)."""
    early_scope: np.ndarray
    """Per producer, 1 if the early-drop policy (RED, proportional) may drop its requests."""
    uniforms: np.ndarray
    tally: Tally
    """The streaming statistics (updated only with ``STREAMING``)."""
