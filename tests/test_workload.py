"""The work estimate: expected requests, jobs, attempts, receives and backlog, then memory and time.

Expected counts are exact for the deterministic cases (a count, a burst, a trace, rates x
windows) and checked against runs for the random ones; the memory constant is checked to be
an upper bound of what runs keep.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

import sim
from sim.experiments import budget
from sim.model.workload import expected_arrivals, workload
from tests.helpers import make_scenario

SERVICE = {"dist": "constant", "value": "10ms"}


def counts(arrivals: dict[str, Any], until: str | None = None, base_dir: Path | None = None) -> float:
    changes: dict[str, Any] = {"producers": [{"arrivals": arrivals}]}
    if until is not None:
        changes["until"] = until
    scenario = make_scenario(base_dir, **changes)
    return expected_arrivals(scenario.producers[0], scenario.until)


@pytest.mark.parametrize(
    ("arrivals", "until", "expected"),
    [
        ({"process": "poisson", "rate": "10/s", "stop": "60s"}, None, 600),
        ({"process": "poisson", "rate": "10/s", "stop": "60s"}, "30s", 300),
        ({"process": "poisson", "rate": "10/s", "start": "10s", "stop": "60s"}, "30s", 200),
        ({"process": "poisson", "rate": "10/s", "count": 100}, None, 100),
        ({"process": "poisson", "rate": "10/s", "count": 100}, "5s", 50),
        ({"process": "poisson", "rate": "10/s"}, "1min", 600),
        ({"process": "constant", "rate": "2/s", "stop": "10s"}, None, 20),
        ({"process": "burst", "count": 1000, "over": "10s", "at": "5s"}, None, 1000),
        ({"process": "burst", "count": 1000, "over": "10s", "at": "5s"}, "10s", 500),
        ({"process": "burst", "count": 1000, "at": "5s"}, "2s", 0),
        ({"process": "burst", "count": 1000, "at": "5s"}, "6s", 1000),
        ({"process": "piecewise", "rates": [["0s", "100/s"], ["60s", "0/s"]]}, None, 6000),
        ({"process": "piecewise", "rates": [["0s", "10/s"], ["10s", "20/s"]], "stop": "20s"}, None, 300),
        ({"process": "piecewise", "rates": [["0s", "10/s"], ["10s", "20/s"]], "stop": "20s", "count": 50}, None, 50),
        ({"process": "piecewise", "rates": [["5s", "10/s"]]}, "15s", 100),
    ],
)
def test_expected_arrivals(arrivals: dict[str, Any], until: str | None, expected: float) -> None:
    assert counts(arrivals, until) == pytest.approx(expected)


def test_a_trace_counts_its_rows_before_until(tmp_path: Path) -> None:
    (tmp_path / "times.csv").write_text("0.5\n1.5\n2.5\n3.5\n4.5\n")
    assert counts({"process": "trace", "file": "times.csv"}, None, tmp_path) == 5
    assert counts({"process": "trace", "file": "times.csv"}, "3s", tmp_path) == 3


def test_the_expected_count_matches_runs() -> None:
    # Poisson over 20 s at 50/s: 1,000 expected, standard deviation 32; the mean of 5 runs is within
    # 4 standard errors (57) of the estimate, so a 6 % error in the estimate is sure to be caught.
    scenario = make_scenario(producers=[{"arrivals": {"process": "poisson", "rate": "50/s", "stop": "20s"}}],
                             consumers={"concurrency": 5, "service": SERVICE}, replications=5)
    result = sim.run(scenario, seed=3)
    offered = result.summary[result.summary["replication"].isin(range(5))]["offered"].mean()
    assert abs(offered - workload(scenario).requests) < 4 * math.sqrt(1000 / 5)


def test_fan_out_counts_every_stage_visit() -> None:
    # ingest -> (left, right) -> sink: a request visits sink twice, so 5 jobs per request.
    stage = {"consumers": {"concurrency": 1, "service": SERVICE}}
    scenario = sim.scenario_from_dict({
        "name": "fan", "producers": [{"arrivals": {"process": "burst", "count": 10}}],
        "stages": [{"name": "ingest", **stage, "then": ["left", "right"]}, {"name": "left", **stage, "then": ["sink"]},
                   {"name": "right", **stage, "then": ["sink"]}, {"name": "sink", **stage}],
    })
    counted = workload(scenario)
    assert (counted.requests, counted.jobs, counted.receives) == (10, 50, 0)
    result = sim.run(scenario)
    assert len(result.runs[0].records.jobs.arrival) == counted.jobs


def test_retries_count_every_attempt_as_an_upper_bound() -> None:
    scenario = make_scenario(producers=[{"arrivals": {"process": "burst", "count": 100}, "timeout": "1ms",
                                         "retry": {"attempts": 4}}])
    counted = workload(scenario)
    assert (counted.requests, counted.jobs, counted.client_attempts) == (100, 400, 400)
    attempts = sim.run(scenario).summary.iloc[0]["attempts"]
    assert 100 < attempts <= counted.client_attempts


@pytest.mark.parametrize(("probability", "max_receives", "receives"), [(0.0, 5, 1.0), (1.0, 5, 5.0),
                                                                         (0.5, 5, 1.9375), (1.0, None, 30.0)])
def test_broker_receives_follow_failures_up_to_their_bound(
    probability: float, max_receives: int | None, receives: float
) -> None:
    # Without max_receives a message that always fails comes back once per visibility timeout
    # (1 s) until the run ends (30 s).
    delivery: dict[str, Any] = {"visibility_timeout": "1s"}
    if max_receives is not None:
        delivery["max_receives"] = max_receives
    scenario = make_scenario(producers=[{"arrivals": {"process": "burst", "count": 10}}], until="30s",
                             queue={"delivery": delivery},
                             consumers={"concurrency": 1, "service": SERVICE, "failure": {"probability": probability},
                                        "batch": {"size": 1}})
    assert workload(scenario).receives == pytest.approx(10 * receives)


def test_the_backlog_of_an_overloaded_unbounded_queue() -> None:
    # 20,000 requests in 1 s, 2,000 consumers, 500 ms each: 4,000 served within the second, 2,000 in
    # service, 14,000 wait.
    burst = make_scenario(producers=[{"arrivals": {"process": "burst", "count": 20000, "over": "1s"}}],
                          consumers={"concurrency": 2000, "service": {"dist": "constant", "value": "500ms"}})
    assert workload(burst).backlog == pytest.approx(14000)
    # (lambda - c / E[S]) x duration, less the 10 in service: (120/s - 100/s) x 60 s - 10.
    steady = make_scenario(producers=[{"arrivals": {"process": "poisson", "rate": "120/s", "stop": "60s"}}],
                           consumers={"concurrency": 10, "service": {"dist": "exponential", "mean": "100ms"}})
    assert workload(steady).backlog == pytest.approx(1190)
    under = make_scenario(producers=[{"arrivals": {"process": "poisson", "rate": "80/s", "stop": "60s"}}],
                          consumers={"concurrency": 10, "service": {"dist": "exponential", "mean": "100ms"}})
    assert workload(under).backlog == 0
    bounded = make_scenario(producers=[{"arrivals": {"process": "burst", "count": 20000}}], queue={"capacity": 10})
    assert workload(bounded).backlog == 0


# --- memory and time ---------------------------------------------------------------------------------


def test_the_memory_per_job_bounds_what_a_run_keeps() -> None:
    # The records of a run (its request and job columns) must fit in the estimate: the constant is an
    # upper bound, not an average.
    scenario = make_scenario(producers=[{"arrivals": {"process": "poisson", "rate": "1000/s", "count": 20000}}],
                             consumers={"concurrency": 2, "service": {"dist": "exponential", "mean": "1ms"}})
    run = sim.run(scenario).runs[0]
    tables = {id(table): table for table in (run.records.columns, run.records.jobs)}.values()  # one, single-stage
    kept = sum(column.nbytes for table in tables for column in vars(table).values() if hasattr(column, "nbytes"))
    assert kept > 20000 * 40  # the columns were found (a float and a few ids per request at least)
    cost = budget.estimate([scenario], 1)
    assert kept < cost.run_bytes


def test_the_estimate_reads_like_the_check_line() -> None:
    small = make_scenario()
    assert budget.estimate([small], 1).text() == "~4 requests, <1 MB, <1 s"
    big = make_scenario(producers=[{"arrivals": {"process": "burst", "count": 10_000_000}}])
    cost = budget.estimate([big, small], 3)
    assert cost.text().startswith("~10,000,000 requests per run (backlog ~9,999,999), ~1.4 GB, ~")
    assert cost.runs == 6
    assert budget.notice(cost) is not None
    assert budget.notice(budget.estimate([small], 1)) is None


def test_refusal_names_the_size_the_memory_and_the_remedies() -> None:
    big = make_scenario(producers=[{"arrivals": {"process": "burst", "count": 10_000_000}}])
    cost = budget.estimate([big], 1)
    budget.check(cost, "x.yaml", available=4 * 2**30)  # fits
    with pytest.raises(sim.ScenarioError) as refused:
        budget.check(cost, "x.yaml", available=2**30)
    assert str(refused.value) == (
        "x.yaml: too big for this machine: ~10,000,000 requests per run need ~1.5 GB of memory, and 1.0 GB is "
        "available; set until to a shorter time, or lower the arrivals' count, rate or stop")


def test_this_machine_reports_some_available_memory() -> None:
    available = budget.available_memory()
    assert available is None or available > 0


def test_a_plan_counts_its_ends_and_its_bisection_steps() -> None:
    # Concurrency 10..20 bisects to adjacent integers: 2 ends + ceil(log2(10)) = 4 steps; a real
    # field bisects to 1 % of the range: 2 + ceil(log2(100)) = 9 probes.
    from sim.experiments.specs import parse_plan
    from sim.experiments.sweep import experiment_from_dict

    data = {"name": "p", "producers": [{"arrivals": {"process": "poisson", "rate": "9/s", "stop": "100s"}}],
            "consumers": {"concurrency": 12, "service": {"dist": "exponential", "mean": "1s"}}}
    experiment = experiment_from_dict(data)
    capacity = parse_plan({"vary": "consumers.concurrency", "min": 10, "max": 20, "targets": "wait_mean<=1s"},
                          experiment.base, "p")
    probes, replications = budget.plan_work(experiment, capacity)
    assert (len(probes), replications) == (6, 5)
    assert [p.consumers.concurrency for p in probes[:2] if p.consumers] == [10, 20]
    load = parse_plan({"maximize": "producers.0.arrivals.rate", "min": "8/s", "max": "11/s",
                       "targets": "wait_mean<=1s", "replications": 3}, experiment.base, "p")
    probes, replications = budget.plan_work(experiment, load)
    assert (len(probes), replications) == (9, 3)
    assert probes[2].producers[0].arrivals.rate == 11  # the dearer end: more arrivals
