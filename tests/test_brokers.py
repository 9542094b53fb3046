"""The broker models (``queue.broker``) against hand-checked traces: each system's rules, one by one.

Times are exact: constant service times and bursts or constant arrivals, so every start and
finish below can be worked out on paper (the comments do).
"""

from __future__ import annotations

import pytest

import sim
from sim.engine.records import OUTCOMES
from tests.brokers import outcomes, reasons, records, rounded, scenario, trace, usage


def test_sqs_fifo_with_one_group_processes_strictly_one_at_a_time_in_order() -> None:
    # No key: one message group. Three workers, yet the group has one message in flight at a
    # time: each is received only when the previous one is deleted.
    result = records(scenario("sqs-fifo", count=5, concurrency=3))
    assert trace(result) == [("completed", float(n), float(n + 1)) for n in range(5)]
    assert usage(result, "receives") == [1] * 5


def test_sqs_standard_hands_the_same_burst_to_every_worker_at_once() -> None:
    result = records(scenario("sqs", count=5, concurrency=3))
    assert trace(result) == [("completed", 0.0, 1.0)] * 3 + [("completed", 1.0, 2.0)] * 2


def test_sqs_fifo_failed_message_blocks_its_group_until_its_visibility_timeout() -> None:
    # Every processing fails. FIFO: m0 received at 0, fails at 1, visible at 3, where its second
    # receive sends it to the dead-letter queue and m1 is received; m1 fails at 4, DLQ at 6.
    # Standard: both are received at 0 and both reach the DLQ at 3.
    failing = {"failure": {"probability": 1.0}, "concurrency": 2, "service": {"dist": "constant", "value": 1.0}}
    broker = {"visibility_timeout": "3s", "max_receives": 1}
    fifo = records(scenario("sqs-fifo", count=2, broker=broker, consumers=failing))
    assert trace(fifo) == [("dead_lettered", 0.0, 3.0), ("dead_lettered", 3.0, 6.0)]
    standard = records(scenario("sqs", count=2, broker=broker, consumers=failing))
    assert trace(standard) == [("dead_lettered", 0.0, 3.0), ("dead_lettered", 0.0, 3.0)]


def test_sqs_message_of_a_crashed_worker_comes_back_after_the_visibility_timeout() -> None:
    # Worker 0 receives it at 0 and crashes at 0.5; it reappears at 5 and worker 1 processes it.
    result = records(scenario("sqs", concurrency=2, broker={"visibility_timeout": "5s"},
                              faults=[{"kind": "crash", "at": 0.5, "consumers": [0], "restart": "100s"}]))
    assert trace(result) == [("completed", 0.0, 6.0)]
    assert usage(result, "receives") == [2]
    assert usage(result, "duplicates") == [0]


def test_sqs_fifo_send_quota_throttles_the_calls_beyond_it() -> None:
    result = records(scenario("sqs-fifo", count=3, broker={"api_rate": "1/s"}))
    assert outcomes(result) == ["completed", "rejected", "rejected"]
    assert reasons(result) == ["", "throttle", "throttle"]


def test_kafka_crash_reprocesses_exactly_the_messages_after_the_last_commit() -> None:
    # One partition, one consumer, a message every second (0.5 s each), auto-commit every 5 s.
    # The commit timer set at 0.5 commits offsets 0-4 at 5.0; messages 5 and 6 are processed
    # after it; the crash at 7.2 loses 7 in progress. The restarted consumer (9.2) resumes from
    # offset 5: 5 and 6 run again (duplicates), 7 runs for the first time, then 8, 9...
    result = records(scenario("kafka", count=12, rate="1/s", service=0.5,
                              faults=[{"kind": "crash", "at": 7.2, "consumers": 1, "restart": "2s"}]))
    assert usage(result, "duplicates") == [0] * 5 + [1, 1] + [0] * 5
    finish = [rounded(f) for f in result.jobs.finish]
    assert finish == [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 10.7, 11.2, 11.7, 12.2, 12.7]
    assert usage(result, "receives") == [1] * 5 + [2, 2, 2] + [1] * 4


def test_kafka_partitions_of_a_crashed_member_move_after_the_session_timeout() -> None:
    # Two partitions (unkeyed: round robin), two members. Member 0 owns partition 0 (messages
    # 0, 2, 4) and crashes at 0.1 with message 0 in progress; at 10.1 its session times out and
    # member 1 takes partition 0 over from its committed offset 0.
    result = records(scenario("kafka", count=6, rate="1/s", service=0.5, concurrency=2,
                              broker={"partitions": 2, "session_timeout": "10s"},
                              faults=[{"kind": "crash", "at": 0.1, "consumers": [0], "restart": "1000s"}]))
    finish = [rounded(f) for f in result.jobs.finish]
    assert finish == [10.6, 1.5, 11.1, 3.5, 11.6, 5.5]
    assert result.end_time == 11.6


def test_kafka_members_beyond_the_partition_count_sit_idle() -> None:
    # One partition, three consumers: one does all the work, in order.
    result = records(scenario("kafka", count=4, concurrency=3))
    assert trace(result) == [("completed", float(n), float(n + 1)) for n in range(4)]


def test_rabbitmq_lost_connection_requeues_unacked_messages_at_the_head() -> None:
    # Prefetch 2, two consumers: c0 gets m0, m2; c1 gets m1, m3 (round robin). c0 crashes at 0.5:
    # m0 and m2 go back to the head of the queue. c1 acks m1 at 1 and gets m0 behind m3; acks m3
    # at 2 and gets m2: m3 1-2, m0 2-3, m2 3-4.
    result = records(scenario("rabbitmq", count=4, concurrency=2, broker={"prefetch": 2},
                              faults=[{"kind": "crash", "at": 0.5, "consumers": [0], "restart": "10s"}]))
    assert [rounded(f) for f in result.jobs.finish] == [3.0, 1.0, 4.0, 2.0]
    assert usage(result, "receives") == [2, 1, 2, 1]


@pytest.mark.parametrize(("overflow", "expected"), [
    ("drop-head", ["completed", "dropped", "dropped", "completed", "completed"]),
    ("reject-publish", ["completed", "completed", "completed", "rejected", "rejected"]),
    ("reject-publish-dlx", ["completed", "completed", "completed", "dead_lettered", "dead_lettered"]),
])
def test_rabbitmq_length_limit_counts_ready_messages(overflow: str, expected: list[str]) -> None:
    # Prefetch 1: m0 is delivered at once; m1 and m2 fill the two ready places; m3 and m4 overflow.
    result = records(scenario("rabbitmq", count=5, broker={"prefetch": 1, "max_length": 2, "overflow": overflow}))
    assert outcomes(result) == expected


def test_rabbitmq_ttl_expires_messages_at_the_head() -> None:
    # m2 and m3 reach the head at 2, older than the 1.5 s TTL: dropped (dead-lettered with a DLX).
    result = records(scenario("rabbitmq", count=4, broker={"prefetch": 1, "message_ttl": "1.5s"}))
    assert trace(result) == [("completed", 0.0, 1.0), ("completed", 1.0, 2.0), ("dropped", None, 2.0),
                             ("dropped", None, 2.0)]
    assert reasons(result)[2:] == ["ttl", "ttl"]
    dlx = records(scenario("rabbitmq", count=4, broker={"prefetch": 1, "message_ttl": "1.5s", "dead_letter": True}))
    assert outcomes(dlx)[2:] == ["dead_lettered", "dead_lettered"]


def test_rabbitmq_nack_requeue_redelivers_until_the_delivery_limit() -> None:
    failing = {"failure": {"probability": 1.0}, "concurrency": 1, "service": {"dist": "constant", "value": 1.0}}
    result = records(scenario("rabbitmq", consumers=failing, broker={"prefetch": 1, "delivery_limit": 3}))
    assert trace(result) == [("dropped", 0.0, 3.0)]
    assert reasons(result) == ["error"]
    assert usage(result, "receives") == [3]
    rejected = records(scenario("rabbitmq", consumers=failing, broker={"on_failure": "reject", "dead_letter": True}))
    assert trace(rejected) == [("dead_lettered", 0.0, 1.0)]


def test_redis_pubsub_loses_exactly_the_messages_published_while_the_subscriber_is_down() -> None:
    # A message every 0.5 s; no consumer in [2, 5): the six published then are lost, the rest served.
    result = records(scenario("redis-pubsub", count=20, rate="2/s", service=0.1,
                              faults=[{"kind": "consumer-outage", "start": "2s", "end": "5s"}]))
    lost = [float(a) for a, o in zip(result.jobs.arrival, result.jobs.outcome, strict=True) if OUTCOMES[o] == "lost"]
    assert lost == [2.0, 2.5, 3.0, 3.5, 4.0, 4.5]
    assert outcomes(result).count("completed") == 14
    assert set(reasons(result)) == {"", "disconnected"}


def test_redis_pubsub_output_buffer_hard_limit_disconnects_the_subscriber() -> None:
    # m0 is read at once; m1..m3 fill 3 KB of output buffer: the hard limit disconnects the
    # subscriber, m1..m3 are lost, and so are m4..m9, published while it reconnects.
    result = records(scenario("redis-pubsub", count=10, broker={"message_bytes": "1kb", "buffer_hard": "3kb",
                                                                "buffer_soft": "2kb", "soft_seconds": "100s"}))
    assert outcomes(result) == ["completed"] + ["lost"] * 9


def test_redis_pubsub_soft_limit_disconnects_after_its_seconds_above_it() -> None:
    # m2 brings the buffer to 2 KB at 0; it stays at or above 2 KB until 1.5, when the subscriber is
    # disconnected: m2..m4 are lost (m1 was read at 1).
    result = records(scenario("redis-pubsub", count=5, broker={"message_bytes": "1kb", "buffer_soft": "2kb",
                                                               "soft_seconds": "1.5s"}))
    assert trace(result) == [("completed", 0.0, 1.0), ("completed", 1.0, 2.0)] + [("lost", None, 1.5)] * 3


def test_pubsub_crashed_subscribers_messages_come_back_after_the_ack_deadline() -> None:
    result = records(scenario("gcp-pubsub", concurrency=2,
                              faults=[{"kind": "crash", "at": 0.5, "consumers": [0], "restart": "100s"}]))
    assert trace(result) == [("completed", 0.0, 11.5)]


def test_pubsub_lease_without_extension_expires_and_the_message_runs_twice() -> None:
    # 15 s of work, a 10 s lease not extended: redelivered at 10 to the other subscriber.
    result = records(scenario("gcp-pubsub", concurrency=2, service=15.0, broker={"lease_extension": False}))
    assert trace(result) == [("completed", 0.0, 15.0)]
    assert usage(result, "duplicates") == [1]
    assert result.end_time == 25.0


def test_pubsub_dead_letter_topic_after_max_delivery_attempts() -> None:
    failing = {"failure": {"probability": 1.0}, "concurrency": 1, "service": {"dist": "constant", "value": 1.0}}
    result = records(scenario("gcp-pubsub", consumers=failing, broker={"max_delivery_attempts": 5}))
    assert trace(result) == [("dead_lettered", 0.0, 5.0)]
    assert usage(result, "receives") == [5]


def test_pubsub_ordering_key_delivers_one_message_of_a_key_at_a_time() -> None:
    ordered = records(scenario("gcp-pubsub", count=3, concurrency=3, key={"count": 1}, broker={"ordering": True}))
    assert trace(ordered) == [("completed", float(n), float(n + 1)) for n in range(3)]
    unordered = records(scenario("gcp-pubsub", count=3, concurrency=3, key={"count": 1}))
    assert trace(unordered) == [("completed", 0.0, 1.0)] * 3


def test_direct_call_crash_fails_the_request_in_progress() -> None:
    # Capacity 0: m0 (0-2) fails at the crash at 0.5; m1 at 1 finds the consumer down (rejected);
    # m2 at 2 is served; m3 at 3 finds it busy.
    result = records(scenario(None, count=4, rate="1/s", service=2.0, queue={"capacity": 0},
                              faults=[{"kind": "crash", "at": 0.5, "restart": "1s"}]))
    assert trace(result) == [("failed", 0.0, 0.5), ("rejected", None, 1.0), ("completed", 2.0, 4.0),
                             ("rejected", None, 3.0)]
    assert reasons(result)[0] == "crash"
    queued = records(scenario(None, count=4, rate="1/s", service=2.0,
                              faults=[{"kind": "crash", "at": 0.5, "restart": "1s"}]))
    assert trace(queued) == [("failed", 0.0, 0.5), ("completed", 1.5, 3.5), ("completed", 3.5, 5.5),
                             ("completed", 5.5, 7.5)]


def test_broker_outage_rejects_publishes_and_the_producer_retries() -> None:
    # Down in [1, 3): m1 is rejected at 1 and 2.5, accepted at 4; m2 rejected at 2, accepted at 3.5.
    retry = {"attempts": 3, "backoff": "constant", "base": "1.5s", "jitter": "none", "on": ["rejected"]}
    result = records(scenario("kafka", count=4, rate="1/s", service=0.5, producer={"retry": retry},
                              faults=[{"kind": "broker-outage", "start": "1s", "end": "3s"}]))
    requests = result.columns
    assert [OUTCOMES[o] for o in requests.outcome] == ["completed"] * 4
    assert [rounded(f) for f in requests.finish] == [0.5, 4.5, 4.0, 3.5]
    assert requests.usage is not None
    assert [int(a) for a in requests.usage.attempt] == [1, 3, 2, 1]
    assert reasons(result).count("outage") == 3


def test_a_slowdown_fault_is_the_consumers_slowdown() -> None:
    as_fault = records(scenario("rabbitmq", count=6, rate="1/s", faults=[{"kind": "slowdown", "start": "1s",
                                                                         "end": "3s", "factor": 2.5}]))
    as_consumers = records(scenario("rabbitmq", count=6, rate="1/s", consumers={
        "concurrency": 1, "service": {"dist": "constant", "value": 1.0},
        "slowdowns": [{"start": "1s", "end": "3s", "factor": 2.5}]}))
    assert trace(as_fault) == trace(as_consumers)
    assert trace(as_fault)[1] == ("completed", 1.0, 3.5)


def test_sqs_fifo_deduplicates_a_clients_retry_within_the_window() -> None:
    # The client gives up at 1 s and retries at 1.5 s; the first send is still being processed
    # (0-2 s). FIFO: the retry is accepted but not delivered, and ends as the first send does (at 2,
    # before its 2.5 s deadline). Past the window (or on a standard queue) the retry runs again, 2-4.
    retry = {"attempts": 2, "backoff": "constant", "base": "0.5s", "jitter": "none", "on": ["timeout"]}
    client = {"timeout": "1s", "retry": retry}
    fifo = records(scenario("sqs-fifo", service=2.0, producer=client))
    assert [OUTCOMES[o] for o in fifo.columns.outcome] == ["completed"]
    assert [rounded(f) for f in fifo.columns.finish] == [2.0]
    assert usage(fifo, "receives") == [1, 0]
    late = records(scenario("sqs-fifo", service=2.0, producer=client, broker={"dedup_window": "1s"}))
    assert [OUTCOMES[o] for o in late.columns.outcome] == ["late"]
    assert [rounded(f) for f in late.columns.finish] == [4.0]


def test_kafka_consumer_lag_counts_records_not_yet_committed() -> None:
    # A record a second, auto-commit every 5 s: the lag climbs by one a second until the commit at
    # 5 s (records 0-4), then starts again from the one record appended at 5 s.
    result = sim.run(scenario("kafka", count=12, rate="1/s", service=0.5))
    lag = result.runs[0].timeseries["lag"].tolist()
    assert lag[:6] == [1.0, 2.0, 3.0, 4.0, 5.0, 1.0]


def test_a_producers_messages_reach_the_broker_in_the_order_sent() -> None:
    # Random publish hops (one connection per producer): a later message never overtakes an
    # earlier one, so a single partition processes them in the order sent.
    latency = {"publish": {"dist": "exponential", "mean": "50ms"}}
    result = records(scenario("kafka", count=200, rate="100/s", service=0.005, key={"count": 1},
                              broker={"latency": latency}))
    assert list(result.jobs.start) == sorted(result.jobs.start)
    assert sim.run(scenario("kafka", count=200, rate="100/s", service=0.005, key={"count": 1},
                            broker={"latency": latency})).summary.iloc[0]["out_of_order"] == 0


def test_brokers_and_crashes_refuse_pools_that_resize_themselves() -> None:
    autoscaled = {"concurrency": 2, "service": {"dist": "constant", "value": 1.0},
                  "autoscale": {"target": 1, "max": 10}}
    refused = r"consumers\.autoscale: got \{max: 10, target: 1\}; broker models read with a fixed"
    with pytest.raises(sim.ScenarioError, match=refused):
        scenario("kafka", consumers=autoscaled)
    with pytest.raises(sim.ScenarioError, match=r"faults\.0\.kind: got 'crash'; consumer crashes are modelled"):
        scenario(None, consumers=autoscaled, faults=[{"kind": "crash", "at": 1.0}])
