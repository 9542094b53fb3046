"""qsim against idiomatic SimPy and Ciw: the same models, in one run, speed and memory side by side.

Why: the design promises that qsim is many times faster than the two ways people usually
simulate queues in Python. Numbers from another day or another machine prove nothing, so
every simulator runs here, now, on the same models, and the report leads with the ratios
measured in this run; absolute times come second.

How each number is taken (``benchmarks/README.md`` says how to read them):

* every (model, simulator) pair runs in a fresh Python process (``--child``), so one run's
  heap, caches and imports can neither help nor hurt the next;
* wall time is ``time.perf_counter`` around all the work that produces the answer: for qsim
  the whole ``sim.run(scenario)`` (engine, summary table and time series, no files), for
  SimPy building the environment and running it, for Ciw building the network, simulating
  and reading its records back; interpreter start-up and imports are not timed;
* peak memory is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` read by that child at the end:
  the resident-set high-water mark of the whole process, imports included. The same reading
  taken right after the imports is reported too, so the run's own share is the difference.

Usage: ``python benchmarks/peers.py [--quick] [--only qsim,simpy,ciw] [--models mm1,mm2000,burst] [--markdown]``
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import resource
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

from workloads import RUNNERS, SEED, Answer, Model, models

RESULTS = Path(__file__).resolve().parent / "results.md"
SIMULATORS = ("qsim", "simpy", "ciw")
MODELS = ("mm1", "mm2000", "burst", "sqs")
NAMES = {"qsim": "qsim", "simpy": "SimPy", "ciw": "Ciw"}
LIBRARIES = {"qsim": "sim", "simpy": "simpy", "ciw": "ciw"}
"""What a child imports before its baseline memory reading (and nothing else of the others)."""

MEMORY_LIMIT_MB = 200.0
MEMORY_AT_REQUESTS = 1_000_000
"""The memory target is stated for runs of this many requests; smaller runs are not judged."""


@dataclass(frozen=True, kw_only=True)
class Measurement(Answer):
    """An answer with the child process's memory readings, as sent back to the parent."""

    model: str
    simulator: str
    peak_mb: float
    imports_mb: float

    @property
    def rate(self) -> float:
        return self.requests / self.wall


# --- measuring in fresh processes ----------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def child(simulator: str, key: str, quick: bool) -> None:
    """Run one model in this (fresh) process and print the measurement as one JSON line."""
    importlib.import_module(LIBRARIES[simulator])
    imports_mb = peak_rss_mb()
    answer = RUNNERS[simulator](models(quick)[key])
    measured = Measurement(
        **asdict(answer), model=key, simulator=simulator, peak_mb=peak_rss_mb(), imports_mb=imports_mb
    )
    print(json.dumps(asdict(measured)))


def measure(simulator: str, model: Model, quick: bool) -> Measurement:
    """Run one (model, simulator) pair in a new interpreter and read its answer back."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", simulator, model.key]
    if quick:
        command.append("--quick")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{simulator} on {model.key} failed (exit {done.returncode}):\n{done.stderr}")
    return Measurement(**json.loads(done.stdout.splitlines()[-1]))


# --- the report ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A speed-up the issue asks for: qsim's requests/s at least ``minimum`` times the peer's."""

    model: str
    peer: str
    minimum: float


TARGETS = (
    Target("mm1", "simpy", 4),
    Target("mm2000", "simpy", 4),
    Target("burst", "simpy", 4),
    Target("mm1", "ciw", 8),
    Target("mm2000", "ciw", 50),
    Target("burst", "ciw", 50),
)


def find(measurements: Sequence[Measurement], model: str, simulator: str) -> Measurement | None:
    return next((m for m in measurements if m.model == model and m.simulator == simulator), None)


def speedup(measurements: Sequence[Measurement], model: str, peer: str) -> float | None:
    """qsim's requests/s over the peer's: the same as the time ratio when both ran the same requests."""
    ours, theirs = find(measurements, model, "qsim"), find(measurements, model, peer)
    return None if ours is None or theirs is None else ours.rate / theirs.rate


def target_rows(measurements: Sequence[Measurement], catalogue: dict[str, Model]) -> list[list[str]]:
    """One row per target that this run can judge, each with PASS or MISS."""
    rows = []
    for target in TARGETS:
        ratio = speedup(measurements, target.model, target.peer)
        if ratio is not None:
            claim = f"{catalogue[target.model].title}: qsim >= {target.minimum:g}x {NAMES[target.peer]}"
            rows.append([claim, f"{ratio:.1f}x", "PASS" if ratio >= target.minimum else "MISS"])
    for m in measurements:
        if m.simulator == "qsim" and m.requests >= MEMORY_AT_REQUESTS:
            claim = f"{catalogue[m.model].title}: qsim peak memory < {MEMORY_LIMIT_MB:g} MB at {m.requests:,} requests"
            rows.append([claim, f"{m.peak_mb:.0f} MB", "PASS" if m.peak_mb < MEMORY_LIMIT_MB else "MISS"])
    return rows


def detail_rows(measurements: Sequence[Measurement], catalogue: dict[str, Model]) -> list[list[str]]:
    """One row per (model, simulator): ratios first, then the absolute numbers behind them."""
    rows = []
    for m in measurements:
        model = catalogue[m.model]
        ratio = speedup(measurements, m.model, m.simulator) if m.simulator != "qsim" else None
        theory = model.theory_wait()
        rows.append([
            model.title, NAMES[m.simulator],
            "-" if ratio is None else f"{ratio:.1f}x",
            f"{m.rate:,.0f}", f"{m.wall:.3g}", f"{m.requests:,}",
            f"{m.peak_mb:.0f}", f"{m.imports_mb:.0f}",
            f"{m.mean_wait:.4g}", "-" if theory is None else f"{theory:.4g}",
            f"{m.expired_share:.2%}" if math.isfinite(model.patience) else "-",
        ])  # fmt: skip
    return rows


TARGET_HEADERS = ["target", "measured", "verdict"]
DETAIL_HEADERS = [
    "model", "simulator", "qsim speed-up", "requests/s", "wall s", "requests",
    "peak MB", "imports MB", "mean wait s", "Erlang C s", "expired",
]  # fmt: skip


def render(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    """A table as aligned text for the terminal, or as Markdown for the README and results.md."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in [list(headers), ["-" * w for w in widths], *rows])  # fmt: skip


def qsim_notes(measurements: Sequence[Measurement]) -> list[str]:
    """Where qsim's wall time went: the event loop against summary and time series."""
    return [
        f"- qsim on {m.model}: {m.engine:.3f} s of {m.wall:.3f} s in the event loop, "
        f"{m.wall - m.engine:.3f} s in the summary and time series"
        for m in measurements
        if m.simulator == "qsim" and m.engine is not None
    ]


def machine() -> str:
    """CPU, Python and library versions: ratios travel between machines better than times, but not perfectly."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        lines = cpuinfo.read_text().splitlines()
        names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        cpu = names[0] if names else cpu
    libraries = ", ".join(f"{name} {version(name)}" for name in ("simpy", "ciw", "numpy"))
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {qsim_revision()}, {libraries}"


def qsim_revision() -> str:
    """Which qsim was measured: the commit of the imported ``sim`` package, flagged when it has local edits."""
    import sim

    package = Path(sim.__file__).resolve().parent

    def git(*command: str) -> str:
        done = subprocess.run(["git", "-C", str(package), *command], capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return f"qsim {version('qsim')} from {package}"
    edited = " with uncommitted changes" if git("status", "--porcelain", "--", ".") else ""
    return f"qsim {version('qsim')} at commit {commit}{edited}"


def report(measurements: Sequence[Measurement], catalogue: dict[str, Model], quick: bool, markdown: bool) -> str:
    """The whole printout: targets with verdicts, then every measurement, then how they were taken."""
    title = "qsim against idiomatic SimPy and Ciw" + (" (--quick: 10x fewer requests)" if quick else "")
    heading = "## " if markdown else ""
    return "\n".join([
        f"{'# ' if markdown else ''}{title}",
        "",
        f"{datetime.now():%Y-%m-%d %H:%M}, {machine()}, seed {SEED}.",
        "",
        f"{heading}Targets (speed-up = qsim requests/s / peer requests/s, measured in this run)",
        "",
        render(TARGET_HEADERS, target_rows(measurements, catalogue), markdown),
        "",
        f"{heading}Measurements (each in a fresh process)",
        "",
        render(DETAIL_HEADERS, detail_rows(measurements, catalogue), markdown),
        "",
        *qsim_notes(measurements),
        "- peak MB: ru_maxrss of the child process at the end (imports included); "
        "imports MB: the same right after importing the simulator, before the run.",
        "- Ciw runs fewer requests on M/M/2000 (too slow for more): compare requests/s, not wall time.",
        "",
    ])  # fmt: skip


# --- command line --------------------------------------------------------------------------


def choices(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type for a comma-separated subset of ``allowed``, kept in ``allowed``'s order."""

    def parse(text: str) -> list[str]:
        wanted = [word.strip() for word in text.split(",") if word.strip()]
        unknown = [word for word in wanted if word not in allowed]
        if unknown or not wanted:
            raise argparse.ArgumentTypeError(f"got {text!r}; choose from {','.join(allowed)}")
        return [name for name in allowed if name in wanted]

    return parse


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10x fewer requests: a smoke test of under a minute")
    parser.add_argument("--only", type=choices(SIMULATORS), default=list(SIMULATORS), help="e.g. qsim,simpy")
    parser.add_argument("--models", type=choices(MODELS), default=list(MODELS), help="e.g. mm1,burst")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--child", nargs=2, metavar=("SIMULATOR", "MODEL"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = arguments(argv)
    if args.child:
        simulator, key = args.child
        child(simulator, key, args.quick)
        return
    catalogue = models(args.quick)
    measurements = []
    for key in args.models:
        for simulator in args.only:
            if catalogue[key].scenario is not None and simulator != "qsim":
                continue  # no peer models SQS delivery and Lambda scaling
            measured = measure(simulator, catalogue[key], args.quick)
            print(f"{key:>7} {simulator:<6} {measured.requests:>9,} requests in {measured.wall:8.2f} s, "
                  f"peak {measured.peak_mb:5.0f} MB", file=sys.stderr, flush=True)  # fmt: skip
            measurements.append(measured)
    print(report(measurements, catalogue, args.quick, args.markdown))
    if not args.quick:
        RESULTS.write_text(report(measurements, catalogue, args.quick, markdown=True))
        print(f"(written to {RESULTS})", file=sys.stderr)


if __name__ == "__main__":
    main()
