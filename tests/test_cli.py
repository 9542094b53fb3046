"""The ``qsim`` command, run in-process (and once as a real process for exit codes and stderr)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sim.cli import EXIT_BAD_INPUT
from tests.helpers import ROOT, Cli

SCENARIO = """\
# A small M/M/2 with a client timeout: fast enough for a command-line test.
name: small
description: two consumers, 300 Poisson arrivals
seed: 11
producers:
  - name: clients
    arrivals: {process: poisson, rate: 60/s, count: 300}
    timeout: 100ms
queue:
  discipline: fifo
  capacity: 20
consumers:
  concurrency: 2
  service: {dist: exponential, mean: 30ms}
report:
  bucket: 500ms
"""

OUTPUTS = ["summary.csv", "estimates.csv", "timeseries.csv", "requests.parquet", "manifest.json", "report.md"]
FIGURES = ["latency.png", "timeseries.png", "outcomes.png"]
SUMMARY_COLUMNS = [
    "scenario", "replication", "offered", "completed", "late", "expired", "rejected", "dropped", "in_system",
    "timeout_rate", "throughput", "goodput", "latency_mean", "latency_p50", "latency_p90", "latency_p99",
    "latency_p999", "wait_mean", "wait_p50", "wait_p99", "wasted_work", "utilization", "mean_queue", "max_queue",
    "sim_time", "wall_time",
]


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(SCENARIO)
    return path



def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_error_line(err: str, *words: str) -> None:
    assert err.endswith("\n")
    assert err.count("\n") == 1, err
    assert err.startswith("qsim: error: ")
    assert "Traceback" not in err
    for word in words:
        assert word in err, err


# --- qsim run -------------------------------------------------------------------------------


def test_run_writes_the_results_folder(scenario: Path, tmp_path: Path, qsim: Cli) -> None:
    out = tmp_path / "results"
    code, stdout, err = qsim("run", scenario, "--out", out)
    assert code == 0, err
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    for name in FIGURES:
        assert (out / "figures" / name).read_bytes().startswith(b"\x89PNG"), name

    summary = pd.read_csv(out / "summary.csv")
    assert set(SUMMARY_COLUMNS) <= set(summary.columns)
    assert len(summary) == 1
    row = summary.iloc[0]
    assert row["offered"] == 300
    outcomes = ["completed", "late", "expired", "rejected", "dropped", "in_system"]
    assert sum(row[c] for c in outcomes) == 300

    requests = pd.read_parquet(out / "requests.parquet")
    assert len(requests) == 300
    assert isinstance(requests["outcome"].dtype, pd.CategoricalDtype)  # Parquet keeps the types
    assert {"producer", "arrival", "start", "finish", "outcome"} <= set(requests.columns)
    counts = requests["outcome"].value_counts()
    assert counts[counts > 0].to_dict() == {c: int(row[c]) for c in outcomes if row[c]}

    timeseries = pd.read_csv(out / "timeseries.csv")
    assert len(timeseries) > 1

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 11
    assert manifest["scenario"] == "small"
    assert manifest["as_run"]["consumers"]["concurrency"] == 2

    report = (out / "report.md").read_text()
    assert report.startswith("# small")
    assert "figures/latency.png" in report

    assert "small: two consumers, 300 Poisson arrivals" in stdout
    assert "offered" in stdout
    assert "300" in stdout
    assert f"results written to {out}/" in stdout
    assert err == ""


def test_run_json_prints_the_summary_rows(scenario: Path, tmp_path: Path, qsim: Cli) -> None:
    code, stdout, _ = qsim("run", scenario, "--out", tmp_path / "out", "--json", "--no-figures")
    assert code == 0
    printed = json.loads(stdout)  # nothing but JSON on stdout
    rows = printed["summary"]
    assert isinstance(rows, list)
    assert len(rows) == 1
    assert [row["stat"] for row in printed["estimates"]] == ["mean", "ci_low", "ci_high"]
    assert rows[0]["scenario"] == "small"
    assert rows[0]["offered"] == 300
    assert set(SUMMARY_COLUMNS) <= set(rows[0])
    written = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert rows[0]["completed"] == written["completed"].iloc[0]


def test_no_figures_writes_everything_but_figures(
    scenario: Path, tmp_path: Path, qsim: Cli
) -> None:
    out = tmp_path / "out"
    code, _, _ = qsim("run", scenario, "--out", out, "--no-figures")
    assert code == 0
    assert all((out / name).exists() for name in OUTPUTS)
    assert not list(out.rglob("*.png"))
    assert "figures/" not in (out / "report.md").read_text()


def test_seed_and_replications_override_the_scenario(
    scenario: Path, tmp_path: Path, qsim: Cli
) -> None:
    out = tmp_path / "out"
    code, stdout, _ = qsim("run", scenario, "--out", out, "--no-figures", "--seed", "5", "--replications", "3")
    assert code == 0
    per_run = pd.read_csv(out / "summary.csv")
    assert per_run["replication"].tolist() == [0, 1, 2]
    estimates = pd.read_csv(out / "estimates.csv")
    assert estimates["stat"].tolist() == ["mean", "ci_low", "ci_high"]
    mean, low, high = (estimates.set_index("stat").loc[label] for label in ("mean", "ci_low", "ci_high"))
    assert mean["latency_mean"] == pytest.approx(per_run["latency_mean"].mean())
    assert low["latency_mean"] < mean["latency_mean"] < high["latency_mean"]
    assert per_run["latency_mean"].nunique() == 3  # independent streams, not one run three times
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["seed"], manifest["replications"]) == (5, 3)
    assert manifest["as_run"]["seed"] == 5  # the scenario as run says what was run
    assert "3 replications" in stdout


def test_seed_changes_the_numbers_and_the_scenario_seed_is_the_default(
    scenario: Path, tmp_path: Path, qsim: Cli
) -> None:
    def latency(*extra: str) -> float:
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        assert qsim("run", scenario, "--out", out, "--no-figures", *extra)[0] == 0
        return float(pd.read_csv(out / "summary.csv")["latency_mean"].iloc[0])

    default = latency()
    assert latency("--seed", "11") == default
    assert latency("--seed", "12") != default


def test_set_overrides_fields_before_validation(
    scenario: Path, tmp_path: Path, qsim: Cli
) -> None:
    out = tmp_path / "out"
    code, _, err = qsim("run", scenario, "--out", out, "--no-figures", "--json",
                        "--set", "producers.0.arrivals.count=50", "--set", "queue.capacity=0",
                        "--set", "consumers.service.mean=1s")
    assert code == 0, err
    summary = pd.read_csv(out / "summary.csv").iloc[0]
    assert summary["offered"] == 50
    assert summary["max_queue"] == 0  # capacity 0: no queue at all
    assert summary["rejected"] > 0  # two slow consumers, no queue: most arrivals are turned away
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["as_run"]["queue"]["capacity"] == 0
    assert manifest["as_written"]["consumers"]["service"]["mean"] == "1s"


def test_the_same_seed_gives_the_same_numbers(
    scenario: Path, tmp_path: Path, qsim: Cli
) -> None:
    for out in ("first", "second"):
        assert qsim("run", scenario, "--out", tmp_path / out, "--no-figures", "--replications", "2")[0] == 0
    first, second = (pd.read_csv(tmp_path / out / "summary.csv") for out in ("first", "second"))
    pd.testing.assert_frame_equal(first.drop(columns="wall_time"), second.drop(columns="wall_time"))
    series = [pd.read_csv(tmp_path / out / "timeseries.csv") for out in ("first", "second")]
    pd.testing.assert_frame_equal(*series)
    requests = [pd.read_parquet(tmp_path / out / "requests.parquet") for out in ("first", "second")]
    pd.testing.assert_frame_equal(*requests)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--set", "queue.discipline=fifi"], ["small.yaml: queue.discipline: got 'fifi'; did you mean 'fifo'?"]),
        (["--set", "producers.0.arrivals.rate=fast"], ["producers.0.arrivals.rate: got 'fast'"]),
        (["--set", "producers.4.timeout=1s"], ["--set producers.4.timeout: got '4'", "use an index from 0 to 0"]),
        (["--set", "queue.capacity"], ["--set 'queue.capacity': write key.path=value"]),
        (["--seed", "-1"], ["--seed: got -1; give an integer >= 0"]),
        (["--replications", "0"], ["--replications: got 0; give an integer from 1 to 10,000"]),
        (["--seed", "many"], ["argument --seed: invalid int value: 'many'", "see qsim run --help"]),
        (["--bogus"], ["unrecognized arguments: --bogus"]),
    ],
)
def test_bad_input_exits_2_with_one_line_and_leaves_results_untouched(
    scenario: Path, tmp_path: Path, qsim: Cli, args: list[str], words: list[str]
) -> None:
    out = tmp_path / "out"
    assert qsim("run", scenario, "--out", out, "--no-figures")[0] == 0
    before = snapshot(out)
    code, stdout, err = qsim("run", scenario, "--out", out, *args)
    assert code == EXIT_BAD_INPUT
    assert stdout == ""
    assert_one_error_line(err, *words)
    assert snapshot(out) == before
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files left


def test_a_bad_scenario_file_writes_nothing(tmp_path: Path, qsim: Cli) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SCENARIO.replace("concurrency: 2", "concurrency: 0"))
    code, _, err = qsim("run", bad, "--out", tmp_path / "out")
    assert code == EXIT_BAD_INPUT
    assert_one_error_line(err, f"{bad}: consumers.concurrency: got 0")
    assert not (tmp_path / "out").exists()


def test_out_must_be_a_folder(scenario: Path, tmp_path: Path, qsim: Cli) -> None:
    out = tmp_path / "taken"
    out.write_text("keep me")
    code, _, err = qsim("run", scenario, "--out", out, "--no-figures")
    assert code == EXIT_BAD_INPUT
    assert_one_error_line(err, f"--out {out}: got a file")
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("args", [[], ["frobnicate"], ["run"], ["check"]])
def test_usage_errors_are_one_line_too(qsim: Cli, args: list[str]) -> None:
    code, _, err = qsim(*args)
    assert code == EXIT_BAD_INPUT
    assert_one_error_line(err, "--help")


# --- qsim check -----------------------------------------------------------------------------


def test_check_validates_without_running(
    scenario: Path, tmp_path: Path, qsim: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, stdout, err = qsim("check", scenario)
    assert (code, err) == (0, "")
    assert stdout == f"{scenario}: ok (small, 1 producer(s), ~300 requests, <1 MB, <1 s)\n"
    assert [p.name for p in tmp_path.iterdir()] == ["small.yaml"]  # no results folder written


def test_check_reports_every_bad_file_on_its_own_line(
    scenario: Path, tmp_path: Path, qsim: Cli
) -> None:
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(SCENARIO.replace("capacity: 20", "capacity: 20\n  capasity: 3"))
    missing = tmp_path / "missing.yaml"
    code, stdout, err = qsim("check", unknown, scenario, missing)
    assert code == EXIT_BAD_INPUT
    assert stdout == f"{scenario}: ok (small, 1 producer(s), ~300 requests, <1 MB, <1 s)\n"
    assert err.splitlines() == [
        f"qsim: error: {unknown}: queue.capasity: unknown key; did you mean 'capacity'? "
        "allowed here: discipline, capacity, overflow, on_expired, lifo_when, aqm, delivery, pollers, broker",
        f"qsim: error: {missing}: cannot read the scenario file (No such file or directory); check the path",
    ]


def test_every_bundled_scenario_is_valid(qsim: Cli) -> None:
    bundled = sorted((ROOT / "scenarios").glob("*.yaml"))
    assert bundled
    code, stdout, err = qsim("check", *bundled)
    assert (code, err) == (0, "")
    assert stdout.count(": ok (") == len(bundled)


# --- as a real process ----------------------------------------------------------------------


def test_python_dash_m_sim_exits_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SCENARIO + "queue:\n  capacity: 3\n")  # `queue` twice
    done = subprocess.run(
        [sys.executable, "-m", "sim", "run", str(bad), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )
    assert done.returncode == EXIT_BAD_INPUT
    assert done.stdout == ""
    first, second = SCENARIO.splitlines().index("queue:") + 1, len(SCENARIO.splitlines()) + 1
    assert_one_error_line(
        done.stderr, f"{bad}: line {second}, column 1: key 'queue' appears twice (first on line {first}); keep only one"
    )
    assert not (tmp_path / "out").exists()


def test_python_dash_m_sim_check_exits_0(scenario: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sim", "check", str(scenario)],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"{scenario}: ok (small, 1 producer(s), ~300 requests, <1 MB, <1 s)\n"
