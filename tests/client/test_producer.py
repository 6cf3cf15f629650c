"""Producer behaviour, one body per test, run against the embedded and the wire backend."""
import threading

import pytest

import klog
from klog import errors
from klog.client import BatchMetadata, RecordMetadata
from klog.partitioner import Partitioner

from .conftest import poll_until


def read_all(client, topic, n):
    with client.consumer(None, {"auto.offset.reset": "earliest", "enable.auto.commit": False}) as c:
        c.assign(c.partitions_for(topic))
        for tp in c.assignment():
            c.seek(tp, 0)
        return sorted(poll_until(c, n), key=lambda r: (r.partition, r.offset))


def test_send_returns_future_with_metadata_and_record_round_trips(client):
    client.create_topic("orders", 1)
    with client.producer() as p:
        fut = p.send("orders", b"v1", key=b"k1", timestamp=1_700_000_000_000,
                     headers=[("trace", b"abc"), ("empty", None)])
        md = fut.get(30)
        assert isinstance(md, RecordMetadata)
        assert (md.topic, md.partition, md.offset, md.timestamp) == \
            ("orders", 0, 0, 1_700_000_000_000)
        assert fut.done()
    [r] = read_all(client, "orders", 1)
    assert (r.topic, r.partition, r.offset, r.timestamp, r.key, r.value) == \
        ("orders", 0, 0, 1_700_000_000_000, b"k1", b"v1")
    assert r.headers == (("trace", b"abc"), ("empty", None))


def test_add_callback_gets_metadata_once_delivered(client):
    client.create_topic("t", 1)
    got = []
    done = threading.Event()
    with client.producer() as p:
        p.send("t", b"x").add_callback(lambda md: (got.append(md), done.set()))
        p.flush()
        assert done.wait(30)
        # on a future already done, the callback runs at once
        late = []
        p.send("t", b"y").add_callback(late.append).get(30)
        p.send("t", b"z").get(30)
        wait = p.send("t", b"w")
        wait.get(30)
        wait.add_callback(late.append)
    assert got[0].offset == 0 and got[0].topic == "t"
    assert [md.offset for md in late] == [1, 3]


def test_send_batch_and_flush(client):
    client.create_topic("batch", 2)
    with client.producer() as p:
        out = p.send_batch("batch", [b"a", b"b", b"c"], partition=1)
        assert all(isinstance(b, BatchMetadata) for b in out)
        assert [(b.partition, b.base_offset) for b in out][0] == (1, 0)
        assert sum(b.count for b in out) == 3
        futs = [p.send("batch", b"%d" % i, partition=0) for i in range(50)]
        p.flush()
        assert all(f.done() for f in futs)
    records = read_all(client, "batch", 53)
    assert [r.value for r in records if r.partition == 1] == [b"a", b"b", b"c"]
    assert [r.value for r in records if r.partition == 0] == [b"%d" % i for i in range(50)]


def test_keyed_records_land_on_the_murmur2_partition(client):
    """Same key, same partition on both backends, and the one Java clients pick."""
    client.create_topic("keyed", 6)
    keys = [b"user-%d" % i for i in range(30)]
    with client.producer() as p:
        mds = [p.send("keyed", b"v", key=k).get(30) for k in keys]
    expected = Partitioner("murmur2_random").partitions("keyed", keys, 6)
    assert [md.partition for md in mds] == list(expected)


def test_partitions_for(client):
    client.create_topic("parts", 3)
    with client.producer() as p:
        assert p.partitions_for("parts") == [0, 1, 2]


def test_bad_value_type_is_a_type_error(client):
    client.create_topic("t", 1)
    with client.producer() as p:
        with pytest.raises(TypeError):
            p.send("t", "not bytes")


def test_bad_producer_config_value_is_config_error(client):
    with pytest.raises(errors.ConfigError):
        client.producer({"linger.ms": "soon"})
    with pytest.raises(errors.ConfigError):
        client.producer({"acks": "most"})


def test_too_large_record_is_record_too_large(client):
    client.create_topic("big", 1, {"max.message.bytes": 2000})
    with client.producer({"max.request.size": 1_000_000}) as p:
        with pytest.raises(errors.RecordTooLargeError) as info:
            p.send("big", b"x" * 10_000).get(30)
            p.flush()
    assert info.value.error_code == 10


def test_send_to_missing_partition_fails(client):
    client.create_topic("two", 2)
    with client.producer({"delivery.timeout.ms": 3000, "request.timeout.ms": 2000}) as p:
        with pytest.raises(errors.UnknownTopicOrPartitionError):
            p.send("two", b"x", partition=5).get(30)
