"""The scenario schema: typed, immutable, strict.

This is the strict layer under the friendly YAML: every key is declared with its default
and unit, unknown keys are refused with a "did you mean", and cross-field rules (a
producer without a service time, arrivals that never stop, a stage that feeds itself) are
checked here, so the engine only ever sees a scenario that makes sense. ``sim.model.scenario``
turns validation errors into one-line messages that name the file, the field, the bad
value and the fix. Field types, distributions and arrival processes live in :mod:`sim.model.specs`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PrivateAttr, model_validator

from sim.model import distributions
from sim.model.broker_specs import KeySpec
from sim.model.delivery_specs import CostSpec, FailureSpec, RetrySpec, check_timeout_retry
from sim.model.fault_specs import FaultSpec, StageFacts, check_faults
from sim.model.policy_specs import AQM_POLICIES, CodelSpec, FailAtScaleSpec, LifoWhenSpec, ProportionalSpec, RedSpec
from sim.model.specs import (
    DISTRIBUTIONS,
    MISSING,
    NAME_PATTERN,
    PROCESSES,
    ArrivalSpec,
    DistributionSpec,
    FieldError,
    Int,
    Name,
    NonNegativeDuration,
    Number,
    PositiveDuration,
    Strict,
    Timeout,
)
from sim.model.stage_specs import SINGLE_STAGE, ConsumersSpec, QueueSpec, StageSpec, check_stage, check_stages
from sim.model.units import format_duration

__all__ = [
    "AQM_POLICIES",
    "DISTRIBUTIONS",
    "EXPERIMENT_KEYS",
    "MISSING",
    "NAME_PATTERN",
    "PROCESSES",
    "SINGLE_STAGE",
    "ArrivalSpec",
    "CodelSpec",
    "ConsumersSpec",
    "DistributionSpec",
    "FailAtScaleSpec",
    "FieldError",
    "LifoWhenSpec",
    "ProducerSpec",
    "ProportionalSpec",
    "QueueSpec",
    "RedSpec",
    "ReportSpec",
    "Scenario",
    "StageSpec",
    "percentile_column",
]  # fmt: skip

EXPERIMENT_KEYS = ("sweep", "precision", "plan", "evaluate")
"""Experiment-level keys: they say how to run a scenario (a grid of points, a stopping rule, a
capacity plan, the brokers ``qsim evaluate`` compares), not what it is, so they are not fields of
:class:`Scenario`. They are set aside before the scenario is validated; :mod:`sim.experiments.sweep`
(and :mod:`sim.experiments.evaluate`) reads them."""


# --- the blocks of a scenario ---------------------------------------------------------------


class ProducerSpec(Strict):
    """A source of requests (a client population, a traffic class)."""

    name: Name = "clients"
    arrivals: ArrivalSpec
    timeout: Timeout | None = None
    priority: Annotated[Int, Field(ge=0, le=9)] | None = None
    service: DistributionSpec | None = None
    to: Name | list[Name] | None = None
    """The stage(s) its requests are published to (a list is a topic: one copy each); default the first."""
    retry: RetrySpec | None = None
    failure: FailureSpec | None = None
    """Its requests' processing also fails with this probability (1.0: poison messages that always fail)."""
    key: KeySpec | None = None
    """Message keys (Kafka partitions, FIFO message groups, ordering keys); none: messages have no key."""

    @property
    def targets(self) -> list[str] | None:
        if self.to is None:
            return None
        return [self.to] if isinstance(self.to, str) else list(self.to)

    @property
    def unbounded(self) -> bool:
        """True when the arrivals alone never end (the scenario then needs ``until``)."""
        return math.isinf(self.arrivals.build().horizon) and getattr(self.arrivals, "count", None) is None


DEFAULT_PERCENTILES = (50.0, 90.0, 99.0, 99.9)


MIN_BUCKET = 1e-6
"""The finest time-series bucket: one microsecond, the smallest unit a duration takes."""


def _bucket(value: float) -> float:
    if value < MIN_BUCKET:
        raise ValueError("must be at least 1us (the finest time unit); a run longer than 20,000 buckets gets "
                         "a wider one anyway")
    return value


REQUESTS_PATTERN = r"^(auto|all|none|sample [1-9][0-9]{0,9})$"


class ReportSpec(Strict):
    percentiles: list[Annotated[Number, Field(gt=0, lt=100)]] = Field(
        default_factory=lambda: list(DEFAULT_PERCENTILES)
    )
    bucket: Annotated[PositiveDuration, AfterValidator(_bucket)] = 1.0
    requests: Annotated[str, Field(pattern=REQUESTS_PATTERN)] = "auto"
    """Per-request rows kept: ``all``, ``none`` (streaming statistics only), ``sample N`` (a uniform
    sample) or ``auto`` (all when they fit comfortably in memory: see :mod:`sim.model.keeping`)."""

    @property
    def kept(self) -> int | None:
        """Rows of requests to keep: None for all (and ``auto``: see :func:`sim.model.keeping.requests_kept`,
        which decides for a whole scenario), 0 for none, N for a sample."""
        if self.requests in ("all", "auto"):
            return None
        return 0 if self.requests == "none" else int(self.requests.split()[1])


MAX_REPLICATIONS = 10_000
"""Replications of one scenario at most (a stopping rule or a plan is bound by it too)."""
MAX_PRODUCERS = 100
MAX_STAGES = 100
"""Producers and stages are stored as small integers in the request log (one byte each)."""


class Scenario(Strict):
    """A validated scenario. Build one with :func:`sim.load_scenario` or :func:`sim.scenario_from_dict`."""

    also_allowed = EXPERIMENT_KEYS

    name: Name
    description: str = ""
    seed: Annotated[Int, Field(ge=0)] = 0
    replications: Annotated[Int, Field(ge=1, le=MAX_REPLICATIONS)] = 1
    until: PositiveDuration | None = None
    warmup: NonNegativeDuration | Literal["auto"] = 0.0
    """Seconds to leave out of request statistics, or ``auto`` (MSER-5 on the time series)."""
    producers: list[ProducerSpec] = Field(min_length=1, max_length=MAX_PRODUCERS)
    queue: QueueSpec | None = None
    consumers: ConsumersSpec | None = None
    stages: Annotated[list[StageSpec], Field(max_length=MAX_STAGES)] | None = None
    report: ReportSpec = ReportSpec()
    cost: CostSpec = CostSpec()
    engine: Literal["auto", "simpy", "compiled"] = "auto"
    """Which engine runs it (``sim.model.engines``): both give the same records, request for request."""
    faults: list[FaultSpec] = Field(default_factory=list)
    """The faults timeline (``sim.model.fault_specs``): crashes, outages, slow periods."""

    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)
    _source: Path | None = PrivateAttr(default=None)

    _stages: list[StageSpec] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        self._stages = self._topology()
        stage_index = {stage.name: index for index, stage in enumerate(self._stages)}
        seen: dict[str, int] = {}
        for index, producer in enumerate(self.producers):
            if producer.name in seen:
                raise FieldError(
                    f"producers.{seen[producer.name]} has the same name; give each producer its own name",
                    ("producers", index, "name"),
                    producer.name,
                )
            seen[producer.name] = index
            self._check_producer(index, producer, stage_index)
        classes = [(("stages", i) if self.stages else (), stage.queue.aqm) for i, stage in enumerate(self._stages)]
        for prefix, aqm in classes:
            if isinstance(aqm, RedSpec | ProportionalSpec) and aqm.classes:
                for position, name in enumerate(aqm.classes):
                    if name not in seen:
                        raise FieldError(
                            f"no producer is called {name!r}; the producers are {', '.join(seen)}",
                            (*prefix, "queue", "aqm", "classes", position),
                            name,
                        )
        if self.until is not None and self.warmup != "auto" and self.warmup >= self.until:
            raise FieldError(
                f"warmup must end before until ({format_duration(self.until)}); shorten it or raise until",
                ("warmup",),
                self.warmup,
            )
        facts = [StageFacts(stage.name, stage.consumers.concurrency,
                            stage.consumers.scaling is not None or stage.consumers.autoscale is not None,
                            stage.queue.delivery is not None) for stage in self._stages]
        check_faults(self.faults, facts, self.until)
        self._check_percentiles()
        if self.report.kept is not None and self.streaming_unsupported:
            raise FieldError(f"streaming statistics do not cover {self.streaming_unsupported} yet (their order, lag "
                             "and loss measures need every row); use report.requests: all (or auto)",
                             ("report", "requests"), self.report.requests)
        return self

    @property
    def streaming_unsupported(self) -> str | None:
        """What in this scenario needs every request's row (``report.requests: all``), or None."""
        if any(stage.queue.broker is not None for stage in self._stages):
            return "broker models (queue.broker)"
        if self.faults:
            return "the faults timeline"
        if any(producer.key is not None for producer in self.producers):
            return "message keys (a producer's key)"
        return None

    def _check_percentiles(self) -> None:
        """Each percentile names its own column: 99.9 and 9.99 would both be ``latency_p999``."""
        names = [percentile_column(p) for p in self.report.percentiles]
        if len(set(names)) != len(names):
            raise FieldError(
                "percentiles must differ; remove the repeated one", ("report", "percentiles"), self.report.percentiles
            )
        for index, percentile in enumerate(self.report.percentiles):
            for other in DEFAULT_PERCENTILES:
                if percentile != other and percentile_column(percentile) == percentile_column(other):
                    raise FieldError(f"its column would be latency_{percentile_column(other)}, the column of the "
                                     f"{other:g}th percentile (always reported); choose another percentile",
                                     ("report", "percentiles", index), percentile)

    def _topology(self) -> list[StageSpec]:
        """The stages to build: the given ``stages``, or one stage from ``queue`` and ``consumers``."""
        if self.stages is None:
            if self.consumers is None:
                raise FieldError(
                    "required: the consumers (e.g. {concurrency: 10, service: {dist: exponential, mean: 100ms}}), "
                    "or a list of stages", ("consumers",), MISSING)
            single = StageSpec(name=SINGLE_STAGE, queue=self.queue or QueueSpec(), consumers=self.consumers)
            check_stage(single, ())
            return [single]
        if self.consumers is not None or self.queue is not None:
            key = "consumers" if self.consumers is not None else "queue"
            raise FieldError(f"with stages, each stage has its own queue and consumers; move {key} into a stage",
                             (key,), "given")
        check_stages(self.stages)
        return list(self.stages)

    def _check_producer(self, index: int, producer: ProducerSpec, stage_index: dict[str, int]) -> None:
        if producer.retry is not None:
            if self.stages is not None:
                raise FieldError("client retries are modelled for single-stage scenarios (queue + consumers); "
                                 "remove retry or the stages", ("producers", index, "retry"), "given")
            check_timeout_retry(producer.retry, producer.timeout, ("producers", index))
        if self.stages is not None and producer.service is not None:
            raise FieldError("with stages, service times belong to each stage's consumers; remove it here",
                             ("producers", index, "service"), producer.service.dist)
        if self.stages is None and producer.service is None and self.consumers and self.consumers.service is None:
            raise FieldError(
                "no service time for this producer's requests: set consumers.service "
                "(e.g. {dist: exponential, mean: 500ms}), or service on this producer",
                ("producers", index, "service"),
                MISSING,
            )
        for offset, target in enumerate(producer.targets or []):
            if target not in stage_index:
                where = ("producers", index, "to") + ((offset,) if isinstance(producer.to, list) else ())
                known = ", ".join(stage_index) if self.stages else "none: to needs stages"
                raise FieldError(f"no stage is called {target!r}; the stages are {known}", where, target)
        disciplines = {stage.queue.discipline for stage in self._stages}
        if producer.priority is not None and "priority" not in disciplines:
            raise FieldError(
                "priority is only used with queue.discipline: priority; remove it or change the discipline",
                ("producers", index, "priority"),
                producer.priority,
            )
        if self.until is None and producer.unbounded:
            raise FieldError(
                "these arrivals never stop; give them stop (e.g. 60s) or count, or give the scenario until",
                ("producers", index, "arrivals"),
                producer.arrivals.process,
            )

    @property
    def stage_list(self) -> list[StageSpec]:
        """The stages the engine builds; a single-stage scenario has one called ``main``."""
        return self._stages

    def entry_stages(self, producer: ProducerSpec) -> list[int]:
        """Indexes of the stages a producer publishes to."""
        names = [stage.name for stage in self._stages]
        return [names.index(target) for target in (producer.targets or [names[0]])]

    def service_at(self, stage: int, producer: ProducerSpec) -> distributions.Distribution:
        """The service-time distribution of ``producer``'s requests at ``stage``."""
        spec = (producer.service if self.stages is None else None) or self._stages[stage].consumers.service
        assert spec is not None  # guaranteed by _consistent
        return spec.build()

    @property
    def source(self) -> Path | None:
        """The file this scenario was read from, if any."""
        return self._source

    @property
    def raw(self) -> dict[str, Any]:
        """The scenario as written (after ``--set`` overrides), before validation."""
        return self._raw

    def service_of(self, producer: ProducerSpec) -> distributions.Distribution:
        """The service-time distribution of ``producer``'s requests at its first stage."""
        return self.service_at(self.entry_stages(producer)[0], producer)

    @property
    def concurrency(self) -> int:
        """Consumers across all stages, at most (an autoscaled pool counts its ``max``)."""
        return sum(stage.consumers.cap for stage in self._stages)


def percentile_column(percentile: float) -> str:
    """Column suffix for a percentile: 50 -> ``p50``, 99.9 -> ``p999``."""
    text = f"{percentile:g}"
    return "p" + text.replace(".", "")
