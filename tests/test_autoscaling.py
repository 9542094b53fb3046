"""Autoscaled worker pools (``consumers.autoscale``): the HPA rule, exact traces, steady states, errors.

Traces are worked out by hand from the rule in docs/autoscaling.md: a sync every 15 s,
``desired = ceil(usage / target)`` outside the 10 % tolerance, the highest recommendation of
the last 300 s on the way down, at most +100 % or +4 consumers per 15 s on the way up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim
from sim.analysis.intervals import Intervals, StepFunction
from sim.cli import main
from sim.engine.hpa import Hpa
from sim.engine.records import IN_SYSTEM
from sim.model.autoscale_specs import AutoscaleSpec
from sim.model.engines import compiled_unsupported
from tests.helpers import make_scenario

TWENTY_SECONDS = {"dist": "constant", "value": "20s"}


def spec(**fields: Any) -> AutoscaleSpec:
    return AutoscaleSpec.model_validate({"max": 100, **fields})


def burst(count: int, at: str = "1s", service: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    producer: dict[str, Any] = {"arrivals": {"process": "burst", "count": count, "at": at}}
    if service is not None:
        producer["service"] = service
    return [producer]


def records_of(scenario: sim.Scenario) -> Any:
    return sim.run(scenario).runs[0].records


# --- the rule alone -------------------------------------------------------------------------


def test_within_the_tolerance_nothing_changes_and_outside_it_the_count_follows_the_ratio() -> None:
    hpa = Hpa(spec(metric="utilization", target=0.5), initial=10)
    # 10 ready, 5.4 busy: utilization 0.54, ratio 1.08 -> within 10 %, no change; 0.92 neither.
    assert hpa.recommend(10, 10, 0, 5.4) == 10
    assert hpa.recommend(10, 10, 0, 4.6) == 10
    # 5.6 busy: ratio 1.12 -> ceil(5.6 / 0.5) = 12.
    assert hpa.recommend(10, 10, 0, 5.6) == 12
    # 4.4 busy: ratio 0.88 -> ceil(4.4 / 0.5) = 9.
    assert hpa.recommend(10, 10, 0, 4.4) == 9
    # Backlog: 30 messages for 2 ready consumers at 5 each -> 6; with none ready, still 6.
    backlog = Hpa(spec(target=5), initial=2)
    assert backlog.recommend(2, 2, 0, 30.0) == backlog.recommend(2, 0, 2, 30.0) == 6
    assert backlog.recommend(2, 0, 2, 0.0) == 2  # nothing to measure: keep


def test_starting_consumers_count_as_idle_in_a_utilization_scale_up() -> None:
    hpa = Hpa(spec(metric="utilization", target=0.5), initial=10)
    # 4 ready, all busy: ratio 2; with 6 more starting the ratio is 4 / (10 x 0.5) = 0.8: no action.
    assert hpa.recommend(10, 4, 6, 4.0) == 10
    # With 1 starting: 4 / (5 x 0.5) = 1.6 > 1.1, so scale to ceil(4 / 0.5) = 8.
    assert hpa.recommend(5, 4, 1, 4.0) == 8


def test_default_scale_up_is_the_larger_of_four_consumers_or_double_per_15_seconds() -> None:
    hpa = Hpa(spec(target=1), initial=1)
    assert hpa.sync(15, 1, 1, 0, 1000.0) == 5  # max(1 + 4, 2 x 1)
    assert hpa.sync(30, 5, 5, 0, 1000.0) == 10  # the +4 at t=15 is not within (15, 30]: max(9, 10)
    assert hpa.sync(45, 10, 10, 0, 1000.0) == 20
    assert hpa.sync(60, 20, 20, 0, 1000.0) == 40
    assert hpa.sync(75, 40, 40, 0, 1000.0) == 80
    assert hpa.sync(90, 80, 80, 0, 1000.0) == 100  # max


def test_a_policy_period_counts_the_changes_made_within_it() -> None:
    # One policy of +2 consumers per 60 s: syncs at 15 s and 30 s share one allowance.
    hpa = Hpa(spec(target=1, scale_up={"policies": [{"pods": 2, "period": "60s"}]}), initial=1)
    assert hpa.sync(15, 1, 1, 0, 1000.0) == 3
    assert hpa.sync(30, 3, 3, 0, 1000.0) == 3  # start of period 1, +2 used
    assert hpa.sync(75, 3, 3, 0, 1000.0) == 5  # the change at 15 s is 60 s old: a new allowance
    # select: min takes the smaller of +100 % and +4.
    careful = Hpa(spec(target=1, scale_up={"select": "min"}), initial=10)
    assert careful.sync(15, 10, 10, 0, 1000.0) == 14
    frozen = Hpa(spec(target=1, scale_up={"select": "disabled"}), initial=10)
    assert frozen.sync(15, 10, 10, 0, 1000.0) == 10


def test_scale_down_keeps_the_highest_recommendation_of_the_window_and_its_policy() -> None:
    hpa = Hpa(spec(target=1, min=2, scale_down={"stabilization": "60s", "policies": [{"percent": 50}]}),
              initial=20)
    assert hpa.sync(15, 20, 20, 0, 12.0) == 20  # the initial 20 (t=0) is within the window
    assert hpa.sync(60, 20, 20, 0, 0.0) == 12  # window (0, 60]: 12 at 15 s
    assert hpa.sync(75, 12, 12, 0, 0.0) == 6  # 12 at 15 s has left the window; -50 % per 15 s
    assert hpa.sync(90, 6, 6, 0, 0.0) == 3
    assert hpa.sync(105, 3, 3, 0, 0.0) == 2  # min


# --- exact traces ---------------------------------------------------------------------------


def thirty_jobs(**queue: Any) -> sim.Scenario:
    consumers: dict[str, Any] = {"concurrency": 1, "service": TWENTY_SECONDS,
                                 "autoscale": {"target": 1, "max": 10, "provisioning": "10s"}}
    if queue:
        consumers["batch"] = {"size": 1}
    return make_scenario(producers=burst(30), queue=queue, consumers=consumers)


THIRTY_JOB_STARTS = [1.0, 21.0, *[25.0] * 4, *[40.0] * 5, 41.0, *[45.0] * 4, *[60.0] * 5, 61.0, *[65.0] * 4,
                     *[80.0] * 4]


@pytest.mark.parametrize("queue", [{}, {"delivery": {"visibility_timeout": "5min"}}], ids=["queue", "sqs"])
def test_a_burst_scales_up_by_policy_and_down_after_the_stabilization_window(queue: dict[str, Any]) -> None:
    # 30 jobs of 20 s at t=1 on 1 consumer; target 1 message per consumer, new ones ready 10 s after.
    # t=15: 30 messages -> want 30, policy allows max(1+4, 2) = 5: 4 start, ready at 25.
    # t=30: 29 messages -> 29, policy (the +4 at 15 is not within (15, 30]) allows 10: 5 start, ready at 40.
    # Recommendations 30, 29, 24, 19, 14 (t=75), then 4 (t=90) and 0: the highest of the last 300 s
    # stays >= 10 until t=375, when it is 4; at t=390 the window holds only 0s: down to min 1.
    records = records_of(thirty_jobs(**queue))
    assert records.jobs.start.tolist() == THIRTY_JOB_STARTS
    assert records.scaling[0].desired.tolist() == [[0, 1], [15, 5], [30, 10], [375, 4], [390, 1]]
    created, left = records.environments[0].T
    assert created.tolist() == [0.0] + [15.0] * 4 + [30.0] * 5
    assert sorted(records.scaling[0].ready[:, 0].tolist()) == [0.0] + [25.0] * 4 + [40.0] * 5
    assert np.count_nonzero(left == 375) == 6
    assert np.count_nonzero(left == 390) == 3
    assert np.count_nonzero(np.isnan(left)) == 1
    assert records.end_time == 100.0  # the run ends with the last job; the autoscaler then went dormant


def test_a_busy_consumer_asked_to_leave_finishes_its_work_first() -> None:
    # Four consumers busy for 20, 30, 40 and 50 s; nothing waits, so the oldest-age metric says 0
    # and, without a stabilization window, t=15 scales to 1: three busy consumers must go. A job
    # arriving at 16 s waits: the consumers finishing at 20, 30 and 40 s leave instead of taking it.
    producers = [{"name": f"p{seconds}", "arrivals": {"process": "burst", "count": 1},
                  "service": {"dist": "constant", "value": f"{seconds}s"}} for seconds in (20, 30, 40, 50)]
    producers.append({"name": "late", "arrivals": {"process": "burst", "count": 1, "at": "16s"}})
    scenario = make_scenario(producers=producers, consumers={
        "concurrency": 4, "service": {"dist": "constant", "value": "1s"},
        "autoscale": {"metric": "oldest_age", "target": "1000s", "max": 4, "scale_down": {"stabilization": "0s"}}})
    records = records_of(scenario)
    assert records.jobs.start.tolist() == [0.0, 0.0, 0.0, 0.0, 50.0]
    assert records.scaling[0].desired.tolist() == [[0, 4], [15, 1]]
    assert records.environments[0][:, 1].tolist()[:3] == [20.0, 30.0, 40.0]
    assert np.isnan(records.environments[0][3, 1])


def test_keda_starts_one_consumer_from_zero_and_returns_to_zero_after_the_cooldown() -> None:
    # No consumer until work waits. The autoscaler goes dormant at 15 s; work at 100 s wakes it;
    # KEDA's next poll (every 30 s: t=120) starts one consumer, ready 10 s later; after the last
    # active poll (120 s) plus the 300 s cooldown it scales back to zero.
    scenario = make_scenario(producers=burst(5, at="100s"), consumers={
        "concurrency": 0, "service": {"dist": "constant", "value": "1s"},
        "autoscale": {"min": 0, "max": 3, "provisioning": "10s"}})
    records = records_of(scenario)
    assert records.jobs.start.tolist() == [130.0, 131.0, 132.0, 133.0, 134.0]
    assert records.scaling[0].desired.tolist() == [[0, 0], [120, 1], [420, 0]]
    assert records.environments[0].tolist() == [[120.0, 420.0]]


def test_consumer_seconds_are_priced_from_the_start_of_provisioning() -> None:
    result = sim.run(make_scenario(producers=burst(5, at="100s"), until="10min", consumers={
        "concurrency": 0, "service": {"dist": "constant", "value": "1s"}, "hourly_price": 3.6,
        "autoscale": {"min": 0, "max": 3, "provisioning": "10s"}}))
    row = result.summary.iloc[0]
    assert row["mean_consumers"] == pytest.approx(300 / 600)  # one consumer from 120 s to 420 s
    assert row["cost_usd"] == pytest.approx(300 * 3.6 / 3600)
    series = result.timeseries
    assert series.loc[series["time"] == 125, "desired"].item() == 1.0
    assert series.loc[series["time"] == 125, "ready"].item() == 0.0  # still starting
    assert series.loc[series["time"] == 130, "ready"].item() == 1.0
    fixed = sim.run(make_scenario(until="10min", consumers={"concurrency": 2, "hourly_price": 0.5}))
    assert fixed.summary.iloc[0]["cost_usd"] == pytest.approx(2 * 0.5 * 600 / 3600)
    assert np.isnan(sim.run(make_scenario()).summary.iloc[0]["cost_usd"])


@pytest.mark.parametrize("engine", ["simpy", "compiled"])
def test_a_priced_pool_is_split_between_producers_by_their_busy_time(engine: str) -> None:
    producers = [{"name": "short", "arrivals": {"process": "poisson", "rate": "5/s"}},
                 {"name": "long", "arrivals": {"process": "poisson", "rate": "15/s"}, "service": TWENTY_SECONDS}]
    scenario = make_scenario(until="10min", engine=engine, producers=producers,
                             consumers={"concurrency": 40, "hourly_price": 1.0})
    rows = sim.run(scenario).summary.set_index("producer")
    assert rows.loc["all", "cost_usd"] == pytest.approx(40 * 600 / 3600)  # 40 consumers for 10 minutes
    assert rows.loc["short", "cost_usd"] + rows.loc["long", "cost_usd"] == pytest.approx(rows.loc["all", "cost_usd"])
    share = rows.loc["short", "utilization"] / rows.loc["all", "utilization"]
    assert rows.loc["short", "cost_usd"] == pytest.approx(share * rows.loc["all", "cost_usd"])
    assert rows["mean_consumers"].tolist() == [40.0, 40.0, 40.0]


def test_an_idle_pool_the_rule_would_never_shrink_still_lets_the_run_end() -> None:
    # A tolerance of 1.5 keeps any count while idle (ratio 0 is within it): the autoscaler must
    # stop ticking anyway, or a run without until would never end.
    scenario = make_scenario(producers=burst(30), consumers={
        "concurrency": 1, "service": TWENTY_SECONDS, "autoscale": {"target": 1, "max": 10, "tolerance": 1.5}})
    records = records_of(scenario)
    # t=15: 30 messages on 1 consumer, up to 5; t=30: 29 on 5 (ratio 5.8), up to 10; from t=45 the
    # ratio is at most 24 / 10 = 2.4, within 1.5 of 1: ten consumers stay, idle, to the end.
    assert records.scaling[0].desired.tolist() == [[0, 1], [15, 5], [30, 10]]
    assert records.end_time == max(records.jobs.finish)


# --- steady states --------------------------------------------------------------------------


@pytest.mark.parametrize("initial", [2, 100])
def test_utilization_settles_exactly_where_the_formula_puts_it(initial: int) -> None:
    # 10 arrivals/s of exactly 2 s each keep exactly 20 consumers busy; a 50 % target wants
    # ceil(20 / 0.5) = 40, from below (after the overshoot of draining the backlog) and from above.
    # Exact: an error of one consumer in the rule fails it.
    scenario = make_scenario(
        producers=[{"arrivals": {"process": "constant", "rate": "10/s", "stop": "20min"}}], until="20min",
        consumers={"concurrency": initial, "service": {"dist": "constant", "value": "2s"},
                   "autoscale": {"metric": "utilization", "target": "50%", "max": 200}})
    desired = records_of(scenario).scaling[0].desired
    assert desired[-1, 1] == 40
    assert desired[-1, 0] < 15 * 60  # and it got there well before the end
    if initial == 100:  # from above: the first five minutes keep 100, then straight to 40
        assert desired.tolist() == [[0, 100], [300, 40]]


def test_random_load_settles_in_the_tolerance_band_of_the_formula() -> None:
    # Poisson 200/s, exponential 0.5 s: 100 busy on average; target 50 % -> 200 consumers. The
    # rule leaves a count alone while busy / (count x 0.5) is within 10 % of 1, so the steady
    # state is any count in [100 / 0.55, 100 / 0.45] = [182, 222]: the band itself is what is
    # checked (the 15-s averages of busy have a standard deviation of ~2.6, 2.6 %, and the window
    # keeps the highest recommendation). Catches a rule off by more than ~10 %.
    scenario = make_scenario(
        seed=3, until="15min",
        producers=[{"arrivals": {"process": "poisson", "rate": "200/s"}}],
        consumers={"concurrency": 20, "service": {"dist": "exponential", "mean": "500ms"},
                   "autoscale": {"metric": "utilization", "target": 0.5, "max": 400}})
    result = sim.run(scenario)
    series = result.timeseries
    late = series[series["time"] >= 600]
    assert 100 / 0.55 <= late["ready"].mean() <= 100 / 0.45
    assert late["desired"].min() >= 100 / 0.55
    assert late["desired"].max() <= 100 / 0.45


# --- the pieces fit -------------------------------------------------------------------------


def test_the_compiled_engine_leaves_autoscaled_pools_to_the_simpy_engine() -> None:
    scenario = make_scenario(consumers={"autoscale": {"max": 4}})
    assert compiled_unsupported(scenario) == "consumers.autoscale"
    assert sim.run(scenario).summary.iloc[0]["engine"] == "simpy"


@pytest.mark.parametrize(
    ("consumers", "field", "words"),
    [
        ({"autoscale": {"max": 2, "min": 3}}, "consumers.autoscale.min", "got 3; min must not exceed max (2)"),
        ({"autoscale": {"max": 4, "target": 0}}, "consumers.autoscale.target", "got 0; must be a number"),
        ({"autoscale": {"max": 4, "target": -1}}, "consumers.autoscale.target", "greater than 0"),
        ({"autoscale": {"max": 4, "metric": "utilization", "target": "120%"}}, "consumers.autoscale.target",
         "at most 1"),
        ({"autoscale": {"max": 4, "metric": "utilization"}}, "consumers.autoscale.target", "missing"),
        ({"autoscale": {"max": 4, "metric": "oldest_age", "target": "0s"}}, "consumers.autoscale.target",
         "greater than 0"),
        ({"autoscale": {"max": 4, "metric": "queue"}}, "consumers.autoscale.metric", "backlog, utilization"),
        ({"autoscale": {"mx": 4}}, "consumers.autoscale.mx", "did you mean 'max'?"),
        ({"autoscale": {"min": 1}}, "consumers.autoscale.max", "missing"),
        ({"autoscale": {"max": 4}, "scaling": {"rate": "10/s"}}, "consumers.autoscale", "remove one of them"),
        ({"concurrency": 9, "autoscale": {"max": 4}}, "consumers.concurrency", "between autoscale.min (1) and"),
        ({"concurrency": 0}, "consumers.concurrency", "0 only for an autoscaled pool with autoscale.min: 0"),
        ({"autoscale": {"max": 4, "tolerance": -0.1}}, "consumers.autoscale.tolerance", "greater than or equal"),
        ({"autoscale": {"max": 4, "scale_up": {"policies": []}}}, "consumers.autoscale.scale_up.policies",
         "at least 1"),
        ({"autoscale": {"max": 4, "scale_up": {"policies": [{"pods": 4, "percent": 100}]}}},
         "consumers.autoscale.scale_up.policies.0.pods", "not both"),
        ({"autoscale": {"max": 4, "scale_down": {"stabilization": "2h"}}},
         "consumers.autoscale.scale_down.stabilization", "less than or equal to 3600"),
        ({"autoscale": {"max": 4, "provisioning": "-5s"}}, "consumers.autoscale.provisioning",
         "greater than or equal to 0"),
        ({"hourly_price": 1.0, "memory_mb": 512}, "consumers.hourly_price", "billed like Lambda"),
        ({"hourly_price": "a lot"}, "consumers.hourly_price", "must be a number"),
    ],
)
def test_bad_autoscaling_is_a_one_line_error_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], consumers: dict[str, Any], field: str, words: str
) -> None:
    data: dict[str, Any] = {"name": "bad", "producers": [{"arrivals": {"process": "burst", "count": 3}}],
                            "consumers": {"concurrency": 1, "service": {"dist": "constant", "value": "1s"},
                                          **consumers}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"qsim: error: {path}: {field}: "), err
    assert words in err, err


def test_pollers_do_not_apply_to_an_autoscaled_pool() -> None:
    with pytest.raises(sim.ScenarioError, match=r"queue\.pollers: got .*remove queue\.pollers"):
        make_scenario(queue={"delivery": {}, "pollers": {"initial": 2}}, consumers={"autoscale": {"max": 4}})


# --- conservation, for any autoscaled scenario ----------------------------------------------


@st.composite
def autoscaled(draw: st.DrawFn) -> dict[str, Any]:
    """A random autoscaled pool behind a plain queue or SQS-like delivery, with random load."""
    low = draw(st.integers(0, 2))
    high = draw(st.integers(max(low, 1), 6))
    autoscale: dict[str, Any] = {
        "metric": draw(st.sampled_from(["backlog", "utilization", "oldest_age"])), "min": low, "max": high,
        "sync_period": draw(st.floats(0.5, 5.0)), "polling_interval": draw(st.floats(0.5, 5.0)),
        "cooldown_period": draw(st.floats(0.0, 10.0)), "tolerance": draw(st.sampled_from([0.0, 0.1, 0.5, 1.5])),
        "provisioning": draw(st.one_of(st.floats(0.0, 3.0), st.just({"dist": "exponential", "mean": 1.0}))),
        "scale_up": {"stabilization": draw(st.floats(0.0, 5.0))},
        "scale_down": {"stabilization": draw(st.floats(0.0, 20.0)),
                       "select": draw(st.sampled_from(["max", "min", "disabled"]))},
    }
    autoscale["target"] = {"backlog": draw(st.floats(0.5, 5.0)), "utilization": draw(st.floats(0.1, 1.0)),
                           "oldest_age": draw(st.floats(0.1, 3.0))}[autoscale["metric"]]
    consumers: dict[str, Any] = {"concurrency": draw(st.integers(low, high)), "autoscale": autoscale,
                                 "service": {"dist": "exponential", "mean": draw(st.floats(0.05, 2.0))}}
    queue: dict[str, Any] = {"on_expired": draw(st.sampled_from(["serve", "skip"]))}
    if draw(st.booleans()):
        queue["delivery"] = {"visibility_timeout": draw(st.floats(0.5, 20.0))}
        consumers["batch"] = {"size": draw(st.integers(1, 3))}
    else:
        queue["capacity"] = draw(st.one_of(st.just("unbounded"), st.integers(0, 10)))
    producers = [{"name": f"p{index}", "arrivals": {"process": "poisson", "rate": draw(st.floats(0.5, 20.0)),
                                                     "count": draw(st.integers(1, 80)), "start": start}}
                 for index, start in enumerate(draw(st.lists(st.floats(0.0, 40.0), min_size=1, max_size=2)))]
    if draw(st.booleans()):
        producers[0]["timeout"] = draw(st.floats(0.1, 5.0))
    scenario: dict[str, Any] = {"name": "autoscaled", "seed": draw(st.integers(0, 2**16)), "producers": producers,
                                "queue": queue, "consumers": consumers}
    if draw(st.booleans()) or "delivery" in queue:
        scenario["until"] = draw(st.floats(5.0, 120.0))  # redelivery past the visibility timeout may loop
    return scenario


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(autoscaled())
def test_an_autoscaled_pool_conserves_requests_and_stays_within_its_bounds(data: dict[str, Any]) -> None:
    scenario = sim.scenario_from_dict(data)
    result = sim.run(scenario)
    records = result.runs[0].records
    row = result.summary.iloc[0]
    outcomes = ["completed", "late", "expired", "rejected", "dropped", "failed", "dead_lettered", "in_system"]
    assert sum(int(row[o]) for o in outcomes) == row["offered"] == len(records.columns)
    assert np.count_nonzero(records.jobs.outcome == IN_SYSTEM) == records.queued_at_end + records.busy_at_end
    if scenario.until is None:  # the autoscaler went dormant: the run drained and ended
        assert records.queued_at_end == records.busy_at_end == 0
    assert scenario.consumers is not None
    spec = scenario.consumers.autoscale
    assert spec is not None
    desired = records.scaling[0].desired
    assert desired[0].tolist() == [0.0, scenario.consumers.concurrency]
    assert np.all((desired[1:, 1] >= spec.min) & (desired[1:, 1] <= spec.max))
    spans = records.environments[0]
    alive = StepFunction(spans[:, 0].copy(), np.where(np.isnan(spans[:, 1]), np.inf, spans[:, 1]))
    assert alive.maximum(0, np.inf) <= spec.max  # consumers starting or up never exceed max
    assert np.count_nonzero(np.isnan(spans[:, 1])) >= desired[-1, 1]
    assert Intervals(records).service().maximum(0, records.end_time) <= spec.max
    ready = records.scaling[0].ready
    assert len(ready) <= len(spans)
    assert np.all(ready[:, 0] >= spans[:, 0].min(initial=np.inf))
    assert row["mean_consumers"] <= spec.max * (1 + 1e-12)
