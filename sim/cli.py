"""The ``qsim`` command: ``qsim run SCENARIO`` and ``qsim check SCENARIO...``.

Bad input ends with one line on stderr (``qsim: error: <file>: <field>: ...``) and exit
code 2, never a traceback; nothing is written before the scenario has been validated.
"""

from __future__ import annotations

import argparse
import math
import numbers
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pandas as pd

from sim import __version__
from sim.experiment import Result, run
from sim.scenario import ScenarioError, load_scenario, parse_override
from sim.units import format_duration

EXIT_BAD_INPUT = 2

DURATION_COLUMNS = ("latency", "wait", "sim_time", "wall_time")
SHARE_COLUMNS = ("timeout_rate", "utilization")


class _UsageError(Exception):
    """A command line argparse refuses; reported as one line like every other bad input."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message}; see {self.prog} --help")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qsim", description="Discrete-event simulation of queues in front of bounded compute.")
    parser.add_argument("--version", action="version", version=f"qsim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    running = commands.add_parser("run", help="run a scenario and write results/<name>/")
    running.add_argument("scenario", type=Path)
    running.add_argument("--out", type=Path, help="results folder (default: results/<name>)")
    running.add_argument("--seed", type=int, help="override the scenario's seed")
    running.add_argument("--replications", type=int, help="override the number of replications")
    running.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                         help="override a field before validation, e.g. producers.0.arrivals.rate=800/s (repeatable)")
    running.add_argument("--json", action="store_true", help="print the summary rows as JSON instead of a table")
    running.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    checking = commands.add_parser("check", help="validate scenario files without running them")
    checking.add_argument("scenarios", type=Path, nargs="+")
    return parser


def _format_value(column: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, numbers.Real) or math.isnan(float(value)):
        return "-"
    if column.startswith(SHARE_COLUMNS):
        return f"{value:.2%}"
    if column.startswith(DURATION_COLUMNS):
        return format_duration(float(value))
    if column in ("throughput", "goodput"):
        return f"{value:,.1f}/s"
    if column == "wasted_work":
        return f"{value:,.1f} s"
    number = float(value)
    if number.is_integer():
        return f"{int(number):,}"
    return f"{number:,.3f}"


def format_summary(result: Result) -> str:
    """A readable table: metrics down, producer groups (and mean +- CI with replications) across."""
    summary = result.summary
    aggregated = (summary["replication"] == "mean").any()
    metrics = [c for c in summary.columns if c not in ("scenario", "replication", "producer")]
    columns: dict[str, list[str]] = {}
    for producer in summary["producer"].unique():
        rows = summary[summary["producer"] == producer]
        if aggregated:
            mean = rows[rows["replication"] == "mean"].iloc[0]
            low = rows[rows["replication"] == "ci_low"].iloc[0]
            high = rows[rows["replication"] == "ci_high"].iloc[0]
            cells = []
            for metric in metrics:
                text = _format_value(metric, mean[metric])
                if not (isinstance(low[metric], float) and math.isnan(low[metric])) and low[metric] != high[metric]:
                    text += f" [{_format_value(metric, low[metric])}, {_format_value(metric, high[metric])}]"
                cells.append(text)
            columns[str(producer)] = cells
        else:
            row = rows.iloc[0]
            columns[str(producer)] = [_format_value(m, row[m]) for m in metrics]
    table = pd.DataFrame(columns, index=metrics)
    scenario = result.scenario
    heading = f"{scenario.name}: {scenario.description}".rstrip(": ")
    note = f"{len(result.runs)} replications: mean [95% CI]" if aggregated else "1 replication"
    return f"{heading}\n{note}\n{table.to_string()}"


class _ProgressBar:
    """A tqdm bar that appears only if the run lasts more than two seconds."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=1000, delay=2.0, leave=False, file=sys.stderr,
                         bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")

    def __call__(self, fraction: float, now: float) -> None:
        self._bar.set_postfix_str(f"sim time {format_duration(now)}", refresh=False)
        self._bar.update(min(1000, int(fraction * 1000)) - self._bar.n)

    def close(self) -> None:
        self._bar.close()


def _run(args: argparse.Namespace) -> int:
    if args.replications is not None and args.replications < 1:
        raise ScenarioError(f"--replications: got {args.replications}; give an integer >= 1")
    if args.seed is not None and args.seed < 0:
        raise ScenarioError(f"--seed: got {args.seed}; give an integer >= 0")
    overrides = dict(parse_override(text) for text in args.overrides)
    # --seed and --replications are overrides like --set, so the scenario as run (and its
    # manifest) says what was really run.
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.replications is not None:
        overrides["replications"] = args.replications
    scenario = load_scenario(args.scenario, overrides)
    out = args.out if args.out is not None else Path("results") / scenario.name
    if out.exists() and not out.is_dir():
        raise ScenarioError(f"--out {out}: got a file; give a folder for the results (it is created if missing)")
    bar = None if args.json else _ProgressBar()
    began = time.perf_counter()
    try:
        result = run(scenario, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    from sim.report import write_results

    try:
        write_results(result, out, seed=scenario.seed, wall_time=time.perf_counter() - began,
                      figures=not args.no_figures)
    except OSError as error:
        reason = error.strerror or str(error)
        raise ScenarioError(f"--out {out}: cannot write the results ({reason}); choose another folder") from None
    if args.json:
        print(result.summary.to_json(orient="records", indent=2))
    else:
        print(format_summary(result))
        print(f"\nresults written to {out}/")
    return 0


def _check(args: argparse.Namespace) -> int:
    """Validate every file (not just up to the first bad one): one line per file."""
    status = 0
    for path in args.scenarios:
        try:
            scenario = load_scenario(path)
        except ScenarioError as error:
            print(f"qsim: error: {error}", file=sys.stderr)
            status = EXIT_BAD_INPUT
        else:
            print(f"{path}: ok ({scenario.name}, {len(scenario.producers)} producer(s))")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` and return the exit code (2 for bad input)."""
    try:
        args = _parser().parse_args(argv)
        if args.command == "run":
            return _run(args)
        return _check(args)
    except (ScenarioError, _UsageError) as error:
        print(f"qsim: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("qsim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
