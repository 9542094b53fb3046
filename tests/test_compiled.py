"""The compiled engine against the SimPy engine: the same records, request for request.

Both engines run the same scenario with the same seed; every request's arrival, deadline,
service demand, start, finish, outcome and reason must be *equal* (floats compared exactly,
NaN with NaN), and so must the state at the end. Hypothesis draws several hundred random
single-stage scenarios (every discipline, bounded and unbounded queues, both overflow rules,
fixed and drawn deadlines with serve and skip, every arrival process and service
distribution, the four AQM policies, priorities, until) small enough to run in milliseconds;
constant arrivals and services make many events fall at the same instant, which exercises the
equal-time ordering rules.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim
from sim.engine import records
from sim.engine.choice import engine_for, simulate_with
from sim.engine.compiled import kernel
from sim.engine.compiled.driver import simulate_compiled
from sim.engine.simulation import RunRecords, replication_seeds, simulate
from sim.model.engines import compiled_unsupported
from sim.model.scenario import ScenarioError
from tests.helpers import ROOT, make_scenario

DATA = Path(__file__).parent / "data"
COLUMNS = ("producer", "arrival", "deadline", "service", "start", "finish", "outcome", "reason")


def assert_same_records(reference: RunRecords, compiled: RunRecords) -> None:
    for name in COLUMNS:
        expected, got = getattr(reference.columns, name), getattr(compiled.columns, name)
        assert expected.shape == got.shape, f"{name}: {expected.shape} requests vs {got.shape}"
        differ = np.flatnonzero(~((expected == got) | (np.isnan(expected) & np.isnan(got)))
                                if expected.dtype.kind == "f" else expected != got)
        assert not len(differ), f"{name} differs first at request {differ[0]}: {expected[differ[0]]!r} vs " \
                                f"{got[differ[0]]!r}"
    ends = (reference.end_time, reference.queued_at_end, reference.busy_at_end)
    assert ends == (compiled.end_time, compiled.queued_at_end, compiled.busy_at_end)


def both(scenario: sim.Scenario, replication: int = 0) -> None:
    seeds = replication_seeds(scenario.seed, replication)
    assert_same_records(simulate(scenario, seeds), simulate_compiled(scenario, replication_seeds(scenario.seed,
                                                                                                  replication)))


durations = st.sampled_from(["0s", "1ms", "50ms", "0.1s", "0.5s", "1s", "2s"])
positive = st.sampled_from(["1ms", "50ms", "0.1s", "0.5s", "1s", "2s"])


@st.composite
def distributions(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["exponential", "constant", "uniform", "lognormal", "gamma", "empirical"]))
    if kind == "exponential":
        return {"dist": kind, "mean": draw(positive)}
    if kind == "constant":
        return {"dist": kind, "value": draw(durations)}
    if kind == "uniform":
        return {"dist": kind, "low": "0.1s", "high": draw(st.sampled_from(["0.1s", "0.5s", "2s"]))}
    if kind == "empirical":
        return {"dist": kind, "file": "durations.csv"}
    spread = draw(st.sampled_from([0.3, 1.0, 2.0]))
    return {"dist": kind, "mean": draw(positive), "cv": spread}


@st.composite
def arrivals(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["poisson", "constant", "burst", "piecewise", "trace"]))
    count = draw(st.integers(1, 60))
    if kind in ("poisson", "constant"):
        return {"process": kind, "rate": draw(st.sampled_from(["2/s", "10/s", "50/s"])), "count": count,
                "start": draw(st.sampled_from(["0s", "0.5s"]))}
    if kind == "burst":
        return {"process": kind, "count": count, "over": draw(st.sampled_from(["0s", "1s", "3s"]))}
    if kind == "piecewise":
        return {"process": kind, "rates": [["0s", "5/s"], ["1s", draw(st.sampled_from(["0/s", "40/s"]))],
                                           ["2s", "10/s"]], "count": count}
    return {"process": kind, "file": "arrivals.csv"}


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    discipline = draw(st.sampled_from(["fifo", "lifo", "priority", "adaptive-lifo"]))
    capacity = draw(st.sampled_from([None, 0, 1, 3, 8]))
    queue: dict[str, Any] = {"discipline": discipline, "capacity": "unbounded" if capacity is None else capacity,
                             "overflow": draw(st.sampled_from(["reject", "drop-oldest"])),
                             "on_expired": draw(st.sampled_from(["serve", "skip"]))}
    if discipline == "adaptive-lifo":
        queue["lifo_when"] = draw(st.sampled_from([{"length": 2}, {"wait": "0.2s"}, {"wait": "0s"}]))
    names = ["a", "b", "c"][: draw(st.integers(1, 3))]
    aqm = draw(st.sampled_from([None, "red", "proportional", "codel", "fail-at-scale"]))
    if aqm == "red":
        queue["aqm"] = {"policy": "red", "min": 1, "max": 4, "max_p": 0.5, "weight": 0.3,
                        "classes": draw(st.sampled_from([None, names[:1]]))}
    elif aqm == "proportional" and capacity:
        queue["aqm"] = {"policy": "proportional", "classes": draw(st.sampled_from([None, names[-1:]]))}
    elif aqm in ("codel", "fail-at-scale"):
        queue["aqm"] = {"policy": aqm, "target": draw(st.sampled_from(["10ms", "0.2s"])), "interval": "0.5s"}
    producers = []
    for name in names:
        producer: dict[str, Any] = {"name": name, "arrivals": draw(arrivals())}
        timeout = draw(st.sampled_from([None, "fixed", "drawn"]))
        if timeout == "fixed":
            producer["timeout"] = draw(positive)
        elif timeout == "drawn":
            producer["timeout"] = {"dist": "exponential", "mean": "1s"}
        if discipline == "priority":
            producer["priority"] = draw(st.integers(0, 2))
        if draw(st.booleans()):
            producer["service"] = draw(distributions())
        producers.append(producer)
    data: dict[str, Any] = {
        "name": "differential", "seed": draw(st.integers(0, 2**16)), "producers": producers, "queue": queue,
        "consumers": {"concurrency": draw(st.integers(1, 4)), "service": draw(distributions())},
    }
    if draw(st.booleans()):
        data["until"] = draw(st.sampled_from(["1s", "2.5s", "6s"]))
    return data


@settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_random_scenarios_give_identical_records(data: dict[str, Any]) -> None:
    scenario = sim.scenario_from_dict(data, base_dir=DATA)
    assert compiled_unsupported(scenario) is None
    both(scenario)


SUPPORTED = [path for path in sorted((ROOT / "scenarios").glob("*.yaml"))
             if compiled_unsupported(sim.load_scenario(path)) is None]


@pytest.mark.parametrize("path", SUPPORTED, ids=lambda p: p.stem)
def test_bundled_scenarios_give_identical_records(path: Path) -> None:
    both(sim.load_scenario(path))


def test_the_bundled_scenarios_the_compiled_engine_covers() -> None:
    # A check on the test itself: most single-stage bundled scenarios are covered.
    assert len(SUPPORTED) >= 10


def test_ties_follow_the_scheduling_order() -> None:
    # Arrivals every second, service exactly one second: every finish coincides with an arrival.
    # The consumer that finishes at t was scheduled (at t - 1) before the arrival at t was, so
    # it fires first and the arrival finds it free: nobody waits.
    scenario = make_scenario(producers=[{"arrivals": {"process": "constant", "rate": "1/s", "count": 5}}])
    compiled = simulate_compiled(scenario, replication_seeds(0, 0))
    np.testing.assert_array_equal(compiled.columns.start, compiled.columns.arrival)
    both(scenario)


def test_the_kernel_uses_the_records_outcome_codes() -> None:
    assert (kernel.COMPLETED, kernel.LATE, kernel.EXPIRED, kernel.REJECTED, kernel.DROPPED) == (
        records.COMPLETED, records.LATE, records.EXPIRED, records.REJECTED, records.DROPPED)
    assert (kernel.OVERFLOW_REASON, kernel.AQM_REASON) == (records.OVERFLOW, records.AQM)


def test_long_runs_recycle_the_ring_and_grow_the_queue() -> None:
    # 200,000 requests at rho 0.95: the ring of job rows (65,536) is emptied many times, and an
    # overloaded phase grows the unbounded queue well past its first 1,024 places.
    scenario = make_scenario(
        producers=[{"arrivals": {"process": "piecewise", "rates": [["0s", "0.95/s"], ["1000s", "3/s"],
                                                                    ["2000s", "0.5/s"]], "count": 200_000}}],
        consumers={"concurrency": 1, "service": {"dist": "exponential", "mean": "1s"}},
    )
    both(scenario)


def test_auto_picks_the_compiled_engine_when_it_can() -> None:
    plain = make_scenario()
    assert engine_for(plain) == "compiled"
    assert simulate_with(plain, replication_seeds(0, 0)).engine == "compiled"
    assert engine_for(make_scenario(engine="simpy")) == "simpy"
    serverless = make_scenario(consumers={"concurrency": 2, "service": {"dist": "constant", "value": "1s"},
                                          "scaling": {"rate": "10/s"}})
    assert engine_for(serverless) == "simpy"
    assert sim.run(plain).summary["engine"].tolist() == ["compiled"]


def test_asking_for_the_compiled_engine_on_an_unsupported_scenario_is_a_one_line_error() -> None:
    scenario = make_scenario(engine="compiled", consumers={"concurrency": 2, "timeout": "1s",
                                                           "service": {"dist": "constant", "value": "1s"}})
    with pytest.raises(ScenarioError, match=r"engine: got 'compiled'; the compiled engine does not model "
                                            r"consumers\.timeout; use engine: auto or simpy"):
        engine_for(scenario)


def test_cli_engine_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sim.cli import main

    scenario = ROOT / "scenarios" / "pipeline.yaml"
    assert main(["run", str(scenario), "--engine", "compiled", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert "does not model stages" in error
    assert main(["run", str(ROOT / "scenarios" / "encore-priority.yaml"), "--engine", "simpy", "--no-figures",
                 "--out", str(tmp_path / "simpy")]) == 0
    assert "simpy engine" in capsys.readouterr().out
    manifest = (tmp_path / "simpy" / "manifest.json").read_text()
    assert '"engine": "simpy"' in manifest


def test_compiled_results_are_exactly_reproducible() -> None:
    scenario = make_scenario(producers=[{"arrivals": {"process": "poisson", "rate": "30/s", "count": 3000},
                                         "timeout": {"dist": "exponential", "mean": "0.3s"}}],
                             consumers={"concurrency": 3, "service": {"dist": "lognormal", "mean": "0.1s", "cv": 1}})
    first, second = (simulate_compiled(scenario, replication_seeds(7, 2)) for _ in range(2))
    assert_same_records(first, second)
    assert not math.isnan(float(np.nanmax(first.columns.finish)))


def test_the_machine_code_cache_is_keyed_on_every_module_the_kernel_inlines() -> None:
    # Numba freezes imported constants (the tally layout) into the cached machine code but keys its
    # cache on the function's own file only: a changed layout once ran stale code from the cache.
    from sim.engine.compiled.jit import compiled_sources

    names = {str(path.relative_to(ROOT)) for path in compiled_sources()}
    assert {"sim/engine/tally.py", "sim/engine/records.py", "sim/engine/compiled/kernel.py"} <= names


def test_a_first_call_that_lasts_says_the_engine_is_compiling(capsys: pytest.CaptureFixture[str]) -> None:
    # Before: a fresh machine's first run sat silent for about a minute while Numba compiled.
    from sim.engine.compiled.jit import COMPILING_NOTE, compiling_note

    class Dispatcher:
        def __init__(self, signatures: list[object]) -> None:
            self.signatures = signatures

    slow = compiling_note(Dispatcher([]), after=0.01)
    assert slow is not None
    slow.join(5)
    assert capsys.readouterr().err == COMPILING_NOTE + "\n"
    fast = compiling_note(Dispatcher([]), after=5.0)
    assert fast is not None
    fast.cancel()  # the call returned in time: nothing to say
    assert compiling_note(Dispatcher([object()])) is None  # already compiled or loaded in this process
    assert capsys.readouterr().err == ""
