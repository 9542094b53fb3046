"""The results folder: ``results/<name>/`` with tables, figures, a manifest, ``report.md`` and ``report.html``.

Four kinds of folder share one writer: a single scenario (:class:`~sim.experiments.runner.Result`),
a sweep, a comparison and a capacity plan. Each writer fills a staging folder; files are
then moved into place one rename at a time, so a failure while computing or drawing leaves
the previous results untouched. Figures of an earlier run that this run did not draw are
removed, so a folder never mixes two runs. The ``cache/`` folder is left alone.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from sim.experiments.replication import Run
from sim.experiments.runner import Result, SweepResult
from sim.model.keeping import requests_kept
from sim.model.schema import Scenario
from sim.output import webpage as html
from sim.output.tables import comparison_text, plan_text, sweep_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from sim.experiments.compare import Comparison
    from sim.experiments.planning import Plan

FIGURES = ("latency", "timeseries", "outcomes")
VERSIONED = ("qsim", "simpy", "numpy", "pandas", "matplotlib", "pydantic", "scipy", "pyyaml", "dask", "distributed")
MAX_OVERLAID = 12
"""A sweep with more points than this gets no overlaid latency distributions (unreadable)."""
SINGLE_COLUMNS = ["replication", "producer", "offered", "completed", "late", "expired", "rejected", "dropped",
                  "in_system", "timeout_rate", "throughput", "goodput", "latency_p50", "latency_p99", "utilization"]


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in VERSIONED:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def _common(wall_time: float, **extra: Any) -> dict[str, Any]:
    return {**extra, "command": sys.argv, "versions": versions(), "wall_time_seconds": wall_time,
            "written_at": datetime.now(UTC).isoformat(timespec="seconds")}


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
        **_kept(scenario),
    }
    if scenario.warmup == "auto":
        found["warmup_seconds"] = result.warmups  # per replication, as MSER-5 chose
    return _common(wall_time, **found)


def _kept(scenario: Scenario) -> dict[str, str]:
    """What the run kept of its requests (``all``, ``sample of N``, ``none``) and why, for the manifest."""
    keeping = requests_kept(scenario)
    return {"requests_kept": keeping.label, **({"requests_note": keeping.note} if keeping.note else {})}


def _markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    lines = [header, rule]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines)


RESULT_FILES = ("summary.csv", "estimates.csv", "timeseries.csv", "requests.parquet", "jobs.parquet",
                "requests.csv.gz", "jobs.csv.gz", "comparison.csv", "probes.csv", "manifest.json", "report.md",
                "report.html")
"""Every file (besides ``figures/*.png``) a results folder may hold, written by any command of this
qsim or an earlier one (``*.csv.gz``): those this run did not write are removed."""

Phase = Callable[[str], None]
"""Told what slow step starts (``writing requests.parquet``, ``drawing figures``), for the command line."""

Writer = Callable[[Path], list[Path]]
"""Writes files into a folder and returns their paths relative to it."""


def _publish(out: Path, writer: Writer) -> list[Path]:
    """Run ``writer`` in a staging folder inside ``out``, then move each file into place."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".staging-"))
    try:
        produced = writer(staging)
        for relative in produced:
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / relative, target)
        drawn = {out / relative for relative in produced}
        optional = [out / name for name in RESULT_FILES]
        optional += (out / "figures").glob("*.png") if (out / "figures").is_dir() else []
        for stale in optional:
            if stale not in drawn:
                stale.unlink(missing_ok=True)  # from an earlier run: never mix two runs in one folder
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / relative for relative in produced]


def _json(path: Path, data: Any) -> None:
    with path.open("w") as stream:
        json.dump(data, stream, indent=2, default=str)
        stream.write("\n")


def _drawn(draw: Callable[[], dict[str, Figure]], folder: Path, phase: Phase | None) -> dict[str, Path]:
    """Draw the figures (saying so first: it can take a while) and save them."""
    _told(phase, "drawing figures")
    return _save(draw(), folder)


def _save(figures: dict[str, Figure], folder: Path) -> dict[str, Path]:
    """Save each figure as ``figures/<name>.png``; return the relative paths by name."""
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    saved = {}
    for name, figure in figures.items():
        relative = Path("figures") / f"{name}.png"
        figure.savefig(folder / relative, dpi=110, format="png")
        saved[name] = relative
    return saved


def _reports(folder: Path, title: str, description: str, sections: list[tuple[str, str, str]],
             saved: dict[str, Path], meta: str) -> list[Path]:
    """``report.md`` and ``report.html`` from (heading, markdown, html) sections and the saved figures."""
    markdown = [f"# {title}", "", description, ""]
    parts = []
    for heading, md_body, html_body in sections:
        markdown += [f"## {heading}", "", md_body, ""]
        parts.append(html.Section(heading, html_body))
    if saved:
        markdown += ["## Figures", ""] + [f"![{name}]({path.as_posix()})" for name, path in saved.items()] + [""]
        images = "".join(html.figure((folder / path).read_bytes(), name) for name, path in saved.items())
        parts.append(html.Section("Figures", images))
    (folder / "report.md").write_text("\n".join(markdown))
    (folder / "report.html").write_text(html.page(title, description, parts, meta))
    return [Path("report.md"), Path("report.html")]


def _scenario_section(raw: dict[str, Any], extra: dict[str, Any] | None = None) -> tuple[str, str, str]:
    text = yaml.safe_dump({**raw, **(extra or {})}, sort_keys=False, allow_unicode=True)
    return "Scenario", f"```yaml\n{text}```", html.preformatted(text)


def _tables(folder: Path, summary: pd.DataFrame, estimates: pd.DataFrame) -> list[Path]:
    """``summary.csv`` (one row per run and row group) and ``estimates.csv`` (mean and CI per group)."""
    summary.to_csv(folder / "summary.csv", index=False)
    estimates.to_csv(folder / "estimates.csv", index=False)
    return [Path("summary.csv"), Path("estimates.csv")]


def _write_requests(run: Run, folder: Path, phase: Phase | None = None) -> list[Path]:
    """``requests.parquet`` and, when it differs from the requests, ``jobs.parquet`` (attempts or stage visits);
    with ``report.requests: sample N`` only the sample's rows (the manifest says so), with ``none`` neither."""
    if run.records.tally is not None and len(run.records.columns) == 0:
        return []  # nothing was kept: the summary and time series were streamed
    _told(phase, "writing requests.parquet")
    run.requests.to_parquet(folder / "requests.parquet", index=False)
    jobs = run.jobs
    if jobs is None:
        return [Path("requests.parquet")]
    _told(phase, "writing jobs.parquet")
    jobs.to_parquet(folder / "jobs.parquet", index=False)
    return [Path("requests.parquet"), Path("jobs.parquet")]


def _told(phase: Phase | None, what: str) -> None:
    if phase is not None:
        phase(what)


def write_results(result: Result, out: Path, *, seed: int, wall_time: float, figures: bool = True,
                  executor: str = "in-process", requests: bool = True, phase: Phase | None = None) -> list[Path]:
    """Write the folder of one scenario's replications and return the files written.

    ``requests`` False skips ``requests.parquet`` and ``jobs.parquet`` (millions of rows for a big run).
    """

    def writer(folder: Path) -> list[Path]:
        produced = _tables(folder, result.summary, result.estimates)
        result.timeseries.to_csv(folder / "timeseries.csv", index=False)
        _json(folder / "manifest.json", manifest(result, seed, wall_time, executor))
        produced += [Path("timeseries.csv"), Path("manifest.json")]
        produced += _write_requests(result.runs[0], folder, phase) if requests else []
        saved = _drawn(lambda: run_figures(result), folder, phase) if figures else {}
        scenario = result.scenario
        columns = [c for c in SINGLE_COLUMNS if c in result.summary.columns]
        shown = result.summary[columns]
        sections = [("Summary", _markdown_table(shown), html.table(shown))]
        if result.replications > 1:
            estimated = result.estimates[["stat", *(c for c in columns if c in result.estimates.columns)]]
            sections.append(("Estimates (95 % CI)", _markdown_table(estimated), html.table(estimated)))
        sections.append(_scenario_section(scenario.raw))
        meta = (f"seed {seed}, {result.replications} replication(s), {executor}; "
                f"requests kept: {requests_kept(scenario).label}")
        reports = _reports(folder, scenario.name, scenario.description, sections, saved, meta)
        return [*produced, *saved.values(), *reports]

    return _publish(out, writer)


def run_figures(result: Result) -> dict[str, Figure]:
    """The figures of one scenario: latency, time series and outcomes of replication 0."""
    from sim.output import plots  # matplotlib is imported only when figures are wanted

    scenario = result.scenario
    title = f"{scenario.name} (replication 0)"
    first = result.runs[0]
    return {
        "latency": plots.latency_figure(first.requests, title, first.records.tally),
        "timeseries": plots.timeseries_figure(first.timeseries, scenario.concurrency, title),
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
        produced = _tables(folder, result.summary, result.estimates)
        result.timeseries.to_csv(folder / "timeseries.csv", index=False)
        produced += _write_requests(result.first, folder, phase) if requests else []
        points = [{"point": p.index, "set": p.overrides, "values": p.values,
                   "replications": len(result.outcomes[p.index]),
                   "warmup_seconds": [o.warmup for o in result.outcomes[p.index]]} for p in result.points]
        _json(folder / "manifest.json", _common(
            wall_time, scenario=experiment.name, source=str(experiment.source) if experiment.source else None,
            seed=result.seed, sweep=experiment.sweep, precision=_plain(experiment.precision), points=points,
            as_written=experiment.raw, as_run=experiment.base.model_dump(mode="json"), executor=result.executor,
            engines=sorted(set(result.summary["engine"].dropna())) if "engine" in result.summary else [],
            runs_computed=result.computed, runs_from_cache=result.cached,
            requests_file="replication 0 of point 0", **_kept(result.points[0].scenario)))
        produced += [Path("timeseries.csv"), Path("manifest.json")]
        saved = _drawn(lambda: sweep_figures(result, x), folder, phase) if figures else {}
        table = sweep_table(result)
        sections = [("Points", _markdown_table(table), html.table(table, formatted=False)),
                    _scenario_section(experiment.raw, {"sweep": experiment.sweep})]
        meta = (f"sweep of {len(result.points)} points, seed {result.seed}, {result.executor}; "
                f"{result.computed} runs computed, {result.cached} from the cache")
        reports = _reports(folder, experiment.name, experiment.base.description, sections, saved, meta)
        return [*produced, *saved.values(), *reports]

    return _publish(out, writer)


def _plain(value: Any) -> Any:
    return None if value is None else dict(value.__dict__)


def sweep_figures(result: SweepResult, x: str | None = None) -> dict[str, Figure]:
    from sim.output import curves

    axes = result.experiment.axes
    name = result.experiment.name
    drawn = {"curves": curves.curves_figure(result.estimates, axes, x or axes[0], name)}
    if len(result.points) <= MAX_OVERLAID:
        labels = [p.label for p in result.points]
        quantiles = [_mean_quantiles(result.outcomes[p.index]) for p in result.points]
        drawn["latency-cdf"] = curves.distributions_figure(labels, quantiles, name)
    return drawn


def write_comparison(comparison: Comparison, out: Path, *, wall_time: float, figures: bool = True) -> list[Path]:
    """Write a comparison's folder: per-run summary, the comparison table, overlays and reports."""
    arms = comparison.arms

    def writer(folder: Path) -> list[Path]:
        produced = _tables(folder, comparison.summary, comparison.estimates)
        comparison.table.to_csv(folder / "comparison.csv", index=False)
        series = [_arm_series(comparison, p.index) for p in arms.points]
        pd.concat([s.assign(arm=label) for s, label in zip(series, arms.labels, strict=True)],
                  ignore_index=True).to_csv(folder / "timeseries.csv", index=False)
        _json(folder / "manifest.json", _common(
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
            saved = _save({"latency-cdf": curves.distributions_figure(arms.labels, quantiles, title),
                           "timeseries": curves.timeseries_overlay(arms.labels, series, title)}, folder)
        table = comparison_text(comparison).reset_index()
        sections = [("Comparison", _markdown_table(table), html.table(table, formatted=False))]
        sections += [_scenario_section(p.scenario.raw) for p in arms.points[:1]]
        pairing = "common random numbers" if comparison.paired else "different arrivals: unpaired (Welch) tests"
        meta = (f"{comparison.replications} replications per arm, seed {comparison.seed}, {pairing}, "
                f"{comparison.executor}")
        reports = _reports(folder, "Comparison: " + " vs ".join(arms.labels), "", sections, saved, meta)
        return [*produced, *saved.values(), *reports]

    return _publish(out, writer)


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
        produced = _tables(folder, plan.summary, plan.estimates)
        probes = probes_frame(plan)
        probes.to_csv(folder / "probes.csv", index=False)
        spec = plan.spec
        _json(folder / "manifest.json", _common(
            wall_time, scenario=experiment.name, seed=plan.seed, path=spec.path, maximize=spec.maximize,
            range=[spec.low, spec.high], targets=[t.text for t in spec.targets], confidence=spec.confidence,
            answer=None if plan.answer is None else plan.answer.value,
            other_side=None if plan.other_side is None else plan.other_side.value, unresolved=plan.unresolved,
            as_written=experiment.raw, executor=plan.executor))
        produced += [Path(n) for n in ("probes.csv", "manifest.json")]
        saved = {}
        if figures:
            from sim.output import curves

            saved = _save({"plan": curves.plan_figure(plan, experiment.name)}, folder)
        answer = plan_text(plan)
        sections = [("Answer", f"```\n{answer}\n```", html.preformatted(answer)),
                    ("Probes", _markdown_table(probes), html.table(probes, formatted=False)),
                    _scenario_section(experiment.raw)]
        reports = _reports(folder, f"Plan: {experiment.name}", experiment.base.description, sections, saved,
                           f"seed {plan.seed}, {plan.executor}")
        return [*produced, *saved.values(), *reports]

    return _publish(out, writer)


__all__ = ["write_comparison", "write_plan", "write_results", "write_sweep"]
