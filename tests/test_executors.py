"""Executors give identical numbers; the cache resumes interrupted sweeps and never serves stale runs."""

from __future__ import annotations

import gc
import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from sim import cli
from sim.cli import EXIT_BAD_INPUT, main
from sim.experiments.cache import ResultCache, run_key, scenario_digest
from sim.experiments.executors import DaskExecutor, InProcess, ProcessPool, make_executor
from sim.experiments.replication import RunOutcome
from sim.experiments.runner import Runner, SweepResult, run_experiment
from sim.experiments.sweep import load_experiment

SWEEP = """\
# A small sweep of M/M/2 with a client timeout, for executor tests.
name: exec-sweep
seed: 21
replications: 2
producers:
  - name: clients
    arrivals: {process: poisson, rate: 40/s, count: 300}
    timeout: 150ms
consumers:
  concurrency: 2
  service: {dist: exponential, mean: 40ms}
report: {bucket: 500ms}
sweep:
  consumers.concurrency: [1, 2, 3]
  queue.discipline: [fifo, lifo]
"""
RUNS = 6 * 2


@pytest.fixture
def sweep_file(tmp_path: Path) -> Path:
    path = tmp_path / "exec-sweep.yaml"
    path.write_text(SWEEP)
    return path


def tables(result: SweepResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Summary and time series without wall_time, the one column that differs between identical runs."""
    return result.summary.drop(columns="wall_time"), result.timeseries


def run_on(executor: InProcess | ProcessPool | DaskExecutor, path: Path) -> SweepResult:
    experiment = load_experiment(path)
    with executor:
        result = run_experiment(experiment, Runner(executor, experiment.base.seed), 2)
    assert isinstance(result, SweepResult)
    return result


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.mark.slow  # starts a local Dask cluster
def test_in_process_pool_and_dask_give_identical_numbers(sweep_file: Path, dask_address: str) -> None:
    here = run_on(InProcess(), sweep_file)
    pooled = run_on(ProcessPool(2), sweep_file)
    clustered = run_on(DaskExecutor(dask_address), sweep_file)
    for other in (pooled, clustered):
        for mine, theirs in zip(tables(here), tables(other), strict=True):
            pd.testing.assert_frame_equal(mine, theirs)
        assert [o.latency_quantiles.tolist() for p in here.points for o in here.outcomes[p.index]] == [
            o.latency_quantiles.tolist() for p in other.points for o in other.outcomes[p.index]
        ]
    assert "2 workers" in clustered.executor
    assert pooled.executor == "process pool of 2"


@pytest.mark.slow  # starts a local Dask cluster
def test_the_command_line_runs_on_a_dask_cluster(
    sweep_file: Path, tmp_path: Path, dask_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, extra in (("here", ["--workers", "1"]), ("dask", ["--dask", dask_address])):
        assert main(["run", str(sweep_file), "--out", str(tmp_path / name), "--no-figures", "--json", *extra]) == 0
    capsys.readouterr()
    here, dask = (pd.read_csv(tmp_path / name / "summary.csv").drop(columns="wall_time") for name in ("here", "dask"))
    pd.testing.assert_frame_equal(here, dask)
    assert json.loads((tmp_path / "dask" / "manifest.json").read_text())["executor"].startswith("Dask cluster at tcp://")


def test_an_unreachable_cluster_is_one_line(
    sweep_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(DaskExecutor, "TIMEOUT", 0.5)
    code = main(["run", str(sweep_file), "--dask", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1
    assert err.startswith("qsim: error: --dask tcp://127.0.0.1:9: cannot reach the scheduler"), err


def test_make_executor_picks_in_process_for_one_worker_or_one_run() -> None:
    assert isinstance(make_executor(1, None, 100), InProcess)
    assert isinstance(make_executor(None, None, 1), InProcess)
    with make_executor(2, None, 100) as pool:
        assert isinstance(pool, ProcessPool)
        assert pool.workers == 2


# --- the cache ---------------------------------------------------------------------------------------


class Stop(Exception):
    """Raised by a test hook to interrupt a sweep half-way."""


def test_an_interrupted_sweep_resumes_with_only_the_missing_runs(sweep_file: Path, tmp_path: Path) -> None:
    experiment = load_experiment(sweep_file)
    folder = tmp_path / "cache"
    finished: list[RunOutcome] = []

    def stop_after_five(outcome: RunOutcome) -> None:
        finished.append(outcome)
        if len(finished) == 5:
            raise Stop

    with pytest.raises(Stop):
        run_experiment(experiment, Runner(InProcess(), 21, ResultCache(folder), on_outcome=stop_after_five), 2)
    assert gc.get_freeze_count() == 0  # the in-process executor thawed the heap on its way out
    assert len(ResultCache(folder)) == 5  # each run was stored as it finished
    assert not list(folder.glob(".*.tmp"))  # and atomically: no temporary files left

    computed: list[RunOutcome] = []
    resumed = Runner(InProcess(), 21, ResultCache(folder), on_outcome=computed.append)
    result = run_experiment(experiment, resumed, 2)
    assert (resumed.cached, resumed.computed) == (5, RUNS - 5)
    done_before = {(o.point, o.replication) for o in finished}
    assert done_before.isdisjoint((o.point, o.replication) for o in computed)

    fresh = run_experiment(experiment, Runner(InProcess(), 21), 2)
    assert isinstance(result, SweepResult)
    assert isinstance(fresh, SweepResult)
    pd.testing.assert_frame_equal(result.summary.drop(columns="wall_time"), fresh.summary.drop(columns="wall_time"))


def test_the_key_changes_with_anything_that_changes_the_numbers(sweep_file: Path, tmp_path: Path) -> None:
    points = load_experiment(sweep_file).points
    digest = scenario_digest(points[0].scenario)
    assert digest == scenario_digest(load_experiment(sweep_file).points[0].scenario)  # stable across loads
    assert digest != scenario_digest(points[1].scenario)  # another discipline
    keys = {run_key(digest, 21, 0), run_key(digest, 22, 0), run_key(digest, 21, 1)}
    assert len(keys) == 3  # seed and replication are in the key
    trace = tmp_path / "arrivals.csv"
    trace.write_text("0.1\n0.2\n")
    data = {"name": "t", "producers": [{"arrivals": {"process": "trace", "file": "arrivals.csv"}}],
            "consumers": {"concurrency": 1, "service": {"dist": "constant", "value": "1s"}}}
    from sim.model.scenario import scenario_from_dict

    before = scenario_digest(scenario_from_dict(data, base_dir=tmp_path, source=tmp_path / "t.yaml"))
    trace.write_text("0.1\n0.3\n")
    after = scenario_digest(scenario_from_dict(data, base_dir=tmp_path, source=tmp_path / "t.yaml"))
    assert before != after  # the trace file's contents count, not only its name


def test_unreadable_entries_are_run_again(sweep_file: Path, tmp_path: Path) -> None:
    experiment = load_experiment(sweep_file)
    folder = tmp_path / "cache"
    run_experiment(experiment, Runner(InProcess(), 21, ResultCache(folder)), 2)
    entries = sorted(folder.glob("*.npz"))
    entries[0].write_bytes(b"not an archive")
    entries[1].write_bytes(pickle.dumps({"something": "else"}))
    notes: list[str] = []
    again = Runner(InProcess(), 21, ResultCache(folder, note=notes.append))
    run_experiment(experiment, again, 2)
    assert (again.cached, again.computed) == (RUNS - 2, 2)
    assert len(notes) == 1  # one note for both


def test_ctrl_c_keeps_finished_runs_and_the_same_command_resumes(
    sweep_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    command = ["run", str(sweep_file), "--out", str(out), "--workers", "1", "--no-figures"]

    class Interrupting(Runner):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            self.on_outcome = self.maybe_stop

        def maybe_stop(self, outcome: RunOutcome) -> None:
            if self.computed == 4:
                raise KeyboardInterrupt

    monkeypatch.setattr(cli, "Runner", Interrupting)
    assert main(command) == cli.EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert f"qsim: interrupted; 4 finished runs are kept in {out / 'cache'}: run the same command to resume" in err
    assert not (out / "summary.csv").exists()
    monkeypatch.setattr(cli, "Runner", Runner)
    assert main(command) == 0
    stdout = capsys.readouterr().out
    assert f"4 runs from the cache, {RUNS - 4} computed" in stdout
    assert main([*command, "--fresh"]) == 0
    assert "from the cache" not in capsys.readouterr().out
