"""Choosing a partition for each record, as Kafka clients do (reference §4).

- ``murmur2_random`` (default; also ``murmur2``/``default``): keyed records go to
  ``(murmur2(key) & 0x7fffffff) % n``, the Java client's partition for the same key; records
  without a key stick to one partition until its batch is sent (KIP-480), then move on.
- ``consistent_random``: librdkafka's default, CRC-32 of the key; null keys sticky as above.
- ``consistent``: CRC-32 of the key, null keys too (always partition 0 for them).
- ``round_robin``: every record to the next partition, key or not.
- ``random``: a random partition for every record.
- a callable ``f(topic, key, num_partitions) -> int``.
Partitioning a batch of keys happens in one native call.
"""
import random

from klog._native import partitioner as native


class Partitioner:
    def __init__(self, strategy="murmur2_random"):
        self.custom = strategy if callable(strategy) else None
        name = "custom" if self.custom else strategy
        if name in ("murmur2", "default"):
            name = "murmur2_random"
        self.name = name
        self._sticky = {}      # topic -> partition for records without a key
        self._next = {}        # topic -> next round-robin partition
        self._rand = random.Random()

    def partition(self, topic, key, n):
        """One record's partition."""
        if self.custom is not None:
            return self._checked(self.custom(topic, key, n), n)
        name = self.name
        if name == "round_robin":
            p = self._next.get(topic, 0) % n
            self._next[topic] = p + 1
            return p
        if name == "random":
            return self._rand.randrange(n)
        if key is None:
            return 0 if name == "consistent" else self.sticky(topic, n)
        if name == "murmur2_random":
            return native.partition_for_key(key, n)
        p = native.crc32_partition(key, n)
        return p if p >= 0 else (0 if name == "consistent" else self.sticky(topic, n))

    def partitions(self, topic, keys, n):
        """Partitions for a sequence of keys (natively for the built-in keyed strategies)."""
        if self.custom is None and self.name in ("murmur2_random", "consistent_random", "consistent"):
            fn = native.partition_keys if self.name == "murmur2_random" else native.crc32_partition_keys
            out = fn(keys, n)
            if any(p < 0 for p in out):
                sticky = 0 if self.name == "consistent" else self.sticky(topic, n)
                out = [sticky if p < 0 else p for p in out]
            return out
        return [self.partition(topic, k, n) for k in keys]

    def sticky(self, topic, n):
        p = self._sticky.get(topic)
        if p is None or p >= n:
            p = self._sticky[topic] = self._rand.randrange(n)
        return p

    def batch_sent(self, topic, partition, n):
        """The sticky partition's batch went out: stick to another one now (KIP-480)."""
        if self._sticky.get(topic) == partition and n > 1:
            p = self._rand.randrange(n - 1)
            self._sticky[topic] = p if p < partition else p + 1

    @staticmethod
    def _checked(p, n):
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < n:
            raise ValueError(f"custom partitioner returned {p!r}; expected an int in [0, {n})")
        return p
