"""Topologies: pipelines, fan-out and topics, end to end and per stage."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import sim
from sim.analysis import theory
from sim.engine.records import COMPLETED, LATE, OUTCOMES
from sim.engine.simulation import replication_seeds, simulate
from tests.agreement import REPLICATIONS, assert_agrees


def constant(seconds: float) -> dict[str, object]:
    return {"dist": "constant", "value": seconds}


def stage(name: str, seconds: float, then: list[str] | None = None, **queue: object) -> dict[str, Any]:
    return {"name": name, "queue": dict(queue), "consumers": {"concurrency": 1, "service": constant(seconds)},
            "then": then or []}


def scenario(stages: list[dict[str, Any]], count: int = 2, rate: str = "10/s", **producer: object) -> sim.Scenario:
    return sim.scenario_from_dict({
        "name": "topology",
        "producers": [{"arrivals": {"process": "constant", "rate": rate, "count": count}, **producer}],
        "stages": stages,
    })


def jobs(result: sim.Result) -> list[tuple[int, int, str, float, float | None, float | None]]:
    """``(job, request, stage, arrival, start, finish)`` of the first replication's jobs."""
    columns = result.runs[0].records.jobs
    names = result.runs[0].records.stage_names

    def rounded(value: float) -> float | None:
        return None if np.isnan(value) else round(float(value), 9)

    return [(index, int(columns.request[index]), names[columns.stage[index]], round(float(columns.arrival[index]), 9),
             rounded(columns.start[index]), rounded(columns.finish[index])) for index in range(len(columns))]


def requests(result: sim.Result) -> list[tuple[str, float | None]]:
    columns = result.runs[0].records.columns
    return [(OUTCOMES[code], None if np.isnan(t) else round(float(t), 9))
            for code, t in zip(columns.outcome, columns.finish, strict=True)]


def test_pipeline_passes_each_request_to_the_next_stage() -> None:
    result = sim.run(scenario([stage("a", 1.0, ["b"]), stage("b", 0.5)]))
    assert jobs(result) == [
        (0, 0, "a", 0.0, 0.0, 1.0),
        (1, 1, "a", 0.1, 1.0, 2.0),
        (2, 0, "b", 1.0, 1.0, 1.5),
        (3, 1, "b", 2.0, 2.0, 2.5),
    ]
    assert requests(result) == [("completed", 1.5), ("completed", 2.5)]
    summary = result.summary.set_index("stage")
    assert summary.loc["a", "wait_mean"] == pytest.approx(0.45)  # the second waited 0.9 s at a
    assert summary.loc["all", "latency_mean"] == pytest.approx((1.5 + 2.4) / 2)


def test_fan_out_completes_when_every_branch_has() -> None:
    result = sim.run(scenario([stage("ingest", 1.0, ["x", "y"]), stage("x", 1.0), stage("y", 3.0)], count=1,
                              timeout="2.5s"))
    assert jobs(result) == [
        (0, 0, "ingest", 0.0, 0.0, 1.0),
        (1, 0, "x", 1.0, 1.0, 2.0),
        (2, 0, "y", 1.0, 1.0, 4.0),
    ]
    # The deadline covers the whole path: x finished in time, y did not, so the request is late.
    assert requests(result) == [("late", 4.0)]
    outcomes = result.runs[0].records.jobs.outcome.tolist()
    assert outcomes == [COMPLETED, COMPLETED, LATE]


def test_a_topic_publishes_one_copy_to_each_subscriber() -> None:
    result = sim.run(scenario([stage("x", 1.0), stage("y", 2.0)], count=1, to=["x", "y"]))
    assert [(job[2], job[5]) for job in jobs(result)] == [("x", 1.0), ("y", 2.0)]
    assert requests(result) == [("completed", 2.0)]


def test_a_failed_branch_decides_the_outcome_but_the_request_leaves_with_its_last_job() -> None:
    # y has no queue: the second request's y copy is rejected at 0.1 while its x copy runs.
    result = sim.run(scenario([stage("x", 1.0), stage("y", 1.0, capacity=0)], to=["x", "y"]))
    assert requests(result) == [("completed", 1.0), ("rejected", 2.0)]
    row = result.summary.set_index(["producer", "stage"]).loc[("all", "all")]
    assert (row["completed"], row["rejected"]) == (1, 1)


def test_expiry_is_checked_at_every_stage_against_the_end_to_end_deadline() -> None:
    # Deadlines 3.05, 3.15, 3.25. Request 0 clears b at 3.0, in time; request 1 starts at b at
    # 3.0, before its deadline, and finishes late at 5.0; request 2 reaches b at 3.0 and is
    # still waiting at 5.0, past its deadline: skipped there.
    result = sim.run(scenario([stage("a", 1.0, ["b"]), stage("b", 2.0, on_expired="skip")], count=3,
                              timeout="3.05s"))
    assert requests(result) == [("completed", 3.0), ("late", 5.0), ("expired", 5.0)]


def test_per_stage_rows_and_time_series_columns() -> None:
    result = sim.run(scenario([stage("a", 0.2, ["b"]), stage("b", 0.1)], count=20))
    summary = result.summary
    assert summary["stage"].tolist() == ["all", "a", "b"]
    assert summary.set_index("stage").loc["b", "offered"] == 20
    series = result.timeseries
    assert {"a.queue_length", "a.busy", "b.arrivals", "b.served", "b.lost"} <= set(series.columns)
    assert series["b.arrivals"].sum() == 20
    assert (series["a.busy"] + series["b.busy"]).to_numpy() == pytest.approx(series["busy"].to_numpy())


@pytest.mark.slow
def test_jackson_tandem_of_two_mm1_stages() -> None:
    # Burke: an M/M/1 stage's departures are Poisson, so a tandem behaves like two independent
    # M/M/1 queues (rho = 0.4 and 0.5 here); the end-to-end sojourn is the sum of the two. Each
    # stage's Wq and the sojourn are caught at 3 % (rule and bound in tests/agreement.py:
    # standard error <= 0.43 % of the value; 20 x 225,000 requests give ~0.3 % for the waits,
    # ~0.1 % for the sojourn).
    rate, mu1, mu2, warmup = 0.4, 1.0, 0.8, 300
    base = sim.scenario_from_dict({
        "name": "tandem", "seed": 4, "warmup": warmup,
        "producers": [{"arrivals": {"process": "poisson", "rate": rate, "stop": warmup + 225_000 / rate}}],
        "stages": [
            {"name": "first", "consumers": {"concurrency": 1, "service": {"dist": "exponential", "mean": 1 / mu1}},
             "then": ["second"]},
            {"name": "second", "consumers": {"concurrency": 1, "service": {"dist": "exponential", "mean": 1 / mu2}}},
        ],
    })
    sojourns, first_waits, second_waits = [], [], []
    for replication in range(REPLICATIONS):
        records = simulate(base, replication_seeds(base.seed, replication))
        req, job = records.columns, records.jobs
        keep = req.arrival >= warmup
        sojourns.append(float(np.mean(req.finish[keep] - req.arrival[keep])))
        for index, target in ((0, first_waits), (1, second_waits)):
            mine = (job.stage == index) & (job.arrival >= warmup)
            target.append(float(np.mean(job.start[mine] - job.arrival[mine])))
    assert_agrees(np.array(first_waits), theory.mm1(rate, mu1).wait, catches=0.03)
    assert_agrees(np.array(second_waits), theory.mm1(rate, mu2).wait, catches=0.03)
    assert_agrees(np.array(sojourns), theory.mm1(rate, mu1).sojourn + theory.mm1(rate, mu2).sojourn, catches=0.03)


@pytest.mark.slow
@pytest.mark.parametrize(
    "service", [{"dist": "exponential", "mean": "1s"}, {"dist": "constant", "value": "1s"}], ids=["M/M/1", "M/D/1"]
)
def test_cobham_waits_of_two_non_preemptive_priority_classes(service: dict[str, object]) -> None:
    # Classes of load 0.2 (high) and 0.3 (low): Wq_low = Wq_high / (1 - 0.5). Each class's Wq
    # is caught at 3 % (rule and bound in tests/agreement.py: standard error <= 0.43 % of the
    # value; 20 x 190,000 requests give ~0.3 % for the low class, less for the high one).
    rates, warmup = {"high": 0.2, "low": 0.3}, 300
    stop = warmup + 190_000 / sum(rates.values())
    base = sim.scenario_from_dict({
        "name": "cobham", "seed": 9, "warmup": warmup,
        "producers": [{"name": cls, "priority": level, "arrivals": {"process": "poisson", "rate": rate, "stop": stop}}
                      for level, (cls, rate) in enumerate(rates.items())],
        "queue": {"discipline": "priority"},
        "consumers": {"concurrency": 1, "service": service},
    })
    distribution = base.service_of(base.producers[0])
    classes = [theory.PriorityClass(rate, distribution.mean, distribution.variance) for rate in rates.values()]
    expected = theory.cobham(classes)
    waits: list[list[float]] = [[], []]
    for replication in range(REPLICATIONS):
        columns = simulate(base, replication_seeds(base.seed, replication)).columns
        for level in (0, 1):
            mine = (columns.producer == level) & (columns.arrival >= warmup)
            waits[level].append(float(np.mean(columns.start[mine] - columns.arrival[mine])))
    for level in (0, 1):
        assert_agrees(np.array(waits[level]), expected[level], catches=0.03)


def test_a_stage_reached_directly_and_through_another_draws_independent_demands() -> None:
    # Requests are published to a and b, and a passes each on to b too. Both kinds of b job
    # draw from the producer's one stream for b, so their demands must not repeat each other.
    result = sim.run(sim.scenario_from_dict({
        "name": "overlap", "seed": 3,
        "producers": [{"to": ["a", "b"], "arrivals": {"process": "constant", "rate": "10/s", "count": 50}}],
        "stages": [
            {"name": "a", "consumers": {"concurrency": 5, "service": {"dist": "exponential", "mean": "10ms"}},
             "then": ["b"]},
            {"name": "b", "consumers": {"concurrency": 5, "service": {"dist": "exponential", "mean": "10ms"}}},
        ],
    }))
    jobs = result.runs[0].records.jobs
    demands = jobs.service[jobs.stage == 1]
    assert len(demands) == 100  # 50 published directly, 50 passed on by a
    assert len(np.unique(demands)) == 100
