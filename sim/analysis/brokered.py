"""Summary measures of broker models: per-key order, peak backlog, what a broker bills.

- **Out of order** (:func:`out_of_order`): among messages that were processed successfully, those
  whose first successful processing finished after that of a message of the same key sent later.
  Messages without a key (and a scenario without keys) have no order to break: the column is
  then empty. Per stage, so a pipeline's stages are judged separately.
- **Peak backlog** (``max_in_system``): the most messages accepted and not yet processed (or
  lost) at any moment, end to end: what piled up in the broker and its consumers.
- **Broker charges** (:func:`broker_cost`): SQS and SQS FIFO per API call (the ``sqs_requests``
  usage), Pub/Sub per byte published and delivered; Kafka, RabbitMQ and Redis are run on
  machines you pay for by the hour, which a run of seconds does not price.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from sim.analysis.intervals import StepFunction
from sim.engine.records import COMPLETED, LATE, Columns, RunRecords
from sim.model.broker_specs import PubSubSpec, SqsFifoSpec, SqsSpec
from sim.model.schema import Scenario

TIB = 1024.0**4

Mask = NDArray[np.bool_]


def broker_columns(scenario: Scenario) -> bool:
    """Whether the summary has the broker columns: keys, a broker model, or faults make them meaningful."""
    return (any(p.key is not None for p in scenario.producers) or bool(scenario.faults)
            or any(stage.queue.broker is not None for stage in scenario.stage_list))


def out_of_order(jobs: Columns, mask: Mask) -> float:
    """Served keyed jobs (of ``mask``) that finished after a later-sent job of the same key and stage.

    Sent order is job order (jobs are numbered as they are sent); finishing order is the time of
    the first successful processing (ties by job number). NaN when no job has a key.
    """
    if jobs.key is None:
        return math.nan
    served = mask & ((jobs.outcome == COMPLETED) | (jobs.outcome == LATE)) & (jobs.key >= 0)
    rows = np.flatnonzero(served)
    if len(rows) == 0:
        return 0.0 if np.any(jobs.key[mask] >= 0) else math.nan
    group = jobs.stage[rows].astype(np.int64) * (int(jobs.key.max()) + 1) + jobs.key[rows]
    order = np.lexsort((rows, jobs.finish[rows], group))
    group, sent = group[order], rows[order]
    # The running maximum of the sent order within each group: groups are consecutive, so offsetting
    # each group above every earlier one keeps maxima from leaking across groups.
    offset = np.searchsorted(np.unique(group), group).astype(np.int64) * (int(rows.max()) + 1)
    running = np.maximum.accumulate(sent + offset)
    earlier = np.concatenate(([-1], running[:-1]))
    return float(np.count_nonzero(sent + offset < earlier))


def broker_cost(records: RunRecords, scenario: Scenario, mask: Mask) -> float | None:
    """What the brokers of the jobs in ``mask`` bill, or None when none of their brokers is priced."""
    jobs, usage, prices = records.jobs, records.jobs.usage, scenario.cost
    if usage is None:
        return None
    total, priced = 0.0, False
    for index, stage in enumerate(scenario.stage_list):
        here = mask & (jobs.stage == index)
        broker = stage.queue.broker
        if stage.queue.delivery is not None or isinstance(broker, SqsSpec):
            price = prices.sqs_fifo_request if isinstance(broker, SqsFifoSpec) else prices.sqs_request
            total += float(np.sum(usage.sqs_requests[here])) * price
            priced = True
        elif isinstance(broker, PubSubSpec):
            throughput = (np.count_nonzero(here) + float(np.sum(usage.receives[here]))) * broker.message_bytes
            total += throughput / TIB * prices.pubsub_tib
            priced = True
    return total if priced else None


RECOVERY_LOOKBACK = 60.0
"""Seconds before a fault whose average backlog is the level to get back to."""


def recovery_time(time: NDArray[np.float64], backlog: NDArray[np.float64], start: float, end: float) -> float:
    """Seconds from the end of a fault (``end``; a crash ends when it happens) until the backlog is back.

    The backlog is a time series' ``in_system`` (average per bucket). "Back" is the first bucket
    starting at or after ``end`` whose average is at most the pre-fault level: the mean over the
    :data:`RECOVERY_LOOKBACK` seconds of whole buckets before ``start``, plus 10 % or one message,
    whichever is more (noise is not a fault). Infinite when it never gets back before the run ends.
    """
    if len(time) == 0:
        return math.inf
    width = float(time[1] - time[0]) if len(time) > 1 else math.inf
    before = (time + width <= start + 1e-9) & (time >= start - RECOVERY_LOOKBACK - 1e-9)
    baseline = float(backlog[before].mean()) if before.any() else 0.0
    threshold = max(1.1 * baseline, baseline + 1.0)
    back = np.flatnonzero((time >= end - 1e-9) & (backlog <= threshold))
    return float(time[back[0]] - end) if len(back) else math.inf


def consumer_lag(records: RunRecords) -> StepFunction:
    """Records appended to a log (Kafka) and not yet committed by its consumer group, over time."""
    ups, downs = [np.empty(0)], [np.empty(0)]
    for events in records.lag_events:
        if events is not None:
            appended, commit_times, counts = events
            ups.append(np.asarray(appended, dtype=float))
            downs.append(np.repeat(np.asarray(commit_times, dtype=float), np.asarray(counts, dtype=np.int64)))
    return StepFunction(np.concatenate(ups), np.concatenate(downs))
