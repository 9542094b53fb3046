"""The kernel's contract with SimPy (``sim/engine/kernel.py``), and that no other module needs one.

The hot path pushes ``(time, priority, id, event)`` onto SimPy's own heap, re-arms events
that SimPy has already processed, and reads the time from the event it fired. These tests
fail loudly if a SimPy release changes what that relies on (it was verified on SimPy 4.1.2).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import simpy
from simpy.events import NORMAL, URGENT, Event

import sim
from sim.engine.kernel import Kernel, Reusable
from tests.helpers import ROOT, make_scenario


def test_schedule_at_is_what_environment_schedule_does() -> None:
    env = simpy.Environment(initial_time=2.0)
    kernel = Kernel(env)
    assert kernel.now() == env.now == 2.0
    fired: list[str] = []
    theirs, ours = Event(env), Event(env)
    env.schedule(theirs, NORMAL, 1.5)
    kernel.schedule_at(3.5, ours)
    theirs._ok = ours._ok = True  # succeeded (a test may touch SimPy's names: it pins them)
    theirs.callbacks.append(lambda _: fired.append("schedule"))
    ours.callbacks.append(lambda _: fired.append("kernel"))
    (time_a, priority_a, id_a, event_a), (time_b, priority_b, id_b, event_b) = sorted(kernel.heap)
    assert (time_a, priority_a, event_a) == (3.5, NORMAL, theirs)
    assert (time_b, priority_b, event_b) == (3.5, NORMAL, ours)
    assert id_b == id_a + 1  # ids in scheduling order, from SimPy's own counter
    kernel.run()
    assert fired == ["schedule", "kernel"]  # same time and priority: scheduling order
    assert kernel.now() == env.now == 3.5


def test_a_reusable_event_fires_again_with_one_callbacks_list() -> None:
    # SimPy sets event.callbacks to None and iterates the old list without changing it, so
    # one list can serve every firing of a re-armed event; ``due`` is the time it fires at.
    kernel = Kernel()
    event = Reusable(kernel)
    fired: list[tuple[float, float]] = []

    def again(evt: Reusable) -> None:
        fired.append((evt.due, kernel.now()))
        if len(fired) < 3:
            kernel.rearm(evt, callbacks, evt.due + 1.25)

    callbacks = [again]
    kernel.rearm(event, callbacks, 1.0)
    kernel.run()
    assert fired == [(1.0, 1.0), (2.25, 2.25), (3.5, 3.5)]
    assert callbacks == [again]
    assert event.ok  # never mistaken for a failed event
    assert event.triggered


def test_call_at_delivers_its_value_at_its_priority() -> None:
    kernel = Kernel()
    seen: list[object] = []
    kernel.call_at(2.0, lambda event: seen.append(("normal", event.value)), "b")
    kernel.call_at(2.0, lambda event: seen.append(("urgent", event.value)), "a", URGENT)
    kernel.call_at(1.0, lambda event: seen.append(("first", event.value)))
    assert kernel.peek() == 1.0
    kernel.run()
    assert seen == [("first", None), ("urgent", "a"), ("normal", "b")]
    assert kernel.peek() == float("inf")


def test_run_stops_at_until() -> None:
    kernel = Kernel()
    seen: list[float] = []
    for time in (1.0, 2.0, 3.0):
        kernel.call_at(time, lambda event: seen.append(kernel.now()))
    kernel.run(until=2.5)
    assert seen == [1.0, 2.0]
    assert kernel.now() == 2.5


def test_clock_follows_the_simulation() -> None:
    kernel = Kernel()
    clock = kernel.clock()
    seen: list[float] = []
    kernel.call_at(4.5, lambda event: seen.append(clock()))
    kernel.run()
    assert seen == [4.5]


PRIVATE_SIMPY_NAMES = re.compile(r"_queue|_now|_eid|\._ok|\._value")
"""The issue's grep: ``grep -rn "_queue\\|_now\\|_eid\\|\\._ok\\|\\._value" sim/``."""

ATTRIBUTE_ACCESS = re.compile(r"(?<![\w])_(?:queue|now|eid)\b|\._(?:ok|value)\b")
"""The same names as attributes (``env._queue``, ``event._ok``), not inside longer words."""


def test_only_the_kernel_touches_simpys_private_names() -> None:
    offenders = []
    for path in sorted((ROOT / "sim").rglob("*.py")):
        if path == ROOT / "sim" / "engine" / "kernel.py":
            continue
        name = path.relative_to(ROOT).as_posix()
        for number, line in enumerate(path.read_text().splitlines(), 1):
            # In the engine even the plain substring grep must find nothing; elsewhere
            # only attribute access counts (``max_queue`` is a summary column, not SimPy's heap).
            pattern = PRIVATE_SIMPY_NAMES if name.startswith("sim/engine/") else ATTRIBUTE_ACCESS
            if pattern.search(line):
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert not offenders, "SimPy internals outside sim/engine/kernel.py:\n" + "\n".join(offenders)


def test_the_grep_pattern_catches_what_it_is_meant_to() -> None:
    for line in ("heap = env._queue", "now = env._now", "next(env._eid)", "event._ok = True", "x = e._value"):
        assert ATTRIBUTE_ACCESS.search(line), line
        assert PRIVATE_SIMPY_NAMES.search(line), line
    for line in ('"max_queue"', "def _queue_stats(", "self._values = values", "wire_queue("):
        assert not ATTRIBUTE_ACCESS.search(line), line


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


def test_the_kernel_refuses_a_simpy_whose_heap_it_does_not_know() -> None:
    class Changed(simpy.Environment):
        def __init__(self) -> None:
            super().__init__()
            self._queue = {}  # a release that kept its events some other way

    with pytest.raises(RuntimeError, match=re.escape("simpy>=4.1,<4.2")):
        Kernel(Changed())
