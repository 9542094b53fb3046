"""Schema blocks of a stage: its queue (discipline, capacity, policies, broker delivery), its
consumers (a pool or Lambda-like environments), and how stages chain into a pipeline.

:mod:`sim.model.schema` assembles them into a scenario; :func:`check_stages` holds the rules
that tie stages together (unique names, known targets, no loop).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from sim.model.autoscale_specs import AutoscaleSpec, check_autoscaled_pool, check_autoscaled_stage
from sim.model.broker_specs import BrokerSpec, check_broker_queue
from sim.model.delivery_specs import (
    BatchSpec,
    DeliverySpec,
    FailureSpec,
    PollersSpec,
    ScalingSpec,
    SlowdownSpec,
)
from sim.model.errors import MISSING, FieldError
from sim.model.policy_specs import AqmSpec, LifoWhenSpec, ProportionalSpec
from sim.model.specs import Capacity, DistributionSpec, Int, Name, Number, PositiveDuration, Strict


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
    broker: BrokerSpec | None = None
    """A broker model (``sim.model.broker_specs``): sqs, sqs-fifo, kafka, rabbitmq, redis-pubsub, gcp-pubsub."""

    @model_validator(mode="after")
    def _policies_fit(self) -> QueueSpec:
        check_broker_queue(self.broker, self.discipline, self.capacity, self.overflow, self.on_expired, self.aqm,
                           self.delivery)
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


def check_stage(stage: StageSpec, where: tuple[str | int, ...]) -> None:
    """Rules that tie a stage's queue to its consumers."""
    if stage.consumers.batch is not None and stage.queue.delivery is None:
        raise FieldError("batches are handed out by broker delivery: add queue.delivery "
                         "(e.g. {visibility_timeout: 30s}) or remove batch",
                         (*where, "consumers", "batch"), stage.consumers.batch.model_dump())
    check_autoscaled_stage(stage.consumers.autoscale, stage.queue.pollers, where)
    consumers = stage.consumers
    if stage.queue.broker is not None and (consumers.scaling is not None or consumers.autoscale is not None):
        key = "scaling" if consumers.scaling is not None else "autoscale"
        raise FieldError(f"broker models read with a fixed pool of consumers; remove consumers.{key} "
                         "(Lambda-like scaling is modelled with queue.delivery, autoscaling with a plain queue)",
                         (*where, "consumers", key), "given")


SINGLE_STAGE = "main"
"""The name of the one stage of a scenario written with ``queue`` and ``consumers``."""


def find_cycle(edges: dict[str, list[str]]) -> list[str]:
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


def check_stages(stages: list[StageSpec]) -> None:
    """Rules of a list of stages: unique names, a service time each, known targets, no loop."""
    if not stages:
        raise FieldError("give at least one stage", ("stages",), [])
    index: dict[str, int] = {}
    for position, stage in enumerate(stages):
        if stage.name in index:
            raise FieldError(f"stages.{index[stage.name]} has the same name; give each stage its own name",
                             ("stages", position, "name"), stage.name)
        index[stage.name] = position
        if stage.consumers.service is None:
            raise FieldError("each stage needs its service time, e.g. {dist: exponential, mean: 20ms}",
                             ("stages", position, "consumers", "service"), MISSING)
    for position, stage in enumerate(stages):
        check_stage(stage, ("stages", position))
        for offset, target in enumerate(stage.then):
            if target not in index:
                raise FieldError(f"no stage is called {target!r}; the stages are {', '.join(index)}",
                                 ("stages", position, "then", offset), target)
    cycle = find_cycle({stage.name: stage.then for stage in stages})
    if cycle:
        position = index[cycle[0]]
        raise FieldError(f"the stages form a loop ({' -> '.join(cycle)}); a request would never finish",
                         ("stages", position, "then"), stages[position].then)
