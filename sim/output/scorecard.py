"""The broker scorecard: the terminal table and ``results/<name>-evaluate/`` (CSV, figures, report.html).

The page states what a simulator can judge (throughput, latency, losses, duplicates, order,
backlog, recovery, cost) and, just as plainly, what it cannot, so nobody reads the ranking as the
whole answer.
"""

from __future__ import annotations

import math
import numbers
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from sim.output import webpage as html
from sim.output.folder import common, json_file, markdown_table, publish, save, scenario_section, write_reports
from sim.output.tables import format_value

if TYPE_CHECKING:
    from sim.experiments.evaluate import Scorecard

LEFT_OUT = (
    ("operability", "running it: upgrades, scaling the cluster, monitoring, backups, the on-call load, managed "
                    "or self-hosted"),
    ("security", "authentication, authorisation, encryption in transit and at rest, tenancy, compliance"),
    ("durability of the broker itself", "disk and replica failures, data loss when a broker node dies, "
                                        "replication settings (the models assume the broker keeps what it accepted)"),
    ("features beyond the model", "routing and filtering, schemas, replay tooling, exactly-once transactions, "
                                  "client library quality, ecosystem, limits on message size"),
    ("your numbers", "real hop latencies and quotas depend on region, instance sizes and payloads: measure them and "
                     "set queue.broker.latency, or treat the latency columns as relative"),
)
"""What a simulator cannot judge, and the scorecard therefore leaves out."""

SHOWN = ("throughput", "latency_p50", "latency_p99", "messages_lost", "dead_lettered", "duplicates", "out_of_order",
         "max_in_system", "cost_usd")
"""Columns of the terminal table (recovery columns are added after out_of_order)."""

SHORT = {"throughput": "throughput", "latency_p50": "p50", "latency_p99": "p99", "messages_lost": "lost",
         "dead_lettered": "dlq", "duplicates": "dup", "out_of_order": "out of order", "max_in_system": "peak backlog",
         "utilization": "utilization", "cost_usd": "cost"}


COUNTS = ("messages_lost", "dead_lettered", "duplicates", "out_of_order", "max_in_system")
"""Means of counts: shown with one decimal (a mean over replications need not be whole)."""


def _value(metric: str, value: float) -> str:
    if metric in COUNTS and math.isfinite(value) and not float(value).is_integer():
        return f"{value:,.1f}"
    return format_value("latency" if metric.startswith("recovery") else metric, value)


def cell(metric: str, mean: object, low: object, high: object) -> str:
    """``mean ±half`` in the metric's unit (half: from the mean to the upper bound, which no clipping at 0
    touches); ``never`` for a backlog that did not come back in some replication."""
    if not isinstance(mean, numbers.Real):
        return "-"
    if math.isinf(float(mean)):
        return "never"
    text = _value(metric, float(mean))
    if isinstance(high, numbers.Real) and math.isfinite(float(high)) and high != mean:
        text += " ±" + _value(metric, float(high) - float(mean))
    return text


def wide(card: Scorecard, columns: list[str] | None = None) -> pd.DataFrame:
    """One row per broker, one column per metric (``mean ±half-width``)."""
    table = card.table
    chosen = columns or [column for column, _, _ in card.metrics]
    rows = []
    for broker in card.evaluation.arms.labels:
        mine = table[table["broker"] == broker].set_index("metric")
        row = {"broker": broker}
        for metric in chosen:
            found = mine.loc[metric]
            row[_heading(card, metric)] = cell(metric, found["mean"], found["ci_low"], found["ci_high"])
        rows.append(row)
    return pd.DataFrame(rows)


def _heading(card: Scorecard, metric: str) -> str:
    if metric.startswith("recovery_"):
        return f"recovery {int(metric.split('_')[1]) + 1}"
    return SHORT.get(metric, metric)


def terminal_columns(card: Scorecard) -> list[str]:
    recovery = [fault.column for fault in card.faults]
    return [*SHOWN[:7], *recovery, *SHOWN[7:]]


def scorecard_text(card: Scorecard) -> str:
    """The terminal scorecard: a legend of criteria and faults, then one row per broker."""
    evaluation = card.evaluation
    lines = [f"{evaluation.name}: {evaluation.base.description}".rstrip(": "),
             f"{evaluation.replications} replications per broker, seed {card.comparison.seed}, the same arrivals, "
             "keys and faults for every broker; mean ±95% CI half-width"]
    groups = {criterion: [SHORT.get(c, c) if not c.startswith("recovery") else _heading(card, c)
                          for c, crit, _ in card.metrics if crit == criterion and c in terminal_columns(card)]
              for criterion in ("performance", "reliability", "scalability", "cost")}
    lines.append("criteria: " + "; ".join(f"{name}: {', '.join(cols)}" for name, cols in groups.items() if cols))
    for index, fault in enumerate(card.faults):
        lines.append(f"recovery {index + 1}: {fault.label} (seconds after it until the backlog is back)")
    lines.append(wide(card, terminal_columns(card)).to_string(index=False))
    return "\n".join(lines)


def _legend(card: Scorecard) -> pd.DataFrame:
    return pd.DataFrame([{"criterion": criterion, "metric": _heading(card, column), "meaning": meaning}
                         for column, criterion, meaning in card.metrics])


def _left_out() -> tuple[str, str, str]:
    markdown = "\n".join(f"- **{topic}**: {what}" for topic, what in LEFT_OUT)
    body = "".join(f"<li><b>{escape(topic)}</b>: {escape(what)}</li>" for topic, what in LEFT_OUT)
    intro = ("A simulator answers the first three kinds of question with numbers. These it cannot judge, "
             "and this scorecard leaves them out:")
    return "What this scorecard does not judge", f"{intro}\n\n{markdown}", f"{html.text(intro)}<ul>{body}</ul>"


def write_scorecard(card: Scorecard, out: Path, *, wall_time: float, figures: bool = True) -> list[Path]:
    """``scorecard.csv`` (tidy), ``runs.csv``, ``comparison.csv``, ``summary.csv``, ``timeseries.csv``,
    figures, ``manifest.json``, ``report.md`` and ``report.html``."""
    evaluation, comparison = card.evaluation, card.comparison

    def writer(folder: Path) -> list[Path]:
        card.table.to_csv(folder / "scorecard.csv", index=False)
        card.runs.to_csv(folder / "runs.csv", index=False)
        comparison.table.to_csv(folder / "comparison.csv", index=False)
        comparison.summary.to_csv(folder / "summary.csv", index=False)
        series_frame(card).to_csv(folder / "timeseries.csv", index=False)
        json_file(folder / "manifest.json", common(
            wall_time, scenario=evaluation.name, seed=comparison.seed, replications=evaluation.replications,
            brokers=evaluation.arms.labels, executor=comparison.executor,
            faults=[{"column": f.column, "label": f.label} for f in card.faults],
            arms=[{"broker": label, "queue": point.overrides["queue"]}
                  for label, point in zip(evaluation.arms.labels, evaluation.arms.points, strict=True)],
            as_written=evaluation.base.raw))
        produced = [Path(n) for n in ("scorecard.csv", "runs.csv", "comparison.csv", "summary.csv", "timeseries.csv",
                                      "manifest.json")]
        saved = {}
        if figures:
            from sim.output.scorecard_figures import scorecard_figures

            saved = save(scorecard_figures(card), folder)
        shown = wide(card)
        legend = _legend(card)
        sections = [("Scorecard", markdown_table(shown), html.table(shown, formatted=False)),
                    ("Criteria", markdown_table(legend), html.table(legend, formatted=False)), _left_out(),
                    scenario_section(evaluation.base.raw)]
        meta = (f"{evaluation.replications} replications per broker, seed {comparison.seed}, common random numbers "
                f"(same arrivals, keys and faults), {comparison.executor}; mean ±95% CI half-width")
        reports = write_reports(folder, f"Broker scorecard: {evaluation.name}", evaluation.base.description, sections,
                           saved, meta)
        return [*produced, *saved.values(), *reports]

    return publish(out, writer)


def series_frame(card: Scorecard) -> pd.DataFrame:
    """Every arm's time series, all replications (columns ``broker`` and ``replication``)."""
    comparison = card.comparison
    frames = [outcome.timeseries.assign(broker=label, replication=outcome.replication)
              for label, point in zip(card.evaluation.arms.labels, card.evaluation.arms.points, strict=True)
              for outcome in comparison.outcomes[point.index]]
    return pd.concat(frames, ignore_index=True)
