"""Three ``klog serve --zookeeper`` processes on 127.0.0.1/2/3 and a real ZooKeeper: replication,
failover and the wire answers of cluster mode, with real clients (confluent-kafka) and raw
requests."""
import glob
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from klog.group.offsets import partition_for
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey

from .brokers import QUIET, Cluster, call, create_topic, wait_for  # noqa: F401 - see below
from .conftest import cluster, make_cluster  # noqa: F401 - see below
from .zookeeper import free_port

# The helpers and fixtures live in brokers.py and conftest.py now; other test modules that import
# them from here (Cluster, cluster, make_cluster, call, ...) keep working.


def batches(path, below=None):
    """[(base offset, batch bytes)] of the partition's segment files, optionally only those
    whose last offset is below ``below``."""
    out = []
    for seg in sorted(glob.glob(os.path.join(path, "*.log"))):
        data = open(seg, "rb").read()
        pos = 0
        while pos + 61 <= len(data):
            size = 12 + int.from_bytes(data[pos + 8:pos + 12], "big")
            base = int.from_bytes(data[pos:pos + 8], "big")
            last = base + int.from_bytes(data[pos + 23:pos + 27], "big")
            if size < 61 or pos + size > len(data):
                break
            if below is None or last < below:
                out.append((base, data[pos:pos + size]))
            pos += size
    return out


def test_acks_all_survives_leader_sigkill_with_every_acknowledged_value_once(cluster):
    """acks=all + idempotence to a replication-factor-3 topic; the leader is SIGKILLed mid-run;
    production goes on after failover; a consumer reads every acknowledged value exactly once;
    the replicas hold the same batch bytes up to the high watermark, also the restarted old
    leader after it caught up (and cut whatever it had that was never committed)."""
    c = cluster
    create_topic(c, "orders")
    leader = c.partition(1, "orders")["leader_id"]
    producer = Producer({"bootstrap.servers": c.bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 2,
                         "message.timeout.ms": 45000, **QUIET})
    acked, failed = [], []
    stop = threading.Event()

    def report(err, msg):
        (failed if err else acked).append(err or msg.value().decode())

    def produce():                               # small batches, all through the failover
        i = 0
        while not stop.is_set():
            for _ in range(5):
                producer.produce("orders", f"v{i}".encode(), callback=report)
                i += 1
            producer.poll(0.005)

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        wait_for("some acknowledgements", lambda: len(acked) > 200, 30)
        cluster.kill(leader)                     # SIGKILL: nothing handed over
        before_kill = len(acked)
        wait_for("acknowledgements after the failover", lambda: len(acked) > before_kill + 300,
                 45)
    finally:
        stop.set()
        thread.join()
    assert producer.flush(45) == 0, f"unflushed; failures {failed[:3]}\n{c.log_output()}"
    assert not failed, failed[:5]

    survivors = sorted(c.procs)
    p = c.partition(survivors[0], "orders")
    assert p["leader_id"] in survivors and p["leader_epoch"] >= 1
    assert p["offline_replicas"] == [leader] and leader not in p["isr_nodes"]
    md = c.metadata(survivors[0])
    assert sorted(b["node_id"] for b in md["brokers"]) == survivors
    assert md["controller_id"] in survivors

    consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": "check",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", **QUIET})
    try:
        consumer.assign([TopicPartition("orders", 0, 0)])
        seen = []
        deadline = time.monotonic() + 30
        while len(set(seen)) < len(set(acked)) and time.monotonic() < deadline:
            for m in consumer.consume(500, 0.5):
                if m.error() is None:
                    seen.append(m.value().decode())
    finally:
        consumer.close()
    missing = set(acked) - set(seen)
    assert not missing, f"{len(missing)} acknowledged values lost, e.g. {sorted(missing)[:5]}"
    dups = {v for v in seen if seen.count(v) > 1}
    assert not dups, f"duplicates: {sorted(dups)[:5]}"

    # The old leader comes back, follows, truncates what was never committed, catches up.
    c.start(leader)
    wait_for("the old leader back in the ISR",
             lambda: len(c.partition(survivors[0], "orders")["isr_nodes"]) == 3, 45)
    hw = c.raw(c.partition(survivors[0], "orders")["leader_id"], ApiKey.LIST_OFFSETS, 2, {
        "replica_id": -1, "isolation_level": 0, "topics": [{"name": "orders", "partitions": [
            {"partition_index": 0, "timestamp": -1}]}]})["topics"][0]["partitions"][0]["offset"]
    assert hw >= len(acked)
    paths = {n: str(c.tmp / f"b{n}" / "orders-0") for n in (1, 2, 3)}
    wait_for("identical replicas up to the high watermark", lambda: len(
        {tuple(batches(p, hw)) for p in paths.values()}) == 1, 30)
    # Not vacuous: what was compared spans both leaders (epochs are bytes 12..15 of a batch).
    compared = batches(paths[leader], hw)
    epochs = {int.from_bytes(b[12:16], "big") for _, b in compared}
    assert len(epochs) >= 2 and sum(len(b) for _, b in compared) > 0, epochs


def test_non_leader_and_non_controller_answers(cluster):
    """Produce, ListOffsets and OffsetForLeaderEpoch to a follower: NOT_LEADER_OR_FOLLOWER;
    CreateTopics, DeleteTopics and CreatePartitions to a non-controller: NOT_CONTROLLER; a broker
    that is no replica holds no directory for the partition; a follower fetch from a broker that
    is no replica is refused; Metadata names
    every broker, the controller, replicas, ISR and the leader epoch; FindCoordinator names one
    broker for a group whichever broker is asked."""
    c = cluster
    create_topic(c, "t2", partitions=1, rf=2)
    p = c.partition(1, "t2")
    leader, replicas = p["leader_id"], p["replica_nodes"]
    assert len(replicas) == 2 and sorted(p["isr_nodes"]) == sorted(replicas)
    assert p["leader_epoch"] == 0 and p["offline_replicas"] == []
    md = c.metadata(1)
    assert sorted(b["node_id"] for b in md["brokers"]) == [1, 2, 3]
    controller = md["controller_id"]
    other = next(n for n in (1, 2, 3) if n != controller)
    answer = c.raw(other, ApiKey.CREATE_TOPICS, 4, {
        "topics": [{"name": "x", "num_partitions": 1, "replication_factor": 1, "assignments": [],
                    "configs": []}], "timeout_ms": 5000, "validate_only": False})
    assert answer["topics"][0]["error_code"] == EC.NOT_CONTROLLER

    # Every broker names the same coordinator for a group (v4 batch and v3 single key), once
    # the first FindCoordinator had __consumer_offsets created.
    wait_for("a coordinator", lambda: c.raw(1, ApiKey.FIND_COORDINATOR, 3, {
        "key": "g1", "key_type": 0})["node_id"] >= 0)
    named = {c.raw(n, ApiKey.FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": [
        "g1", "g2"]})["coordinators"][0]["node_id"] for n in (1, 2, 3)}
    named |= {c.raw(n, ApiKey.FIND_COORDINATOR, 3, {"key": "g1", "key_type": 0})["node_id"]
              for n in (1, 2, 3)}
    assert len(named) == 1 and named <= {1, 2, 3}

    # Admin changes go through the controller: another broker changes nothing and says so.
    answer = c.raw(other, ApiKey.DELETE_TOPICS, 5, {"topic_names": ["t2"], "timeout_ms": 5000})
    assert answer["responses"][0]["error_code"] == EC.NOT_CONTROLLER
    answer = c.raw(other, ApiKey.CREATE_PARTITIONS, 1, {
        "topics": [{"name": "t2", "count": 3, "assignments": None}], "timeout_ms": 5000,
        "validate_only": False})
    assert answer["results"][0]["error_code"] == EC.NOT_CONTROLLER
    assert os.path.isdir(c.tmp / f"b{leader}" / "t2-0")
    # Only its replicas hold a partition (the third broker has no directory for it).
    assert not os.path.exists(c.tmp / f"b{next(n for n in (1, 2, 3) if n not in replicas)}"
                              / "t2-0")

    from klog._native.batch import build_batch
    follower = next(r for r in replicas if r != leader)
    resp = c.raw(follower, ApiKey.PRODUCE, 8, {
        "transactional_id": None, "acks": -1, "timeout_ms": 5000, "topic_data": [
            {"name": "t2", "partition_data": [
                {"index": 0, "records": build_batch([b"x"], None, None, None, 0, 0, None)}]}]})
    assert resp["responses"][0]["partition_responses"][0]["error_code"] == \
        EC.NOT_LEADER_OR_FOLLOWER
    # Offsets and leader epochs come from the leader only, as Kafka's fetchOnlyFromLeader.
    for n, code in ((follower, EC.NOT_LEADER_OR_FOLLOWER), (leader, 0)):
        resp = c.raw(n, ApiKey.OFFSET_FOR_LEADER_EPOCH, 3, {"replica_id": -1, "topics": [
            {"topic": "t2", "partitions": [{"partition": 0, "current_leader_epoch": -1,
                                            "leader_epoch": 0}]}]})
        assert resp["topics"][0]["partitions"][0]["error_code"] == code
        resp = c.raw(n, ApiKey.LIST_OFFSETS, 2, {
            "replica_id": -1, "isolation_level": 0, "topics": [{"name": "t2", "partitions": [
                {"partition_index": 0, "timestamp": -1}]}]})
        assert resp["topics"][0]["partitions"][0]["error_code"] == code

    outsider = next(n for n in (1, 2, 3) if n not in replicas)
    resp = c.raw(leader, ApiKey.FETCH, 12, {
        "replica_id": outsider, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
        "isolation_level": 0, "session_id": 0, "session_epoch": -1,
        "topics": [{"topic": "t2", "partitions": [
            {"partition": 0, "current_leader_epoch": 0, "fetch_offset": 0,
             "last_fetched_epoch": -1, "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
        "forgotten_topics_data": [], "rack_id": ""})
    # Kafka's answer to a non-replica that names the current leader epoch (followerReplicaOrThrow)
    assert resp["responses"][0]["partitions"][0]["error_code"] == EC.UNKNOWN_LEADER_EPOCH


def test_consumers_never_read_past_the_high_watermark(cluster):
    """Followers paused (SIGSTOP): an acks=1 write lands on the leader only; a consumer's fetch
    stops below it until the followers resume and the high watermark passes it."""
    c = cluster
    create_topic(c, "hw")
    leader = c.partition(1, "hw")["leader_id"]
    followers = [n for n in (1, 2, 3) if n != leader]
    producer = Producer({"bootstrap.servers": c.bootstrap, "acks": "1", **QUIET})
    producer.produce("hw", b"committed")
    assert producer.flush(30) == 0

    def fetch():
        return c.raw(leader, ApiKey.FETCH, 12, {
            "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
            "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": "hw", "partitions": [
                {"partition": 0, "current_leader_epoch": -1, "fetch_offset": 0,
                 "last_fetched_epoch": -1, "log_start_offset": -1,
                 "partition_max_bytes": 1 << 20}]}],
            "forgotten_topics_data": [], "rack_id": ""})["responses"][0]["partitions"][0]

    wait_for("the first record committed", lambda: fetch()["high_watermark"] == 1)
    for n in followers:
        c.procs[n].send_signal(signal.SIGSTOP)
    try:
        producer.produce("hw", b"uncommitted")
        assert producer.flush(30) == 0
        part = fetch()
        assert part["high_watermark"] == 1
        assert b"uncommitted" not in bytes(part["records"] or b"")
        assert b"committed" in bytes(part["records"] or b"")
    finally:
        for n in followers:
            c.procs[n].send_signal(signal.SIGCONT)
    wait_for("the high watermark past the second record", lambda: fetch()["high_watermark"] == 2)
    assert b"uncommitted" in bytes(fetch()["records"] or b"")


class BackgroundProducer:
    """Unique values ``v0, v1, ...`` in small batches from a thread until ``stop``."""

    def __init__(self, c, topic, **config):
        self.topic = topic
        self.producer = Producer({"bootstrap.servers": c.bootstrap, "linger.ms": 2,
                                  "message.timeout.ms": 45000, **config, **QUIET})
        self.acked, self.failed = [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _report(self, err, msg):
        (self.failed if err else self.acked).append(err or msg.value().decode())

    def _run(self):
        i = 0
        while not self._stop.is_set():
            for _ in range(5):
                self.producer.produce(self.topic, f"v{i}".encode(), callback=self._report)
                i += 1
            self.producer.poll(0.005)

    def stop(self, flush_s=45):
        self._stop.set()
        self._thread.join()
        return self.producer.flush(flush_s)


def read_all(c, topic, expect, timeout=30, linger=0.0):
    """Values of partition 0 from the start, until ``expect`` is all seen (and ``linger``
    seconds more, for what should not be there) or ``timeout``."""
    consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": "check",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", **QUIET})
    seen = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if set(expect) <= set(seen):
                deadline = min(deadline, time.monotonic() + linger)
                linger = float("inf")
            for m in consumer.consume(500, 0.2):
                if m.error() is None:
                    seen.append(m.value().decode())
    finally:
        consumer.close()
    return seen


def test_sigterm_is_a_controlled_shutdown(cluster):
    """SIGTERM to the leader: it hands leadership over while still up (it sees itself become a
    follower), exits 0, and an acks=all producer loses nothing and sees no error."""
    c = cluster
    create_topic(c, "ctl")
    leader = c.partition(1, "ctl")["leader_id"]
    bg = BackgroundProducer(c, "ctl", acks="all", **{"enable.idempotence": True})
    try:
        wait_for("some acknowledgements", lambda: len(bg.acked) > 200, 30)
        rc = c.kill(leader, signal.SIGTERM)
        assert rc == 0, c.log_output()
        before = len(bg.acked)
        wait_for("acknowledgements after the handover", lambda: len(bg.acked) > before + 200, 45)
    finally:
        assert bg.stop() == 0, c.log_output()
    assert not bg.failed, (bg.failed[:5], c.log_output())
    out = (c.tmp / f"b{leader}.out").read_text()
    assert re.search(r"ctl-0 is follower in epoch [1-9]", out), out[-3000:]
    p = c.partition(min(c.procs), "ctl")
    assert p["leader_id"] != leader and p["leader_epoch"] >= 1 and leader not in p["isr_nodes"]
    seen = read_all(c, "ctl", bg.acked)
    assert set(bg.acked) <= set(seen) and len(seen) == len(set(seen))
    # The stopped broker checkpointed its high watermark on the way out.
    lines = (c.tmp / f"b{leader}" / "replication-offset-checkpoint").read_text().splitlines()
    assert lines[0] == "0" and int(lines[1]) == len(lines) - 2
    hw = [int(x.split()[2]) for x in lines[2:] if x.startswith("ctl 0 ")]
    assert hw and hw[0] > 0, lines


@pytest.mark.parametrize("unclean", [True, False], ids=["unclean", "clean"])
def test_isr_of_one_leader_dies_unclean_loses_the_write_clean_waits(make_cluster, unclean):
    """Followers fall out of the ISR (paused past replica.lag.time.max.ms); the lone leader
    acknowledges an acks=1 write (an acks=all one is refused with NOT_ENOUGH_REPLICAS at
    min.insync.replicas=2) and dies. With unclean.leader.election.enable (the positive control)
    a stale follower leads and the acknowledged write is gone; without it the partition stays
    offline until the old leader returns, with the write."""
    c = make_cluster(["min.insync.replicas=2", "replica.lag.time.max.ms=1000",
                      f"unclean.leader.election.enable={str(unclean).lower()}"])
    create_topic(c, "u")
    leader = c.partition(1, "u")["leader_id"]
    followers = [n for n in (1, 2, 3) if n != leader]
    producer = Producer({"bootstrap.servers": c.bootstrap, "acks": "1", **QUIET})
    producer.produce("u", b"early")
    assert producer.flush(30) == 0
    wait_for("the first write committed", lambda: c.raw(leader, ApiKey.LIST_OFFSETS, 2, {
        "replica_id": -1, "isolation_level": 0, "topics": [{"name": "u", "partitions": [
            {"partition_index": 0, "timestamp": -1}]}]})["topics"][0]["partitions"][0]["offset"]
        == 1)
    for n in followers:
        c.procs[n].send_signal(signal.SIGSTOP)
    try:
        # The followers now lag and drop out of the ISR (well before their ZooKeeper sessions,
        # 6 s, would expire). "w1" may still reach them: their last fetch may carry it.
        producer.produce("u", b"w1")
        assert producer.flush(30) == 0
        # By the leader's lag check (1 s), or, on a slow machine, by the controller when the
        # paused followers' sessions expire: either way the leader is alone in the ISR.
        wait_for("the ISR shrunk to the leader",
                 lambda: c.partition(leader, "u")["isr_nodes"] == [leader], 15)
        # No fetch of theirs is outstanding now: this one is on the leader alone.
        delivered = []
        producer.produce("u", b"acknowledged-then-lost",
                         callback=lambda err, msg: delivered.append(err))
        assert producer.flush(30) == 0 and delivered == [None]
        from klog._native.batch import build_batch

        def acks_all_code():
            resp = c.raw(leader, ApiKey.PRODUCE, 8, {
                "transactional_id": None, "acks": -1, "timeout_ms": 5000, "topic_data": [
                    {"name": "u", "partition_data": [{"index": 0, "records": build_batch(
                        [b"x"], None, None, None, 0, 0, None)}]}]})
            return resp["responses"][0]["partition_responses"][0]["error_code"]
        # When the controller wrote the shrink (sessions expired), the leader may apply it a
        # moment after Metadata shows it: until then a write is appended and then refused
        # (NOT_ENOUGH_REPLICAS_AFTER_APPEND). Once applied, refused before the append.
        codes = []
        wait_for("acks=all refused before the append",
                 lambda: codes.append(acks_all_code()) or codes[-1] == EC.NOT_ENOUGH_REPLICAS, 20)
        assert set(codes) <= {EC.NOT_ENOUGH_REPLICAS, EC.NOT_ENOUGH_REPLICAS_AFTER_APPEND}, codes
        epoch = c.partition(leader, "u")["leader_epoch"]
        c.kill(leader)
    finally:
        for n in followers:
            c.procs[n].send_signal(signal.SIGCONT)
    if unclean:
        wait_for("an unclean leader", lambda: c.partition(followers[0], "u")["leader_id"]
                 in followers, 30)
        seen = read_all(c, "u", ["early"], 20, linger=2)
        assert "early" in seen and "acknowledged-then-lost" not in seen
        return
    wait_for("the controller's decision", lambda: c.partition(followers[0], "u")["leader_epoch"]
             > epoch, 30)
    p = c.partition(followers[0], "u")
    assert p["leader_id"] == -1 and p["isr_nodes"] == [leader], p
    c.start(leader)
    wait_for("the old leader back", lambda: c.partition(followers[0], "u")["leader_id"] == leader,
             30)
    seen = read_all(c, "u", ["early", "acknowledged-then-lost"], 20)
    assert "acknowledged-then-lost" in seen


def test_serve_config_file_joins_the_cluster(zookeeper, tmp_path):
    """broker.id and zookeeper.connect in a server.properties file: the broker registers with
    that id, becomes the controller of its (new) cluster and claims its data directory in
    meta.properties; a node id without zookeeper.connect stays a warning (single node)."""
    from klog import server_properties

    port = free_port()
    data = tmp_path / "data"
    conf = tmp_path / "server.properties"
    chroot = f"/cfg{uuid.uuid4().hex[:8]}"
    conf.write_text(f"broker.id=7\nzookeeper.connect={zookeeper.address}{chroot}\n"
                    f"listeners=PLAINTEXT://127.0.0.1:{port}\nlog.dirs={data}\n"
                    "replica.lag.time.max.ms=5000\n")
    got = server_properties.load(conf)
    assert (got.node_id, got.zookeeper, got.replica_lag_time_max_ms, got.warnings) == \
        (7, f"{zookeeper.address}{chroot}", 5000, [])
    (tmp_path / "single.properties").write_text("node.id=1\n")
    single = server_properties.load(tmp_path / "single.properties")
    assert single.node_id is None and "ignoring 'node.id'" in single.warnings[0]

    proc = subprocess.Popen([sys.executable, "-m", "klog", "serve", "--config", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def metadata():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    return call(s, ApiKey.METADATA, 9, {
                        "topics": None, "allow_auto_topic_creation": False,
                        "include_cluster_authorized_operations": False,
                        "include_topic_authorized_operations": False})
            except OSError:
                return None
        md = wait_for("the broker registered and elected",
                      lambda: (m := metadata()) and m["controller_id"] == 7 and m, 60)
        assert [b["node_id"] for b in md["brokers"]] == [7]
        assert "broker.id=7" in (data / "meta.properties").read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The data directory is node 7's: another node id is refused, naming it.
    r = subprocess.run([sys.executable, "-m", "klog", "serve", "--node-id", "8", "--zookeeper",
                        f"{zookeeper.address}{chroot}", "--data-dir", str(data), "--listen",
                        f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "belongs to node 7, not --node-id 8" in r.stderr \
        and "Traceback" not in r.stderr, \
        r.stderr[-2000:]


def test_serve_node_id_needs_zookeeper(tmp_path):
    r = subprocess.run([sys.executable, "-m", "klog", "serve", "--node-id", "1", "--data-dir",
                        str(tmp_path / "d")], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "needs both --node-id" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "klog", "serve", "--node-id", "1", "--zookeeper",
                        "nohost", "--data-dir", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "'nohost' is not host:port" in r.stderr, r.stderr


def test_committed_offsets_survive_the_coordinators_death(make_cluster):
    """__consumer_offsets is created through the controller at the first FindCoordinator,
    replicated (factor 3); a group's coordinator is the leader of its offsets partition; the
    coordinator is SIGKILLed; the new one (the partition's new leader) has the group's
    committed offsets. A broker that is not the coordinator answers NOT_COORDINATOR."""
    c = make_cluster(["min.insync.replicas=2", "offsets.topic.num.partitions=3"])
    create_topic(c, "g")
    producer = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", **QUIET})
    for i in range(10):
        producer.produce("g", f"m{i}".encode())
    assert producer.flush(30) == 0

    def consumer():
        return Consumer({"bootstrap.servers": c.bootstrap, "group.id": "grp",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", **QUIET})

    first = consumer()
    try:
        first.subscribe(["g"])
        got = []
        deadline = time.monotonic() + 45
        while len(got) < 10 and time.monotonic() < deadline:
            m = first.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m)
        assert len(got) == 10
        first.commit(message=got[6], asynchronous=False)       # next offset 7
    finally:
        first.close()

    def coordinator(n):
        try:
            return c.raw(n, ApiKey.FIND_COORDINATOR, 3, {"key": "grp", "key_type": 0})["node_id"]
        except OSError:
            return -1
    old = coordinator(min(c.procs))
    assert old in (1, 2, 3)
    p = c.partition(old, "__consumer_offsets", partition_for("grp", 3))
    assert p["leader_id"] == old and len(p["replica_nodes"]) == 3
    other = next(n for n in c.procs if n != old)
    answer = c.raw(other, ApiKey.HEARTBEAT, 0, {"group_id": "grp", "generation_id": 1,
                                                "member_id": "x"})
    assert answer["error_code"] == EC.NOT_COORDINATOR

    c.kill(old)
    survivor = min(c.procs)
    new = wait_for("a new coordinator", lambda: coordinator(survivor) not in (-1, old) and
                   coordinator(survivor), 30)
    second = consumer()
    try:
        committed = second.committed([TopicPartition("g", 0)], timeout=30)
    finally:
        second.close()
    assert committed[0].offset == 7, (new, committed)
