"""Schema blocks for how work is delivered and executed: Lambda-like consumers, SQS-like
broker delivery, client retries, and the prices of all that.

Rules and default numbers follow AWS's public documentation (``docs/modelling.md`` has each
with its source); where AWS does not publish a number (idle reclaim), the default is the
measured one and the docs say so.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from sim.model.specs import (
    MISSING,
    DistributionSpec,
    FieldError,
    Int,
    NonNegativeDuration,
    Number,
    PositiveDuration,
    PositiveRate,
    Strict,
)
from sim.model.units import format_duration

AWS_SCALING_WINDOW = 10.0
"""Seconds over which Lambda's current rule allows ``rate`` new environments (1,000 per 10 s)."""


class ScalingSpec(Strict):
    """Execution environments created on demand, like Lambda's.

    New environments come from a token bucket: up to ``burst`` at once, refilled at ``rate``
    continuously. The current AWS rule is ``rate: 1000/10s`` (burst defaults to rate x 10 s,
    i.e. 1,000); the legacy rule is ``burst: 3000, rate: 500/min``. A request that finds no
    warm environment and no allowance is throttled.
    """

    initial: Annotated[Int, Field(ge=0)] = 0
    rate: PositiveRate
    burst: Annotated[Int, Field(ge=1)] | None = None
    cold_start: DistributionSpec | None = None
    idle_timeout: PositiveDuration | None = 600.0
    """A warm environment idle this long is reclaimed (AWS does not publish it: 5-10 min measured)."""

    @property
    def bucket(self) -> float:
        return float(self.burst) if self.burst is not None else self.rate * AWS_SCALING_WINDOW


class FailureSpec(Strict):
    """Each processing attempt fails with this probability (a function error, not a timeout)."""

    probability: Annotated[Number, Field(ge=0, le=1)]


class BatchSpec(Strict):
    """How many messages one invocation gets (broker delivery only)."""

    size: Annotated[Int, Field(ge=1, le=10_000)] = 10
    window: NonNegativeDuration = 0.0
    partial_failures: bool = False
    """ReportBatchItemFailures: only the failed messages come back, not the whole batch."""

    @model_validator(mode="after")
    def _aws_limits(self) -> BatchSpec:
        if self.size > 10 and self.window < 1.0:
            raise FieldError("SQS allows batches above 10 only with a batching window of at least 1s; "
                             "set window: 1s or size: 10", ("size",), self.size)
        return self


class SlowdownSpec(Strict):
    """Service times of work started in ``[start, end)`` are multiplied by ``factor`` (a degraded dependency)."""

    start: NonNegativeDuration
    end: PositiveDuration
    factor: Annotated[Number, Field(gt=0)]

    @model_validator(mode="after")
    def _ordered(self) -> SlowdownSpec:
        if self.end <= self.start:
            raise FieldError(f"end must be after start ({format_duration(self.start)})", ("end",), self.end)
        return self


MIN_VISIBILITY_TIMEOUT = 1e-3
"""A message comes back at least this long after a receive: with 0, an attempt that fails at once
would be received and fail again in the same instant, forever (SQS counts whole seconds)."""


def _visible_again(value: float) -> float:
    if value < MIN_VISIBILITY_TIMEOUT:
        raise ValueError("must be at least 1ms: with 0 a message that fails at once would come back and fail "
                         "again in the same instant, forever (SQS counts it in whole seconds)")
    return value


class DeliverySpec(Strict):
    """SQS-like at-least-once delivery: receive, hide for the visibility timeout, delete on success."""

    visibility_timeout: Annotated[NonNegativeDuration, Field(le=12 * 3600), AfterValidator(_visible_again)] = 30.0
    max_receives: Annotated[Int, Field(ge=1, le=1000)] | None = None
    """After this many receives a message goes to the dead-letter queue (none: it never does)."""
    retention: PositiveDuration = 4 * 86400.0
    """Messages older than this (since sent) are deleted unprocessed: 60 s to 14 days, default 4 days."""

    @model_validator(mode="after")
    def _retention_in_range(self) -> DeliverySpec:
        if not 60 <= self.retention <= 14 * 86400:
            raise FieldError("SQS keeps messages from 60s to 14d", ("retention",), self.retention)
        return self


class PollersSpec(Strict):
    """The event source mapping's concurrent batches: ``initial``, growing by ``rate`` up to ``max``."""

    initial: Annotated[Int, Field(ge=1)] = 5
    rate: PositiveRate = 5.0
    max: Annotated[Int, Field(ge=1)] = 1000
    throttle_backoff: PositiveDuration = 1.0
    """A poller whose batch was throttled waits this long before receiving again."""

    @model_validator(mode="after")
    def _ordered(self) -> PollersSpec:
        if self.initial > self.max:
            raise FieldError(f"initial must not exceed max ({self.max})", ("initial",), self.initial)
        return self


class BudgetSpec(Strict):
    """AWS SDK standard retry quota: a bucket of tokens; a retry costs some, a success refunds."""

    tokens: Annotated[Int, Field(ge=1)] = 500
    cost: Annotated[Int, Field(ge=0)] = 5
    timeout_cost: Annotated[Int, Field(ge=0)] = 10
    refund: Annotated[Int, Field(ge=0)] = 1


RetryOn = Literal["rejected", "timeout", "failed", "dropped"]
DEFAULT_RETRY_ON: tuple[RetryOn, ...] = ("rejected", "timeout")


MAX_ATTEMPTS = 100
"""Tries per request at most (AWS SDKs default to 3); the work estimate assumes every one may be made."""


class RetrySpec(Strict):
    """A client that tries again: ``attempts`` in total, waiting ``min(cap, base * 2^n)`` (with jitter)."""

    attempts: Annotated[Int, Field(ge=1, le=MAX_ATTEMPTS)] = 3
    backoff: Literal["exponential", "constant"] = "exponential"
    base: PositiveDuration = 0.1
    throttle_base: PositiveDuration | None = None
    """The base after a throttle (HTTP 429); the AWS SDK's standard mode uses 500ms. Default: ``base``."""
    cap: PositiveDuration = 20.0
    jitter: Literal["none", "full", "equal", "decorrelated"] = "full"
    on: list[RetryOn] = Field(default_factory=lambda: list(DEFAULT_RETRY_ON))
    budget: BudgetSpec | None = None


class CostSpec(Strict):
    """List prices (us-east-1, x86) used for ``cost_usd``; override for other regions or deals."""

    lambda_request: Annotated[Number, Field(ge=0)] = 0.20 / 1_000_000
    lambda_gb_second: Annotated[Number, Field(ge=0)] = 0.0000166667
    sqs_request: Annotated[Number, Field(ge=0)] = 0.40 / 1_000_000
    sqs_fifo_request: Annotated[Number, Field(ge=0)] = 0.50 / 1_000_000
    """queue.broker kind sqs-fifo: per API call (send, receive, delete)."""
    pubsub_tib: Annotated[Number, Field(ge=0)] = 40.0
    """queue.broker kind gcp-pubsub: per TiB of throughput (published plus delivered bytes)."""


def check_timeout_retry(retry: RetrySpec | None, timeout: object, where: tuple[str | int, ...]) -> None:
    """Asking to retry on timeout needs a timeout to expire (the default ``on`` just skips it)."""
    if retry is not None and "on" in retry.model_fields_set and "timeout" in retry.on and timeout is None:
        raise FieldError("retrying on timeout needs the producer's timeout (e.g. timeout: 3s); set it or "
                         "remove timeout from retry.on", (*where, "timeout"), MISSING)
