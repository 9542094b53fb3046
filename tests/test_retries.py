"""Clients that retry: backoff delays, jitter, the retry budget, timeouts and zombie attempts."""

from __future__ import annotations

from typing import Any

import pytest

import sim
from sim.engine.records import OUTCOMES
from sim.engine.streams import RETRIES, replication_seeds, stream, uniform_stream
from sim.model.distributions import Sampler
from tests.helpers import make_scenario


def clients(retry: dict[str, Any], *, rate: str = "2/s", count: int = 2, timeout: str | None = None,
            service: str = "10s", capacity: int | str = 0, seed: int = 0) -> sim.Scenario:
    producer: dict[str, Any] = {"arrivals": {"process": "constant", "rate": rate, "count": count}, "retry": retry}
    if timeout is not None:
        producer["timeout"] = timeout
    return make_scenario(seed=seed, producers=[producer], queue={"capacity": capacity},
                         consumers={"concurrency": 1, "service": {"dist": "constant", "value": service}})


def attempts_of(result: sim.Result, request: int) -> list[float]:
    jobs = result.runs[0].records.jobs
    return [round(float(t), 9) for t in jobs.arrival[jobs.request == request]]


def request_outcomes(result: sim.Result) -> list[str]:
    return [OUTCOMES[o] for o in result.runs[0].records.columns.outcome]


def test_rejected_attempts_are_retried_after_exponential_backoff() -> None:
    result = sim.run(clients({"attempts": 3, "base": "100ms", "jitter": "none", "on": ["rejected"]}))
    # Request 1 is throttled at 0.5, retried at 0.6 (100 ms) and 0.8 (200 ms), then gives up.
    assert attempts_of(result, 1) == [0.5, 0.6, 0.8]
    assert request_outcomes(result) == ["completed", "rejected"]
    row = result.summary.iloc[0]
    assert (row["offered"], row["attempts"], row["retries"]) == (2, 4, 2)


def test_backoff_is_capped() -> None:
    result = sim.run(clients({"attempts": 5, "base": "100ms", "cap": "250ms", "jitter": "none"}))
    assert attempts_of(result, 1) == [0.5, 0.6, 0.8, 1.05, 1.3]


def test_constant_backoff_waits_base_each_time() -> None:
    result = sim.run(clients({"attempts": 3, "backoff": "constant", "base": "300ms", "jitter": "none"}))
    assert attempts_of(result, 1) == [0.5, 0.8, 1.1]


def uniforms(seed: int) -> Sampler:
    """The retrying producer's jitter stream, as the engine draws it."""
    return uniform_stream(stream(replication_seeds(seed, 0), 0, RETRIES))


@pytest.mark.parametrize("jitter", ["full", "equal", "decorrelated"])
def test_jitter_draws_follow_brooker(jitter: str) -> None:
    result = sim.run(clients({"attempts": 4, "base": "100ms", "cap": "20s", "jitter": jitter}, seed=7))
    u = uniforms(7)
    times = [0.5]
    sleep = 0.1
    for retry in range(3):
        ceiling = min(20.0, 0.1 * 2**retry)
        if jitter == "full":
            delay = u() * ceiling
        elif jitter == "equal":
            delay = ceiling / 2 + u() * ceiling / 2
        else:
            sleep = min(20.0, 0.1 + u() * (3 * sleep - 0.1))
            delay = sleep
        times.append(times[-1] + delay)
    assert attempts_of(result, 1) == pytest.approx(times)


def test_the_retry_budget_runs_out() -> None:
    # 10 tokens, 5 per retry: request 1 spends them all on its two retries; requests 2 and 3
    # find the bucket empty and are not retried. Request 0 succeeds (and refunds) only at 100 s.
    result = sim.run(clients({"attempts": 3, "base": "100ms", "jitter": "none",
                              "budget": {"tokens": 10, "cost": 5, "refund": 1}},
                             rate="1/s", count=4, service="100s"))
    assert [len(attempts_of(result, r)) for r in range(4)] == [1, 3, 1, 1]
    assert request_outcomes(result) == ["completed", "rejected", "rejected", "rejected"]


def test_a_timed_out_attempt_keeps_running_as_zombie_work_while_the_client_retries() -> None:
    # One consumer, 1 s each, clients give up after 0.5 s and retry once 100 ms later. Every
    # attempt is served after its client gave up: the retries double the work and help no one.
    result = sim.run(clients({"attempts": 2, "base": "100ms", "jitter": "none", "on": ["timeout"]},
                             rate="10/s", timeout="0.5s", service="1s", capacity="unbounded"))
    jobs = result.runs[0].records.jobs
    assert jobs.request.tolist() == [0, 1, 0, 1]
    assert jobs.arrival.round(9).tolist() == [0.0, 0.1, 0.6, 0.7]
    assert jobs.start.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert [OUTCOMES[o] for o in jobs.outcome] == ["late"] * 4
    assert request_outcomes(result) == ["late", "late"]
    assert result.runs[0].records.columns.finish.tolist() == [3.0, 4.0]
    assert result.summary.iloc[0]["wasted_work"] == 4.0


def test_a_retry_that_succeeds_completes_the_request() -> None:
    result = sim.run(clients({"attempts": 3, "base": "100ms", "jitter": "none"}, rate="10/s", service="0.3s"))
    assert attempts_of(result, 1) == [0.1, 0.2, 0.4]
    assert request_outcomes(result) == ["completed", "completed"]
    latency = result.runs[0].records.columns
    assert latency.finish[1] - latency.arrival[1] == pytest.approx(0.6)


def test_failed_attempts_are_retried_when_asked() -> None:
    scenario = make_scenario(
        seed=3,
        producers=[{"arrivals": {"process": "poisson", "rate": "5/s", "count": 300},
                    "retry": {"attempts": 4, "on": ["failed"], "base": "10ms"}}],
        consumers={"concurrency": 5, "service": {"dist": "exponential", "mean": "50ms"},
                   "failure": {"probability": 0.3}},
    )
    row = sim.run(scenario).summary.iloc[0]
    # Each attempt fails with p = 0.3, so a request fails 4 times in a row with p = 0.0081:
    # about 2.4 of 300; the attempts per request are 1 / 0.7 on average (~429 in all).
    assert row["failed"] <= 10
    assert 380 < row["attempts"] < 480
    assert row["completed"] + row["failed"] + row["late"] == 300


def test_retries_are_refused_with_stages() -> None:
    with pytest.raises(sim.ScenarioError, match="retry"):
        sim.scenario_from_dict({
            "name": "x",
            "producers": [{"arrivals": {"process": "burst", "count": 1}, "retry": {}}],
            "stages": [{"name": "a", "consumers": {"concurrency": 1, "service": {"dist": "constant", "value": 1}}}],
        })


def test_retry_on_timeout_needs_a_timeout() -> None:
    with pytest.raises(sim.ScenarioError, match=r"producers\.0\.timeout"):
        clients({"on": ["timeout"]})


def test_time_series_shows_attempts_next_to_arrivals() -> None:
    result = sim.run(clients({"attempts": 3, "base": "100ms", "jitter": "none", "on": ["rejected"]}))
    series = result.timeseries
    # Two arrivals (0 and 0.5 s) and four attempts (0, 0.5, 0.6, 0.8 s): all in the first 1 s bucket.
    assert series["arrivals"].tolist() == [2] + [0] * (len(series) - 1)
    assert series["attempts"].tolist() == [4] + [0] * (len(series) - 1)


def test_an_attempt_finishing_exactly_at_its_deadline_is_not_retried() -> None:
    # Constant 1 s service and a 1 s timeout: each attempt finishes exactly at its deadline,
    # which counts as completed, so the client must not also retry it.
    result = sim.run(clients({"attempts": 3, "jitter": "none", "on": ["timeout"]}, rate="1/s", count=3,
                             timeout="1s", service="1s", capacity="unbounded"))
    row = result.summary.iloc[0]
    assert (row["completed"], row["attempts"]) == (3, 3)


def test_throttled_attempts_back_off_from_the_throttle_base() -> None:
    retry = {"attempts": 3, "base": "100ms", "throttle_base": "500ms", "jitter": "none", "on": ["rejected"]}
    scenario = make_scenario(
        producers=[{"arrivals": {"process": "constant", "rate": "2/s", "count": 2}, "retry": retry}],
        queue={"capacity": 0},
        consumers={"concurrency": 1, "service": {"dist": "constant", "value": "10s"},
                   "scaling": {"rate": "1/min", "burst": 1}},
    )
    # Request 1 is throttled (no environment, no allowance): retried 500 ms, then 1 s later.
    assert attempts_of(sim.run(scenario), 1) == [0.5, 1.0, 2.0]
