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
SIMULATORS = ("qsim", "compiled", "simpy", "ciw")
MODELS = ("mm1", "mm2000", "burst", "sqs", "mm1-100m", "day")
NAMES = {"qsim": "qsim (SimPy engine)", "compiled": "qsim compiled", "simpy": "SimPy", "ciw": "Ciw"}
LIBRARIES = {"qsim": "sim", "compiled": "sim", "simpy": "simpy", "ciw": "ciw"}
BURST_REPEATS = 5
"""The burst is a short run (~0.1 s in the compiled engine): it is measured this many times per simulator
and the spread of the ratio is reported."""
"""What a child imports before its baseline memory reading (and nothing else of the others)."""

MEMORY_LIMIT_MB = 200.0
MEMORY_AT_REQUESTS = 1_000_000
"""The SimPy engine's memory target is stated for runs of this many requests; smaller runs are not judged."""
STREAMING_LIMIT_MB = 1024.0
"""The compiled engine's target for 100 M requests with report.requests: none."""


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


def best(measurements: Sequence[Measurement]) -> Measurement:
    """The fastest of repeated measurements of one pair (the least disturbed by the rest of the machine)."""
    return min(measurements, key=lambda m: m.wall)


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
    """A speed-up asked for: ``ours``'s requests/s at least ``minimum`` times the peer's."""

    model: str
    peer: str
    minimum: float
    ours: str = "qsim"


TARGETS = (
    Target("mm1", "simpy", 4),
    Target("mm2000", "simpy", 4),
    Target("burst", "simpy", 4),
    Target("mm1", "ciw", 8),
    Target("mm2000", "ciw", 50),
    Target("burst", "ciw", 50),
    Target("mm1", "simpy", 100, "compiled"),
    Target("mm2000", "simpy", 100, "compiled"),
    Target("burst", "simpy", 50, "compiled"),
)


def every(measurements: Sequence[Measurement], model: str, simulator: str) -> list[Measurement]:
    return [m for m in measurements if m.model == model and m.simulator == simulator]


def find(measurements: Sequence[Measurement], model: str, simulator: str) -> Measurement | None:
    found = every(measurements, model, simulator)
    return best(found) if found else None


def speedup(measurements: Sequence[Measurement], model: str, peer: str, ours: str = "qsim") -> float | None:
    """Our requests/s over the peer's (fastest of each): the time ratio when both ran the same requests."""
    mine, theirs = find(measurements, model, ours), find(measurements, model, peer)
    return None if mine is None or theirs is None else mine.rate / theirs.rate


def spread(measurements: Sequence[Measurement], model: str, peer: str, ours: str) -> str:
    """The range of the ratio over repeated measurements (each of ours against each of theirs' median)."""
    mine, theirs = every(measurements, model, ours), every(measurements, model, peer)
    if len(mine) < 2 or not theirs:
        return ""
    rates = sorted(m.rate for m in theirs)
    middle = rates[len(rates) // 2]
    ratios = sorted(m.rate / middle for m in mine)
    return f" (spread over {len(mine)} runs: {ratios[0]:.0f}x to {ratios[-1]:.0f}x)"


def target_rows(measurements: Sequence[Measurement], catalogue: dict[str, Model]) -> list[list[str]]:
    """One row per target that this run can judge, each with PASS or MISS."""
    rows = []
    for target in TARGETS:
        ratio = speedup(measurements, target.model, target.peer, target.ours)
        if ratio is not None:
            claim = f"{catalogue[target.model].title}: {NAMES[target.ours]} >= {target.minimum:g}x {NAMES[target.peer]}"
            measured = f"{ratio:.1f}x{spread(measurements, target.model, target.peer, target.ours)}"
            rows.append([claim, measured, "PASS" if ratio >= target.minimum else "MISS"])
    for m in measurements:
        if m.simulator == "qsim" and m.requests >= MEMORY_AT_REQUESTS:
            claim = f"{catalogue[m.model].title}: qsim peak memory < {MEMORY_LIMIT_MB:g} MB at {m.requests:,} requests"
            rows.append([claim, f"{m.peak_mb:.0f} MB", "PASS" if m.peak_mb < MEMORY_LIMIT_MB else "MISS"])
        if m.simulator == "compiled" and m.model == "mm1-100m":
            claim = f"{catalogue[m.model].title}: peak memory < {STREAMING_LIMIT_MB:g} MB; time stated"
            rows.append([claim, f"{m.peak_mb:.0f} MB in {m.wall:.0f} s",
                         "PASS" if m.peak_mb < STREAMING_LIMIT_MB else "MISS"])
        if m.simulator == "compiled" and m.model == "day":
            claim = f"{catalogue[m.model].title}: runs on one core; time and peak memory stated"
            rows.append([claim, f"{m.wall:.0f} s, {m.peak_mb:.0f} MB", "PASS"])
    return rows


def detail_rows(measurements: Sequence[Measurement], catalogue: dict[str, Model]) -> list[list[str]]:
    """One row per (model, simulator): ratios first, then the absolute numbers behind them."""
    rows = []
    shown = {(m.model, m.simulator): find(measurements, m.model, m.simulator) for m in measurements}
    for m in shown.values():
        assert m is not None
        model = catalogue[m.model]
        ratio = speedup(measurements, m.model, m.simulator) if m.simulator not in ("qsim", "compiled") else None
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
    """Where qsim's wall time went: the event loop against summary and time series; the compile."""
    notes = []
    for key in dict.fromkeys((m.model, m.simulator) for m in measurements):
        m = find(measurements, *key)
        if m is None or m.engine is None:
            continue
        notes.append(f"- {NAMES[m.simulator]} on {m.model}: {m.engine:.3f} s of {m.wall:.3f} s in the engine "
                     f"(with the compiled engine the streaming statistics are folded in it), "
                     f"{m.wall - m.engine:.3f} s in the summary and time series"
                     + (f"; compiling (or loading the cache) took {m.compile:.1f} s before the run, not counted"
                        if m.compile is not None else ""))
    return notes


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
    compiled = ("- qsim compiled: the Numba engine with report.requests: none (statistics streamed, percentiles from "
                "the sketch within 0.5 %); the same sim.run, summary and time series included.")
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
        compiled,
        f"- the burst ran {BURST_REPEATS} times per simulator (a short run): ratios use the fastest of each.",
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
    parser.add_argument("--models", type=choices(MODELS), default=None,
                        help="e.g. mm1,burst (default: all; with --quick, all but mm1-100m and day)")
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
    keys = args.models or [key for key in MODELS if not (args.quick and catalogue[key].compiled_only)]
    measurements = []
    for key in keys:
        model = catalogue[key]
        for simulator in args.only:
            if model.scenario is not None and simulator != "qsim":
                continue  # no peer models SQS delivery and Lambda scaling (nor does the compiled engine)
            if model.compiled_only and simulator != "compiled":
                continue
            for _ in range(BURST_REPEATS if key == "burst" and simulator in ("compiled", "simpy") else 1):
                measured = measure(simulator, model, args.quick)
                print(f"{key:>8} {simulator:<8} {measured.requests:>11,} requests in {measured.wall:8.2f} s, "
                      f"peak {measured.peak_mb:5.0f} MB", file=sys.stderr, flush=True)  # fmt: skip
                measurements.append(measured)
    print(report(measurements, catalogue, args.quick, args.markdown))
    if not args.quick and args.models is None and list(args.only) == list(SIMULATORS):  # a full run only
        RESULTS.write_text(report(measurements, catalogue, args.quick, markdown=True))
        print(f"(written to {RESULTS})", file=sys.stderr)


if __name__ == "__main__":
    main()
