"""What a command will cost in memory and time, known before it starts; refusing what cannot fit.

A run keeps every request and job in memory until it is summarised (:mod:`sim.model.workload`
counts them), so a scenario that asks for ten billion requests would only fail, minutes
later, with a ``MemoryError``. Here the counts become bytes and seconds with the constants
below, measured on the engine as it is; a command whose runs need more memory than the
machine has available is refused with one line that says how big it is and what to change,
and one expected to take minutes says so before it starts.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sim.engine.choice import engine_for
from sim.experiments.executors import cpu_count
from sim.experiments.planning import DEFAULT_START, DEFAULT_STEPS
from sim.experiments.sweep import Experiment, build_point, is_number
from sim.experiments.targets import PlanSpec
from sim.model.errors import ScenarioError
from sim.model.keeping import requests_kept
from sim.model.schema import Scenario
from sim.model.workload import Workload, workload

BASE_BYTES = 100 * 2**20
"""A Python process with qsim and its libraries loaded (measured: ~81 MB)."""


@dataclass(frozen=True)
class UnitCost:
    """Memory kept and the engine's speed for one unit of work."""

    bytes: float
    per_second: float


JOB = UnitCost(bytes=150, per_second=100_000)
"""A request's visit to a stage (measured: 110-140 B; 145,000-285,000 per second, analysis included,
on a loaded 2-core machine; the rate is set lower to stay on the safe side)."""
CLIENT_ATTEMPT = UnitCost(bytes=320, per_second=20_000)
"""An attempt of a retrying client, instead of :data:`JOB` (measured: 250-310 B; 50,000-75,000 per
second, down to ~15,000 in a retry storm, where deadlines and backoff timers add events)."""
RECEIVE = UnitCost(bytes=350, per_second=20_000)
"""A receive of a message by broker delivery (measured: ~330 B, ~34,000 per second)."""
COMPILED_JOB = UnitCost(bytes=150, per_second=1_000_000)
"""A request's visit to a stage in the compiled engine (measured: 1.5 M per second streamed on a
loaded 2-core machine, M/M/1; set lower to stay on the safe side)."""
STREAMED_BYTES = 64 * 2**20
"""A streamed run's fixed memory: the tally's time series and sketches, and the rows of two chunks."""
REQUEST_ROWS_PER_SECOND = 25_000
"""Rows of ``requests.csv.gz`` (the first run's requests) written per second."""

NOTICE_SECONDS = 180.0
"""A command expected to take longer than this says so on stderr before it starts."""

REMEDIES: tuple[str, ...] = (
    "set until to a shorter time",
    "lower the arrivals' count, rate or stop",
)
"""What a refusal suggests, in order. Keep to what exists; extend it when qsim gains a way to run
big scenarios in less memory (a mode that does not keep every request, a leaner engine)."""


def available_memory() -> int | None:
    """Bytes of memory this process could still get: ``MemAvailable``, capped by a cgroup limit."""
    found: list[int] = []
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    if not found:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    with contextlib.suppress(OSError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit.isdigit() and used.isdigit():
            found.append(int(limit) - int(used))
    return min(found) if found else None


@dataclass(frozen=True)
class Estimate:
    """The cost of a command: its largest run, and all its runs together."""

    largest: Workload
    """The counts of the run that needs the most memory."""
    run_bytes: float
    """Memory that run keeps (beyond the Python process itself)."""
    seconds: float
    """Every run one after another on one core, plus writing the first run's requests."""
    runs: int
    parallel: int
    """Runs computed at once in local worker processes (0 or 1: in this process, or on a cluster)."""
    peak_bytes: float
    """Memory needed at once: the processes, the runs in flight, and the first run kept for its requests."""

    def text(self) -> str:
        """``~20,000 requests, ~2 MB, <1 s`` (per run when there are several; the time is for all)."""
        per_run = " per run" if self.runs > 1 else ""
        backlog = f" (backlog ~{_count(self.largest.backlog)})" if self.largest.backlog >= 1 else ""
        memory = size_text(self.run_bytes)
        return (f"~{_count(self.largest.requests)} requests{per_run}{backlog}, {'' if '<' in memory else '~'}{memory}, "
                f"{_duration(self.seconds)}")


def _count(value: float) -> str:
    return f"{value:,.0f}" if value < 1e15 else f"{value:.1e}"


def size_text(value: float) -> str:
    """Bytes as ``1.5 GB``, ``120 MB``."""
    for unit, scale in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20)):
        if value >= scale:
            shown = value / scale
            return f"{shown:,.0f} {unit}" if shown >= 10 else f"{shown:.1f} {unit}"
    return "<1 MB"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "<1 s"
    for unit, scale in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= 2 * scale:
            return f"~{seconds / scale:,.0f} {unit}" if seconds / scale >= 10 else f"~{seconds / scale:.1f} {unit}"
    return f"~{seconds:.0f} s"


def _run_cost(counts: Workload, scenario: Scenario) -> tuple[float, float]:
    """Bytes kept and seconds taken by one run with these counts.

    A streamed run (``report.requests`` none or a sample) keeps only the rows of requests still in
    the system (at worst the backlog) and its sample; the compiled engine is far faster per job.
    """
    plain = counts.jobs - counts.client_attempts
    job = COMPILED_JOB if engine_for(scenario) == "compiled" else JOB
    memory = plain * job.bytes + counts.client_attempts * CLIENT_ATTEMPT.bytes + counts.receives * RECEIVE.bytes
    time = (plain / job.per_second + counts.client_attempts / CLIENT_ATTEMPT.per_second
            + counts.receives / RECEIVE.per_second)
    kept = requests_kept(scenario).kept
    if kept is not None:
        live = counts.backlog + kept
        memory = min(memory, STREAMED_BYTES + live * CLIENT_ATTEMPT.bytes)
    return memory, time


def estimate(scenarios: Sequence[Scenario], replications: int, workers: int | None = 1,
             remote: bool = False) -> Estimate:
    """The cost of running each of ``scenarios`` ``replications`` times.

    ``workers`` as ``--workers`` takes it (``None``: one per core); ``remote`` when the runs
    happen on a cluster (only the first run is redone here, for its requests).
    """
    loads = [workload(scenario) for scenario in scenarios]
    costs = [(_run_cost(load, scenario), load) for load, scenario in zip(loads, scenarios, strict=True)]
    (run_bytes, _), largest = max(costs, key=lambda item: item[0][0])
    runs = len(scenarios) * replications
    kept = [requests_kept(scenario).kept for scenario in scenarios]
    rows = largest.requests if None in kept else max(k or 0 for k in kept)  # the first run's rows, written
    seconds = sum(time for (_, time), _ in costs) * replications + rows / REQUEST_ROWS_PER_SECOND
    parallel = 0 if remote else min(cpu_count() if workers is None else workers, runs)
    if parallel <= 1:  # in this process: the first run is kept (for its requests) beside the current one
        peak = BASE_BYTES + run_bytes * min(runs, 2)
    else:  # a pool: each worker holds one run; this process redoes the first at the end
        peak = BASE_BYTES + run_bytes + parallel * (BASE_BYTES + run_bytes)
    return Estimate(largest=largest, run_bytes=run_bytes, seconds=seconds, runs=runs, parallel=parallel,
                    peak_bytes=peak)


def check(cost: Estimate, where: str, available: int | None = None) -> None:
    """Refuse (:class:`ScenarioError`) a command that needs more memory than is available."""
    available = available_memory() if available is None else available
    if available is None or (cost.peak_bytes <= available and math.isfinite(cost.peak_bytes)):
        return
    remedies = list(REMEDIES)
    work = cost.largest.jobs + cost.largest.receives
    jobs = f" (~{_count(work)} jobs: stage visits, attempts, receives)" if work > 1.05 * cost.largest.requests else ""
    at_once = ""
    if cost.parallel > 1:
        at_once = f" with {cost.parallel} runs at once"
        remedies.insert(0, "run fewer at once (--workers 1)")
    raise ScenarioError(
        f"{where}: too big for this machine: ~{_count(cost.largest.requests)} requests{jobs} per run need "
        f"~{size_text(cost.peak_bytes)} of "
        f"memory{at_once}, and {size_text(available)} is available; {', or '.join(remedies)}"
    )


_LAST: list[Estimate] = []
"""The estimate of the command running in this process, for :func:`out_of_memory`."""


def afford(scenarios: Sequence[Scenario], replications: int, where: str, workers: int | None = 1,
           remote: bool = False, notify: bool = True) -> Estimate:
    """Estimate a command, refuse it if it cannot fit (:func:`check`), and (``notify``) print the
    :func:`notice` of a long one on stderr."""
    cost = estimate(scenarios, replications, workers, remote)
    check(cost, where)
    _LAST[:] = [cost]
    line = notice(cost)
    if notify and line is not None:
        print(line, file=sys.stderr)
    return cost


def out_of_memory() -> str:
    """The error for a ``MemoryError`` that happened anyway: what was estimated and what to change."""
    size = f" (estimated ~{size_text(_LAST[-1].peak_bytes)})" if _LAST else ""
    return f"out of memory{size}; this machine cannot hold the run: {', or '.join(REMEDIES)}"


def notice(cost: Estimate) -> str | None:
    """One line to print before a command that will take minutes (``None`` for a quick one); the
    runs are spread over the local workers, if any."""
    seconds = cost.seconds / max(1, cost.parallel)
    if not seconds > NOTICE_SECONDS:
        return None
    runs = f" over {cost.runs} runs" if cost.runs > 1 else ""
    workers = f" on {cost.parallel} workers" if cost.parallel > 1 else ""
    return (f"qsim: this will take {_duration(seconds)}{workers} (~{_count(cost.largest.requests)} requests per "
            f"run{runs}, ~{size_text(cost.peak_bytes)} of memory); Ctrl-C stops it")


def plan_work(experiment: Experiment, spec: PlanSpec) -> tuple[list[Scenario], int]:
    """The probes a plan is expected to run, as scenarios, and the replications of each.

    The two ends of the range, then as many bisection steps as the range allows (down to
    adjacent integers, or to the tolerance), each counted at the dearer end's cost (for the
    fields a plan varies, a probe in between costs no more). Refinements of unsure probes are
    not counted. An end that does not validate is left out: the planner reports it.
    """
    ends = []
    for value in (spec.low, spec.high):
        try:
            ends.append(build_point(experiment.raw, {spec.path: value}, 0, experiment.base_dir, experiment.source,
                                    str(experiment.source or "scenario")))
        except ScenarioError:
            continue
    replications = spec.replications or max(experiment.base.replications, DEFAULT_START)
    if not ends:
        return [experiment.base], replications
    values = [point.values[spec.path] for point in ends]
    steps = 0
    if len(ends) == 2 and all(is_number(value) for value in values) and values[1] > values[0]:
        span = float(values[1] - values[0])
        integer = all(isinstance(value, int) for value in values)
        width = 1.0 if integer else (spec.tolerance or span / DEFAULT_STEPS)
        steps = math.ceil(math.log2(max(2.0, span / width)))
    dearer = max(ends, key=lambda point: _run_cost(workload(point.scenario), point.scenario)[0]).scenario
    return [point.scenario for point in ends] + [dearer] * steps, replications
