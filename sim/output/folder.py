"""The mechanics of a results folder: staging and publishing files, tables, figures, the reports.

Every writer of :mod:`sim.output.report` fills a staging folder through :func:`publish`; files
are then moved into place one rename at a time, so a failure while computing or drawing
leaves the previous results untouched, and files of an earlier run that this run did not
write are removed, so a folder never mixes two runs. The ``cache/`` folder is left alone.
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
from sim.model.keeping import requests_kept
from sim.model.schema import Scenario
from sim.output import webpage as html
from sim.output.formats import format_value

if TYPE_CHECKING:
    from matplotlib.figure import Figure

VERSIONED = ("qsim", "simpy", "numpy", "pandas", "matplotlib", "pydantic", "scipy", "pyyaml", "dask", "distributed",
             "numba", "pyarrow")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in VERSIONED:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def common(wall_time: float, **extra: Any) -> dict[str, Any]:
    return {**extra, "command": sys.argv, "versions": versions(), "wall_time_seconds": wall_time,
            "written_at": datetime.now(UTC).isoformat(timespec="seconds")}


def markdown_table(frame: pd.DataFrame, formatted: bool = False) -> str:
    """A DataFrame as a markdown table; numbers in their columns' units when ``formatted``."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    lines = [header, rule]
    for row in frame.itertuples(index=False):
        cells = [format_value(str(c), v) if formatted else str(v) for c, v in zip(frame.columns, row, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
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


def publish(out: Path, writer: Writer) -> list[Path]:
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


def json_file(path: Path, data: Any) -> None:
    with path.open("w") as stream:
        json.dump(data, stream, indent=2, default=str)
        stream.write("\n")


def drawn(draw: Callable[[], dict[str, Figure]], folder: Path, phase: Phase | None) -> dict[str, Path]:
    """Draw the figures (saying so first: it can take a while) and save them."""
    told(phase, "drawing figures")
    return save(draw(), folder)


def save(figures: dict[str, Figure], folder: Path) -> dict[str, Path]:
    """Save each figure as ``figures/<name>.png``; return the relative paths by name."""
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    saved = {}
    for name, figure in figures.items():
        relative = Path("figures") / f"{name}.png"
        figure.savefig(folder / relative, dpi=110, format="png")
        saved[name] = relative
    return saved


def write_reports(folder: Path, title: str, description: str, sections: list[tuple[str, str, str]],
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


def scenario_section(raw: dict[str, Any], extra: dict[str, Any] | None = None) -> tuple[str, str, str]:
    text = yaml.safe_dump({**raw, **(extra or {})}, sort_keys=False, allow_unicode=True)
    return "Scenario", f"```yaml\n{text}```", html.preformatted(text)


def tables(folder: Path, summary: pd.DataFrame, estimates: pd.DataFrame) -> list[Path]:
    """``summary.csv`` (one row per run and row group) and ``estimates.csv`` (mean and CI per group)."""
    summary.to_csv(folder / "summary.csv", index=False)
    estimates.to_csv(folder / "estimates.csv", index=False)
    return [Path("summary.csv"), Path("estimates.csv")]


def kept(scenario: Scenario) -> dict[str, str]:
    """What the runs kept of their requests (``all``, ``sample of N``, ``none``) and why, for the manifest."""
    keeping = requests_kept(scenario)
    return {"requests_kept": keeping.label, **({"requests_note": keeping.note} if keeping.note else {})}


def write_requests(run: Run, folder: Path, phase: Phase | None = None) -> list[Path]:
    """``requests.parquet`` and, when it differs from the requests, ``jobs.parquet`` (attempts or stage visits);
    with ``report.requests: sample N`` only the sample's rows (the manifest says so), with ``none`` neither."""
    if run.records.tally is not None and len(run.records.columns) == 0:
        return []  # nothing was kept: the summary and time series were streamed
    told(phase, "writing requests.parquet")
    run.requests.to_parquet(folder / "requests.parquet", index=False)
    jobs = run.jobs
    if jobs is None:
        return [Path("requests.parquet")]
    told(phase, "writing jobs.parquet")
    jobs.to_parquet(folder / "jobs.parquet", index=False)
    return [Path("requests.parquet"), Path("jobs.parquet")]


def told(phase: Phase | None, what: str) -> None:
    if phase is not None:
        phase(what)
