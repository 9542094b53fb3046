"""A Kafka topic's partitions: where a key goes (murmur2), who owns what (round robin), the logs and offsets."""

from __future__ import annotations

from array import array

MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``), as a signed int.

    The default partitioner sends a keyed record to ``toPositive(murmur2(key bytes)) % partitions``.
    """
    length = len(data)
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ length) & MASK
    for start in range(0, length - length % 4, 4):
        k = data[start] | data[start + 1] << 8 | data[start + 2] << 16 | data[start + 3] << 24
        k = (k * m) & MASK
        k ^= k >> r
        k = (k * m) & MASK
        h = ((h * m) & MASK) ^ k
    tail = length & ~3
    rest = length % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & MASK
    h ^= h >> 13
    h = (h * m) & MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_of_key(key: int, partitions: int) -> int:
    """The partition of a message whose key is ``key`` (its decimal text is the key's bytes)."""
    return (murmur2(str(key).encode()) & 0x7FFFFFFF) % partitions


def round_robin(members: list[int], partitions: int) -> list[int]:
    """Partition -> owner, partitions dealt to the sorted members in turn (-1: no member)."""
    ordered = sorted(members)
    if not ordered:
        return [-1] * partitions
    return [ordered[p % len(ordered)] for p in range(partitions)]


class Topic:
    """The logs of a topic's partitions and what the consumer group knows of each.

    ``log[p]`` holds every message appended to partition ``p`` (retained, never deleted by
    consumption); ``position[p]`` is the owner's next fetch, ``processed[p]`` the offset after the
    owner's last processed record, ``committed[p]`` the group's committed offset. A message's
    partition and offset are kept by job id.
    """

    def __init__(self, partitions: int) -> None:
        self.count = partitions
        self.log: list[list[int]] = [[] for _ in range(partitions)]
        self.position = [0] * partitions
        self.processed = [0] * partitions
        self.committed = [0] * partitions
        self.owner = [-1] * partitions
        self.part = array("l")
        self.offset = array("q")
        self.keyed: dict[int, int] = {}
        self.next_unkeyed = 0

    def partition(self, key: int) -> int:
        """Keyed: murmur2 of the key; unkeyed: round robin over the partitions."""
        if key < 0:
            chosen = self.next_unkeyed
            self.next_unkeyed = (chosen + 1) % self.count
            return chosen
        found = self.keyed.get(key)
        if found is None:
            found = self.keyed[key] = partition_of_key(key, self.count)
        return found

    def append(self, job: int, partition: int) -> None:
        missing = job + 1 - len(self.part)
        if missing > 0:
            self.part.extend(array("l", [-1]) * max(missing, 4096))
            self.offset.extend(array("q", [-1]) * max(missing, 4096))
        self.part[job] = partition
        self.offset[job] = len(self.log[partition])
        self.log[partition].append(job)

    def commit(self, partitions: list[int]) -> int:
        """Commit the processed offsets of ``partitions``; return how many messages that commits."""
        moved = 0
        for p in partitions:
            if self.processed[p] > self.committed[p]:
                moved += self.processed[p] - self.committed[p]
                self.committed[p] = self.processed[p]
        return moved

    def uncommitted(self, partitions: list[int]) -> bool:
        return any(self.processed[p] > self.committed[p] for p in partitions)
