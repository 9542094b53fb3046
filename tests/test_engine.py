"""The engine's contract with SimPy, and the shape of what a run returns.

The hot path reads ``env._now`` and pushes ``(time, priority, id, event)`` onto
``env._queue`` with ids from ``env._eid``, exactly as ``Environment.schedule`` does, to skip
a method call per event. These tests fail loudly if a SimPy release changes that.
"""

from __future__ import annotations

import itertools
from heapq import heappush

import numpy as np
import simpy
from simpy.events import NORMAL, Event

import sim
from tests.helpers import make_scenario


def test_direct_heap_push_is_what_environment_schedule_does() -> None:
    env = simpy.Environment(initial_time=2.0)
    assert isinstance(env._eid, itertools.count)
    assert env._now == env.now == 2.0
    ours, theirs = Event(env), Event(env)
    env.schedule(theirs, NORMAL, 1.5)
    time_, priority, eid, event = env._queue[0]
    assert (time_, priority, event) == (3.5, NORMAL, theirs)
    heappush(env._queue, (3.5, NORMAL, next(env._eid), ours))
    assert env._queue[1][2] == eid + 1
    fired: list[str] = []
    theirs._ok = ours._ok = True
    theirs.callbacks.append(lambda _: fired.append("schedule"))
    ours.callbacks.append(lambda _: fired.append("heappush"))
    env.run()
    assert fired == ["schedule", "heappush"]  # same time: scheduling order
    assert env.now == 3.5


def test_reused_callbacks_list_survives_simpy_processing() -> None:
    # SimPy sets event.callbacks to None and iterates the old list without changing it, so
    # one list can serve every firing of a re-armed event.
    env = simpy.Environment()
    event = Event(env)
    event._ok = True
    fired: list[float] = []

    def again(evt: Event) -> None:
        fired.append(env.now)
        if len(fired) < 3:
            evt.callbacks = callbacks
            env.schedule(evt, NORMAL, 1.0)

    callbacks = [again]
    event.callbacks = callbacks
    env.schedule(event, NORMAL, 1.0)
    env.run()
    assert fired == [1.0, 2.0, 3.0]
    assert callbacks == [again]


def test_progress_reporting_does_not_change_results() -> None:
    scenario = make_scenario(
        producers=[{"arrivals": {"process": "poisson", "rate": 50, "count": 2000}, "timeout": "0.2s"}],
        consumers={"concurrency": 3, "service": {"dist": "exponential", "mean": "50ms"}},
        queue={"on_expired": "skip"},
    )
    seen: list[float] = []
    quiet = sim.run(scenario).runs[0].records.columns
    loud = sim.run(scenario, progress=lambda fraction, now: seen.append(fraction)).runs[0].records.columns
    assert seen
    assert seen[-1] == 1.0
    for name in ("arrival", "start", "finish", "outcome"):
        np.testing.assert_array_equal(getattr(quiet, name), getattr(loud, name))
