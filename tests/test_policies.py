"""Queue management policies: exact traces on tiny cases and the algorithms' own rules.

Unless a test says otherwise: one consumer with a constant 1 s service, requests arriving
0.1 s apart from t = 0.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import pytest

import sim
from sim.engine.aqm import Codel, FailAtScale, Proportional, Red
from sim.engine.queues import FifoQueue
from tests.helpers import make_scenario, trace


def arrivals(count: int) -> list[dict[str, object]]:
    return [{"arrivals": {"process": "constant", "rate": "10/s", "count": count}}]


def starts(result: sim.Result) -> dict[int, float | None]:
    return {request: start for request, _, start, _ in trace(result)}


# --- adaptive LIFO -------------------------------------------------------------------------


def test_adaptive_lifo_serves_newest_while_the_queue_is_long_then_oldest() -> None:
    scenario = make_scenario(producers=arrivals(5), queue={"discipline": "adaptive-lifo", "lifo_when": {"length": 3}})
    # t=1: 4 waiting (>= 3) -> newest (4); t=2: 3 waiting -> newest (3); then FIFO: 1, 2.
    assert starts(sim.run(scenario)) == {0: 0.0, 4: 1.0, 3: 2.0, 1: 3.0, 2: 4.0}


def test_adaptive_lifo_switches_on_the_oldest_wait() -> None:
    scenario = make_scenario(producers=arrivals(5),
                             queue={"discipline": "adaptive-lifo", "lifo_when": {"wait": "1.5s"}})
    # t=1: oldest (1) waited 0.9 s -> FIFO; t=2: oldest (2) waited 1.8 s -> LIFO (4); t=3: LIFO (3).
    assert starts(sim.run(scenario)) == {0: 0.0, 1: 1.0, 4: 2.0, 3: 3.0, 2: 4.0}


# --- RED -----------------------------------------------------------------------------------


def fixed(values: list[float]) -> Iterator[float]:
    yield from values


def test_red_count_correction_makes_the_drop_certain_after_1_over_pb_arrivals() -> None:
    # weight 1: the average is the instantaneous length. Length 5 between min 0 and max 10
    # with max_p 0.1 gives p_b = 0.05; with uniforms that never fall below p, the count
    # correction p = p_b / (1 - count p_b) reaches 1 at count = 19. Floyd's count starts at
    # -1 (so the first arrival in range has count 0) and restarts at 0 after a drop: the
    # first drop is the 20th arrival, later ones every 19th.
    red = Red(0, 10, 0.1, 1.0, [True], lambda: 0.999)
    drops = [index for index in range(60) if red(0, 5, True)]
    assert drops == [19, 38, 57]


def test_red_drop_probability_follows_the_count_correction() -> None:
    # The k-th arrival since the last drop (count = k) is dropped iff u < p_b / (1 - k p_b).
    base = 0.05
    probabilities = [base / (1 - count * base) for count in range(4)]
    just_below = [p - 1e-9 for p in probabilities]
    just_above = [p + 1e-9 for p in probabilities]
    red = Red(0, 10, 0.1, 1.0, [True], fixed(just_above).__next__)
    assert [red(0, 5, True) for _ in range(4)] == [False] * 4
    red = Red(0, 10, 0.1, 1.0, [True], fixed([just_above[0], just_above[1], just_below[2], just_above[1]]).__next__)
    # After the drop the count restarts at 0, so the next arrival has count 1 again.
    assert [red(0, 5, True) for _ in range(4)] == [False, False, True, False]


def test_red_average_below_min_accepts_and_above_max_drops_every_waiting_arrival() -> None:
    red = Red(2, 4, 0.1, 1.0, [True], lambda: 0.0)
    assert red(0, 1, True) is False
    assert red(0, 4, True) is True
    assert red(0, 9, False) is False  # a request served at once is never dropped early


def test_red_ewma_moves_slowly_with_a_small_weight() -> None:
    red = Red(5, 10, 0.1, 0.5, [True], lambda: 1.0)
    for _ in range(3):
        red(0, 8, True)
    assert red.avg == pytest.approx(8 * (1 - 0.5**3))


def test_red_only_drops_the_listed_classes_early() -> None:
    red = Red(0, 1, 0.1, 1.0, [False, True], lambda: 0.0)
    assert red(0, 5, True) is False
    assert red(1, 5, True) is True


def test_proportional_drop_has_probability_length_over_capacity() -> None:
    drop = Proportional(4, [True], fixed([0.49, 0.51, 0.74, 0.76]).__next__)
    assert [drop(0, 2, True), drop(0, 2, True), drop(0, 3, True), drop(0, 3, True)] == [True, False, True, False]


def test_red_in_a_run_drops_only_low_priority_arrivals_with_reason_aqm() -> None:
    scenario = make_scenario(
        seed=3,
        producers=[
            {"name": "high", "arrivals": {"process": "poisson", "rate": "6/s", "count": 600}},
            {"name": "low", "arrivals": {"process": "poisson", "rate": "6/s", "count": 600}},
        ],
        queue={"capacity": 50, "aqm": {"policy": "red", "min": 3, "max": 20, "max_p": 0.2, "weight": 0.2,
                                       "classes": ["low"]}},
        consumers={"concurrency": 1, "service": {"dist": "exponential", "mean": "100ms"}},
    )
    summary = sim.run(scenario).summary.set_index("producer")
    assert summary.loc["low", "dropped_aqm"] > 20
    assert summary.loc["high", "dropped_aqm"] == 0
    assert summary.loc["all", "dropped"] == summary.loc["all", "dropped_aqm"] + summary.loc["all", "dropped_overflow"]


# --- CoDel ---------------------------------------------------------------------------------


def run_codel(dequeues: list[float], arrival_times: list[float], target: float = 0.005,
              interval: float = 0.1) -> tuple[list[float], list[tuple[float, int]]]:
    queue = FifoQueue()
    for job in range(len(arrival_times)):
        queue.push(job)
    dropped: list[float] = []
    codel = Codel(queue, arrival_times, lambda job, now: dropped.append(now), target, interval)
    served = [(now, codel.pop(now)) for now in dequeues]
    return dropped, served


def test_codel_waits_a_whole_interval_above_target_before_dropping() -> None:
    ticks = [round(0.001 * k, 6) for k in range(10, 200)]
    dropped, _ = run_codel(ticks, [0.0] * 1000)
    # Sojourn is above the 5 ms target from the first dequeue (t = 10 ms); the first drop is
    # one interval later, at the first dequeue at or after 110 ms (floating point may push
    # the due time a hair past 110 ms, hence one tick of tolerance).
    assert dropped[0] == pytest.approx(0.110, abs=0.0011)


def test_codel_drop_schedule_is_interval_over_sqrt_count() -> None:
    ticks = [round(0.001 * k, 6) for k in range(1, 1200)]
    dropped, _ = run_codel(ticks, [0.0] * 5000)
    gaps = [b - a for a, b in itertools.pairwise(dropped)]
    # The next drop is due interval / sqrt(count) after the previous due time; dequeues
    # happen every 1 ms, so each observed gap is within 1 ms of the control law.
    for count, gap in enumerate(gaps[:25], start=1):
        assert gap == pytest.approx(0.1 / math.sqrt(count), abs=0.0011), count
    assert gaps[0] > gaps[5] > gaps[20]  # drops accelerate


def test_codel_leaves_dropping_mode_when_sojourn_falls_below_target() -> None:
    # 300 old requests (arrived at 0), then fresh ones arriving just before they are dequeued.
    arrival_times = [0.0] * 300 + [0.3 + 0.001 * k - 0.001 for k in range(1, 300)]
    ticks = [round(0.001 * k, 6) for k in range(1, 600)]
    dropped, served = run_codel(ticks, arrival_times)
    assert dropped, "the standing queue of old requests is dropped"
    fresh_served = [now for now, job in served if job >= 300]
    late_drops = [t for t in dropped if t > max(t for t, job in served if job < 300 and job >= 0) + 0.002]
    assert fresh_served
    assert late_drops == []


def test_codel_never_drops_the_last_request_in_the_queue() -> None:
    dropped, served = run_codel([0.5], [0.0])
    assert dropped == []
    assert served == [(0.5, 0)]


def test_codel_in_a_run_drops_at_the_head_with_reason_aqm() -> None:
    scenario = make_scenario(
        seed=5,
        producers=[{"arrivals": {"process": "poisson", "rate": "15/s", "stop": "20s"}}],
        queue={"aqm": {"policy": "codel", "target": "5ms", "interval": "100ms"}},
        consumers={"concurrency": 1, "service": {"dist": "exponential", "mean": "100ms"}},
    )
    row = sim.run(scenario).summary.iloc[0]
    assert row["dropped"] == row["dropped_aqm"] > 0
    assert row["rejected"] == 0


# --- fail-at-scale ---------------------------------------------------------------------------


def test_fail_at_scale_limits_waits_to_target_once_the_queue_has_stood_for_an_interval() -> None:
    queue = FifoQueue()
    dropped: list[tuple[int, float]] = []
    arrival_times = [0.0, 0.0, 0.0, 0.52, 0.7, 0.7]
    policy = FailAtScale(queue, arrival_times, lambda job, now: dropped.append((job, now)), 0.005, 0.1)
    for job in range(3):
        policy.note_push(0.0)
        queue.push(job)
    # Not empty since t=0: at 0.5 the limit is 5 ms and all three (waited 0.5 s) are dropped.
    assert policy.pop(0.5) == -1
    assert dropped == [(0, 0.5), (1, 0.5), (2, 0.5)]
    # Empty until 0.52: at 0.6 the queue was empty 80 ms ago, so the limit is 100 ms.
    policy.note_push(0.52)
    queue.push(3)
    assert policy.pop(0.6) == 3
    # Two arrive at 0.7; the first is served at 0.75 (queue empty 50 ms ago), the second has
    # stood for 250 ms by 0.95 while the queue was never empty: limit 5 ms, dropped.
    for job in (4, 5):
        policy.note_push(0.7)
        queue.push(job)
    assert policy.pop(0.75) == 4
    assert policy.pop(0.95) == -1
    assert dropped[-1] == (5, 0.95)


# --- priority classes ------------------------------------------------------------------------


def test_priority_reports_each_class_and_its_starvation() -> None:
    scenario = make_scenario(
        seed=1,
        producers=[
            {"name": "high", "priority": 0, "arrivals": {"process": "poisson", "rate": "8/s", "stop": "30s"},
             "timeout": "2s"},
            {"name": "low", "priority": 1, "arrivals": {"process": "poisson", "rate": "8/s", "stop": "30s"},
             "timeout": "2s"},
        ],
        queue={"discipline": "priority", "on_expired": "skip"},
        consumers={"concurrency": 1, "service": {"dist": "exponential", "mean": "80ms"}},
    )
    summary = sim.run(scenario).summary.set_index("producer")
    # Offered load 1.28: high alone is 0.64 and is served; low gets what is left and starves.
    assert summary.loc["high", "starvation"] < 0.05
    assert summary.loc["low", "starvation"] > 0.3
    row = summary.loc["low"]
    lost = row["late"] + row["expired"] + row["rejected"] + row["dropped"]
    assert row["starvation"] == pytest.approx(lost / row["offered"])
