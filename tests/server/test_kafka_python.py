"""kafka-python 3 (a real client) against ``klog serve``."""
import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import TopicAlreadyExistsError

pytestmark = pytest.mark.timeout(60)


def _consume(consumer, n, timeout=15):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            out.extend(records)
    return out


def test_produce_and_fetch_assign_seek(server):
    p = KafkaProducer(bootstrap_servers=server.address)   # idempotent by default: InitProducerId
    futures = [p.send("orders", key=b"k%d" % i, value=b"v%d" % i) for i in range(50)]
    p.flush()
    offsets = [f.get(timeout=10).offset for f in futures]
    assert offsets == list(range(50))
    p.close()

    c = KafkaConsumer(bootstrap_servers=server.address, enable_auto_commit=False)
    tp = TopicPartition("orders", 0)
    c.assign([tp])
    c.seek(tp, 10)
    got = _consume(c, 40)
    assert [m.offset for m in got] == list(range(10, 50))
    assert [m.value for m in got] == [b"v%d" % i for i in range(10, 50)]
    assert c.end_offsets([tp]) == {tp: 50}
    assert c.beginning_offsets([tp]) == {tp: 0}
    c.close()


def test_long_poll_wakes_on_produce(server):
    p = KafkaProducer(bootstrap_servers=server.address, enable_idempotence=False)
    p.send("lp", b"first").get(timeout=10)
    c = KafkaConsumer(bootstrap_servers=server.address, fetch_max_wait_ms=5000,
                      enable_auto_commit=False)
    tp = TopicPartition("lp", 0)
    c.assign([tp])
    c.seek(tp, 1)
    c.poll(timeout_ms=100)       # a fetch is now parked on the server
    t0 = time.monotonic()
    p.send("lp", b"second").get(timeout=10)
    got = _consume(c, 1, timeout=10)
    assert [m.value for m in got] == [b"second"]
    assert time.monotonic() - t0 < 4     # woke before max_wait_ms
    c.close()
    p.close()


def test_compression_codecs(server):
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        p = KafkaProducer(bootstrap_servers=server.address, compression_type=codec,
                          enable_idempotence=False)
        for i in range(20):
            p.send("codec-" + codec, b"%s-%d" % (codec.encode(), i))
        p.flush()
        p.close()
        c = KafkaConsumer(bootstrap_servers=server.address, enable_auto_commit=False)
        tp = TopicPartition("codec-" + codec, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        assert [m.value for m in _consume(c, 20)] == [b"%s-%d" % (codec.encode(), i) for i in range(20)]
        c.close()


def test_consumer_group_subscribe_and_commit(server):
    topic = "grp-topic"
    admin = KafkaAdminClient(bootstrap_servers=server.address)
    admin.create_topics([NewTopic(topic, 3, 1)])
    p = KafkaProducer(bootstrap_servers=server.address)
    for i in range(30):
        p.send(topic, b"m%d" % i, partition=i % 3)
    p.flush()
    p.close()

    group = "g-" + uuid.uuid4().hex[:6]
    c = KafkaConsumer(topic, bootstrap_servers=server.address, group_id=group,
                      auto_offset_reset="earliest", enable_auto_commit=False)
    got = _consume(c, 30, timeout=30)
    assert sorted(m.value for m in got) == sorted(b"m%d" % i for i in range(30))
    c.commit()
    assert c.committed(TopicPartition(topic, 1)) == 10
    c.close()

    assert group in [g["group_id"] for g in admin.list_groups()]
    offsets = admin.list_group_offsets({group: None})[group]
    assert {tp.partition: o.offset for tp, o in offsets.items()} == {0: 10, 1: 10, 2: 10}
    desc = admin.describe_groups([group])[group]
    assert desc["group_state"] == "Empty" and desc["protocol_type"] == "consumer"
    assert admin.delete_groups([group]) == {group: "OK"}
    assert group not in [g["group_id"] for g in admin.list_groups()]
    admin.close()


def test_admin_topics_configs_delete_records(server):
    admin = KafkaAdminClient(bootstrap_servers=server.address)
    admin.create_topics([NewTopic("adm", 2, 1, topic_configs={"retention.ms": "12345"})])
    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([NewTopic("adm", 2, 1)])
    assert "adm" in admin.list_topics()
    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "adm")])
    assert res["topic"]["adm"]["retention.ms"]["value"] == "12345"
    assert admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "adm",
                                               configs={"retention.ms": "999"})],
                               incremental=True) == {"topic": {"adm": "OK"}}
    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "adm",
                                                 configs={"retention.ms": None})])
    assert res["topic"]["adm"]["retention.ms"]["value"] == "999"
    p = KafkaProducer(bootstrap_servers=server.address, enable_idempotence=False)
    for i in range(10):
        p.send("adm", b"x", partition=0)
    p.flush()
    p.close()
    tp = TopicPartition("adm", 0)
    admin.delete_records({tp: 4})
    c = KafkaConsumer(bootstrap_servers=server.address, enable_auto_commit=False)
    assert c.beginning_offsets([tp]) == {tp: 4}
    c.close()
    admin.delete_topics(["adm"])
    assert "adm" not in admin.list_topics()
    admin.close()
