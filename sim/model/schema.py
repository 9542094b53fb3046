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

from pydantic import Field, PrivateAttr, model_validator

from sim.model import distributions
from sim.model.autoscale_specs import AutoscaleSpec, check_autoscaled_pool, check_autoscaled_stage
from sim.model.delivery_specs import (
    BatchSpec,
    CostSpec,
    DeliverySpec,
    FailureSpec,
    PollersSpec,
    RetrySpec,
    ScalingSpec,
    SlowdownSpec,
    check_timeout_retry,
)
from sim.model.policy_specs import (
    AQM_POLICIES,
    AqmSpec,
    CodelSpec,
    FailAtScaleSpec,
    LifoWhenSpec,
    ProportionalSpec,
    RedSpec,
)
from sim.model.specs import (
    DISTRIBUTIONS,
    MISSING,
    NAME_PATTERN,
    PROCESSES,
    ArrivalSpec,
    Capacity,
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
from sim.model.units import format_duration

__all__ = [
    "AQM_POLICIES",
    "DISTRIBUTIONS",
    "MISSING",
    "NAME_PATTERN",
    "PROCESSES",
    "AqmSpec",
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
    "percentile_column",
]  # fmt: skip


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

    @property
    def targets(self) -> list[str] | None:
        if self.to is None:
            return None
        return [self.to] if isinstance(self.to, str) else list(self.to)

    @property
    def unbounded(self) -> bool:
        """True when the arrivals alone never end (the scenario then needs ``until``)."""
        return math.isinf(self.arrivals.build().horizon) and getattr(self.arrivals, "count", None) is None


class QueueSpec(Strict):
    discipline: Literal["fifo", "lifo", "priority", "adaptive-lifo"] = "fifo"
    capacity: Capacity = None
    overflow: Literal["reject", "drop-oldest"] = "reject"
    on_expired: Literal["serve", "skip"] = "serve"
    lifo_when: LifoWhenSpec | None = None
    """adaptive-lifo only; default ``{wait: 100ms}``."""
    aqm: AqmSpec | None = None
    delivery: DeliverySpec | None = None
    """SQS-like broker delivery; omitted: consumers take requests straight from the queue."""
    pollers: PollersSpec | None = None

    @model_validator(mode="after")
    def _policies_fit(self) -> QueueSpec:
        if self.delivery is not None:
            if self.discipline != "fifo":
                raise FieldError("broker delivery hands out messages oldest first; use discipline: fifo",
                                 ("discipline",), self.discipline)
            if self.aqm is not None:
                raise FieldError("active queue management does not apply to broker delivery; remove aqm",
                                 ("aqm",), self.aqm.policy)
        elif self.pollers is not None:
            raise FieldError("pollers only work with broker delivery: add queue.delivery or remove pollers",
                             ("pollers",), self.pollers.model_dump())
        if self.lifo_when is not None and self.discipline != "adaptive-lifo":
            raise FieldError(
                "lifo_when is only used with discipline: adaptive-lifo; remove it or change the discipline",
                ("lifo_when",), self.lifo_when.model_dump(exclude_none=True))
        if isinstance(self.aqm, ProportionalSpec) and self.capacity is None:
            raise FieldError("proportional drop needs a bounded queue: set queue.capacity (e.g. 5)",
                             ("aqm", "policy"), "proportional")
        return self

    @property
    def switch(self) -> LifoWhenSpec:
        """The adaptive-LIFO trigger, with its default."""
        return self.lifo_when or LifoWhenSpec(wait=0.1)


class ConsumersSpec(Strict):
    """The workers: a fixed pool (all warm), or Lambda-like environments with ``scaling``."""

    concurrency: Annotated[Int, Field(ge=0, le=1_000_000)]
    """At least 1; 0 only for an autoscaled pool that may scale to zero (``autoscale.min: 0``)."""
    service: DistributionSpec | None = None
    scaling: ScalingSpec | None = None
    memory_mb: Annotated[Int, Field(ge=128, le=10240)] | None = None
    """Lambda memory, for the GB-second cost (default 1,024 when ``scaling`` is set)."""
    timeout: PositiveDuration | None = None
    """An attempt running longer than this fails (Lambda's function timeout)."""
    failure: FailureSpec | None = None
    batch: BatchSpec | None = None
    slowdowns: list[SlowdownSpec] = Field(default_factory=list)
    autoscale: AutoscaleSpec | None = None
    """A worker pool resized by an HPA-like autoscaler (:mod:`sim.model.autoscale_specs`)."""
    hourly_price: Annotated[Number, Field(ge=0)] | None = None
    """USD per consumer-hour of a worker pool (ready or starting), for ``cost_usd``."""

    @model_validator(mode="after")
    def _scaling_fits(self) -> ConsumersSpec:
        if self.scaling is not None and self.scaling.initial > self.concurrency:
            raise FieldError(f"initial environments cannot exceed concurrency ({self.concurrency})",
                             ("scaling", "initial"), self.scaling.initial)
        lambda_like = "scaling" if self.scaling is not None else "memory_mb" if self.memory_mb is not None else None
        check_autoscaled_pool(self.autoscale, self.concurrency, lambda_like=lambda_like,
                              hourly_price=self.hourly_price)
        return self

    @property
    def cap(self) -> int:
        """The most consumers at once: ``concurrency``, or an autoscaled pool's ``max``."""
        return self.autoscale.max if self.autoscale is not None else self.concurrency

    @property
    def priced(self) -> bool:
        """True when these consumers are billed like Lambda (scaling or memory given)."""
        return self.scaling is not None or self.memory_mb is not None

    @property
    def memory_gb(self) -> float:
        return (self.memory_mb or 1024) / 1024


class StageSpec(Strict):
    """One queue and its consumers; ``then`` publishes a copy of each finished request to other stages."""

    name: Name
    queue: QueueSpec = QueueSpec()
    consumers: ConsumersSpec
    then: list[Name] = Field(default_factory=list)


DEFAULT_PERCENTILES = (50.0, 90.0, 99.0, 99.9)


REQUESTS_PATTERN = r"^(auto|all|none|sample [1-9][0-9]{0,9})$"


class ReportSpec(Strict):
    percentiles: list[Annotated[Number, Field(gt=0, lt=100)]] = Field(
        default_factory=lambda: list(DEFAULT_PERCENTILES)
    )
    bucket: PositiveDuration = 1.0
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


MAX_PRODUCERS = 100
MAX_STAGES = 100
"""Producers and stages are stored as small integers in the request log (one byte each)."""


class Scenario(Strict):
    """A validated scenario. Build one with :func:`sim.load_scenario` or :func:`sim.scenario_from_dict`."""

    name: Name
    description: str = ""
    seed: Annotated[Int, Field(ge=0)] = 0
    replications: Annotated[Int, Field(ge=1)] = 1
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
        names = [percentile_column(p) for p in self.report.percentiles]
        if len(set(names)) != len(names):
            raise FieldError(
                "percentiles must differ; remove the repeated one", ("report", "percentiles"), self.report.percentiles
            )
        return self

    def _topology(self) -> list[StageSpec]:
        """The stages to build: the given ``stages``, or one stage from ``queue`` and ``consumers``."""
        if self.stages is None:
            if self.consumers is None:
                raise FieldError(
                    "required: the consumers (e.g. {concurrency: 10, service: {dist: exponential, mean: 100ms}}), "
                    "or a list of stages", ("consumers",), MISSING)
            single = StageSpec(name=SINGLE_STAGE, queue=self.queue or QueueSpec(), consumers=self.consumers)
            _check_stage(single, ())
            return [single]
        if self.consumers is not None or self.queue is not None:
            key = "consumers" if self.consumers is not None else "queue"
            raise FieldError(f"with stages, each stage has its own queue and consumers; move {key} into a stage",
                             (key,), "given")
        if not self.stages:
            raise FieldError("give at least one stage", ("stages",), [])
        index: dict[str, int] = {}
        for position, stage in enumerate(self.stages):
            if stage.name in index:
                raise FieldError(f"stages.{index[stage.name]} has the same name; give each stage its own name",
                                 ("stages", position, "name"), stage.name)
            index[stage.name] = position
            if stage.consumers.service is None:
                raise FieldError("each stage needs its service time, e.g. {dist: exponential, mean: 20ms}",
                                 ("stages", position, "consumers", "service"), MISSING)
        for position, stage in enumerate(self.stages):
            _check_stage(stage, ("stages", position))
            for offset, target in enumerate(stage.then):
                if target not in index:
                    raise FieldError(f"no stage is called {target!r}; the stages are {', '.join(index)}",
                                     ("stages", position, "then", offset), target)
        cycle = _find_cycle({stage.name: stage.then for stage in self.stages})
        if cycle:
            position = index[cycle[0]]
            raise FieldError(f"the stages form a loop ({' -> '.join(cycle)}); a request would never finish",
                             ("stages", position, "then"), self.stages[position].then)
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


def _check_stage(stage: StageSpec, where: tuple[str | int, ...]) -> None:
    """Rules that tie a stage's queue to its consumers."""
    if stage.consumers.batch is not None and stage.queue.delivery is None:
        raise FieldError("batches are handed out by broker delivery: add queue.delivery "
                         "(e.g. {visibility_timeout: 30s}) or remove batch",
                         (*where, "consumers", "batch"), stage.consumers.batch.model_dump())
    check_autoscaled_stage(stage.consumers.autoscale, stage.queue.pollers, where)


SINGLE_STAGE = "main"
"""The name of the one stage of a scenario written with ``queue`` and ``consumers``."""


def _find_cycle(edges: dict[str, list[str]]) -> list[str]:
    """A loop in the stage graph as ``[a, b, a]``, or an empty list (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node in edges:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def percentile_column(percentile: float) -> str:
    """Column suffix for a percentile: 50 -> ``p50``, 99.9 -> ``p999``."""
    text = f"{percentile:g}"
    return "p" + text.replace(".", "")
