"""confluent-kafka (librdkafka) against ``klog serve``."""
import time
import uuid

import pytest

import confluent_kafka as ck
import confluent_kafka.admin  # noqa: F401  (ck.admin)

pytestmark = pytest.mark.timeout(90)


def _consume(consumer, n, timeout=20):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        m = consumer.poll(0.2)
        if m is None:
            continue
        assert m.error() is None, m.error()
        out.append(m)
    return out


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_consume_assign(server, codec):
    topic = "ck-" + codec
    p = ck.Producer({"bootstrap.servers": server.address, "compression.type": codec,
                     "linger.ms": 5})
    for i in range(100):
        p.produce(topic, value=b"v%d" % i, key=b"k%d" % i)
    assert p.flush(15) == 0
    c = ck.Consumer({"bootstrap.servers": server.address, "group.id": "unused",
                     "enable.auto.commit": False})
    c.assign([ck.TopicPartition(topic, 0, 0)])
    got = _consume(c, 100)
    assert [m.value() for m in got] == [b"v%d" % i for i in range(100)]
    assert [m.offset() for m in got] == list(range(100))
    lo, hi = c.get_watermark_offsets(ck.TopicPartition(topic, 0), timeout=10)
    assert (lo, hi) == (0, 100)
    c.close()


def test_idempotent_producer_and_group_subscribe(server):
    topic = "ck-group"
    admin = ck.admin.AdminClient({"bootstrap.servers": server.address})
    fs = admin.create_topics([ck.admin.NewTopic(topic, 2, 1)])
    fs[topic].result(10)
    p = ck.Producer({"bootstrap.servers": server.address, "enable.idempotence": True})
    for i in range(40):
        p.produce(topic, value=b"m%d" % i, partition=i % 2)
    assert p.flush(15) == 0
    group = "ckg-" + uuid.uuid4().hex[:6]
    c = ck.Consumer({"bootstrap.servers": server.address, "group.id": group,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "session.timeout.ms": 6000})
    c.subscribe([topic])
    got = _consume(c, 40, timeout=30)
    assert sorted(m.value() for m in got) == sorted(b"m%d" % i for i in range(40))
    c.commit(asynchronous=False)
    committed = c.committed([ck.TopicPartition(topic, 0), ck.TopicPartition(topic, 1)], timeout=10)
    assert [tp.offset for tp in committed] == [20, 20]
    c.close()
