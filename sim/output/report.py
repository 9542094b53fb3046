"""The results folder: ``results/<name>/`` with tables, figures, a manifest, ``report.md`` and ``report.html``.

Four kinds of folder: a single scenario (:class:`~sim.experiments.runner.Result`), a sweep, a
comparison and a capacity plan. Each writer says what goes in; :mod:`sim.output.folder` does the
staging, the atomic publishing and the removal of an earlier run's files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from sim.experiments.runner import Result, SweepResult
from sim.output import webpage as html
from sim.output.folder import (
    Phase,
    common,
    drawn,
    json_file,
    kept,
    markdown_table,
    publish,
    save,
    scenario_section,
    tables,
    write_reports,
    write_requests,
)
from sim.output.formats import axis_label, describe_value, field_kind, metric_label
from sim.output.tables import comparison_text, plan_text, probes_text, sweep_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from sim.experiments.compare import Comparison
    from sim.experiments.planning import Plan

FIGURES = ("latency", "timeseries", "outcomes")
MAX_OVERLAID = 12
"""A sweep with more points than this gets no overlaid latency distributions (unreadable)."""
MAX_PANELS = 4
"""Latency distributions are split into one row per combination of the other axes up to this many."""
SINGLE_COLUMNS = ["replication", "producer", "offered", "completed", "late", "expired", "rejected", "dropped",
                  "in_system", "timeout_rate", "throughput", "goodput", "latency_p50", "latency_p99", "utilization"]


def manifest(result: Result, seed: int, wall_time: float, executor: str = "in-process") -> dict[str, Any]:
    """What was run and with what: enough to run it again and get the same numbers."""
    scenario = result.scenario
    found = {
        "scenario": scenario.name,
        "source": str(scenario.source) if scenario.source else None,
        "seed": seed,
        "replications": result.replications,
        "as_written": scenario.raw,
        "as_run": scenario.model_dump(mode="json"),
        "timeseries_bucket_seconds": result.runs[0].timeseries.attrs.get("bucket"),
        "executor": executor,
        "engine": result.runs[0].records.engine,
        **kept(scenario),
    }
    if scenario.warmup == "auto":
        found["warmup_seconds"] = result.warmups  # per replication, as MSER-5 chose
    return common(wall_time, **found)


def write_results(result: Result, out: Path, *, seed: int, wall_time: float, figures: bool = True,
                  executor: str = "in-process", requests: bool = True, phase: Phase | None = None) -> list[Path]:
    """Write the folder of one scenario's replications and return the files written.

    ``requests`` False skips ``requests.parquet`` and ``jobs.parquet`` (millions of rows for a big run).
    """

    def writer(folder: Path) -> list[Path]:
        produced = tables(folder, result.summary, result.estimates)
        result.timeseries.to_csv(folder / "timeseries.csv", index=False)
        json_file(folder / "manifest.json", manifest(result, seed, wall_time, executor))
        produced += [Path("timeseries.csv"), Path("manifest.json")]
        produced += write_requests(result.runs[0], folder, phase) if requests else []
        saved = drawn(lambda: run_figures(result), folder, phase) if figures else {}
        scenario = result.scenario
        columns = [c for c in SINGLE_COLUMNS if c in result.summary.columns]
        shown = result.summary[columns]
        sections = [("Summary", markdown_table(shown, formatted=True), html.table(shown))]
        if result.replications > 1:
            estimated = result.estimates[["stat", *(c for c in columns if c in result.estimates.columns)]]
            sections.append(("Estimates (95 % CI)", markdown_table(estimated, formatted=True), html.table(estimated)))
        sections.append(scenario_section(scenario.raw))
        meta = (f"seed {seed}, {result.replications} replication(s), {executor}; "
                f"requests kept: {kept(scenario)['requests_kept']}")
        pages = write_reports(folder, scenario.name, scenario.description, sections, saved, meta)
        return [*produced, *saved.values(), *pages]

    return publish(out, writer)


def run_figures(result: Result) -> dict[str, Figure]:
    """The figures of one scenario: latency, time series and outcomes of replication 0."""
    from sim.output import plots  # matplotlib is imported only when figures are wanted

    scenario = result.scenario
    title = f"{scenario.name} (replication 0)"
    first = result.runs[0]
    scaling = any(stage.consumers.scaling is not None for stage in scenario.stage_list)
    stages = scenario.stage_list
    wait = f"wait at the first stage ({stages[0].name})" if len(stages) > 1 else "wait in queue"
    return {
        "latency": plots.latency_figure(first.requests, title, wait_label=wait, tally=first.records.tally),
        "timeseries": plots.timeseries_figure(first.timeseries, scenario.concurrency, title, scaling=scaling),
        "outcomes": plots.outcomes_figure(result.summary, title),
    }


def _mean_quantiles(outcomes: list[Any]) -> Any:
    import numpy as np

    stacked = np.vstack([o.latency_quantiles for o in outcomes])
    finite = np.isfinite(stacked).all(axis=1)
    return stacked[finite].mean(axis=0) if finite.any() else stacked[0]


def write_sweep(result: SweepResult, out: Path, *, wall_time: float, figures: bool = True,
                x: str | None = None, requests: bool = True, phase: Phase | None = None) -> list[Path]:
    """Write a sweep's folder: tidy summary and time series, curves, manifest and reports."""
    experiment = result.experiment

    def writer(folder: Path) -> list[Path]:
        produced = tables(folder, result.summary, result.estimates)
        result.timeseries.to_csv(folder / "timeseries.csv", index=False)
        produced += write_requests(result.first, folder, phase) if requests else []
        points = [{"point": p.index, "set": p.overrides, "values": p.values,
                   "replications": len(result.outcomes[p.index]),
                   "warmup_seconds": [o.warmup for o in result.outcomes[p.index]]} for p in result.points]
        json_file(folder / "manifest.json", common(
            wall_time, scenario=experiment.name, source=str(experiment.source) if experiment.source else None,
            seed=result.seed, sweep=experiment.sweep, precision=_plain(experiment.precision), points=points,
            as_written=experiment.raw, as_run=experiment.base.model_dump(mode="json"), executor=result.executor,
            engines=sorted(set(result.summary["engine"].dropna())) if "engine" in result.summary else [],
            runs_computed=result.computed, runs_from_cache=result.cached,
            requests_file="replication 0 of point 0", **kept(result.points[0].scenario)))
        produced += [Path("timeseries.csv"), Path("manifest.json")]
        saved = drawn(lambda: sweep_figures(result, x), folder, phase) if figures else {}
        table = sweep_table(result)
        sections = [("Points", markdown_table(table), html.table(table, formatted=False)),
                    scenario_section(experiment.raw, {"sweep": experiment.sweep})]
        meta = (f"sweep of {len(result.points)} points, seed {result.seed}, {result.executor}; "
                f"{result.computed} runs computed, {result.cached} from the cache")
        pages = write_reports(folder, experiment.name, experiment.base.description, sections, saved, meta)
        return [*produced, *saved.values(), *pages]

    return publish(out, writer)


def _plain(value: Any) -> Any:
    return None if value is None else dict(value.__dict__)


def sweep_figures(result: SweepResult, x: str | None = None) -> dict[str, Figure]:
    """Curves against ``x`` (the first axis by default) and, for up to 12 points, their latency distributions."""
    from sim.output import curves

    experiment = result.experiment
    axes = experiment.axes
    x = x or axes[0]
    first = result.points[0].scenario
    kinds = {axis: field_kind(first, axis) for axis in axes}

    def describe(axis: str, value: Any) -> str:
        return describe_value(kinds.get(axis, "text"), value)

    found = (curves.load_capacity(point.scenario, x) for point in result.points)
    capacity = sorted({round(value, 9) for value in found if value is not None})
    drawn = {"curves": curves.curves_figure(result.estimates, axes, x, experiment.name, x_label=axis_label(first, x),
                                            capacity=capacity, describe=describe)}
    if len(result.points) <= MAX_OVERLAID:
        others = [axis for axis in axes if axis != x]
        panels = [", ".join(f"{a}={describe(a, p.values.get(a))}" for a in others) for p in result.points]
        split = bool(others) and len(set(panels)) <= MAX_PANELS
        short = split or not others  # the x value alone says which point a curve is
        labels = [describe(x, p.values.get(x)) if short else p.label for p in result.points]
        quantiles = [_mean_quantiles(result.outcomes[p.index]) for p in result.points]
        drawn["latency-cdf"] = curves.distributions_figure(
            labels, quantiles, experiment.name, panels=panels if split else None,
            ordered=kinds.get(x) in ("rate", "duration", "integer", "number"), legend_title=x if short else None)
    return drawn


def write_comparison(comparison: Comparison, out: Path, *, wall_time: float, figures: bool = True) -> list[Path]:
    """Write a comparison's folder: per-run summary, the comparison table, overlays and reports."""
    arms = comparison.arms

    def writer(folder: Path) -> list[Path]:
        produced = tables(folder, comparison.summary, comparison.estimates)
        comparison.table.to_csv(folder / "comparison.csv", index=False)
        series = [_arm_series(comparison, p.index) for p in arms.points]
        pd.concat([s.assign(arm=label) for s, label in zip(series, arms.labels, strict=True)],
                  ignore_index=True).to_csv(folder / "timeseries.csv", index=False)
        json_file(folder / "manifest.json", common(
            wall_time, arms=[{"arm": label, "scenario": p.scenario.name, "set": p.overrides,
                              "source": str(p.scenario.source) if p.scenario.source else None,
                              "as_run": p.scenario.model_dump(mode="json")}
                             for label, p in zip(arms.labels, arms.points, strict=True)],
            seed=comparison.seed, replications=comparison.replications, paired=comparison.paired,
            executor=comparison.executor))
        produced += [Path(n) for n in ("comparison.csv", "timeseries.csv", "manifest.json")]
        saved = {}
        if figures:
            from sim.output import curves

            quantiles = [_mean_quantiles(comparison.outcomes[p.index]) for p in arms.points]
            title = " vs ".join(arms.labels)
            saved = save({"latency-cdf": curves.distributions_figure(arms.labels, quantiles, title),
                           "timeseries": curves.timeseries_overlay(arms.labels, series, title)}, folder)
        table = comparison_text(comparison)
        sections = [("Comparison", markdown_table(table), html.table(table, formatted=False))]
        sections += [scenario_section(p.scenario.raw) for p in arms.points[:1]]
        pairing = "common random numbers" if comparison.paired else "different arrivals: unpaired (Welch) tests"
        meta = (f"{comparison.replications} replications per arm, seed {comparison.seed}, {pairing}, "
                f"{comparison.executor}")
        pages = write_reports(folder, "Comparison: " + " vs ".join(arms.labels), "", sections, saved, meta)
        return [*produced, *saved.values(), *pages]

    return publish(out, writer)


def _arm_series(comparison: Comparison, point: int) -> pd.DataFrame:
    outcomes = comparison.outcomes[point]
    frame = pd.concat([o.timeseries.assign(replication=o.replication) for o in outcomes], ignore_index=True)
    frame.attrs["bucket"] = outcomes[0].timeseries.attrs.get("bucket")
    return frame


def probes_frame(plan: Plan) -> pd.DataFrame:
    rows = []
    for probe in plan.probes:
        row: dict[str, object] = {"probe": probe.order + 1, plan.path: probe.value,
                                  "replications": probe.replications, "verdict": probe.verdict}
        for target in plan.spec.targets:
            mean, lower, upper = probe.bounds[target.text]
            row.update({f"{target.metric} mean": mean, f"{target.metric} lower": lower,
                        f"{target.metric} upper": upper})
        rows.append(row)
    return pd.DataFrame(rows)


def write_plan(plan: Plan, out: Path, *, wall_time: float, figures: bool = True) -> list[Path]:
    """Write a plan's folder: every probe's runs, the probes table, the figure and reports."""
    experiment = plan.experiment

    def writer(folder: Path) -> list[Path]:
        produced = tables(folder, plan.summary, plan.estimates)
        probes = probes_frame(plan)
        probes.to_csv(folder / "probes.csv", index=False)
        spec = plan.spec
        json_file(folder / "manifest.json", common(
            wall_time, scenario=experiment.name, seed=plan.seed, path=spec.path, maximize=spec.maximize,
            range=[spec.low, spec.high], targets=[t.text for t in spec.targets], confidence=spec.confidence,
            answer=None if plan.answer is None else plan.answer.value,
            other_side=None if plan.other_side is None else plan.other_side.value, unresolved=plan.unresolved,
            as_written=experiment.raw, executor=plan.executor))
        produced += [Path(n) for n in ("probes.csv", "manifest.json")]
        saved = {}
        if figures:
            from sim.output import curves

            figure = curves.plan_figure(plan, experiment.name, x_label=axis_label(experiment.base, spec.path),
                                        metric_label=metric_label)
            saved = save({"plan": figure}, folder)
        answer = plan_text(plan)
        shown = probes_text(plan)
        sections = [("Answer", f"```\n{answer}\n```", html.preformatted(answer)),
                    ("Probes", markdown_table(shown), html.table(shown, formatted=False)),
                    scenario_section(experiment.raw)]
        pages = write_reports(folder, f"Plan: {experiment.name}", experiment.base.description, sections, saved,
                           f"seed {plan.seed}, {plan.executor}")
        return [*produced, *saved.values(), *pages]

    return publish(out, writer)


__all__ = ["write_comparison", "write_plan", "write_results", "write_sweep"]
