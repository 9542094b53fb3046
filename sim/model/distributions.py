"""Service-time and patience distributions, each knowing its exact mean and variance.

Exact moments let tests compare samples and simulated waits with queueing theory
(Pollaczek-Khinchine needs ``E[S^2] = variance + mean^2``). Samples are drawn in blocks
with NumPy: one call per few thousand requests, never one per request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]


class Distribution(Protocol):
    """What the engine needs from a distribution: block sampling and exact moments."""

    @property
    def mean(self) -> float: ...

    @property
    def variance(self) -> float: ...

    def sample(self, rng: np.random.Generator, size: int) -> Floats: ...


@dataclass(frozen=True)
class Exponential:
    """Memoryless times: the M in M/M/c."""

    mean: float

    @property
    def variance(self) -> float:
        return self.mean**2

    def sample(self, rng: np.random.Generator, size: int) -> Floats:
        return rng.exponential(self.mean, size)


@dataclass(frozen=True)
class Constant:
    """Deterministic times: the D in M/D/1, and hand-checkable traces."""

    value: float

    @property
    def mean(self) -> float:
        return self.value

    @property
    def variance(self) -> float:
        return 0.0

    def sample(self, rng: np.random.Generator, size: int) -> Floats:
        return np.full(size, self.value)


@dataclass(frozen=True)
class Uniform:
    """Times uniform on ``[low, high]``."""

    low: float
    high: float

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    @property
    def variance(self) -> float:
        return (self.high - self.low) ** 2 / 12

    def sample(self, rng: np.random.Generator, size: int) -> Floats:
        return rng.uniform(self.low, self.high, size)


@dataclass(frozen=True)
class Lognormal:
    """Right-skewed times given by their real mean and coefficient of variation.

    People know the mean and spread of their service times, not the log-space
    parameters, so those are derived: ``sigma^2 = ln(1 + cv^2)``, ``mu = ln(mean) - sigma^2/2``.
    """

    mean: float
    cv: float

    @property
    def sigma(self) -> float:
        return math.sqrt(math.log1p(self.cv**2))

    @property
    def mu(self) -> float:
        return math.log(self.mean) - self.sigma**2 / 2

    @property
    def variance(self) -> float:
        return (self.cv * self.mean) ** 2

    def sample(self, rng: np.random.Generator, size: int) -> Floats:
        return rng.lognormal(self.mu, self.sigma, size)


@dataclass(frozen=True)
class Gamma:
    """Times with a given mean and coefficient of variation (cv < 1: more regular than exponential)."""

    mean: float
    cv: float

    @property
    def variance(self) -> float:
        return (self.cv * self.mean) ** 2

    def sample(self, rng: np.random.Generator, size: int) -> Floats:
        shape = 1.0 / self.cv**2
        return rng.gamma(shape, self.mean / shape, size)


@dataclass(frozen=True, eq=False)
class Empirical:
    """Resample measured times (with replacement), e.g. durations exported from production logs."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def variance(self) -> float:
        return float(np.var(self.values))

    def sample(self, rng: np.random.Generator, size: int) -> Floats:
        return rng.choice(np.asarray(self.values, dtype=float), size)

    def __repr__(self) -> str:
        return f"Empirical(<{len(self.values)} values, mean {self.mean:.6g}>)"


SAMPLER_BLOCK = 4096
"""Values drawn per NumPy call by a :class:`Sampler`."""


class Sampler:
    """Values of one distribution drawn in blocks and handed out one at a time.

    For draws that happen one by one inside the event loop (a retry's service time, a cold
    start, a drop decision): one NumPy call per few thousand values, one list index per value.
    """

    __slots__ = ("block", "dist", "next", "rng")

    def __init__(self, dist: Distribution, rng: np.random.Generator) -> None:
        self.dist, self.rng = dist, rng
        self.block: list[float] = []
        self.next = 0

    def __call__(self) -> float:
        if self.next == len(self.block):
            self.block = self.dist.sample(self.rng, SAMPLER_BLOCK).tolist()
            self.next = 0
        value = self.block[self.next]
        self.next += 1
        return value
