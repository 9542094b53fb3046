"""Huge, degenerate and hostile input: one line and exit code 2, or a correct run; never a traceback.

Each case is a crash class found by fuzzing the bundled scenarios, or a file a scenario can point
at that is not a file of numbers (a device, a FIFO, a huge or binary file, a long line).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.analysis.intervals import MAX_BUCKETS, bucket_edges
from sim.cli import EXIT_BAD_INPUT, main
from sim.experiments import budget
from sim.model.datafiles import MAX_DATA_FILE_BYTES, MAX_SCENARIO_BYTES
from tests.helpers import ROOT

BASE: dict[str, Any] = {
    "name": "hostile",
    "producers": [{"name": "clients", "arrivals": {"process": "poisson", "rate": "50/s", "stop": "2s"}}],
    "consumers": {"concurrency": 2, "service": {"dist": "exponential", "mean": "20ms"}},
}


def scenario_file(folder: Path, **changes: Any) -> Path:
    """BASE with top-level ``changes`` (``producers``/``consumers`` merged one level deep)."""
    data = yaml.safe_load(yaml.safe_dump(BASE))
    for key, value in changes.items():
        if key == "arrivals":
            data["producers"][0]["arrivals"] = value
        elif key == "service":
            data["consumers"]["service"] = value
        else:
            data[key] = value
    path = folder / "hostile.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def one_error(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    """Run ``qsim args``; it must exit 2 with one line on stderr and no traceback. Return the line."""
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    assert code == EXIT_BAD_INPUT, captured
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("qsim: error: "), captured.err
    assert "Traceback" not in captured.err
    return captured.err.removeprefix("qsim: error: ").strip()


# --- 1. spreads whose moments overflow ---------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "field", "words"),
    [
        ({"dist": "lognormal", "mean": "1s", "sigma": 27}, "consumers.service.sigma", "got 27; must be greater than 0"
                                                                                       " and at most 3.03 (cv 100)"),
        ({"dist": "lognormal", "mean": "1s", "cv": 1e155}, "consumers.service.cv", "must be at most 100"),
        ({"dist": "gamma", "mean": "1s", "cv": 1e-200}, "consumers.service.cv", "must be at least 1e-06; for no "
                                                                                "spread at all use {dist: constant"),
        ({"dist": "lognormal", "mean": "1s", "cv": ".inf"}, "consumers.service.cv", "must be a finite number"),
    ],
)
def test_a_spread_too_wide_or_too_narrow_is_refused_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], service: dict[str, Any], field: str, words: str
) -> None:
    # Before: OverflowError (sigma above 26.6: expm1(sigma^2); cv above 1e154: cv^2) and
    # ZeroDivisionError (gamma's shape 1/cv^2) when the run started.
    path = scenario_file(tmp_path, service=service)
    path.write_text(path.read_text().replace("'.inf'", ".inf"))
    for command in ("check", "run"):
        line = one_error(capsys, command, path, "--out", tmp_path / "out") if command == "run" else \
            one_error(capsys, command, path)
        assert line.startswith(f"{path}: {field}: got "), line
        assert words in line, line
    assert not (tmp_path / "out").exists()


def test_the_widest_spread_allowed_still_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario_file(tmp_path, service={"dist": "lognormal", "mean": "10ms", "sigma": 3.03})
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-figures", "--json"]) == 0
    capsys.readouterr()


# --- 2. a sweep that is not a mapping ----------------------------------------------------------


@pytest.mark.parametrize(("sweep", "shown"), [("abc", "'abc'"), (5, "5"), (None, "null (nothing)"), ([1], "[1]")])
def test_a_sweep_that_is_not_a_mapping_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sweep: Any, shown: str
) -> None:
    # Before: ValueError / TypeError from dict(...) in sweep.py, in check and run alike.
    path = scenario_file(tmp_path, sweep=sweep)
    for args in (["check", path], ["run", path, "--out", tmp_path / "out"]):
        line = one_error(capsys, *args)
        assert line == (f"{path}: sweep: got {shown}; must be a mapping of field paths to lists of values, "
                        "e.g. {producers.0.arrivals.rate: [200/s, 400/s]}")


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"sweep": {"consumers.concurrency": "x"}}, "sweep.consumers.concurrency: got 'x'; must be a non-empty list"),
        ({"sweep": {"": [1]}}, "sweep: got the key ''; keys are field paths like queue.discipline"),
        ({"sweep": {"plan.min": [1, 2]}}, "sweep.plan.min: cannot be swept; plan says how to run the scenario"),
        ({"precision": "tight"}, "precision: got 'tight'; must be a mapping with keys metric, relative, "
                                 "max_replications"),
        ({"precision": {"metric": "latency_p98", "relative": 0.1}},
         "precision.metric: got 'latency_p98'; did you mean 'latency_p99'? must be a summary column"),
        ({"precision": {"metric": "goodput", "relative": ".nan"}}, "precision.relative: got nan; must be a finite"),
        ({"precision": {"metric": "goodput", "relative": 0.1, "max_replications": 10**9}},
         "precision.max_replications: got 1000000000; must be less than or equal to 10000"),
        ({"plan": [1]}, "plan: got [1]; must be a mapping with keys vary, maximize, min, max, targets"),
        ({"plan": {"vary": "consumers.concurrency", "min": 1, "max": 5, "targets": 7}},
         "plan.targets: got 7; must be a list"),
        ({"plan": {"vary": "consumers.concurrency", "min": 1, "max": 5, "targets": ["goodput>=1/s", "x"]}},
         "plan.targets.1: got 'x'; write METRIC<=VALUE"),
        ({"plan": {"vary": "consumers.concurrency", "min": 1, "max": 5, "targets": "goodput>=1/s",
                   "tolerance": ".inf"}}, "plan.tolerance: got inf; must be a finite number"),
    ],
)
def test_experiment_blocks_are_validated_like_the_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], block: dict[str, Any], message: str
) -> None:
    path = scenario_file(tmp_path, **block)
    path.write_text(path.read_text().replace("'.nan'", ".nan").replace("'.inf'", ".inf"))
    line = one_error(capsys, "check", path)
    assert line.startswith(f"{path}: {message}"), line


# --- 3. a subnormal bucket -----------------------------------------------------------------------


def test_a_subnormal_bucket_is_refused_with_the_minimum(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: OverflowError in intervals.bucket_edges (end / 5e-324 is infinite) after the run.
    path = scenario_file(tmp_path, report={"bucket": "5e-324s"})
    line = one_error(capsys, "run", path, "--out", tmp_path / "out")
    assert line.startswith(f"{path}: report.bucket: got '5e-324s'; must be at least 1us"), line


@pytest.mark.parametrize(("end", "bucket"), [(1.0, 5e-324), (1e300, 1e-6), (3.0, 1e-6), (1e-3, 1.0), (0.0, 1e-6)])
def test_time_buckets_never_overflow_and_never_exceed_the_cap(end: float, bucket: float) -> None:
    edges, width = bucket_edges(end, bucket)
    assert 2 <= len(edges) <= MAX_BUCKETS + 1
    assert edges[-1] >= end
    assert width >= bucket


# --- 4. counts beyond the machine ----------------------------------------------------------------


@pytest.fixture
def eight_gigabytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the machine has 8 GB available, so the refusal does not depend on the test machine."""
    monkeypatch.setattr(budget, "available_memory", lambda: 8 * 2**30)


@pytest.mark.parametrize("count", [2147483648, 10000000000])
def test_a_count_beyond_memory_is_refused_by_check_and_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], eight_gigabytes: None, count: int
) -> None:
    # Before: qsim check said ok, and qsim run died with a MemoryError traceback.
    path = scenario_file(tmp_path, arrivals={"process": "burst", "count": count})
    for args in (["check", path], ["run", path, "--out", tmp_path / "out"]):
        line = one_error(capsys, *args)
        assert line.startswith(f"{path}: too big for this machine: ~{count:,} requests per run need ~"), line
        assert "and 8.0 GB is available; set until to a shorter time, or lower the arrivals' count" in line, line
    assert not (tmp_path / "out").exists()


def test_a_pool_that_would_not_fit_suggests_fewer_workers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = scenario_file(tmp_path, arrivals={"process": "burst", "count": 1_000_000}, replications=4)
    monkeypatch.setattr(budget, "available_memory", lambda: 400 * 2**20)  # one run fits, four at once do not
    line = one_error(capsys, "run", path, "--out", tmp_path / "out", "--workers", "4")
    assert "with 4 runs at once" in line, line
    assert "run fewer at once (--workers 1)" in line, line


def test_running_out_of_memory_anyway_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: a MemoryError traceback.
    def exhausted(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError

    monkeypatch.setattr("sim.cli.run_experiment", exhausted)
    line = one_error(capsys, "run", scenario_file(tmp_path), "--out", tmp_path / "out")
    assert line.startswith("out of memory (estimated ~"), line
    assert line.endswith("set until to a shorter time, or lower the arrivals' count, rate or stop"), line


def test_a_long_command_says_so_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(budget, "NOTICE_SECONDS", 0.0)
    assert main(["run", str(scenario_file(tmp_path)), "--out", str(tmp_path / "out"), "--no-figures"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("qsim:")]
    assert len(lines) == 1
    assert lines[0].startswith("qsim: this will take "), lines
    assert "~100 requests per run" in lines[0], lines


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"until": "5e-324s", "arrivals": {"process": "burst", "count": 10}}, None),
        ({"arrivals": {"process": "burst", "count": 10, "over": "5e-324s"}}, None),
        ({"arrivals": {"process": "poisson", "rate": "1e308/s", "stop": "1s"}}, "must be between 1e-09/s and 1e+09/s"),
        ({"replications": 10**12}, "replications: got 1000000000000; must be less than or equal to 10000"),
        ({"until": "1e308s"}, "until: got '1e308s'; must be at most 1e+09s (about 31 years)"),
        ({"queue": {"delivery": {}, "pollers": {"rate": "1e308/s"}}, "consumers": {
            "concurrency": 2, "service": {"dist": "constant", "value": "1s"}, "batch": {"size": 1}}},
         "queue.pollers.rate: got '1e308/s'; must be between 1e-09/s and 1e+09/s"),
    ],
)
def test_degenerate_times_and_rates_run_or_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, Any], message: str | None
) -> None:
    # Before: a subnormal until or burst span hung the run (a progress tick of zero seconds), a huge
    # rate overflowed the pollers' growth, an until of 1e308 s overflowed the time averages.
    path = scenario_file(tmp_path, **changes)
    if message is None:
        assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-figures"]) == 0
        assert "Traceback" not in capsys.readouterr().err
    else:
        assert message in one_error(capsys, "check", path)


def test_a_zero_visibility_timeout_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: with zero-time work that always fails, the message came back in the same instant, forever.
    path = scenario_file(tmp_path, queue={"delivery": {"visibility_timeout": "0s"}})
    assert "queue.delivery.visibility_timeout: got '0s'; must be at least 1ms" in one_error(capsys, "check", path)


# --- trace and empirical files -------------------------------------------------------------------


def test_a_device_as_a_trace_file_is_refused_before_it_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: /dev/zero was read to the end of memory (MemoryError traceback).
    path = scenario_file(tmp_path, arrivals={"process": "trace", "file": "/dev/zero"})
    line = one_error(capsys, "check", path)
    assert line.startswith(f"{path}: producers.0.arrivals.file: got '/dev/zero'; cannot read '/dev/zero' (it is a "
                           "character device, not a regular file); give a CSV file"), line


def test_a_folder_as_an_empirical_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario_file(tmp_path, service={"dist": "empirical", "file": "."})
    assert "(it is a folder, not a regular file)" in one_error(capsys, "check", path)


def test_a_fifo_as_a_trace_file_is_refused_without_waiting(tmp_path: Path) -> None:
    # Before: opening the FIFO blocked forever. The subprocess's timeout keeps the test from hanging.
    os.mkfifo(tmp_path / "arrivals.csv")
    path = scenario_file(tmp_path, arrivals={"process": "trace", "file": "arrivals.csv"})
    done = subprocess.run([sys.executable, "-m", "sim", "check", str(path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False)
    assert done.returncode == EXIT_BAD_INPUT
    assert done.stderr.count("\n") == 1
    assert "(it is a FIFO (named pipe), not a regular file)" in done.stderr


def test_a_huge_data_file_is_refused_by_its_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with open(tmp_path / "times.csv", "wb") as sparse:  # no disk used: a hole
        sparse.truncate(MAX_DATA_FILE_BYTES + 1)
    path = scenario_file(tmp_path, service={"dist": "empirical", "file": "times.csv"})
    line = one_error(capsys, "check", path)
    assert "(it holds 256 MiB, more than the 256 MiB qsim reads)" in line, line


def test_a_huge_scenario_file_is_refused_by_its_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as sparse:
        sparse.truncate(MAX_SCENARIO_BYTES + 1)
    assert one_error(capsys, "check", path) == (f"{path}: cannot read the scenario file (it holds 16 MiB, more "
                                                "than the 16 MiB qsim reads); check the path")
    assert "(it is a character device, not a regular file)" in one_error(capsys, "check", "/dev/zero")


def test_an_error_quotes_only_a_short_prefix_of_a_bad_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "s3cr3t-" * 2000
    (tmp_path / "arrivals.csv").write_text(f"time\n0.5\n{secret},1\n")
    path = scenario_file(tmp_path, arrivals={"process": "trace", "file": "arrivals.csv"})
    line = one_error(capsys, "check", path)
    assert f"row 3 of {str(tmp_path / 'arrivals.csv')!r} starts {secret[:40] + '...'!r}, not a number" in line
    assert secret[:41] not in line
    assert len(line) < 400


def test_a_percentile_whose_column_is_taken_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Found by the campaign: 9.99 and the always-reported 99.9 both make column latency_p999; the
    # summary then had two columns of one name and the run died in pandas (ValueError).
    path = scenario_file(tmp_path, report={"percentiles": [50, 9.99]})
    line = one_error(capsys, "run", path, "--out", tmp_path / "out")
    assert line == (f"{path}: report.percentiles.1: got 9.99; its column would be latency_p999, the column of "
                    "the 99.9th percentile (always reported); choose another percentile")
