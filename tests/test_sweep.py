"""Sweeps: the grid, its validation, the tidy summary, common random numbers and the stopping rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sim
from sim.analysis.estimates import estimates_table, half_width
from sim.cli import EXIT_BAD_INPUT
from sim.experiments.runner import SweepResult, sweep
from sim.experiments.sweep import load_experiment
from tests.helpers import ROOT, Cli

SWEEP = """\
# A small M/M/2 sweep with a client timeout, for tests.
name: small-sweep
seed: 3
replications: 3
producers:
  - name: clients
    arrivals: {process: poisson, rate: 50/s, count: 400}
    timeout: 200ms
consumers:
  concurrency: 2
  service: {dist: exponential, mean: 30ms}
report: {bucket: 1s}
sweep:
  producers.0.arrivals.rate: [30/s, 50/s, 60/s]
  queue.discipline: [fifo, lifo]
"""

RATE = "producers.0.arrivals.rate"


@pytest.fixture
def sweep_file(tmp_path: Path) -> Path:
    path = tmp_path / "small-sweep.yaml"
    path.write_text(SWEEP)
    return path



def one_error_line(err: str) -> str:
    assert err.count("\n") == 1, err
    assert err.startswith("qsim: error: "), err
    return err.removeprefix("qsim: error: ").strip()


# --- the grid ----------------------------------------------------------------------------------


def test_the_points_are_the_grid_validated(sweep_file: Path) -> None:
    experiment = load_experiment(sweep_file)
    assert experiment.axes == [RATE, "queue.discipline"]
    assert [p.values for p in experiment.points] == [
        {RATE: rate, "queue.discipline": discipline} for rate in (30.0, 50.0, 60.0) for discipline in ("fifo", "lifo")
    ]
    assert experiment.points[3].label == f"{RATE}=50/s, queue.discipline=lifo"
    point = experiment.points[5]
    assert point.scenario.producers[0].arrivals.rate == 60.0
    assert point.scenario.queue is not None
    assert point.scenario.queue.discipline == "lifo"
    # The same file is still a plain scenario for load_scenario: its base.
    base = sim.load_scenario(sweep_file)
    assert base.producers[0].arrivals.rate == 50.0


def test_sweep_option_adds_an_axis_or_replaces_one(sweep_file: Path) -> None:
    grid = load_experiment(sweep_file, sweep=["consumers.concurrency=1,2"])
    assert len(grid.points) == 12
    assert grid.axes[-1] == "consumers.concurrency"
    replaced = load_experiment(sweep_file, sweep=[f"{RATE}=10/s"])
    assert [p.values[RATE] for p in replaced.points] == [10.0, 10.0]
    plain = load_experiment(ROOT / "scenarios/burst-2k-vs-20k.yaml", sweep=["consumers.concurrency=100, 200"])
    assert [p.values["consumers.concurrency"] for p in plain.points] == [100, 200]


def test_distributions_and_unbounded_can_be_swept(sweep_file: Path) -> None:
    services = "[{dist: exponential, mean: 30ms}, {dist: constant, value: 30ms}]"
    sweep_file.write_text(SWEEP + f"  consumers.service: {services}\n  queue.capacity: [5, unbounded]\n")
    result = sweep(load_experiment(sweep_file, sweep=[f"{RATE}=50/s", "queue.discipline=fifo"]), replications=2)
    assert isinstance(result, SweepResult)
    means = result.estimates[result.estimates["stat"] == "mean"]
    means = means[means["producer"] == "all"]
    assert means["consumers.service"].tolist() == ["{dist: exponential, mean: 30ms}"] * 2 + [
        "{dist: constant, value: 30ms}"] * 2  # a mapping is shown as written (its YAML)
    assert means["queue.capacity"].isna().tolist() == [False, True, False, True]  # unbounded is empty
    bounded = means[means["queue.capacity"] == 5]
    assert (bounded["rejected"] > 0).all()  # 50/s into 2 x 30 ms with room for 5: some are turned away
    assert (means[means["queue.capacity"].isna()]["rejected"] == 0).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sweep_option": f"{RATE}=10/s,-5/s"}, f"sweep.{RATE}: got '-5/s'; must be greater than 0"),
        ({"file": "  queue.disciplin: [fifo]\n"}, "sweep.queue.disciplin: unknown key; did you mean 'discipline'"),
        ({"file": "  seed: [1, 2]\n"}, "sweep.seed: cannot be swept"),
        ({"file": "  queue.capacity: 5\n"}, "sweep.queue.capacity: got 5; must be a non-empty list"),
        ({"file": "  consumers.concurrency: [1, 1]\n"}, "sweep.consumers.concurrency: 1 appears twice"),
        ({"sweep_option": "consumers.concurrency="}, "--sweep 'consumers.concurrency=': write key.path=v1,v2"),
    ],
)
def test_a_bad_sweep_is_one_line_naming_the_file_and_the_key(
    sweep_file: Path, tmp_path: Path, qsim: Cli, change: dict[str, str], message: str
) -> None:
    args: list[str | Path] = ["run", sweep_file, "--out", tmp_path / "out"]
    if "file" in change:
        sweep_file.write_text(SWEEP + change["file"])
    else:
        args += ["--sweep", change["sweep_option"]]
    code, stdout, err = qsim(*args)
    assert code == EXIT_BAD_INPUT
    assert stdout == ""
    line = one_error_line(err)
    assert message in line, line
    if "file" in change:
        assert line.startswith(f"{sweep_file}: ")
    assert not (tmp_path / "out").exists()  # nothing written before everything is valid


def test_check_validates_every_point_and_a_mistyped_key(
    sweep_file: Path, tmp_path: Path, qsim: Cli
) -> None:
    code, stdout, _ = qsim("check", sweep_file)
    assert code == 0
    assert stdout == (f"{sweep_file}: ok (small-sweep, 1 producer(s), sweep of 6 points, ~400 requests per run, "
                      "<1 MB, <1 s)\n")
    # Each value is fine alone; one combination is not: warmup 5s with until 4s.
    joint = tmp_path / "joint.yaml"
    joint.write_text(SWEEP.replace("seed: 3", "seed: 3\nuntil: 10s").replace(
        "  queue.discipline: [fifo, lifo]", "  warmup: [1s, 5s]\n  until: [4s, 20s]"))
    code, _, err = qsim("check", joint)
    assert code == EXIT_BAD_INPUT
    line = one_error_line(err)
    assert line.startswith(f"{joint}: sweep point {RATE}=30/s, warmup=5s, until=4s: warmup: got "), line
    typo = tmp_path / "typo.yaml"
    typo.write_text(SWEEP.replace("sweep:", "swep:"))
    code, _, err = qsim("check", typo)
    line = one_error_line(err)
    assert line.startswith(f"{typo}: swep: unknown key; did you mean 'sweep'? allowed here: name, "), line
    assert line.endswith(", sweep, precision, plan, evaluate"), line


# --- running a sweep ----------------------------------------------------------------------------


def test_run_writes_one_tidy_summary_with_intervals_per_point(
    sweep_file: Path, tmp_path: Path, qsim: Cli
) -> None:
    out = tmp_path / "out"
    code, stdout, err = qsim("run", sweep_file, "--out", out, "--workers", "1", "--no-figures")
    assert code == 0, err
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns[:5]) == ["scenario", "point", RATE, "queue.discipline", "replication"]
    assert len(summary) == 6 * 3  # 3 replications per point
    assert summary["replication"].dtype == np.int64
    estimates = pd.read_csv(out / "estimates.csv")
    assert list(estimates.columns[:8]) == ["scenario", "point", RATE, "queue.discipline", "producer", "stage", "stat",
                                           "runs"]
    assert len(estimates) == 6 * 3  # mean / ci_low / ci_high per point
    assert (estimates["runs"] == 3).all()
    means = estimates[estimates["stat"] == "mean"].set_index("point")
    for point, group in summary.groupby("point"):
        assert means.loc[point, "goodput"] == pytest.approx(group["goodput"].mean())
        assert means.loc[point, "queue.discipline"] == group["queue.discipline"].iloc[0]
    series = pd.read_csv(out / "timeseries.csv")
    assert {"point", RATE, "queue.discipline", "replication", "queue_length"} <= set(series.columns)
    assert series.groupby(["point", "replication"]).ngroups == 18
    manifest = json.loads((out / "manifest.json").read_text())
    assert [p["values"][RATE] for p in manifest["points"]] == [30.0, 30.0, 50.0, 50.0, 60.0, 60.0]
    assert manifest["runs_computed"] == 18
    assert manifest["seed"] == 3
    for name in ("requests.parquet", "report.md", "report.html"):
        assert (out / name).stat().st_size > 0
    assert "sweep of 6 points" in stdout
    first_block = stdout.split("\n\n")[0]  # wide tables wrap into blocks, each repeating the swept values
    assert first_block.count("fifo") == 3
    code, stdout, _ = qsim("run", sweep_file, "--out", out, "--workers", "1", "--no-figures", "--json")
    printed = json.loads(stdout)
    assert (len(printed["summary"]), len(printed["estimates"])) == (len(summary), len(estimates))


def test_a_points_numbers_do_not_depend_on_which_other_points_ran(sweep_file: Path) -> None:
    whole = sweep(load_experiment(sweep_file))
    alone = sweep(load_experiment(sweep_file, sweep=[f"{RATE}=60/s", "queue.discipline=lifo"]))
    assert isinstance(whole, SweepResult)
    assert isinstance(alone, SweepResult)

    def rows(result: SweepResult, point: int) -> pd.DataFrame:
        frame = result.summary[result.summary["point"] == point]
        return frame.drop(columns=["point", "wall_time"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(rows(whole, 5), rows(alone, 0))
    # Common random numbers: every point saw the same arrival stream, so at the same rate
    # FIFO and LIFO were offered exactly the same requests in each replication.
    by_point = whole.summary.set_index(["point", "replication"])["offered"]
    for replication in range(3):
        assert by_point[(4, replication)] == by_point[(5, replication)]


def test_the_stopping_rule_adds_replications_until_the_interval_is_tight(sweep_file: Path) -> None:
    """Per-run mean latency has a coefficient of variation of ~0.11 at 30/s (rho 0.45) and ~0.42 at
    60/s (rho 0.9, 400 requests a run). For a half-width of 10 % of the mean that needs about
    (2.0 x 0.11 / 0.1)^2 = 5 and (2.0 x 0.42 / 0.1)^2 = 70 replications: the rule must stop
    each point on its own, far apart, and never before its interval is that tight."""

    def run_with(relative: float) -> tuple[SweepResult, list[int]]:
        path = sweep_file.with_name(f"precise-{relative}.yaml")
        path.write_text(SWEEP + f"precision: {{metric: latency_mean, relative: {relative}, max_replications: 150}}\n")
        result = sweep(load_experiment(path, sweep=[f"{RATE}=30/s,60/s", "queue.discipline=fifo"]))
        assert isinstance(result, SweepResult)
        return result, [len(result.outcomes[p.index]) for p in result.points]

    tight, counts = run_with(0.1)
    for point, count in zip(tight.points, counts, strict=True):
        values = np.array([o.summary["latency_mean"].iloc[0] for o in tight.outcomes[point.index]])
        assert count < 150
        assert half_width(values) <= 0.1 * values.mean()
    assert 3 <= counts[0] <= 20, counts
    assert 35 <= counts[1] <= 140, counts
    summary = tight.summary
    assert summary.groupby("point").size().tolist() == counts  # every replication is in the summary
    _, loose = run_with(0.3)
    assert loose[0] <= counts[0]
    assert loose[1] < counts[1] / 3


def test_x_must_be_a_swept_field(sweep_file: Path, qsim: Cli) -> None:
    code, _, err = qsim("run", sweep_file, "--x", "consumers.concurrency")
    assert code == EXIT_BAD_INPUT
    assert one_error_line(err).startswith("--x consumers.concurrency: not a swept field; give one of: ")


# --- the bundled sweep ----------------------------------------------------------------------------


def test_load_curve_scenario_shows_lifo_keeping_goodput_past_capacity(
    tmp_path: Path, qsim: Cli
) -> None:
    """The shipped load curve at reduced size: 20 s instead of 60, two loads, three replications."""
    out = tmp_path / "curve"
    code, _, err = qsim("run", ROOT / "scenarios/load-curve-fifo-vs-lifo.yaml", "--out", out,
                        "--set", "producers.0.arrivals.stop=20s", "--replications", "3",
                        "--sweep", f"{RATE}=70/s,120/s", "--workers", "1")
    assert code == 0, err
    estimates = pd.read_csv(out / "estimates.csv")
    means = estimates[estimates["stat"] == "mean"].set_index([RATE, "queue.discipline"])
    # Past capacity (120/s into ~100/s) FIFO serves requests that are already dead; LIFO does not.
    assert means.loc[(120.0, "lifo"), "goodput"] > 2 * means.loc[(120.0, "fifo"), "goodput"]
    assert means.loc[(120.0, "fifo"), "timeout_rate"] > 0.5 > means.loc[(120.0, "lifo"), "timeout_rate"]
    # Below capacity the two are the same on average (same arrivals, same work).
    assert means.loc[(70.0, "lifo"), "throughput"] == pytest.approx(means.loc[(70.0, "fifo"), "throughput"], rel=0.01)
    assert (out / "figures" / "curves.png").stat().st_size > 10_000
    assert (out / "figures" / "latency-cdf.png").stat().st_size > 10_000


def test_curves_draw_a_cost_column_only_when_the_model_has_one() -> None:
    from sim.output.curves import curves_figure

    rows = []
    for point, rate in enumerate((10.0, 20.0)):
        for replication in range(2):
            rows.append({"scenario": "s", "point": point, RATE: rate, "replication": replication, "producer": "all",
                         "latency_p50": 0.1, "latency_p99": 0.5, "timeout_rate": 0.0, "throughput": rate,
                         "goodput": rate, "utilization": rate / 40, "cost_usd": 0.01 * rate + 0.001 * replication})
    per_run = pd.DataFrame(rows)

    def panels(frame: pd.DataFrame) -> list[str]:
        figure = curves_figure(estimates_table(frame, keys=["point", RATE]), [RATE], RATE, "t")
        return [axes.get_title() for axes in figure.axes if axes.get_visible()]

    assert panels(per_run)[-1] == "cost (USD)"
    assert len(panels(per_run)) == 7
    assert "cost (USD)" not in panels(per_run.assign(cost_usd=np.nan))
