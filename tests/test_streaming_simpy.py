"""Streaming statistics on the SimPy engine: final rows folded into a tally and freed as the run goes.

The same rule as tests/test_streaming.py: a streamed run (``report.requests: none``) must say what
the exact path says -- every count equal, sums and time averages within 1e-8 relative, every
percentile within the sketch's 0.5 % -- here for every bundled scenario and for random scenarios
with every feature of the SimPy engine (policies, topologies, serverless, broker delivery,
retries). Rows are made ready (and folded) in chunks of 65,536; most test runs are smaller, so the
chunk is made tiny here: every run then folds, replays and frees rows many times while it runs,
which is what a long run does. Streaming must not change the run itself: a sample as large as the
run keeps every row, and those rows must equal the exact run's, value for value.
"""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim
from sim.cli import main
from sim.engine import rows as row_store
from sim.engine.compiled import replay
from sim.engine.records import COMPLETED, DROPPED, EXPIRED, IN_SYSTEM, LATE, REJECTED
from sim.model import keeping
from sim.model.engines import compiled_unsupported
from tests.helpers import ROOT, make_scenario
from tests.test_compiled import DATA
from tests.test_compiled import scenarios as compiled_scenarios
from tests.test_properties import cloud_scenarios, scenarios, topologies
from tests.test_streaming import assert_same_series, assert_same_summary

SMALL_CHUNK = 1


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows made ready one at a time: every job created folds what is final (the most demanding case)."""
    monkeypatch.setattr(row_store, "CHUNK", SMALL_CHUNK)


def with_requests(scenario: sim.Scenario, requests: str, engine: str = "simpy") -> sim.Scenario:
    return scenario.model_copy(update={"engine": engine,
                                       "report": scenario.report.model_copy(update={"requests": requests})})


def exact_and_streamed(scenario: sim.Scenario, requests: str = "none") -> tuple[sim.Run, sim.Run]:
    exact = sim.run(with_requests(scenario, "all")).runs[0]
    streamed = sim.run(with_requests(scenario, requests)).runs[0]
    assert streamed.records.tally is not None
    assert exact.records.tally is None
    return exact, streamed


def assert_streams_exactly(data: dict[str, Any], base_dir: Path | None = None) -> None:
    exact, streamed = exact_and_streamed(sim.scenario_from_dict(data, base_dir=base_dir))
    assert_same_summary(exact.summary, streamed.summary)
    assert_same_series(exact.timeseries, streamed.timeseries)


def test_outcome_codes_match_the_records() -> None:
    assert (replay.IN_SYSTEM, replay.COMPLETED, replay.LATE, replay.EXPIRED, replay.REJECTED, replay.DROPPED) == (
        IN_SYSTEM, COMPLETED, LATE, EXPIRED, REJECTED, DROPPED)


BUNDLED = sorted((ROOT / "scenarios").glob("*.yaml"))
STREAMABLE = [path for path in BUNDLED if not sim.load_scenario(path).streaming_unsupported]
UNSTREAMABLE = [path for path in BUNDLED if path not in STREAMABLE]


def test_most_bundled_scenarios_stream() -> None:
    # Brokers, faults and keys are the exceptions (their order/lag/loss measures need every row).
    assert len(STREAMABLE) > 2 * len(UNSTREAMABLE)
    assert {path.stem for path in UNSTREAMABLE} >= {"kafka-hot-partition", "mq-scorecard"}


@pytest.mark.parametrize("path", UNSTREAMABLE, ids=lambda p: p.stem)
def test_broker_faults_and_keys_keep_every_row(path: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    scenario = sim.load_scenario(path)
    assert keeping.requests_kept(scenario).kept is None  # auto keeps all, with no note
    assert main(["run", str(path), "--set", "report.requests=none", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "report.requests: got 'none'" in err
    assert "use report.requests: all" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("path", STREAMABLE, ids=lambda p: p.stem)
def test_bundled_scenarios_stream_to_the_exact_summary(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(row_store, "CHUNK", 512)  # every bundled run folds and frees rows as it goes
    exact, streamed = exact_and_streamed(sim.load_scenario(path))
    assert len(streamed.records.columns) == 0
    assert_same_summary(exact.summary, streamed.summary)
    assert_same_series(exact.timeseries, streamed.timeseries)


HYPOTHESIS = settings(max_examples=120, deadline=None, derandomize=True,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@HYPOTHESIS
@given(scenarios())
def test_random_policies_stream_to_the_exact_summary(small_chunks: None, data: dict[str, Any]) -> None:
    data["report"] = {"bucket": "0.25s", "percentiles": [50, 75, 99.9]}
    assert_streams_exactly(data)


@HYPOTHESIS
@given(topologies())
def test_random_topologies_stream_to_the_exact_summary(small_chunks: None, data: dict[str, Any]) -> None:
    data["warmup"] = "0.3s"
    assert_streams_exactly(data)


@HYPOTHESIS
@given(cloud_scenarios())
def test_random_serverless_broker_and_retry_scenarios_stream_to_the_exact_summary(small_chunks: None,
                                                                                 data: dict[str, Any]) -> None:
    data["report"] = {"bucket": "0.5s"}
    assert_streams_exactly(data)


@st.composite
def brokered_topologies(draw: st.DrawFn) -> dict[str, Any]:
    """Random topologies whose stages may be SQS-like brokers: short visibility timeouts make duplicates,
    and a duplicate's batch finishing while the router publishes its mates' copies is what folding must
    not cut short."""
    data = draw(topologies())
    for stage in data["stages"]:
        if draw(st.booleans()):
            stage["queue"] = {"delivery": {"visibility_timeout": draw(st.floats(0.05, 1.0))},
                              "pollers": {"initial": draw(st.integers(1, 3)), "rate": 5.0, "max": 6}}
            stage["consumers"]["batch"] = {"size": draw(st.integers(1, 4))}
    data.setdefault("until", draw(st.floats(1.0, 20.0)))
    return data


@HYPOTHESIS
@given(brokered_topologies())
def test_random_brokered_topologies_stream_to_the_exact_summary(small_chunks: None, data: dict[str, Any]) -> None:
    assert_streams_exactly(data)


@st.composite
def autoscaled_topologies(draw: st.DrawFn) -> dict[str, Any]:
    """Random topologies with autoscaled, priced worker pools (desired and ready series, mean consumers, cost)."""
    data = draw(topologies())
    for stage in data["stages"]:
        if draw(st.booleans()):
            top = draw(st.integers(2, 5))
            stage["consumers"]["concurrency"] = draw(st.integers(1, top))
            stage["consumers"]["hourly_price"] = draw(st.sampled_from([0.1, 3.6]))
            stage["consumers"]["autoscale"] = {
                "metric": draw(st.sampled_from(["backlog", "utilization", "oldest_age"])), "target": 1,
                "min": 1, "max": top, "sync_period": draw(st.sampled_from(["0.5s", "2s"])),
                "provisioning": draw(st.sampled_from(["0s", "0.3s"])), "scale_down": {"stabilization": "1s"}}
    data.setdefault("until", draw(st.floats(1.0, 20.0)))
    return data


@HYPOTHESIS
@given(autoscaled_topologies())
def test_random_autoscaled_topologies_stream_to_the_exact_summary(small_chunks: None, data: dict[str, Any]) -> None:
    assert_streams_exactly(data)


def assert_same_rows(exact: pd.DataFrame, kept: pd.DataFrame) -> None:
    assert len(kept) == len(exact)
    pd.testing.assert_frame_equal(exact.reset_index(drop=True), kept.reset_index(drop=True), check_exact=True,
                                  check_dtype=False)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(cloud_scenarios(), brokered_topologies())
def test_streaming_leaves_every_row_as_the_exact_run_has_it(small_chunks: None, cloud: dict[str, Any],
                                                            topology: dict[str, Any]) -> None:
    # A sample of 100,000 keeps every row of these small runs: folding and freeing rows while the run goes
    # must not change a single value the engine writes (a row freed too early would read as 0).
    for data in (cloud, topology):
        scenario = sim.scenario_from_dict(data)
        exact = sim.run(with_requests(scenario, "all")).runs[0]
        kept = sim.run(with_requests(scenario, "sample 100000")).runs[0]
        assert_same_rows(exact.requests, kept.requests)
        if exact.jobs is not None:
            assert kept.jobs is not None
            assert_same_rows(exact.jobs, kept.jobs)
        assert kept.records.end_time == exact.records.end_time
        assert (kept.records.queued_at_end, kept.records.busy_at_end) == (exact.records.queued_at_end,
                                                                          exact.records.busy_at_end)


SUPPORTED = [path for path in sorted((ROOT / "scenarios").glob("*.yaml"))
             if compiled_unsupported(sim.load_scenario(path)) is None]


def assert_engines_agree(scenario: sim.Scenario) -> None:
    simpy_run = sim.run(with_requests(scenario, "none", "simpy")).runs[0]
    compiled_run = sim.run(with_requests(scenario, "none", "compiled")).runs[0]
    assert compiled_run.records.engine == "compiled"
    assert_same_summary(simpy_run.summary.drop(columns="engine"), compiled_run.summary.drop(columns="engine"))
    assert_same_series(simpy_run.timeseries, compiled_run.timeseries)


@pytest.mark.parametrize("path", SUPPORTED, ids=lambda p: p.stem)
def test_both_engines_stream_the_same_summary_of_bundled_scenarios(path: Path) -> None:
    assert_engines_agree(sim.load_scenario(path))


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(compiled_scenarios())
def test_both_engines_stream_the_same_summary_of_random_scenarios(data: dict[str, Any]) -> None:
    data["report"] = {"bucket": "0.25s"}
    assert_engines_agree(sim.scenario_from_dict(data, base_dir=DATA))


def test_a_sample_is_the_same_requests_on_both_engines() -> None:
    scenario = make_scenario(report={"requests": "sample 500"},
                             producers=[{"arrivals": {"process": "poisson", "rate": "50/s", "count": 20_000}}],
                             consumers={"concurrency": 2, "service": {"dist": "exponential", "mean": "30ms"}})
    simpy_rows = sim.run(scenario.model_copy(update={"engine": "simpy"})).runs[0].requests
    compiled_rows = sim.run(scenario.model_copy(update={"engine": "compiled"})).runs[0].requests
    assert len(simpy_rows) == 500
    pd.testing.assert_frame_equal(simpy_rows, compiled_rows, check_dtype=False)


def mm1(count: int) -> sim.Scenario:
    return make_scenario(engine="simpy", report={"requests": "none"},
                         producers=[{"arrivals": {"process": "poisson", "rate": "0.8/s", "count": count}}],
                         consumers={"concurrency": 1, "service": {"dist": "exponential", "mean": "1s"}})


def test_rows_are_freed_as_they_are_folded(monkeypatch: pytest.MonkeyPatch) -> None:
    # M/M/1 at rho 0.8 holds a handful of requests at a time (P(more than 60) = 0.8^61 < 1e-5), so
    # rows are freed a chunk or two behind the newest: never more than 3 chunks of 65,536 rows are
    # resident, whether the run has 200,000 or 2,000,000 requests. Keeping rows would hold them all.
    peaks: list[int] = []
    grow = row_store.Store.grow

    def counting(store: row_store.Store) -> None:
        grow(store)
        peaks.append(store.allocated - store.released)

    monkeypatch.setattr(row_store.Store, "grow", counting)
    for count in (200_000, 2_000_000):
        peaks.clear()
        summary = sim.run(mm1(count)).summary.iloc[0]
        assert summary["offered"] == count
        assert max(peaks) <= 3 * row_store.CHUNK, max(peaks)


def test_memory_does_not_grow_with_the_run() -> None:
    # The process's peak resident memory must barely move from a 200,000-request run to a
    # 2,000,000-request one when rows are freed. Kept rows cost 43 bytes per request here (five
    # float and three int8 columns), so 1.8 M more requests would add at least 77 MB; freeing
    # leaves the run a few resident chunks (~3 MB), and 40 MB leaves room for allocator noise.
    sim.run(mm1(200_000))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sim.run(mm1(2_000_000))
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 40_000, f"peak memory grew by {grown_kb / 1024:.0f} MB"


def test_auto_keeps_rows_of_a_small_run_and_streams_a_large_one(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = make_scenario(engine="simpy",
                             producers=[{"arrivals": {"process": "poisson", "rate": "100/s", "count": 3000}}])
    assert scenario.report.requests == "auto"
    assert keeping.expected_rows(scenario) == 3000
    kept = sim.run(scenario).runs[0]
    assert kept.records.tally is None
    assert len(kept.requests) == 3000
    monkeypatch.setattr(keeping, "ROWS_KEPT_UP_TO", 2999)
    decision = keeping.requests_kept(scenario)
    assert decision.kept == 0
    assert decision.label == "none"
    assert decision.note is not None
    assert "3,000 expected" in decision.note
    streamed = sim.run(scenario).runs[0]
    assert streamed.records.tally is not None
    assert len(streamed.requests) == 0
    assert_same_summary(kept.summary, streamed.summary)


def test_expected_rows_count_stage_visits_and_attempts() -> None:
    topology = sim.scenario_from_dict({
        "name": "fan", "until": "10s",
        "producers": [{"arrivals": {"process": "poisson", "rate": "20/s"}, "to": ["a", "b"]}],
        "stages": [{"name": "a", "consumers": {"concurrency": 1, "service": {"dist": "constant", "value": "1ms"}},
                    "then": ["b", "c"]},
                   {"name": "b", "consumers": {"concurrency": 1, "service": {"dist": "constant", "value": "1ms"}}},
                   {"name": "c", "consumers": {"concurrency": 1, "service": {"dist": "constant", "value": "1ms"}}}],
    })
    # 200 requests, each one job at a, b (directly), and b, c (from a): 4 jobs plus its own row.
    assert keeping.expected_rows(topology) == 200 * 5
    retries = make_scenario(producers=[{"arrivals": {"process": "burst", "count": 100}, "retry": {"attempts": 3}}])
    assert keeping.expected_rows(retries) == 100 * (3 + 1)
    endless = make_scenario(until="1h", producers=[{"arrivals": {"process": "piecewise",
                                                                 "rates": [[0, "10/s"], ["30min", "0/s"]]}}])
    assert keeping.expected_rows(endless) == 18_000


def test_a_streamed_run_writes_no_request_table_and_draws_latency_from_the_sketch(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    assert main(["run", str(path), "--out", str(tmp_path / "none"), "--set", "report.requests=none"]) == 0
    out = capsys.readouterr().out
    assert "requests kept: none" in out
    folder = tmp_path / "none"
    assert not (folder / "requests.parquet").exists()
    assert json.loads((folder / "manifest.json").read_text())["requests_kept"] == "none"
    assert (folder / "figures" / "latency.png").stat().st_size > 10_000  # drawn from the sketch, not empty
    assert main(["run", str(path), "--out", str(tmp_path / "sample"), "--set", "report.requests=sample 50"]) == 0
    assert "requests kept: sample of 50" in capsys.readouterr().out
    assert len(pd.read_parquet(tmp_path / "sample" / "requests.parquet")) == 50
    assert json.loads((tmp_path / "sample" / "manifest.json").read_text())["requests_kept"] == "sample of 50"


def test_auto_says_on_stderr_and_in_the_manifest_when_it_keeps_no_rows(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    monkeypatch.setattr(keeping, "ROWS_KEPT_UP_TO", 299)  # the scenario sends 300 requests
    assert main(["run", str(path), "--out", str(tmp_path / "auto")]) == 0
    captured = capsys.readouterr()
    notes = [line for line in captured.err.splitlines() if "report.requests: auto keeps no per-request rows" in line]
    assert len(notes) == 1
    assert "requests kept: none" in captured.out
    manifest = json.loads((tmp_path / "auto" / "manifest.json").read_text())
    assert manifest["requests_kept"] == "none"
    assert "300 expected" in manifest["requests_note"]


SCENARIO = """\
name: small
engine: simpy
producers:
  - arrivals: {process: poisson, rate: 60/s, count: 300}
    timeout: 100ms
consumers:
  concurrency: 2
  service: {dist: exponential, mean: 30ms}
"""
