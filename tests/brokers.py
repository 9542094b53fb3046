"""Helpers for the broker tests: small scenarios with a ``queue.broker`` and exact traces of them."""

from __future__ import annotations

import math
from typing import Any

import sim
from sim.engine.records import OUTCOMES, REASONS, RunRecords
from tests.helpers import make_scenario

BROKERS = ("sqs", "sqs-fifo", "kafka", "rabbitmq", "redis-pubsub", "gcp-pubsub")


def scenario(kind: str | None, *, count: int = 1, rate: str | None = None, concurrency: int = 1,
             service: float = 1.0, broker: dict[str, Any] | None = None, faults: list[dict[str, Any]] | None = None,
             key: dict[str, Any] | None = None, producer: dict[str, Any] | None = None,
             **changes: Any) -> sim.Scenario:
    """``count`` messages in a burst at 0 (or one every ``1/rate`` from 0), constant service times."""
    arrivals = ({"process": "burst", "count": count} if rate is None
                else {"process": "constant", "rate": rate, "count": count})
    producer = {"name": "clients", "arrivals": arrivals, **(producer or {})}
    if key is not None:
        producer["key"] = key
    queue: dict[str, Any] = {"broker": {"kind": kind, **(broker or {})}} if kind is not None else {}
    consumers = {"concurrency": concurrency, "service": {"dist": "constant", "value": service}}
    data: dict[str, Any] = {"producers": [producer], "queue": queue, "consumers": consumers}
    if faults:
        data["faults"] = faults
    data.update(changes)
    return make_scenario(**data)


def records(scenario_: sim.Scenario) -> RunRecords:
    return sim.run(scenario_).runs[0].records


def rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 9)


def trace(result: RunRecords) -> list[tuple[str, float | None, float | None]]:
    """``(outcome, start, finish)`` of every job, in job order."""
    jobs = result.jobs
    return [(OUTCOMES[o], rounded(s), rounded(f)) for o, s, f in zip(jobs.outcome, jobs.start, jobs.finish,
                                                                      strict=True)]


def outcomes(result: RunRecords) -> list[str]:
    return [OUTCOMES[o] for o in result.jobs.outcome]


def reasons(result: RunRecords) -> list[str]:
    return [REASONS[r] for r in result.jobs.reason]


def usage(result: RunRecords, name: str) -> list[int]:
    assert result.jobs.usage is not None
    return [int(v) for v in getattr(result.jobs.usage, name)]
