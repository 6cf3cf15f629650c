"""Leader epochs over the wire (KIP-101, KIP-320): Metadata, OffsetForLeaderEpoch, the
current_leader_epoch checks and diverging epochs of Fetch, ListOffsets; a confluent-kafka
consumer (which fences on the Metadata epoch) across a restart and a topic re-creation."""
import json
import os
import time
import uuid

import pytest

import confluent_kafka as ck
import confluent_kafka.admin  # noqa: F401  (ck.admin)

from klog.metadata import FILE as METADATA_FILE
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey
from klog.server import ServerThread

from .rawclient import call

pytestmark = pytest.mark.timeout(120)


def _sock(server):
    import socket
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _produce(server, topic, values, partition=0):
    p = ck.Producer({"bootstrap.servers": server.address, "linger.ms": 2})
    for v in values:
        p.produce(topic, value=v, partition=partition)
    assert p.flush(20) == 0


def _metadata_epochs(s, topic, version=12):
    r = call(s, ApiKey.METADATA, version, {"topics": [{"name": topic}],
                                           "allow_auto_topic_creation": False})
    t = r["topics"][0]
    assert t["error_code"] == 0, t
    return {p["partition_index"]: p["leader_epoch"] for p in t["partitions"]}, t["topic_id"]


def _fetch(s, topic, offset, version=12, current=-1, last_fetched=-1, max_wait=0, partition=0):
    r = call(s, ApiKey.FETCH, version, {
        "replica_id": -1, "max_wait_ms": max_wait, "min_bytes": 1, "max_bytes": 1 << 20,
        "isolation_level": 0, "session_id": 0, "session_epoch": -1,
        "topics": [{"topic": topic, "partitions": [{
            "partition": partition, "current_leader_epoch": current, "fetch_offset": offset,
            "last_fetched_epoch": last_fetched, "log_start_offset": -1,
            "partition_max_bytes": 1 << 20}]}],
        "forgotten_topics_data": [], "rack_id": ""})
    return r["responses"][0]["partitions"][0]


def _ofle(s, topic, epoch, current=-1, partition=0):
    r = call(s, ApiKey.OFFSET_FOR_LEADER_EPOCH, 4, {"replica_id": -1, "topics": [
        {"topic": topic, "partitions": [{"partition": partition, "current_leader_epoch": current,
                                         "leader_epoch": epoch}]}]})
    p = r["topics"][0]["partitions"][0]
    return p["error_code"], p["leader_epoch"], p["end_offset"]


def _wait(pred, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _create(server, topic, partitions=1):
    admin = ck.admin.AdminClient({"bootstrap.servers": server.address})
    admin.create_topics([ck.admin.NewTopic(topic, partitions, 1)])[topic].result(15)


def _delete(server, topic):
    admin = ck.admin.AdminClient({"bootstrap.servers": server.address})
    admin.delete_topics([topic])[topic].result(15)


# -- raw protocol ------------------------------------------------------------------------------------
def test_batches_on_disk_and_fetched_carry_the_partition_leader_epoch(server):
    _create(server, "stamp")
    epoch = server.broker.log("stamp", 0).leader_epoch
    _produce(server, "stamp", [b"a", b"b", b"c"])
    c = ck.Consumer({"bootstrap.servers": server.address, "group.id": "g-stamp",
                     "enable.auto.commit": False})
    c.assign([ck.TopicPartition("stamp", 0, 0)])
    got = []
    deadline = time.monotonic() + 20
    while len(got) < 3 and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            got.append(m)
    c.close()
    # Producers send -1; the broker stamps its epoch (confluent-kafka reads it from the batch).
    assert [m.leader_epoch() for m in got] == [epoch] * 3


def test_offset_for_leader_epoch_answers_from_the_epoch_cache(server):
    _create(server, "ofle")
    log = server.broker.log("ofle", 0)
    e0 = log.leader_epoch
    _produce(server, "ofle", [b"x"] * 3)
    log.become_leader(e0 + 2)        # as replication will: a new leader epoch at offset 3
    _produce(server, "ofle", [b"y"] * 2)
    s = _sock(server)
    try:
        assert _ofle(s, "ofle", e0 + 2) == (0, e0 + 2, 5)        # latest epoch: the log end
        assert _ofle(s, "ofle", e0) == (0, e0, 3)                # next epoch's start offset
        assert _ofle(s, "ofle", e0 + 1) == (0, e0, 3)            # largest epoch <= requested
        assert _ofle(s, "ofle", e0 + 3) == (0, -1, -1)           # above every epoch
        assert _ofle(s, "ofle", e0, current=e0 + 2) == (0, e0, 3)
        assert _ofle(s, "ofle", e0, current=e0 + 1)[0] == EC.FENCED_LEADER_EPOCH
        assert _ofle(s, "ofle", e0, current=e0 + 3)[0] == EC.UNKNOWN_LEADER_EPOCH
        assert _ofle(s, "nope", 0)[0] == EC.UNKNOWN_TOPIC_OR_PARTITION
        assert _ofle(s, "ofle", 0, partition=7)[0] == EC.UNKNOWN_TOPIC_OR_PARTITION
    finally:
        s.close()


def test_offset_for_leader_epoch_below_the_first_epoch(server):
    _create(server, "ofle-low")
    log = server.broker.log("ofle-low", 0)
    log.become_leader(4)
    _produce(server, "ofle-low", [b"x"] * 2)
    log.become_leader(6)
    s = _sock(server)
    try:
        # Below the first epoch: undefined (KIP-101), the asker falls back to its high watermark.
        assert _ofle(s, "ofle-low", 1) == (0, -1, -1)
        assert _ofle(s, "ofle-low", 5) == (0, 4, 2)
        assert _ofle(s, "ofle-low", -1) == (0, -1, -1)
    finally:
        s.close()


def test_fetch_checks_the_current_leader_epoch(server):
    _create(server, "fence")
    _produce(server, "fence", [b"x"] * 3)
    s = _sock(server)
    try:
        epochs, _ = _metadata_epochs(s, "fence")
        e = epochs[0]
        server.broker.log("fence", 0).become_leader(e + 1)
        ok = _fetch(s, "fence", 0, current=e + 1)
        assert ok["error_code"] == 0 and len(ok["records"]) > 0
        assert _fetch(s, "fence", 0, current=-1)["error_code"] == 0        # -1: no check
        old = _fetch(s, "fence", 0, current=e)
        assert old["error_code"] == EC.FENCED_LEADER_EPOCH and not old["records"]
        new = _fetch(s, "fence", 0, current=e + 2, max_wait=5000)   # answers at once
        assert new["error_code"] == EC.UNKNOWN_LEADER_EPOCH and not new["records"]
        assert _fetch(s, "fence", 0, version=8, current=e)["error_code"] == 0   # no field < v9
    finally:
        s.close()


def test_fetch_reports_a_diverging_epoch(server):
    _create(server, "diverge")
    log = server.broker.log("diverge", 0)
    e = log.leader_epoch
    _produce(server, "diverge", [b"x"] * 3)          # epoch e: offsets 0..2
    log.become_leader(e + 2)
    _produce(server, "diverge", [b"y"] * 3)          # epoch e+2: offsets 3..5
    s = _sock(server)
    try:
        # A follower that fetched up to 5 in epoch e+1 (which we never had): cut back to 3.
        r = _fetch(s, "diverge", 5, last_fetched=e + 1, max_wait=5000)
        assert r["error_code"] == 0 and r["diverging_epoch"] == {"epoch": e, "end_offset": 3}
        assert not r["records"]
        # Fetched up to 4 in epoch e: we ended epoch e at 3, so it diverges at 3.
        r = _fetch(s, "diverge", 4, last_fetched=e)
        assert r["diverging_epoch"] == {"epoch": e, "end_offset": 3} and not r["records"]
        # Consistent histories: records, no diverging epoch (the tagged field is left out).
        for offset, last in [(3, e), (5, e + 2), (0, -1)]:
            r = _fetch(s, "diverge", offset, last_fetched=last)
            assert r["diverging_epoch"] == {"epoch": -1, "end_offset": -1}, (offset, last)
            assert len(r["records"]) > 0
    finally:
        s.close()


def test_list_offsets_checks_and_returns_the_leader_epoch(server):
    _create(server, "lo-epoch")
    log = server.broker.log("lo-epoch", 0)
    e = log.leader_epoch
    _produce(server, "lo-epoch", [b"x"] * 2)
    log.become_leader(e + 1)
    _produce(server, "lo-epoch", [b"y"] * 2)
    s = _sock(server)

    def lo(ts, current=-1):
        r = call(s, ApiKey.LIST_OFFSETS, 7, {"replica_id": -1, "isolation_level": 0, "topics": [
            {"name": "lo-epoch", "partitions": [{"partition_index": 0, "timestamp": ts,
                                                 "current_leader_epoch": current}]}]})
        p = r["topics"][0]["partitions"][0]
        return p["error_code"], p["offset"], p["leader_epoch"]

    try:
        assert lo(-1) == (0, 4, e + 1)        # latest: the current epoch
        assert lo(-2) == (0, 0, e)            # earliest: the epoch that wrote offset 0
        assert lo(-1, current=e + 1) == (0, 4, e + 1)
        assert lo(-1, current=e)[0] == EC.FENCED_LEADER_EPOCH
        assert lo(-1, current=e + 5)[0] == EC.UNKNOWN_LEADER_EPOCH
    finally:
        s.close()


def test_metadata_epochs_survive_restart_and_grow_on_recreate(tmp_path):
    data = tmp_path / "data"
    srv = ServerThread(data, {"num.partitions": 2}).start()
    port = srv.port
    try:
        _create(srv, "again", 2)
        srv.broker.log("again", 1).become_leader(3)
        s = _sock(srv)
        before, id1 = _metadata_epochs(s, "again")
        s.close()
        assert before == {0: 0, 1: 3}
    finally:
        srv.stop()
    srv = ServerThread(data, {"num.partitions": 2}, port=port).start()
    try:
        s = _sock(srv)
        assert _metadata_epochs(s, "again") == (before, id1)       # a restart bumps nothing
        s.close()
        _delete(srv, "again")
        _create(srv, "again", 2)
        s = _sock(srv)
        after, id2 = _metadata_epochs(s, "again")
        s.close()
        assert id2 != id1
        assert min(after.values()) > max(before.values())          # never backwards
    finally:
        srv.stop()
    with open(data / METADATA_FILE) as f:
        assert json.load(f)["leader_epoch_floor"] == 4
    srv = ServerThread(data, {"num.partitions": 2}, port=port).start()
    try:
        s = _sock(srv)
        assert _metadata_epochs(s, "again") == (after, id2)
        s.close()
    finally:
        srv.stop()


# -- confluent-kafka (KIP-320 fencing on the Metadata epoch) ------------------------------------------
def _drain(consumer, want, timeout=45):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < want:
        assert time.monotonic() < deadline, f"got {len(got)} of {want}: {got[-3:]}"
        m = consumer.poll(0.2)
        if m is None:
            continue
        if m.error() is not None:
            assert m.error().retriable() or m.error().code() in (
                ck.KafkaError._PARTITION_EOF, ck.KafkaError._TRANSPORT,
                ck.KafkaError._ALL_BROKERS_DOWN, ck.KafkaError.UNKNOWN_TOPIC_OR_PART), m.error()
            continue
        got.append(m.value())
    return got


RECONNECT = {"reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 300,
             "topic.metadata.refresh.interval.ms": 1000}


def test_confluent_consumer_keeps_consuming_across_restart_and_recreate(tmp_path):
    data = tmp_path / "data"
    srv = ServerThread(data, {"num.partitions": 1}).start()
    port = srv.port
    topic = "fenced"
    try:
        _create(srv, topic)
        srv.broker.log(topic, 0).become_leader(2)   # a non-zero epoch the client must track
        _produce(srv, topic, [b"a%d" % i for i in range(10)])
        c = ck.Consumer({"bootstrap.servers": srv.address, "group.id": "g1",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         **RECONNECT})
        c.subscribe([topic])
        assert _drain(c, 10) == [b"a%d" % i for i in range(10)]
        # Committed, so a rejoin after the restart resumes here rather than at the earliest.
        c.commit(asynchronous=False)
        srv.stop()
        srv = ServerThread(data, {"num.partitions": 1}, port=port).start()
        _produce(srv, topic, [b"b%d" % i for i in range(10)])
        assert _drain(c, 10) == [b"b%d" % i for i in range(10)]
        c.close()

        _delete(srv, topic)
        _create(srv, topic)
        assert srv.broker.log(topic, 0).leader_epoch == 3
        c2 = ck.Consumer({"bootstrap.servers": srv.address, "group.id": "g2-" + uuid.uuid4().hex[:6],
                          "auto.offset.reset": "earliest", **RECONNECT})
        c2.subscribe([topic])
        _produce(srv, topic, [b"c%d" % i for i in range(10)])
        got = _drain(c2, 10)
        assert got == [b"c%d" % i for i in range(10)]
        c2.close()
    finally:
        srv.stop()
    assert os.path.exists(data / f"{topic}-0" / "leader-epoch-checkpoint")
