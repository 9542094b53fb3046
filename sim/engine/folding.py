"""Streaming statistics for the SimPy engine: fold final rows into a tally, a chunk at a time, and free them.

With ``report.requests: none`` (or ``sample N``) the job and request logs call :meth:`Folder.fold`
each time they are about to make another chunk of rows ready (so the hot path gains no per-event
work). A row is **final** when nothing can write to it any more: every stage says the oldest job
it still holds (:attr:`sim.engine.stage.Stage.oldest_live`), the tracker the oldest request not
yet resolved. Rows below both are folded -- counts, sums and sketches at once, the step functions'
changes (:mod:`sim.engine.changes`) in time order -- and whole chunks of them are handed back
(:meth:`sim.engine.rows.Store.release`). Memory is then bounded by the rows from the oldest job
still in the system to the newest, not by the length of the run.

The time-order rule: job and request ids grow with creation time and nothing happens to a job
before it is created, so every change of a row not folded yet comes at or after the arrival of
the first such row (the **watermark**); changes before it are replayed now, the rest wait.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from sim.engine.changes import Changes, Rows, invocation_changes, job_changes, request_changes
from sim.engine.compiled import replay as compiled
from sim.engine.compiled.tallying import closed
from sim.engine.kept import Kept
from sim.engine.kernel import Kernel
from sim.engine.records import JobLog, RequestLog, Usage
from sim.engine.routing import Tracker
from sim.engine.rows import numpy_of
from sim.engine.stage import Stage
from sim.engine.tally import WARMUP, Tally, fitted, new_tally
from sim.model.schema import Scenario

JOB_COLUMNS = ("producer", "arrival", "deadline", "service", "start", "finish", "outcome", "reason")


class Folder:
    """Folds a SimPy run's final rows into a :class:`~sim.engine.tally.Tally` (see the module docstring)."""

    def __init__(self, scenario: Scenario, kernel: Kernel, jobs: JobLog, stages: list[Stage],
                 tracker: Tracker | None, job_count: Callable[[], int], kept: Kept) -> None:
        self.kernel, self.jobs, self.stages, self.tracker, self.job_count, self.kept = (
            kernel, jobs, stages, tracker, job_count, kept)
        self.requests: RequestLog | None = tracker.requests if tracker is not None else None
        self.until = scenario.until
        several_stages = len(stages) > 1
        self.tally = new_tally(len(scenario.producers) if len(scenario.producers) > 1 else 0,
                               len(stages) if several_stages else 0,
                               0.0 if scenario.warmup == "auto" else float(scenario.warmup), scenario.report.bucket)
        self.brokered = np.array([stage.invocations is not None for stage in stages])
        self.stage_info = np.array([[stage.priced for stage in stages], self.brokered], dtype=np.int64)
        self.memory_gb = np.array([spec.consumers.memory_gb for spec in scenario.stage_list])
        self.changes = Changes()
        self.job_done = self.request_done = 0
        self.latest = 0.0
        """The latest arrival or finish of a folded job (the end of a run without ``until``)."""
        jobs.folding = self.fold
        if self.requests is not None:
            self.requests.folding = self.fold

    def fold(self) -> None:
        """Fold every row no stage or tracker can still write to; replay the changes before the watermark."""
        jobs, requests, tracker = self.jobs, self.requests, self.tracker
        written = min(jobs.allocated, self.job_count())
        floor = min([written, *(stage.oldest_live() for stage in self.stages)])
        new_jobs = max(self.job_done, floor)
        watermark = self.kernel.now()
        self.tally = fitted(self.tally, watermark)  # every time folded now is at or before the clock
        if new_jobs < written:
            watermark = min(watermark, jobs.arrival[new_jobs])
        self._fold_jobs(self.job_done, new_jobs, math.inf)
        if requests is not None and tracker is not None:
            requests_written = min(requests.allocated, tracker.request_count)
            unresolved = tracker.oldest_unresolved(self.request_done)
            if new_jobs < written:  # a request is final only once all its jobs are
                unresolved = min(unresolved, int(numpy_of(jobs.request, new_jobs, written).min()))
            new_requests = max(self.request_done, min(unresolved, requests_written))
            if new_requests < requests_written:
                watermark = min(watermark, requests.arrival[new_requests])
            self._fold_requests(self.request_done, new_requests, math.inf)
            requests.store.release(self.request_done)
        self._fold_invocations()
        self.tally = self.changes.replay(self.tally, watermark)
        jobs.store.release(self.job_done)

    def latest_time(self) -> float:
        """The latest arrival or finish of any job so far (folded or not)."""
        first, last = self.job_done, self.job_count()
        if last <= first:
            return self.latest
        return float(max(self.latest, np.nanmax(numpy_of(self.jobs.arrival, first, last)),
                         np.nanmax(numpy_of(self.jobs.finish, first, last), initial=0.0)))

    def finish(self, end: float) -> Tally:
        """The run ended at ``end``: fold every row left (those still in the system too) and close the tally."""
        self.tally = fitted(self.tally, end)
        self._fold_jobs(self.job_done, self.job_count(), end)
        if self.tracker is not None:
            self._fold_requests(self.request_done, self.tracker.request_count, end)
        self._fold_invocations()
        self.tally = closed(self.changes.replay(self.tally, math.inf), end)
        return self.tally

    def _fold_jobs(self, first: int, last: int, end: float) -> None:
        """Jobs ``first .. last - 1`` are final (at ``end``: the run is over)."""
        if last <= first:
            return
        jobs = self.jobs
        names = JOB_COLUMNS + (("stage", "request") if jobs.routed else ()) + (Usage.names() if jobs.metered else ())
        block = {name: np.array(numpy_of(getattr(jobs, name), first, last)) for name in names}
        count = last - first
        if not jobs.routed:
            block["stage"] = np.zeros(count, dtype=np.int8)
        self.latest = float(max(self.latest, block["arrival"].max(), np.nanmax(block["finish"], initial=0.0)))
        warmup = float(self.tally.scalars[WARMUP])
        if self.requests is not None:
            measured = self._request_arrivals(block["request"]) >= warmup
            self._add_to_requests(block)
        else:
            measured = block["arrival"] >= warmup
        compiled.fold_jobs(self.tally, _job_ints(block, measured, jobs.metered), _job_floats(block, jobs.metered),
                           self.stage_info, self.memory_gb, end)
        rows = Rows(block["arrival"], block["start"], block["finish"], block["outcome"], block["producer"],
                    block["stage"])
        self.changes.add(job_changes(self.tally, rows, self.brokered))
        if self.requests is None:  # a request is its one job
            self._fold_request_rows(rows, block, end)
            self.kept.offer_requests(first, last, block)
        else:
            self.kept.offer_jobs(first, last, block)
        self.job_done = jobs.folded = last

    def _request_arrivals(self, request: np.ndarray) -> np.ndarray:
        assert self.requests is not None
        base = int(request.min())
        arrivals: np.ndarray = numpy_of(self.requests.arrival, base, int(request.max()) + 1)[request - base]
        return arrivals

    def _add_to_requests(self, block: dict[str, np.ndarray]) -> None:
        """Gather what a request's row needs from its jobs: first start, total service, usage."""
        assert self.requests is not None
        totals, request = self.requests.totals, block["request"]
        base, top = int(request.min()), int(request.max()) + 1
        index = request - base
        np.fmin.at(numpy_of(totals["start"], base, top), index, block["start"])
        np.add.at(numpy_of(totals["service"], base, top), index, np.nan_to_num(block["service"]))
        np.add.at(numpy_of(totals["attempt"], base, top), index, 1)
        if self.jobs.metered:
            for name in Usage.names()[1:]:
                np.add.at(numpy_of(totals[name], base, top), index, block[name])

    def _fold_requests(self, first: int, last: int, end: float) -> None:
        """Requests ``first .. last - 1`` (of a tracker) are final, and so are all their jobs."""
        if last <= first:
            return
        requests = self.requests
        assert requests is not None
        block = {name: np.array(numpy_of(getattr(requests, name), first, last))
                 for name in ("producer", "arrival", "deadline", "finish", "outcome", "reason")}
        block.update({name: np.array(numpy_of(column, first, last)) for name, column in requests.totals.items()})
        rows = Rows(block["arrival"], block["start"], block["finish"], block["outcome"], block["producer"],
                    np.zeros(last - first, dtype=np.int8))
        self._fold_request_rows(rows, block, end)
        self.kept.offer_requests(first, last, block)
        self.request_done = last

    def _fold_request_rows(self, rows: Rows, block: dict[str, np.ndarray], end: float) -> None:
        compiled.fold_requests(self.tally, rows.producer, rows.arrival, block["deadline"], rows.start, rows.finish,
                               rows.outcome, block["reason"], end)
        self.changes.add(request_changes(self.tally, rows))

    def _fold_invocations(self) -> None:
        """Brokered stages' invocations so far (each is known in full when it starts): busy steps."""
        for index, stage in enumerate(self.stages):
            if stage.invocations is not None and stage.invocations[0]:
                starts, ends = stage.invocations
                self.changes.add(invocation_changes(self.tally, index, starts, ends, self.until))
                del starts[:], ends[:]


def _job_ints(block: dict[str, np.ndarray], measured: np.ndarray, metered: bool) -> np.ndarray:
    count = len(block["arrival"])
    ints = np.zeros((compiled.JOB_INTS, count), dtype=np.int64)
    ints[compiled.J_STAGE], ints[compiled.J_PRODUCER] = block["stage"], block["producer"]
    ints[compiled.J_OUTCOME], ints[compiled.J_REASON] = block["outcome"], block["reason"]
    ints[compiled.J_MEASURED] = measured
    if metered:
        ints[compiled.J_THROTTLES], ints[compiled.J_COLD_STARTS] = block["throttles"], block["cold_starts"]
        ints[compiled.J_DUPLICATES] = block["duplicates"]
    return ints


def _job_floats(block: dict[str, np.ndarray], metered: bool) -> np.ndarray:
    floats = np.zeros((compiled.JOB_FLOATS, len(block["arrival"])))
    floats[compiled.F_ARRIVAL], floats[compiled.F_DEADLINE] = block["arrival"], block["deadline"]
    floats[compiled.F_START], floats[compiled.F_FINISH] = block["start"], block["finish"]
    if metered:
        floats[compiled.F_GB_SECONDS], floats[compiled.F_INVOCATIONS] = block["gb_seconds"], block["invocations"]
        floats[compiled.F_SQS_REQUESTS] = block["sqs_requests"]
    return floats

