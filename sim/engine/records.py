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

from sim.engine.tally import Tally

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

CHUNK = 65536
"""Rows added to a log each time it fills up."""

Floats = NDArray[np.float64]
Small = NDArray[np.int8]


def _grow(columns: list[array[float]], fill: float) -> None:
    block = array("d", [fill]) * CHUNK
    for column in columns:
        column.extend(block)


def _freeze_floats(column: array[float], count: int) -> Floats:
    """Copy the first ``count`` values to NumPy, then free the array (one column at a time keeps the peak low)."""
    values = np.array(np.frombuffer(column, dtype=np.float64)[:count])
    del column[:]
    return values


def _freeze_small(column: array[int], count: int) -> Small:
    values: Small = np.array(np.frombuffer(column, dtype=np.int8)[:count])
    del column[:]
    return values


def _freeze_ids(column: array[int], count: int) -> NDArray[np.int64]:
    values: NDArray[np.int64] = np.array(np.frombuffer(column, dtype=np.int64)[:count])
    del column[:]
    return values


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
    """

    def __init__(self, routed: bool, metered: bool = False, keyed: bool = False) -> None:
        self.allocated = 0
        self.producer = array("b")
        self.arrival = array("d")
        self.deadline = array("d")
        self.service = array("d")
        self.start = array("d")
        self.finish = array("d")
        self.outcome = array("b")
        self.reason = array("b")
        self.stage = array("b")
        self.request = array("q")
        self._routed = routed
        self.metered = metered
        self.keyed = keyed
        self.key = array("q")
        self.attempt = array("q")
        self.receives = array("q")
        self.throttles = array("q")
        self.cold_starts = array("q")
        self.duplicates = array("q")
        self.gb_seconds = array("d")
        self.invocations = array("d")
        self.sqs_requests = array("d")

    def grow(self) -> None:
        """Add ``CHUNK`` empty rows: NaN times, no deadline (+inf), producer 0, outcome in_system."""
        _grow([self.arrival, self.service, self.start, self.finish], math.nan)
        _grow([self.deadline], math.inf)
        zero = array("b", bytes(CHUNK))
        for column in (self.producer, self.outcome, self.reason):
            column.extend(zero)
        if self._routed:
            self.stage.extend(zero)
            self.request.extend(array("q", bytes(8 * CHUNK)))
        if self.metered:
            zeros = array("q", bytes(8 * CHUNK))
            for column in (self.attempt, self.receives, self.throttles, self.cold_starts, self.duplicates):
                column.extend(zeros)
            _grow([self.gb_seconds, self.invocations, self.sqs_requests], 0.0)
        if self.keyed:
            self.key.extend(array("q", [-1]) * CHUNK)
        self.allocated += CHUNK

    def freeze(self, count: int) -> Columns:
        """The first ``count`` rows as NumPy arrays; the log is emptied as it goes."""
        routed = self._routed
        return Columns(
            producer=_freeze_small(self.producer, count),
            arrival=_freeze_floats(self.arrival, count),
            deadline=_freeze_floats(self.deadline, count),
            service=_freeze_floats(self.service, count),
            start=_freeze_floats(self.start, count),
            finish=_freeze_floats(self.finish, count),
            outcome=_freeze_small(self.outcome, count),
            reason=_freeze_small(self.reason, count),
            stage=_freeze_small(self.stage, count) if routed else np.zeros(count, dtype=np.int8),
            request=_freeze_ids(self.request, count) if routed else np.arange(count, dtype=np.int64),
            usage=self._freeze_usage(count) if self.metered else None,
            key=_freeze_ids(self.key, count) if self.keyed else None,
        )

    def _freeze_usage(self, count: int) -> Usage:
        return Usage(
            attempt=_freeze_ids(self.attempt, count),
            receives=_freeze_ids(self.receives, count),
            throttles=_freeze_ids(self.throttles, count),
            cold_starts=_freeze_ids(self.cold_starts, count),
            duplicates=_freeze_ids(self.duplicates, count),
            gb_seconds=_freeze_floats(self.gb_seconds, count),
            invocations=_freeze_floats(self.invocations, count),
            sqs_requests=_freeze_floats(self.sqs_requests, count),
        )


class RequestLog:
    """End-to-end state of requests in a multi-stage scenario, indexed by request id (arrival order).

    ``pending`` counts the request's jobs still in the system; the request is resolved when
    it reaches zero. ``outcome`` holds the first failure (rejected, dropped, expired) as soon
    as one happens, otherwise completed or late is decided at resolution.
    """

    def __init__(self) -> None:
        self.allocated = 0
        self.producer = array("b")
        self.arrival = array("d")
        self.deadline = array("d")
        self.finish = array("d")
        self.outcome = array("b")
        self.reason = array("b")
        self.pending = array("q")

    def grow(self) -> None:
        _grow([self.arrival, self.finish], math.nan)
        _grow([self.deadline], math.inf)
        zero = array("b", bytes(CHUNK))
        for column in (self.producer, self.outcome, self.reason):
            column.extend(zero)
        self.pending.extend(array("q", bytes(8 * CHUNK)))
        self.allocated += CHUNK

    def freeze(self, count: int, jobs: Columns) -> Columns:
        """End-to-end columns: first service start and total service come from the request's jobs."""
        start = np.full(count, np.inf)
        np.minimum.at(start, jobs.request, np.where(np.isnan(jobs.start), np.inf, jobs.start))
        start[np.isinf(start)] = np.nan
        service = np.zeros(count)
        np.add.at(service, jobs.request, np.nan_to_num(jobs.service))
        del self.pending[:]
        return Columns(
            producer=_freeze_small(self.producer, count),
            arrival=_freeze_floats(self.arrival, count),
            deadline=_freeze_floats(self.deadline, count),
            service=service,
            start=start,
            finish=_freeze_floats(self.finish, count),
            outcome=_freeze_small(self.outcome, count),
            reason=_freeze_small(self.reason, count),
            stage=np.full(count, -1, dtype=np.int8),
            request=np.arange(count, dtype=np.int64),
            usage=jobs.usage.per_request(jobs.request, count) if jobs.usage is not None else None,
        )


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
