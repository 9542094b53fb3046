"""Each bundled broker scenario shows what its header comment says it shows.

``tests/test_scenarios.py`` runs every scenario through ``qsim run``; these check the finding
itself, on the shipped scenario (or the override its comment suggests), with margins only a real
change of behaviour could break.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import sim
from sim.engine.brokers.partitions import partition_of_key
from sim.engine.records import COMPLETED, LOST, RunRecords
from sim.engine.simulation import replication_seeds, simulate
from tests.helpers import ROOT


def load(name: str, **overrides: Any) -> sim.Scenario:
    return sim.load_scenario(ROOT / "scenarios" / f"{name}.yaml", overrides)


def records(name: str, **overrides: Any) -> RunRecords:
    scenario = load(name, **overrides)
    return simulate(scenario, replication_seeds(scenario.seed, 0))


def summary(name: str, **overrides: Any) -> Any:
    return sim.run(load(name, **overrides)).summary.iloc[0]


def test_kafka_hot_partition_more_consumers_do_not_help() -> None:
    eight, sixteen = records("kafka-hot-partition"), records("kafka-hot-partition", **{"consumers.concurrency": 16})
    # The extra eight consumers own no partition: every message starts and finishes at the same time.
    np.testing.assert_array_equal(eight.jobs.start, sixteen.jobs.start)
    np.testing.assert_array_equal(eight.jobs.finish, sixteen.jobs.finish)
    # The hottest partition falls behind while the others keep up.
    jobs = eight.jobs
    assert jobs.key is not None
    partition = np.array([partition_of_key(k, 8) for k in range(1000)])[jobs.key]
    served = jobs.outcome == COMPLETED
    waits = [float(np.mean((jobs.start - jobs.arrival)[served & (partition == p)])) for p in range(8)]
    hot = int(np.argmax(np.bincount(partition, minlength=8)))
    assert waits[hot] > 5.0
    assert sorted(waits)[3] < 0.1  # the median partitions wait a few service times at most


def test_kafka_crash_reprocesses_the_uncommitted_work_after_the_session_timeout() -> None:
    result = records("kafka-crash-rebalance")
    jobs = result.jobs
    assert jobs.key is not None
    assert jobs.usage is not None
    partition = np.array([partition_of_key(k, 6) for k in range(500)])[jobs.key]
    crashed = np.isin(partition, [0, 3])  # consumer 0 of 3 owns partitions 0 and 3 (round robin)
    duplicated = jobs.usage.duplicates > 0
    assert duplicated.sum() > 0
    # Only its partitions' messages, processed in the last auto-commit interval before the crash.
    assert np.all(crashed[duplicated])
    assert np.all((jobs.finish[duplicated] < 60.0) & (jobs.finish[duplicated] > 60.0 - 5.0 - 1.0))
    # Its partitions' messages sent after the crash wait for the session timeout (45 s).
    after = crashed & (jobs.arrival > 60.0)
    assert np.min(jobs.finish[after]) >= 105.0
    committed_per_record = records("kafka-crash-rebalance", **{"queue.broker.commit": "per-message"})
    assert committed_per_record.jobs.usage is not None
    assert not committed_per_record.jobs.usage.duplicates.any()


def test_rabbitmq_large_prefetch_raises_the_tail() -> None:
    one, many = summary("rabbitmq-prefetch"), summary("rabbitmq-prefetch", **{"queue.broker.prefetch": 250})
    assert many["latency_p99"] > 2 * one["latency_p99"]
    assert many["latency_p50"] > 2 * one["latency_p50"]
    assert one["completed"] == many["completed"] == 6000


def test_redis_pubsub_loses_the_outage_and_the_overflowing_buffer() -> None:
    result = records("redis-pubsub-outage")
    jobs = result.jobs
    lost = jobs.outcome == LOST
    during = (jobs.arrival >= 30.0) & (jobs.arrival < 40.0)
    assert np.all(lost[during])  # every message published while the subscriber restarted
    # Before it, only what the subscriber held when it went down (in progress or buffered): lost at 30 s.
    assert np.all(jobs.finish[lost & (jobs.arrival < 30.0)] == 30.0)
    overflow = lost & (jobs.arrival >= 60.0)
    assert overflow.sum() > 1000  # the output buffer (2,048 messages) dropped at least once
    assert np.all(jobs.finish[overflow] >= 60.0)


def test_sqs_fifo_groups_buy_parallelism_and_keep_order() -> None:
    one, fifty = summary("sqs-fifo-groups"), summary("sqs-fifo-groups", **{"producers.0.key.count": 50})
    assert one["throughput"] < 10.5  # one group: one message at a time, 10 per second at best
    assert fifty["throughput"] > 40.0
    assert one["latency_p50"] > 20 * fifty["latency_p50"]
    assert one["out_of_order"] == fifty["out_of_order"] == 0
