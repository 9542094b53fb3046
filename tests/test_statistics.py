"""Statistics over replications: intervals, generic aggregation, MSER-5, the stopping rule, paired tests."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import sim
from sim.analysis import theory
from sim.analysis.estimates import (
    clip_to_range,
    estimates_table,
    key_columns,
    metric_range,
    mser_truncation,
    one_sided_bounds,
    paired_p_value,
    precise_enough,
    replications_needed,
    significance,
    t_interval,
)
from tests.agreement import REPLICATIONS, assert_agrees

# --- intervals ---------------------------------------------------------------------------------


def test_t_interval_by_hand() -> None:
    # mean 2, sample sd 1, n = 3: half-width t(0.975, 2) * 1 / sqrt(3) = 4.3027 / 1.7321 = 2.4841
    mean, low, high = t_interval(np.array([1.0, 2.0, 3.0]))
    assert mean == 2.0
    assert high - mean == pytest.approx(2.4841, abs=1e-4)
    assert mean - low == pytest.approx(2.4841, abs=1e-4)


def test_t_interval_ignores_nan_and_needs_two_values() -> None:
    assert t_interval(np.array([1.0, math.nan, 3.0]))[0] == 2.0
    mean, low, high = t_interval(np.array([5.0]))
    assert mean == 5.0
    assert math.isnan(low)
    assert math.isnan(high)
    assert all(math.isnan(v) for v in t_interval(np.array([math.nan])))


def test_one_sided_bound_is_tighter_than_the_two_sided_end() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0])
    mean, lower, upper = one_sided_bounds(values, 0.95)
    # t(0.95, 3) = 2.3534 against t(0.975, 3) = 3.1824 for the two-sided interval
    assert upper - mean == pytest.approx(2.3534 * values.std(ddof=1) / 2, abs=1e-4)
    assert upper < t_interval(values)[2]
    assert mean - lower == pytest.approx(upper - mean)
    assert one_sided_bounds(np.array([1.0]))[2] == math.inf  # one value: nothing is known


def test_one_sided_upper_bound_covers_the_mean_95_percent_of_the_time() -> None:
    # 4,000 experiments of 5 normal draws: the coverage count is Binomial(4000, 0.95), sd 13.8,
    # so it lies in 3800 +- 4.5 sd = [3738, 3862] except with probability ~1e-5; a coverage off
    # by 2.6 points or more ((62 + 3.09 x 13.8) / 4000) fails with probability 99.9 %.
    rng = np.random.default_rng(7)
    samples = rng.normal(10.0, 3.0, size=(4000, 5))
    covered = sum(one_sided_bounds(row, 0.95)[2] >= 10.0 for row in samples)
    assert 3738 <= covered <= 3862


# --- generic aggregation -------------------------------------------------------------------------


def _per_run() -> pd.DataFrame:
    """Two replications of two key combinations, with a key (stage) and a number (cost_usd) nobody listed."""
    return pd.DataFrame(
        {
            "scenario": ["s"] * 4,
            "replication": [0, 0, 1, 1],
            "producer": ["all"] * 4,
            "stage": ["front", "back", "front", "back"],
            "offered": [10, 20, 30, 40],
            "cost_usd": [1.0, 2.0, 3.0, 6.0],
        }
    )


def test_key_columns_are_the_non_numeric_ones_plus_requested() -> None:
    frame = _per_run()
    assert key_columns(frame) == ["scenario", "producer", "stage"]
    assert key_columns(frame, ["offered"]) == ["scenario", "producer", "stage", "offered"]


def test_estimates_group_by_every_key_column_and_average_every_number() -> None:
    estimates = estimates_table(_per_run())
    assert list(estimates.columns) == ["scenario", "producer", "stage", "stat", "runs", "offered", "cost_usd"]
    assert estimates["stat"].tolist() == ["mean", "ci_low", "ci_high"] * 2
    assert estimates["runs"].dtype == np.int64
    assert (estimates["runs"] == 2).all()
    assert estimates["offered"].dtype == np.float64
    means = estimates[estimates["stat"] == "mean"].set_index("stage")
    assert means.loc["front", "offered"] == 20
    assert means.loc["back", "offered"] == 30
    assert means.loc["back", "cost_usd"] == 4.0
    # two values 2 and 6: sd 2.828, half-width t(0.975, 1) * 2.828 / sqrt(2) = 12.706 * 2 = 25.41
    high = estimates[(estimates["stat"] == "ci_high") & (estimates["stage"] == "back")]["cost_usd"].iloc[0]
    assert high == pytest.approx(4.0 + 25.412, abs=1e-3)
    # ... and the lower end, 4 - 25.4, is cut at 0: a cost is never negative
    low = estimates[(estimates["stat"] == "ci_low") & (estimates["stage"] == "back")]["cost_usd"].iloc[0]
    assert low == 0.0


def test_estimates_keep_numeric_keys_such_as_a_sweep_axis() -> None:
    frame = _per_run().assign(point=[0, 1, 0, 1]).drop(columns="stage")
    estimates = estimates_table(frame, keys=["point"])
    means = estimates[estimates["stat"] == "mean"]
    assert sorted(means["point"]) == [0, 1]  # grouped by point, not averaged
    assert means["point"].dtype == np.int64
    assert sorted(means["offered"]) == [20, 30]


def test_one_replication_has_its_value_as_mean_and_no_interval() -> None:
    frame = _per_run()
    single = estimates_table(frame[frame["replication"] == 0])
    means = single[single["stat"] == "mean"]
    assert means["offered"].tolist() == [10, 20]
    assert single[single["stat"] != "mean"][["offered", "cost_usd"]].isna().all().all()
    assert (single["runs"] == 1).all()


def test_intervals_never_leave_the_metrics_range() -> None:
    """A share near 0 with a wide interval: ``3.96 % [-6.58 %, 14.50 %]`` before clipping."""
    per_run = pd.DataFrame({"replication": [0, 1, 2], "timeout_rate": [0.0, 0.0, 0.1188],
                            "utilization": [0.99, 1.0, 0.90], "goodput": [0.0, 0.2, 4.6]})
    _, low, high = t_interval(per_run["timeout_rate"])
    assert low < 0  # what the Student t interval says on its own
    estimates = estimates_table(per_run).set_index("stat")
    assert estimates.loc["ci_low", "timeout_rate"] == 0.0
    assert estimates.loc["ci_high", "timeout_rate"] == pytest.approx(high)  # the possible part is untouched
    assert estimates.loc["ci_high", "utilization"] == 1.0  # a share is at most 1
    assert estimates.loc["ci_low", "goodput"] == 0.0  # a rate is never negative
    assert metric_range("timeout_rate") == (0.0, 1.0)
    assert metric_range("latency_p99") == (0.0, math.inf)
    assert all(math.isnan(v) for v in clip_to_range("offered", math.nan, math.nan))


# --- MSER-5 --------------------------------------------------------------------------------------


def test_mser_deletes_an_initial_transient() -> None:
    # 1,000 observations: level 10 plus a transient 30 e^{-t/25} plus noise of sd 1. The
    # transient is below the noise's sd after 25 ln 30 = 85 observations and below a tenth of
    # the batch means' sd (0.45) after ~105, so the truncation must land between those scales.
    rng = np.random.default_rng(3)
    t = np.arange(1000)
    series = 10 + 30 * np.exp(-t / 25) + rng.normal(0, 1, len(t))
    deleted = mser_truncation(series)
    assert deleted % 5 == 0
    assert 60 <= deleted <= 200


def test_mser_deletes_little_from_a_stationary_series() -> None:
    # No transient: deleting only loses data, MSER(d) ~ sigma^2 / (k - d) grows with d.
    rng = np.random.default_rng(4)
    assert mser_truncation(rng.normal(0, 1, 1000)) <= 100
    assert mser_truncation(np.ones(7)) == 0  # fewer than two batches: nothing to judge


@pytest.mark.slow
def test_warmup_auto_removes_a_backlog_and_agrees_with_erlang_c() -> None:
    """An M/M/10 at rho = 0.8 that starts with a backlog of 1,000 requests.

    The backlog drains at c mu - lambda = 2 per second, so the first ~500 s are far from
    steady state; with warmup 0 their waits of up to minutes pull the mean wait far above
    Erlang C's 0.205 s. MSER-5 on the in-system series must cut about the drain (or more) and the
    mean wait after it must agree with theory (the rule of tests/agreement.py, 20 replications).

    What it catches: a 15 % bias of the mean wait (standard error bound 2.2 % of Wq; measured
    ~1.4 %; Wq of M/M/10 is too slow to average for 3 % here, see tests/test_theory.py). A
    truncation d seconds short of the drain's end leaves ~0.8 d^2 seconds of extra waiting
    among ~44,000 measured requests, a bias of ~d^2 / 11,000 of Wq: 15 % is a cut ~41 s
    (8 %) short of the ~500 s drain.
    """
    data = {
        "name": "backlog", "seed": 12, "replications": REPLICATIONS, "warmup": "auto",
        "producers": [
            {"name": "backlog", "arrivals": {"process": "burst", "count": 1000}},
            {"name": "steady", "arrivals": {"process": "poisson", "rate": 8, "stop": 6000}},
        ],
        "consumers": {"concurrency": 10, "service": {"dist": "exponential", "mean": 1}},
        "report": {"bucket": "10s"},
    }  # fmt: skip
    result = sim.run(sim.scenario_from_dict(data))
    runs = result.summary
    runs = runs[runs["producer"] == "all"]
    assert runs["warmup"].between(400, 3000).all(), runs["warmup"].tolist()
    assert result.warmups == runs["warmup"].tolist()
    expected = theory.mmc(8.0, 1.0, 10).wait
    assert_agrees(runs["wait_mean"].to_numpy(dtype=float), expected, catches=0.15)
    fixed = sim.run(sim.scenario_from_dict({**data, "warmup": 0, "replications": 2}))
    assert fixed.summary["wait_mean"].iloc[0] > 5 * expected  # without deletion the backlog dominates


# --- stopping rule and paired tests -----------------------------------------------------------------


def test_replications_needed_follows_the_square_law() -> None:
    values = np.array([9.0, 10.0, 11.0, 10.0])  # mean 10, sd 0.8165
    needed = replications_needed(values, relative=0.01)
    # (t(0.975, 3) * 0.8165 / (0.01 * 10))^2 = (3.1824 * 8.165)^2 = 675.2
    assert needed == 676
    assert not precise_enough(values, 0.01)
    assert precise_enough(values, 0.2)  # half-width 1.30 <= 2.0
    assert replications_needed(np.array([3.0, 3.0]), 0.01) == 2  # no spread: done


def test_paired_p_value_is_scipys_and_handles_degenerate_cases() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([1.5, 2.4, 3.7, 4.3])
    assert paired_p_value(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert paired_p_value(a, a) == 1.0
    assert paired_p_value(a, a + 1) == 0.0
    assert math.isnan(paired_p_value(a[:1], b[:1]))
    assert [significance(p) for p in (0.0001, 0.005, 0.03, 0.2, math.nan)] == ["***", "**", "*", "", ""]
