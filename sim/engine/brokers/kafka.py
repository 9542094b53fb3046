"""A Kafka topic read by one consumer group (``docs/brokers.md``).

- **Partitions**: a keyed message goes to ``murmur2(key) % partitions`` (the default partitioner),
  an unkeyed one round robin. Messages are retained (``retention``), not deleted when consumed.
- **The group**: its members own whole partitions, dealt round robin; members beyond the
  partition count own nothing and sit idle. A member polls up to ``max_poll_records`` records from
  its partitions (in offset order within each, one partition after another, starting where the
  last poll left off) and processes them one at a time: a slow record holds up everything behind
  it in its partition.
- **Commits**: ``auto`` commits the processed offsets at a poll once ``auto_commit_interval`` has
  passed since the last commit (and, while idle, when it has); ``per-batch`` at every poll;
  ``per-message`` after every record. A member that loses a partition in a rebalance commits it
  first.
- **Crashes**: a crashed member keeps its partitions until ``session_timeout`` passes without a
  heartbeat; then the group rebalances and the new owner starts from the last committed offset,
  so every record processed after that commit is processed again (a duplicate). A member that
  restarts rejoins at once (a rebalance) and resumes from the committed offsets too.
- **Failures**: a record whose processing fails is skipped (``failed``; its offset is passed):
  retrying or dead-lettering is the application's job in Kafka.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import cast

from sim.engine.brokers.base import BrokerStage, Consumer
from sim.engine.brokers.partitions import Topic, round_robin
from sim.engine.kernel import Reusable
from sim.engine.records import DROPPED, FAILED, RETENTION
from sim.model.broker_specs import KafkaSpec


class KafkaStage(BrokerStage):
    """A Kafka topic and its consumer group (module docstring)."""

    def setup(self, spec: KafkaSpec) -> None:
        self.spec = spec
        self.topic = Topic(spec.partitions)
        count = len(self.consumers)
        self.members = set(range(count))
        self.owned: list[list[int]] = [[] for _ in range(count)]
        self.cursor = [0] * count
        self.last_commit = [0.0] * count
        self.commit_pending = [False] * count
        self.appended: list[float] = []
        """When each record was appended (the lag's history, with the commits)."""
        self.commits: tuple[list[float], list[int]] = ([], [])
        """When offsets were committed and how many messages each commit covered."""
        self.rebalance(0.0)

    def accept(self, job: int, now: float) -> None:
        """The producer appends the record to its partition; an idle owner polls at once."""
        log, topic = self.log, self.topic
        partition = topic.partition(log.key[job] if log.keyed else -1)
        topic.append(job, partition)
        self.appended.append(now)
        owner = topic.owner[partition]
        if owner >= 0:
            consumer = self.consumers[owner]
            if consumer.up and consumer.job < 0 and not consumer.buffer:
                self.start_next(consumer, now)

    def refill(self, consumer: Consumer, now: float) -> None:
        """A poll: commit as the mode says, then fetch the next records of the member's partitions."""
        index, spec = consumer.index, self.spec
        if spec.commit == "per-batch" or (spec.commit == "auto"
                                          and now - self.last_commit[index] >= spec.auto_commit_interval):
            self.commit(index, now)
        records = self.fetch(index, now)
        for job in records:
            self.hand(consumer, job, now)
        if not records and spec.commit == "auto":
            self.commit_later(consumer, now)

    def fetch(self, index: int, now: float) -> list[int]:
        """Up to ``max_poll_records``, partition after partition, from where the last poll stopped."""
        owned, topic, log = self.owned[index], self.topic, self.log
        limit, retention = self.spec.max_poll_records, self.spec.retention
        records: list[int] = []
        count = len(owned)
        for step in range(count):
            partition = owned[(self.cursor[index] + step) % count]
            messages, position = topic.log[partition], topic.position[partition]
            while position < len(messages) and len(records) < limit:
                job = messages[position]
                position += 1
                if now - log.arrival[job] > retention:
                    self.settle(job, DROPPED, now, RETENTION)  # deleted by retention before anyone read it
                else:
                    records.append(job)
            topic.position[partition] = position
            if len(records) >= limit:
                self.cursor[index] = (self.cursor[index] + step + 1) % count
                break
        return records

    def acked(self, consumer: Consumer, job: int, now: float) -> None:
        """The member's position moves past the record (committed later, as the mode says)."""
        topic = self.topic
        partition = topic.part[job]
        if topic.owner[partition] != consumer.index:
            return  # the partition moved while this record ran: its new owner reads it again
        topic.processed[partition] = max(topic.processed[partition], topic.offset[job] + 1)
        if self.spec.commit == "per-message":
            self.commit(consumer.index, now)

    def nacked(self, consumer: Consumer, job: int, now: float, reason: int) -> None:
        self.settle(job, FAILED, now, reason)
        self.acked(consumer, job, now)

    def commit(self, index: int, now: float) -> None:
        moved = self.topic.commit(self.owned[index])
        self.last_commit[index] = now
        if moved:
            self.commits[0].append(now)
            self.commits[1].append(moved)

    def commit_later(self, consumer: Consumer, now: float) -> None:
        """An idle member's auto-commit: one timer, when the interval since its last commit ends."""
        index = consumer.index
        if self.commit_pending[index] or not self.topic.uncommitted(self.owned[index]):
            return
        self.commit_pending[index] = True
        due = max(now, self.last_commit[index] + self.spec.auto_commit_interval)
        self.kernel.call_at(due, self.on_commit, (index, consumer.generation))

    def on_commit(self, event: Reusable) -> None:
        index, generation = cast(tuple[int, int], event.value)
        self.commit_pending[index] = False
        consumer = self.consumers[index]
        if consumer.up and consumer.generation == generation:
            self.commit(index, event.due)

    # --- the group ---------------------------------------------------------------------------

    def lost(self, consumer: Consumer, deliveries: list[tuple[int, int]], now: float) -> None:
        """The member stops heartbeating: the group notices when its session times out."""
        self.kernel.call_at(now + self.spec.session_timeout, self.on_session_timeout,
                            (consumer.index, consumer.generation))

    def on_session_timeout(self, event: Reusable) -> None:
        index, generation = cast(tuple[int, int], event.value)
        consumer = self.consumers[index]
        if not consumer.up and consumer.generation == generation:
            self.members.discard(index)
            self.rebalance(event.due)

    def joined(self, consumer: Consumer, now: float) -> None:
        """A restarted member rejoins and resumes its partitions from the committed offsets."""
        topic = self.topic
        for partition in self.owned[consumer.index]:
            topic.position[partition] = topic.processed[partition] = topic.committed[partition]
        self.members.add(consumer.index)
        self.last_commit[consumer.index] = now
        self.rebalance(now)

    def rebalance(self, now: float) -> None:
        """Deal the partitions to the members again; a moved partition restarts from its committed offset."""
        topic = self.topic
        owners = round_robin(list(self.members), topic.count)
        for partition, new in enumerate(owners):
            old = topic.owner[partition]
            if old == new:
                continue
            if old >= 0 and self.consumers[old].up:
                topic.commit([partition])  # a live member commits what it revokes
                self.revoke(self.consumers[old], partition)
            topic.position[partition] = topic.processed[partition] = topic.committed[partition]
            topic.owner[partition] = new
        self.owned = [[] for _ in self.consumers]
        for partition, owner in enumerate(owners):
            if owner >= 0:
                self.owned[owner].append(partition)
        for consumer in self.consumers:
            if consumer.up and consumer.job < 0:
                self.start_next(consumer, now)

    def revoke(self, consumer: Consumer, partition: int) -> None:
        """Fetched records of a partition the member gives up are dropped from its buffer."""
        part = self.topic.part
        kept = deque(entry for entry in consumer.buffer if part[entry[0]] != partition)
        consumer.outstanding -= len(consumer.buffer) - len(kept)
        consumer.buffer = kept

    def held(self) -> Iterable[int]:
        """Every record after a committed offset: it may be read (again) by the partition's owner."""
        topic = self.topic
        for partition in range(topic.count):
            yield from topic.log[partition][topic.committed[partition]:]

    def lag_events(self) -> tuple[list[float], list[float], list[int]]:
        """The consumer lag's history: records appended minus records committed, over time."""
        return self.appended, self.commits[0], self.commits[1]
