"""Per-request and per-stage-visit records, kept as growable typed columns.

One Python object per request would cost hundreds of bytes and an allocation per arrival;
``array.array`` columns cost 8 bytes a value and an indexed store. The logs grow in
chunks, so the engine writes by index and never appends in its hot path. When the run
ends the columns become NumPy arrays for the vectorised metrics in :mod:`sim.analysis.metrics`.

A **job** is one visit of a request to one stage. In a single-stage scenario every request
is exactly one job with the same id, so the job log is the request log. With several
stages (a pipeline, a fan-out) the engine also keeps a :class:`RequestLog` for the end-to-end
view: a request is resolved when every job it spawned has left.

Who writes which column (every other module only reads them, after the run):

=====================================  ==========================================================
column                                 written by
=====================================  ==========================================================
job ``arrival``, ``service``,          :mod:`~sim.engine.producers` (single stage: a request is its
``deadline``, ``producer``             job); :class:`~sim.engine.routing.Tracker` ``new_job``
                                       (stages, retries)
job ``stage``, ``request``             :class:`~sim.engine.routing.Tracker` ``new_job``
job ``attempt``                        :class:`~sim.engine.routing.Client` (retries)
job ``start``                          :mod:`~sim.engine.queue_stage` (start step);
                                       :mod:`~sim.engine.broker` (first invocation)
job ``finish``, ``outcome``,           :mod:`~sim.engine.queue_stage` (finish, settle);
``reason``                             :mod:`~sim.engine.broker` (delete, settle)
job ``cold_starts``, ``gb_seconds``,   :mod:`~sim.engine.queue_stage` (start step, when metered);
``invocations``                        :mod:`~sim.engine.broker` (invoke)
job ``throttles``                      :mod:`~sim.engine.queue_stage` (admit: a direct invocation
                                       finds no environment); :mod:`~sim.engine.broker` (receive)
job ``receives``, ``duplicates``,      :mod:`~sim.engine.broker`; the broker models of
``sqs_requests``                       :mod:`sim.engine.brokers` (``start``, ``finish``, ``outcome``,
                                       ``reason``, usage too, through :mod:`~sim.engine.brokers.base`)
job ``key``                            :mod:`~sim.engine.producers` (single stage);
                                       :class:`~sim.engine.routing.Tracker` ``new_job``
request ``producer``, ``arrival``,     :class:`~sim.engine.routing.Tracker` ``new_request``;
``deadline``, ``pending``              ``deadline`` again per attempt by the ``Client``,
                                       ``pending`` per fan-out by the ``Router``
request ``finish``, ``outcome``,       :class:`~sim.engine.routing.Router` (first failure, last
``reason``                             job); :class:`~sim.engine.routing.Client` (resolution)
request ``start``, ``service``,        :meth:`RequestLog.freeze`, from the request's jobs
usage
:class:`RunRecords`                    :func:`sim.engine.simulation.simulate` at the end of the
                                       run; ``environments`` from the pools
                                       (:mod:`~sim.engine.consumers`), ``invocations`` from the
                                       brokers, ``scaling`` from autoscaled pools
                                       (:mod:`~sim.engine.autoscaled`)
=====================================  ==========================================================
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sim.engine.rows import CHUNK, FloatColumn, Folding, IntColumn, Store
from sim.engine.tally import Tally

__all__ = ["CHUNK", "Columns", "JobLog", "RequestLog", "RunRecords", "Usage"]

#: Outcome codes, in the order of :data:`OUTCOMES`. ``IN_SYSTEM`` (0) is the default, so a
#: request nobody finished is reported as still in the system when the run ends. ``LOST`` is an
#: at-most-once loss: a broker that forgot the message (a pub/sub subscriber that was down).
IN_SYSTEM, COMPLETED, LATE, EXPIRED, REJECTED, DROPPED, FAILED, DEAD_LETTERED, LOST = range(9)
OUTCOMES = ("in_system", "completed", "late", "expired", "rejected", "dropped", "failed", "dead_lettered", "lost")

#: Why a job ended as it did: dropped because of ``OVERFLOW`` (evicted by drop-oldest or a length
#: limit), ``AQM`` (early drop), ``RETENTION`` (too old in a broker) or ``TTL`` (a message time-to-live);
#: rejected because of a ``THROTTLE`` (no environment, no scaling allowance, or a broker's API quota)
#: or an ``OUTAGE`` (the broker was down); failed because of a function ``ERROR`` or ``TIMEOUT``, or a
#: consumer ``CRASH`` (its in-flight work lost); lost because the subscriber was ``DISCONNECTED`` or
#: crashed (``CRASH``).
NO_REASON, OVERFLOW, AQM, THROTTLE, ERROR, TIMEOUT, RETENTION, CRASH, OUTAGE, DISCONNECTED, TTL = range(11)
REASONS = ("", "overflow", "aqm", "throttle", "error", "timeout", "retention", "crash", "outage", "disconnected",
           "ttl")

Floats = NDArray[np.float64]
Small = NDArray[np.int8]


USAGE_COUNTS = ("receives", "throttles", "cold_starts", "duplicates")
USAGE_AMOUNTS = ("gb_seconds", "invocations", "sqs_requests")


@dataclass(frozen=True)
class Usage:
    """What serving a job (or a request, summed over its jobs) cost, beyond its own service time.

    ``attempt`` is the client's try number (0 first). ``receives`` counts broker deliveries,
    ``throttles`` times it found no environment, ``cold_starts`` environments started for
    it, ``duplicates`` extra successful processings. ``gb_seconds``, ``invocations`` and
    ``sqs_requests`` are its share of what is billed (a batch's invocation and API calls are
    split evenly between its messages).
    """

    attempt: NDArray[np.int64]
    receives: NDArray[np.int64]
    throttles: NDArray[np.int64]
    cold_starts: NDArray[np.int64]
    duplicates: NDArray[np.int64]
    gb_seconds: Floats
    invocations: Floats
    sqs_requests: Floats

    @staticmethod
    def names() -> tuple[str, ...]:
        """The usage columns, in the order of the fields."""
        return ("attempt", *USAGE_COUNTS, *USAGE_AMOUNTS)

    def per_request(self, request: NDArray[np.int64], count: int) -> Usage:
        """Sum job usage into request usage; ``attempt`` becomes the number of attempts."""

        def counts(values: NDArray[np.int64]) -> NDArray[np.int64]:
            total = np.zeros(count, dtype=np.int64)
            np.add.at(total, request, values)
            return total

        def amounts(values: Floats) -> Floats:
            total = np.zeros(count)
            np.add.at(total, request, values)
            return total

        return Usage(
            attempt=counts(np.ones(len(request), dtype=np.int64)),
            receives=counts(self.receives),
            throttles=counts(self.throttles),
            cold_starts=counts(self.cold_starts),
            duplicates=counts(self.duplicates),
            gb_seconds=amounts(self.gb_seconds),
            invocations=amounts(self.invocations),
            sqs_requests=amounts(self.sqs_requests),
        )


class JobLog:
    """Columns indexed by job id (the order jobs were created). NaN marks a time that did not happen.

    ``routed`` adds the stage and request of each job (several stages, or retries);
    ``metered`` adds the usage columns (scaling, broker delivery, failures, retries, prices);
    ``keyed`` adds each message's ``key`` (-1: none), for producers with ``key``.
    Columns live in a :class:`~sim.engine.rows.Store`; ``allocated`` rows are ready to be written,
    and ``folding`` (streaming statistics) is called before more are made ready.
    """

    def __init__(self, routed: bool, metered: bool = False, expected_rows: float = math.inf,
                 keyed: bool = False) -> None:
        self.store = store = Store(expected_rows)
        self.allocated = 0
        self.folding: Folding | None = None
        self.folded = 0
        """Rows below this are final and folded into the streaming statistics (no stage holds them)."""
        self.producer: IntColumn = store.column("b")
        self.arrival: FloatColumn = store.column("d", math.nan)
        self.deadline: FloatColumn = store.column("d", math.inf)
        self.service: FloatColumn = store.column("d", math.nan)
        self.start: FloatColumn = store.column("d", math.nan)
        self.finish: FloatColumn = store.column("d", math.nan)
        self.outcome: IntColumn = store.column("b")
        self.reason: IntColumn = store.column("b")
        self._routed = routed
        self.metered = metered
        self.keyed = keyed
        self.key: IntColumn = store.column("q", -1) if keyed else array("q")
        self.stage: IntColumn = store.column("b") if routed else array("b")
        self.request: IntColumn = store.column("q") if routed else array("q")
        usage: IntColumn | FloatColumn
        for name in USAGE_COUNTS + USAGE_AMOUNTS + ("attempt",):
            code = "d" if name in USAGE_AMOUNTS else "q"
            usage = store.column(code) if metered else array(code)
            setattr(self, name, usage)
        self.attempt: IntColumn
        self.receives: IntColumn
        self.throttles: IntColumn
        self.cold_starts: IntColumn
        self.duplicates: IntColumn
        self.gb_seconds: FloatColumn
        self.invocations: FloatColumn
        self.sqs_requests: FloatColumn

    @property
    def routed(self) -> bool:
        return self._routed

    def grow(self) -> None:
        """Make ``CHUNK`` more rows ready: NaN times, no deadline (+inf), producer 0, outcome in_system."""
        if self.folding is not None:
            self.folding()
        self.store.grow()
        self.allocated = self.store.allocated

    def freeze(self, count: int) -> Columns:
        """The first ``count`` rows as NumPy arrays; the log's memory is handed back as it goes."""
        take = self.store.take
        routed = self._routed
        columns = Columns(
            producer=take(self.producer, count), arrival=take(self.arrival, count),
            deadline=take(self.deadline, count), service=take(self.service, count), start=take(self.start, count),
            finish=take(self.finish, count), outcome=take(self.outcome, count), reason=take(self.reason, count),
            stage=take(self.stage, count) if routed else np.zeros(count, dtype=np.int8),
            request=take(self.request, count) if routed else np.arange(count, dtype=np.int64),
            usage=Usage(**{name: take(getattr(self, name), count) for name in Usage.names()})
            if self.metered else None,
            key=take(self.key, count) if self.keyed else None,
        )  # fmt: skip
        self.store.close()
        return columns


class RequestLog:
    """End-to-end state of requests in a multi-stage scenario, indexed by request id (arrival order).

    ``pending`` counts the request's jobs still in the system; the request is resolved when
    it reaches zero. ``outcome`` holds the first failure (rejected, dropped, expired) as soon
    as one happens, otherwise completed or late is decided at resolution. With ``totals``
    (streaming statistics) it also gathers, as its jobs are folded, what
    :meth:`freeze` would compute from them: first start, total service and usage.
    """

    def __init__(self, totals: bool = False, expected_rows: float = math.inf) -> None:
        self.store = store = Store(expected_rows)
        self.allocated = 0
        self.folding: Folding | None = None
        self.producer: IntColumn = store.column("b")
        self.arrival: FloatColumn = store.column("d", math.nan)
        self.deadline: FloatColumn = store.column("d", math.inf)
        self.finish: FloatColumn = store.column("d", math.nan)
        self.outcome: IntColumn = store.column("b")
        self.reason: IntColumn = store.column("b")
        self.pending: IntColumn = store.column("q")
        self.totals: dict[str, FloatColumn | IntColumn] = {}
        if totals:
            self.totals = {"start": store.column("d", math.nan), "service": store.column("d")}
            self.totals.update({name: store.column("d" if name in USAGE_AMOUNTS else "q") for name in Usage.names()})

    def grow(self) -> None:
        if self.folding is not None:
            self.folding()
        self.store.grow()
        self.allocated = self.store.allocated

    def freeze(self, count: int, jobs: Columns) -> Columns:
        """End-to-end columns: first service start and total service come from the request's jobs."""
        start = np.full(count, np.inf)
        np.minimum.at(start, jobs.request, np.where(np.isnan(jobs.start), np.inf, jobs.start))
        start[np.isinf(start)] = np.nan
        service = np.zeros(count)
        np.add.at(service, jobs.request, np.nan_to_num(jobs.service))
        take = self.store.take
        columns = Columns(
            producer=take(self.producer, count), arrival=take(self.arrival, count),
            deadline=take(self.deadline, count), service=service, start=start, finish=take(self.finish, count),
            outcome=take(self.outcome, count), reason=take(self.reason, count),
            stage=np.full(count, -1, dtype=np.int8), request=np.arange(count, dtype=np.int64),
            usage=jobs.usage.per_request(jobs.request, count) if jobs.usage is not None else None,
        )  # fmt: skip
        self.store.close()
        return columns


SAMPLED_ROWS = 2000
"""Rows looked at to estimate the share of requests resolved (a progress bar needs ~0.1 %, not every row)."""


def resolved_share(log: JobLog | RequestLog, count: int) -> float:
    """Share of the first ``count`` rows that have left (a finish time), from evenly spaced rows."""
    if count == 0:
        return 1.0
    finish = log.finish
    rows = range(0, count, max(1, count // SAMPLED_ROWS))
    return sum(1 for row in rows if finish[row] == finish[row]) / len(rows)  # NaN != NaN: still in the system


@dataclass(frozen=True)
class Columns:
    """Frozen columns of requests or jobs.

    ``finish`` is when it left: end of service, or the moment it was rejected, dropped or
    skipped as expired (for a request: when its last job left); NaN while still in the system.
    ``stage`` is the job's stage (-1 for end-to-end rows), ``request`` the request it belongs to.
    """

    producer: Small
    arrival: Floats
    deadline: Floats
    service: Floats
    start: Floats
    finish: Floats
    outcome: Small
    reason: Small
    stage: Small
    request: NDArray[np.int64]
    usage: Usage | None = None
    """Present when the scenario meters usage (scaling, delivery, failures, retries)."""
    key: NDArray[np.int64] | None = None
    """Each message's key (-1: none), when a producer draws keys (jobs only; requests have none)."""
    job: NDArray[np.int64] | None = None
    """Each job row's id, when the rows are a sample of the jobs (``report.requests: sample N``)."""

    def __len__(self) -> int:
        return len(self.arrival)


Lifespans = NDArray[np.float64]
"""One row per execution environment of a stage, in creation order: ``(created, reclaimed)``;
``reclaimed`` is NaN for an environment alive at the end of the run."""


@dataclass(frozen=True)
class ScalingTrace:
    """An autoscaled pool over the run (:mod:`sim.engine.autoscaled`).

    ``desired`` has a row ``(time, consumers)`` for the start and for each change the autoscaler
    made; ``ready`` a row ``(ready since, left)`` for each consumer that became ready (``left``
    is NaN for one still there at the end).
    """

    desired: NDArray[np.float64]
    ready: Lifespans


@dataclass(frozen=True)
class RunRecords:
    """Everything one run produced: request and job columns plus the state at the end.

    ``columns`` are end-to-end requests; ``jobs`` are stage visits (the same object when
    the scenario has one stage). ``queued_at_end`` and ``busy_at_end`` count jobs.
    """

    columns: Columns
    jobs: Columns
    end_time: float
    queued_at_end: int
    busy_at_end: int
    concurrency: int
    wall_time: float
    stage_names: tuple[str, ...] = ("main",)
    stage_concurrency: tuple[int, ...] = ()
    environments: tuple[Lifespans, ...] = ()
    """Per stage, when each execution environment was created and reclaimed (see :data:`Lifespans`)."""
    stage_priced: tuple[bool, ...] = ()
    stage_memory_gb: tuple[float, ...] = ()
    invocations: tuple[tuple[list[float], list[float]] | None, ...] = ()
    """Per brokered stage, start and end of each invocation (busy time is counted from these)."""
    engine: str = "simpy"
    """Which engine produced the records: ``simpy`` or ``compiled``."""
    lag_events: tuple[tuple[list[float], list[float], list[int]] | None, ...] = ()
    """Per stage with a log (Kafka): append times, commit times and the records each commit covered."""
    tally: Tally | None = None
    """Streaming statistics, when the run did not keep every request (``report.requests``); then
    ``columns`` holds only the kept sample (or nothing)."""
    scaling: tuple[ScalingTrace | None, ...] = ()
    """Per stage, the autoscaler's desired consumers and the ready ones over time (None: not autoscaled)."""

    @property
    def brokered_stages(self) -> list[int]:
        """Indexes of the stages fed by broker delivery (the ones with invocation records)."""
        return [index for index, calls in enumerate(self.invocations) if calls is not None]
