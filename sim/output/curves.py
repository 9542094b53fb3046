"""Figures of many runs: curves of a sweep, overlays of compared scenarios, a plan's probes.

Like :mod:`sim.output.plots`, each function takes tidy data and returns a matplotlib
:class:`~matplotlib.figure.Figure` drawn with the object API (no pyplot, no display).
Curves name the swept field with its unit and, when the x axis is an arrival rate or a
concurrency, mark where the offered load equals the capacity: the knee every curve bends at.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sim.analysis.estimates import STATS, headline
from sim.experiments.replication import QUANTILES
from sim.output.figstyle import colour, legend_outside, line_style, percent_axis, shorten

if TYPE_CHECKING:
    from sim.experiments.planning import Plan
    from sim.model.schema import Scenario

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
SHARES = ("timeout_rate", "utilization")
MAX_TICK_LABEL = 16
"""Category labels longer than this become letters, explained under the figure."""

Describe = Callable[[str, Any], str]


def _plain(axis: str, value: Any) -> str:
    return "none" if value is None else str(value)


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


def load_capacity(scenario: Scenario, path: str) -> float | None:
    """The value of ``path`` at which the offered load equals the consumers' capacity, if computable.

    Offered load is the work arriving per second, ``sum(rate x mean service time)``, against
    ``concurrency`` consumers: for ``consumers.concurrency`` the answer is that sum; for
    ``producers.N.arrivals.rate`` it is the rate that fills what the other producers leave.
    Only single-stage scenarios with steady (Poisson or constant) arrivals have one.
    """
    consumers = scenario.consumers
    if scenario.stages is not None or consumers is None:
        return None
    producers = scenario.producers
    rates = [getattr(p.arrivals, "rate", None) if p.arrivals.process in ("poisson", "constant") else None
             for p in producers]
    means = [scenario.service_of(p).mean for p in producers]
    if path == "consumers.concurrency":
        steady = [r for r in rates if r is not None]
        return sum(r * m for r, m in zip(steady, means, strict=True)) if len(steady) == len(rates) else None
    match = re.fullmatch(r"producers\.(\d+)\.arrivals\.rate", path)
    if match is None or int(match[1]) >= len(producers):
        return None
    index = int(match[1])
    others = [r * m for i, (r, m) in enumerate(zip(rates, means, strict=True)) if i != index and r is not None]
    if len(others) != len(producers) - 1 or means[index] <= 0:
        return None
    value = (consumers.concurrency - sum(others)) / means[index]
    return value if value > 0 else None


def _categories(values: Sequence[Any], axis: str, describe: Describe) -> tuple[list[str], list[str]]:
    """Tick labels for a categorical axis and, when some are too long, the legend lines for letters."""
    labels = [describe(axis, v) for v in values]
    if max((len(label) for label in labels), default=0) <= MAX_TICK_LABEL:
        return labels, []
    letters = [chr(ord("A") + i) for i in range(len(labels))]
    return letters, [f"{letter} = {label}" for letter, label in zip(letters, labels, strict=True)]


def curves_figure(estimates: pd.DataFrame, axes: Sequence[str], x: str, title: str, *, x_label: str | None = None,
                  capacity: Sequence[float] = (), describe: Describe = _plain) -> Figure:
    """Each metric against ``x`` (from a sweep's estimates): one line per combination of the other axes,
    95 % CI bands.

    A categorical ``x`` (disciplines, whole blocks) gets points with error bars and no lines
    between them (there is nothing in between); long category names become letters
    explained under the figure.
    """
    frame = _estimates(estimates)
    metrics = [m for m in CURVE_METRICS if m[0] in frame.columns]
    metrics += [m for m in OPTIONAL_METRICS if m[0] in frame.columns and frame[m[0]].notna().any()]
    columns = 3 if len(metrics) <= 6 else 4
    others = [a for a in axes if a != x]
    legend = bool(others) or bool(capacity)
    figure = Figure(figsize=(4.6 * columns + (2.4 if legend else 0), 8.2), layout="constrained")
    grid = figure.subplots(2, columns, squeeze=False).ravel()
    frame["__group"] = [", ".join(f"{a}={shorten(describe(a, row[a]))}" for a in others) or "mean"
                        for _, row in frame.iterrows()]
    groups = list(frame.groupby("__group", sort=False))
    categorical = not all(pd.api.types.is_number(v) and not isinstance(v, bool) for v in frame[x])
    order = list(dict.fromkeys(describe(x, v) for v in frame[x]))
    ticks, notes = _categories(list(dict.fromkeys(frame[x].tolist())), x, describe) if categorical else ([], [])
    banded = False
    for axis_, (metric, label) in zip(grid, metrics, strict=False):
        for position, (name, group) in enumerate(groups):
            style = line_style(position, len(groups))
            if categorical:
                xs = np.array([order.index(describe(x, v)) for v in group[x]], dtype=float)
            else:
                group = group.sort_values(x)
                xs = group[x].to_numpy(dtype=float)
            values = group[metric].to_numpy(dtype=float)
            low = group[f"{metric}__low"].to_numpy(dtype=float)
            high = group[f"{metric}__high"].to_numpy(dtype=float)
            banded |= bool(np.isfinite(low).any() and (high > low).any())
            _draw(axis_, xs, values, low, high, style, str(name), categorical)
        for value in capacity:
            axis_.axvline(value, color="#9b2226", linestyle=(0, (4, 3)), linewidth=1,
                          label=f"offered load = capacity ({describe(x, value)})")
        if categorical:
            axis_.set_xticks(range(len(ticks)), ticks)
            axis_.set_xlim(-0.5, len(ticks) - 0.5)
        axis_.set(xlabel=x_label or x, title=label)
        _from_zero(axis_)  # every metric here is >= 0: an axis from zero keeps differences in proportion
        if metric in SHARES:
            percent_axis(axis_)
        axis_.grid(alpha=0.3)
    for spare in grid[len(metrics):]:
        spare.set_visible(False)
    if legend:
        handles, labels = grid[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside right upper", fontsize=8)
    _footnote(figure, notes)
    if int(estimates["runs"].max()) <= 1:
        figure.suptitle(f"{title} (one replication per point: no confidence bands)")
    else:
        figure.suptitle(f"{title}: mean over replications" + (" with 95 % CI bands" if banded else ""))
    return figure


def _from_zero(axes: Axes) -> None:
    """Start the y axis at zero: every curve metric is >= 0 (only margins or a wide CI reach below)."""
    high = axes.get_ylim()[1]
    axes.set_ylim(0, high * 1.05 if high > 0 else 1)


def _draw(axes: Axes, xs: np.ndarray, values: np.ndarray, low: np.ndarray, high: np.ndarray, style: dict[str, Any],
          name: str, categorical: bool) -> None:
    if categorical:
        errors = np.vstack([values - low, high - values]) if np.isfinite(low).any() else None
        offset = 0.0
        axes.errorbar(xs + offset, values, yerr=errors, color=style["color"], marker=style["marker"], linestyle="none",
                      capsize=4, label=name)
        return
    axes.plot(xs, values, label=name, **{**style, "markevery": None})
    if np.isfinite(low).any():
        axes.fill_between(xs, low, high, color=style["color"], alpha=0.18, linewidth=0)


def _footnote(figure: Figure, notes: Sequence[str]) -> None:
    """Lines under the figure (as its x label, so the layout makes room for them)."""
    if notes:
        text = "\n".join(textwrap.shorten(note, 160, placeholder=" …") for note in notes)
        figure.supxlabel(text, fontsize=8, x=0.01, ha="left", family="monospace")


def distributions_figure(labels: Sequence[str], quantiles: Sequence[np.ndarray], title: str, *,
                         panels: Sequence[str] | None = None, ordered: bool = False,
                         legend_title: str | None = None) -> Figure:
    """Latency CDFs overlaid: each curve is a point's (or arm's) quantile function averaged over replications.

    Left: the whole distribution on a log axis (latencies under load span orders of
    magnitude); right: the tail, the share of requests slower than x. With ``panels`` the
    curves are split into small multiples (one row per panel, e.g. per discipline), each
    holding few curves; ``ordered`` colours them along the swept values (light to dark).
    """
    names = list(dict.fromkeys(panels)) if panels is not None else [""]
    figure = Figure(figsize=(12.5, 3.9 * len(names) + 0.6), layout="constrained")
    grid = figure.subplots(len(names), 2, squeeze=False)
    for (whole, tail), panel in zip(grid, names, strict=True):
        members = [i for i in range(len(labels)) if panels is None or panels[i] == panel]
        for position, index in enumerate(members):
            levels = quantiles[index]
            keep = np.isfinite(levels) & (levels > 0)
            if not keep.any():
                continue
            style = line_style(position, len(members), ordered)
            whole.plot(levels[keep], QUANTILES[keep], label=shorten(labels[index], 40), **style)
            beyond = keep & (QUANTILES >= 0.9) & (QUANTILES < 1)
            tail.plot(levels[beyond], 1 - QUANTILES[beyond], label=shorten(labels[index], 40), **style)
        prefix = f"{panel}: " if panel else ""
        whole.set(xlabel="latency of served requests (s, log scale)", ylabel="share of served requests",
                  ylim=(0, 1.01), title=f"{prefix}latency distribution (CDF)")
        tail.set(xlabel="latency (s)", ylabel="share slower (log scale)", title=f"{prefix}the tail: slowest 10 %")
        if whole.lines:
            whole.set_xscale("log")
            tail.set_yscale("log")
        for axes in (whole, tail):
            axes.grid(alpha=0.3)
        legend_outside(tail, title=legend_title, title_fontsize=8)
    figure.suptitle(title)
    return figure


def timeseries_overlay(labels: Sequence[str], series: Sequence[pd.DataFrame], title: str) -> Figure:
    """Goodput, queue length and busy consumers over time, each arm's mean over replications.

    Arms differ in dash and marker as well as colour, so two arms with identical results
    stay visible (one on top of the other) instead of one hiding the other.
    """
    figure = Figure(figsize=(12.5, 8.5), layout="constrained")
    flows, queue, busy = figure.subplots(3, 1, sharex=True)
    for position, (label, frame) in enumerate(zip(labels, series, strict=True)):
        bucket = float(frame.attrs.get("bucket") or 1.0)
        mean = frame.groupby("time", sort=True)[["completed", "served", "queue_length", "busy"]].mean()
        time = mean.index.to_numpy(dtype=float) + bucket / 2
        style = line_style(position, len(labels))
        name = shorten(label, 40)
        flows.plot(time, mean["completed"] / bucket, label=f"{name}: goodput", **style)
        flows.plot(time, mean["served"] / bucket, color=style["color"], linestyle=":", linewidth=1,
                   label=f"{name}: throughput")
        queue.plot(time, mean["queue_length"], label=name, **style)
        busy.plot(time, mean["busy"], label=name, **style)
    flows.set(ylabel="requests per second", title="Goodput (completed/s) and throughput (served/s, dotted)")
    queue.set(ylabel="waiting requests", title="Queue length")
    busy.set(ylabel="consumers", xlabel="simulated time (s)", title="Busy consumers")
    for axes in (flows, queue, busy):
        axes.grid(alpha=0.3)
        legend_outside(axes)
    figure.suptitle(f"{title} (mean over replications)")
    return figure


VERDICT_COLOURS = {"meets": "#2a9d8f", "fails": "#e76f51", "unsure": "#e9c46a"}


def plan_figure(plan: Plan, title: str, *, x_label: str | None = None,
                metric_label: Callable[[str], str] = str) -> Figure:
    """Each target metric at every probed value (mean, one-sided bound, verdict), the target and the answer.

    Left: every probe (log scale when the values span decades, as they do between a starved
    minimum and a generous maximum). Right: the later half of the probes, where bisection
    converged on the boundary.
    """
    targets = plan.spec.targets
    figure = Figure(figsize=(12.5, 4.2 * len(targets)), layout="constrained")
    panels = figure.subplots(len(targets), 2, squeeze=False)
    late = sorted(plan.probes, key=lambda p: p.order)[len(plan.probes) // 2:]
    for (whole, near), target in zip(panels, targets, strict=True):
        for axes, probes in ((whole, plan.probes), (near, late)):
            _probes(axes, probes, target)
            axes.axhline(target.value, color="black", linestyle="--", linewidth=1, label=f"target {target.text}")
            if plan.answer is not None:
                axes.axvline(plan.answer.value, color=VERDICT_COLOURS["meets"], linestyle=":",
                             label=f"answer {plan.answer.value:,g}")
            axes.set(xlabel=x_label or plan.path, ylabel=metric_label(target.metric))
            axes.grid(alpha=0.3)
        values = [p.bounds[target.text][0] for p in plan.probes]
        positive = [v for v in values if v > 0 and np.isfinite(v)]
        if positive and target.value > 0 and max(positive) / min([*positive, target.value]) > 20:
            whole.set_yscale("log")
        whole.set_title(f"{target.metric}: every probe (numbered in order)")
        near.set_title("near the boundary")
        for verdict, shade in VERDICT_COLOURS.items():
            if any(p.verdict == verdict for p in plan.probes):
                near.plot([], [], "o", color=shade, label=verdict)
        legend_outside(near)
    confidence = f"{plan.spec.confidence:.0%}"
    figure.suptitle(f"{title}: probes, mean (dot) and {confidence} one-sided bound (line)")
    return figure


def _probes(axes: Axes, probes: Sequence[Any], target: Any) -> None:
    for probe in probes:
        mean, lower, upper = probe.bounds[target.text]
        bound = upper if target.upper else lower
        shade = VERDICT_COLOURS[probe.verdict]
        if np.isfinite(bound):
            axes.plot([probe.value, probe.value], [mean, bound], color=shade, linewidth=1.2)
        axes.plot(probe.value, mean, "o", color=shade, markersize=5)
        axes.annotate(str(probe.order + 1), (probe.value, mean), textcoords="offset points", xytext=(3, 3),
                      fontsize=7)


__all__ = ["colour", "curves_figure", "distributions_figure", "load_capacity", "plan_figure", "timeseries_overlay"]
