"""Properties that hold for every scenario: conservation of requests and Little's law.

Hypothesis draws small random scenarios (any discipline, capacity, overflow rule, deadline
handling, several producers, a time limit or none) and checks invariants of the records
rather than particular numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim
from sim.analysis.metrics import Intervals
from sim.engine.records import AQM, COMPLETED, DROPPED, EXPIRED, IN_SYSTEM, LATE, NO_REASON, OVERFLOW, REJECTED

services = st.one_of(
    st.builds(lambda m: {"dist": "exponential", "mean": m}, st.floats(0.05, 2.0)),
    st.builds(lambda v: {"dist": "constant", "value": v}, st.sampled_from([0.0, 0.1, 0.5, 1.0])),
    st.builds(lambda m, cv: {"dist": "lognormal", "mean": m, "cv": cv}, st.floats(0.05, 2.0), st.floats(0.1, 2.0)),
)
arrival_processes = st.one_of(
    st.builds(lambda r, n: {"process": "poisson", "rate": r, "count": n}, st.floats(0.5, 50.0), st.integers(1, 120)),
    st.builds(lambda r, n: {"process": "constant", "rate": r, "count": n}, st.floats(0.5, 50.0), st.integers(1, 60)),
    st.builds(lambda n, over: {"process": "burst", "count": n, "over": over}, st.integers(1, 150),
              st.sampled_from([0.0, 0.5, 2.0])),
)


@st.composite
def queues(draw: st.DrawFn, discipline: str, producers: list[str]) -> dict[str, Any]:
    """A queue block: any capacity, overflow, expiry rule, adaptive-LIFO trigger and AQM policy."""
    capacity = draw(st.one_of(st.just("unbounded"), st.integers(0, 8)))
    queue: dict[str, Any] = {
        "discipline": discipline,
        "capacity": capacity,
        "overflow": draw(st.sampled_from(["reject", "drop-oldest"])),
        "on_expired": draw(st.sampled_from(["serve", "skip"])),
    }
    if discipline == "adaptive-lifo" and draw(st.booleans()):
        queue["lifo_when"] = draw(st.one_of(st.builds(lambda n: {"length": n}, st.integers(1, 5)),
                                            st.builds(lambda w: {"wait": w}, st.floats(0.0, 1.0))))
    policies = ["none", "red", "codel", "fail-at-scale"] + (["proportional"] if capacity != "unbounded" else [])
    policy = draw(st.sampled_from(policies))
    classes = draw(st.one_of(st.none(), st.lists(st.sampled_from(producers), min_size=1, unique=True)))
    if policy == "red":
        low = draw(st.floats(0.0, 3.0))
        queue["aqm"] = {"policy": "red", "min": low, "max": low + draw(st.floats(0.5, 5.0)),
                        "max_p": draw(st.floats(0.01, 1.0)), "weight": draw(st.floats(0.01, 1.0))}
        if classes:
            queue["aqm"]["classes"] = classes
    elif policy == "proportional":
        queue["aqm"] = {"policy": "proportional", **({"classes": classes} if classes else {})}
    elif policy in ("codel", "fail-at-scale"):
        queue["aqm"] = {"policy": policy, "target": draw(st.floats(0.001, 0.2)), "interval": draw(st.floats(0.01, 1.0))}
    return queue


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    discipline = draw(st.sampled_from(["fifo", "lifo", "priority", "adaptive-lifo"]))
    producers = []
    for index in range(draw(st.integers(1, 3))):
        producer: dict[str, Any] = {"name": f"p{index}", "arrivals": draw(arrival_processes)}
        if draw(st.booleans()):
            producer["timeout"] = draw(st.floats(0.05, 5.0))
        if draw(st.booleans()):
            producer["service"] = draw(services)
        if discipline == "priority":
            producer["priority"] = draw(st.integers(0, 9))
        producers.append(producer)
    scenario: dict[str, Any] = {
        "name": "property",
        "seed": draw(st.integers(0, 2**16)),
        "producers": producers,
        "queue": draw(queues(discipline, [p["name"] for p in producers])),
        "consumers": {"concurrency": draw(st.integers(1, 6)), "service": draw(services)},
    }
    if draw(st.booleans()):
        scenario["until"] = draw(st.floats(0.5, 20.0))
    if draw(st.booleans()):
        scenario["warmup"] = draw(st.floats(0.0, 0.4))
    return scenario


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_every_request_ends_in_exactly_one_consistent_outcome(data: dict[str, Any]) -> None:
    scenario = sim.scenario_from_dict(data)
    result = sim.run(scenario)
    records = result.runs[0].records
    c = records.columns
    outcome, start, finish, arrival, deadline = c.outcome, c.start, c.finish, c.arrival, c.deadline
    started = ~np.isnan(start)
    left = ~np.isnan(finish)

    # Conservation: the outcome counts add up to the arrivals, and what is still in the
    # system is exactly what the engine had queued or in service when the run ended.
    row = result.summary[result.summary["producer"] == "all"].iloc[0]
    outcomes = ["completed", "late", "expired", "rejected", "dropped", "in_system"]
    assert sum(int(row[o]) for o in outcomes) == row["offered"]
    assert np.count_nonzero(outcome == IN_SYSTEM) == records.queued_at_end + records.busy_at_end
    if scenario.until is None:
        assert records.queued_at_end == records.busy_at_end == 0

    # Each outcome agrees with the request's own timestamps.
    served = (outcome == COMPLETED) | (outcome == LATE)
    assert np.all(started[served] & left[served])
    assert np.all(finish[outcome == COMPLETED] <= deadline[outcome == COMPLETED])
    assert np.all(finish[outcome == LATE] > deadline[outcome == LATE])
    np.testing.assert_allclose((finish - start)[served], c.service[served], rtol=1e-9, atol=1e-9)
    never_served = (outcome == EXPIRED) | (outcome == REJECTED) | (outcome == DROPPED)
    assert not started[never_served].any()
    assert left[never_served].all()
    assert np.all(deadline[outcome == EXPIRED] < finish[outcome == EXPIRED])
    assert np.all(finish[outcome == REJECTED] == arrival[outcome == REJECTED])
    assert not left[outcome == IN_SYSTEM].any()
    assert np.all(start[started] >= arrival[started])
    assert scenario.queue is not None
    if scenario.queue.on_expired == "serve":
        assert not (outcome == EXPIRED).any()
    if scenario.queue.overflow == "reject" and scenario.queue.aqm is None:
        assert not (outcome == DROPPED).any()
    reason = c.reason
    assert np.all(reason[outcome != DROPPED] == NO_REASON)
    assert np.all(np.isin(reason[outcome == DROPPED], [OVERFLOW, AQM]))

    # Capacity limits: never more in service than consumers, never more waiting than room.
    intervals = Intervals(records)
    end = records.end_time
    assert intervals.service().maximum(0, end) <= scenario.consumers.concurrency
    if scenario.queue.capacity is not None:
        assert intervals.queue().maximum(0, end) <= scenario.queue.capacity


@st.composite
def topologies(draw: st.DrawFn) -> dict[str, Any]:
    """A random acyclic topology: stage i may feed only stages after it; producers publish anywhere."""
    count = draw(st.integers(1, 4))
    names = [f"s{index}" for index in range(count)]
    producers = []
    for index in range(draw(st.integers(1, 2))):
        producer: dict[str, Any] = {"name": f"p{index}", "arrivals": draw(arrival_processes)}
        if draw(st.booleans()):
            producer["timeout"] = draw(st.floats(0.05, 5.0))
        producer["to"] = draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True))
        producers.append(producer)
    stages = []
    for index, name in enumerate(names):
        discipline = draw(st.sampled_from(["fifo", "lifo", "adaptive-lifo"]))
        stages.append({
            "name": name,
            "queue": draw(queues(discipline, [p["name"] for p in producers])),
            "consumers": {"concurrency": draw(st.integers(1, 3)), "service": draw(services)},
            "then": draw(st.lists(st.sampled_from(names[index + 1:]), unique=True, max_size=2))
            if index + 1 < count else [],
        })
    scenario: dict[str, Any] = {"name": "topology", "seed": draw(st.integers(0, 2**16)), "producers": producers,
                                "stages": stages}
    if draw(st.booleans()):
        scenario["until"] = draw(st.floats(0.5, 20.0))
    return scenario


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topologies())
def test_every_request_and_every_job_of_a_topology_ends_once(data: dict[str, Any]) -> None:
    scenario = sim.scenario_from_dict(data)
    result = sim.run(scenario)
    records = result.runs[0].records
    requests, jobs = records.columns, records.jobs
    row = result.summary.set_index(["producer", "stage"]).loc[("all", "all")]
    outcomes = ["completed", "late", "expired", "rejected", "dropped", "in_system"]
    assert sum(int(row[o]) for o in outcomes) == row["offered"] == len(requests)
    # Jobs still present at the end are exactly those the stages held.
    assert np.count_nonzero(jobs.outcome == IN_SYSTEM) == records.queued_at_end + records.busy_at_end
    # A request is unresolved exactly when one of its jobs is still in the system.
    open_requests = np.unique(jobs.request[jobs.outcome == IN_SYSTEM])
    assert set(np.flatnonzero(np.isnan(requests.finish)).tolist()) == set(open_requests.tolist())
    # A request is completed only if all its jobs completed, and resolved when its last job left.
    for rid in range(len(requests)):
        mine = jobs.request == rid
        job_outcomes = set(jobs.outcome[mine].tolist())
        if requests.outcome[rid] == COMPLETED:
            assert job_outcomes <= {COMPLETED, LATE}
            assert requests.finish[rid] <= requests.deadline[rid]
            assert requests.finish[rid] == np.max(jobs.finish[mine])
        if requests.outcome[rid] in (EXPIRED, REJECTED, DROPPED):
            assert requests.outcome[rid] in job_outcomes
    # Each job's fan-out: a served job at a stage with `then` spawned one job per target.
    served = (jobs.outcome == COMPLETED) | (jobs.outcome == LATE)
    fan = [len(stage.then) for stage in scenario.stage_list]
    expected_jobs = sum(len(scenario.entry_stages(p)) * int(np.count_nonzero(requests.producer == i))
                        for i, p in enumerate(scenario.producers)) + sum(fan[s] for s in jobs.stage[served])
    assert len(jobs) == expected_jobs
    if scenario.until is None:
        assert not np.isnan(requests.finish).any()


@settings(max_examples=80, deadline=None)
@given(scenarios())
def test_littles_law_holds_exactly_on_every_sample_path(data: dict[str, Any]) -> None:
    # Over a run that drains completely, the area under "requests in the system" equals the
    # sum of the time each request spent in it: L * T = sum(W), with no statistical error.
    # Both sides come from the same records, so this checks the time-average machinery (step
    # functions, the time series) rather than the engine; the engine's L = lambda W is checked
    # against queueing theory in tests/test_theory.py.
    data.pop("until", None)
    data.pop("warmup", None)
    scenario = sim.scenario_from_dict(data)
    result = sim.run(scenario)
    records = result.runs[0].records
    c = records.columns
    row = result.summary[result.summary["producer"] == "all"].iloc[0]
    sojourn = np.nansum(c.finish - c.arrival)
    if records.end_time > 0:
        assert np.isclose(row["mean_in_system"] * records.end_time, sojourn, rtol=1e-9, atol=1e-6)
    # And the time series integrates to the same area.
    series = result.runs[0].timeseries
    begins = series["time"].to_numpy()
    widths = np.clip(np.minimum(np.append(begins[1:], np.inf), records.end_time) - begins, 0, None)
    assert np.isclose(float((series["in_system"].to_numpy() * widths).sum()), sojourn, rtol=1e-9, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_fifo_single_producer_starts_requests_in_arrival_order(data: dict[str, Any]) -> None:
    data["queue"]["discipline"] = "fifo"
    data["producers"] = data["producers"][:1]
    data["producers"][0].pop("priority", None)
    data["queue"].pop("lifo_when", None)
    data["queue"].get("aqm", {}).pop("classes", None)
    result = sim.run(sim.scenario_from_dict(data))
    c = result.runs[0].records.columns
    started = ~np.isnan(c.start)
    assert np.all(np.diff(c.start[started]) >= 0)


@settings(max_examples=40, deadline=None)
@given(scenarios())
def test_same_seed_gives_identical_records(data: dict[str, Any]) -> None:
    scenario = sim.scenario_from_dict(data)
    first = sim.run(scenario).runs[0].records.columns
    second = sim.run(scenario).runs[0].records.columns
    for name in ("arrival", "start", "finish", "deadline", "service", "outcome", "producer"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))


@st.composite
def cloud_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """Serverless consumers, broker delivery with failures and redelivery, retrying clients."""
    brokered = draw(st.booleans())
    consumers: dict[str, Any] = {"concurrency": draw(st.integers(1, 4)), "service": draw(services)}
    if draw(st.booleans()):
        consumers["scaling"] = {"rate": draw(st.floats(0.5, 20.0)), "burst": draw(st.integers(1, 4)),
                                "initial": draw(st.integers(0, 1)), "idle_timeout": draw(st.floats(0.1, 5.0)),
                                "cold_start": {"dist": "constant", "value": draw(st.floats(0.0, 0.5))}}
    if draw(st.booleans()):
        consumers["failure"] = {"probability": draw(st.floats(0.0, 0.6))}
    if draw(st.booleans()):
        consumers["timeout"] = draw(st.floats(0.05, 2.0))
    if draw(st.booleans()):
        consumers["slowdowns"] = [{"start": 0.5, "end": 2.0, "factor": draw(st.floats(0.5, 4.0))}]
    queue: dict[str, Any] = {"capacity": draw(st.one_of(st.just("unbounded"), st.integers(0, 6))),
                             "on_expired": draw(st.sampled_from(["serve", "skip"]))}
    if brokered:
        queue["capacity"] = draw(st.one_of(st.just("unbounded"), st.integers(1, 20)))
        queue["delivery"] = {"visibility_timeout": draw(st.floats(0.05, 3.0)),
                             "max_receives": draw(st.one_of(st.none(), st.integers(1, 4)))}
        queue["pollers"] = {"initial": draw(st.integers(1, 3)), "rate": draw(st.floats(0.5, 5.0)),
                            "max": draw(st.integers(3, 6))}
        consumers["batch"] = {"size": draw(st.integers(1, 4)), "window": draw(st.sampled_from([0.0, 0.05])),
                              "partial_failures": draw(st.booleans())}
    producer: dict[str, Any] = {"name": "p0", "arrivals": draw(arrival_processes)}
    if draw(st.booleans()):
        producer["timeout"] = draw(st.floats(0.1, 5.0))
    if draw(st.booleans()):
        producer["retry"] = {"attempts": draw(st.integers(1, 4)), "base": draw(st.floats(0.01, 0.5)),
                             "jitter": draw(st.sampled_from(["none", "full", "equal", "decorrelated"])),
                             "on": draw(st.lists(st.sampled_from(["rejected", "failed", "dropped", "timeout"]),
                                                 min_size=1, unique=True))}
        if "timeout" not in producer:
            producer["retry"]["on"] = [kind for kind in producer["retry"]["on"] if kind != "timeout"] or ["rejected"]
        if draw(st.booleans()):
            producer["retry"]["budget"] = {"tokens": draw(st.integers(1, 20)), "cost": draw(st.integers(0, 5))}
    scenario: dict[str, Any] = {"name": "cloud", "seed": draw(st.integers(0, 2**16)), "producers": [producer],
                                "queue": queue, "consumers": consumers}
    if draw(st.booleans()) or brokered:
        scenario["until"] = draw(st.floats(1.0, 30.0))  # a message that always fails would never leave
    return scenario


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cloud_scenarios())
def test_requests_are_conserved_with_retries_redelivery_and_scaling(data: dict[str, Any]) -> None:
    scenario = sim.scenario_from_dict(data)
    result = sim.run(scenario)
    records = result.runs[0].records
    requests, jobs = records.columns, records.jobs
    row = result.summary.iloc[0]
    outcomes = ["completed", "late", "expired", "rejected", "dropped", "failed", "dead_lettered", "in_system"]
    assert sum(int(row[o]) for o in outcomes) == row["offered"] == len(requests)
    assert row["attempts"] == len(jobs)
    # Every job still in the system at the end is held by the stage (queued, in flight or running).
    assert np.count_nonzero(jobs.outcome == IN_SYSTEM) == records.queued_at_end + records.busy_at_end
    # A request is completed only by an attempt that finished in time; a resolved one has a finish time.
    completed = requests.outcome == COMPLETED
    assert np.all(requests.finish[completed] >= requests.arrival[completed])
    assert np.all(np.isnan(requests.finish) <= (requests.outcome == IN_SYSTEM))
    # Usage is consistent: receives only with a broker; no more cold starts than environments created.
    if jobs.usage is None:
        assert len(jobs) == len(requests)
        return
    if scenario.queue is not None and scenario.queue.delivery is None:
        assert not jobs.usage.receives.any()
    assert int(jobs.usage.cold_starts.sum()) <= len(records.environments[0])
    if scenario.producers[0].retry is None:
        assert len(jobs) == len(requests)
    else:
        assert int(jobs.usage.attempt.max(initial=0)) < scenario.producers[0].retry.attempts
