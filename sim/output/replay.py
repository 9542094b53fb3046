"""What an animation of a run shows, computed from the run's own records: where each dot is at time t.

An animation replays what the engine computed -- every job's ``arrival``, ``start``, ``finish``,
``outcome``, ``deadline`` and ``stage`` -- and simulates nothing again. This module is the pure
part (NumPy only, no drawing), so the tests can check every dot against the records at any
instant; :mod:`sim.output.animation` draws it.

A dot is a job: a request in a single-stage scenario, an attempt when clients retry, a visit to
one stage with stages (a request crossing a pipeline is a dot per stage, handed on from lane to
lane). At time ``t`` a dot is

- ``upcoming`` before its arrival,
- ``waiting`` from its arrival until its service starts (in a broker: *visible*, until its first
  invocation), or until it leaves unserved (dropped, expired, dead-lettered),
- ``serving`` from its start until its finish (in a broker: *in flight*, received and not yet
  deleted; a message redelivered after a failure stays in flight here, since the records keep
  only its first start),
- ``departed`` from its finish on, with its **fate**: its outcome, or ``retried`` for an
  attempt that was not served and that the client tried again, or ``handed_on`` when a later
  stage took it over (a lane's dot that continues as another lane's dot).

A rejected job leaves at its arrival (its ``finish`` is its arrival); a job still in the
system at the end of the run (``finish`` NaN) stays where it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sim.engine.records import COMPLETED, LATE, OUTCOMES, Columns
from sim.experiments.replication import Run
from sim.model.scenario import ScenarioError

UPCOMING, WAITING, SERVING, DEPARTED = range(4)
PHASES = ("upcoming", "waiting", "serving", "departed")

RETRIED = len(OUTCOMES)
HANDED_ON = RETRIED + 1
FATES = (*OUTCOMES, "retried", "handed_on")
"""A dot's fate: the engine's outcome codes, then ``retried`` and ``handed_on``."""

MAX_DOTS = 300
"""Requests drawn at most: beyond, a uniform sample (the figure says so; counts and curves keep every request)."""
MAX_FRAMES = 900
"""Frames at most: 45 s of video at 20 frames a second."""

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]


@dataclass(frozen=True)
class Dots:
    """Jobs, in arrival order: when each arrived, started and left, and how it ended."""

    arrival: Floats
    start: Floats
    finish: Floats
    deadline: Floats
    fate: Ints
    producer: Ints
    lane: Ints
    request: Ints

    def __len__(self) -> int:
        return len(self.arrival)

    def take(self, rows: NDArray[np.bool_] | Ints) -> Dots:
        return Dots(*(getattr(self, name)[rows] for name in Dots.__dataclass_fields__))


@dataclass(frozen=True)
class Replay:
    """A run's jobs around a time window: the dots drawn, and everything the counters and curves need."""

    dots: Dots
    """The dots drawn: the jobs of every request in the window, or of a uniform sample of them."""
    jobs: Dots
    """Every job of the run (for the counters, the queue lengths and the goodput)."""
    completed_at: Floats
    """When each request that completed left, sorted (end to end: goodput)."""
    start: float
    end: float
    lanes: tuple[str, ...]
    brokered: tuple[bool, ...]
    concurrency: tuple[int, ...]
    producers: tuple[str, ...]
    attempts: bool
    """Dots are a client's attempts (the scenario retries), not requests."""
    requests_in_window: int
    requests_shown: int
    capacities: tuple[int | None, ...] = ()
    """Each lane's queue capacity (None: unbounded), when known: a small bounded queue is drawn as its slots."""
    handoffs: tuple[tuple[int, ...], ...] = ()
    """Per lane, the lanes its served jobs were handed on to (a pipeline's next step, a fan-out's subscribers)."""

    @property
    def sampled(self) -> bool:
        return self.requests_shown < self.requests_in_window


def _fates(jobs: Columns, single: bool) -> Ints:
    """Each job's fate: its outcome, ``retried`` if another attempt followed, ``handed_on`` if a stage followed."""
    fate = jobs.outcome.astype(np.int64)
    if single:
        return fate
    frame = pd.DataFrame({"request": jobs.request, "stage": jobs.stage, "arrival": jobs.arrival})
    served = (fate == COMPLETED) | (fate == LATE)
    # A stage hands a served job on at its finish: the next stage's job arrives at that very time.
    arrivals = pd.MultiIndex.from_arrays([frame["request"], frame["arrival"]])
    follows = pd.MultiIndex.from_arrays([jobs.request, jobs.finish]).isin(arrivals)
    fate[served & np.asarray(follows)] = HANDED_ON
    # An attempt is retried when a later attempt of the same request exists at the same stage.
    later = frame.groupby(["request", "stage"])["arrival"].transform("max").to_numpy()
    fate[~served & (jobs.arrival < later)] = RETRIED
    return fate


def _dots(jobs: Columns, single: bool) -> Dots:
    order = np.argsort(jobs.arrival, kind="stable")
    return Dots(
        arrival=jobs.arrival, start=jobs.start, finish=jobs.finish, deadline=jobs.deadline,
        fate=_fates(jobs, single), producer=jobs.producer.astype(np.int64),
        lane=np.maximum(jobs.stage.astype(np.int64), 0), request=jobs.request.astype(np.int64),
    ).take(order)


def _handoffs(jobs: Dots, lanes: int) -> tuple[tuple[int, ...], ...]:
    """Which lane hands jobs on to which, as the records show it (a job arriving where another finished)."""
    handed = jobs.fate == HANDED_ON
    if not handed.any():
        return ((),) * lanes
    left = pd.DataFrame({"request": jobs.request[handed], "time": jobs.finish[handed], "source": jobs.lane[handed]})
    right = pd.DataFrame({"request": jobs.request, "time": jobs.arrival, "target": jobs.lane})
    pairs = left.drop_duplicates().merge(right, on=["request", "time"])
    pairs = pairs[pairs["source"] != pairs["target"]]
    edges = set(zip(pairs["source"].tolist(), pairs["target"].tolist(), strict=True))
    return tuple(tuple(sorted(target for source, target in edges if source == lane)) for lane in range(lanes))


def window(run: Run, start: float | None, end: float | None) -> tuple[float, float]:
    """The window ``[start, end]`` checked against the run: by default its first 10 s (from 0)."""
    last = run.records.end_time
    start = 0.0 if start is None else start
    if not math.isfinite(start) or start < 0 or (end is not None and not math.isfinite(end)):
        raise ScenarioError(f"--from/--to: got {start:g}s and {end}s; give finite times >= 0s")
    if start >= last:
        raise ScenarioError(f"--from {start:g}s: the run ends at {last:g}s; give a window that starts before it")
    end = min(last, start + 10.0) if end is None else end
    if end <= start:
        raise ScenarioError(f"--from {start:g}s is not before --to {end:g}s; give --from earlier than --to")
    return start, min(end, last)


def replay(run: Run, start: float | None = None, end: float | None = None, max_dots: int = MAX_DOTS,
           seed: int = 0, capacities: tuple[int | None, ...] = ()) -> Replay:
    """The dots of ``run`` in the window ``[start, end]``: at most ``max_dots`` requests (a uniform sample
    drawn with ``seed``); raise :class:`ScenarioError` for a window in which no request is in the system."""
    start, end = window(run, start, end)
    records = run.records
    single = records.jobs is records.columns
    jobs = _dots(records.jobs, single)
    alive = (jobs.arrival <= end) & ~(jobs.finish < start)
    requests = np.unique(jobs.request[alive])
    if len(requests) == 0:
        raise ScenarioError(f"--from {start:g}s --to {end:g}s: no request is in the system in this window; "
                            f"choose another window (the run lasts {records.end_time:g}s)")
    shown = requests
    if len(requests) > max_dots:
        shown = np.sort(np.random.default_rng(seed).choice(requests, size=max_dots, replace=False))
    columns = records.columns
    done = columns.finish[columns.outcome == COMPLETED]
    attempts = not single and len(set(records.jobs.stage.tolist())) == 1 and len(records.stage_names) == 1
    return Replay(
        dots=jobs.take(alive & np.isin(jobs.request, shown)), jobs=jobs, completed_at=np.sort(done),
        start=start, end=end, lanes=tuple(records.stage_names),
        brokered=tuple(calls is not None for calls in records.invocations) or (False,) * len(records.stage_names),
        concurrency=tuple(records.stage_concurrency) or (records.concurrency,),
        producers=tuple(run.producer_names), attempts=attempts,
        requests_in_window=len(requests), requests_shown=len(shown), capacities=capacities,
        handoffs=_handoffs(jobs, len(records.stage_names)) if not single else ((),),
    )


def phases(dots: Dots, t: float) -> NDArray[np.int8]:
    """Each dot's phase at time ``t`` (:data:`PHASES`), read from its arrival, start and finish."""
    phase = np.full(len(dots), UPCOMING, dtype=np.int8)
    arrived = dots.arrival <= t
    left = dots.finish <= t  # False while in the system (finish NaN)
    started = dots.start <= t
    phase[arrived] = WAITING
    phase[arrived & started] = SERVING
    phase[arrived & left] = DEPARTED
    return phase


def overdue(dots: Dots, t: float) -> NDArray[np.bool_]:
    """Dots still waiting or in service whose client has given up (past the deadline): zombie work."""
    phase = phases(dots, t)
    gone: NDArray[np.bool_] = ((phase == WAITING) | (phase == SERVING)) & (dots.deadline < t)
    return gone


def frame_times(start: float, end: float, fps: float, speed: float | None = None) -> Floats:
    """The simulated instants of the frames: ``fps`` a second of video, ``speed`` simulated seconds a
    second of video (default: real time, faster when the window is longer than 15 s)."""
    if not (math.isfinite(fps) and fps > 0):
        raise ScenarioError(f"--fps: got {fps:g}; give a number of frames a second > 0, e.g. 20")
    if speed is None:
        speed = max(1.0, (end - start) / 15.0)
    if not (math.isfinite(speed) and speed > 0):
        raise ScenarioError(f"--speed: got {speed:g}; give simulated seconds per second of video > 0, e.g. 1")
    frames = math.floor((end - start) / speed * fps + 1e-9) + 1
    if frames > MAX_FRAMES:
        raise ScenarioError(f"{frames:,} frames (window {end - start:g}s at {speed:g}x and {fps:g} fps); at most "
                            f"{MAX_FRAMES}: give a shorter window (--from/--to), a lower --fps or a higher --speed")
    return np.asarray(start + np.arange(frames) * (speed / fps), dtype=np.float64)


def waiting_counts(jobs: Dots, lanes: int, times: Floats) -> NDArray[np.int64]:
    """Jobs waiting in each lane's queue at each time (every job, not just the dots): lanes x times."""
    counts = np.zeros((lanes, len(times)), dtype=np.int64)
    served = ~np.isnan(jobs.start)
    wait_end = np.where(served, jobs.start, jobs.finish)
    wait_end = np.where(np.isnan(wait_end), np.inf, wait_end)
    for lane in range(lanes):
        mine = jobs.lane == lane
        came = np.searchsorted(np.sort(jobs.arrival[mine]), times, side="right")
        went = np.searchsorted(np.sort(wait_end[mine]), times, side="right")
        counts[lane] = came - went
    return counts


def goodput(completed_at: Floats, times: Floats, width: float) -> Floats:
    """Requests completed (in time) per second over the ``width`` seconds before each time."""
    done = np.searchsorted(completed_at, times, side="right")
    before = np.searchsorted(completed_at, times - width, side="right")
    return (done - before) / width


def departed_counts(jobs: Dots, t: float) -> dict[str, int]:
    """Jobs that have left by ``t``, by fate (every job since the run began; handed-on jobs left out)."""
    left = (jobs.finish <= t) & (jobs.fate != HANDED_ON)
    counts = np.bincount(jobs.fate[left], minlength=len(FATES))
    return {FATES[code]: int(count) for code, count in enumerate(counts) if count}


def service_slots(dots: Dots) -> Ints:
    """A slot for every served dot in its lane, so that no two dots share a slot at once (the fewest slots:
    interval partitioning by start time); -1 for dots never served."""
    slot = np.full(len(dots), -1, dtype=np.int64)
    free_at: dict[int, list[float]] = {}
    for index in np.argsort(dots.start, kind="stable"):
        if np.isnan(dots.start[index]):
            continue
        slots = free_at.setdefault(int(dots.lane[index]), [])
        leaves = math.inf if np.isnan(dots.finish[index]) else float(dots.finish[index])
        chosen = next((k for k, free in enumerate(slots) if free <= dots.start[index]), len(slots))
        if chosen == len(slots):
            slots.append(leaves)
        else:
            slots[chosen] = leaves
        slot[index] = chosen
    return slot
