"""Building a brokered stage: the model ``queue.broker.kind`` names, wired as a :class:`~sim.engine.stage.Stage`."""

from __future__ import annotations

import numpy as np

from sim.engine.brokers.base import BrokerStage
from sim.engine.brokers.kafka import KafkaStage
from sim.engine.brokers.pubsub import PubSubStage
from sim.engine.brokers.rabbitmq import RabbitStage
from sim.engine.brokers.redis import RedisStage
from sim.engine.brokers.sqs import SqsStage
from sim.engine.brokers.sqs_fifo import SqsFifoStage
from sim.engine.consumers import Execution, Pool
from sim.engine.kernel import Kernel
from sim.engine.records import JobLog
from sim.engine.stage import Listener, Stage
from sim.model.schema import StageSpec

MODELS: dict[str, type[BrokerStage]] = {
    "sqs": SqsStage, "sqs-fifo": SqsFifoStage, "kafka": KafkaStage, "rabbitmq": RabbitStage,
    "redis-pubsub": RedisStage, "gcp-pubsub": PubSubStage,
}  # fmt: skip


def wire(kernel: Kernel, spec: StageSpec, log: JobLog, *, pool: Pool, execution: Execution,
         listener: Listener | None, hops: tuple[np.random.Generator, np.random.Generator]) -> Stage:
    """The stage of a ``queue.broker`` model; ``admit`` is the producer's publish.

    ``pool`` only reports the consumers' lifespans (all warm for the whole run): a broker model
    keeps its own consumers, which crash and restart with the faults timeline.
    """
    broker = spec.queue.broker
    assert broker is not None
    model = MODELS[broker.kind](kernel, spec, log, execution, listener, hops)
    model.setup(broker)
    lag = model.lag_events if isinstance(model, KafkaStage) else None
    return Stage(spec.name, spec.consumers.concurrency, model.publish, pool, model.waiting, model.serving,
                 spec.consumers.priced, lambda: model.last_end, model.invocations, model.oldest_live, faults=model,
                 lag_events=lag)
