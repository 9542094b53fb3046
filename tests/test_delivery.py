"""Broker (SQS-like) delivery: visibility timeout, redelivery, duplicates, DLQ, batches (exact traces)."""

from __future__ import annotations

from typing import Any

import numpy as np

import sim
from sim.engine.records import OUTCOMES, REASONS
from sim.engine.streams import FAILURES, STAGE_STREAMS, replication_seeds, stream, uniform_stream
from tests.helpers import make_scenario


def broker(service: float, *, count: int = 1, concurrency: int = 1, delivery: dict[str, Any] | None = None,
           batch: dict[str, Any] | None = None, pollers: dict[str, Any] | None = None,
           failure: float | None = None, seed: int = 0, **changes: Any) -> sim.Scenario:
    consumers: dict[str, Any] = {"concurrency": concurrency, "service": {"dist": "constant", "value": service},
                                 "batch": batch or {"size": 1}}
    if failure is not None:
        consumers["failure"] = {"probability": failure}
    queue: dict[str, Any] = {"delivery": delivery or {"visibility_timeout": "5s"}}
    if pollers:
        queue["pollers"] = pollers
    return make_scenario(seed=seed, producers=[{"arrivals": {"process": "burst", "count": count}}],
                         consumers=consumers, queue=queue, **changes)


def usage(result: sim.Result, name: str) -> list[int]:
    jobs = result.runs[0].records.jobs
    assert jobs.usage is not None
    return [int(v) for v in getattr(jobs.usage, name)]


def outcomes(result: sim.Result) -> list[str]:
    return [OUTCOMES[o] for o in result.runs[0].records.jobs.outcome]


def test_a_processed_message_is_deleted_once() -> None:
    result = sim.run(broker(1.0))
    assert outcomes(result) == ["completed"]
    assert usage(result, "receives") == [1]
    assert result.runs[0].records.jobs.finish.tolist() == [1.0]


def test_failed_message_reappears_after_the_visibility_timeout_then_goes_to_the_dlq() -> None:
    # Always fails; visible again 5 s after each receive (at 5, 10); the 4th receive at 15
    # exceeds max_receives 3 and moves it to the dead-letter queue.
    result = sim.run(broker(1.0, failure=1.0, delivery={"visibility_timeout": "5s", "max_receives": 3}))
    jobs = result.runs[0].records.jobs
    assert outcomes(result) == ["dead_lettered"]
    assert jobs.finish.tolist() == [15.0]
    assert usage(result, "receives") == [4]
    row = result.summary.iloc[0]
    assert row["dead_lettered"] == 1
    assert row["in_system"] == 0


def test_without_a_dlq_a_failing_message_stays_until_the_run_ends() -> None:
    result = sim.run(broker(1.0, failure=1.0, until="22s"))
    assert outcomes(result) == ["in_system"]
    assert usage(result, "receives") == [5]  # at 0, 5, 10, 15, 20


def test_processing_longer_than_the_visibility_timeout_is_delivered_twice() -> None:
    # Visibility 1 s, processing 3 s, two environments and two pollers: the message reappears
    # at 1 while still running, is received again and processed again (1 to 4): a duplicate.
    # When it reappears at 2 both pollers are busy, and at 3 the first processing deletes it.
    result = sim.run(broker(3.0, concurrency=2, delivery={"visibility_timeout": "1s"},
                            pollers={"initial": 2, "max": 2}))
    assert outcomes(result) == ["completed"]
    assert result.runs[0].records.jobs.finish.tolist() == [3.0]
    assert usage(result, "receives") == [2]
    assert usage(result, "duplicates") == [1]
    assert result.runs[0].records.end_time == 4.0
    row = result.summary.iloc[0]
    assert (row["duplicates"], row["completed"], row["offered"]) == (1, 1, 1)


ONE_POLLER = {"initial": 1, "max": 1}


def test_batches_run_their_messages_in_one_invocation() -> None:
    # One poller with a 1 ms batching window: [0,1,2] as soon as three are waiting (t=0),
    # [3,4,5] when the poller is back at 1.5 (a full batch is waiting), [6] after a window.
    result = sim.run(broker(0.5, count=7, batch={"size": 3, "window": "1ms"}, pollers=ONE_POLLER))
    jobs = result.runs[0].records.jobs
    assert jobs.start.round(9).tolist() == [0.0] * 3 + [1.5] * 3 + [3.001]
    assert jobs.finish.round(9).tolist() == [1.5] * 3 + [3.0] * 3 + [3.501]
    assert jobs.usage is not None
    assert np.sum(jobs.usage.invocations) == 3


def test_batching_window_waits_to_fill_a_batch() -> None:
    scenario = make_scenario(
        producers=[{"arrivals": {"process": "constant", "rate": "10/s", "count": 4}}],
        consumers={"concurrency": 1, "service": {"dist": "constant", "value": "0.1s"},
                   "batch": {"size": 10, "window": "1s"}},
        queue={"delivery": {"visibility_timeout": "30s"}},
    )
    jobs = sim.run(scenario).runs[0].records.jobs
    assert jobs.start.tolist() == [1.0, 1.0, 1.0, 1.0]  # one batch when the window closes


def failing_messages(seed: int, count: int, probability: float) -> list[int]:
    """Which messages of the first batch the failure stream fails (one draw per message, in order)."""
    uniform = uniform_stream(stream(replication_seeds(seed, 0), STAGE_STREAMS, FAILURES))
    return [index for index in range(count) if uniform() < probability]


def test_partial_batch_failures_return_only_the_failed_messages() -> None:
    seed = next(s for s in range(100) if 0 < len(failing_messages(s, 4, 0.5)) < 4)
    failed = failing_messages(seed, 4, 0.5)
    result = sim.run(broker(0.1, count=4, batch={"size": 4, "window": "1ms", "partial_failures": True},
                            failure=0.5, seed=seed, delivery={"visibility_timeout": "2s"}, pollers=ONE_POLLER))
    receives = usage(result, "receives")
    finish = result.runs[0].records.jobs.finish.tolist()
    for index in range(4):
        if index in failed:
            assert receives[index] >= 2
        else:
            assert (receives[index], finish[index]) == (1, 0.4)


def test_without_partial_failures_one_failure_fails_the_whole_batch() -> None:
    seed = next(s for s in range(100) if 0 < len(failing_messages(s, 4, 0.5)) < 4)
    result = sim.run(broker(0.1, count=4, batch={"size": 4, "window": "1ms"}, failure=0.5, seed=seed,
                            delivery={"visibility_timeout": "2s"}, pollers=ONE_POLLER))
    assert all(r >= 2 for r in usage(result, "receives"))


def test_function_timeout_fails_the_whole_batch() -> None:
    result = sim.run(make_scenario(
        producers=[{"arrivals": {"process": "burst", "count": 3}}],
        consumers={"concurrency": 1, "service": {"dist": "constant", "value": "0.4s"},
                   "batch": {"size": 3, "window": "1ms"}, "timeout": "1s"},
        queue={"delivery": {"visibility_timeout": "5s", "max_receives": 1}, "pollers": ONE_POLLER}))
    # 3 x 0.4 s = 1.2 s > the 1 s timeout: the batch fails at 1 s, comes back at 5, and the
    # second receive exceeds max_receives: dead-lettered.
    assert outcomes(result) == ["dead_lettered"] * 3


def test_retention_deletes_old_messages_unprocessed() -> None:
    scenario = broker(100.0, count=2, delivery={"visibility_timeout": "10min", "retention": "60s"})
    result = sim.run(scenario)
    jobs = result.runs[0].records.jobs
    # The second message waits behind the first (100 s) and is past its 60 s retention when received.
    assert outcomes(result) == ["completed", "dropped"]
    assert REASONS[jobs.reason[1]] == "retention"


def test_pollers_pull_more_than_the_function_may_run_and_throttled_batches_return() -> None:
    # Five pollers, one environment: the second message is received at once, throttled, and
    # hidden until its visibility timeout (5 s); it runs at 5.
    result = sim.run(broker(1.0, count=2))
    assert result.runs[0].records.jobs.start.tolist() == [0.0, 5.0]
    assert usage(result, "throttles") == [0, 1]
    assert usage(result, "receives") == [1, 2]


def test_pollers_grow_from_initial_at_their_rate() -> None:
    scenario = broker(10.0, count=4, concurrency=10, pollers={"initial": 1, "rate": "1/s", "max": 3})
    starts = sim.run(scenario).runs[0].records.jobs.start.tolist()
    assert starts == [0.0, 1.0, 2.0, 10.0]


def test_sqs_cost_counts_send_receive_and_delete_calls() -> None:
    scenario = broker(0.5, count=4, batch={"size": 2, "window": "1ms"}, pollers=ONE_POLLER,
                      cost={"sqs_request": 1.0, "lambda_request": 0.0, "lambda_gb_second": 0.0})
    row = sim.run(scenario).summary.iloc[0]
    # 4 sends + 2 receives + 2 batch deletes; the consumers are not Lambda (no memory, no scaling).
    assert row["cost_usd"] == 8.0


def test_a_throttled_poller_backs_off_instead_of_draining_the_queue() -> None:
    # 20 messages, 2 environments, 5 pollers: at t=0 two batches run and three are throttled;
    # those three pollers wait 1 s (throttle_backoff) before receiving again, so the queue is
    # not received (and throttled) all at once.
    result = sim.run(broker(1.0, count=20, concurrency=2, pollers={"initial": 5, "max": 5},
                            delivery={"visibility_timeout": "30s"}))
    throttles = usage(result, "throttles")
    assert sum(throttles) <= 3 * 10 + 3  # at most three throttled receives per second of work
    assert outcomes(result).count("completed") == 20


def test_pollers_ramp_again_after_the_queue_has_been_idle() -> None:
    # One message at t=0 drains at once; a burst at t=600 must ramp from `initial` again.
    scenario = make_scenario(
        producers=[{"name": "early", "arrivals": {"process": "burst", "count": 1}},
                   {"name": "burst", "arrivals": {"process": "burst", "count": 6, "at": "600s"}}],
        consumers={"concurrency": 10, "service": {"dist": "constant", "value": "10s"}, "batch": {"size": 1}},
        queue={"delivery": {"visibility_timeout": "1min"}, "pollers": {"initial": 1, "rate": "1/s", "max": 10}},
    )
    starts = sim.run(scenario).runs[0].records.jobs.start.tolist()
    assert starts == [0.0, 600.0, 601.0, 602.0, 603.0, 604.0, 605.0]
