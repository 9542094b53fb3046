"""Per-request records, kept as growable typed columns.

One Python object per request would cost hundreds of bytes and an allocation per arrival;
``array.array`` columns cost 8 bytes a value and an indexed store. The log grows in
chunks, so the engine writes by index and never appends in its hot path. When the run
ends the columns become NumPy arrays for the vectorised metrics in :mod:`sim.metrics`.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: Outcome codes, in the order of :data:`OUTCOMES`. ``IN_SYSTEM`` (0) is the default, so a
#: request nobody finished is reported as still in the system when the run ends.
IN_SYSTEM, COMPLETED, LATE, EXPIRED, REJECTED, DROPPED = range(6)
OUTCOMES = ("in_system", "completed", "late", "expired", "rejected", "dropped")

CHUNK = 65536
"""Requests added to the log each time it fills up."""


class RequestLog:
    """Columns indexed by request id (arrival order). NaN marks a time that did not happen."""

    def __init__(self) -> None:
        self.size = 0
        self.producer = array("b")
        self.arrival = array("d")
        self.deadline = array("d")
        self.service = array("d")
        self.start = array("d")
        self.finish = array("d")
        self.outcome = array("b")

    def grow(self) -> None:
        """Add ``CHUNK`` empty rows: NaN times, no deadline (+inf), producer 0, outcome in_system."""
        nan = array("d", [math.nan]) * CHUNK
        zero = array("b", bytes(CHUNK))
        for column in (self.arrival, self.service, self.start, self.finish):
            column.extend(nan)
        self.deadline.extend(array("d", [math.inf]) * CHUNK)
        self.producer.extend(zero)
        self.outcome.extend(zero)

    def freeze(self, count: int) -> Columns:
        """The first ``count`` rows as NumPy arrays (copies, so the log can be dropped)."""

        def floats(column: array[float]) -> NDArray[np.float64]:
            return np.array(np.frombuffer(column, dtype=np.float64)[:count])

        def small(column: array[int]) -> NDArray[np.int8]:
            return np.array(np.frombuffer(column, dtype=np.int8)[:count])

        return Columns(
            producer=small(self.producer),
            arrival=floats(self.arrival),
            deadline=floats(self.deadline),
            service=floats(self.service),
            start=floats(self.start),
            finish=floats(self.finish),
            outcome=small(self.outcome),
        )


@dataclass(frozen=True)
class Columns:
    """Frozen request columns. ``finish`` is when a request left: service end, or the moment it
    was rejected, dropped or skipped as expired; NaN while still in the system."""

    producer: NDArray[np.int8]
    arrival: NDArray[np.float64]
    deadline: NDArray[np.float64]
    service: NDArray[np.float64]
    start: NDArray[np.float64]
    finish: NDArray[np.float64]
    outcome: NDArray[np.int8]

    def __len__(self) -> int:
        return len(self.arrival)
