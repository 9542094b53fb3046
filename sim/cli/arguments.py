"""The ``qsim`` command line's grammar: commands, their options and their help.

Kept apart from what the commands do (:mod:`sim.cli`), so the list of options reads in one
place. A command line argparse refuses raises :class:`UsageError`, reported as one line like
every other bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

from sim.about import __version__
from sim.cli import evaluate
from sim.model.engines import ENGINES
from sim.output.replay import MAX_DOTS


class UsageError(Exception):
    """A command line argparse refuses; reported as one line like every other bad input."""



class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}; see {self.prog} --help")


def shared() -> tuple[Parser, Parser]:
    """Options every running command takes: overrides and output, and where to run."""
    scenario = Parser(add_help=False)
    scenario.add_argument("--out", type=Path, help="results folder (default: results/<name>)")
    scenario.add_argument("--seed", type=int, help="override the scenario's seed")
    scenario.add_argument("--replications", type=int, help="override the number of replications")
    scenario.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                          help="override a field before validation, e.g. producers.0.arrivals.rate=800/s (repeatable)")
    scenario.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    scenario.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    scenario.add_argument("--engine", choices=ENGINES, help="which engine runs it (overrides the scenario's engine:; "
                          "default auto: the compiled engine when the scenario allows it)")
    execution = Parser(add_help=False)
    execution.add_argument("--workers", type=int, metavar="N",
                           help="local worker processes (default: all cores for sweeps, compare and plan; "
                                "in-process for one scenario)")
    execution.add_argument("--dask", metavar="ADDRESS", help="run on an existing Dask cluster, e.g. tcp://host:8786")
    execution.add_argument("--fresh", action="store_true", help="ignore finished runs in <out>/cache (recompute)")
    return scenario, execution


METRICS_HELP = ("the summary columns the terminal table shows, in this order, e.g. latency_p99,timeout_rate,goodput "
                "(default: the main ones, without those that are zero everywhere)")


def parser() -> argparse.ArgumentParser:
    parser = Parser(prog="qsim", description="Discrete-event simulation of queues in front of bounded compute.")
    parser.add_argument("--version", action="version", version=f"qsim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    scenario, execution = shared()
    running = commands.add_parser("run", parents=[scenario, execution],
                                  help="run a scenario (or its sweep) and write results/<name>/")
    running.add_argument("scenario", type=Path)
    running.add_argument("--sweep", action="append", default=[], metavar="KEY.PATH=V1,V2,...",
                         help="sweep a field over values (repeatable: a grid), e.g. consumers.concurrency=10,20,40")
    running.add_argument("--x", metavar="KEY.PATH", help="the swept field on the curves' x axis (default: the first)")
    running.add_argument("--no-requests", action="store_true",
                         help="skip requests.parquet and jobs.parquet (one row per request: large for big runs)")
    running.add_argument("--metrics", metavar="M1,M2,...", help=METRICS_HELP)
    checking = commands.add_parser("check", help="validate scenario files (and their sweeps) without running them")
    checking.add_argument("scenarios", type=Path, nargs="+")
    comparing = commands.add_parser("compare", parents=[scenario, execution],
                                    help="run scenarios on the same random numbers and compare them")
    comparing.add_argument("scenarios", type=Path, nargs="+")
    comparing.add_argument("--vary", metavar="KEY.PATH=V1,V2,...",
                           help="compare values of one field of one scenario, e.g. queue.discipline=fifo,lifo")
    comparing.add_argument("--metrics", metavar="M1,M2,...", help=METRICS_HELP)
    planning = commands.add_parser("plan", parents=[scenario, execution],
                                   help="find the smallest capacity (or largest load) that meets targets")
    planning.add_argument("scenario", type=Path)
    direction = planning.add_mutually_exclusive_group()
    direction.add_argument("--vary", metavar="KEY.PATH", help="find the smallest value meeting every target")
    direction.add_argument("--maximize", metavar="KEY.PATH", help="find the largest value meeting every target")
    planning.add_argument("--min", dest="low", metavar="VALUE", help="lower end of the search (units allowed)")
    planning.add_argument("--max", dest="high", metavar="VALUE", help="upper end of the search")
    planning.add_argument("--target", dest="targets", action="append", metavar="METRIC<=VALUE",
                          help="e.g. 'latency_p99<=2s', 'timeout_rate<=1%%' (repeatable: all must hold)")
    planning.add_argument("--confidence", type=float, help="one-sided confidence for every target (default 0.95)")
    planning.add_argument("--max-replications", type=int, help="cap when refining a probe near the boundary")
    planning.add_argument("--tolerance", type=float, help="stop bisecting a real-valued field at this width")
    evaluate.add_parser(commands, [scenario, execution])
    add_animate(commands)
    return parser


ANIMATE_HELP = "write an animation of a run: requests as dots through the queue and the consumers, coloured by fate"


def add_animate(commands: Any) -> None:
    """``qsim animate``: one run replayed as dots (:mod:`sim.cli.animate`)."""
    parser = commands.add_parser("animate", help=ANIMATE_HELP)
    parser.add_argument("scenario", type=Path)
    parser.add_argument("--out", type=Path, help="the file to write: .gif (default results/<name>.gif), .html "
                        "(a page with a player) or .mp4 (needs ffmpeg)")
    parser.add_argument("--from", dest="start", metavar="TIME", default="0s", help="start of the window (default 0s)")
    parser.add_argument("--to", dest="end", metavar="TIME", help="end of the window (default: 10 s after --from, "
                        "or the end of the run)")
    parser.add_argument("--fps", type=float, default=10.0, help="frames per second of video (default 10)")
    parser.add_argument("--speed", type=float, help="simulated seconds per second of video (default 1, or faster "
                        "so that the video lasts at most 15 s)")
    parser.add_argument("--dots", type=int, default=MAX_DOTS,
                        help=f"requests drawn at most; more are sampled uniformly (default {MAX_DOTS})")
    parser.add_argument("--seed", type=int, help="override the scenario's seed")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a field before validation (repeatable)")
    parser.add_argument("--engine", choices=ENGINES, help="which engine runs it (default: the scenario's)")
