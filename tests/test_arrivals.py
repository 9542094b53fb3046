"""Arrival processes: when requests arrive, block by block, and through a whole run.

Counts of a Poisson process over a span with expected count m are Poisson(m), so their
standard error is sqrt(m); counts of n uniform points in a bin of probability p are
binomial, standard error sqrt(n p (1 - p)). Tests allow 5 standard errors (a correct
process fails by chance with probability under 1e-6; the seed is fixed anyway), so a count
whose expectation m is off by a relative bias b fails with probability 99.9 % once
b >= (5 + 3.09) / sqrt(m): 2.6 % at m = 100,000, 1.8 % at 200,000. The counts below are
sized for 3 % or less. Exact properties (order, bounds, counts asked for) are checked exactly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter

import sim
from sim.model import arrivals as a
from sim.model.specs import ArrivalSpec
from tests.helpers import make_scenario

SEED = 99
STANDARD_ERRORS = 5.0
ADAPTER: TypeAdapter[Any] = TypeAdapter(ArrivalSpec)


def draw(process: Any, seed: int = SEED) -> tuple[list[np.ndarray], np.ndarray]:
    """The blocks a process yields, and all its times joined."""
    blocks = list(process.blocks(np.random.default_rng(seed)))
    times = np.concatenate(blocks) if blocks else np.empty(0)
    return blocks, times


def assert_blocks_well_formed(blocks: list[np.ndarray]) -> None:
    """No empty block, none larger than BLOCK, sorted within and across blocks."""
    assert all(0 < len(block) <= a.BLOCK for block in blocks)
    times = np.concatenate(blocks)
    assert (np.diff(times) >= 0).all()


def within_standard_errors(observed: float, expected: float, standard_error: float) -> bool:
    return abs(observed - expected) <= STANDARD_ERRORS * standard_error


# --- Poisson --------------------------------------------------------------------------------


def test_poisson_count_over_a_window_and_gaps_are_exponential() -> None:
    rate, stop = 200.0, 500.0  # expected 100,000 arrivals: many blocks
    blocks, times = draw(a.PoissonArrivals(rate, stop=stop))
    assert_blocks_well_formed(blocks)
    assert len(blocks) > 2
    assert times[0] > 0
    assert times[-1] < stop
    expected = rate * stop
    assert within_standard_errors(len(times), expected, math.sqrt(expected))
    gaps = np.diff(np.concatenate([[0.0], times]))
    # Exponential gaps: mean 1/rate (SE (1/rate)/sqrt(n)), and variance 1/rate^2.
    assert within_standard_errors(gaps.mean(), 1 / rate, (1 / rate) / math.sqrt(len(gaps)))
    assert within_standard_errors(gaps.var(), 1 / rate**2, math.sqrt(8 / len(gaps)) / rate**2)


def test_poisson_count_stops_after_exactly_count_arrivals_across_blocks() -> None:
    for count in (1, a.BLOCK - 1, a.BLOCK, a.BLOCK + 1, 3 * a.BLOCK + 17):
        blocks, times = draw(a.PoissonArrivals(100.0, count=count))
        assert len(times) == count
        assert_blocks_well_formed(blocks)


def test_poisson_starts_at_start_and_stops_at_whichever_limit_comes_first() -> None:
    _, times = draw(a.PoissonArrivals(10_000.0, start=30.0, stop=40.0))
    assert times[0] >= 30.0
    assert times[-1] < 40.0
    assert within_standard_errors(len(times), 100_000, math.sqrt(100_000))  # catches 2.6 %
    _, few = draw(a.PoissonArrivals(10_000.0, start=30.0, stop=40.0, count=10))
    assert len(few) == 10
    assert np.array_equal(few, times[:10])  # count cuts the same stream
    _, stopped = draw(a.PoissonArrivals(100.0, start=30.0, stop=31.0, count=10_000))
    assert len(stopped) < 10_000
    assert stopped[-1] < 31.0


def test_poisson_horizon() -> None:
    assert a.PoissonArrivals(10.0, stop=60.0).horizon == 60.0
    assert a.PoissonArrivals(10.0, start=5.0, count=100).horizon == pytest.approx(15.0)
    assert math.isinf(a.PoissonArrivals(10.0).horizon)


# --- constant -------------------------------------------------------------------------------


def test_constant_arrivals_are_evenly_spaced_from_start() -> None:
    blocks, times = draw(a.ConstantArrivals(4.0, start=2.0, count=3 * a.BLOCK + 5))
    assert_blocks_well_formed(blocks)
    assert len(times) == 3 * a.BLOCK + 5
    assert times[0] == 2.0
    np.testing.assert_allclose(np.diff(times), 0.25, rtol=0, atol=1e-9)
    np.testing.assert_allclose(times, 2.0 + np.arange(len(times)) / 4.0, rtol=0, atol=1e-9)


def test_constant_stop_is_exclusive() -> None:
    _, times = draw(a.ConstantArrivals(10.0, stop=1.0))
    assert len(times) == 10  # 0.0, 0.1, ..., 0.9; not 1.0
    _, times = draw(a.ConstantArrivals(1.0, stop=float(a.BLOCK)))  # stop exactly at a block boundary
    assert len(times) == a.BLOCK


def test_constant_arrivals_ignore_the_random_stream() -> None:
    _, first = draw(a.ConstantArrivals(3.0, count=50), seed=1)
    _, second = draw(a.ConstantArrivals(3.0, count=50), seed=2)
    assert np.array_equal(first, second)


# --- burst ----------------------------------------------------------------------------------


def test_burst_spreads_exactly_count_arrivals_uniformly_over_the_window() -> None:
    count, at, over = 2_000_000, 5.0, 2.0
    blocks, times = draw(a.BurstArrivals(count, over=over, at=at))
    assert_blocks_well_formed(blocks)
    assert len(times) == count
    assert times.min() >= at
    assert times.max() < at + over
    # Ten equal bins: each binomial(count, 1/10), 200,000 expected (catches a 1.7 % bias).
    per_bin, _ = np.histogram(times, bins=10, range=(at, at + over))
    assert all(within_standard_errors(c, count / 10, math.sqrt(count * 0.1 * 0.9)) for c in per_bin)


def test_a_burst_over_zero_seconds_arrives_all_at_once() -> None:
    blocks, times = draw(a.BurstArrivals(a.BLOCK + 3, over=0.0, at=1.5))
    assert [len(b) for b in blocks] == [a.BLOCK, 3]
    assert (times == 1.5).all()
    assert a.BurstArrivals(10, over=1.0, at=1.5).horizon == 2.5


# --- piecewise ------------------------------------------------------------------------------


def test_piecewise_rates_hold_per_segment() -> None:
    # 100,000, 1,000,000, 0 and 200,000 expected per segment (catches 2.6 %, 0.8 %, -, 1.8 %).
    segments = ((0.0, 10_000.0), (10.0, 100_000.0), (20.0, 0.0), (30.0, 20_000.0))
    blocks, times = draw(a.PiecewiseArrivals(segments, stop=40.0))
    assert_blocks_well_formed(blocks)
    assert times[0] >= 0
    assert times[-1] < 40.0
    ends = [10.0, 20.0, 30.0, 40.0]
    for (begin, rate), end in zip(segments, ends, strict=True):
        count = int(np.count_nonzero((times >= begin) & (times < end)))
        expected = rate * (end - begin)
        if rate == 0:
            assert count == 0
        else:
            assert within_standard_errors(count, expected, math.sqrt(expected)), (begin, count, expected)


def test_piecewise_count_is_exact_across_segments_and_blocks() -> None:
    blocks, times = draw(a.PiecewiseArrivals(((0.0, 1000.0), (5.0, 3000.0)), count=12_000))
    assert len(times) == 12_000
    assert_blocks_well_formed(blocks)
    assert (times < 5.0).sum() > 4000  # the first segment is used before the second


def test_piecewise_ending_with_a_zero_rate_ends_by_itself() -> None:
    process = a.PiecewiseArrivals(((0.0, 100.0), (2.0, 0.0)))
    _, times = draw(process)
    assert times[-1] < 2.0
    assert process.horizon == 2.0
    assert math.isinf(a.PiecewiseArrivals(((0.0, 100.0),)).horizon)


def test_piecewise_spec_reads_times_and_rates_with_units() -> None:
    rates = [["0s", "60/min"], ["1min", "2/s"]]
    spec = ADAPTER.validate_python({"process": "piecewise", "rates": rates, "stop": "2min"})
    assert spec.build() == a.PiecewiseArrivals(((0.0, 1.0), (60.0, 2.0)), stop=120.0)


# --- trace ----------------------------------------------------------------------------------


def test_trace_replays_the_file_sorted(tmp_path: Path) -> None:
    (tmp_path / "arrivals.csv").write_text("timestamp,client\n0.5,a\n0.25,b\n\n2,c\n0.25,d\n")
    spec = ADAPTER.validate_python({"process": "trace", "file": "arrivals.csv"}, context={"base_dir": str(tmp_path)})
    process = spec.build()
    _, times = draw(process)
    assert times.tolist() == [0.25, 0.25, 0.5, 2.0]
    assert process.horizon == 2.0


def test_a_long_trace_is_replayed_exactly_across_blocks(tmp_path: Path) -> None:
    stamps = np.round(np.sort(np.random.default_rng(3).uniform(0, 100, 2 * a.BLOCK + 100)), 6)
    (tmp_path / "long.csv").write_text("\n".join(str(t) for t in stamps[::-1]))  # written in reverse order
    spec = ADAPTER.validate_python({"process": "trace", "file": "long.csv"}, context={"base_dir": str(tmp_path)})
    blocks, times = draw(spec.build())
    assert [len(b) for b in blocks] == [a.BLOCK, a.BLOCK, 100]
    assert np.array_equal(times, stamps)


# --- through a whole run --------------------------------------------------------------------


def _run_arrivals(arrivals: dict[str, Any], **changes: Any) -> Any:
    scenario = make_scenario(
        producers=[{"arrivals": arrivals}],
        consumers={"concurrency": 4, "service": {"dist": "constant", "value": "1us"}},
        **changes,
    )
    return sim.run(scenario).requests


def test_a_run_serves_every_arrival_at_its_time_across_blocks() -> None:
    count = 2 * a.BLOCK + 10
    requests = _run_arrivals({"process": "constant", "rate": "1000/s", "count": count})
    assert len(requests) == count
    np.testing.assert_allclose(requests["arrival"], np.arange(count) / 1000.0, rtol=0, atol=1e-9)
    assert (requests["outcome"] == "completed").all()


def test_a_run_of_a_long_burst_keeps_arrivals_sorted_and_counted() -> None:
    count = 2 * a.BLOCK + 1
    requests = _run_arrivals({"process": "burst", "count": count, "over": "1s", "at": "2s"})
    assert len(requests) == count
    arrival = requests["arrival"].to_numpy()
    assert (np.diff(arrival) >= 0).all()
    assert arrival.min() >= 2.0
    assert arrival.max() < 3.0


def test_two_producers_are_interleaved_in_time_with_exact_counts() -> None:
    scenario = make_scenario(
        producers=[
            {"name": "steady", "arrivals": {"process": "constant", "rate": "1000/s", "count": a.BLOCK + 5}},
            {"name": "burst", "arrivals": {"process": "burst", "count": a.BLOCK + 7, "over": "2s", "at": "1s"}},
        ],
        consumers={"concurrency": 8, "service": {"dist": "constant", "value": "1us"}},
    )
    requests = sim.run(scenario).requests
    assert requests["producer"].value_counts().to_dict() == {"steady": a.BLOCK + 5, "burst": a.BLOCK + 7}
    assert (np.diff(requests["arrival"].to_numpy()) >= 0).all()


def test_poisson_arrivals_in_a_run_have_the_requested_rate() -> None:
    requests = _run_arrivals({"process": "poisson", "rate": "20000/s", "stop": "10s"})
    expected = 20_000 * 10  # catches a 1.8 % bias
    assert within_standard_errors(len(requests), expected, math.sqrt(expected))
    assert requests["arrival"].max() < 10.0
