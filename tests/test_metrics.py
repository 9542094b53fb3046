"""Summaries and time series: the vectorised bookkeeping against brute force and against the records."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.analysis.metrics import MAX_BUCKETS, StepFunction, bucket_edges
from tests.helpers import make_scenario

REQUIRED_COLUMNS = [
    "scenario", "replication", "offered", "completed", "late", "expired", "rejected", "dropped", "in_system",
    "timeout_rate", "throughput", "goodput", "latency_mean", "latency_p50", "latency_p90", "latency_p99",
    "latency_p999", "wait_mean", "wait_p50", "wait_p99", "wasted_work", "utilization", "mean_queue", "max_queue",
    "sim_time", "wall_time",
]  # fmt: skip


def brute_force(up: np.ndarray, down: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The count at each grid point, decrements first at equal times."""
    return np.array([np.sum(up <= t) - np.sum(down <= t) for t in grid], dtype=float)


intervals = st.lists(
    st.tuples(st.integers(0, 40), st.integers(0, 40)).map(lambda p: (min(p), max(p))).filter(lambda p: p[0] < p[1]),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(intervals)
def test_step_function_matches_brute_force(pairs: list[tuple[int, int]]) -> None:
    # Integer times on a fine grid make the brute-force integral exact (a Riemann sum of a
    # function constant between integers).
    up = np.array([a for a, _ in pairs], dtype=float)
    down = np.array([b for _, b in pairs], dtype=float)
    step = StepFunction(up, down)
    grid = np.arange(0, 41, dtype=float)
    counts = brute_force(up, down, grid)
    np.testing.assert_array_equal(step.level_at(grid), counts)
    np.testing.assert_allclose(step.integral(grid), np.concatenate([[0], np.cumsum(counts[:-1])]))
    edges = np.array([0.0, 5.0, 12.0, 13.0, 30.0, 41.0])
    expected_max = [counts[(grid >= a) & (grid < b)].max() for a, b in itertools.pairwise(edges)]
    np.testing.assert_array_equal(step.bucket_maxima(edges), expected_max)
    assert step.maximum(0, 40) == counts.max()
    assert step.average(0, 40) == pytest.approx(counts[:-1].mean())


def test_bucket_edges_widen_by_nested_factors_beyond_the_limit() -> None:
    # Widening factors 1, 2, 10, 20, 100, ... each divide the next, so a streamed run's tally can merge
    # buckets as it goes and end where the exact path does: 10^6 s at 1 s needs 100 s buckets (20 s
    # would make 50,000 > MAX_BUCKETS).
    edges, width = bucket_edges(10.0, 0.1)
    assert (len(edges) - 1, width) == (100, 0.1)
    edges, width = bucket_edges(1_000_000.0, 1.0)
    assert width == 100.0
    assert len(edges) - 1 == 10_000 <= MAX_BUCKETS
    edges, width = bucket_edges(30_000.0, 0.5)
    assert (len(edges) - 1, width) == (6_000, 5.0)


def test_summary_has_every_documented_column_and_one_row_per_producer_group() -> None:
    scenario = make_scenario(
        producers=[
            {"name": "web", "arrivals": {"process": "poisson", "rate": 5, "count": 200}, "timeout": "2s"},
            {"name": "batch", "arrivals": {"process": "poisson", "rate": 2, "count": 100}},
        ],
        consumers={"concurrency": 2, "service": {"dist": "exponential", "mean": "0.3s"}},
        report={"percentiles": [50, 95, 99.99]},
    )
    summary = sim.run(scenario).summary
    assert set(REQUIRED_COLUMNS) <= set(summary.columns)
    assert {"latency_p95", "latency_p9999"} <= set(summary.columns)
    assert summary["producer"].tolist() == ["all", "web", "batch"]
    by = summary.set_index("producer")
    for column in ("offered", "completed", "late", "expired", "rejected", "dropped", "in_system", "wasted_work"):
        assert by.loc["all", column] == pytest.approx(by.loc["web", column] + by.loc["batch", column])
    assert by.loc["web", "offered"] == 200
    assert by.loc["all", "utilization"] == pytest.approx(by.loc["web", "utilization"] + by.loc["batch", "utilization"])


def test_timeseries_counts_add_up_to_the_summary() -> None:
    scenario = make_scenario(
        producers=[{"arrivals": {"process": "burst", "count": 500, "over": "1s"}, "timeout": "1s"}],
        queue={"capacity": 200, "on_expired": "skip"},
        consumers={"concurrency": 20, "service": {"dist": "exponential", "mean": "50ms"}},
        report={"bucket": "100ms"},
    )
    result = sim.run(scenario)
    series, row = result.timeseries, result.summary.iloc[0]
    assert series["arrivals"].sum() == row["offered"]
    assert series["served"].sum() == row["completed"] + row["late"]
    assert series["timeouts"].sum() == row["late"] + row["expired"]
    assert series["rejected"].sum() == row["rejected"]
    assert series["dropped"].sum() == row["dropped"]
    assert series["busy"].max() <= 20 + 1e-9  # time averages carry float rounding
    assert series["queue_max"].max() == row["max_queue"] <= 200
    widths = np.minimum(np.diff(np.append(series["time"].to_numpy(), np.inf)), row["sim_time"] - series["time"])
    busy_seconds = float((series["busy"] * widths).sum())
    assert busy_seconds == pytest.approx(row["utilization"] * 20 * row["sim_time"])


def test_replications_give_integer_rows_and_separate_estimates() -> None:
    scenario = make_scenario(
        replications=5,
        producers=[{"arrivals": {"process": "poisson", "rate": 8, "count": 300}}],
        consumers={"concurrency": 1, "service": {"dist": "exponential", "mean": "0.1s"}},
    )
    result = sim.run(scenario)
    runs = result.summary
    assert runs["replication"].tolist() == [0, 1, 2, 3, 4]
    assert runs["replication"].dtype == np.int64
    assert runs["offered"].dtype == np.int64  # counts are integers
    estimates = result.estimates
    assert estimates["stat"].tolist() == ["mean", "ci_low", "ci_high"]
    mean, low, high = (estimates[estimates["stat"] == k].iloc[0] for k in ("mean", "ci_low", "ci_high"))
    assert mean["wait_mean"] == pytest.approx(runs["wait_mean"].mean())
    assert low["wait_mean"] < mean["wait_mean"] < high["wait_mean"]
    # Student t with 4 degrees of freedom: half-width = 2.776 * s / sqrt(5).
    half = 2.7764451 * runs["wait_mean"].std(ddof=1) / np.sqrt(5)
    assert high["wait_mean"] - mean["wait_mean"] == pytest.approx(half, rel=1e-6)
    # Replications are independent: not all the same.
    assert runs["wait_mean"].nunique() == 5


def test_replication_streams_do_not_depend_on_how_many_are_run() -> None:
    scenario = make_scenario(producers=[{"arrivals": {"process": "poisson", "rate": 8, "count": 100}}],
                             consumers={"concurrency": 1, "service": {"dist": "exponential", "mean": "0.1s"}})
    two = sim.run(scenario, replications=2).summary
    four = sim.run(scenario, replications=4).summary
    assert two.loc[1, "wait_mean"] == four.loc[1, "wait_mean"]
