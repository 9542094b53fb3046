"""A uniform random sample of a run's requests, kept while the run streams (``report.requests: sample N``).

Reservoir sampling with Li's "Algorithm L" (ACM TOMS 1994): after the first ``N`` requests,
the next one to enter the sample is found by drawing how many to *skip*, so a run of ``n``
requests costs ``O(N (1 + log(n / N)))`` draws, not one per request -- a sample of 10,000 from a
billion requests is cheap. Every request has the same chance ``N / n`` to be kept. The draws
come from a stream of their own, so sampling never changes the simulation's numbers.
"""

from __future__ import annotations

import math

import numpy as np

ROW_NAMES = ("arrival", "deadline", "service", "start", "finish", "outcome", "reason", "producer", "id")
"""The columns a single-stage run's sample keeps (the compiled engine's, and the SimPy engine's without usage)."""


class Reservoir:
    """Keeps ``size`` rows (by request id) of the requests offered to it in id order."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self.rng = rng
        self.seen = 0
        self.slots = np.full(size, -1, dtype=np.int64)
        """Per place in the sample, the request id it holds (-1: empty)."""
        self.weight = math.exp(math.log(self._uniform()) / size)
        self.next = size + self._skip()
        """The id of the next request to enter once the sample is full."""
        self.values: dict[int, dict[str, object]] = {}

    def _uniform(self) -> float:
        return float(self.rng.uniform(np.nextafter(0.0, 1.0), 1.0))

    def _skip(self) -> int:
        return math.floor(math.log(self._uniform()) / math.log1p(-self.weight))

    def offer(self, first: int, last: int) -> np.ndarray:
        """Requests ``first .. last - 1`` have finished (in id order): the ids among them that enter the sample."""
        entering: list[int] = []
        filling = min(last, self.size)
        for request in range(max(first, self.seen), filling):
            self.slots[request] = request
            entering.append(request)
        while self.next < last:
            if self.next >= first:
                place = int(self.rng.integers(self.size))
                self.values.pop(int(self.slots[place]), None)
                self.slots[place] = self.next
                entering.append(self.next)
            self.weight *= math.exp(math.log(self._uniform()) / self.size)
            self.next += 1 + self._skip()
        self.seen = max(self.seen, last)
        return np.array(entering, dtype=np.int64)

    def store(self, ids: np.ndarray, chunk: dict[str, np.ndarray]) -> None:
        """Keep the entering requests' values (a later request may evict one before the run ends)."""
        held = set(self.slots.tolist())
        for position, request in enumerate(ids.tolist()):
            if request in held:
                self.values[request] = {name: values[position] for name, values in chunk.items()}

    def rows(self, names: tuple[str, ...] = ROW_NAMES) -> dict[str, np.ndarray]:
        """The sample, in request order, as columns (``names``: the columns stored)."""
        ids = sorted(request for request in self.values)
        return {name: np.array([self.values[request][name] for request in ids]) if ids else np.zeros(0)
                for name in names}
