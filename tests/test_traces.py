"""Exact traces of tiny hand-checkable runs: who is served when, who is rejected, dropped or expired.

Four requests arrive 0.1 s apart (t = 0, 0.1, 0.2, 0.3) at one consumer with a constant
1 s service, unless a test says otherwise.
"""

from __future__ import annotations

import sim
from tests.helpers import make_scenario, trace


def test_fifo_serves_in_arrival_order() -> None:
    result = sim.run(make_scenario())
    assert trace(result) == [
        (0, "completed", 0.0, 1.0),
        (1, "completed", 1.0, 2.0),
        (2, "completed", 2.0, 3.0),
        (3, "completed", 3.0, 4.0),
    ]


def test_lifo_serves_the_newest_waiting_request_first() -> None:
    result = sim.run(make_scenario(queue={"discipline": "lifo"}))
    assert trace(result) == [
        (0, "completed", 0.0, 1.0),
        (1, "completed", 3.0, 4.0),
        (2, "completed", 2.0, 3.0),
        (3, "completed", 1.0, 2.0),
    ]


def test_full_queue_rejects_the_arriving_request_with_tail_drop() -> None:
    scenario = make_scenario(
        producers=[{"arrivals": {"process": "constant", "rate": "10/s", "count": 5}}],
        queue={"capacity": 2, "overflow": "reject"},
    )
    assert trace(sim.run(scenario)) == [
        (0, "completed", 0.0, 1.0),
        (1, "completed", 1.0, 2.0),
        (2, "completed", 2.0, 3.0),
        (3, "rejected", None, 0.3),
        (4, "rejected", None, 0.4),
    ]


def test_full_queue_evicts_the_oldest_waiting_request_with_drop_oldest() -> None:
    scenario = make_scenario(
        producers=[{"arrivals": {"process": "constant", "rate": "10/s", "count": 5}}],
        queue={"capacity": 2, "overflow": "drop-oldest"},
    )
    assert trace(sim.run(scenario)) == [
        (0, "completed", 0.0, 1.0),
        (1, "dropped", None, 0.3),
        (2, "dropped", None, 0.4),
        (3, "completed", 1.0, 2.0),
        (4, "completed", 2.0, 3.0),
    ]


def test_drop_oldest_under_lifo_evicts_the_bottom_of_the_stack() -> None:
    scenario = make_scenario(
        producers=[{"arrivals": {"process": "constant", "rate": "10/s", "count": 4}}],
        queue={"discipline": "lifo", "capacity": 2, "overflow": "drop-oldest"},
    )
    assert trace(sim.run(scenario)) == [
        (0, "completed", 0.0, 1.0),
        (1, "dropped", None, 0.3),
        (2, "completed", 2.0, 3.0),
        (3, "completed", 1.0, 2.0),
    ]


def test_expired_requests_are_served_anyway_as_zombie_work() -> None:
    scenario = make_scenario(producers=[{"arrivals": {"process": "constant", "rate": "10/s", "count": 4},
                                         "timeout": "1.5s"}])
    result = sim.run(scenario)
    assert trace(result) == [
        (0, "completed", 0.0, 1.0),
        (1, "late", 1.0, 2.0),
        (2, "late", 2.0, 3.0),
        (3, "late", 3.0, 4.0),
    ]
    # Three seconds of service went to clients that had already given up.
    assert result.summary.loc[0, "wasted_work"] == 3.0
    assert result.summary.loc[0, "timeout_rate"] == 0.75


def test_expired_requests_are_skipped_at_the_head_with_skip() -> None:
    scenario = make_scenario(
        producers=[{"arrivals": {"process": "constant", "rate": "10/s", "count": 4}, "timeout": "1.5s"}],
        queue={"on_expired": "skip"},
    )
    result = sim.run(scenario)
    # Request 1 (deadline 1.6) still has time at t = 1 and starts, but finishes late at 2;
    # requests 2 and 3 (deadlines 1.7, 1.8) are past their deadline when the consumer frees at 2.
    assert trace(result) == [
        (0, "completed", 0.0, 1.0),
        (1, "late", 1.0, 2.0),
        (2, "expired", None, 2.0),
        (3, "expired", None, 2.0),
    ]
    assert result.summary.loc[0, "wasted_work"] == 1.0


def test_capacity_zero_means_no_queue_at_all() -> None:
    scenario = make_scenario(
        producers=[{"arrivals": {"process": "constant", "rate": "4/s", "count": 6}}],
        queue={"capacity": 0},
    )
    # Arrivals at 0, .25, .5, .75, 1.0, 1.25: the consumer is free again at 1.0. At equal
    # times events run in the order they were scheduled, and the completion at 1.0 was
    # scheduled (at t=0) before the arrival at 1.0 (scheduled at t=0.75).
    assert trace(sim.run(scenario)) == [
        (0, "completed", 0.0, 1.0),
        (1, "rejected", None, 0.25),
        (2, "rejected", None, 0.5),
        (3, "rejected", None, 0.75),
        (4, "completed", 1.0, 2.0),
        (5, "rejected", None, 1.25),
    ]


def test_priority_serves_lower_levels_first_and_fifo_within_a_level() -> None:
    scenario = make_scenario(
        producers=[
            {"name": "low", "priority": 1, "arrivals": {"process": "constant", "rate": "5/s", "count": 3}},
            {"name": "high", "priority": 0,
             "arrivals": {"process": "constant", "rate": "5/s", "start": "0.1s", "count": 2}},
        ],
        queue={"discipline": "priority"},
    )
    result = sim.run(scenario)
    # Arrival order: low 0.0, high 0.1, low 0.2, high 0.3, low 0.4. Low 0.0 is in service;
    # then both highs in their order, then the lows in theirs.
    assert trace(result) == [
        (0, "completed", 0.0, 1.0),
        (1, "completed", 1.0, 2.0),
        (2, "completed", 3.0, 4.0),
        (3, "completed", 2.0, 3.0),
        (4, "completed", 4.0, 5.0),
    ]
    by_producer = result.summary.set_index("producer")
    assert by_producer.loc["high", "wait_mean"] == (0.9 + 1.7) / 2


def test_several_consumers_share_the_queue() -> None:
    scenario = make_scenario(consumers={"concurrency": 2})
    assert trace(sim.run(scenario)) == [
        (0, "completed", 0.0, 1.0),
        (1, "completed", 0.1, 1.1),
        (2, "completed", 1.0, 2.0),
        (3, "completed", 1.1, 2.1),
    ]


def test_requests_left_at_until_are_in_the_system() -> None:
    scenario = make_scenario(until="2.5s")
    result = sim.run(scenario)
    assert trace(result) == [
        (0, "completed", 0.0, 1.0),
        (1, "completed", 1.0, 2.0),
        (2, "in_system", 2.0, None),
        (3, "in_system", None, None),
    ]
    row = result.summary.iloc[0]
    assert (row["in_system"], row["sim_time"]) == (2, 2.5)
    # One consumer busy the whole 2.5 s; throughput counts the two served in 2.5 s.
    assert row["utilization"] == 1.0
    assert row["throughput"] == 2 / 2.5


def test_warmup_leaves_early_arrivals_out_of_the_statistics() -> None:
    result = sim.run(make_scenario(warmup="0.15s"))
    row = result.summary.iloc[0]
    assert row["offered"] == 2  # arrivals at 0.2 and 0.3
    assert row["wait_mean"] == ((2.0 - 0.2) + (3.0 - 0.3)) / 2


def test_patience_distribution_draws_a_deadline_per_request() -> None:
    scenario = make_scenario(
        producers=[{"arrivals": {"process": "constant", "rate": "10/s", "count": 4},
                    "timeout": {"dist": "uniform", "low": "5s", "high": "6s"}}],
    )
    frame = sim.run(scenario).requests
    patience = frame["deadline"] - frame["arrival"]
    assert ((patience >= 5) & (patience <= 6)).all()
    assert patience.nunique() == 4


def test_drop_oldest_never_evicts_higher_priority_for_lower() -> None:
    scenario = make_scenario(
        producers=[
            {"name": "hi", "priority": 0, "arrivals": {"process": "constant", "rate": "10/s", "count": 2}},
            {"name": "lo", "priority": 9, "arrivals": {"process": "constant", "rate": "10/s", "start": "0.2s",
                                                       "count": 1}},
        ],
        queue={"discipline": "priority", "capacity": 1, "overflow": "drop-oldest"},
    )
    # hi at 0 is served, hi at 0.1 waits; lo at 0.2 finds the queue full of higher priority:
    # it is rejected rather than evicting hi.
    assert trace(sim.run(scenario)) == [
        (0, "completed", 0.0, 1.0),
        (1, "completed", 1.0, 2.0),
        (2, "rejected", None, 0.2),
    ]


def test_requests_past_their_deadline_at_until_count_as_timed_out() -> None:
    scenario = make_scenario(producers=[{"arrivals": {"process": "constant", "rate": "10/s", "count": 4},
                                         "timeout": "1.5s"}], until="2.5s")
    row = sim.run(scenario).summary.iloc[0]
    # Request 1 is late; 2 and 3 are still in the system at 2.5 s, past their deadlines (1.7, 1.8).
    assert (row["late"], row["in_system"], row["overdue"]) == (1, 2, 2)
    assert row["timeout_rate"] == 3 / 4
