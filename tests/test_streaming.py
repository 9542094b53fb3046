"""Streaming statistics (``report.requests: none | sample N``) against the exact summary.

A streamed run folds each request into a tally as it finishes and keeps no row per request;
its summary and time series must say what the exact path (every record kept) says: every
count equal, every mean and time average equal up to the rounding of sums (1e-8 relative: a
million-request run integrates levels over ~10^6 s in a different order than the exact path),
and every percentile within the sketch's stated relative error (0.5 %) of the exact one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

import sim
from sim.engine.sample import Reservoir
from sim.engine.tally import ACCURACY, MAX_BUCKETS, factor, widening
from sim.model.engines import compiled_unsupported
from tests.helpers import ROOT, make_scenario
from tests.test_compiled import DATA, scenarios

PERCENTILE = ("latency_p", "wait_p")
SKIPPED = ("wall_time",)


def assert_same_summary(exact: pd.DataFrame, streamed: pd.DataFrame) -> None:
    assert list(exact.columns) == list(streamed.columns)
    assert len(exact) == len(streamed)
    for column in exact.columns:
        if column in SKIPPED:
            continue
        expected, got = exact[column], streamed[column]
        if not pd.api.types.is_numeric_dtype(expected):
            assert expected.astype(str).tolist() == got.astype(str).tolist(), column
            continue
        x, y = expected.to_numpy(dtype=float), got.to_numpy(dtype=float)
        assert (np.isnan(x) == np.isnan(y)).all(), f"{column}: {x} vs {y}"
        x, y = x[~np.isnan(x)], y[~np.isnan(y)]
        if column.startswith(PERCENTILE):
            # The sketch's promise: within ACCURACY of the exact value (values under 1 ns are clamped).
            assert (np.abs(x - y) <= ACCURACY * np.abs(x) + 1e-9).all(), f"{column}: {x} vs {y}"
        else:
            np.testing.assert_allclose(y, x, rtol=1e-8, atol=1e-12, err_msg=column)


def assert_same_series(exact: pd.DataFrame, streamed: pd.DataFrame) -> None:
    assert list(exact.columns) == list(streamed.columns)
    assert exact.shape == streamed.shape
    assert exact.attrs["bucket"] == streamed.attrs["bucket"]
    for column in exact.columns:
        if pd.api.types.is_integer_dtype(exact[column]):
            assert exact[column].tolist() == streamed[column].tolist(), column
        else:  # averages of a few seconds' integrals: a bucket cut short by the end magnifies rounding
            np.testing.assert_allclose(streamed[column], exact[column], rtol=1e-9, atol=1e-6, err_msg=column)


def exact_and_streamed(scenario: sim.Scenario, replication: int = 0) -> tuple[sim.Run, sim.Run]:
    exact = sim.run(scenario.model_copy(update={"report": scenario.report.model_copy(update={"requests": "all"})}),
                    seed=replication).runs[0]
    streamed = sim.run(scenario.model_copy(update={"report": scenario.report.model_copy(update={"requests": "none"})}),
                       seed=replication).runs[0]
    return exact, streamed


SUPPORTED = [path for path in sorted((ROOT / "scenarios").glob("*.yaml"))
             if compiled_unsupported(sim.load_scenario(path)) is None]


@pytest.mark.parametrize("path", SUPPORTED, ids=lambda p: p.stem)
def test_bundled_scenarios_stream_to_the_exact_summary(path: Path) -> None:
    exact, streamed = exact_and_streamed(sim.load_scenario(path))
    assert streamed.records.tally is not None
    assert len(streamed.records.columns) == 0
    assert_same_summary(exact.summary, streamed.summary)
    assert_same_series(exact.timeseries, streamed.timeseries)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_random_scenarios_stream_to_the_exact_summary(data: dict[str, Any]) -> None:
    data["warmup"] = "0.5s" if "until" not in data or data["until"] != "1s" else "0s"
    data["report"] = {"bucket": "0.25s", "percentiles": [50, 75, 99.9]}
    exact, streamed = exact_and_streamed(sim.scenario_from_dict(data, base_dir=DATA))
    assert_same_summary(exact.summary, streamed.summary)
    assert_same_series(exact.timeseries, streamed.timeseries)


def test_automatic_warmup_is_the_same_when_streaming() -> None:
    scenario = make_scenario(warmup="auto", report={"bucket": "1s"},
                             producers=[{"arrivals": {"process": "poisson", "rate": "9/s", "count": 20_000}}],
                             consumers={"concurrency": 10, "service": {"dist": "exponential", "mean": "1s"}})
    exact, streamed = exact_and_streamed(scenario)
    assert exact.warmup == streamed.warmup > 0
    assert_same_summary(exact.summary, streamed.summary)


def test_a_long_run_widens_the_buckets_like_the_exact_path() -> None:
    # 100,000 s at a 1 s bucket is more than MAX_BUCKETS: both paths widen to 10 s (factors 1, 2, 10).
    scenario = make_scenario(report={"bucket": "1s"},
                             producers=[{"arrivals": {"process": "poisson", "rate": "0.5/s", "stop": "100000s"}}],
                             consumers={"concurrency": 1, "service": {"dist": "exponential", "mean": "1s"}})
    assert factor(widening(100_000.0, 1.0)) == 10
    exact, streamed = exact_and_streamed(scenario)
    assert exact.timeseries.attrs["bucket"] == 10.0
    assert len(exact.timeseries) <= MAX_BUCKETS
    assert_same_series(exact.timeseries, streamed.timeseries)
    assert_same_summary(exact.summary, streamed.summary)


def test_the_sketch_stays_within_its_relative_error_on_a_million_latencies() -> None:
    # M/M/1 at rho 0.9: latencies spread over four decades; every reported percentile must be within
    # 0.5 % of the exact one (this is the README's promise, checked on 1,000,000 requests).
    scenario = make_scenario(report={"percentiles": [1, 10, 25, 50, 75, 90, 99, 99.9, 99.99]},
                             producers=[{"arrivals": {"process": "poisson", "rate": "0.9/s", "count": 1_000_000}}],
                             consumers={"concurrency": 1, "service": {"dist": "exponential", "mean": "1s"}})
    exact, streamed = exact_and_streamed(scenario)
    assert_same_summary(exact.summary, streamed.summary)


def test_a_sample_keeps_n_requests_uniformly_and_reproducibly() -> None:
    scenario = make_scenario(report={"requests": "sample 2000"},
                             producers=[{"arrivals": {"process": "poisson", "rate": "50/s", "count": 100_000}}],
                             consumers={"concurrency": 2, "service": {"dist": "exponential", "mean": "30ms"}})
    first, again = (sim.run(scenario).runs[0].requests for _ in range(2))
    assert len(first) == 2000
    pd.testing.assert_frame_equal(first, again)
    assert first["request"].is_monotonic_increasing
    assert first["request"].is_unique
    # Uniform over 0..99,999: the mean id of 2,000 draws has standard error 100,000 / sqrt(12 * 2000) = 645;
    # five standard errors (3,227) bound a correct sampler; one biased towards either end by 5 % fails.
    assert abs(first["request"].mean() - 49_999.5) < 3_300
    full = sim.run(scenario.model_copy(update={"report": scenario.report.model_copy(update={"requests": "all"})}))
    kept = full.requests.set_index("request").loc[first["request"]]
    np.testing.assert_array_equal(kept["finish"].to_numpy(), first["finish"].to_numpy())


def test_the_reservoir_gives_every_request_the_same_chance() -> None:
    # 4,000 runs of a reservoir of 10 over 100 requests: each request is kept 400 times on average
    # (binomial, sd 19); a chi-square over the 100 counts with 99 degrees of freedom stays under 150
    # with probability > 99.9 %, and a reservoir that favours early or late requests by 10 % exceeds it.
    counts = np.zeros(100)
    for run in range(4000):
        reservoir = Reservoir(10, np.random.default_rng(run))
        for first in range(0, 100, 7):
            ids = reservoir.offer(first, min(100, first + 7))
            reservoir.store(ids, {"arrival": ids.astype(float), "deadline": ids, "service": ids, "start": ids,
                                  "finish": ids, "outcome": ids, "reason": ids, "producer": ids, "id": ids})
        counts[reservoir.rows()["id"].astype(int)] += 1
    assert counts.sum() == 40_000
    chi_square = float(((counts - 400) ** 2 / 400).sum())
    assert chi_square < 150, chi_square


def test_streaming_memory_does_not_grow_with_the_run() -> None:
    # A stable queue holds a few dozen requests: the ring of job rows never needs to grow past its start.
    from sim.engine.compiled.driver import RING, run_kernel
    from sim.engine.simulation import replication_seeds

    scenario = make_scenario(report={"requests": "none"},
                             producers=[{"arrivals": {"process": "poisson", "rate": "0.8/s", "count": 500_000}}],
                             consumers={"concurrency": 1, "service": {"dist": "exponential", "mean": "1s"}})
    arrays, columns = run_kernel(scenario, replication_seeds(0, 0))
    assert arrays.jf.shape[1] == RING
    assert len(columns) == 0
    assert int(arrays.tally.counts[0, 0]) == 500_000
