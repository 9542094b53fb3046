"""Schema block for autoscaled worker pools: ``consumers.autoscale`` (a Kubernetes HPA fed by a KEDA-like metric).

Every default is the documented one of Kubernetes' HorizontalPodAutoscaler (``autoscaling/v2``
default behaviour, 15 s sync period, 10 % tolerance) or of KEDA's ScaledObject and AWS SQS
scaler (``queueLength`` 5, ``pollingInterval`` 30 s, ``cooldownPeriod`` 300 s);
``docs/autoscaling.md`` lists each with its source. :mod:`sim.model.schema` attaches the block
to :class:`~sim.model.schema.ConsumersSpec` and calls :func:`check_autoscaled_pool`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator

from sim.model.specs import (
    MISSING,
    DistributionSpec,
    FieldError,
    Int,
    NonNegativeDuration,
    Number,
    PositiveDuration,
    Strict,
)
from sim.model.units import parse_duration

KEDA_QUEUE_LENGTH = 5.0
"""KEDA's AWS SQS scaler: ``queueLength`` (messages per replica) when not given."""

METRICS = ("backlog", "utilization", "oldest_age")


class PolicySpec(Strict):
    """One HPA scaling policy: at most ``pods`` consumers, or ``percent`` % of them, changed per ``period``."""

    pods: Annotated[Int, Field(ge=1)] | None = None
    percent: Annotated[Number, Field(gt=0)] | None = None
    period: Annotated[PositiveDuration, Field(le=1800)] = 15.0
    """HPA's ``periodSeconds``: 1 s to 30 min."""

    @model_validator(mode="after")
    def _one_kind(self) -> PolicySpec:
        if (self.pods is None) == (self.percent is None):
            given = "both" if self.pods is not None else "neither"
            raise FieldError(f"give pods (e.g. 4) or percent (e.g. 100), not {given}", ("pods",),
                             self.pods if self.pods is not None else MISSING)
        return self


def _policies(*items: dict[str, Any]) -> list[PolicySpec]:
    return [PolicySpec.model_validate(item) for item in items]


class ScalingRulesSpec(Strict):
    """HPA ``behavior`` for one direction: a stabilization window, rate policies and how they combine."""

    stabilization: Annotated[NonNegativeDuration, Field(le=3600)] = 0.0
    """HPA's ``stabilizationWindowSeconds`` (0 to 1 h)."""
    policies: list[PolicySpec] = Field(min_length=1)
    select: Literal["max", "min", "disabled"] = "max"
    """``max``: the policy allowing the largest change applies; ``min``: the smallest; ``disabled``: no change."""


class ScaleUpSpec(ScalingRulesSpec):
    """Default: no stabilization; the larger of +100 % or +4 consumers per 15 s."""

    stabilization: Annotated[NonNegativeDuration, Field(le=3600)] = 0.0
    policies: list[PolicySpec] = Field(
        default_factory=lambda: _policies({"percent": 100, "period": 15}, {"pods": 4, "period": 15}), min_length=1)


class ScaleDownSpec(ScalingRulesSpec):
    """Default: the highest recommendation of the last 300 s; down by up to 100 % per 15 s."""

    stabilization: Annotated[NonNegativeDuration, Field(le=3600)] = 300.0
    policies: list[PolicySpec] = Field(default_factory=lambda: _policies({"percent": 100, "period": 15}),
                                       min_length=1)


def _fixed_or_distribution(value: Any) -> str:
    return "distribution" if isinstance(value, dict | BaseModel) else "fixed"


Delay = Annotated[
    Annotated[NonNegativeDuration, Tag("fixed")] | Annotated[DistributionSpec, Tag("distribution")],
    Discriminator(_fixed_or_distribution),
]
"""A start-up delay: a fixed duration, or a distribution drawn per new consumer."""


class AutoscaleSpec(Strict):
    """A fixed pool whose size an HPA-like controller changes, from a KEDA-like metric.

    Every ``sync_period`` the controller reads ``metric``, computes
    ``desired = ceil(ready x metric / target)`` (no change within ``tolerance`` of the target),
    keeps the highest recommendation of the scale-down stabilization window, limits the change
    by the scaling policies and clamps to ``[min, max]``. ``min: 0`` adds KEDA's scale to zero:
    at zero consumers the queue is checked every ``polling_interval`` and one consumer is started
    when work waits; after ``cooldown_period`` without work the pool goes back to zero.
    """

    metric: Literal["backlog", "utilization", "oldest_age"] = "backlog"
    """``backlog``: messages waiting or in service per ready consumer (KEDA's SQS scaler);
    ``utilization``: busy / ready, averaged over the sync period; ``oldest_age``: seconds the
    oldest waiting message has waited."""
    target: float = KEDA_QUEUE_LENGTH
    """The metric's target: messages per consumer, a fraction (``0.7`` or ``70%``), or a duration."""
    min: Annotated[Int, Field(ge=0, le=1_000_000)] = 1
    max: Annotated[Int, Field(ge=1, le=1_000_000)]
    sync_period: PositiveDuration = 15.0
    polling_interval: PositiveDuration = 30.0
    cooldown_period: NonNegativeDuration = 300.0
    tolerance: Annotated[Number, Field(ge=0)] = 0.1
    provisioning: Delay = 0.0
    """How long a new consumer takes to start before it serves (image pull, start, readiness)."""
    scale_up: ScaleUpSpec = Field(default_factory=ScaleUpSpec)
    scale_down: ScaleDownSpec = Field(default_factory=ScaleDownSpec)

    @field_validator("target", mode="before")
    @classmethod
    def _target_in_units(cls, value: Any, info: ValidationInfo) -> float:
        """The target in the metric's own units: a count, a fraction of 1, or seconds."""
        metric = info.data.get("metric", "backlog")
        if isinstance(value, bool) or value is None:
            raise ValueError("must be a number (or, for oldest_age, a duration)")
        if metric == "oldest_age":
            seconds = parse_duration(value)
            if not seconds > 0:
                raise ValueError("must be a duration greater than 0, e.g. 30s")
            return seconds
        if metric == "utilization":
            return _fraction(value)
        if not isinstance(value, int | float) or not value > 0 or value == float("inf"):
            raise ValueError("must be a number of messages per consumer greater than 0, e.g. 5")
        return float(value)

    @model_validator(mode="before")
    @classmethod
    def _target_needed(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("metric") in ("utilization", "oldest_age") and "target" not in data:
            example = "0.7 (or 70%)" if data["metric"] == "utilization" else "30s"
            raise FieldError(f"give the target of metric {data['metric']}, e.g. {example}", ("target",), MISSING)
        return data

    @model_validator(mode="after")
    def _bounds(self) -> AutoscaleSpec:
        if self.min > self.max:
            raise FieldError(f"min must not exceed max ({self.max})", ("min",), self.min)
        return self


def _fraction(value: Any) -> float:
    """``0.7`` or ``'70%'`` as 0.7; a utilization target lies in (0, 1]."""
    text = value.strip() if isinstance(value, str) else None
    try:
        number = float(text[:-1]) / 100 if text is not None and text.endswith("%") else float(value)
    except (TypeError, ValueError):
        raise ValueError("must be a fraction of busy consumers, e.g. 0.7 or '70%'") from None
    if not 0 < number <= 1:
        raise ValueError("must be a fraction greater than 0 and at most 1, e.g. 0.7 or '70%'")
    return number


def check_autoscaled_pool(autoscale: AutoscaleSpec | None, concurrency: int, *, lambda_like: str | None,
                          hourly_price: float | None) -> None:
    """Rules tying ``autoscale`` and ``hourly_price`` to the rest of ``consumers`` (paths relative to it).

    ``lambda_like`` names the Lambda-like key given (``scaling`` or ``memory_mb``), if any.
    """
    if concurrency == 0 and (autoscale is None or autoscale.min > 0):
        raise FieldError("must be greater than or equal to 1 (0 only for an autoscaled pool with autoscale.min: 0)",
                         ("concurrency",), concurrency)
    if autoscale is not None:
        if lambda_like == "scaling":
            raise FieldError("autoscale is for worker pools; Lambda-like consumers scale by consumers.scaling: "
                             "remove one of them", ("autoscale",), "given")
        if not autoscale.min <= concurrency <= autoscale.max:
            raise FieldError(f"with autoscale, concurrency is the consumers at t = 0 and must lie between "
                             f"autoscale.min ({autoscale.min}) and autoscale.max ({autoscale.max})",
                             ("concurrency",), concurrency)
    if hourly_price is not None and lambda_like is not None:
        raise FieldError(f"hourly_price prices a worker pool per consumer-hour; consumers with {lambda_like} are "
                         "billed like Lambda (per request and GB-second): remove one of them",
                         ("hourly_price",), hourly_price)


def check_autoscaled_stage(autoscale: AutoscaleSpec | None, pollers: object, where: tuple[str | int, ...]) -> None:
    """Container consumers poll the broker for themselves: Lambda's event-source pollers do not apply."""
    if autoscale is not None and pollers is not None:
        raise FieldError("an autoscaled pool's consumers each receive for themselves when free; pollers belong "
                         "to Lambda's event source mapping: remove queue.pollers",
                         (*where, "queue", "pollers"), "given")
