"""Topic ids (KIP-516): persisted per topic and per partition directory, in Metadata v10+, by
id in Metadata v12 and Fetch v13+, CreateTopics v7, DeleteTopics v6; confluent-kafka on the
new Fetch versions."""
import os
import socket
import time
import uuid

import pytest

import confluent_kafka as ck
import confluent_kafka.admin  # noqa: F401  (ck.admin)

from klog.metadata import topic_id_base64
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey
from klog.protocol.types import ZERO_UUID
from klog.server import ServerThread, handlers
from klog.storage.partition_metadata import FILE as PARTITION_METADATA

from .rawclient import call

pytestmark = pytest.mark.timeout(120)


def _sock(server):
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _create(s, name, partitions=1, version=7):
    r = call(s, ApiKey.CREATE_TOPICS, version, {"topics": [{
        "name": name, "num_partitions": partitions, "replication_factor": 1, "assignments": [],
        "configs": []}], "timeout_ms": 10000, "validate_only": False})
    t = r["topics"][0]
    assert t["error_code"] == 0, t
    return t.get("topic_id")


def _metadata(s, topics, version=12):
    return call(s, ApiKey.METADATA, version, {"topics": topics,
                                              "allow_auto_topic_creation": False})["topics"]


def _fetch_by_id(s, topic_id, offset=0, version=13):
    r = call(s, ApiKey.FETCH, version, {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20,
        "isolation_level": 0, "session_id": 0, "session_epoch": -1,
        "topics": [{"topic_id": topic_id, "partitions": [{
            "partition": 0, "current_leader_epoch": -1, "fetch_offset": offset,
            "last_fetched_epoch": -1, "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
        "forgotten_topics_data": [], "rack_id": ""})
    return r["responses"][0]


def test_create_topics_v7_returns_the_id_metadata_and_partition_directories_keep(server):
    s = _sock(server)
    try:
        tid = _create(s, "ids", 2)
        assert tid != ZERO_UUID
        assert _create(s, "ids-old", 1, version=5) is None        # no field before v7
        [t] = _metadata(s, [{"name": "ids"}], version=10)
        assert t["topic_id"] == tid
        assert server.broker.describe_topic("ids").topic_id == str(tid)
    finally:
        s.close()
    for p in range(2):
        with open(os.path.join(server.broker.data_dir, f"ids-{p}", PARTITION_METADATA)) as f:
            # Kafka's PartitionMetadataFile: base64url of the 16 bytes, no padding
            assert f.read() == f"version: 0\ntopic_id: {topic_id_base64(str(tid))}\n"


def test_metadata_v12_by_topic_id(server):
    s = _sock(server)
    try:
        tid = _create(s, "by-id")
        [t] = _metadata(s, [{"topic_id": tid, "name": None}])
        assert (t["error_code"], t["name"], t["topic_id"]) == (0, "by-id", tid)
        assert [p["partition_index"] for p in t["partitions"]] == [0]
        missing = uuid.uuid4()
        [t] = _metadata(s, [{"topic_id": missing, "name": None}])
        assert (t["error_code"], t["name"], t["topic_id"]) == (EC.UNKNOWN_TOPIC_ID, None, missing)
        [t] = _metadata(s, [{"topic_id": tid, "name": None}], version=11)   # names required
        assert t["error_code"] == EC.INVALID_REQUEST
    finally:
        s.close()


def test_fetch_v13_addresses_topics_by_id(server):
    s = _sock(server)
    try:
        tid = _create(s, "fetch-id")
        p = ck.Producer({"bootstrap.servers": server.address})
        p.produce("fetch-id", b"hello", partition=0)
        assert p.flush(15) == 0
        for version in (13, 15, 16):
            r = _fetch_by_id(s, tid, version=version)
            assert r["topic_id"] == tid and "topic" not in r
            part = r["partitions"][0]
            assert part["error_code"] == 0 and part["high_watermark"] == 1
            assert len(part["records"]) > 0
        gone = _fetch_by_id(s, uuid.uuid4())
        assert gone["partitions"][0]["error_code"] == EC.UNKNOWN_TOPIC_ID
        assert _fetch_by_id(s, ZERO_UUID)["partitions"][0]["error_code"] == EC.UNKNOWN_TOPIC_ID
    finally:
        s.close()


def test_delete_topics_v6_by_id_and_a_recreated_topic_gets_a_new_id(server):
    s = _sock(server)
    try:
        first = _create(s, "again")
        r = call(s, ApiKey.DELETE_TOPICS, 6, {"topics": [{"name": None, "topic_id": first}],
                                              "timeout_ms": 5000})
        [res] = r["responses"]
        assert (res["error_code"], res["name"], res["topic_id"]) == (0, "again", first)
        assert not server.broker.has_topic("again")
        second = _create(s, "again")
        assert second not in (first, ZERO_UUID)
        # The old id is gone for good: Fetch and Metadata by it say so.
        assert _fetch_by_id(s, first)["partitions"][0]["error_code"] == EC.UNKNOWN_TOPIC_ID
        [t] = _metadata(s, [{"topic_id": first, "name": None}])
        assert t["error_code"] == EC.UNKNOWN_TOPIC_ID
        r = call(s, ApiKey.DELETE_TOPICS, 6, {"topics": [
            {"name": None, "topic_id": first},              # unknown id
            {"name": "again", "topic_id": second},          # both: Kafka refuses
            {"name": "again", "topic_id": ZERO_UUID}],      # by name: answers with the id
            "timeout_ms": 5000})
        codes = [(x["error_code"], x["topic_id"]) for x in r["responses"]]
        assert codes == [(EC.UNKNOWN_TOPIC_ID, first), (EC.INVALID_REQUEST, second), (0, second)]
    finally:
        s.close()


def test_stray_directory_of_a_deleted_topic_is_not_adopted(tmp_path):
    """A crash after the metadata forgot a topic but before its directories went: the re-created
    topic must start empty, not inherit the old records (partition.metadata tells them apart)."""
    data = tmp_path / "data"
    srv = ServerThread(data, {"num.partitions": 1}).start()
    try:
        p = ck.Producer({"bootstrap.servers": srv.address})
        for i in range(5):
            p.produce("stray", b"old%d" % i)
        assert p.flush(15) == 0
        old_id = srv.broker.describe_topic("stray").topic_id
    finally:
        srv.stop()
    # Simulate the crash: drop the topic from the metadata only, leave stray-0/ behind.
    import klog
    from klog.metadata import MetadataStore
    store = MetadataStore(str(data))
    topics = store.load()
    del topics["stray"]
    store.save(topics)
    assert os.path.isdir(data / "stray-0")
    with klog.open(data, {"num.partitions": 1}) as broker:
        broker.create_topic("stray", 1)
        assert broker.describe_topic("stray").topic_id != old_id
        assert broker.log("stray", 0).log_end_offset == 0
    assert not any(n.endswith(".deleted") for n in os.listdir(data))


def test_confluent_consumer_uses_fetch_by_topic_id(server, monkeypatch):
    seen = []
    fetch = handlers.HANDLERS[ApiKey.FETCH]

    async def recording_fetch(ctx, body):
        seen.append((ctx.version, [t.get("topic_id") for t in body["topics"]]))
        return await fetch(ctx, body)

    monkeypatch.setitem(handlers.HANDLERS, ApiKey.FETCH, recording_fetch)
    p = ck.Producer({"bootstrap.servers": server.address})
    for i in range(20):
        p.produce("ck-ids", b"v%d" % i)
    assert p.flush(15) == 0
    c = ck.Consumer({"bootstrap.servers": server.address, "group.id": "ck-ids",
                     "auto.offset.reset": "earliest"})
    c.subscribe(["ck-ids"])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 20:
        assert time.monotonic() < deadline, got
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    assert got == [b"v%d" % i for i in range(20)]
    tid = uuid.UUID(server.broker.describe_topic("ck-ids").topic_id)
    assert seen and all(v >= 13 for v, _ in seen), seen
    assert any(tid in ids for _, ids in seen)
