"""Where a new topic's replicas go: Kafka's rack-unaware spread (``AdminUtils``).

Leaders (first replicas) go round-robin over the sorted brokers from a start index; each later
replica is shifted from the first by an amount that grows every time the partitions wrap around
the brokers, so followers of one broker's leaders spread over all others. Given the same start
index and shift, the result is Kafka's, which tests check against known assignments.
"""
from __future__ import annotations

import random
from typing import Optional, Sequence

from klog.errors import InvalidPartitionsError, KlogError


class InvalidReplicationFactorError(KlogError, ValueError):
    """More replicas asked for than there are live brokers (Kafka's INVALID_REPLICATION_FACTOR)."""


def assign_replicas(partitions: int, replication_factor: int, brokers: Sequence[int], *,
                    start_index: Optional[int] = None, first_partition: int = 0,
                    shift: Optional[int] = None,
                    rng: Optional[random.Random] = None) -> dict[int, tuple[int, ...]]:
    """Partition -> replica list (the first is the preferred leader) for ``partitions`` new
    partitions numbered from ``first_partition``."""
    if partitions <= 0:
        raise InvalidPartitionsError(f"number of partitions must be larger than 0, got {partitions}")
    if replication_factor <= 0:
        raise InvalidReplicationFactorError(
            f"replication factor must be larger than 0, got {replication_factor}")
    ids = sorted(set(brokers))
    n = len(ids)
    if replication_factor > n:
        raise InvalidReplicationFactorError(
            f"replication factor: {replication_factor} larger than available brokers: {n}")
    rng = rng or random.Random()
    start = start_index if start_index is not None else rng.randrange(n)
    next_shift = shift if shift is not None else rng.randrange(n)
    out = {}
    for p in range(first_partition, first_partition + partitions):
        if p > 0 and p % n == 0:
            next_shift += 1
        first = (p + start) % n
        replicas = [ids[first]]
        for j in range(replication_factor - 1):
            replicas.append(ids[(first + 1 + (next_shift + j) % (n - 1)) % n])
        out[p] = tuple(replicas)
    return out
