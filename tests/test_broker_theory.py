"""Broker models against queueing theory: Kafka partitions are independent M/M/1 queues, RabbitMQ with
prefetch 1 is M/M/c, and keys follow the distribution they are drawn from.

Tolerances as in ``tests/test_theory.py``: R independent replications, the theoretical value inside
the 99.9 % Student-t interval of their mean, and that interval narrow enough to catch a model off by
a few percent (each test states the relative standard error it requires).
"""

from __future__ import annotations

import numpy as np

import sim
from sim.analysis import theory
from sim.engine.brokers.partitions import murmur2, partition_of_key, round_robin
from sim.engine.records import COMPLETED, LATE
from sim.engine.simulation import replication_seeds, simulate
from sim.engine.streams import KEYS, stream
from sim.model.broker_specs import KeySpec
from tests.agreement import REPLICATIONS, assert_agrees

SERVICE_RATE = 10.0
"""Per second, exponential service: mean 100 ms."""


def test_murmur2_is_kafkas() -> None:
    # Kafka's own vectors (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2).
    vectors = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
               b"a-little-bit-longer-string": -1486304829,
               b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, b"abc": 479470107}
    assert {data: murmur2(data) for data in vectors} == vectors
    assert round_robin([2, 0], 5) == [0, 2, 0, 2, 0]
    assert round_robin([], 2) == [-1, -1]


def test_keys_follow_their_zipf_distribution() -> None:
    # 200,000 draws: each key's frequency within 4.5 standard errors of its probability (a bias of
    # 3 % of the most likely key's probability would be ~9 standard errors).
    spec = KeySpec(count=20, skew=1.1)
    keys = spec.build()
    drawn = keys.sample(np.random.default_rng(7), 200_000)
    probabilities = keys.probabilities()
    assert abs(probabilities[0] / probabilities[1] - 2**1.1) < 1e-9
    frequencies = np.bincount(drawn, minlength=20) / len(drawn)
    errors = np.sqrt(probabilities * (1 - probabilities) / len(drawn))
    assert np.all(np.abs(frequencies - probabilities) <= 4.5 * errors)
    uniform = KeySpec(count=8).build().probabilities()
    np.testing.assert_allclose(uniform, np.full(8, 1 / 8))


def test_keys_are_the_same_for_every_broker() -> None:
    # Common random numbers: a producer draws its keys from its own stream, whatever reads them.
    data = {"name": "crn", "seed": 3, "producers": [{"arrivals": {"process": "poisson", "rate": 50, "count": 300},
                                                     "key": {"count": 30, "skew": 1.0}}],
            "consumers": {"concurrency": 2, "service": {"dist": "exponential", "mean": "30ms"}}}
    keys = []
    for queue in ({}, {"broker": {"kind": "kafka", "partitions": 3}}, {"broker": {"kind": "sqs-fifo"}}):
        records = simulate(sim.scenario_from_dict({**data, "queue": queue}), replication_seeds(3, 0))
        assert records.jobs.key is not None
        keys.append(records.jobs.key.tolist())
    assert keys[0] == keys[1] == keys[2]
    expected = KeySpec(count=30, skew=1.0).build().sample(stream(replication_seeds(3, 0), 0, KEYS), 300)
    assert keys[0] == expected.tolist()


def test_kafka_partitions_with_uniform_keys_and_one_consumer_each_are_independent_mm1_queues() -> None:
    # Four partitions, four consumers, 1,000 uniform keys: partition p receives a Poisson stream of
    # rate lambda x (its share of the keys) and one consumer serves it in order: M/M/1. For each
    # partition, the share of messages that wait must be rho_p (PASTA) and their mean wait
    # Wq = rho_p / (mu - lambda_p). 20 replications of 40,000 messages (10,000 per partition)
    # after a 100 s warm-up: precise enough to catch a 4 % bias in the share that waits, and a
    # 15 % bias in the mean wait (far noisier: see tests/agreement.py for the rule).
    partitions, rate, keys = 4, 20.0, 1000
    shares = np.bincount([partition_of_key(k, partitions) for k in range(keys)], minlength=partitions) / keys
    scenario = sim.scenario_from_dict({
        "name": "kafka-mm1", "seed": 11, "warmup": "100s",
        "producers": [{"arrivals": {"process": "poisson", "rate": rate, "count": 40_000}, "key": {"count": keys}}],
        "consumers": {"concurrency": partitions, "service": {"dist": "exponential", "mean": 1 / SERVICE_RATE}},
        "queue": {"broker": {"kind": "kafka", "partitions": partitions}},
    })
    partition_of = np.array([partition_of_key(k, partitions) for k in range(keys)])
    waited: list[list[float]] = [[] for _ in range(partitions)]
    waits: list[list[float]] = [[] for _ in range(partitions)]
    for replication in range(REPLICATIONS):
        jobs = simulate(scenario, replication_seeds(scenario.seed, replication)).jobs
        assert jobs.key is not None
        partition = partition_of[jobs.key]
        served = ((jobs.outcome == COMPLETED) | (jobs.outcome == LATE)) & (jobs.arrival >= 100.0)
        for p in range(partitions):
            here = served & (partition == p)
            wait = jobs.start[here] - jobs.arrival[here]
            waited[p].append(float(np.mean(wait > 0)))
            waits[p].append(float(np.mean(wait)))
    for p in range(partitions):
        model = theory.mm1(rate * shares[p], SERVICE_RATE)
        assert_agrees(np.array(waited[p]), model.p_wait, catches=0.04)
        assert_agrees(np.array(waits[p]), model.wait, catches=0.15)


def test_rabbitmq_with_prefetch_one_is_mmc() -> None:
    # Prefetch 1: a consumer gets a message only when it has none, so the ready queue is shared by
    # the c consumers: M/M/3 at rho = 0.8. The share of messages that wait must be Erlang C's
    # P(wait) and their mean wait Erlang C's Wq; 20 replications of 30,000 messages catch a 3 %
    # bias in the first and a 15 % bias in the second.
    servers, rate = 3, 2.4
    scenario = sim.scenario_from_dict({
        "name": "rabbit-mmc", "seed": 5, "warmup": "200s",
        "producers": [{"arrivals": {"process": "poisson", "rate": rate, "count": 30_000}}],
        "consumers": {"concurrency": servers, "service": {"dist": "exponential", "mean": 1.0}},
        "queue": {"broker": {"kind": "rabbitmq", "prefetch": 1}},
    })
    waited, waits = [], []
    for replication in range(REPLICATIONS):
        jobs = simulate(scenario, replication_seeds(scenario.seed, replication)).jobs
        served = ((jobs.outcome == COMPLETED) | (jobs.outcome == LATE)) & (jobs.arrival >= 200.0)
        wait = jobs.start[served] - jobs.arrival[served]
        waited.append(float(np.mean(wait > 0)))
        waits.append(float(np.mean(wait)))
    model = theory.mmc(rate, 1.0, servers)
    assert_agrees(np.array(waited), model.p_wait, catches=0.03)
    assert_agrees(np.array(waits), model.wait, catches=0.15)
