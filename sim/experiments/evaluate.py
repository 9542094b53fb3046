"""Evaluating message brokers: one workload and one fault schedule through each broker model, a scorecard.

``qsim evaluate S.yaml --brokers sqs,kafka,...`` takes the scenario's producers, consumers and
faults and gives each *arm* its own queue: ``direct`` (``queue.capacity: 0``, a synchronous call),
``queue`` (an in-memory queue in front of the workers) or a broker model (``queue.broker``, with
that kind's ``evaluate.settings``). Every arm runs with the same seed and replications (common
random numbers: the same arrivals, service demands, keys and crash times), through the comparison
machinery of :mod:`sim.experiments.compare`. The scorecard has one row per arm and, per metric,
the mean over replications with its 95 % Student-t interval, grouped by the criterion it answers:
performance, reliability, scalability, cost. The file may say which arms and settings to use::

    evaluate:
      brokers: [direct, sqs, sqs-fifo, kafka, rabbitmq, redis-pubsub, gcp-pubsub]
      settings: {kafka: {partitions: 12}, rabbitmq: {prefetch: 10}}
      replications: 5
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.analysis.brokered import recovery_time
from sim.analysis.estimates import clip_to_range, t_interval
from sim.engine.faults import crash_times
from sim.engine.streams import replication_seeds
from sim.experiments.compare import Arms, Comparison, compare
from sim.experiments.replication import RunOutcome
from sim.experiments.runner import Runner
from sim.experiments.sweep import Point
from sim.model.broker_specs import BROKER_KINDS
from sim.model.errors import did_you_mean
from sim.model.fault_specs import BrokerOutageSpec, ConsumerOutageSpec, CrashSpec, FaultSpec
from sim.model.scenario import ScenarioError, read_scenario_data, scenario_from_dict, split_experiment
from sim.model.schema import Scenario
from sim.model.units import format_duration

ARMS = ("direct", "queue", *BROKER_KINDS)
DEFAULT_ARMS = ("direct", *BROKER_KINDS)
DEFAULT_REPLICATIONS = 5

UNPROCESSED = ("rejected", "dropped", "failed", "lost", "expired")
"""Outcomes of messages that were never processed and are not in a dead-letter queue: the scorecard's ``lost``."""

#: The scorecard's metrics: (column, criterion, what it says). Recovery columns follow ``duplicates``.
METRICS = (
    ("throughput", "performance", "messages processed per second"),
    ("latency_p50", "performance", "median send-to-processed latency"),
    ("latency_p99", "performance", "99th percentile latency"),
    ("messages_lost", "reliability", "never processed, not dead-lettered: " + ", ".join(UNPROCESSED)),
    ("dead_lettered", "reliability", "moved to a dead-letter queue or topic"),
    ("duplicates", "reliability", "extra successful processings of a message"),
    ("out_of_order", "reliability", "processed after a later message of the same key"),
    ("max_in_system", "scalability", "peak backlog: messages accepted and not yet processed"),
    ("utilization", "scalability", "busy consumer time over the consumers' time (duplicates included)"),
    ("cost_usd", "cost", "broker charges where the broker is priced per use (SQS, Pub/Sub)"),
)
CRITERIA = ("performance", "reliability", "scalability", "cost")


@dataclass(frozen=True)
class Evaluation:
    """What ``qsim evaluate`` runs: the arms (one point each) and the scenario they share."""

    name: str
    base: Scenario
    arms: Arms
    replications: int


def _arm_queue(arm: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    if arm == "direct":
        return {"capacity": 0}
    if arm == "queue":
        return {}
    return {"broker": {"kind": arm, **copy.deepcopy(dict(settings.get(arm) or {}))}}


def parse_brokers(text: str | list[Any], where: str) -> list[str]:
    """``sqs,kafka`` (or a YAML list) -> the arm names, each known and given once."""
    names = [name.strip() for name in text.split(",")] if isinstance(text, str) else text
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ScenarioError(f"{where}: got {text!r}; give broker names separated by commas, e.g. sqs,kafka,rabbitmq")
    for name in names:
        if name not in ARMS:
            raise ScenarioError(f"{where}: got {name!r}; {did_you_mean(name, ARMS)}must be one of: {', '.join(ARMS)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ScenarioError(f"{where}: {repeated[0]!r} appears twice; list each broker once")
    return list(names)


def _evaluate_block(extra: Mapping[str, Any], where: str) -> dict[str, Any]:
    block = extra.get("evaluate", {})
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise ScenarioError(f"{where}: evaluate: got {block!r}; must be a mapping, e.g. "
                            "{brokers: [sqs, kafka], settings: {kafka: {partitions: 12}}}")
    known = ("brokers", "settings", "replications")
    for key in block:
        if key not in known:
            raise ScenarioError(f"{where}: evaluate.{key}: unknown key; {did_you_mean(key, known)}"
                                f"allowed here: {', '.join(known)}")
    settings = block.get("settings", {}) or {}
    if not isinstance(settings, dict):
        raise ScenarioError(f"{where}: evaluate.settings: got {settings!r}; must map broker kinds to their "
                            "settings, e.g. {kafka: {partitions: 12}}")
    for kind, values in settings.items():
        if kind not in BROKER_KINDS:
            raise ScenarioError(f"{where}: evaluate.settings.{kind}: unknown broker kind; "
                                f"{did_you_mean(kind, BROKER_KINDS)}"
                                f"must be one of: {', '.join(BROKER_KINDS)}")
        if not isinstance(values, dict):
            raise ScenarioError(f"{where}: evaluate.settings.{kind}: got {values!r}; must be a mapping of "
                                f"queue.broker keys, e.g. {{partitions: 12}}")
    replications = block.get("replications")
    if replications is not None and (isinstance(replications, bool) or not isinstance(replications, int)
                                     or replications < 2):
        raise ScenarioError(f"{where}: evaluate.replications: got {replications!r}; must be an integer >= 2 "
                            "(confidence intervals need two runs or more)")
    return block


def load_evaluation(path: Path, overrides: Mapping[str, Any], brokers: str | None = None,
                    replications: int | None = None) -> Evaluation:
    """Read the scenario and its ``evaluate:`` block; validate every arm before anything runs."""
    where = str(path)
    data, extra = split_experiment(read_scenario_data(path, overrides))
    block = _evaluate_block(extra, where)
    if not isinstance(data, dict):
        scenario_from_dict(data, base_dir=path.parent, source=path, where=where)  # the usual one-line error
        raise ScenarioError(f"{where}: (top level): must be a mapping")
    if "stages" in data:
        raise ScenarioError(f"{where}: stages: evaluate puts one broker in front of the consumers; write the "
                            "scenario with queue and consumers (no stages)")
    base = scenario_from_dict(data, base_dir=path.parent, source=path, where=where)
    arms = parse_brokers(brokers, "--brokers") if brokers is not None else (
        parse_brokers(block["brokers"], f"{where}: evaluate.brokers") if "brokers" in block else list(DEFAULT_ARMS))
    settings = block.get("settings", {}) or {}
    points = []
    for index, arm in enumerate(arms):
        arm_data = {**copy.deepcopy(data), "queue": _arm_queue(arm, settings)}
        try:
            scenario = scenario_from_dict(arm_data, base_dir=path.parent, source=path, where=where)
        except ScenarioError as error:
            raise ScenarioError(str(error).replace(f"{where}: queue.broker.", f"{where}: evaluate.settings.{arm}.")
                                .replace(f"{where}: queue.", f"{where}: evaluate ({arm}): queue.")) from None
        points.append(Point(index=index, overrides={"queue": arm_data["queue"]}, values={"broker": arm},
                            scenario=scenario))
    count = replications or block.get("replications") or (
        base.replications if base.replications >= 2 else DEFAULT_REPLICATIONS)
    return Evaluation(name=base.name, base=base, arms=Arms(points=points, labels=arms, axis="broker"),
                      replications=int(count))


# --- the scorecard ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """A fault as the scorecard names it, and the windows it made in each replication (start, end)."""

    column: str
    label: str
    windows: list[list[tuple[float, float]]]


def fault_windows(base: Scenario, replications: int, seed: int) -> list[Fault]:
    """Every fault's windows per replication: crashes last until their restart, outages and slow periods
    their window. Crash times at a rate come from the same streams the runs use."""
    horizon = max(p.arrivals.build().horizon for p in base.producers)
    times = [crash_times(base, replication_seeds(seed, r), horizon) for r in range(replications)]
    found = []
    for index, fault in enumerate(base.faults):
        if isinstance(fault, CrashSpec):
            windows = [[(t, t + fault.restart) for t in per_run[index]] for per_run in times]
        else:
            windows = [[(fault.start, fault.end)] for _ in range(replications)]
        found.append(Fault(f"recovery_{index}", _fault_label(fault), windows))
    return found


def _at(seconds: float) -> str:
    """Times on a run's timeline read best in seconds (``130s``, not ``2.17min``)."""
    return f"{seconds:g}s" if seconds < 3600 else format_duration(seconds)


def _fault_label(fault: FaultSpec) -> str:
    if isinstance(fault, CrashSpec):
        who = "all consumers" if fault.consumers == "all" else (
            f"consumers {fault.consumers}" if isinstance(fault.consumers, list) else f"{fault.consumers} consumer(s)")
        rate = (fault.rate or 0.0) * 60
        when = f"at {_at(fault.at)}" if fault.at is not None else f"at {rate:g}/min (mean)"
        return f"crash of {who} {when}, back {_at(fault.restart)} later"
    span = f"{_at(fault.start)}-{_at(fault.end)}"
    if isinstance(fault, ConsumerOutageSpec):
        return f"consumer outage {span}"
    if isinstance(fault, BrokerOutageSpec):
        return f"broker outage {span}"
    return f"slow period x{fault.factor:g} {span}"


def run_metrics(outcome: RunOutcome, faults: list[Fault]) -> dict[str, float]:
    """One replication's scorecard values (the summary's first row, and recovery from its time series)."""
    row = outcome.summary.iloc[0]
    values = {column: float(row[column]) if column in row.index else math.nan for column, _, _ in METRICS}
    values["messages_lost"] = float(sum(row[name] for name in UNPROCESSED))
    series = outcome.timeseries
    time, backlog = series["time"].to_numpy(dtype=float), series["in_system"].to_numpy(dtype=float)
    for fault in faults:
        recoveries = [recovery_time(time, backlog, start, end) for start, end in fault.windows[outcome.replication]]
        values[fault.column] = float(np.mean(recoveries)) if recoveries else math.nan
    return values


@dataclass
class Scorecard:
    """Per arm and replication the scorecard's values (``runs``), and their means and intervals (``table``)."""

    evaluation: Evaluation
    comparison: Comparison
    faults: list[Fault]
    runs: pd.DataFrame
    table: pd.DataFrame
    """Tidy: ``broker``, ``criterion``, ``metric``, ``mean``, ``ci_low``, ``ci_high``."""

    @property
    def metrics(self) -> list[tuple[str, str, str]]:
        """(column, criterion, meaning) in scorecard order, recovery columns included."""
        recovery = [(f.column, "reliability", f"seconds after: {f.label}, until the backlog is back")
                    for f in self.faults]
        return [*METRICS[:7], *recovery, *METRICS[7:]]


def evaluate(evaluation: Evaluation, runner: Runner) -> Scorecard:
    """Run every arm on the same random numbers and build the scorecard."""
    comparison = compare(evaluation.arms, runner, evaluation.replications)
    faults = fault_windows(evaluation.base, evaluation.replications, runner.seed)
    rows = []
    for point, label in zip(evaluation.arms.points, evaluation.arms.labels, strict=True):
        for outcome in comparison.outcomes[point.index]:
            rows.append({"broker": label, "replication": outcome.replication, **run_metrics(outcome, faults)})
    runs = pd.DataFrame(rows)
    card = Scorecard(evaluation, comparison, faults, runs, pd.DataFrame())
    table = []
    for label in evaluation.arms.labels:
        mine = runs[runs["broker"] == label]
        for column, criterion, _ in card.metrics:
            values = mine[column].to_numpy(dtype=float)
            if np.isinf(values).any():
                mean, low, high = math.inf, math.nan, math.nan  # not recovered in some replication
            else:
                mean, low, high = t_interval(values)
                low, high = clip_to_range(column, low, high)  # counts, times and money are >= 0
            table.append({"broker": label, "criterion": criterion, "metric": column, "mean": mean,
                          "ci_low": low, "ci_high": high})
    card.table = pd.DataFrame(table)
    return card
