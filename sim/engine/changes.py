"""The step-function changes of final rows, kept in time order until they can be replayed into a tally.

Each final job row says when it joined a queue and left it, started and ended service, and (with
several stages) entered and left its stage; each request row when it entered and left the
system; each invocation of a brokered stage when its consumer was busy. These are the up and
down steps of the functions the exact path integrates (:class:`sim.analysis.intervals.Intervals`),
built here with the same rules: a rejected request never waits, an interval of zero length is
left out, and a row still in the system has no down step (the tally's ``close`` integrates it to
the end). :class:`Changes` holds them, sorted by time, until the folding watermark says no
earlier change can still come, then replays them through
:func:`sim.engine.compiled.replay.replay_changes`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sim.engine.compiled.replay import ALL_VIEWS, PRODUCER_SHIFT, STAGE_SHIFT, UP, replay_changes
from sim.engine.records import REJECTED
from sim.engine.tally import BUSY, PRODUCER_VIEWS, QUEUE, STAGE_VIEWS, SYSTEM, Tally, fitted

Floats = NDArray[np.float64]
Codes = NDArray[np.int64]


@dataclass(frozen=True)
class Rows:
    """A block of final rows of jobs or requests, as NumPy arrays (``start`` NaN: never started)."""

    arrival: Floats
    start: Floats
    finish: Floats
    outcome: NDArray[np.int8]
    producer: NDArray[np.int8]
    stage: NDArray[np.int8]


def _views(tally: Tally, rows: Rows, stages: bool) -> Codes:
    """Each row's views: all requests, its producer's (with several), its stage's (``stages`` and several)."""
    producers = int(tally.flags[PRODUCER_VIEWS])
    codes = np.full(len(rows.arrival), ALL_VIEWS, dtype=np.int64)
    if producers > 0:
        codes |= (1 + rows.producer.astype(np.int64)) << PRODUCER_SHIFT
    if stages and tally.flags[STAGE_VIEWS] > 0:
        codes |= (1 + producers + rows.stage.astype(np.int64)) << STAGE_SHIFT
    return codes


def _steps(ups: Floats, downs: Floats, keep: NDArray[np.bool_], codes: Codes) -> tuple[Floats, Codes]:
    """Up steps at ``ups`` and down steps at ``downs`` (when it happened) of the rows kept."""
    down = keep & np.isfinite(downs)
    return np.concatenate([ups[keep], downs[down]]), np.concatenate([codes[keep] | UP, codes[down]])


def job_changes(tally: Tally, rows: Rows, brokered: NDArray[np.bool_]) -> tuple[Floats, Codes]:
    """Waiting, busy and (per stage) in-stage steps of jobs; brokered stages' busy time comes from invocations."""
    views = _views(tally, rows, stages=True)
    started = ~np.isnan(rows.start)
    admitted = rows.outcome != REJECTED
    dequeued = np.where(started, rows.start, rows.finish)
    parts = [_steps(rows.arrival, dequeued, admitted & ~(dequeued <= rows.arrival), views | QUEUE)]
    busy = started & ~brokered[rows.stage] & ~(rows.finish <= rows.start)
    parts.append(_steps(rows.start, rows.finish, busy, views | BUSY))
    if tally.flags[STAGE_VIEWS] > 0:
        in_stage = (views >> STAGE_SHIFT) << STAGE_SHIFT  # the stage's own view only
        parts.append(_steps(rows.arrival, rows.finish, admitted & ~(rows.finish <= rows.arrival), in_stage | SYSTEM))
    return np.concatenate([times for times, _ in parts]), np.concatenate([codes for _, codes in parts])


def request_changes(tally: Tally, rows: Rows) -> tuple[Floats, Codes]:
    """In-the-system steps of requests (end to end)."""
    views = _views(tally, rows, stages=False)
    keep = (rows.outcome != REJECTED) & ~(rows.finish <= rows.arrival)
    return _steps(rows.arrival, rows.finish, keep, views | SYSTEM)


def invocation_changes(tally: Tally, stage: int, starts: list[float], ends: list[float],
                       until: float | None) -> tuple[Floats, Codes]:
    """Busy steps of a brokered stage's invocations (a batch is one piece of work); one running at
    ``until`` is still busy when the run ends."""
    code = ALL_VIEWS | BUSY
    if tally.flags[STAGE_VIEWS] > 0:
        code |= (1 + int(tally.flags[PRODUCER_VIEWS]) + stage) << STAGE_SHIFT
    begin, end = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
    if until is not None:
        end = np.where(end < until, end, math.nan)
    return _steps(begin, end, np.ones(len(begin), dtype=bool), np.full(len(begin), code, dtype=np.int64))


class Changes:
    """Changes not replayed yet, in time order (equal times in any order: a tally reads a level only
    after everything at one instant)."""

    def __init__(self) -> None:
        self.times: Floats = np.empty(0)
        self.codes: Codes = np.empty(0, dtype=np.int64)
        self._new: list[tuple[Floats, Codes]] = []

    def add(self, found: tuple[Floats, Codes]) -> None:
        if len(found[0]):
            self._new.append(found)

    def __len__(self) -> int:
        return len(self.times) + sum(len(times) for times, _ in self._new)

    def replay(self, tally: Tally, before: float) -> Tally:
        """Replay every change earlier than ``before`` into ``tally`` (made larger when needed); return it."""
        if self._new:
            times = np.concatenate([self.times, *(t for t, _ in self._new)])
            codes = np.concatenate([self.codes, *(c for _, c in self._new)])
            order = np.argsort(times, kind="stable")  # the held changes are one sorted run already
            self.times, self.codes = times[order], codes[order]
            self._new.clear()
        due = int(np.searchsorted(self.times, before, side="left"))
        if due == 0:
            return tally
        times, codes = self.times[:due], self.codes[:due]
        tally = fitted(tally, float(times[-1]))
        done = 0
        while done < due:
            done = int(replay_changes(tally, times, codes, done))
            if done < due:
                tally = fitted(tally, float(times[done]))
        self.times, self.codes = self.times[due:], self.codes[due:]
        return tally
