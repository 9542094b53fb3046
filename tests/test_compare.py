"""qsim compare: the same random numbers in every arm, differences with paired tests, overlays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sim.cli import EXIT_BAD_INPUT
from sim.experiments.compare import arms_from_files, arms_from_vary, compare
from sim.experiments.executors import InProcess
from sim.experiments.runner import Runner
from tests.helpers import Cli

# A burst into a small pool with a 1 s client timeout: FIFO serves dead requests, LIFO live ones.
BURST = """\
# FIFO or LIFO under a burst with client timeouts (a small version of fifo-vs-lifo-burst).
name: small-burst
seed: 9
replications: 6
producers:
  - name: steady
    arrivals: {process: poisson, rate: 40/s, stop: 12s}
    timeout: 1s
  - name: burst
    arrivals: {process: burst, count: 600, over: 1s, at: 3s}
    timeout: 1s
queue: {discipline: fifo, on_expired: serve}
consumers:
  concurrency: 5
  service: {dist: exponential, mean: 100ms}
report: {bucket: 500ms}
"""


@pytest.fixture
def burst(tmp_path: Path) -> Path:
    path = tmp_path / "small-burst.yaml"
    path.write_text(BURST)
    return path



def test_vary_compares_disciplines_on_common_random_numbers(burst: Path) -> None:
    arms = arms_from_vary(burst, "queue.discipline=fifo,lifo", {})
    comparison = compare(arms, Runner(InProcess(), 9), 6)
    table = comparison.table.set_index("metric")
    fifo, lifo = "queue.discipline=fifo", "queue.discipline=lifo"
    # Same arrivals in both arms: offered is identical in every replication, the difference 0, p = 1.
    assert table.loc["offered", f"{lifo} diff"] == 0
    assert table.loc["offered", f"{lifo} p"] == 1.0
    offered = [[o.summary["offered"].iloc[0] for o in comparison.outcomes[i]] for i in (0, 1)]
    assert offered[0] == offered[1]
    # LIFO keeps goodput through the burst; the paired test sees it clearly.
    assert table.loc["goodput", f"{lifo} mean"] > table.loc["goodput", f"{fifo} mean"]
    assert table.loc["goodput", f"{lifo} p"] < 0.001
    assert table.loc["goodput", f"{lifo} sig"] == "***"
    assert table.loc["timeout_rate", f"{lifo} diff"] < 0
    assert "wall_time" not in table.index


def test_pairing_removes_the_noise_both_arms_share(burst: Path) -> None:
    """Common random numbers make the arms' replications move together: the paired test is much more
    sensitive than a Welch test on the same numbers would be (for throughput, whose level is set
    mostly by the shared arrivals and demands)."""
    arms = arms_from_vary(burst, "queue.discipline=fifo,lifo", {})
    comparison = compare(arms, Runner(InProcess(), 9), 6)
    a, b = (np.array([o.summary["throughput"].iloc[0] for o in comparison.outcomes[i]]) for i in (0, 1))
    assert np.corrcoef(a, b)[0, 1] > 0.9
    assert (b - a).std(ddof=1) < 0.5 * a.std(ddof=1)


def test_compare_files_from_the_command_line(burst: Path, tmp_path: Path, qsim: Cli) -> None:
    other = tmp_path / "small-burst-lifo.yaml"
    other.write_text(BURST.replace("name: small-burst", "name: small-burst-lifo").replace("fifo", "lifo"))
    out = tmp_path / "cmp"
    code, stdout, err = qsim("compare", burst, other, "--out", out, "--workers", "1", "--replications", "4")
    assert code == 0, err
    assert "4 replications each, seed 9" in stdout
    assert "small-burst-lifo vs small-burst" in stdout
    assert "***" in stdout or "**" in stdout
    table = pd.read_csv(out / "comparison.csv").set_index("metric")
    assert table.loc["goodput", "small-burst-lifo diff"] > 0
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["arm"]) == {"small-burst", "small-burst-lifo"}
    for name in ("latency-cdf.png", "timeseries.png"):
        assert (out / "figures" / name).stat().st_size > 10_000
    assert (out / "report.html").stat().st_size > 0
    code, stdout, _ = qsim("compare", burst, other, "--out", out, "--workers", "1", "--replications", "4",
                           "--json", "--no-figures")
    assert code == 0
    assert json.loads(stdout)[0]["metric"] == "offered"


def test_arms_from_files_share_the_first_seed(burst: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(BURST.replace("seed: 9", "seed: 1").replace("name: small-burst", "name: other"))
    arms = arms_from_files([burst, other], {})
    assert arms.labels == ["small-burst", "other"]
    assert arms.name == "compare-small-burst-vs-other"
    comparison = compare(arms, Runner(InProcess(), arms.points[0].scenario.seed), 2)
    assert comparison.seed == 9
    a, b = ([o.summary["offered"].iloc[0] for o in comparison.outcomes[i]] for i in (0, 1))
    assert a == b  # both ran on seed 9, whatever their files say


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{burst}"], "compare: give two or more scenario files, or one with --vary key=v1,v2"),
        (["{burst}", "{burst}", "--vary", "queue.discipline=fifo,lifo"], "--vary queue.discipline=fifo,lifo: "
         "compares values of one scenario; give one scenario file (got 2)"),
        (["{burst}", "--vary", "queue.discipline=fifo"], "give two or more values to compare"),
        (["{burst}", "--vary", "queue.discipline=fifo,lofi"], "sweep.queue.discipline: got 'lofi'; did you mean"),
    ],
)
def test_bad_comparisons_are_one_line(
    burst: Path, qsim: Cli, args: list[str], message: str
) -> None:
    code, _, err = qsim("compare", *[a.format(burst=burst) for a in args])
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1
    assert err.startswith("qsim: error: ")
    assert message in err, err


def test_significance_marks_follow_scipy(burst: Path) -> None:
    arms = arms_from_vary(burst, "queue.discipline=fifo,lifo", {})
    comparison = compare(arms, Runner(InProcess(), 9), 5)
    row = comparison.table.set_index("metric").loc["latency_p50"]
    a, b = ([o.summary["latency_p50"].iloc[0] for o in comparison.outcomes[i]] for i in (0, 1))
    assert row["queue.discipline=lifo p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)


def test_arms_with_different_arrivals_are_not_paired(burst: Path, tmp_path: Path, qsim: Cli) -> None:
    """Two files whose burst differs in size: replication r of one arm is no pair for replication r of
    the other, so the table must not claim common random numbers and tests with Welch's t-test."""
    other = tmp_path / "bigger.yaml"
    other.write_text(BURST.replace("count: 600", "count: 700").replace("name: small-burst", "name: bigger"))
    arms = arms_from_files([burst, other], {})
    assert not arms.common_arrivals
    comparison = compare(arms, Runner(InProcess(), 9), 6)
    assert not comparison.paired
    table = comparison.table.set_index("metric")
    a, b = (np.array([o.summary["latency_mean"].iloc[0] for o in comparison.outcomes[i]]) for i in (0, 1))
    assert table.loc["latency_mean", "bigger p"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert table.loc["latency_mean", "bigger p"] != pytest.approx(stats.ttest_rel(a, b).pvalue)
    code, stdout, err = qsim("compare", burst, other, "--replications", "6", "--out", tmp_path / "o",
                             "--no-figures")
    assert code == 0, err
    flat = " ".join(stdout.split())  # the note is wrapped to the terminal's width
    assert "common random numbers" not in flat.replace("no common random numbers", "")
    assert "arrivals differ" in flat
    assert "Welch" in flat
    assert " paired t-test" not in flat
    # The same file twice (or a --vary of the discipline) is paired as before.
    assert arms_from_files([burst, burst], {}).common_arrivals
    assert arms_from_vary(burst, "queue.discipline=fifo,lifo", {}).common_arrivals
    assert not arms_from_vary(burst, "producers.0.arrivals.rate=40/s,50/s", {}).common_arrivals


def test_comparison_intervals_stay_within_the_metrics_range(burst: Path) -> None:
    comparison = compare(arms_from_vary(burst, "queue.discipline=fifo,lifo", {}), Runner(InProcess(), 9), 3)
    table = comparison.table.set_index("metric")
    for label in comparison.arms.labels:
        assert (table[f"{label} ci_low"].dropna() >= 0).all()
        shares = table.loc[["timeout_rate", "utilization", "starvation"], f"{label} ci_high"]
        assert (shares <= 1).all()
