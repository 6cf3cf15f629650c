"""Which partition each record goes to: Java-compatible murmur2 for keys (checked against
kafka-python's and aiokafka's DefaultPartitioner), librdkafka's consistent_random (CRC-32),
round_robin, random, custom callables, explicit partitions, and KIP-480 sticky null keys."""
import random
import zlib
from collections import Counter

import pytest
from aiokafka.partitioner import DefaultPartitioner as AioDefaultPartitioner
from kafka.partitioner.default import DefaultPartitioner as KafkaDefaultPartitioner
from kafka.partitioner.default import murmur2 as kafka_murmur2

from klog.errors import UnknownTopicOrPartitionError

from .conftest import NEVER, batches, end_offsets, records

PARTITION_COUNTS = [1, 2, 3, 5, 8, 13, 32, 61]


class FakeCluster:
    """The bit of kafka-python's ClusterMetadata its DefaultPartitioner reads."""

    def __init__(self, topic, n):
        self.topic, self.n = topic, n

    def topics(self):
        return {self.topic}

    def partitions_for_topic(self, topic):
        return set(range(self.n))

    def available_partitions_for_topic(self, topic):
        return set(range(self.n))


def kafka_python_partition(topic, key, n):
    return KafkaDefaultPartitioner().partition(topic, key, key, None, None, FakeCluster(topic, n))


def random_keys(rng, count):
    keys = [bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 41))) for _ in range(count)]
    keys += [b"", b"kafka", b"1234", b"21", b"foobar", b"abc", b"\xff" * 7, b"\x80\x00\x00\x00"]
    return keys


def oracle_agrees(topic, key, n):
    expected = kafka_python_partition(topic, key, n)
    assert expected == AioDefaultPartitioner()(key, list(range(n)), list(range(n)))
    assert expected == (kafka_murmur2(key) & 0x7FFFFFFF) % n
    return expected


def test_oracles_match_published_murmur2_vectors():
    # reference §4 vectors, so the oracle itself is the Java function
    assert kafka_murmur2(b"kafka") == 0xD067CF64
    assert kafka_murmur2(b"1234") == 0x9FC97B14
    assert kafka_murmur2(b"") == 0x106E08D9


def test_send_keyed_partition_equals_kafka_python_default_partitioner(broker, producers):
    rng = random.Random(480)
    p = producers({"linger.ms": NEVER})
    for n in PARTITION_COUNTS:
        topic = f"keyed-{n}"
        broker.create_topic(topic, n)
        keys = random_keys(rng, 250)
        futures = [(k, p.send(topic, b"v", key=k)) for k in keys]
        p.flush()
        per_partition = Counter()
        for key, f in futures:
            md = f.get()
            assert md.partition == oracle_agrees(topic, key, n), (n, key)
            per_partition[md.partition] += 1
        # and the records really are in those partitions' logs
        for part in range(n):
            stored = [r.key for r in records(broker, topic, part)]
            assert len(stored) == per_partition[part]
            assert all(oracle_agrees(topic, k, n) == part for k in stored)


def test_send_batch_keyed_partition_equals_kafka_python_default_partitioner(broker, producers):
    rng = random.Random(794)
    p = producers()
    for n in PARTITION_COUNTS:
        topic = f"batch-{n}"
        broker.create_topic(topic, n)
        keys = random_keys(rng, 400)
        vals = [b"%d" % i for i in range(len(keys))]
        meta = p.send_batch(topic, vals, keys=keys)
        assert sum(m.count for m in meta) == len(keys)
        assert {m.partition for m in meta} <= set(range(n))
        seen = 0
        for part in range(n):
            for r in records(broker, topic, part):
                i = int(r.value)
                assert r.key == keys[i]
                assert part == oracle_agrees(topic, keys[i], n), (n, keys[i])
                seen += 1
        assert seen == len(keys)


def test_bytes_like_keys_hash_like_bytes(broker, producers):
    broker.create_topic("bl", 13)
    p = producers({"linger.ms": NEVER})
    rng = random.Random(7)
    for key in random_keys(rng, 40):
        expected = oracle_agrees("bl", key, 13)
        for variant in (bytearray(key), memoryview(key)):
            assert p.send("bl", b"v", key=variant).get().partition == expected
        meta = p.send_batch("bl", [b"v", b"w"], keys=[bytearray(key), memoryview(key)])
        assert [m.partition for m in meta] == [expected]


@pytest.mark.parametrize("name", ["murmur2_random", "murmur2", "default"])
def test_murmur2_aliases_are_java_compatible(broker, producers, name):
    broker.create_topic("alias", 7)
    p = producers({"partitioner": name, "linger.ms": NEVER})
    for key in random_keys(random.Random(name), 60):
        assert p.send("alias", b"v", key=key).get().partition == oracle_agrees("alias", key, 7)


@pytest.mark.parametrize("name", ["consistent_random", "consistent"])
def test_consistent_partitioners_equal_crc32_mod_n(broker, producers, name):
    rng = random.Random(name)
    p = producers({"partitioner": name, "linger.ms": NEVER})
    for n in (1, 3, 7, 32):
        topic = f"crc-{name}-{n}"
        broker.create_topic(topic, n)
        keys = [k for k in random_keys(rng, 200) if k]  # empty keys: see the null-key tests
        for k in keys:
            assert p.send(topic, b"v", key=k).get().partition == zlib.crc32(k) % n
        vals = [b"%d" % i for i in range(len(keys))]
        p.send_batch(topic, vals, keys=keys)
        got = {}
        for part in range(n):
            for r in records(broker, topic, part)[len([k for k in keys if zlib.crc32(k) % n == part]):]:
                got[int(r.value)] = part
        assert got == {i: zlib.crc32(k) % n for i, k in enumerate(keys)}


def test_consistent_random_differs_from_murmur2_for_some_keys(broker, producers):
    # reference §4: with default settings librdkafka and Java place the same key differently
    broker.create_topic("diff", 8)
    crc = producers({"partitioner": "consistent_random", "linger.ms": NEVER})
    mm = producers({"linger.ms": NEVER})
    keys = [b"key-%d" % i for i in range(50)]
    assert any(crc.send("diff", b"", key=k).get().partition != mm.send("diff", b"", key=k).get().partition
               for k in keys)


def test_consistent_sends_null_keys_to_partition_zero(broker, producers):
    broker.create_topic("cz", 5)
    p = producers({"partitioner": "consistent", "linger.ms": NEVER})
    for _ in range(3):
        assert {p.send("cz", b"v").get().partition for _ in range(10)} == {0}
    assert {m.partition for m in p.send_batch("cz", [b"v"] * 10)} == {0}


def test_round_robin_cycles_over_partitions_with_or_without_keys(broker, producers):
    broker.create_topic("rr", 4)
    p = producers({"partitioner": "round_robin", "linger.ms": NEVER})
    futures = [p.send("rr", b"%d" % i, key=(b"same" if i % 2 else None)) for i in range(20)]
    assert [f.get().partition for f in futures] == [i % 4 for i in range(20)]
    # send_batch continues the same cycle
    meta = p.send_batch("rr", [b"b%d" % i for i in range(8)])
    assert sorted((m.partition, m.count) for m in meta) == [(0, 2), (1, 2), (2, 2), (3, 2)]
    for part in range(4):
        vals = [r.value for r in records(broker, "rr", part)]
        assert vals == [b"%d" % i for i in range(part, 20, 4)] + [b"b%d" % part, b"b%d" % (part + 4)]
    assert p.send("rr", b"next").get().partition == 0


def test_random_partitioner_stays_in_range_and_reaches_every_partition(broker, producers):
    broker.create_topic("rnd", 3)
    p = producers({"partitioner": "random", "linger.ms": NEVER})
    parts = [p.send("rnd", b"v", key=b"k").get().partition for _ in range(300)]
    assert set(parts) == {0, 1, 2}  # not sticky, not hashed: the same key goes everywhere
    meta = p.send_batch("rnd", [b"v"] * 300)
    assert {m.partition for m in meta} == {0, 1, 2}
    assert sum(end_offsets(broker, "rnd")) == 600


def test_callable_partitioner_is_called_and_obeyed(broker, producers):
    broker.create_topic("cb", 5)
    calls = []

    def choose(topic, key, n):
        calls.append((topic, key, n))
        return 0 if key is None else len(key) % n

    p = producers({"partitioner": choose, "linger.ms": NEVER})
    assert p.send("cb", b"v", key=b"abc").get().partition == 3
    assert p.send("cb", b"v").get().partition == 0
    assert calls == [("cb", b"abc", 5), ("cb", None, 5)]
    meta = p.send_batch("cb", [b"1", b"2", b"3"], keys=[b"a", b"abcd", b"ab"])
    assert sorted((m.partition, m.count) for m in meta) == [(1, 1), (2, 1), (4, 1)]
    assert calls[2:] == [("cb", b"a", 5), ("cb", b"abcd", 5), ("cb", b"ab", 5)]
    # an explicit partition bypasses the partitioner
    assert p.send("cb", b"v", key=b"abc", partition=1).get().partition == 1
    assert len(calls) == 5


@pytest.mark.parametrize("bad", [5, 6, -1, True, False, "1", 1.0, None, [0]])
def test_callable_partitioner_bad_return_values_rejected_nothing_written(broker, producers, bad):
    broker.create_topic("bad", 5)
    p = producers({"partitioner": lambda topic, key, n: bad, "linger.ms": 0})
    with pytest.raises(ValueError, match="partitioner"):
        p.send("bad", b"v", key=b"k")
    with pytest.raises(ValueError, match="partitioner"):
        p.send("bad", b"v")
    with pytest.raises(ValueError, match="partitioner"):
        p.send_batch("bad", [b"v", b"w"], keys=[b"k", b"j"])
    p.flush()
    assert end_offsets(broker, "bad") == [0] * 5


def test_callable_partitioner_exception_propagates_nothing_written(broker, producers):
    broker.create_topic("boom", 2)

    def boom(topic, key, n):
        raise RuntimeError("no partition for you")

    p = producers({"partitioner": boom})
    with pytest.raises(RuntimeError, match="no partition"):
        p.send("boom", b"v", key=b"k")
    with pytest.raises(RuntimeError, match="no partition"):
        p.send_batch("boom", [b"v"], keys=[b"k"])
    p.flush()
    assert end_offsets(broker, "boom") == [0, 0]


def test_explicit_partition_wins_over_key_for_send_and_send_batch(broker, producers):
    broker.create_topic("ex", 3)
    p = producers({"linger.ms": NEVER})
    for part in range(3):
        assert p.send("ex", b"v", key=b"kafka", partition=part).get().partition == part
        meta = p.send_batch("ex", [b"a", b"b"], keys=[b"x", b"y"], partition=part)
        assert [(m.partition, m.count) for m in meta] == [(part, 2)]
    assert end_offsets(broker, "ex") == [3, 3, 3]


# -- null keys: KIP-480 sticky partitioning ---------------------------------------------------

@pytest.mark.parametrize("name", ["murmur2_random", "consistent_random"])
def test_null_keys_sent_together_land_in_one_partition(broker, producers, name):
    broker.create_topic("sticky", 6)
    p = producers({"partitioner": name, "linger.ms": NEVER})
    futures = [p.send("sticky", b"%d" % i) for i in range(200)]
    p.flush()
    parts = {f.get().partition for f in futures}
    assert len(parts) == 1
    (part,) = parts
    assert [r.value for r in records(broker, "sticky", part)] == [b"%d" % i for i in range(200)]
    assert len(batches(broker, "sticky", part)) == 1


def test_empty_key_is_sticky_for_consistent_random_but_hashed_for_murmur2(broker, producers):
    broker.create_topic("empty", 6)
    crc = producers({"partitioner": "consistent_random", "linger.ms": NEVER})
    f_null, f_empty = crc.send("empty", b"n"), crc.send("empty", b"e", key=b"")
    assert f_null.get().partition == f_empty.get().partition  # librdkafka: empty key = no key
    mm = producers({"linger.ms": NEVER})
    assert mm.send("empty", b"v", key=b"").get().partition == oracle_agrees("empty", b"", 6)


@pytest.mark.parametrize("name", ["murmur2_random", "consistent_random"])
def test_sticky_partition_moves_after_each_batch_kip480(broker, producers, name):
    broker.create_topic("move", 4)
    p = producers({"partitioner": name, "linger.ms": NEVER, "batch.num.messages": 10})
    futures = [p.send("move", b"%d" % i) for i in range(400)]
    p.flush()
    parts = [f.get().partition for f in futures]
    runs = [parts[i:i + 10] for i in range(0, 400, 10)]
    for run in runs:  # each batch of 10 stuck to one partition...
        assert len(set(run)) == 1
    for a, b in zip(runs, runs[1:]):  # ...and the next batch moved to another one
        assert a[0] != b[0]
    assert set(parts) == {0, 1, 2, 3}  # it keeps moving: every partition gets batches
    for part in range(4):
        assert all(h.record_count == 10 for h in batches(broker, "move", part))


def test_sticky_partition_moves_after_flush_and_after_get(broker, producers):
    broker.create_topic("mv2", 3)
    p = producers({"linger.ms": NEVER})
    last = None
    for _ in range(20):
        fs = [p.send("mv2", b"v") for _ in range(3)]
        part = fs[0].get().partition  # get() sends the open batch at once
        assert {f.get().partition for f in fs} == {part}
        assert part != last
        last = part
        fs = [p.send("mv2", b"w") for _ in range(3)]
        p.flush()
        assert {f.get().partition for f in fs} != {last}
        last = fs[0].get().partition


def test_sticky_single_partition_topic_stays_on_zero(broker, producers):
    broker.create_topic("one", 1)
    p = producers({"linger.ms": NEVER, "batch.num.messages": 3})
    assert {p.send("one", b"v").get().partition for _ in range(30)} == {0}


def test_keyed_records_do_not_disturb_null_key_stickiness(broker, producers):
    broker.create_topic("mix", 5)
    p = producers({"linger.ms": NEVER})
    nulls, keyed = [], []
    for i in range(100):
        nulls.append(p.send("mix", b"n%d" % i))
        k = b"key-%d" % i
        keyed.append((k, p.send("mix", b"k%d" % i, key=k)))
    p.flush()
    # no batch fills up here, so the null-key records all share the one sticky partition
    assert len({f.get().partition for f in nulls}) == 1
    for k, f in keyed:
        assert f.get().partition == oracle_agrees("mix", k, 5)


def test_send_batch_null_keys_one_partition_then_moves(broker, producers):
    broker.create_topic("sb", 4)
    p = producers()
    prev = None
    seen = set()
    for i in range(30):
        meta = p.send_batch("sb", [b"%d" % j for j in range(50)])
        assert len({m.partition for m in meta}) == 1
        assert sum(m.count for m in meta) == 50
        part = meta[0].partition
        assert part != prev
        prev = part
        seen.add(part)
    assert seen == {0, 1, 2, 3}


def test_send_after_send_batch_moves_off_the_batch_partition(broker, producers):
    """A send_batch completes a batch on the sticky partition, so KIP-480 moves the sticky
    partition: a following null-key send() must not land where the batch just went."""
    broker.create_topic("sbs", 4)
    p = producers({"linger.ms": NEVER})
    for _ in range(20):
        p.send("sbs", b"warm").get()
        batch_part = p.send_batch("sbs", [b"x"] * 5)[0].partition
        f = p.send("sbs", b"after")
        assert f.get().partition != batch_part
        # and the other way round: a send_batch after a sent batch moves on too
        assert p.send_batch("sbs", [b"y"])[0].partition != f.get().partition


def test_bad_explicit_partition_rejected(broker, producers):
    broker.create_topic("bp", 3)
    p = producers({"linger.ms": 0})
    for bad in (-1, 3, 100, True, "0", 1.0):
        with pytest.raises(UnknownTopicOrPartitionError):
            p.send("bp", b"v", partition=bad)
        with pytest.raises(UnknownTopicOrPartitionError):
            p.send_batch("bp", [b"v"], partition=bad)
    p.flush()
    assert end_offsets(broker, "bp") == [0, 0, 0]
