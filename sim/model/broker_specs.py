"""Schema blocks for the broker models: ``queue.broker`` (one of six kinds) and producer ``key``.

Each kind follows its system's public documentation; ``docs/brokers.md`` gives every rule and
default with its source. The block is a discriminated union on ``kind``, so a typo in the kind
is a one-line error listing the kinds, and each kind refuses the keys of the others.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BeforeValidator, Field, model_validator

from sim.model.specs import (
    DistributionSpec,
    FieldError,
    Int,
    NonNegativeDuration,
    Number,
    PositiveDuration,
    PositiveRate,
    Strict,
)

BROKER_KINDS = ("sqs", "sqs-fifo", "kafka", "rabbitmq", "redis-pubsub", "gcp-pubsub")

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1024, "kib": 1024, "mb": 1024**2, "mib": 1024**2, "gb": 1024**3, "gib": 1024**3}


def parse_size(value: object) -> float:
    """Bytes from ``1024``, ``'1kb'``, ``'32mb'`` (binary units, as redis.conf reads them: 1mb = 1024 x 1024)."""
    if isinstance(value, bool):
        raise ValueError("must be a size such as 32mb or 1kb, not true/false")
    size = math.nan
    if isinstance(value, int | float):
        size = float(value)
    elif isinstance(value, str) and (found := _SIZE.match(value)):
        size = float(found.group(1)) * _SIZE_UNITS[(found.group(2) or "b").lower()]
    if math.isfinite(size):
        return size
    raise ValueError("must be a size in bytes, or with a unit: b, kb, mb, gb (e.g. 32mb)")


Size = Annotated[float, BeforeValidator(parse_size), Field(gt=0)]
"""A size in bytes (binary units)."""


def format_size(size: float) -> str:
    """``33554432`` -> ``32mb``: the largest binary unit that divides it, else bytes."""
    for unit in ("gb", "mb", "kb"):
        if size >= _SIZE_UNITS[unit] and size % _SIZE_UNITS[unit] == 0:
            return f"{size / _SIZE_UNITS[unit]:g}{unit}"
    return f"{size:g}b"


class KeySpec(Strict):
    """Message keys drawn per request: ``count`` distinct keys, Zipf-like with exponent ``skew`` (0: uniform).

    Key ``k`` (0-based) is drawn with probability proportional to ``1 / (k + 1) ** skew``, from the
    producer's own random stream: every broker sees the same keys. Keys place messages in Kafka
    partitions, SQS FIFO message groups and Pub/Sub ordering keys, and define the per-key order.
    """

    count: Annotated[Int, Field(ge=1, le=10_000_000)]
    skew: Annotated[Number, Field(ge=0, le=10)] = 0.0

    def build(self) -> ZipfKeys:
        return ZipfKeys(self.count, self.skew)


class ZipfKeys:
    """Draws keys ``0 .. count-1`` with probability proportional to ``1 / (k + 1) ** skew``, in blocks."""

    def __init__(self, count: int, skew: float) -> None:
        self.count = count
        weights = 1.0 / np.arange(1, count + 1, dtype=float) ** skew
        self.cdf = np.cumsum(weights / weights.sum())
        self.cdf[-1] = 1.0

    def probabilities(self) -> NDArray[np.float64]:
        """The probability of each key (for tests and docs)."""
        return np.diff(self.cdf, prepend=0.0)

    def sample(self, rng: np.random.Generator, size: int) -> NDArray[np.int64]:
        keys: NDArray[np.int64] = np.searchsorted(self.cdf, rng.random(size), side="right").astype(np.int64)
        return np.minimum(keys, self.count - 1)


class LatencySpec(Strict):
    """Broker hops: producer -> broker (``publish``) and broker -> consumer (``deliver``)."""

    publish: DistributionSpec | None = None
    deliver: DistributionSpec | None = None


class _BrokerSpec(Strict):
    latency: LatencySpec | None = None


class SqsSpec(_BrokerSpec):
    """An SQS standard queue read by a pool of workers (each long-polls, receives, processes, deletes)."""

    kind: Literal["sqs"]
    visibility_timeout: Annotated[NonNegativeDuration, Field(le=12 * 3600)] = 30.0
    max_receives: Annotated[Int, Field(ge=1, le=1000)] | None = None
    retention: Annotated[PositiveDuration, Field(ge=60, le=14 * 86400)] = 4 * 86400.0
    batch: Annotated[Int, Field(ge=1, le=10)] = 1
    """MaxNumberOfMessages per ReceiveMessage (1 to 10)."""


class SqsFifoSpec(SqsSpec):
    """An SQS FIFO queue: message groups (the producer's key) in strict order, one batch in flight per group."""

    kind: Literal["sqs-fifo"]  # type: ignore[assignment]
    api_rate: PositiveRate | None = 300.0
    """API calls per second per action (SendMessage, ReceiveMessage); none: high-throughput mode, unlimited."""
    dedup_window: PositiveDuration = 300.0
    """A client's retry of a message sent less than this ago is accepted but not delivered again."""


class KafkaSpec(_BrokerSpec):
    """A Kafka topic with ``partitions`` read by one consumer group (the consumers)."""

    kind: Literal["kafka"]
    partitions: Annotated[Int, Field(ge=1, le=100_000)] = 1
    max_poll_records: Annotated[Int, Field(ge=1, le=1_000_000)] = 500
    commit: Literal["auto", "per-batch", "per-message"] = "auto"
    """``auto``: enable.auto.commit (at a poll, once auto_commit_interval has passed); ``per-batch``:
    commitSync after each poll's records; ``per-message``: after each record."""
    auto_commit_interval: PositiveDuration = 5.0
    session_timeout: PositiveDuration = 45.0
    retention: PositiveDuration = 7 * 86400.0


class RabbitSpec(_BrokerSpec):
    """A RabbitMQ queue pushing to consumers with a prefetch count and manual acks."""

    kind: Literal["rabbitmq"]
    prefetch: Annotated[Int, Field(ge=0, le=65535)] = 0
    """Unacknowledged messages per consumer; 0 is unlimited (RabbitMQ's meaning of 0)."""
    max_length: Annotated[Int, Field(ge=0)] | None = None
    overflow: Literal["drop-head", "reject-publish", "reject-publish-dlx"] = "drop-head"
    message_ttl: NonNegativeDuration | None = None
    dead_letter: bool = False
    """A dead-letter exchange is configured: expired, overflowed and rejected messages go there."""
    on_failure: Literal["requeue", "reject"] = "requeue"
    """A failed processing nacks the message: back to the queue (requeue) or not (reject)."""
    delivery_limit: Annotated[Int, Field(ge=1)] | None = None
    """Quorum queues: a message returned this many times is dead-lettered (or dropped)."""
    ack_timeout: PositiveDuration = 1800.0
    """consumer_timeout: a delivery not acknowledged this long closes the consumer's channel."""


class RedisSpec(_BrokerSpec):
    """Redis pub/sub: one subscribing application whose consumers share its connection."""

    kind: Literal["redis-pubsub"]
    message_bytes: Size = 1024.0
    buffer_hard: Size = 32.0 * 1024**2
    buffer_soft: Size = 8.0 * 1024**2
    soft_seconds: PositiveDuration = 60.0
    reconnect: NonNegativeDuration = 1.0
    """How long a disconnected subscriber takes to subscribe again (messages published meanwhile are lost)."""

    @model_validator(mode="after")
    def _limits_ordered(self) -> RedisSpec:
        if self.buffer_soft > self.buffer_hard:
            raise FieldError(f"the soft limit ({format_size(self.buffer_soft)}) must not exceed buffer_hard "
                             f"({format_size(self.buffer_hard)}); lower buffer_soft or raise buffer_hard",
                             ("buffer_soft",), format_size(self.buffer_soft))
        return self


class PubSubSpec(_BrokerSpec):
    """A Google Cloud Pub/Sub subscription read by streaming-pull subscribers (the consumers)."""

    kind: Literal["gcp-pubsub"]
    ack_deadline: Annotated[PositiveDuration, Field(ge=10, le=600)] = 10.0
    lease_extension: bool = True
    """The client library extends each lease until ``max_lease`` (the high-level clients do by default)."""
    max_lease: PositiveDuration = 3600.0
    max_delivery_attempts: Annotated[Int, Field(ge=5, le=100)] | None = None
    """With a dead-letter topic: forward a message after this many delivery attempts (none: no dead-letter topic)."""
    max_outstanding: Annotated[Int, Field(ge=1, le=1_000_000)] = 1000
    """Flow control: messages a subscriber holds unacknowledged."""
    ordering: bool = False
    retention: Annotated[PositiveDuration, Field(ge=600, le=31 * 86400)] = 7 * 86400.0
    message_bytes: Size = 1024.0


BrokerSpec = Annotated[
    SqsSpec | SqsFifoSpec | KafkaSpec | RabbitSpec | RedisSpec | PubSubSpec,
    Field(discriminator="kind"),
]


def check_broker_queue(broker: object, discipline: str, capacity: int | None, overflow: str, on_expired: str,
                       aqm: object, delivery: object) -> None:
    """Refuse queue settings a broker model replaces with its own rules (one line each)."""
    if broker is None:
        return
    if delivery is not None:
        raise FieldError("choose one: delivery (SQS feeding Lambda pollers) or broker; remove one of them",
                         ("delivery",), "given")
    if discipline != "fifo":
        raise FieldError("a broker hands out messages by its own rules; use discipline: fifo",
                         ("discipline",), discipline)
    if aqm is not None:
        raise FieldError("active queue management does not apply to a broker; remove aqm", ("aqm",), "given")
    if capacity is not None:
        raise FieldError("a broker bounds its queue by its own rules (rabbitmq: max_length); remove capacity",
                         ("capacity",), capacity)
    if overflow != "reject":
        raise FieldError("a broker has its own overflow rule (rabbitmq: overflow); remove overflow",
                         ("overflow",), overflow)
    if on_expired != "serve":
        raise FieldError("a broker delivers expired messages like any other (see rabbitmq message_ttl); "
                         "remove on_expired", ("on_expired",), on_expired)
