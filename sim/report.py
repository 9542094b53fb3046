"""The results folder: ``results/<name>/`` with tables, figures, a manifest and a short report."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from sim.experiment import Result

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURES = ("latency", "timeseries", "outcomes")
VERSIONED = ("qsim", "simpy", "numpy", "pandas", "matplotlib", "pydantic", "scipy", "pyyaml")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in VERSIONED:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def manifest(result: Result, seed: int, wall_time: float) -> dict[str, Any]:
    """What was run and with what: enough to run it again and get the same numbers."""
    scenario = result.scenario
    return {
        "scenario": scenario.name,
        "source": str(scenario.source) if scenario.source else None,
        "seed": seed,
        "replications": len(result.runs),
        "as_written": scenario.raw,
        "as_run": scenario.model_dump(mode="json"),
        "timeseries_bucket_seconds": result.runs[0].timeseries.attrs.get("bucket"),
        "command": sys.argv,
        "versions": versions(),
        "wall_time_seconds": wall_time,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    lines = [header, rule]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines)


def write_results(result: Result, out: Path, *, seed: int, wall_time: float, figures: bool = True) -> list[Path]:
    """Write the results folder and return the files written.

    Everything is first written to a staging folder inside ``out`` and then moved into
    place file by file (a rename each), so a failure while computing or drawing leaves the
    previous results untouched. Figures of an earlier run are removed when this run draws
    none, so the folder never mixes two runs.
    """
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".staging-"))
    try:
        produced = _write_all(result, staging, seed=seed, wall_time=wall_time, figures=figures)
        for relative in produced:
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / relative, target)
        if not figures:
            for name in FIGURES:
                (out / "figures" / f"{name}.png").unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / relative for relative in produced]


def _write_all(result: Result, folder: Path, *, seed: int, wall_time: float, figures: bool) -> list[Path]:
    """Write every output into ``folder``; return the paths relative to it."""
    result.summary.to_csv(folder / "summary.csv", index=False)
    result.timeseries.to_csv(folder / "timeseries.csv", index=False)
    result.requests.to_csv(folder / "requests.csv.gz", index=False, compression="gzip")
    with (folder / "manifest.json").open("w") as stream:
        json.dump(manifest(result, seed, wall_time), stream, indent=2, default=str)
        stream.write("\n")
    produced = [Path(name) for name in ("summary.csv", "timeseries.csv", "requests.csv.gz", "manifest.json")]
    if figures:
        produced += [Path("figures") / path.name for path in write_figures(result, folder / "figures")]
    (folder / "report.md").write_text(report_markdown(result, figures))
    return [*produced, Path("report.md")]


def write_figures(result: Result, folder: Path) -> list[Path]:
    """Draw the run's figures as PNG files in ``folder``."""
    from sim import plots  # matplotlib is imported only when figures are wanted

    scenario = result.scenario
    title = f"{scenario.name} (replication 0)"
    first = result.runs[0]
    drawn = {
        "latency": plots.latency_figure(first.requests, title),
        "timeseries": plots.timeseries_figure(first.timeseries, scenario.concurrency, title),
        "outcomes": plots.outcomes_figure(result.summary, title),
    }
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in drawn.items():
        path = folder / f"{name}.png"
        _save_png(figure, path)
        written.append(path)
    return written


def _save_png(figure: Figure, path: Path) -> None:
    figure.savefig(path, dpi=110, format="png")


def report_markdown(result: Result, figures: bool) -> str:
    scenario = result.scenario
    columns = ["replication", "producer", "offered", "completed", "late", "expired", "rejected", "dropped",
               "in_system", "timeout_rate", "throughput", "goodput", "latency_p50", "latency_p99", "utilization"]
    parts = [f"# {scenario.name}", "", scenario.description, "", "## Summary", "",
             _markdown_table(result.summary[columns]), ""]
    if figures:
        parts += ["## Figures", ""] + [f"![{name}](figures/{name}.png)" for name in FIGURES] + [""]
    return "\n".join(parts)
