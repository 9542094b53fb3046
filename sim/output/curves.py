"""Figures of many runs: curves of a sweep, overlays of compared scenarios, a plan's probes.

Like :mod:`sim.output.plots`, each function takes tidy data and returns a matplotlib
:class:`~matplotlib.figure.Figure` drawn with the object API (no pyplot, no display).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sim.analysis.estimates import STATS, headline
from sim.experiments.replication import QUANTILES

if TYPE_CHECKING:
    from sim.experiments.planning import Plan

CURVE_METRICS = (
    ("latency_p50", "p50 latency (s)"),
    ("latency_p99", "p99 latency (s)"),
    ("timeout_rate", "timeout rate"),
    ("throughput", "throughput (served/s)"),
    ("goodput", "goodput (completed/s)"),
    ("utilization", "utilization"),
)
OPTIONAL_METRICS = (("cost_usd", "cost (USD)"),)
"""Drawn when the summary has them (a cost model adds ``cost_usd``)."""

COLOURS = ("#264653", "#e76f51", "#2a9d8f", "#e9c46a", "#8d99ae", "#9b2226", "#457b9d", "#f4a261")
"""Up to eight lines; more lines take matplotlib's tab20 (twenty distinct colours)."""


def colour(position: int, count: int) -> str:
    if count <= len(COLOURS):
        return COLOURS[position % len(COLOURS)]
    from matplotlib import colormaps

    red, green, blue, _ = colormaps["tab20"](position % 20)
    return f"#{int(red * 255):02x}{int(green * 255):02x}{int(blue * 255):02x}"


def _estimates(estimates: pd.DataFrame) -> pd.DataFrame:
    """Per point: mean, ci_low, ci_high of each column (NaN bounds when there is one replication)."""
    rows = headline(estimates)
    means, low, high = (rows[rows["stat"] == stat].set_index("point") for stat in STATS)
    frame = means.copy()
    for column in means.columns:
        if column in low.columns and pd.api.types.is_numeric_dtype(means[column]):
            frame[f"{column}__low"] = low[column].reindex(means.index)
            frame[f"{column}__high"] = high[column].reindex(means.index)
    return frame.reset_index()


def curves_figure(estimates: pd.DataFrame, axes: Sequence[str], x: str, title: str) -> Figure:
    """Each metric against ``x`` (from a sweep's estimates): one line per combination of the other axes,
    95 % CI bands."""
    frame = _estimates(estimates)
    metrics = [m for m in CURVE_METRICS if m[0] in frame.columns]
    metrics += [m for m in OPTIONAL_METRICS if m[0] in frame.columns and frame[m[0]].notna().any()]
    columns = 3 if len(metrics) <= 6 else 4
    figure = Figure(figsize=(4.6 * columns, 7.6), layout="constrained")
    grid = figure.subplots(2, columns, squeeze=False).ravel()
    others = [a for a in axes if a != x]
    groups = list(frame.groupby(others, sort=False)) if others else [((), frame)]
    categorical = not all(pd.api.types.is_number(v) and not isinstance(v, bool) for v in frame[x])
    categories = list(dict.fromkeys(frame[x].tolist()))
    for axis_, (metric, label) in zip(grid, metrics, strict=False):
        for position, (key, group) in enumerate(groups):
            group = group.sort_values(x) if not categorical else group
            xs = np.array([categories.index(v) for v in group[x]]) if categorical else group[x].to_numpy(dtype=float)
            values = group[metric].to_numpy(dtype=float)
            line_colour = colour(position, len(groups))
            name = ", ".join(f"{a}={v}" for a, v in zip(others, key if isinstance(key, tuple) else (key,),
                                                         strict=True)) or "mean"
            axis_.plot(xs, values, marker="o", markersize=3, color=line_colour, label=name)
            low = group[f"{metric}__low"].to_numpy(dtype=float)
            high = group[f"{metric}__high"].to_numpy(dtype=float)
            if np.isfinite(low).any():
                axis_.fill_between(xs, low, high, color=line_colour, alpha=0.2, linewidth=0)
        if categorical:
            axis_.set_xticks(range(len(categories)), [str(c) for c in categories])
        axis_.set(xlabel=x, title=label)
        if metric in ("timeout_rate", "utilization"):
            axis_.set_ylim(bottom=0)
        axis_.grid(alpha=0.3)
    for spare in grid[len(metrics):]:
        spare.set_visible(False)
    if len(groups) > 1 or others:
        grid[0].legend(fontsize=7)
    figure.suptitle(f"{title}: mean over replications with 95 % CI bands")
    return figure


def distributions_figure(labels: Sequence[str], quantiles: Sequence[np.ndarray], title: str) -> Figure:
    """Latency CDFs overlaid: each arm's quantile function averaged over its replications."""
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    whole, tail = figure.subplots(1, 2)
    for position, (label, levels) in enumerate(zip(labels, quantiles, strict=True)):
        if not np.isfinite(levels).any():
            continue
        line_colour = colour(position, len(labels))
        whole.plot(levels, QUANTILES, color=line_colour, label=label)
        keep = QUANTILES >= 0.9
        tail.plot(levels[keep], QUANTILES[keep], color=line_colour, label=label)
    whole.set(xlabel="latency of served requests (s)", ylabel="share of served requests", ylim=(0, 1.01),
              title="Latency distribution (CDF)")
    tail.set(xlabel="latency (s)", ylabel="share", title="The tail: above p90")
    for axes in (whole, tail):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    figure.suptitle(title)
    return figure


def timeseries_overlay(labels: Sequence[str], series: Sequence[pd.DataFrame], title: str) -> Figure:
    """Goodput, queue length and busy consumers over time, each arm's mean over replications."""
    figure = Figure(figsize=(11, 8), layout="constrained")
    flows, queue, busy = figure.subplots(3, 1, sharex=True)
    for position, (label, frame) in enumerate(zip(labels, series, strict=True)):
        bucket = float(frame.attrs.get("bucket") or 1.0)
        mean = frame.groupby("time", sort=True)[["completed", "served", "queue_length", "busy"]].mean()
        time = mean.index.to_numpy(dtype=float) + bucket / 2
        line_colour = colour(position, len(labels))
        flows.plot(time, mean["completed"] / bucket, color=line_colour, label=f"{label}: goodput")
        flows.plot(time, mean["served"] / bucket, color=line_colour, linestyle=":", linewidth=1)
        queue.plot(time, mean["queue_length"], color=line_colour, label=label)
        busy.plot(time, mean["busy"], color=line_colour, label=label)
    flows.set(ylabel="requests per second", title="Goodput (solid) and throughput (dotted)")
    queue.set(ylabel="waiting requests", title="Queue length")
    busy.set(ylabel="consumers", xlabel="simulated time (s)", title="Busy consumers")
    for axes in (flows, queue, busy):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    figure.suptitle(f"{title} (mean over replications)")
    return figure


VERDICT_COLOURS = {"meets": "#2a9d8f", "fails": "#e76f51", "unsure": "#e9c46a"}


def plan_figure(plan: Plan, title: str) -> Figure:
    """Each target metric at every probed value (mean, one-sided bound, verdict), the target and the answer.

    Left: every probe (log scale when the values span decades, as they do between a starved
    minimum and a generous maximum). Right: the later half of the probes, where bisection
    converged on the boundary.
    """
    targets = plan.spec.targets
    figure = Figure(figsize=(11, 4.2 * len(targets)), layout="constrained")
    panels = figure.subplots(len(targets), 2, squeeze=False)
    late = sorted(plan.probes, key=lambda p: p.order)[len(plan.probes) // 2:]
    for (whole, near), target in zip(panels, targets, strict=True):
        for axes, probes in ((whole, plan.probes), (near, late)):
            for probe in probes:
                mean, lower, upper = probe.bounds[target.text]
                bound = upper if target.upper else lower
                shade = VERDICT_COLOURS[probe.verdict]
                if np.isfinite(bound):
                    axes.plot([probe.value, probe.value], [mean, bound], color=shade, linewidth=1.2)
                axes.plot(probe.value, mean, "o", color=shade, markersize=5)
                axes.annotate(str(probe.order + 1), (probe.value, mean), textcoords="offset points", xytext=(3, 3),
                              fontsize=7)
            axes.axhline(target.value, color="black", linestyle="--", linewidth=1, label=f"target {target.text}")
            if plan.answer is not None:
                axes.axvline(plan.answer.value, color=VERDICT_COLOURS["meets"], linestyle=":",
                             label=f"answer {plan.answer.value:g}")
            axes.set(xlabel=plan.path, ylabel=target.metric)
            axes.grid(alpha=0.3)
        values = [p.bounds[target.text][0] for p in plan.probes]
        positive = [v for v in values if v > 0 and np.isfinite(v)]
        if positive and target.value > 0 and max(positive) / min([*positive, target.value]) > 20:
            whole.set_yscale("log")
        whole.set_title(f"{target.metric}: every probe (numbered in order)")
        near.set_title("near the boundary")
        for verdict, shade in VERDICT_COLOURS.items():
            whole.plot([], [], "o", color=shade, label=verdict)
        whole.legend(fontsize=7)
    confidence = f"{plan.spec.confidence:.0%}"
    figure.suptitle(f"{title}: probes, mean (dot) and {confidence} one-sided bound (line)")
    return figure
