"""What qsim shows a reader: numbers in their units, tables that fit a terminal, figures that show the point.

Each test here pins one way output used to mislead: three-decimal means of counts, a share's
difference printed as a bare number, a plan answer without its unit, tables 200 columns wide,
a burst's arrival spike flattening the throughput panel, legends over the data or listing
outcomes that never happened, pooled latency in a priority scenario, unlabelled sweep axes.
"""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import sim
from sim.cli import main
from sim.experiments.runner import SweepResult, sweep
from sim.experiments.sweep import experiment_from_dict
from sim.experiments.targets import Target
from sim.output import curves, plots, report
from sim.output.formats import (
    field_kind,
    format_compact,
    format_difference,
    format_field,
    format_value,
)
from sim.output.grid import render
from sim.output.tables import target_value
from tests.helpers import ROOT

BURST: dict[str, Any] = {
    "name": "small-burst",
    "seed": 1,
    "producers": [{"name": "clients", "arrivals": {"process": "burst", "count": 400, "over": "100ms"},
                   "timeout": "1s"}],
    "consumers": {"concurrency": 20, "service": {"dist": "exponential", "mean": "100ms"}},
    "report": {"bucket": "100ms"},
}
PRIORITY: dict[str, Any] = {
    "name": "two-classes",
    "seed": 2,
    "until": "60s",
    "producers": [
        {"name": "high", "priority": 0, "arrivals": {"process": "poisson", "rate": "4/s"}},
        {"name": "low", "priority": 1, "arrivals": {"process": "poisson", "rate": "4/s"}},
    ],
    "queue": {"discipline": "priority"},
    "consumers": {"concurrency": 1, "service": {"dist": "exponential", "mean": "110ms"}},
}
LOAD: dict[str, Any] = {
    "name": "load",
    "seed": 3,
    "replications": 2,
    "until": "20s",
    "producers": [{"name": "clients", "arrivals": {"process": "poisson", "rate": "50/s"}, "timeout": "1s"}],
    "consumers": {"concurrency": 5, "service": {"dist": "exponential", "mean": "50ms"}},
    "sweep": {"producers.0.arrivals.rate": ["60/s", "90/s", "110/s"], "queue.discipline": ["fifo", "lifo"]},
}
LONG_RUN = re.compile(r"\d{10,}")


# --- numbers in their units ---------------------------------------------------------------------


@pytest.mark.parametrize(("column", "value", "shown"), [
    ("offered", 20_000.0, "20,000"),
    ("completed", 1467.4, "1,467.4"),
    ("late", 516.0, "516"),
    ("max_queue", 390.2, "390.2"),
    ("cold_starts", 12.25, "12.2"),
    ("mean_queue", 644.674, "644.7"),
    ("timeout_rate", 0.3083, "30.83%"),
    ("latency_p99", 4.44, "4.44s"),
    ("goodput", 2033.2, "2,033.2/s"),
    ("wasted_work", 3396.7, "3,396.7 s"),
    ("cost_usd", 0.0040231, "$0.00402"),
    ("anything_else", 0.30000000000000004, "0.3"),
])
def test_every_value_is_shown_in_its_unit_at_a_sensible_precision(column: str, value: float, shown: str) -> None:
    assert format_value(column, value) == shown


def test_differences_of_shares_are_percentage_points() -> None:
    assert format_difference("timeout_rate", 0.032) == "+3.2 pp"
    assert format_difference("utilization", -0.0018) == "-0.18 pp"
    assert format_difference("latency_p99", -0.35) == "-350ms"
    assert format_difference("completed", 3838.8) == "+3,838.8"
    assert format_difference("offered", 0.0) == "±0"


def test_fields_are_shown_in_the_unit_of_the_scenario_field() -> None:
    scenario = sim.load_scenario(ROOT / "scenarios/load-curve-fifo-vs-lifo.yaml")
    assert field_kind(scenario, "producers.0.arrivals.rate") == "rate"
    assert field_kind(scenario, "consumers.concurrency") == "integer"
    assert field_kind(scenario, "producers.0.timeout") == "duration"
    assert field_kind(scenario, "queue.discipline") == "text"
    assert format_field("rate", 9.55234) == "9.55/s"
    assert format_field("integer", 4480.0) == "4,480"
    assert format_field("duration", 1.5) == "1.5s"


def test_targets_are_shown_in_the_unit_they_were_written_in() -> None:
    assert target_value(Target("timeout_rate", "<=", 0.01, "timeout_rate<=1%")) == "1%"
    assert target_value(Target("timeout_rate", "<=", 0.01, "timeout_rate<=0.01")) == "1%"  # a share, like its mean
    assert target_value(Target("latency_p99", "<=", 2.0, "latency_p99<=2s")) == "2s"
    assert target_value(Target("goodput", ">=", 800.0, "goodput>=800/s")) == "800/s"
    assert format_compact("latency_p99", 0.5) == "500ms"


@given(st.sampled_from(["offered", "timeout_rate", "latency_p99", "goodput", "wasted_work", "cost_usd", "mean_queue",
                        "probe", "x"]),
       st.floats(allow_nan=False, allow_infinity=False, min_value=-1e18, max_value=1e18))
def test_no_number_is_shown_with_ten_digits_in_a_row(column: str, value: float) -> None:
    assert not LONG_RUN.search(format_value(column, value)), format_value(column, value)
    assert not LONG_RUN.search(format_difference(column, value))


# --- tables that fit a terminal -------------------------------------------------------------------


def test_a_wide_table_wraps_into_blocks_that_repeat_the_keys() -> None:
    frame = pd.DataFrame({"metric": ["a", "b"], **{f"arm {i}": ["2.23s [2.20s, 2.26s]"] * 2 for i in range(8)}})
    text = render(frame, ["metric"], width=100)
    assert max(len(line) for line in text.splitlines()) <= 100
    blocks = text.split("\n\n")
    assert len(blocks) > 1
    assert all(block.splitlines()[1].startswith("a ") for block in blocks)
    assert sum(block.splitlines()[0].count("arm") for block in blocks) == 8  # every column shown once


def _lines(stdout: str) -> list[str]:
    return stdout.splitlines()


@pytest.mark.parametrize("command", [
    ["run", "scenarios/load-curve-fifo-vs-lifo.yaml", "--replications", "2", "--set", "until=20s"],
    ["run", "scenarios/direct-vs-queue.yaml", "--set", "producers.0.arrivals.count=2000"],
    ["run", "scenarios/retry-storm.yaml", "--set", "until=45s"],
    ["compare", "scenarios/load-curve-fifo-vs-lifo.yaml", "--vary", "queue.discipline=fifo,lifo,adaptive-lifo",
     "--set", "producers.0.arrivals.rate=105/s", "--set", "until=20s", "--replications", "3"],
    ["compare", "scenarios/encore-fifo-vs-lifo.yaml", "scenarios/encore-priority.yaml", "scenarios/encore-red.yaml",
     "--replications", "2"],
], ids=["load-curve", "direct-vs-queue", "retry-storm", "compare-vary", "compare-files"])
def test_bundled_sweeps_and_comparisons_fit_100_columns(command: list[str], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    assert main([*command, "--out", str(tmp_path / "out"), "--no-figures", "--workers", "1"]) == 0
    lines = _lines(capsys.readouterr().out)
    assert len(lines) > 5
    too_long = [line for line in lines if len(line) > 100]
    assert too_long == []


def test_a_comparison_hides_idle_metrics_and_metrics_picks_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    base = ["compare", "scenarios/fifo-vs-lifo-burst.yaml", "--vary", "queue.discipline=fifo,lifo",
            "--replications", "2", "--workers", "1", "--no-figures"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    rows = [line.split()[0] for line in _lines(capsys.readouterr().out) if line and not line.startswith(" ")]
    assert "late" in rows
    for idle in ("rejected", "dropped", "failed", "cost_usd", "attempts"):  # nothing of the kind happens here
        assert idle not in rows
    assert main([*base, "--out", str(tmp_path / "b"), "--metrics", "goodput,timeout_rate"]) == 0
    stdout = capsys.readouterr().out
    shown = [line.split()[0] for line in _lines(stdout) if line.startswith(("goodput", "timeout_rate", "late"))]
    assert shown == ["goodput", "timeout_rate"]
    assert re.search(r"timeout_rate\s.*[+-]\d+(\.\d+)? pp", stdout)  # a share's difference in points


def test_unknown_metrics_are_refused_before_anything_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out"
    code = main(["run", "scenarios/load-curve-fifo-vs-lifo.yaml", "--metrics", "latncy_p99", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "--metrics" in err
    assert "'latncy_p99'" in err
    assert "did you mean 'latency_p99'" in err
    assert not out.exists()


def test_a_plan_answers_in_the_unit_of_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mm1.yaml"
    path.write_text("name: mm1\nseed: 4\nuntil: 200s\nproducers:\n  - arrivals: {process: poisson, rate: 5/s}\n"
                    "consumers:\n  concurrency: 1\n  service: {dist: exponential, mean: 100ms}\n")
    code = main(["plan", str(path), "--maximize", "producers.0.arrivals.rate", "--min", "1/s", "--max", "9/s",
                 "--target", "wait_mean<=300ms", "--tolerance", "0.5", "--replications", "3",
                 "--out", str(tmp_path / "p"), "--workers", "1", "--no-figures"])
    stdout = capsys.readouterr().out
    assert code == 0
    answer = stdout.splitlines()[1]
    assert re.fullmatch(r"  \d+(\.\d+)?/s \(the boundary is within \d+(\.\d+)?/s of it: \d+(\.\d+)?/s .*\)", answer)
    assert "target <= 300ms" in stdout
    assert not re.search(r"\d\.\d{4,}", stdout)  # no float tails anywhere
    assert all(len(line) <= 100 for line in stdout.splitlines())


# --- figures ---------------------------------------------------------------------------------------


def _run(data: dict[str, Any]) -> sim.Result:
    return sim.run(sim.scenario_from_dict(copy.deepcopy(data)))


def _legend_texts(axes: Axes) -> list[str]:
    legend = axes.get_legend()
    return [] if legend is None else [text.get_text() for text in legend.get_texts()]


def _no_legend_covers_data(figure: Figure) -> None:
    FigureCanvasAgg(figure).draw()
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    for axes in figure.axes:
        legend = axes.get_legend()
        if legend is not None and axes.get_visible():
            assert not legend.get_window_extent(renderer).overlaps(axes.get_window_extent(renderer)), axes.get_title()


def test_a_bursts_arrivals_do_not_flatten_the_throughput_panel() -> None:
    result = _run(BURST)
    figure = report.run_figures(result)["timeseries"]
    series = result.runs[0].timeseries
    bucket = series.attrs["bucket"]
    throughput = next(a for a in figure.axes if "served/s (throughput)" in _legend_texts(a))
    assert "arrivals/s" not in _legend_texts(throughput)
    peak_served = float(series["served"].max()) / bucket
    assert float(series["arrivals"].max()) / bucket > 5 * peak_served  # the spike is there...
    assert throughput.get_ylim()[1] < 1.5 * peak_served  # ...but not on this axis
    _no_legend_covers_data(figure)


def test_legends_list_only_outcomes_that_occur_and_never_cover_data() -> None:
    result = _run(BURST)
    present = [o for o in plots.PLOTTED_OUTCOMES if result.summary.iloc[0][o] > 0]
    assert set(present) == {"completed", "late"}
    figures = report.run_figures(result)
    assert _legend_texts(figures["outcomes"].axes[0]) == present
    quiet = _run({**BURST, "producers": [{**BURST["producers"][0], "timeout": "1h"}]})
    latency = report.run_figures(quiet)["latency"]
    assert not any("late" in text for text in _legend_texts(latency.axes[0]))
    for figure in figures.values():
        _no_legend_covers_data(figure)


def test_priority_classes_each_get_their_own_latency_curve() -> None:
    figure = report.run_figures(_run(PRIORITY))["latency"]
    labels = _legend_texts(figure.axes[1])
    assert {"high: latency", "low: latency", "high: wait", "low: wait"} <= set(labels)
    assert any(text.startswith("high p99") for text in _legend_texts(figure.axes[0]))


def test_a_latency_spanning_decades_is_drawn_on_a_log_axis() -> None:
    latency = np.array([0.01] * 900 + [30.0] * 10)
    assert plots.wide_range(latency)
    assert not plots.wide_range(np.linspace(1, 5, 100))


@pytest.fixture(scope="module")
def load_sweep() -> SweepResult:
    result = sweep(experiment_from_dict(copy.deepcopy(LOAD)))
    assert isinstance(result, SweepResult)
    return result


def test_sweep_curves_name_the_unit_and_mark_capacity(load_sweep: SweepResult) -> None:
    figure = report.sweep_figures(load_sweep)["curves"]
    panels = [a for a in figure.axes if a.get_visible()]
    assert all(a.get_xlabel() == "producers.0.arrivals.rate (per s)" for a in panels)
    capacity = 5 / 0.05  # 5 consumers at 50 ms each serve 100/s
    for axes in panels:
        marks = [line for line in axes.get_lines() if len(set(line.get_xdata())) == 1]  # type: ignore[arg-type]
        assert [float(line.get_xdata()[0]) for line in marks] == [pytest.approx(capacity)]  # type: ignore[index]
    assert "95 % CI bands" in figure.get_suptitle()
    legend = figure.legends[0]
    assert "offered load = capacity (100/s)" in [t.get_text() for t in legend.get_texts()]


def test_identical_arms_stay_visible_and_one_replication_claims_no_bands(load_sweep: SweepResult) -> None:
    data = {**copy.deepcopy(LOAD), "replications": 1}
    data["sweep"]["producers.0.arrivals.rate"] = ["20/s", "30/s"]  # far below capacity: FIFO and LIFO coincide
    result = sweep(experiment_from_dict(data))
    assert isinstance(result, SweepResult)
    figure = report.sweep_figures(result)["curves"]
    assert "CI bands" not in figure.get_suptitle()
    assert "one replication" in figure.get_suptitle()
    throughput = next(a for a in figure.axes if a.get_title().startswith("throughput"))
    fifo, lifo = (line for line in throughput.get_lines() if line.get_label().startswith("queue.discipline"))
    assert list(fifo.get_ydata()) == pytest.approx(list(lifo.get_ydata()))  # type: ignore[arg-type]
    assert (fifo.get_linestyle(), fifo.get_marker()) != (lifo.get_linestyle(), lifo.get_marker())
    series = [load_sweep.first.timeseries] * 2
    overlay = curves.timeseries_overlay(["a", "b"], series, "same")
    queue = overlay.axes[1]
    styles = {(line.get_linestyle(), line.get_marker()) for line in queue.get_lines()}
    assert len(styles) == 2


def test_many_latency_curves_are_split_by_the_other_axis_on_a_log_axis(load_sweep: SweepResult) -> None:
    figure = report.sweep_figures(load_sweep)["latency-cdf"]
    cdfs = figure.axes[0::2]
    assert len(cdfs) == 2  # one row per discipline, three rates each
    assert all(a.get_xscale() == "log" for a in cdfs)
    assert all(len(a.get_lines()) == 3 for a in cdfs)
    _no_legend_covers_data(figure)


def test_figures_log_no_matplotlib_warnings(load_sweep: SweepResult, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        figures = [*report.run_figures(_run(PRIORITY)).values(), *report.sweep_figures(load_sweep).values()]
        for figure in figures:
            FigureCanvasAgg(figure).draw()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("matplotlib")] == []
