"""Producers' arrival processes: when requests arrive.

Each process yields blocks of absolute arrival times (sorted NumPy arrays). Arrivals do not
depend on the state of the system, so they are drawn ahead in blocks: the engine then pays
one scheduled event per arrival and no random-number call.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]

BLOCK = 8192
"""Arrival times drawn per NumPy call: large enough to amortise the call, small enough for memory."""


def _limit(times: Floats, stop: float | None, left: int | None) -> Floats:
    if stop is not None:
        times = times[: int(np.searchsorted(times, stop, side="left"))]
    if left is not None:
        times = times[:left]
    return times


def _clipped(
    blocks: Iterator[Floats], stop: float | None, count: int | None
) -> Iterator[Floats]:
    """Cut an endless stream of sorted blocks at ``stop`` (exclusive) and after ``count`` arrivals."""
    left = count
    for block in blocks:
        kept = _limit(block, stop, left)
        if len(kept):
            yield kept
        if left is not None:
            left -= len(kept)
            if left <= 0:
                return
        if len(kept) < len(block):
            return


@dataclass(frozen=True)
class PoissonArrivals:
    """Independent arrivals at a constant ``rate`` from ``start``: the M in M/M/c."""

    rate: float
    start: float = 0.0
    stop: float | None = None
    count: int | None = None

    def blocks(self, rng: np.random.Generator) -> Iterator[Floats]:
        def endless() -> Iterator[Floats]:
            last = self.start
            while True:
                times = last + np.cumsum(rng.exponential(1.0 / self.rate, BLOCK))
                last = float(times[-1])
                yield times

        return _clipped(endless(), self.stop, self.count)

    @property
    def horizon(self) -> float:
        """When the last arrival is expected (for progress bars only)."""
        if self.stop is not None:
            return self.stop
        if self.count is not None:
            return self.start + self.count / self.rate
        return math.inf


@dataclass(frozen=True)
class ConstantArrivals:
    """One arrival every ``1/rate`` seconds, the first at ``start``: the D in D/D/1."""

    rate: float
    start: float = 0.0
    stop: float | None = None
    count: int | None = None

    def blocks(self, rng: np.random.Generator) -> Iterator[Floats]:
        def endless() -> Iterator[Floats]:
            first = 0
            while True:
                index = np.arange(first, first + BLOCK, dtype=float)
                first += BLOCK
                yield self.start + index / self.rate

        return _clipped(endless(), self.stop, self.count)

    @property
    def horizon(self) -> float:
        return PoissonArrivals(self.rate, self.start, self.stop, self.count).horizon


@dataclass(frozen=True)
class BurstArrivals:
    """``count`` arrivals spread uniformly at random over ``[at, at + over)``; all at ``at`` when ``over`` is 0."""

    count: int
    over: float = 0.0
    at: float = 0.0

    def blocks(self, rng: np.random.Generator) -> Iterator[Floats]:
        if self.over == 0:
            times = np.full(self.count, self.at)
        else:
            times = np.sort(rng.uniform(self.at, self.at + self.over, self.count))
        for first in range(0, self.count, BLOCK):
            yield times[first : first + BLOCK]

    @property
    def horizon(self) -> float:
        return self.at + self.over


@dataclass(frozen=True)
class PiecewiseArrivals:
    """Poisson arrivals whose rate changes at given times: ``rates[i] = (from_time, rate)``.

    Each segment is an independent Poisson process on its own interval, which is exact
    because the exponential gap is memoryless. The last rate holds until ``stop``.
    """

    rates: tuple[tuple[float, float], ...]
    stop: float | None = None
    count: int | None = None

    def blocks(self, rng: np.random.Generator) -> Iterator[Floats]:
        def endless() -> Iterator[Floats]:
            ends = [t for t, _ in self.rates[1:]] + [math.inf]
            for (begin, rate), end in zip(self.rates, ends, strict=True):
                if rate <= 0:
                    continue
                yield from _clipped(PoissonArrivals(rate, begin).blocks(rng), end, None)

        return _clipped(endless(), self.stop, self.count)

    @property
    def horizon(self) -> float:
        if self.stop is not None:
            return self.stop
        return self.rates[-1][0] if self.rates[-1][1] == 0 else math.inf


@dataclass(frozen=True, eq=False)
class TraceArrivals:
    """Replay recorded arrival timestamps (seconds), e.g. from an access log."""

    times: tuple[float, ...]

    def blocks(self, rng: np.random.Generator) -> Iterator[Floats]:
        times = np.asarray(self.times, dtype=float)
        for first in range(0, len(times), BLOCK):
            yield times[first : first + BLOCK]

    @property
    def horizon(self) -> float:
        return self.times[-1] if self.times else 0.0

    def __repr__(self) -> str:
        return f"TraceArrivals(<{len(self.times)} arrivals>)"


ArrivalProcess = (
    PoissonArrivals | ConstantArrivals | BurstArrivals | PiecewiseArrivals | TraceArrivals
)
