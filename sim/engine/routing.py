"""Following requests end to end: through a topology of stages, or through a client's retries.

Both keep a :class:`~sim.engine.records.RequestLog` next to the job log and hear from the stages how
each job ended (:class:`~sim.engine.stage.Listener`):

- :class:`Router` (several stages, fan-out, topics): when a job finishes it publishes a copy
  to every stage in ``then``; a request is resolved when every job it spawned has left; the
  first failure decides its outcome; its deadline covers the whole path.
- :class:`Client` (producers with ``retry``): each attempt is a job; a rejected, dropped,
  failed or timed-out attempt is retried after a backoff (Brooker 2015; ``docs/modelling.md``), within
  the attempt limit and the retry budget; the request is completed by the first attempt
  that succeeds in time, else it ends with its last attempt's outcome.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable
from typing import cast

import numpy as np
from simpy.events import NORMAL, EventPriority

from sim.engine.kernel import Kernel, Reusable
from sim.engine.records import (
    COMPLETED,
    DROPPED,
    EXPIRED,
    FAILED,
    IN_SYSTEM,
    LATE,
    REJECTED,
    THROTTLE,
    JobLog,
    RequestLog,
)
from sim.engine.rows import numpy_of
from sim.engine.stage import Listener, Stage
from sim.engine.streams import uniform_stream
from sim.model.delivery_specs import RetrySpec
from sim.model.distributions import Sampler


class Tracker(Listener):
    """The end-to-end request log, and creation of jobs that belong to requests."""

    def __init__(self, jobs: JobLog, requests: RequestLog) -> None:
        self.jobs = jobs
        self.requests = requests
        self.stages: list[Stage] = []
        self.job_count = 0
        self.request_count = 0
        self.next_key = -1
        """The key of the next request (set by the arrival handler; -1: none)."""
        self.request_keys = array("q")
        """Each request's key, when the job log keeps keys: every job of a request carries it."""

    def jobs_created(self) -> int:
        return self.job_count

    def oldest_unresolved(self, first: int) -> int:
        """The smallest request id from ``first`` on that is not resolved yet (its finish time is still
        NaN), or the number of requests written when all are: rows below it will not change again."""
        last = min(self.request_count, self.requests.allocated)
        if last <= first:
            return last
        open_ = np.isnan(numpy_of(self.requests.finish, first, last))
        found = int(np.argmax(open_))
        return first + found if open_[found] else last

    def new_request(self, producer: int, now: float, deadline: float, branches: int) -> int:
        rid = self.request_count
        self.request_count += 1
        log = self.requests
        if rid == log.allocated:
            log.grow()
        log.producer[rid] = producer
        log.arrival[rid] = now
        log.deadline[rid] = deadline
        log.pending[rid] = branches
        if self.jobs.keyed:
            self.request_keys.append(self.next_key)
        return rid

    def new_job(self, rid: int, stage: int, producer: int, now: float, deadline: float, service: float) -> int:
        job = self.job_count
        self.job_count += 1
        log = self.jobs
        if job == log.allocated:
            log.grow()
        log.request[job] = rid
        log.stage[job] = stage
        log.producer[job] = producer
        log.arrival[job] = now
        log.deadline[job] = deadline
        log.service[job] = service
        if log.keyed:
            log.key[job] = self.request_keys[rid]
        return job


class Router(Tracker):
    """Follows requests through a multi-stage topology."""

    def __init__(self, jobs: JobLog, requests: RequestLog, then: list[list[int]],
                 samplers: list[list[Sampler]]) -> None:
        super().__init__(jobs, requests)
        self.then = then
        self.samplers = samplers  # [stage][producer]

    def served(self, job: int, now: float) -> None:
        jobs = self.jobs
        rid, stage, producer, deadline = jobs.request[job], jobs.stage[job], jobs.producer[job], jobs.deadline[job]
        children = self.then[stage]
        self.requests.pending[rid] += len(children)
        for child in children:
            new = self.new_job(rid, child, producer, now, deadline, self.samplers[child][producer]())
            self.stages[child].admit(new, now)
        self._left(rid, now)

    def failed(self, job: int, outcome: int, now: float) -> None:
        rid = self.jobs.request[job]
        requests = self.requests
        if requests.outcome[rid] == IN_SYSTEM:
            requests.outcome[rid] = outcome  # the first failure decides the end-to-end outcome
            requests.reason[rid] = self.jobs.reason[job]
        self._left(rid, now)

    def _left(self, rid: int, now: float) -> None:
        requests = self.requests
        requests.pending[rid] -= 1
        if requests.pending[rid] == 0:
            requests.finish[rid] = now
            if requests.outcome[rid] == IN_SYSTEM:
                requests.outcome[rid] = COMPLETED if now <= requests.deadline[rid] else LATE


AFTER_NORMAL = EventPriority(NORMAL + 1)
"""SimPy event priority for client deadlines: ties go to the work that finishes at that moment."""

#: What kind of failure each attempt outcome is, for ``retry.on``.
FAILURE_KINDS = {REJECTED: "rejected", DROPPED: "dropped", FAILED: "failed", EXPIRED: "timeout"}


class Client(Tracker):
    """Clients that retry, one per producer (a single-stage scenario).

    ``active[rid]`` is the attempt the client is waiting for (-1 while it backs off). An
    attempt the client has moved on from may still be served later (zombie work): it keeps
    its own outcome but no longer decides the request's.
    """

    def __init__(self, kernel: Kernel, jobs: JobLog, requests: RequestLog, retries: list[RetrySpec | None],
                 services: list[Sampler], patience: list[Callable[[], float] | None],
                 rngs: list[np.random.Generator]) -> None:
        super().__init__(jobs, requests)
        self.kernel = kernel
        self.retries = retries
        self.services = services
        self.patience = patience
        self.uniforms = [uniform_stream(rng) for rng in rngs]
        self.tokens = [float(r.budget.tokens) if r is not None and r.budget is not None else math.inf
                       for r in retries]
        self.active: dict[int, int] = {}
        self.gave_up: set[int] = set()
        """Requests whose client stopped waiting and will not try again."""
        self.sleep: dict[int, float] = {}
        """Decorrelated jitter: the previous sleep of each request."""

    def start(self, producer: int, now: float, patience: float, service: float) -> None:
        """A new request: its first attempt."""
        rid = self.new_request(producer, now, now + patience, 1)
        self._attempt(rid, producer, 0, now, patience, service)

    def _attempt(self, rid: int, producer: int, number: int, now: float, patience: float, service: float) -> None:
        deadline = now + patience
        job = self.new_job(rid, 0, producer, now, deadline, service)
        self.jobs.attempt[job] = number
        self.requests.deadline[rid] = deadline
        self.active[rid] = job
        retry = self.retries[producer]
        if retry is not None and "timeout" in retry.on and math.isfinite(deadline):
            # After every ordinary event at that instant: an attempt that finishes exactly at
            # its deadline is completed (finish <= deadline), so the client must not retry it.
            self.kernel.call_at(deadline, self._on_deadline, (rid, job), AFTER_NORMAL)
        self.stages[0].admit(job, now)

    def served(self, job: int, now: float) -> None:
        rid = int(self.jobs.request[job])
        if self.active.get(rid) != job:
            return  # a zombie: the client already gave up on this attempt
        producer = self.jobs.producer[job]
        if now <= self.jobs.deadline[job]:
            retry = self.retries[producer]
            if retry is not None and retry.budget is not None:
                self.tokens[producer] = min(float(retry.budget.tokens), self.tokens[producer] + retry.budget.refund)
            self._resolve(rid, COMPLETED, now)
        else:
            self._resolve(rid, LATE, now)

    def failed(self, job: int, outcome: int, now: float) -> None:
        rid = int(self.jobs.request[job])
        if self.active.get(rid) != job:
            return
        if rid in self.gave_up:
            self._resolve(rid, outcome, now)
            return
        self._retry_or_end(rid, job, FAILURE_KINDS.get(outcome, "failed"), outcome, now)

    def _on_deadline(self, event: Reusable) -> None:
        rid, job = cast(tuple[int, int], event.value)  # (not read from the log: the job may be folded by now)
        if self.active.get(rid) == job and self.jobs.outcome[job] == IN_SYSTEM:
            self._retry_or_end(rid, job, "timeout", None, self.kernel.now())

    def _retry_or_end(self, rid: int, job: int, kind: str, outcome: int | None, now: float) -> None:
        producer = int(self.jobs.producer[job])
        retry = self.retries[producer]
        made = int(self.jobs.attempt[job]) + 1
        if retry is not None and kind in retry.on and made < retry.attempts:
            cost = 0.0
            if retry.budget is not None:
                cost = retry.budget.timeout_cost if kind == "timeout" else retry.budget.cost
            if self.tokens[producer] >= cost:
                self.tokens[producer] -= cost
                self.active[rid] = -1
                throttled = self.jobs.reason[job] == THROTTLE and retry.throttle_base is not None
                base = retry.throttle_base if throttled and retry.throttle_base is not None else retry.base
                delay = self._backoff(rid, retry, base, made - 1, producer)
                self.kernel.call_at(now + delay, self._on_retry, (rid, producer, made))
                return
        if outcome is not None:
            self._resolve(rid, outcome, now)
        else:
            self.gave_up.add(rid)  # timed out, no retry: the attempt decides the request when it ends

    def _backoff(self, rid: int, retry: RetrySpec, base: float, retries_so_far: int, producer: int) -> float:
        """The wait before the next attempt (Brooker 2015): exponential with cap, then jitter."""
        uniform = self.uniforms[producer]
        if retry.jitter == "decorrelated":
            previous = self.sleep.get(rid, base)
            sleep = min(retry.cap, base + uniform() * (3 * previous - base))
            self.sleep[rid] = sleep
            return sleep
        if retry.backoff == "exponential":
            ceiling = min(retry.cap, base * 2.0**retries_so_far)
        else:
            ceiling = min(retry.cap, base)
        if retry.jitter == "full":
            return uniform() * ceiling
        if retry.jitter == "equal":
            return ceiling / 2 + uniform() * ceiling / 2
        return ceiling

    def _on_retry(self, event: Reusable) -> None:
        rid, producer, number = cast(tuple[int, int, int], event.value)
        patience = self.patience[producer]
        self._attempt(rid, producer, number, self.kernel.now(), patience() if patience else math.inf,
                      self.services[producer]())

    def _resolve(self, rid: int, outcome: int, now: float) -> None:
        requests = self.requests
        requests.outcome[rid] = outcome
        requests.reason[rid] = self.jobs.reason[self.active[rid]]
        requests.finish[rid] = now
        requests.pending[rid] = 0
        del self.active[rid]
        self.sleep.pop(rid, None)
        self.gave_up.discard(rid)
