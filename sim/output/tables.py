"""Readable text tables for the terminal: a run's summary, a sweep, a comparison, a plan.

Values are shown in their units (``2.24s``, ``31.00%``, ``3,098.2/s``; see
:mod:`sim.output.formats`); the CSV files keep the raw numbers (seconds, shares, per
second). Sweep and comparison tables leave out metrics that are zero everywhere (features
the scenario does not use), take ``--metrics`` to choose, and fit 100 columns.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from sim.analysis.estimates import headline, key_columns, stat_rows
from sim.model.errors import ScenarioError, did_you_mean
from sim.model.keeping import requests_kept
from sim.output.formats import (
    describe_value,
    field_kind,
    format_compact,
    format_difference,
    format_field,
    format_value,
)
from sim.output.grid import WIDTH, render

if TYPE_CHECKING:
    from sim.experiments.compare import Comparison
    from sim.experiments.planning import Plan
    from sim.experiments.runner import Result, SweepResult
    from sim.experiments.targets import Target

__all__ = ["comparison_text", "format_comparison", "format_summary", "format_sweep", "format_value", "headline_block",
           "parse_metrics", "plan_text", "probes_text", "sweep_table", "with_interval"]

SWEEP_COLUMNS = ("offered", "timeout_rate", "throughput", "goodput", "latency_p50", "latency_p99", "utilization",
                 "cost_usd")
MAX_LABEL = 20
"""Arm labels longer than this are replaced by letters (A, B, ...) with a legend above the table."""


def with_interval(column: str, mean: object, low: object, high: object) -> str:
    """``mean [low, high]``, or just the mean when there is no interval (or it is a single point)."""
    text = format_value(column, mean)
    shown_low, shown_high = format_value(column, low), format_value(column, high)
    if shown_low != "-" and (shown_low, shown_high) != (text, text):
        text += f" [{shown_low}, {shown_high}]"
    return text


def parse_metrics(text: str | None, available: Sequence[str], where: str = "--metrics") -> list[str] | None:
    """``latency_p99,timeout_rate`` -> the list, each checked against the summary's columns."""
    if text is None:
        return None
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    if not chosen:
        raise ScenarioError(f"{where}: got {text!r}; give summary columns separated by commas, "
                            "e.g. latency_p99,timeout_rate")
    for name in chosen:
        if name not in available:
            hint = did_you_mean(name, available)
            raise ScenarioError(f"{where}: got {name!r}: not a summary column; {hint}use any of "
                                f"{', '.join(available)}")
    return list(dict.fromkeys(chosen))


QUIET_WHEN_IDLE = ("failed", "dead_lettered", "overdue", "dropped_overflow", "dropped_aqm", "retries", "throttles",
                   "cold_starts", "duplicates", "cost_usd")
"""Columns of features a scenario may not use: left out of the run's table when zero or empty
everywhere (they stay in summary.csv)."""


def _zero_everywhere(values: pd.Series) -> bool:
    numbers = pd.to_numeric(values, errors="coerce")
    return bool(numbers.isna().all() or (numbers.fillna(0) == 0).all())


def _idle(summary: pd.DataFrame, column: str) -> bool:
    if column == "attempts":
        return bool((summary["attempts"] == summary["offered"]).all())
    return column in QUIET_WHEN_IDLE and _zero_everywhere(summary[column])


def format_summary(result: Result, metrics: Sequence[str] | None = None) -> str:
    """Metrics down; one column per row group (all requests, each producer, each stage), as mean [CI]
    with replications."""
    summary = result.summary
    keys = [c for c in key_columns(summary) if c not in ("scenario", "engine")]
    if metrics is None:
        metrics = [c for c in summary.columns if c not in ("replication", "scenario", "engine", *keys)
                   and not _idle(summary, c)]
    columns: dict[str, list[str]] = {"metric": list(metrics)}
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
    table = pd.DataFrame(columns)
    scenario = result.scenario
    heading = f"{scenario.name}: {scenario.description}".rstrip(": ")
    note = f"{result.replications} replications: mean [95% CI]" if aggregated else "1 replication"
    if "engine" in summary.columns:
        note += f"; {summary['engine'].iloc[0]} engine"
    note += f"; requests kept: {requests_kept(scenario).label}"
    return f"{heading}\n{note}\n{render(table, ['metric'])}"


HEADLINE = ("offered", "completed", "late", "timeout_rate", "throughput", "goodput", "latency_p50", "latency_p99",
            "wait_mean", "wasted_work", "utilization", "max_queue", "sim_time")
"""The README's summary of a run: what happened to the requests, how fast, and at what cost."""


def headline_block(row: pd.Series, per_line: int = 3) -> str:
    """A compact summary of one run (the first summary row), three metrics a line, as the README shows it."""
    cells = [f"{name:<13}{format_value(name, row[name]):>11}" for name in HEADLINE if name in row.index]
    lines = ["    ".join(cells[i:i + per_line]) for i in range(0, len(cells), per_line)]
    return "\n".join(lines) + "\n"


def _shown(frame: pd.DataFrame, candidates: Sequence[str]) -> list[str]:
    """The candidate columns present and not zero (or empty) in every row."""
    return [c for c in candidates if c in frame.columns and not _zero_everywhere(frame[c])]


def sweep_table(result: SweepResult, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per point: its axes (in their units), runs, then metrics as mean [95 % CI] (all requests).

    Without ``metrics``: the main ones, leaving out those that are zero at every point.
    """
    estimated = headline(result.estimates)
    shown = list(metrics) if metrics is not None else _shown(estimated[estimated["stat"] == "mean"], SWEEP_COLUMNS)
    base = result.experiment.base
    kinds = {axis: field_kind(result.points[0].scenario if result.points else base, axis)
             for axis in result.experiment.axes}
    rows = []
    for point in result.points:
        mean, low, high = stat_rows(estimated[estimated["point"] == point.index])
        row: dict[str, str] = {axis: describe_value(kinds[axis], point.values.get(axis)) for axis in kinds}
        row["runs"] = str(len(result.outcomes[point.index]))
        row.update({c: with_interval(c, mean.get(c), low.get(c), high.get(c)) for c in shown})
        rows.append(row)
    return pd.DataFrame(rows)


def format_sweep(result: SweepResult, metrics: Sequence[str] | None = None, width: int = WIDTH) -> str:
    scenario = result.experiment.base
    heading = f"{scenario.name}: {scenario.description}".rstrip(": ")
    replicated = any(len(runs) > 1 for runs in result.outcomes.values())
    note = (f"sweep of {len(result.points)} points, seed {result.seed} (common random numbers); "
            + ("mean [95% CI] over replications" if replicated else "one replication per point"))
    table = render(sweep_table(result, metrics), result.experiment.axes, width)
    return "\n".join([*_wrap(heading, width), *_wrap(note, width), table])


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]


def arm_labels(comparison: Comparison) -> tuple[list[str], list[str]]:
    """Short column labels for the arms, and the lines that say what they stand for.

    ``--vary queue.discipline=fifo,lifo`` gives ``fifo`` and ``lifo`` (the field is named
    once, above the table); labels still longer than :data:`MAX_LABEL` become letters.
    """
    labels = list(comparison.arms.labels)
    axis = comparison.arms.axis
    legend: list[str] = []
    if axis is not None and all(label.startswith(f"{axis}=") for label in labels):
        labels = [label.removeprefix(f"{axis}=") for label in labels]
        legend = [f"arms: {axis} = {', '.join(labels)}"]
    if max(len(label) for label in labels) > MAX_LABEL or len(set(labels)) < len(labels):
        letters = [_letter(i) for i in range(len(labels))]
        legend = [f"{letter}: {label}" for letter, label in zip(letters, comparison.arms.labels, strict=True)]
        labels = letters
    return labels, legend


def _letter(index: int) -> str:
    return chr(ord("A") + index) if index < 26 else f"A{index}"


def comparison_text(comparison: Comparison, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """The comparison table with units: each arm's mean [CI], then difference, p-value and mark.

    Without ``metrics``: every metric that is not zero (or empty) in every arm.
    """
    arms = comparison.arms.labels
    short, _ = arm_labels(comparison)
    records = {str(r["metric"]): r for r in comparison.table.to_dict("records")}
    if metrics is None:
        means = {m: pd.Series([r[f"{label} mean"] for label in arms]) for m, r in records.items()}
        no_retries = "attempts" in means and "offered" in means and means["attempts"].equals(means["offered"])
        metrics = [m for m in records if not _zero_everywhere(means[m]) and not (m == "attempts" and no_retries)]
    rows = []
    for metric in metrics:
        record = records.get(metric, {})
        row = {"metric": metric}
        for label, name in zip(arms, short, strict=True):
            row[name] = with_interval(metric, record.get(f"{label} mean"), record.get(f"{label} ci_low"),
                                      record.get(f"{label} ci_high"))
        for label, name in zip(arms[1:], short[1:], strict=True):
            text = format_difference(metric, record.get(f"{label} diff"))
            p_value = float(record.get(f"{label} p", math.nan))
            row[f"{name} vs {short[0]}"] = (f"{text} (p={p_value:.2g}){record.get(f'{label} sig', '')}"
                                            if not math.isnan(p_value) else text)
        rows.append(row)
    return pd.DataFrame(rows)


def format_comparison(comparison: Comparison, metrics: Sequence[str] | None = None, width: int = WIDTH) -> str:
    if comparison.paired:
        note = (f"{comparison.replications} replications each, seed {comparison.seed}: the same arrivals and service "
                "times in every arm (common random numbers); mean [95% CI]; differences against the first "
                "(pp: percentage points), paired t-test p-value, * p<0.05 ** p<0.01 *** p<0.001")
    else:
        note = (f"{comparison.replications} replications each, seed {comparison.seed}: the arms' arrivals differ, so "
                "their runs are independent samples (no common random numbers); mean [95% CI]; differences against "
                "the first (pp: percentage points), Welch's unpaired t-test p-value, * p<0.05 ** p<0.01 *** p<0.001")
    _, legend = arm_labels(comparison)
    lines = _wrap(note, width) + [line for entry in legend for line in _wrap(entry, width)]
    return "\n".join([*lines, render(comparison_text(comparison, metrics), ["metric"], width)])


def target_value(target: Target) -> str:
    """The target's threshold as written when it has a unit (``1%``, ``2s``), else in the metric's unit."""
    written = target.text.split(target.op, 1)[-1].strip()
    if any(character.isalpha() or character in "%/$" for character in written):
        return written
    return format_compact(target.metric, target.value)


def plan_text(plan: Plan) -> str:
    """The answer, the value on the other side, the metrics there, and every probe."""
    spec = plan.spec
    kind = field_kind(plan.experiment.base, spec.path)
    goal = "largest" if spec.maximize else "smallest"
    confidence = f"{spec.confidence:.0%}"
    targets = ", ".join(t.text for t in spec.targets)
    lines = [f"{goal} {spec.path} meeting {targets} with {confidence} confidence:"]
    answer = plan.answer
    if answer is None:
        end = "min" if spec.maximize else "max"
        lines.append(f"  none in [{spec.low}, {spec.high}]: even the {end} does not meet the targets")
    else:
        shown = format_field(kind, answer.value)
        lines.append(f"  {shown}" + _other_side(plan, kind))
        lines.append(f"  at {shown} ({answer.replications} replications, one-sided {confidence} bounds):")
        for target in spec.targets:
            mean, lower, upper = answer.bounds[target.text]
            bound = upper if target.upper else lower
            lines.append(f"    {target.metric}: mean {format_value(target.metric, mean)}, bound "
                         f"{format_value(target.metric, bound)} (target {target.op} {target_value(target)})")
        lines.extend(_metrics_at(plan, answer.point.index))
    other = plan.other_side
    if plan.unresolved and other is not None and answer is not None:
        unsure = [p for p in plan.probes if p.verdict == "unsure" and p is not other]
        near = min(unsure, key=lambda p: abs(p.value - other.value)).value if unsure else other.value
        lines.extend(_wrap(f"  stopped refining: {format_field(kind, other.value)} and {format_field(kind, near)} "
                           f"are both unsure after {other.replications} replications and their intervals overlap, so "
                           f"more runs cannot tell them apart; the boundary lies between "
                           f"{format_field(kind, other.value)} and {format_field(kind, answer.value)}", WIDTH))
    probes = [f"{format_field(kind, p.value)} {p.verdict} ({p.replications})" for p in plan.probes]
    lines.extend(_items("probes (value, verdict, replications): ", probes))
    return "\n".join(lines)


def _items(heading: str, items: Sequence[str], width: int = WIDTH) -> list[str]:
    """``heading`` and comma-separated items, wrapped between items (never inside one)."""
    lines = [heading.rstrip()]
    for position, item in enumerate(items):
        text = item + ("," if position < len(items) - 1 else "")
        if len(lines[-1]) + 1 + len(text) > width:
            lines.append("  " + text)
        else:
            lines[-1] += " " + text
    return lines


def _other_side(plan: Plan, kind: str) -> str:
    other = plan.other_side
    if other is None:
        return " (the end of the range: the boundary may lie beyond it)"
    shown = "fails them" if other.verdict == "fails" else f"is not shown to meet them after {other.replications} runs"
    gap = abs(other.value - plan.answer.value) if plan.answer is not None else math.nan
    value = format_field(kind, other.value)
    if plan.integer and gap == 1:
        return f" ({value} {shown})"
    return f" (the boundary is within {format_field(kind, gap)} of it: {value} {shown})"


def _metrics_at(plan: Plan, point: int) -> list[str]:
    rows = headline(plan.estimates)
    rows = rows[rows["point"] == point]
    if rows.empty:
        return []
    mean, low, high = stat_rows(rows)
    shown = _shown(rows[rows["stat"] == "mean"], SWEEP_COLUMNS)
    return ["  metrics there, mean [95% CI]:"] + [f"    {c}: {with_interval(c, mean[c], low[c], high[c])}"
                                                   for c in shown]


def probes_text(plan: Plan) -> pd.DataFrame:
    """Every probe with its value and each target metric's mean and bounds, in their units."""
    kind = field_kind(plan.experiment.base, plan.path)
    rows = []
    for probe in plan.probes:
        row = {"probe": str(probe.order + 1), plan.path: format_field(kind, probe.value),
               "replications": str(probe.replications), "verdict": probe.verdict}
        for target in plan.spec.targets:
            mean, lower, upper = probe.bounds[target.text]
            row.update({f"{target.metric} mean": format_value(target.metric, mean),
                        f"{target.metric} lower": format_value(target.metric, lower),
                        f"{target.metric} upper": format_value(target.metric, upper)})
        rows.append(row)
    return pd.DataFrame(rows)
