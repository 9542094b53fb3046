"""The rows a streamed SimPy run keeps: none, or a uniform sample of its requests (and of its jobs).

``report.requests: sample N`` keeps N requests chosen uniformly at random by a reservoir
(:mod:`sim.engine.sample`) as rows are folded, in id order, so the sample is the same whatever the
chunking -- and, for a single-stage run, the same requests as the compiled engine keeps. With
several jobs per request (stages, retries) the jobs are sampled on their own (N of them, from a
stream of their own): a job's request is usually not in the request sample.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sim.engine.records import Columns, Usage
from sim.engine.sample import ROW_NAMES, Reservoir
from sim.engine.streams import SAMPLE_STREAM, stream

SMALL = ("producer", "outcome", "reason", "stage")
"""Columns stored as int8."""


class Kept:
    """Offers folded rows to the sample's reservoirs and builds the kept :class:`Columns` at the end."""

    def __init__(self, kept: int, seeds: np.random.SeedSequence, routed: bool, metered: bool) -> None:
        self.routed = routed
        self.metered = metered
        usage = Usage.names() if metered else ()
        self.request_names = (*ROW_NAMES, *usage)
        self.job_names = (*ROW_NAMES, "stage", "request", *usage)
        self.requests = Reservoir(kept, stream(seeds, SAMPLE_STREAM)) if kept else None
        self.jobs = Reservoir(kept, stream(seeds, SAMPLE_STREAM, 1)) if kept and routed else None

    def offer_requests(self, first: int, last: int, block: dict[str, np.ndarray]) -> None:
        """Requests ``first .. last - 1`` are final; ``block`` has their columns (by :attr:`request_names`)."""
        _offer(self.requests, first, last, block)

    def offer_jobs(self, first: int, last: int, block: dict[str, np.ndarray]) -> None:
        _offer(self.jobs, first, last, block)

    def columns(self) -> tuple[Columns, Columns]:
        """The kept requests and jobs (the same object when a request is its one job)."""
        requests = self._columns(self.requests, self.request_names, jobs=False)
        if not self.routed:
            return requests, requests
        return requests, self._columns(self.jobs, self.job_names, jobs=True)

    def _columns(self, reservoir: Reservoir | None, names: tuple[str, ...], jobs: bool) -> Columns:
        found = reservoir.rows(names) if reservoir is not None else {name: np.zeros(0) for name in names}
        count = len(found["arrival"])
        small = {name: found[name].astype(np.int8) for name in SMALL if name in found}
        ids = found["id"].astype(np.int64)
        usage = None
        if self.metered:
            def counts(name: str) -> NDArray[np.int64]:
                return found[name].astype(np.int64)

            def amounts(name: str) -> NDArray[np.float64]:
                return found[name].astype(np.float64)

            usage = Usage(attempt=counts("attempt"), receives=counts("receives"), throttles=counts("throttles"),
                          cold_starts=counts("cold_starts"), duplicates=counts("duplicates"),
                          gb_seconds=amounts("gb_seconds"), invocations=amounts("invocations"),
                          sqs_requests=amounts("sqs_requests"))
        return Columns(
            producer=small["producer"], arrival=found["arrival"].astype(np.float64),
            deadline=found["deadline"].astype(np.float64), service=found["service"].astype(np.float64),
            start=found["start"].astype(np.float64), finish=found["finish"].astype(np.float64),
            outcome=small["outcome"], reason=small["reason"],
            stage=small["stage"] if jobs else np.full(count, -1 if self.routed else 0, dtype=np.int8),
            request=found["request"].astype(np.int64) if jobs else ids, usage=usage, job=ids if jobs else None,
        )  # fmt: skip


def _offer(reservoir: Reservoir | None, first: int, last: int, block: dict[str, np.ndarray]) -> None:
    if reservoir is None or last <= first:
        return
    ids = reservoir.offer(first, last)
    if len(ids):
        chunk = {name: values[ids - first] for name, values in block.items()}
        chunk["id"] = ids
        reservoir.store(ids, chunk)
