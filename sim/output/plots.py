"""Figures of a run, drawn with matplotlib's object API (no global pyplot state, no display needed).

The engine never imports this module. Each function takes tidy DataFrames and returns a
:class:`~matplotlib.figure.Figure`; :mod:`sim.output.report` saves them. Legends sit beside
the data and list only what occurs (:mod:`sim.output.figstyle`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import NDArray

from sim.analysis.streamed import sketch_histogram, sketch_quantiles
from sim.engine.records import OUTCOMES
from sim.engine.tally import LATENCY, WAIT, Tally
from sim.model.units import format_duration
from sim.output.figstyle import colour, legend_outside
from sim.output.summaries import run_rows

PLOTTED_OUTCOMES = ("completed", "late", "expired", "rejected", "dropped", "failed", "dead_lettered", "lost",
                    "in_system")
assert set(PLOTTED_OUTCOMES) == set(OUTCOMES)

OUTCOME_COLOURS = {
    "completed": "#2a9d8f",
    "late": "#e9c46a",
    "expired": "#f4a261",
    "rejected": "#e76f51",
    "dropped": "#9b2226",
    "failed": "#6a040f",
    "lost": "#3d0066",
    "dead_lettered": "#5a189a",
    "in_system": "#8d99ae",
}
WIDE_RANGE = 20.0
"""Latencies whose maximum exceeds this many times the median are drawn on a log axis: a linear
one would squeeze almost every request into the first bar."""
SERVED = ("completed", "late")


def wide_range(values: np.ndarray) -> bool:
    """Whether ``values`` span too many orders of magnitude for a linear axis."""
    positive = values[values > 0]
    if len(positive) < 2:
        return False
    return float(positive.max()) > WIDE_RANGE * float(np.median(positive))


def _bins(values: np.ndarray, logarithmic: bool) -> np.ndarray:
    top = float(values.max()) * 1.0001 + 1e-12
    if logarithmic:
        positive = values[values > 0]
        return np.geomspace(max(float(positive.min()), top * 1e-6), top, 60)
    return np.linspace(0, top, 60)


def latency_figure(requests: pd.DataFrame, title: str, wait_label: str = "wait in queue",
                   tally: Tally | None = None) -> Figure:
    """Latency (arrival to finish) of served requests: histogram and CDF with the wait.

    One producer: the histogram is stacked by outcome (completed, late) with p50/p99/p99.9.
    Several producers (traffic classes, e.g. priorities): one histogram outline and one CDF
    per class, since pooling the classes would hide who pays. A streamed run (``tally``: no
    rows, or only a sample, kept) is drawn from its sketches instead.
    """
    if tally is not None:
        return sketch_latency_figure(tally.sketch[0, LATENCY], tally.sketch[0, WAIT], title, wait_label)
    figure = Figure(figsize=(12.5, 4.4), layout="constrained")
    histogram, cdf = figure.subplots(1, 2)
    served = requests[requests["outcome"].isin(SERVED)]
    latency = (served["finish"] - served["arrival"]).to_numpy(dtype=float)
    logarithmic = wide_range(latency)
    classes = sorted(served["producer"].astype(str).unique()) if "producer" in served else []
    if len(latency):
        bins = _bins(latency, logarithmic)
        if len(classes) > 1:
            _per_class(histogram, cdf, served, classes, bins)
        else:
            _pooled(histogram, cdf, served, bins, wait_label)
        if logarithmic:
            for axes in (histogram, cdf):
                axes.set_xscale("log")
                axes.set_xlim(bins[0], bins[-1])  # zero waits cannot be drawn on a log axis: start with the bins
        counts = np.histogram(np.clip(latency, bins[0], bins[-1]), bins=bins)[0]
        if counts.max() > 100 * max(1, counts[counts > 0].min()):
            histogram.set_yscale("log")
    scale = " (log scale)" if logarithmic else ""
    histogram.set(xlabel=f"latency, arrival to finish (s){scale}", ylabel="requests",
                  title="Latency of served requests")
    cdf.set(xlabel=f"seconds{scale}", ylabel="share of served requests", title="Cumulative distribution",
            ylim=(0, 1.01))
    for axes in (histogram, cdf):
        axes.grid(alpha=0.3)
        legend_outside(axes)
    figure.suptitle(title)
    return figure


SKETCH_LEVELS = np.linspace(0.0, 1.0, 401)
"""Levels the CDF of a sketch is drawn at."""


def sketch_latency_figure(latency: NDArray[np.int64], wait: NDArray[np.int64], title: str,
                          wait_label: str = "wait in queue") -> Figure:
    """The latency figure of a streamed run, from its sketches of served requests' latency and wait: a
    histogram (each sketch bin spread over its 1 % range), p50/p99/p99.9 and the CDFs, all within the
    sketch's 0.5 %. Completed and late (and producers) are not told apart."""
    figure = Figure(figsize=(12.5, 4.4), layout="constrained")
    histogram, cdf = figure.subplots(1, 2)
    if latency.sum() > 0:
        quantiles = sketch_quantiles(latency, SKETCH_LEVELS)
        edges = np.linspace(0, float(quantiles[-1]) * 1.0051 + 1e-12, 60)  # up to the largest (+0.5 %)
        histogram.hist(edges[:-1], bins=edges, weights=sketch_histogram(latency, edges),
                       color=OUTCOME_COLOURS["completed"], label="served")
        marks = sketch_quantiles(latency, np.array([0.5, 0.99, 0.999]))
        for percentile, value, style in zip((50, 99, 99.9), marks, (":", "--", "-."), strict=True):
            histogram.axvline(value, color="black", linestyle=style, linewidth=1,
                              label=f"p{percentile:g} = {format_duration(float(value))}")
        for values, label in ((quantiles, "latency"), (sketch_quantiles(wait, SKETCH_LEVELS), wait_label)):
            cdf.plot(values, SKETCH_LEVELS, label=label)
    histogram.set(xlabel="latency, arrival to finish (s)", ylabel="requests",
                  title="Latency of served requests (from the streaming sketch)")
    cdf.set(xlabel="seconds", ylabel="share of served requests", title="Cumulative distribution (within 0.5 %)",
            ylim=(0, 1.01))
    for axes in (histogram, cdf):
        axes.grid(alpha=0.3)
        legend_outside(axes)
    figure.suptitle(title)
    return figure


def _pooled(histogram: Axes, cdf: Axes, served: pd.DataFrame, bins: np.ndarray, wait_label: str) -> None:
    latency = (served["finish"] - served["arrival"]).to_numpy(dtype=float)
    wait = (served["start"] - served["arrival"]).to_numpy(dtype=float)
    present = [name for name in SERVED if (served["outcome"] == name).any()]
    stacks = [np.clip(latency[(served["outcome"] == name).to_numpy()], bins[0], bins[-1]) for name in present]
    names = {"completed": "completed", "late": "late (client gone)"}
    histogram.hist(stacks, bins=list(bins), stacked=True, label=[names[n] for n in present],
                   color=[OUTCOME_COLOURS[n] for n in present])
    for percentile, style in ((50, ":"), (99, "--"), (99.9, "-.")):
        value = float(np.percentile(latency, percentile))
        histogram.axvline(value, color="black", linestyle=style, linewidth=1,
                          label=f"p{percentile:g} = {format_duration(value)}")
    for values, label, style in ((latency, "latency", "-"), (wait, wait_label, "--")):
        ordered = np.sort(values)
        cdf.plot(ordered, np.arange(1, len(ordered) + 1) / len(ordered), linestyle=style, label=label)


def _per_class(histogram: Axes, cdf: Axes, served: pd.DataFrame, classes: list[str], bins: np.ndarray) -> None:
    producers = served["producer"].astype(str).to_numpy()
    for position, name in enumerate(classes):
        rows = served[producers == name]
        latency = (rows["finish"] - rows["arrival"]).to_numpy(dtype=float)
        wait = (rows["start"] - rows["arrival"]).to_numpy(dtype=float)
        shade = colour(position, len(classes))
        histogram.hist(np.clip(latency, bins[0], bins[-1]), bins=list(bins), histtype="step", linewidth=1.5,
                       color=shade, label=f"{name} ({len(latency):,} served)")
        p99 = float(np.percentile(latency, 99))
        histogram.axvline(p99, color=shade, linestyle="--", linewidth=1, label=f"{name} p99 = {format_duration(p99)}")
        for values, what, style in ((latency, "latency", "-"), (wait, "wait", ":")):
            ordered = np.sort(values)
            cdf.plot(ordered, np.arange(1, len(ordered) + 1) / len(ordered), color=shade, linestyle=style,
                     label=f"{name}: {what}")


LOSSES = (("timeouts", "clients gave up", OUTCOME_COLOURS["late"]),
          ("rejected", "rejected", OUTCOME_COLOURS["rejected"]),
          ("dropped", "dropped", OUTCOME_COLOURS["dropped"]))


def timeseries_figure(series: pd.DataFrame, concurrency: int, title: str, scaling: bool = False) -> Figure:
    """Arrivals, throughput, queue length and busy consumers over time: the shape of a run.

    Arrivals (and the losses counted where clients are: timeouts, rejections, drops) have a
    panel of their own: a burst arrives far faster than it can be served, and on a shared axis
    its spike would flatten the throughput to a line along the bottom.
    """
    bucket = float(series.attrs.get("bucket") or (series["time"].diff().dropna().min() if len(series) > 1 else 1.0))
    figure = Figure(figsize=(12.5, 10.5), layout="constrained")
    arriving, flows, queue, busy = figure.subplots(4, 1, sharex=True)
    time = series["time"].to_numpy() + bucket / 2
    arriving.plot(time, series["arrivals"].to_numpy() / bucket, color="#264653", label="arrivals/s")
    if "attempts" in series:  # retries: tries per second next to arrivals show the amplification
        arriving.plot(time, series["attempts"].to_numpy() / bucket, ":", color="#264653", label="attempts/s")
    for column, name, shade in LOSSES:
        values = series[column].to_numpy() / bucket
        if values.any():
            arriving.plot(time, values, color=shade, label=f"{name}/s")
    arriving.set(ylabel="requests per second", title="Arrivals, and requests lost (when clients gave up, "
                                                      "or were rejected or dropped)")
    flows.plot(time, series["served"].to_numpy() / bucket, color="#8d99ae", linewidth=2.2,
               label="served/s (throughput)")
    flows.plot(time, series["completed"].to_numpy() / bucket, "--", color=OUTCOME_COLOURS["completed"],
               label="completed/s (goodput)")
    flows.set(ylabel="requests per second", title="Throughput and goodput: a gap between them is zombie work")
    flows.set_ylim(bottom=0)
    _queue_panel(queue, series, time)
    _busy_panel(busy, series, time, concurrency, scaling)
    busy.set_xlabel(f"simulated time (s), buckets of {format_duration(bucket)}")
    for axes in (arriving, flows, queue, busy):
        axes.grid(alpha=0.3)
        legend_outside(axes)
    figure.suptitle(title)
    return figure


def _stages(series: pd.DataFrame) -> list[str]:
    return [column.removesuffix(".queue_length") for column in series.columns if column.endswith(".queue_length")]


def _queue_panel(queue: Axes, series: pd.DataFrame, time: np.ndarray) -> None:
    stages = _stages(series)
    queue.fill_between(time, series["queue_length"], step="mid", alpha=0.4, color="#457b9d", label="mean in bucket")
    queue.plot(time, series["queue_max"], drawstyle="steps-mid", color="#1d3557", linewidth=0.8, label="max in bucket")
    for position, stage in enumerate(stages):
        queue.plot(time, series[f"{stage}.queue_length"], drawstyle="steps-mid", linewidth=1,
                   color=colour(position + 2, len(stages) + 2), label=f"at {stage} (mean)")
    queue.set(ylabel="waiting requests", title="Queue length" + (" (all stages, and per stage)" if stages else ""))
    queue.set_ylim(bottom=0)


def _busy_panel(busy: Axes, series: pd.DataFrame, time: np.ndarray, concurrency: int, scaling: bool) -> None:
    stages = _stages(series)
    busy.plot(time, series["busy"], drawstyle="steps-mid", color="#2a9d8f", label="busy (mean in bucket)")
    for position, stage in enumerate(stages):
        busy.plot(time, series[f"{stage}.busy"], drawstyle="steps-mid", linewidth=1,
                  color=colour(position + 2, len(stages) + 2), label=f"busy at {stage}")
    if "desired" in series:
        _autoscaled_consumers(busy, time, series)
    elif scaling and "provisioned" in series:
        busy.plot(time, series["provisioned"], drawstyle="steps-mid", color="#e76f51", linewidth=1,
                  label="environments provisioned")
    busy.axhline(concurrency, color="black", linestyle="--", linewidth=1, label=f"concurrency = {concurrency:,}")
    busy.set(ylabel="consumers", title="Busy consumers", ylim=(0, concurrency * 1.08))


def _autoscaled_consumers(axes: Axes, time: NDArray[np.float64], series: pd.DataFrame) -> None:
    """Autoscaling (``consumers.autoscale``): the consumers the autoscaler wants and those ready to serve."""
    axes.plot(time, series["desired"], drawstyle="steps-mid", color="#e76f51", linestyle="--", linewidth=1,
              label="desired (autoscaler)")
    axes.plot(time, series["ready"], drawstyle="steps-mid", color="#e76f51", linewidth=1.2, label="ready")


def outcomes_figure(summary: pd.DataFrame, title: str) -> Figure:
    """How every request ended, per producer when there are several (first replication).

    Only the outcomes that occur are drawn and listed.
    """
    runs = run_rows(summary)
    if "stage" in runs:
        runs = runs[runs["stage"] == "all"]  # end to end; stage rows count jobs, not requests
    first = runs[runs["replication"] == runs["replication"].min()]
    groups = first[first["producer"] != "all"] if (first["producer"] != "all").any() else first
    figure = Figure(figsize=(9, 1.6 + 0.9 * len(groups)), layout="constrained")
    axes = figure.subplots()
    left = np.zeros(len(groups))
    labels = groups["producer"].astype(str).tolist()
    for outcome in PLOTTED_OUTCOMES:
        counts = groups[outcome].to_numpy(dtype=float)
        if not counts.any():
            continue
        bars = axes.barh(labels, counts, left=left, color=OUTCOME_COLOURS[outcome], label=outcome)
        for bar, count, offered in zip(bars, counts, groups["offered"].to_numpy(dtype=float), strict=True):
            if offered and count / offered > 0.04:
                axes.text(bar.get_x() + bar.get_width() / 2, bar.get_y() + bar.get_height() / 2,
                          f"{int(count):,}", ha="center", va="center", fontsize=8, color="white")
        left += counts
    axes.set(xlabel="requests", title="Outcomes")
    legend_outside(axes)
    figure.suptitle(title)
    return figure
