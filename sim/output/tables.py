"""Readable text tables for the terminal: a run's summary, a sweep, a comparison, a plan.

Values are shown in their units (``2.24s``, ``31.00%``, ``3,098.2/s``); the CSV files keep
the raw numbers (seconds, shares, per second).
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING

import pandas as pd

from sim.analysis.estimates import headline, key_columns, stat_rows
from sim.experiments.targets import format_target_value
from sim.model.keeping import requests_kept
from sim.model.units import format_duration

if TYPE_CHECKING:
    from sim.experiments.compare import Comparison
    from sim.experiments.planning import Plan
    from sim.experiments.runner import Result, SweepResult

DURATION_COLUMNS = ("latency", "wait", "sim_time", "wall_time", "warmup")
SHARE_COLUMNS = ("timeout_rate", "utilization", "starvation")
SWEEP_COLUMNS = ("offered", "timeout_rate", "throughput", "goodput", "latency_p50", "latency_p99", "utilization",
                 "cost_usd")


def format_value(column: str, value: object) -> str:
    """One cell, in the column's unit."""
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
    if column == "cost_usd":
        return f"${value:,.4f}"
    number = float(value)
    if number.is_integer():
        return f"{int(number):,}"
    return f"{number:,.3f}"


def with_interval(column: str, mean: object, low: object, high: object) -> str:
    """``mean [low, high]``, or just the mean when there is no interval (or it is a single point)."""
    text = format_value(column, mean)
    if isinstance(low, numbers.Real) and not math.isnan(float(low)) and low != high:
        text += f" [{format_value(column, low)}, {format_value(column, high)}]"
    return text


QUIET_WHEN_IDLE = ("failed", "dead_lettered", "overdue", "dropped_overflow", "dropped_aqm", "retries", "throttles",
                   "cold_starts", "duplicates", "cost_usd")
"""Columns of features a scenario may not use: left out of the terminal table when zero or empty
everywhere (they stay in summary.csv)."""


def _idle(summary: pd.DataFrame, column: str) -> bool:
    if column == "attempts":
        return bool((summary["attempts"] == summary["offered"]).all())
    if column not in QUIET_WHEN_IDLE:
        return False
    values = pd.to_numeric(summary[column], errors="coerce")
    return bool(values.isna().all() or (values.fillna(0) == 0).all())


def format_summary(result: Result) -> str:
    """Metrics down; one column per row group (all requests, each producer, each stage), as mean [CI]
    with replications."""
    summary = result.summary
    keys = [c for c in key_columns(summary) if c not in ("scenario", "engine")]
    metrics = [c for c in summary.columns if c not in ("replication", "scenario", "engine") and c not in keys
               and not _idle(summary, c)]
    columns: dict[str, list[str]] = {}
    aggregated = result.replications > 1
    estimates = result.estimates
    groups = estimates.groupby(keys, sort=False) if keys else [((), estimates)]
    for key, rows in groups:
        values = key if isinstance(key, tuple) else (key,)
        named = [f"{k}={v}" for k, v in zip(keys, values, strict=True) if v != "all"]
        label = ", ".join(named) if named else "all"
        label = label.removeprefix("producer=") if len(named) == 1 else label
        mean, low, high = stat_rows(rows)
        columns[label] = [with_interval(m, mean[m], low[m], high[m]) for m in metrics]
    table = pd.DataFrame(columns, index=metrics)
    scenario = result.scenario
    heading = f"{scenario.name}: {scenario.description}".rstrip(": ")
    note = f"{result.replications} replications: mean [95% CI]" if aggregated else "1 replication"
    if "engine" in summary.columns:
        note += f"; {summary['engine'].iloc[0]} engine"
    note += f"; requests kept: {requests_kept(scenario).label}"
    return f"{heading}\n{note}\n{table.to_string()}"


def sweep_table(result: SweepResult) -> pd.DataFrame:
    """One row per point: its axes, then the main metrics as mean [95 % CI] (all requests)."""
    estimates = headline(result.estimates)
    shown = [c for c in SWEEP_COLUMNS if c in estimates.columns and estimates[c].notna().any()]
    rows = []
    for point in result.points:
        mean, low, high = stat_rows(estimates[estimates["point"] == point.index])
        row: dict[str, str] = {axis: format_value(axis, point.values.get(axis)) for axis in result.experiment.axes}
        row["runs"] = str(len(result.outcomes[point.index]))
        row.update({c: with_interval(c, mean[c], low[c], high[c]) for c in shown})
        rows.append(row)
    return pd.DataFrame(rows)


def format_sweep(result: SweepResult) -> str:
    scenario = result.experiment.base
    heading = f"{scenario.name}: {scenario.description}".rstrip(": ")
    note = (f"sweep of {len(result.points)} points, seed {result.seed} (common random numbers); "
            "mean [95% CI] over replications")
    return f"{heading}\n{note}\n{sweep_table(result).to_string(index=False)}"


def comparison_text(comparison: Comparison) -> pd.DataFrame:
    """The comparison table with units: each arm's mean [CI], then difference, p-value and mark."""
    labels = comparison.arms.labels
    rows = []
    for record in comparison.table.to_dict("records"):
        metric = str(record["metric"])
        row = {"metric": metric}
        for label in labels:
            row[label] = with_interval(metric, record[f"{label} mean"], record[f"{label} ci_low"],
                                       record[f"{label} ci_high"])
        for label in labels[1:]:
            difference = float(record[f"{label} diff"])
            sign = "+" if difference > 0 else ""
            text = "-" if math.isnan(difference) else sign + format_value(metric, difference)
            p_value = float(record[f"{label} p"])
            row[f"{label} vs {labels[0]}"] = (f"{text} (p={p_value:.2g}){record[f'{label} sig']}"
                                               if not math.isnan(p_value) else text)
        rows.append(row)
    return pd.DataFrame(rows).set_index("metric")


def format_comparison(comparison: Comparison) -> str:
    if comparison.paired:
        note = (f"{comparison.replications} replications each, seed {comparison.seed}: the same arrivals and service "
                "times in every arm (common random numbers); mean [95% CI]; differences against the first, "
                "paired t-test p-value, * p<0.05 ** p<0.01 *** p<0.001")
    else:
        note = (f"{comparison.replications} replications each, seed {comparison.seed}: the arms' arrivals differ, so "
                "their runs are independent samples (no common random numbers); mean [95% CI]; differences against "
                "the first, Welch's unpaired t-test p-value, * p<0.05 ** p<0.01 *** p<0.001")
    return f"{note}\n{comparison_text(comparison).to_string()}"


def plan_text(plan: Plan) -> str:
    """The answer, the value on the other side, the metrics there, and every probe."""
    spec = plan.spec
    goal = "largest" if spec.maximize else "smallest"
    confidence = f"{spec.confidence:.0%}"
    lines = [f"{goal} {spec.path} meeting {', '.join(t.text for t in spec.targets)} with {confidence} confidence:"]
    answer = plan.answer
    if answer is None:
        end = "min" if spec.maximize else "max"
        lines.append(f"  none in [{spec.low}, {spec.high}]: even the {end} does not meet the targets")
    else:
        lines.append(f"  {answer.value:g}" + _other_side(plan))
        lines.append(f"  at {answer.value:g} ({answer.replications} replications, one-sided {confidence} bounds):")
        for target in spec.targets:
            mean, lower, upper = answer.bounds[target.text]
            bound = upper if target.upper else lower
            lines.append(f"    {target.metric}: mean {format_value(target.metric, mean)}, bound "
                         f"{format_value(target.metric, bound)} (target {target.op} {format_target_value(target)})")
        lines.extend(_metrics_at(plan, answer.point.index))
    other = plan.other_side
    if plan.unresolved and other is not None and answer is not None:
        unsure = [p for p in plan.probes if p.verdict == "unsure" and p is not other]
        near = min(unsure, key=lambda p: abs(p.value - other.value)).value if unsure else other.value
        lines.append(f"  stopped refining: {other.value:g} and {near:g} are both unsure after {other.replications} "
                     f"replications and their intervals overlap, so more runs cannot tell them apart; the boundary "
                     f"lies between {other.value:g} and {answer.value:g}")
    lines.append("probes: " + ", ".join(f"{p.value:g} {p.verdict} ({p.replications})" for p in plan.probes))
    return "\n".join(lines)


def _other_side(plan: Plan) -> str:
    other = plan.other_side
    if other is None:
        return " (the end of the range: the boundary may lie beyond it)"
    shown = "fails them" if other.verdict == "fails" else f"is not shown to meet them after {other.replications} runs"
    gap = abs(other.value - plan.answer.value) if plan.answer is not None else math.nan
    if plan.integer and gap == 1:
        return f" ({other.value:g} {shown})"
    return f" (the boundary is within {gap:g} of it: {other.value:g} {shown})"


def _metrics_at(plan: Plan, point: int) -> list[str]:
    rows = headline(plan.estimates)
    rows = rows[rows["point"] == point]
    if rows.empty:
        return []
    mean, low, high = stat_rows(rows)
    shown = [c for c in SWEEP_COLUMNS if c in rows.columns and rows[c].notna().any()]
    return ["  metrics there, mean [95% CI]:"] + [f"    {c}: {with_interval(c, mean[c], low[c], high[c])}"
                                                   for c in shown]
