"""The scorecard's figures: backlog around the faults, latency distributions, the metrics side by side."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from sim.output.curves import colour, distributions_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from sim.experiments.evaluate import Scorecard
    from sim.experiments.replication import RunOutcome

BARS = (
    ("throughput", "throughput (messages/s)"),
    ("latency_p99", "p99 latency (s)"),
    ("messages_lost", "messages lost"),
    ("duplicates", "duplicates"),
    ("out_of_order", "out of order (per key)"),
    ("max_in_system", "peak backlog (messages)"),
    ("recovery", "recovery after the faults (s, mean)"),
    ("cost_usd", "cost (USD)"),
)


def scorecard_figures(card: Scorecard) -> dict[str, Figure]:
    labels = card.evaluation.arms.labels
    quantiles = [_mean_quantiles(card.comparison.outcomes[p.index]) for p in card.evaluation.arms.points]
    title = card.evaluation.name
    return {"scorecard": bars_figure(card), "backlog": backlog_figure(card),
            "latency-cdf": distributions_figure(labels, quantiles, title)}


def _mean_quantiles(outcomes: list[RunOutcome]) -> np.ndarray:
    """A broker's latency quantile function, averaged over the replications that served something."""
    stacked = np.vstack([outcome.latency_quantiles for outcome in outcomes])
    finite = np.isfinite(stacked).all(axis=1)
    mean: np.ndarray = stacked[finite].mean(axis=0) if finite.any() else stacked[0]
    return mean


def backlog_figure(card: Scorecard) -> Figure:
    """Messages in the system over time, each broker's mean over replications, faults shaded."""
    figure = Figure(figsize=(11, 5), layout="constrained")
    axes = figure.subplots()
    labels = card.evaluation.arms.labels
    for position, (label, point) in enumerate(zip(labels, card.evaluation.arms.points, strict=True)):
        frames = [o.timeseries for o in card.comparison.outcomes[point.index]]
        series = frames[0][["time"]].copy()
        series["in_system"] = np.mean([f["in_system"].to_numpy(dtype=float)[: len(series)] for f in frames
                                       if len(f) >= len(series)], axis=0)
        axes.plot(series["time"], series["in_system"], color=colour(position, len(labels)), label=label,
                  drawstyle="steps-post", linewidth=1.2)
    for index, fault in enumerate(card.faults):
        for start, end in fault.windows[0]:
            if end > start:
                axes.axvspan(start, end, color="#e76f51", alpha=0.12, linewidth=0)
            else:
                axes.axvline(start, color="#e76f51", alpha=0.6, linewidth=1)
            axes.annotate(f"{index + 1}", (start, 1.0), xycoords=("data", "axes fraction"), fontsize=8,
                          color="#9b2226", ha="left", va="top")
    if any(np.nanmax(o.timeseries["in_system"]) > 0 for outcomes in card.comparison.outcomes.values()
           for o in outcomes):
        axes.set_yscale("symlog", linthresh=10)
    axes.set(xlabel="simulated time (s)", ylabel="messages sent, not yet processed",
             title="Backlog (mean over replications); shaded: faults (numbered as in the scorecard)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, ncols=min(4, len(labels)))
    figure.suptitle(card.evaluation.name)
    return figure


def bars_figure(card: Scorecard) -> Figure:
    """One panel per metric: each broker's mean with its 95 % interval."""
    figure = Figure(figsize=(14, 6.5), layout="constrained")
    panels = figure.subplots(2, 4).ravel()
    labels = card.evaluation.arms.labels
    table = card.table
    recovery = [f.column for f in card.faults]
    for axes, (metric, title) in zip(panels, BARS, strict=True):
        means, below, above = [], [], []
        for label in labels:
            mine = table[(table["broker"] == label)]
            rows = mine[mine["metric"].isin(recovery)] if metric == "recovery" else mine[mine["metric"] == metric]
            mean = float(rows["mean"].mean()) if len(rows) else math.nan
            means.append(mean)
            below.append(mean - float(rows["ci_low"].mean()) if len(rows) else math.nan)
            above.append(float(rows["ci_high"].mean()) - mean if len(rows) else math.nan)
        _bars(axes, labels, means, (below, above), title)
    figure.suptitle(f"{card.evaluation.name}: the scorecard (mean, 95% CI over {card.evaluation.replications} "
                    "replications; same load and faults for every broker)")
    return figure


def _bars(axes: Axes, labels: list[str], means: list[float], errors: tuple[list[float], list[float]],
          title: str) -> None:
    """Bars with their (clipped, so possibly lopsided) intervals; ``never`` and ``n/a`` written in."""
    positions = np.arange(len(labels))
    finite = [m if math.isfinite(m) else 0.0 for m in means]
    spread = [[e if math.isfinite(e) and math.isfinite(m) else 0.0 for e, m in zip(side, means, strict=True)]
              for side in errors]
    axes.bar(positions, finite, yerr=spread, color=[colour(i, len(labels)) for i in range(len(labels))],
             capsize=3)
    top = max([m + e for m, e in zip(finite, spread[1], strict=True)] + [1e-12])
    for position, mean in zip(positions, means, strict=True):
        if math.isinf(mean):
            axes.text(float(position), top * 0.5, "never", rotation=90, ha="center", va="center", fontsize=8)
        elif math.isnan(mean):
            axes.text(float(position), top * 0.05, "n/a", ha="center", va="bottom", fontsize=7, color="#555")
    axes.set_xticks(positions, labels, rotation=35, ha="right", fontsize=8)
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3, axis="y")
