"""The native accumulator hands batches to a sink (``partition_count``, ``append``), not to a
Broker: any object with those two methods receives the producer's batches."""
from klog._native.accumulator import Accumulator
from klog.partitioner import Partitioner
from klog.producer import RecordMetadata  # noqa: F401 (sets the accumulator's metadata type)


class ListSink:
    """Collects batches in memory; offsets count up per partition."""

    def __init__(self, partitions):
        self.partitions = partitions
        self.batches = []
        self.next = {}

    def partition_count(self, topic):
        return self.partitions

    def append(self, topic, partition, values, keys, timestamps, headers, compression):
        base = self.next.get((topic, partition), 0)
        self.next[(topic, partition)] = base + len(values)
        self.batches.append((topic, partition, list(values), keys, headers, compression))
        return base


def test_batches_go_to_the_sink():
    sink = ListSink(2)
    acc = Accumulator(sink, Partitioner("murmur2_random"), 16384, 10000, 1 << 20, None, None)
    futures = [acc.send("t", b"v%d" % i, partition=i % 2) for i in range(6)]
    acc.drain()
    assert sorted((b[1], b[2]) for b in sink.batches) == [
        (0, [b"v0", b"v2", b"v4"]), (1, [b"v1", b"v3", b"v5"])]
    assert [(f.get().partition, f.get().offset) for f in futures] == \
        [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]


def test_a_failing_sink_fails_the_batch_futures():
    class Refusing(ListSink):
        def append(self, *args):
            raise OSError("disk on fire")

    acc = Accumulator(Refusing(1), Partitioner("murmur2_random"), 16384, 10000, 1 << 20, None, None)
    f = acc.send("t", b"x")
    acc.drain()
    assert isinstance(f.exception(), OSError)
