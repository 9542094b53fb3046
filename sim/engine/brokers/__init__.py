"""Broker models (``queue.broker``): SQS and SQS FIFO read by workers, Kafka, RabbitMQ, Redis pub/sub, Pub/Sub.

:mod:`~sim.engine.brokers.base` has what they share (consumers, processing, crashes, outages,
hops, records); each other module is one system's rules; :mod:`~sim.engine.brokers.wiring` picks
the model by ``kind``. ``docs/brokers.md`` states every rule with its public source.
"""
