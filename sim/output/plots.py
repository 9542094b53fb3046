"""Figures of a run, drawn with matplotlib's object API (no global pyplot state, no display needed).

The engine never imports this module. Each function takes tidy DataFrames and returns a
:class:`~matplotlib.figure.Figure`; :mod:`sim.output.report` saves them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from numpy.typing import NDArray

from sim.analysis.streamed import sketch_histogram, sketch_quantiles
from sim.engine.records import OUTCOMES
from sim.engine.tally import LATENCY, WAIT, Tally
from sim.model.units import format_duration

PLOTTED_OUTCOMES = ("completed", "late", "expired", "rejected", "dropped", "failed", "dead_lettered", "in_system")
assert set(PLOTTED_OUTCOMES) == set(OUTCOMES)

OUTCOME_COLOURS = {
    "completed": "#2a9d8f",
    "late": "#e9c46a",
    "expired": "#f4a261",
    "rejected": "#e76f51",
    "dropped": "#9b2226",
    "failed": "#6a040f",
    "dead_lettered": "#5a189a",
    "in_system": "#8d99ae",
}


def latency_figure(requests: pd.DataFrame, title: str, tally: Tally | None = None) -> Figure:
    """Latency (arrival to finish) of served requests: histogram split by outcome, and the CDF with wait.

    A streamed run (``tally``: no rows, or only a sample, kept) is drawn from its sketches instead."""
    if tally is not None:
        return sketch_latency_figure(tally.sketch[0, LATENCY], tally.sketch[0, WAIT], title)
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    histogram, cdf = figure.subplots(1, 2)
    served = requests[requests["outcome"].isin(["completed", "late"])]
    latency = (served["finish"] - served["arrival"]).to_numpy()
    wait = (served["start"] - served["arrival"]).to_numpy()
    if len(latency):
        bins = np.linspace(0, float(latency.max()) * 1.0001 + 1e-12, 60)
        stacks = [latency[(served["outcome"] == name).to_numpy()] for name in ("completed", "late")]
        histogram.hist(stacks, bins=bins, stacked=True, label=["completed", "late (client gone)"],
                       color=[OUTCOME_COLOURS["completed"], OUTCOME_COLOURS["late"]])
        for percentile, style in ((50, ":"), (99, "--"), (99.9, "-.")):
            value = float(np.percentile(latency, percentile))
            histogram.axvline(value, color="black", linestyle=style, linewidth=1,
                              label=f"p{percentile:g} = {format_duration(value)}")
        for values, label in ((latency, "latency"), (wait, "wait in queue")):
            ordered = np.sort(values)
            cdf.plot(ordered, np.arange(1, len(ordered) + 1) / len(ordered), label=label)
    histogram.set(xlabel="latency, arrival to finish (s)", ylabel="requests", title="Latency of served requests")
    histogram.legend(fontsize=8)
    cdf.set(xlabel="seconds", ylabel="share of served requests", title="Cumulative distribution", ylim=(0, 1.01))
    cdf.grid(alpha=0.3)
    cdf.legend(fontsize=8)
    figure.suptitle(title)
    return figure


QUANTILES = np.linspace(0.0, 1.0, 401)
"""Levels the CDF of a sketch is drawn at."""


def sketch_latency_figure(latency: NDArray[np.int64], wait: NDArray[np.int64], title: str) -> Figure:
    """The latency figure of a streamed run (no rows kept), from its sketches of served requests'
    latency and wait: a histogram (each sketch bin spread over its 1 % range), p50/p99/p99.9 and the
    CDFs, all within the sketch's 0.5 %. Completed and late are not told apart."""
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    histogram, cdf = figure.subplots(1, 2)
    if latency.sum() > 0:
        quantiles = sketch_quantiles(latency, QUANTILES)
        edges = np.linspace(0, float(quantiles[-1]) * 1.0051 + 1e-12, 60)  # up to the largest (+0.5 %)
        histogram.hist(edges[:-1], bins=edges, weights=sketch_histogram(latency, edges),
                       color=OUTCOME_COLOURS["completed"], label="served")
        marks = sketch_quantiles(latency, np.array([0.5, 0.99, 0.999]))
        for percentile, value, style in zip((50, 99, 99.9), marks, (":", "--", "-."), strict=True):
            histogram.axvline(value, color="black", linestyle=style, linewidth=1,
                              label=f"p{percentile:g} = {format_duration(float(value))}")
        for values, label in ((quantiles, "latency"), (sketch_quantiles(wait, QUANTILES), "wait in queue")):
            cdf.plot(values, QUANTILES, label=label)
    histogram.set(xlabel="latency, arrival to finish (s)", ylabel="requests",
                  title="Latency of served requests (from the streaming sketch)")
    histogram.legend(fontsize=8)
    cdf.set(xlabel="seconds", ylabel="share of served requests", title="Cumulative distribution (within 0.5 %)",
            ylim=(0, 1.01))
    cdf.grid(alpha=0.3)
    cdf.legend(fontsize=8)
    figure.suptitle(title)
    return figure


def timeseries_figure(series: pd.DataFrame, concurrency: int, title: str) -> Figure:
    """Flows per second, queue length and busy consumers over time: the shape of a run."""
    bucket = float(series.attrs.get("bucket") or (series["time"].diff().dropna().min() if len(series) > 1 else 1.0))
    figure = Figure(figsize=(11, 8), layout="constrained")
    flows, queue, busy = figure.subplots(3, 1, sharex=True)
    time = series["time"].to_numpy() + bucket / 2
    for column, colour in (("arrivals", "#264653"), ("served", "#8d99ae"), ("completed", OUTCOME_COLOURS["completed"]),
                           ("timeouts", OUTCOME_COLOURS["late"]), ("rejected", OUTCOME_COLOURS["rejected"]),
                           ("dropped", OUTCOME_COLOURS["dropped"])):
        values = series[column].to_numpy() / bucket
        if column in ("arrivals", "served", "completed") or values.any():
            flows.plot(time, values, label=f"{column}/s", color=colour, drawstyle="default")
    if "attempts" in series:  # retries: tries per second next to arrivals show the amplification
        flows.plot(time, series["attempts"].to_numpy() / bucket, ":", color="#264653", label="attempts/s")
    flows.set(ylabel="requests per second", title="Arrivals, throughput, goodput and losses")
    flows.legend(fontsize=8, ncol=3)
    stages = [column.removesuffix(".queue_length") for column in series.columns if column.endswith(".queue_length")]
    queue.fill_between(time, series["queue_length"], step="mid", alpha=0.4, color="#457b9d", label="mean in bucket")
    queue.plot(time, series["queue_max"], drawstyle="steps-mid", color="#1d3557", linewidth=0.8, label="max in bucket")
    for stage in stages:
        queue.plot(time, series[f"{stage}.queue_length"], drawstyle="steps-mid", linewidth=1, label=f"at {stage}")
    queue.set(ylabel="waiting requests", title="Queue length" + (" (all stages, and per stage)" if stages else ""))
    queue.legend(fontsize=8, ncol=2)
    busy.plot(time, series["busy"], drawstyle="steps-mid", color="#2a9d8f", label="busy (mean in bucket)")
    for stage in stages:
        busy.plot(time, series[f"{stage}.busy"], drawstyle="steps-mid", linewidth=1, label=f"busy at {stage}")
    if "provisioned" in series and (series["provisioned"] < concurrency - 1e-9).any():
        busy.plot(time, series["provisioned"], drawstyle="steps-mid", color="#e76f51", linewidth=1,
                  label="environments provisioned")
    busy.axhline(concurrency, color="black", linestyle="--", linewidth=1, label=f"concurrency = {concurrency}")
    busy.set(ylabel="consumers", xlabel=f"simulated time (s), buckets of {format_duration(bucket)}",
             title="Busy consumers", ylim=(0, concurrency * 1.08))
    busy.legend(fontsize=8)
    for axes in (flows, queue, busy):
        axes.grid(alpha=0.3)
    figure.suptitle(title)
    return figure


def outcomes_figure(summary: pd.DataFrame, title: str) -> Figure:
    """How every request ended, per producer when there are several (first replication)."""
    runs = summary[summary["replication"].apply(lambda r: isinstance(r, int | np.integer))]
    if "stage" in runs:
        runs = runs[runs["stage"] == "all"]  # end to end; stage rows count jobs, not requests
    first = runs[runs["replication"] == runs["replication"].min()]
    groups = first[first["producer"] != "all"] if (first["producer"] != "all").any() else first
    figure = Figure(figsize=(8, 4), layout="constrained")
    axes = figure.subplots()
    left = np.zeros(len(groups))
    labels = groups["producer"].astype(str).tolist()
    for outcome in PLOTTED_OUTCOMES:
        counts = groups[outcome].to_numpy(dtype=float)
        bars = axes.barh(labels, counts, left=left, color=OUTCOME_COLOURS[outcome], label=outcome)
        for bar, count, offered in zip(bars, counts, groups["offered"].to_numpy(dtype=float), strict=True):
            if offered and count / offered > 0.04:
                axes.text(bar.get_x() + bar.get_width() / 2, bar.get_y() + bar.get_height() / 2,
                          f"{int(count):,}", ha="center", va="center", fontsize=8, color="white")
        left += counts
    axes.set(xlabel="requests", title="Outcomes")
    axes.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    figure.suptitle(title)
    return figure
