"""The results folder: ``results/<name>/`` with tables, figures, a manifest and a short report.

Every file is written to a temporary name and then renamed, so an interrupted or failed
write never leaves a half-written file in place of a good one.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import pandas as pd

from sim.experiment import Result

FIGURES = ("latency", "timeseries", "outcomes")
VERSIONED = ("qsim", "simpy", "numpy", "pandas", "matplotlib", "pydantic", "scipy", "pyyaml")


@contextmanager
def atomic(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode) as stream:
            yield stream
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _write_with(path: Path, writer: Callable[[Path], None]) -> None:
    """Let ``writer`` write a temporary file (libraries that want a path), then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        writer(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


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
    """Write the results folder and return the files written."""
    written: list[Path] = []
    out.mkdir(parents=True, exist_ok=True)

    def table(name: str, frame: pd.DataFrame, **options: Any) -> None:
        path = out / name
        _write_with(path, lambda temporary: frame.to_csv(temporary, index=False, **options))
        written.append(path)

    table("summary.csv", result.summary)
    table("timeseries.csv", result.timeseries)
    table("requests.csv.gz", result.requests, compression="gzip")
    path = out / "manifest.json"
    with atomic(path) as stream:
        json.dump(manifest(result, seed, wall_time), stream, indent=2, default=str)
        stream.write("\n")
    written.append(path)
    if figures:
        written += write_figures(result, out / "figures")
    path = out / "report.md"
    with atomic(path) as stream:
        stream.write(report_markdown(result, figures))
    written.append(path)
    return written


def write_figures(result: Result, folder: Path) -> list[Path]:
    from sim import plots  # matplotlib is imported only when figures are wanted

    scenario = result.scenario
    title = f"{scenario.name} (replication 0)"
    first = result.runs[0]
    drawn = {
        "latency": plots.latency_figure(first.requests, title),
        "timeseries": plots.timeseries_figure(first.timeseries, scenario.consumers.concurrency, title),
        "outcomes": plots.outcomes_figure(result.summary, title),
    }
    written = []
    for name, figure in drawn.items():
        path = folder / f"{name}.png"
        _write_with(path, lambda temporary, figure=figure: figure.savefig(temporary, dpi=110, format="png"))
        written.append(path)
    return written


def report_markdown(result: Result, figures: bool) -> str:
    scenario = result.scenario
    columns = ["replication", "producer", "offered", "completed", "late", "expired", "rejected", "dropped",
               "in_system", "timeout_rate", "throughput", "goodput", "latency_p50", "latency_p99", "utilization"]
    parts = [f"# {scenario.name}", "", scenario.description, "", "## Summary", "",
             _markdown_table(result.summary[columns]), ""]
    if figures:
        parts += ["## Figures", ""] + [f"![{name}](figures/{name}.png)" for name in FIGURES] + [""]
    return "\n".join(parts)
