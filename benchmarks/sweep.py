"""How a sweep scales: the flagship scenario over 100 concurrency values x 10 replications.

Runs the same sweep with the SimPy engine on one worker (the reference: the sweep as it ran
before the compiled engine), then with the compiled engine in this process, on a local process
pool of 1 and of 2 workers, and on a Dask ``LocalCluster`` of 2 single-threaded worker processes;
prints wall time, runs per second and the speed-up against the reference, and checks that
every run produced identical numbers (all summary columns but ``wall_time`` and ``engine``,
and the time series).

    .venv/bin/python benchmarks/sweep.py            # 100 points x 10 replications, twice: ~4 minutes
    .venv/bin/python benchmarks/sweep.py --quick    # 20 points x 3 replications, a smoke test

Each executor is measured ``--repeat`` times (interleaved) and the fastest kept; the "cores
busy" column counts every process on the machine, so a value above what the executor asked
for (1 for one worker, 2 for two) says another program was running and the time is suspect.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.experiments.executors import DaskExecutor, Executor, InProcess, ProcessPool  # noqa: E402
from sim.experiments.runner import Runner, SweepResult, run_experiment  # noqa: E402
from sim.experiments.sweep import load_experiment  # noqa: E402

FLAGSHIP = ROOT / "scenarios" / "burst-2k-vs-20k.yaml"


def busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat (zeros elsewhere)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def measure(make: Callable[[], Executor], points: int, replications: int,
            engine: str = "auto") -> tuple[float, float, SweepResult]:
    """Wall time of the whole sweep (executor start-up included), cores busy meanwhile (every process on
    the machine: a busy core this benchmark did not ask for means someone else was running), result."""
    values = ",".join(str(1500 + 20 * i) for i in range(points))
    experiment = load_experiment(FLAGSHIP, {"engine": engine}, sweep=[f"consumers.concurrency={values}"])
    busy, total = busy_jiffies()
    began = time.perf_counter()
    with make() as executor:
        result = run_experiment(experiment, Runner(executor, experiment.base.seed), replications)
    assert isinstance(result, SweepResult)
    seconds = time.perf_counter() - began
    busy_after, total_after = busy_jiffies()
    cores = (os.cpu_count() or 1) * (busy_after - busy) / max(1, total_after - total)
    return seconds, cores, result


def same_numbers(first: SweepResult, other: SweepResult) -> bool:
    try:
        labels = ["wall_time", "engine"]  # which engine ran is a label: the numbers must not depend on it
        pd.testing.assert_frame_equal(first.summary.drop(columns=labels), other.summary.drop(columns=labels))
        pd.testing.assert_frame_equal(first.timeseries, other.timeseries)
    except AssertionError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 points x 3 replications")
    parser.add_argument("--repeat", type=int, default=2,
                        help="measure each executor this many times, interleaved, and keep the fastest (default 2): "
                             "on a shared machine another process can steal a core for a while")
    args = parser.parse_args()
    points, replications = (20, 3) if args.quick else (100, 10)
    runs = points * replications

    from dask.distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    executors: list[tuple[str, Callable[[], Executor], str]] = [
        ("SimPy engine, process pool, 1 worker", lambda: ProcessPool(1), "simpy"),
        ("compiled engine, in-process", InProcess, "auto"),
        ("compiled engine, process pool, 1 worker", lambda: ProcessPool(1), "auto"),
        ("compiled engine, process pool, 2 workers", lambda: ProcessPool(2), "auto"),
        ("compiled engine, Dask LocalCluster, 2 workers", lambda: DaskExecutor(cluster.scheduler_address), "auto"),
    ]
    best: dict[str, tuple[float, float, bool]] = {}
    baseline: SweepResult | None = None
    for attempt in range(args.repeat):
        for name, make, engine in executors:
            print(f"{name} (attempt {attempt + 1}) ...", file=sys.stderr, flush=True)
            seconds, cores, result = measure(make, points, replications, engine)
            baseline = baseline or result
            same = same_numbers(baseline, result) and best.get(name, (0.0, 0.0, True))[2]
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, cores, same)
            else:
                best[name] = (*best[name][:2], same)
    cluster.close()
    rows = [(name, *best[name]) for name, _, _ in executors]
    reference = rows[0][1]  # the SimPy engine on one worker: the sweep as it ran before the compiled engine
    print(f"Sweep of the flagship: {points} concurrency values x {replications} replications = {runs} runs "
          f"of 20,000 requests; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; fastest of {args.repeat} interleaved attempts\n")
    print("| engine and executor | speed-up vs the SimPy engine on 1 worker | wall time | runs/s "
          "| cores busy (whole machine) | same numbers |")
    print("|---|---|---|---|---|---|")
    for name, seconds, cores, same in rows:
        print(f"| {name} | {reference / seconds:.2f}x | {seconds:.1f} s | {runs / seconds:.1f} | {cores:.2f} | "
              f"{'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
