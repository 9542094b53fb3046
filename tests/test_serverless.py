"""Lambda-like consumers: scaling allowance, cold starts, idle reclaim, throttles (exact traces)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import sim
from sim.engine.records import OUTCOMES, REASONS
from tests.helpers import make_scenario

LONG = {"dist": "constant", "value": "10s"}


def serverless(scaling: dict[str, Any], service: dict[str, Any] = LONG, **changes: Any) -> sim.Scenario:
    return make_scenario(consumers={"concurrency": 5, "service": service, "scaling": scaling}, **changes)


def starts(result: sim.Result) -> list[float | None]:
    return [None if np.isnan(t) else round(float(t), 9) for t in result.runs[0].records.jobs.start]


def burst(count: int, at: str = "0s") -> list[dict[str, Any]]:
    return [{"arrivals": {"process": "burst", "count": count, "at": at}}]


def test_scaling_allowance_is_a_token_bucket_refilled_continuously() -> None:
    # burst 2: two environments at once; then one per second (rate 1/s). Five requests at t=0.
    result = sim.run(serverless({"rate": "1/s", "burst": 2}, producers=burst(5)))
    assert starts(result) == [0.0, 0.0, 1.0, 2.0, 3.0]
    row = result.summary.iloc[0]
    assert row["cold_starts"] == 5
    assert row["throttles"] == 0  # they waited in the queue for the allowance, not throttled


def test_current_aws_rule_defaults_the_burst_to_ten_seconds_of_rate() -> None:
    # 1000/10s: 1,000 at once, then 100/s. With 1,200 requests at t=0 and a cap of 2,000,
    # the 1,001st starts when the next token arrives (10 ms), the 1,200th after 2 s.
    scenario = make_scenario(
        producers=burst(1200),
        consumers={"concurrency": 2000, "service": LONG, "scaling": {"rate": "1000/10s"}},
    )
    started = np.array(starts(sim.run(scenario)), dtype=float)
    assert np.count_nonzero(started == 0.0) == 1000
    assert started[1000] == pytest.approx(0.01)
    assert started[-1] == pytest.approx(2.0)


def test_legacy_rule_bursts_then_adds_environments_per_minute() -> None:
    scenario = serverless({"rate": "2/min", "burst": 3}, producers=burst(5),
                          service={"dist": "constant", "value": "100s"})
    assert starts(sim.run(scenario)) == [0.0, 0.0, 0.0, 30.0, 60.0]


def test_a_cold_start_delays_the_first_request_on_a_new_environment_only() -> None:
    scenario = serverless(
        {"rate": "1/s", "burst": 1, "cold_start": {"dist": "constant", "value": "500ms"}},
        service={"dist": "constant", "value": "1s"},
        producers=[{"arrivals": {"process": "constant", "rate": "0.5/s", "count": 2}}],
    )
    jobs = sim.run(scenario).runs[0].records.jobs
    # t=0: a new environment, 0.5 s init + 1 s work; t=2: the same environment, warm.
    assert jobs.start.tolist() == [0.0, 2.0]
    assert jobs.finish.tolist() == [1.5, 3.0]
    assert jobs.usage is not None
    assert jobs.usage.cold_starts.tolist() == [1, 0]


def test_idle_environments_are_reclaimed_after_the_idle_timeout() -> None:
    scenario = serverless(
        {"rate": "1/s", "burst": 5, "idle_timeout": "5s", "cold_start": {"dist": "constant", "value": "1s"}},
        service={"dist": "constant", "value": "1s"},
        producers=[{"arrivals": {"process": "constant", "rate": "0.25/s", "count": 2, "start": "0s"}},
                   {"name": "later", "arrivals": {"process": "burst", "count": 1, "at": "12s"}}],
    )
    result = sim.run(scenario)
    records = result.runs[0].records
    assert records.jobs.usage is not None
    # t=0 cold (idle from 2 s), t=4 warm (idle 2 s < 5 s; idle again from 5 s), t=12 cold:
    # the environment was reclaimed at 10 s.
    assert records.jobs.usage.cold_starts.tolist() == [1, 0, 1]
    np.testing.assert_array_equal(records.environments[0], [[0.0, 10.0], [12.0, np.nan]])


def test_each_environment_keeps_its_own_creation_and_reclaim_time() -> None:
    # Environments are reused most recently released first and reclaimed oldest idle first,
    # so reclaim order is not creation order. By hand (idle timeout 3 s, no cold start):
    # t=0 "long" creates env 0 (busy to 2); t=0.5 "short" creates env 1 (busy to 1.5);
    # t=2.5 "reuse" takes env 0, released last (busy to 3.5); t=10 both are stale: env 1 was
    # reclaimed at 1.5 + 3 = 4.5, env 0 at 3.5 + 3 = 6.5; "late" creates env 2, alive at the end.
    scenario = make_scenario(
        consumers={"concurrency": 5, "service": {"dist": "constant", "value": "1s"},
                   "scaling": {"rate": "100/s", "burst": 10, "idle_timeout": "3s"}},
        producers=[
            {"name": "long", "arrivals": {"process": "burst", "count": 1, "at": "0s"},
             "service": {"dist": "constant", "value": "2s"}},
            {"name": "short", "arrivals": {"process": "burst", "count": 1, "at": "0.5s"}},
            {"name": "reuse", "arrivals": {"process": "burst", "count": 1, "at": "2.5s"}},
            {"name": "late", "arrivals": {"process": "burst", "count": 1, "at": "10s"}},
        ],
    )
    run = sim.run(scenario).runs[0]
    assert run.records.jobs.usage is not None
    assert run.records.jobs.usage.cold_starts.tolist() == [1, 1, 0, 1]
    np.testing.assert_array_equal(run.records.environments[0], [[0.0, 6.5], [0.5, 4.5], [10.0, np.nan]])
    frame = run.environments
    assert list(frame.columns) == ["stage", "environment", "created", "reclaimed"]
    assert frame["stage"].tolist() == [run.records.stage_names[0]] * 3
    assert frame["environment"].tolist() == [0, 1, 2]
    np.testing.assert_array_equal(frame[["created", "reclaimed"]].to_numpy(), run.records.environments[0])


def test_a_fixed_pool_lists_its_workers_alive_for_the_whole_run() -> None:
    one_second = {"dist": "constant", "value": "1s"}
    scenario = sim.scenario_from_dict({
        "name": "two-stages",
        "producers": [{"arrivals": {"process": "burst", "count": 3, "at": "0s"}}],
        "stages": [{"name": "front", "consumers": {"concurrency": 2, "service": one_second}, "then": ["back"]},
                   {"name": "back", "consumers": {"concurrency": 1, "service": one_second}}],
    })
    frame = sim.run(scenario).runs[0].environments
    assert frame["stage"].tolist() == ["front", "front", "back"]
    assert frame["environment"].tolist() == [0, 1, 0]
    assert frame["created"].tolist() == [0.0, 0.0, 0.0]
    assert frame["reclaimed"].isna().all()


def test_initial_environments_are_warm() -> None:
    scenario = serverless({"rate": "1/s", "burst": 1, "initial": 2, "cold_start": {"dist": "constant", "value": "1s"}},
                          producers=burst(3))
    result = sim.run(scenario)
    assert result.runs[0].records.jobs.usage.cold_starts.tolist() == [0, 0, 1]


def test_direct_invocation_is_throttled_when_no_environment_can_start() -> None:
    scenario = serverless({"rate": "1/s", "burst": 2}, producers=burst(4), queue={"capacity": 0})
    result = sim.run(scenario)
    jobs = result.runs[0].records.jobs
    assert [OUTCOMES[o] for o in jobs.outcome] == ["completed", "completed", "rejected", "rejected"]
    assert [REASONS[r] for r in jobs.reason] == ["", "", "throttle", "throttle"]
    assert result.summary.iloc[0]["throttles"] == 2


def test_concurrency_caps_environments_and_provisioned_count_is_tracked() -> None:
    scenario = make_scenario(
        producers=burst(8),
        consumers={"concurrency": 3, "service": {"dist": "constant", "value": "1s"},
                   "scaling": {"rate": "100/s", "idle_timeout": "2s"}},
        report={"bucket": "1s"},
    )
    result = sim.run(scenario)
    assert starts(result) == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0]
    series = result.timeseries
    # Three environments for 3 s, reclaimed 2 s after their last work (two at 5 s, one at 5 s).
    assert series["provisioned"].tolist()[:3] == [3.0, 3.0, 3.0]
    assert series["busy"].tolist()[:3] == pytest.approx([3.0, 3.0, 2.0])


@pytest.mark.slow
def test_function_timeout_and_errors_fail_attempts() -> None:
    scenario = make_scenario(
        seed=2,
        producers=[{"arrivals": {"process": "constant", "rate": "100/s", "count": 1_400_000}}],
        consumers={"concurrency": 200, "service": {"dist": "uniform", "low": "0.5s", "high": "1.5s"},
                   "timeout": "1s", "failure": {"probability": 0.1}},
    )
    result = sim.run(scenario)
    jobs = result.runs[0].records.jobs
    timed_out = jobs.reason == REASONS.index("timeout")
    assert np.all(jobs.service[timed_out] > 1.0)
    np.testing.assert_allclose((jobs.finish - jobs.start)[timed_out], 1.0)
    errors = jobs.reason == REASONS.index("error")
    assert np.all(jobs.service[errors] <= 1.0)
    # 10 % of the attempts that did not time out fail with an error: a binomial share over
    # n ~ 700,000 attempts, standard error sqrt(0.1 * 0.9 / n) = 0.036 points (0.36 % of 10 %).
    # Allowing 5 standard errors, a failure probability off by 3 % (0.3 points) or more is
    # caught with probability 99.9 % ((5 + 3.09) x 0.36 % = 2.9 %).
    share = np.count_nonzero(errors) / np.count_nonzero(~timed_out)
    assert abs(share - 0.1) <= 5 * math.sqrt(0.1 * 0.9 / np.count_nonzero(~timed_out))
    row = result.summary.iloc[0]
    assert row["failed"] == np.count_nonzero(timed_out | errors)


def test_slowdown_multiplies_service_of_work_started_in_the_window() -> None:
    scenario = make_scenario(
        producers=[{"arrivals": {"process": "constant", "rate": "1/s", "count": 4}}],
        consumers={"concurrency": 1, "service": {"dist": "constant", "value": "0.5s"},
                   "slowdowns": [{"start": "1s", "end": "2.6s", "factor": 3}]},
    )
    jobs = sim.run(scenario).runs[0].records.jobs
    # Starts at 0, 1, 2.5 (behind the slowed one) and 4: the middle two are slowed.
    assert (jobs.finish - jobs.start).tolist() == [0.5, 1.5, 1.5, 0.5]


def test_lambda_cost_counts_requests_and_gb_seconds() -> None:
    scenario = make_scenario(
        producers=[{"arrivals": {"process": "constant", "rate": "1/s", "count": 4}}],
        consumers={"concurrency": 2, "service": {"dist": "constant", "value": "0.5s"}, "memory_mb": 2048},
        cost={"lambda_request": 0.25, "lambda_gb_second": 1.0, "sqs_request": 100.0},
    )
    row = sim.run(scenario).summary.iloc[0]
    # 4 invocations x $0.25 + 4 x 0.5 s x 2 GB x $1; no broker, so no SQS requests.
    assert row["cost_usd"] == pytest.approx(4 * 0.25 + 4 * 0.5 * 2 * 1.0)


def test_a_plain_worker_pool_has_no_cost() -> None:
    assert np.isnan(sim.run(make_scenario()).summary.iloc[0]["cost_usd"])
