"""Schema blocks for the faults timeline: the scenario's ``faults:`` list.

A fault hits one stage (``stage:``, default the first) at given times, the same whatever the
broker: so ``qsim evaluate`` can run one fault schedule through every broker model and a direct
call. What happens to the messages a crashed consumer held is each broker's rule
(``docs/brokers.md``); the schedule itself is broker-independent.
"""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

from pydantic import BeforeValidator, Field, model_validator

from sim.model.delivery_specs import SlowdownSpec
from sim.model.specs import FieldError, Name, NonNegativeDuration, Number, PositiveDuration, PositiveRate, Strict
from sim.model.units import format_duration

FAULT_KINDS = ("crash", "consumer-outage", "broker-outage", "slowdown")



def _victims(value: object) -> object:
    """One message for every wrong shape (pydantic would report each member of the union)."""
    if value == "all":
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if (isinstance(value, list) and value
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
        return value
    raise ValueError("must be all, a number of consumers (e.g. 2), or a list of their numbers from 0 (e.g. [0, 3])")


Victims = Annotated[Literal["all"] | int | list[int], BeforeValidator(_victims)]
"""Which consumers crash: ``all``, a number of them, or their indexes (0-based)."""


class _FaultSpec(Strict):
    stage: Name | None = None
    """The stage it hits (default: the first)."""


class CrashSpec(_FaultSpec):
    """Consumers crash (in-flight work lost) and restart ``restart`` later: once ``at`` a time, or at a ``rate``."""

    kind: Literal["crash"]
    at: NonNegativeDuration | None = None
    rate: PositiveRate | None = None
    start: NonNegativeDuration = 0.0
    stop: NonNegativeDuration | None = None
    consumers: Victims = 1
    restart: NonNegativeDuration = 0.0

    @model_validator(mode="after")
    def _when(self) -> CrashSpec:
        if (self.at is None) == (self.rate is None):
            raise FieldError("give either at (one crash, e.g. 60s) or rate (crashes at random, e.g. 1/min)",
                             ("at",), self.at if self.at is not None else "missing")
        if self.rate is None and ("start" in self.model_fields_set or self.stop is not None):
            raise FieldError("start and stop bound crashes at a rate; with at, remove them", ("stop",), "given")
        if self.stop is not None and self.stop <= self.start:
            raise FieldError(f"stop must be after start ({format_duration(self.start)})", ("stop",), self.stop)
        return self


class _WindowSpec(_FaultSpec):
    start: NonNegativeDuration
    end: PositiveDuration

    @model_validator(mode="after")
    def _ordered(self) -> _WindowSpec:
        if self.end <= self.start:
            raise FieldError(f"end must be after start ({format_duration(self.start)})", ("end",), self.end)
        return self


class ConsumerOutageSpec(_WindowSpec):
    """No consumer at all in ``[start, end)``: every consumer crashes at start and restarts at end."""

    kind: Literal["consumer-outage"]


class BrokerOutageSpec(_WindowSpec):
    """The broker is down in ``[start, end)``: publishes fail (the producer's retry decides), nothing is delivered."""

    kind: Literal["broker-outage"]


class SlowdownFaultSpec(_WindowSpec):
    """Work started in ``[start, end)`` takes ``factor`` times longer (as ``consumers.slowdowns``)."""

    kind: Literal["slowdown"]
    factor: Annotated[Number, Field(gt=0)]


FaultSpec = Annotated[
    CrashSpec | ConsumerOutageSpec | BrokerOutageSpec | SlowdownFaultSpec,
    Field(discriminator="kind"),
]


def fault_stage(fault: _FaultSpec, names: list[str]) -> int:
    """The index of the stage a fault hits."""
    return 0 if fault.stage is None else names.index(fault.stage)


class StageFacts(NamedTuple):
    """What the fault rules need to know of a stage (the schema builds these; no import cycle)."""

    name: str
    concurrency: int
    scaling: bool
    """Its consumers come and go on their own (Lambda-like ``scaling``, or ``autoscale``)."""
    delivery: bool


def check_faults(faults: list[FaultSpec], stages: list[StageFacts], until: float | None) -> None:
    """Rules tying the faults to the scenario: stages exist, victims exist, a rate has an end."""
    names = [stage.name for stage in stages]
    for index, fault in enumerate(faults):
        where: tuple[str | int, ...] = ("faults", index)
        if fault.stage is not None and fault.stage not in names:
            raise FieldError(f"no stage is called {fault.stage!r}; the stages are {', '.join(names)}",
                             (*where, "stage"), fault.stage)
        stage = stages[fault_stage(fault, names)]
        if isinstance(fault, CrashSpec | ConsumerOutageSpec):
            _check_crash(fault, stage, where, until)
        elif isinstance(fault, BrokerOutageSpec) and stage.delivery:
            raise FieldError("broker outages are modelled for queue.broker kinds and plain queues, not for "
                             "queue.delivery (SQS feeding Lambda); use queue.broker: {kind: sqs}",
                             (*where, "kind"), fault.kind)


def _check_crash(fault: CrashSpec | ConsumerOutageSpec, stage: StageFacts, where: tuple[str | int, ...],
                 until: float | None) -> None:
    if stage.scaling or stage.delivery:
        what = "consumers.scaling or consumers.autoscale" if stage.scaling else "queue.delivery"
        raise FieldError(f"consumer crashes are modelled for fixed pools of consumers, not with {what}; "
                         "remove it or the fault", (*where, "kind"), fault.kind)
    concurrency = stage.concurrency
    if isinstance(fault, CrashSpec):
        victims = fault.consumers
        if isinstance(victims, int) and victims > concurrency:
            raise FieldError(f"there are only {concurrency} consumers; crash at most {concurrency} (or all)",
                             (*where, "consumers"), victims)
        if isinstance(victims, list):
            for position, consumer in enumerate(victims):
                if consumer >= concurrency:
                    raise FieldError(f"consumers are numbered 0 to {concurrency - 1}", (*where, "consumers", position),
                                     consumer)
        if fault.rate is not None and fault.stop is None and until is None:
            raise FieldError("crashes at a rate need an end: give stop (e.g. 300s) or the scenario's until",
                             (*where, "rate"), fault.rate)


def slowdowns_of(faults: list[FaultSpec], stage_index: int, names: list[str]) -> list[SlowdownSpec]:
    """The ``slowdown`` faults of one stage, as ``consumers.slowdowns`` entries."""
    return [SlowdownSpec(start=f.start, end=f.end, factor=f.factor) for f in faults
            if isinstance(f, SlowdownFaultSpec) and fault_stage(f, names) == stage_index]
