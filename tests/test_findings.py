"""Each bundled scenario shows what its header comment says it shows.

These run the scenarios as shipped (or with the override the comment suggests) and check
the comparison that matters, with margins wide enough that only a real change in behaviour,
not a different random draw, could break them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

import sim
from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # each test runs bundled scenarios as shipped


def run(name: str, **overrides: Any) -> sim.Result:
    return sim.run(sim.load_scenario(ROOT / "scenarios" / f"{name}.yaml", overrides))


def row(result: sim.Result, producer: str = "all", stage: str = "all") -> pd.Series:
    summary = result.summary
    return summary[(summary["producer"] == producer) & (summary["stage"] == stage)].iloc[0]


def test_encore_lifo_serves_fewer_dead_requests_than_fifo() -> None:
    fifo, lifo = row(run("encore-fifo-vs-lifo")), row(run("encore-fifo-vs-lifo", **{"queue.discipline": "lifo"}))
    assert lifo["late"] < 0.7 * fifo["late"]
    assert lifo["goodput"] > 1.2 * fifo["goodput"]


def test_encore_priority_starves_the_low_class() -> None:
    result = run("encore-priority")
    assert row(result, "low")["starvation"] > 1.5 * row(result, "high")["starvation"]
    assert row(result, "low")["wait_mean"] > 2 * row(result, "high")["wait_mean"]


def test_encore_red_turns_away_less_high_priority() -> None:
    plain, red = run("encore-priority"), run("encore-red")
    assert row(red, "high")["rejected"] < 0.5 * row(plain, "high")["rejected"]
    assert row(red, "low")["dropped_aqm"] > 0
    assert row(red, "high")["dropped_aqm"] == 0


def test_adaptive_lifo_keeps_goodput_that_fifo_loses_to_zombie_work() -> None:
    adaptive = row(run("adaptive-lifo"))
    fifo = row(run("adaptive-lifo", **{"queue.discipline": "fifo", "queue.lifo_when": None}))
    assert adaptive["goodput"] > 1.2 * fifo["goodput"]
    assert adaptive["wasted_work"] < 0.5 * fifo["wasted_work"]


def test_codel_keeps_waits_short_where_tail_drop_keeps_a_standing_queue() -> None:
    codel, tail = row(run("codel-vs-tail-drop")), row(run("codel-vs-tail-drop", **{"queue.aqm": None}))
    assert tail["wait_p99"] > 2.0
    assert codel["wait_p99"] < 0.15 * tail["wait_p99"]
    assert codel["goodput"] > 0.9 * tail["goodput"]


def test_pubsub_resize_is_the_bottleneck_and_notify_keeps_up() -> None:
    result = run("pubsub-fanout")
    assert row(result, stage="resize")["rejected"] > 0
    assert row(result, stage="notify")["completed"] == row(result, stage="notify")["offered"]
    assert row(result)["latency_p99"] > 10 * row(result, stage="ingest")["latency_p99"]


def test_pipeline_waits_mostly_at_enrich() -> None:
    result = run("pipeline")
    waits = {stage: row(result, stage=stage)["wait_mean"] for stage in ("parse", "enrich", "store")}
    assert max(waits, key=waits.get) == "enrich"  # type: ignore[arg-type]


def test_sqs_lambda_burst_drains_everything_at_the_pollers_pace() -> None:
    result = run("sqs-lambda-burst")
    burst = row(result)
    assert burst["completed"] == 20_000
    assert 40 < burst["sim_time"] < 100  # pollers ramp from 5 by 300/min
    assert burst["cold_starts"] > 0
    assert 0.05 < burst["cost_usd"] < 1.0
    fast = row(run("sqs-lambda-burst", **{"queue.pollers.initial": 1000}))
    assert fast["sim_time"] < 0.5 * burst["sim_time"]


def test_direct_invocation_loses_most_of_the_burst_and_sqs_none() -> None:
    direct = row(run("direct-vs-queue"))
    queued = row(run("direct-vs-queue", **{"queue": {"delivery": {"visibility_timeout": "30s", "max_receives": 5},
                                                      "pollers": {"initial": 1000, "max": 1000}}}))
    assert direct["rejected"] > 0.5 * 20_000
    assert direct["retries"] > 0
    assert queued["completed"] == 20_000


def test_too_short_a_visibility_timeout_processes_messages_twice() -> None:
    short = row(run("visibility-timeout-too-short"))
    long = row(run("visibility-timeout-too-short", **{"queue.delivery.visibility_timeout": "6min"}))
    assert short["duplicates"] > 50
    assert long["duplicates"] == 0
    assert short["cost_usd"] > 1.1 * long["cost_usd"]


def test_poison_messages_reach_the_dlq_and_partial_failures_spare_their_batch_mates() -> None:
    whole = run("poison-messages-dlq")
    partial = run("poison-messages-dlq", **{"consumers.batch.partial_failures": True})
    assert row(whole, "poison")["dead_lettered"] == row(whole, "poison")["offered"]
    assert row(whole, "orders")["dead_lettered"] > 0
    assert row(partial, "orders")["dead_lettered"] == 0
    assert row(partial, "poison")["dead_lettered"] == row(partial, "poison")["offered"]
    # Each poison message is received 5 times before the DLQ, and burns capacity each time.
    assert row(whole)["cost_usd"] > row(partial)["cost_usd"]


@pytest.mark.parametrize("budget", [None, {"tokens": 500, "cost": 5, "timeout_cost": 10, "refund": 1}])
def test_retry_storm_is_metastable_without_a_budget(budget: dict[str, int] | None) -> None:
    result = run("retry-storm", **{"producers.0.retry.budget": budget})
    series = result.timeseries
    before = series[(series["time"] >= 10) & (series["time"] < 30)]["completed"].mean()
    long_after = series[(series["time"] >= 80) & (series["time"] < 150)]["completed"].mean()
    assert before > 700  # ~800/s, all in time
    if budget is None:
        assert long_after < 0.1 * before  # 40 s after the trigger ended, still collapsed
        assert row(result)["retries"] > row(result)["offered"]
        assert row(result)["goodput"] < 0.2 * 800  # ~75/s over the run: most requests answered too late
    else:
        assert long_after > 0.9 * before  # recovered
        assert row(result)["goodput"] > 0.7 * 800  # ~650/s: only the trigger's 10 s are lost


def test_autoscaled_pool_sits_between_a_fixed_pool_and_lambda_on_p99_and_on_cost() -> None:
    result = sim.sweep(sim.load_experiment(ROOT / "scenarios" / "autoscale-backlog.yaml"))
    estimates = result.estimates
    means = estimates[(estimates["stat"] == "mean") & (estimates["producer"] == "all")].set_index("point")
    keda, fixed, lam = (means.loc[point] for point in (0, 1, 2))
    # p99: ~2.7 s (Lambda), ~45 s (the pool waits for capacity), ~110 s (25 consumers drain the burst).
    assert lam["latency_p99"] < 0.2 * keda["latency_p99"]
    assert keda["latency_p99"] < 0.6 * fixed["latency_p99"]
    # Cost: ~$0.62 (fixed), ~$1.04 (the pool at 100 consumers through the 5-minute window), ~$1.31 (Lambda).
    assert fixed["cost_usd"] < 0.75 * keda["cost_usd"]
    assert keda["cost_usd"] < 0.9 * lam["cost_usd"]
    # The pool went to its maximum for the burst and came back down to about the steady load's need.
    series = result.timeseries
    pool = series[(series["point"] == 0) & (series["replication"] == 0)]
    assert pool["desired"].max() == 100
    assert 20 <= pool["ready"].iloc[-30:].mean() <= 40
