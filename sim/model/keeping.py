"""How many per-request rows a run keeps (``report.requests``), and the estimate ``auto`` decides by.

Keeping a row per request (and per job: a stage visit or a client's attempt) costs ~100 bytes
each, so a run of 100 M requests would need ~10 GB. ``report.requests: auto`` (the default) keeps
every row when the run is expected to write at most :data:`ROWS_KEPT_UP_TO` of them (or when the
scenario uses what streaming does not cover yet: broker models, faults, message keys), and
otherwise streams (``none``): the summary and time series then come from accumulators folded as
the run goes (:mod:`sim.engine.tally`). The decision depends on the scenario only, never on the
machine, so a scenario gives the same numbers everywhere.

:func:`expected_rows` is the one place that estimates a run's size from its arrival specs; a
broader work estimate may replace it (the rest of this module only needs a number of rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.model.arrivals import (
    ArrivalProcess,
    BurstArrivals,
    ConstantArrivals,
    PiecewiseArrivals,
    PoissonArrivals,
    TraceArrivals,
)
from sim.model.schema import Scenario

ROWS_KEPT_UP_TO = 5_000_000
"""``auto`` keeps every row of a run expected to write at most this many (about 0.5 GB of columns)."""


@dataclass(frozen=True)
class Keeping:
    """What a run keeps of its requests: ``kept`` is None for all, 0 for none, N for a sample of N."""

    kept: int | None
    note: str | None = None
    """Why ``auto`` chose not to keep the rows (one line), else None."""

    @property
    def label(self) -> str:
        """``all``, ``sample of N`` or ``none``: what the manifest and the summary heading say."""
        if self.kept is None:
            return "all"
        return "none" if self.kept == 0 else f"sample of {self.kept:,}"


def _expected_arrivals(process: ArrivalProcess, until: float) -> float:
    """Requests a producer is expected to send before ``until`` (inf: it never stops)."""
    if isinstance(process, PoissonArrivals | ConstantArrivals):
        end = min(until, math.inf if process.stop is None else process.stop)
        expected = process.rate * max(0.0, end - process.start) if math.isfinite(end) else math.inf
        return min(expected, math.inf if process.count is None else float(process.count))
    if isinstance(process, BurstArrivals):
        return float(process.count) if process.at < until else 0.0
    if isinstance(process, PiecewiseArrivals):
        end = min(until, math.inf if process.stop is None else process.stop)
        ends = [t for t, _ in process.rates[1:]] + [math.inf]
        expected = 0.0
        for (begin, rate), segment_end in zip(process.rates, ends, strict=True):
            length = min(segment_end, end) - begin
            if rate > 0 and length > 0:
                expected += rate * length
        return min(expected, math.inf if process.count is None else float(process.count))
    assert isinstance(process, TraceArrivals)
    return float(sum(1 for t in process.times if t < until))


def _visits(scenario: Scenario, stage: int) -> int:
    """Jobs one copy of a request published to ``stage`` makes there and downstream (fan-out included)."""
    specs = scenario.stage_list
    by_name = {spec.name: index for index, spec in enumerate(specs)}
    return 1 + sum(_visits(scenario, by_name[name]) for name in specs[stage].then)


def expected_rows(scenario: Scenario) -> float:
    """The per-request and per-job rows a run of ``scenario`` is expected to write (inf: unbounded).

    Requests come from the arrival specs up to ``until``; each makes one job per stage visit (with
    fan-out) times the client's attempts (an upper bound: every attempt is counted as if made), plus
    its own end-to-end row when it can have several jobs.
    """
    until = math.inf if scenario.until is None else float(scenario.until)
    rows = 0.0
    for producer in scenario.producers:
        requests = _expected_arrivals(producer.arrivals.build(), until)
        jobs = sum(_visits(scenario, stage) for stage in scenario.entry_stages(producer))
        attempts = producer.retry.attempts if producer.retry is not None else 1
        separate = jobs * attempts > 1 or len(scenario.stage_list) > 1
        rows += requests * (jobs * attempts + (1 if separate else 0))
    return rows


def requests_kept(scenario: Scenario) -> Keeping:
    """What a run of ``scenario`` keeps of its requests (``report.requests``, with ``auto`` decided)."""
    asked = scenario.report.requests
    if asked != "auto" or scenario.streaming_unsupported:
        return Keeping(scenario.report.kept)
    rows = expected_rows(scenario)
    if rows <= ROWS_KEPT_UP_TO:
        return Keeping(None)
    size = "an unbounded number of" if math.isinf(rows) else f"~{rows:,.0f}"
    note = (f"report.requests: auto keeps no per-request rows ({size} expected, more than "
            f"{ROWS_KEPT_UP_TO:,}); the summary and time series are streamed (percentiles within 0.5 %); "
            "set report.requests: all or sample N to keep rows")
    return Keeping(0, note)
