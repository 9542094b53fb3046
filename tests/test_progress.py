"""The progress bar tells the truth: it covers the drain, and slow steps after the runs say so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim import cli
from sim.cli import main
from sim.experiments.replication import simulate_run
from sim.model.scenario import scenario_from_dict

BURST = {
    "name": "drain", "seed": 4, "engine": "simpy",
    "producers": [{"arrivals": {"process": "burst", "count": 30000, "over": "1s"}}],
    "consumers": {"concurrency": 100, "service": {"dist": "exponential", "mean": "50ms"}},
}  # fmt: skip
"""30,000 requests arrive within 1 s; 100 consumers drain them in ~15 s of simulated time."""


def test_progress_covers_the_drain_not_just_the_arrivals() -> None:
    """Progress was simulated time over the arrivals' horizon: 100 % one second into a 15 s drain.

    Now it is (arrivals' share of their horizon) x (1 + share of arrived requests resolved) / 2. The
    share resolved is estimated from 2,000 evenly spaced rows: within ~1 % of the truth (checked
    against the records at each report, 3 % allowed)."""
    reports: list[tuple[float, float]] = []
    run = simulate_run(scenario_from_dict(BURST), 4, 0, lambda now, share: reports.append((now, share)))
    columns = run.records.columns
    end = run.records.end_time
    assert end > 10  # the drain is most of the run
    assert len(reports) >= 5
    for now, share in reports:
        arrived = columns.arrival <= now
        resolved = float(np.mean(columns.finish[arrived] <= now)) if arrived.any() else 1.0
        expected = min(1.0, now / 1.0) * (1 + resolved) / 2
        assert share == pytest.approx(expected, abs=0.03), (now, share, expected)
    after_arrivals = [share for now, share in reports if 1.0 <= now <= end / 2]
    assert after_arrivals, reports
    assert max(after_arrivals) < 0.85  # half-way through the drain it is not "done"
    shares = [share for _, share in reports]
    assert shares == sorted(shares)  # never goes back


def test_the_compiled_engine_reports_the_same_share() -> None:
    """The compiled engine reports between batches of 2^20 events, with the SimPy engine's formula: the
    share resolved is exact there (requests in the system are counted), so 1 % is allowed."""
    burst = {**BURST, "engine": "compiled", "producers": [{"arrivals": {"process": "burst", "count": 600_000,
                                                                        "over": "1s"}}],
             "consumers": {"concurrency": 100, "service": {"dist": "exponential", "mean": "2.5ms"}}}
    reports: list[tuple[float, float]] = []
    run = simulate_run(scenario_from_dict(burst), 4, 0, lambda now, share: reports.append((now, share)))
    columns = run.records.columns
    assert run.records.engine == "compiled"
    assert len(reports) >= 1
    for now, share in reports:
        arrived = columns.arrival <= now
        resolved = float(np.mean(columns.finish[arrived] <= now))
        assert share == pytest.approx(min(1.0, now) * (1 + resolved) / 2, abs=0.01), (now, share)
    shares = [share for _, share in reports]
    assert shares == sorted(shares)


def test_slow_steps_after_a_long_run_get_their_own_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "drain.yaml"
    path.write_text("# A burst that drains.\nname: drain\nproducers:\n"
                    "  - arrivals: {process: burst, count: 2000, over: 1s}\n"
                    "consumers: {concurrency: 100, service: {dist: exponential, mean: 50ms}}\n")
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out)]) == 0
    assert capsys.readouterr().err == ""  # a quick run shows no bar and no steps
    shown_at_once = cli._ProgressBar.__init__

    def without_delay(self: cli._ProgressBar, delay: float, what: str = "") -> None:
        shown_at_once(self, 0.0, what)  # as if the run had lasted minutes: the bar is drawn at once

    monkeypatch.setattr(cli._ProgressBar, "__init__", without_delay)
    assert main(["run", str(path), "--out", str(out)]) == 0
    lines = [line.rsplit("\r", 1)[-1] for line in capsys.readouterr().err.split("\n")]  # the bar redraws with \r
    steps = [line for line in lines if line.startswith("qsim: ")]
    assert steps == ["qsim: computing the summary...", "qsim: writing requests.parquet...",
                     "qsim: drawing figures..."]


def test_no_requests_skips_the_request_tables_and_old_files_are_removed(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "retry.yaml"
    path.write_text("# Retries, so there is a jobs table too.\nname: retry\nproducers:\n"
                    "  - arrivals: {process: poisson, rate: 50/s, count: 200}\n    timeout: 50ms\n"
                    "    retry: {attempts: 2}\n"
                    "consumers: {concurrency: 2, service: {dist: exponential, mean: 30ms}}\n")
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--no-figures"]) == 0
    assert (out / "requests.parquet").exists()
    assert (out / "jobs.parquet").exists()
    for old in ("requests.csv.gz", "jobs.csv.gz"):
        (out / old).write_bytes(b"from an older qsim")
    assert main(["run", str(path), "--out", str(out), "--no-figures", "--no-requests"]) == 0
    capsys.readouterr()
    left = sorted(p.name for p in out.iterdir() if p.is_file())
    assert left == ["estimates.csv", "manifest.json", "report.html", "report.md", "summary.csv", "timeseries.csv"]
