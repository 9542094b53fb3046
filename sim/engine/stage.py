"""One stage: a queue and its consumers, wired into the SimPy environment.

The life of a job (a request's visit to a stage) when consumers take work straight from
the queue (for broker delivery see :mod:`sim.engine.broker`):

1. **admit** - an active-queue-management policy may drop it early; else a free consumer
   starts it at once (a serverless pool may create one, paying a cold start); else it joins
   the queue if there is room; else the overflow rule rejects it or evicts the oldest
   waiting job. With no queue at all (capacity 0) and no environment, it is throttled;
2. **serve** - the consumer's reusable completion event is scheduled after the cold start,
   if any, plus the service time (slowed down, cut by the function timeout);
3. **finish** - outcome ``completed`` if it ended by the deadline, else ``late`` (``failed``
   if the attempt errored or timed out); the listener (router or client) is told; the
   consumer takes the next waiting job, skipping expired ones (``on_expired: skip``) and
   those the head-drop policy drops, or goes back to the pool.

Speed (see the README): no SimPy process and no new event object per job. Each consumer
slot *is* an event, re-armed for each job through :mod:`sim.engine.kernel` (the only module
that touches SimPy's internals); handlers are closures over local names, because attribute
look-ups are the main cost of a Python event loop. Deadlines need no event: an expired job
is recognised at the head. Features that are off cost one flag test each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sim.engine.consumers import Pool

Admit = Callable[[int, float], None]
"""Offer job ``job`` to a stage at time ``now``."""


class Listener:
    """Who hears how jobs end: the router of a multi-stage topology, or a retrying client."""

    def served(self, job: int, now: float) -> None:
        """The job finished service (completed or late)."""
        raise NotImplementedError

    def failed(self, job: int, outcome: int, now: float) -> None:
        """The job left unserved or its processing failed (rejected, dropped, expired, failed...)."""
        raise NotImplementedError


@dataclass
class Stage:
    """A wired stage: ``admit`` takes jobs; the rest is for the end-of-run report.

    ``waiting()`` and ``serving()`` count the jobs the stage holds (a broker counts every
    message not yet deleted as waiting); ``priced`` says whether its consumers are billed
    like Lambda.
    """

    name: str
    concurrency: int
    admit: Admit
    pool: Pool
    waiting: Callable[[], int]
    serving: Callable[[], int]
    priced: bool = False
    last_activity: Callable[[], float] = lambda: 0.0
    """When work last ended that no job record shows (a duplicate processing in a broker)."""
    invocations: tuple[list[float], list[float]] | None = None
    """Broker delivery: start and end of each invocation (a batch of jobs is one piece of work)."""
    oldest_live: Callable[[], int] = lambda: 0
    """The smallest job id this stage may still write to (a job waiting or in service, a message
    visible, in flight or being processed), or :data:`NO_LIVE_JOB` when it holds none. Streaming
    statistics fold and free only the rows below every stage's oldest live job; the default (0)
    keeps every row."""
    faults: Faultable | None = None
    """What the faults timeline acts on (consumer crashes, broker outages); None: faults pass it by."""
    lag_events: Callable[[], LagEvents] | None = None
    """A log's consumer lag (Kafka): when records were appended, when offsets were committed and how many."""


LagEvents = tuple[list[float], list[float], list[int]]
"""(append times, commit times, records each commit covered): lag = appended - committed."""


NO_LIVE_JOB = 2**62
"""What :attr:`Stage.oldest_live` returns when the stage holds no job at all."""


class Faultable(Protocol):
    """A stage the faults timeline can hit (:mod:`sim.engine.faults`): its consumers crash and restart,
    its broker goes down and comes back."""

    def alive(self) -> list[int]:
        """The consumers that are up, by number."""
        ...

    def crash(self, indexes: list[int], now: float) -> None: ...

    def restart(self, indexes: list[int], now: float) -> None: ...

    def broker_down(self, now: float) -> None: ...

    def broker_up(self, now: float) -> None: ...
