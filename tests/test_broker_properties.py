"""Conservation for every broker model and every fault kind, as Hypothesis properties.

Random small scenarios: any broker kind with random settings, keys or none, failures, a retrying
producer or not, and a random faults timeline (crashes at a time or at a rate, consumer and
broker outages, slow periods). Whatever happens, every message ends in exactly one outcome
(lost ones counted), consistent with its timestamps, and what is still in the system at the end
is exactly what the broker, its consumers' buffers and their work in progress hold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim
from sim.engine.records import COMPLETED, IN_SYSTEM, LATE, LOST, OUTCOMES, REJECTED
from tests.brokers import BROKERS

brokers = st.sampled_from((*BROKERS, "direct", "queue"))


@st.composite
def broker_block(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """Random settings of one broker kind (the keys it knows)."""
    block: dict[str, Any] = {"kind": kind}
    if kind in ("sqs", "sqs-fifo"):
        block.update(visibility_timeout=draw(st.floats(0.05, 3.0)), batch=draw(st.integers(1, 4)),
                     max_receives=draw(st.one_of(st.none(), st.integers(1, 4))))
        if kind == "sqs-fifo":
            block["api_rate"] = draw(st.one_of(st.none(), st.floats(0.5, 50.0)))
    elif kind == "kafka":
        block.update(partitions=draw(st.integers(1, 6)), max_poll_records=draw(st.integers(1, 5)),
                     commit=draw(st.sampled_from(["auto", "per-batch", "per-message"])),
                     auto_commit_interval=draw(st.floats(0.1, 3.0)), session_timeout=draw(st.floats(0.1, 5.0)))
    elif kind == "rabbitmq":
        block.update(prefetch=draw(st.integers(0, 3)), on_failure=draw(st.sampled_from(["requeue", "reject"])),
                     dead_letter=draw(st.booleans()), ack_timeout=draw(st.floats(0.2, 10.0)),
                     delivery_limit=draw(st.one_of(st.none(), st.integers(1, 4))))
        if draw(st.booleans()):
            block.update(max_length=draw(st.integers(0, 5)),
                         overflow=draw(st.sampled_from(["drop-head", "reject-publish", "reject-publish-dlx"])))
        if draw(st.booleans()):
            block["message_ttl"] = draw(st.floats(0.0, 3.0))
    elif kind == "redis-pubsub":
        block.update(message_bytes=1024, buffer_hard=1024 * draw(st.integers(2, 8)), buffer_soft=1024,
                     soft_seconds=draw(st.floats(0.1, 3.0)), reconnect=draw(st.floats(0.0, 1.0)))
    else:
        block.update(ack_deadline=10, lease_extension=draw(st.booleans()), max_outstanding=draw(st.integers(1, 4)),
                     ordering=draw(st.booleans()), max_delivery_attempts=draw(st.one_of(st.none(), st.integers(5, 7))))
    if draw(st.booleans()):
        block["latency"] = {"publish": {"dist": "exponential", "mean": draw(st.floats(0.001, 0.2))},
                            "deliver": {"dist": "constant", "value": draw(st.floats(0.0, 0.1))}}
    return block


@st.composite
def faults(draw: st.DrawFn, concurrency: int) -> list[dict[str, Any]]:
    timeline: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["crash", "crash-rate", "consumer-outage", "broker-outage", "slowdown"]))
        start = draw(st.floats(0.0, 8.0))
        end = start + draw(st.floats(0.1, 5.0))
        if kind == "crash":
            victims = draw(st.one_of(st.just("all"), st.integers(1, concurrency),
                                     st.lists(st.integers(0, concurrency - 1), min_size=1, max_size=3)))
            timeline.append({"kind": "crash", "at": start, "consumers": victims, "restart": draw(st.floats(0.0, 4.0))})
        elif kind == "crash-rate":
            timeline.append({"kind": "crash", "rate": draw(st.floats(0.2, 3.0)), "start": start, "stop": end,
                             "consumers": draw(st.integers(1, concurrency)), "restart": draw(st.floats(0.0, 2.0))})
        elif kind == "slowdown":
            timeline.append({"kind": "slowdown", "start": start, "end": end, "factor": draw(st.floats(0.5, 4.0))})
        else:
            timeline.append({"kind": kind, "start": start, "end": end})
    return timeline


@st.composite
def brokered(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(brokers)
    concurrency = draw(st.integers(1, 4))
    consumers: dict[str, Any] = {"concurrency": concurrency,
                                 "service": {"dist": "exponential", "mean": draw(st.floats(0.05, 1.0))}}
    if draw(st.booleans()):
        consumers["failure"] = {"probability": draw(st.floats(0.0, 0.5))}
    producer: dict[str, Any] = {"arrivals": {"process": "poisson", "rate": draw(st.floats(1.0, 30.0)),
                                             "count": draw(st.integers(1, 80))}}
    if draw(st.booleans()):
        producer["key"] = {"count": draw(st.integers(1, 10)), "skew": draw(st.floats(0.0, 2.0))}
    if draw(st.booleans()):
        producer["timeout"] = draw(st.floats(0.2, 5.0))
    if draw(st.booleans()):
        kinds = ["rejected", "failed", "dropped", *(["timeout"] if "timeout" in producer else [])]
        producer["retry"] = {"attempts": draw(st.integers(1, 3)), "base": draw(st.floats(0.01, 0.5)),
                             "on": draw(st.lists(st.sampled_from(kinds), min_size=1, unique=True))}
    queue: dict[str, Any] = {}
    if kind == "direct":
        queue = {"capacity": 0}
    elif kind != "queue":
        queue = {"broker": draw(broker_block(kind))}
    scenario: dict[str, Any] = {"name": "brokered", "seed": draw(st.integers(0, 2**16)), "producers": [producer],
                                "queue": queue, "consumers": consumers, "faults": draw(faults(concurrency))}
    if draw(st.booleans()) or kind != "redis-pubsub":
        scenario["until"] = draw(st.floats(2.0, 40.0))  # a message that always fails would never leave
    return scenario


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(brokered())
def test_every_message_ends_in_exactly_one_outcome_whatever_the_broker_and_the_faults(data: dict[str, Any]) -> None:
    scenario = sim.scenario_from_dict(data)
    result = sim.run(scenario)
    records = result.runs[0].records
    requests, jobs = records.columns, records.jobs
    row = result.summary.iloc[0]
    assert sum(int(row[o]) for o in OUTCOMES) == row["offered"] == len(requests)
    # What is still in the system is exactly what the stage holds: in the broker, in a consumer's
    # buffer or in progress (a message on its publish hop counts as held too).
    assert np.count_nonzero(jobs.outcome == IN_SYSTEM) == records.queued_at_end + records.busy_at_end
    # Outcomes agree with timestamps: served jobs started and finished after they arrived; every
    # job that left has a finish time; a rejected one left as it arrived; a lost one never finished work.
    served = (jobs.outcome == COMPLETED) | (jobs.outcome == LATE)
    assert np.all(jobs.start[served] >= jobs.arrival[served])
    assert np.all(jobs.finish[served] >= jobs.start[served])
    assert np.all(np.isnan(jobs.finish) == (jobs.outcome == IN_SYSTEM))
    assert np.all(jobs.finish[~np.isnan(jobs.finish)] >= jobs.arrival[~np.isnan(jobs.finish)])
    kind = data["queue"].get("broker", {}).get("kind")
    if "latency" not in data["queue"].get("broker", {}):  # else a quota's refusal comes back after the hop
        assert np.all(jobs.finish[jobs.outcome == REJECTED] == jobs.arrival[jobs.outcome == REJECTED])
    if kind != "redis-pubsub":
        assert not np.any(jobs.outcome == LOST)  # only an at-most-once broker loses messages
    if scenario.until is None:
        assert records.queued_at_end == records.busy_at_end == 0
    # Usage: duplicates only where a message can be processed twice (at-least-once brokers).
    assert jobs.usage is not None or kind is None
    if jobs.usage is not None and kind in ("redis-pubsub", "rabbitmq", None):
        assert not jobs.usage.duplicates.any()
