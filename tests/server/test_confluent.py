"""confluent-kafka (librdkafka) against ``klog serve``."""
import socket
import time
import uuid

import pytest

import confluent_kafka as ck
import confluent_kafka.admin  # noqa: F401  (ck.admin)

from klog.protocol.messages import ApiKey

from .rawclient import call

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


def test_admin_create_describe_alter_delete(server):
    admin = ck.admin.AdminClient({"bootstrap.servers": server.address})
    topic = "ck-admin"
    admin.create_topics([ck.admin.NewTopic(topic, 3, 1, config={"retention.ms": "60000"})])[
        topic].result(10)
    dup = admin.create_topics([ck.admin.NewTopic(topic, 1, 1)])[topic]
    with pytest.raises(ck.KafkaException) as exc:
        dup.result(10)
    assert exc.value.args[0].code() == ck.KafkaError.TOPIC_ALREADY_EXISTS
    assert len(admin.list_topics(timeout=10).topics[topic].partitions) == 3

    res = ck.admin.ConfigResource(ck.admin.ResourceType.TOPIC, topic)
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["retention.ms"].value == "60000" and not configs["retention.ms"].is_default
    assert configs["cleanup.policy"].value == "delete" and configs["cleanup.policy"].is_default

    change = ck.admin.ConfigResource(ck.admin.ResourceType.TOPIC, topic, incremental_configs=[
        ck.admin.ConfigEntry("cleanup.policy", "compact",
                             incremental_operation=ck.admin.AlterConfigOpType.SET),
        ck.admin.ConfigEntry("retention.ms", None,
                             incremental_operation=ck.admin.AlterConfigOpType.DELETE)])
    admin.incremental_alter_configs([change])[change].result(10)
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["cleanup.policy"].value == "compact"
    assert configs["retention.ms"].is_default

    bad = ck.admin.ConfigResource(ck.admin.ResourceType.TOPIC, topic, incremental_configs=[
        ck.admin.ConfigEntry("retention.ms", "soon",
                             incremental_operation=ck.admin.AlterConfigOpType.SET)])
    with pytest.raises(ck.KafkaException) as exc:
        admin.incremental_alter_configs([bad])[bad].result(10)
    assert exc.value.args[0].code() == ck.KafkaError.INVALID_CONFIG

    admin.delete_topics([topic])[topic].result(10)
    deadline = time.monotonic() + 10
    while topic in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.1)
    assert topic not in admin.list_topics(timeout=10).topics
    missing = admin.delete_topics(["ck-never"])["ck-never"]
    with pytest.raises(ck.KafkaException) as exc:
        missing.result(10)
    assert exc.value.args[0].code() == ck.KafkaError.UNKNOWN_TOPIC_OR_PART


def test_admin_describe_broker_configs(tmp_path):
    from klog.server import ServerThread

    with ServerThread(tmp_path / "d", {"num.partitions": 4, "log.retention.hours": 1}) as srv:
        admin = ck.admin.AdminClient({"bootstrap.servers": srv.address})
        res = ck.admin.ConfigResource(ck.admin.ResourceType.BROKER, "0")
        configs = admin.describe_configs([res])[res].result(10)
        assert configs["num.partitions"].value == "4" and not configs["num.partitions"].is_default
        assert configs["log.retention.ms"].value == "3600000"
        assert configs["auto.create.topics.enable"].is_default
        assert configs["num.partitions"].is_read_only
        # librdkafka waits for a broker 7 to appear in metadata; ask over a bare socket instead.
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            r = call(s, ApiKey.DESCRIBE_CONFIGS, 1, {"include_synonyms": False, "resources": [
                {"resource_type": 4, "resource_name": "7", "configuration_keys": None}]})
        assert r["results"][0]["error_code"] != 0 and "no broker '7'" in r["results"][0]["error_message"]


def test_offsets_for_times(server):
    topic = "ck-times"
    p = ck.Producer({"bootstrap.servers": server.address})
    for i in range(10):
        p.produce(topic, value=b"t%d" % i, timestamp=1_700_000_000_000 + i * 1000)
    assert p.flush(15) == 0
    c = ck.Consumer({"bootstrap.servers": server.address, "group.id": "times"})
    found = [c.offsets_for_times([ck.TopicPartition(topic, 0, ts)], timeout=10)[0].offset
             for ts in (1_700_000_003_500, 1_700_000_000_000, 1_800_000_000_000)]
    assert found == [4, 0, -1]   # -1: past the last record (OFFSET_END)
    c.assign([ck.TopicPartition(topic, 0, found[0])])
    assert [m.value() for m in _consume(c, 6)] == [b"t%d" % i for i in range(4, 10)]
    c.close()
