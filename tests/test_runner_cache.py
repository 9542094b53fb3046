"""One Runner for many experiments, and a cache that trusts nothing it reads from disk."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sim import cli
from sim.experiments.cache import ResultCache, run_key, scenario_digest
from sim.experiments.compare import Comparison, arms_from_vary, compare
from sim.experiments.executors import InProcess
from sim.experiments.planning import Plan, Planner
from sim.experiments.replication import outcome_of, simulate_run
from sim.experiments.runner import Runner, SweepResult, run_experiment
from sim.experiments.storage import read_outcome, write_outcome
from sim.experiments.sweep import Experiment, load_experiment

SWEPT = """\
# A small M/M/c sweep for the reuse test.
name: reuse-sweep
seed: 5
replications: 3
producers:
  - arrivals: {process: poisson, rate: 30/s, count: 200}
    timeout: 200ms
consumers:
  concurrency: 2
  service: {dist: exponential, mean: 50ms}
report: {bucket: 1s}
sweep:
  consumers.concurrency: [2, 3]
"""

COMPARED = """\
# A small burst for the reuse test: other arrivals than the sweep.
name: reuse-compare
seed: 5
replications: 3
producers:
  - arrivals: {process: burst, count: 150, over: 1s}
    timeout: 1s
consumers:
  concurrency: 4
  service: {dist: lognormal, mean: 40ms, cv: 1}
report: {bucket: 1s}
"""

PLANNED = """\
# A small plan for the reuse test: the smallest concurrency with a short mean wait.
name: reuse-plan
seed: 5
replications: 3
producers:
  - arrivals: {process: poisson, rate: 40/s, count: 300}
consumers:
  concurrency: 2
  service: {dist: exponential, mean: 100ms}
report: {bucket: 1s}
plan: {vary: consumers.concurrency, min: 2, max: 12, targets: ['wait_mean<=20ms']}
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name, text in (("swept", SWEPT), ("compared", COMPARED), ("planned", PLANNED)):
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(text)
    return paths


def _all(runner: Runner, files: dict[str, Path]) -> tuple[SweepResult, Comparison, Plan]:
    """The README's Python block: a sweep, then a comparison, then a plan, all on ``runner``."""
    swept = run_experiment(load_experiment(files["swept"]), runner, 3)
    assert isinstance(swept, SweepResult)
    compared = compare(arms_from_vary(files["compared"], "queue.discipline=fifo,lifo", {}), runner, 3)
    experiment: Experiment = load_experiment(files["planned"])
    assert experiment.plan is not None
    planned = Planner(experiment, experiment.plan, runner).search()
    return swept, compared, planned


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="wall_time")


def test_one_runner_for_a_sweep_a_comparison_and_a_plan_gives_what_fresh_runners_give(
    files: dict[str, Path],
) -> None:
    """Runs were kept by (point index, replication): the comparison's arm 0 got the sweep's point 0
    and the planner's first probes the sweep's and the comparison's runs. Kept by content, a shared
    runner must give exactly what a fresh runner gives each experiment."""
    shared = Runner(InProcess(), 5)
    swept, compared, planned = _all(shared, files)
    fresh_sweep, _, _ = _all(Runner(InProcess(), 5), files)
    fresh_compare = compare(arms_from_vary(files["compared"], "queue.discipline=fifo,lifo", {}),
                            Runner(InProcess(), 5), 3)
    experiment = load_experiment(files["planned"])
    assert experiment.plan is not None
    fresh_plan = Planner(experiment, experiment.plan, Runner(InProcess(), 5)).search()

    pd.testing.assert_frame_equal(_numbers(swept.summary), _numbers(fresh_sweep.summary))
    pd.testing.assert_frame_equal(_numbers(compared.summary), _numbers(fresh_compare.summary))
    pd.testing.assert_frame_equal(compared.table.drop(columns=[c for c in compared.table if "wall" in c]),
                                  fresh_compare.table.drop(columns=[c for c in fresh_compare.table if "wall" in c]))
    assert [(p.value, p.verdict, p.replications) for p in planned.probes] == [
        (p.value, p.verdict, p.replications) for p in fresh_plan.probes]
    assert planned.answer is not None
    assert fresh_plan.answer is not None
    assert planned.answer.value == fresh_plan.answer.value
    assert planned.other_side is not None
    assert planned.other_side.value == fresh_plan.other_side.value  # type: ignore[union-attr]
    # The burst's arms really are the burst: 150 requests each, not the sweep's 200.
    assert set(compared.summary["offered"]) == {150}


# --- the cache --------------------------------------------------------------------------------------


def _outcome(tmp_path: Path) -> Any:
    """A run with every kind of column: several producers (text and categories), a NaN cost, warm-up auto."""
    from sim.model.scenario import scenario_from_dict

    scenario = scenario_from_dict({
        "name": "codec", "seed": 3, "warmup": "auto",
        "producers": [{"name": "a", "arrivals": {"process": "poisson", "rate": "20/s", "count": 200}},
                      {"name": "b", "arrivals": {"process": "poisson", "rate": "10/s", "count": 100},
                       "timeout": "100ms"}],
        "consumers": {"concurrency": 2, "service": {"dist": "exponential", "mean": "40ms"}},
        "report": {"bucket": "200ms"},
    })  # fmt: skip
    return outcome_of(simulate_run(scenario, 3, 1), point=4, code="abc")


def test_an_outcome_read_back_equals_the_one_written_dtypes_included(tmp_path: Path) -> None:
    outcome = _outcome(tmp_path)
    path = tmp_path / "entry.npz"
    with path.open("wb") as stream:
        write_outcome(stream, "k" * 32, outcome)
    back = read_outcome(path, "k" * 32)
    pd.testing.assert_frame_equal(back.summary, outcome.summary, check_exact=True)
    pd.testing.assert_frame_equal(back.timeseries, outcome.timeseries, check_exact=True)
    assert back.timeseries.attrs == outcome.timeseries.attrs
    assert list(back.summary.dtypes) == list(outcome.summary.dtypes)
    np.testing.assert_array_equal(back.latency_quantiles, outcome.latency_quantiles)
    assert (back.point, back.replication, back.warmup, back.code) == (4, 1, outcome.warmup, "abc")
    assert back.run is None


def _sweep_cache(files: dict[str, Path], folder: Path) -> tuple[Experiment, Runner]:
    experiment = load_experiment(files["swept"])
    runner = Runner(InProcess(), 5, ResultCache(folder))
    run_experiment(experiment, runner, 3)
    return experiment, runner


def test_an_entry_copied_under_another_entrys_name_is_a_miss(files: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    experiment, _ = _sweep_cache(files, folder)
    digests = [scenario_digest(p.scenario) for p in experiment.points]
    wrong = folder / f"{run_key(digests[0], 5, 0)}.npz"
    shutil.copyfile(folder / f"{run_key(digests[1], 5, 2)}.npz", wrong)  # valid, but another run
    notes: list[str] = []
    cache = ResultCache(folder, note=notes.append)
    assert cache.get(run_key(digests[0], 5, 0)) is None
    assert cache.get(run_key(digests[0], 5, 1)) is not None  # the others are still used
    again = Runner(InProcess(), 5, ResultCache(folder, note=notes.append))
    result = run_experiment(experiment, again, 3)
    assert (again.cached, again.computed) == (5, 1)
    fresh = run_experiment(experiment, Runner(InProcess(), 5), 3)
    pd.testing.assert_frame_equal(_numbers(result.summary), _numbers(fresh.summary))
    assert len(notes) == 2  # one per cache object
    assert all("another key" in n for n in notes)


class Planted:
    """A pickle that, when loaded, creates a file: the proof that unpickling ran code."""

    marker = ""

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def test_a_planted_pickle_in_the_cache_never_runs(files: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    marker = tmp_path / "pwned"
    experiment = load_experiment(files["swept"])
    folder = out / "cache"
    folder.mkdir(parents=True)
    Planted.marker = str(marker)
    for point in experiment.points:
        for replication in range(3):
            key = run_key(scenario_digest(point.scenario), 5, replication)
            (folder / f"{key}.pkl").write_bytes(pickle.dumps(Planted()))
            # the same payload inside an .npz: an object array that only allow_pickle would load
            with (folder / f"{key}.npz").open("wb") as stream:
                np.savez(stream, meta=np.array([Planted()], dtype=object))
    assert cli.main(["run", str(files["swept"]), "--out", str(out), "--workers", "1", "--no-figures"]) == 0
    assert not marker.exists()
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("qsim: note:")]
    assert len(notes) == 1  # once per run, not once per file
    assert "cannot be used" in notes[0]
    assert len(list(folder.glob("*.npz"))) == 6  # recomputed and stored in the safe format
    assert ResultCache(folder).get(run_key(scenario_digest(experiment.points[0].scenario), 5, 0)) is not None


def test_old_pickles_are_never_opened_and_said_once(files: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    experiment = load_experiment(files["swept"])
    folder.mkdir()
    Planted.marker = str(tmp_path / "pwned")
    for point in experiment.points:
        for replication in range(3):
            key = run_key(scenario_digest(point.scenario), 5, replication)
            (folder / f"{key}.pkl").write_bytes(pickle.dumps(Planted()))
    notes: list[str] = []
    runner = Runner(InProcess(), 5, ResultCache(folder, note=notes.append))
    run_experiment(experiment, runner, 3)
    assert runner.computed == 6
    assert not (tmp_path / "pwned").exists()
    assert len(notes) == 1
    assert ".pkl" in notes[0]
