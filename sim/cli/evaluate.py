"""``qsim evaluate``: the same workload and faults through each broker model, and the scorecard.

Kept apart from the other commands (:mod:`sim.cli`), which hands it the helpers every running command shares
(overrides, the results folder, the executor and progress bar, safe writing).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Helpers:
    """What :mod:`sim.cli` shares with its commands."""

    overrides: Callable[..., dict[str, Any]]
    out: Callable[[argparse.Namespace, str], Path]
    execute: Callable[..., Any]
    written: Callable[[Path, Callable[[], object]], None]


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    evaluating = commands.add_parser("evaluate", parents=parents,
                                     help="run one workload and fault schedule through each broker: a scorecard")
    evaluating.add_argument("scenario", type=Path)
    evaluating.add_argument("--brokers", metavar="B1,B2,...",
                            help="which arms: direct, queue, sqs, sqs-fifo, kafka, rabbitmq, redis-pubsub, gcp-pubsub "
                                 "(default: the file's evaluate.brokers, else direct and the six brokers)")


def check(path: Path) -> None:
    """Validate a file's ``evaluate:`` block and every arm (for ``qsim check``); nothing if it has none."""
    from sim.experiments.evaluate import load_evaluation
    from sim.model.scenario import read_scenario_data, split_experiment

    _, extra = split_experiment(read_scenario_data(path))
    if "evaluate" in extra:
        load_evaluation(path, {})


def run(args: argparse.Namespace, helpers: Helpers) -> int:
    from sim.experiments.evaluate import evaluate, load_evaluation
    from sim.output.scorecard import scorecard_text, write_scorecard

    evaluation = load_evaluation(args.scenario, helpers.overrides(args, replications=False), args.brokers,
                                 args.replications)
    out = helpers.out(args, f"{evaluation.name}-evaluate")
    began = time.perf_counter()
    runs = len(evaluation.arms.points) * evaluation.replications
    card = helpers.execute(args, out, runs, True, evaluation.base.seed, True,
                           lambda runner: evaluate(evaluation, runner), "brokers")
    wall_time = time.perf_counter() - began
    helpers.written(out, lambda: write_scorecard(card, out, wall_time=wall_time, figures=not args.no_figures))
    if args.json:
        print(card.table.to_json(orient="records", indent=2))
    else:
        print(scorecard_text(card))
        print(f"\nresults written to {out}/")
    return 0
