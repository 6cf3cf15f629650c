"""The protocol between klog brokers at its edges, against real ``klog serve --zookeeper``
processes: how a leaving broker answers, ControlledShutdown (API 7), follower fetches from
brokers that are not (or no longer) replicas, a follower that fell behind the leader's log start.
"""
import re
import signal
import socket
import struct
import threading
import time

from klog.protocol.errors import ErrorCode as EC
from klog.protocol.frames import decode_response, encode_request
from klog.protocol.messages import ApiKey

from server.rawclient import call as rawcall
from .test_serve_cluster import (  # noqa: F401 - fixtures
    Cluster, call, cluster, create_topic, make_cluster, wait_for,
)

METADATA_ALL = {"topics": None, "allow_auto_topic_creation": False,
                "include_cluster_authorized_operations": False,
                "include_topic_authorized_operations": False}


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def test_a_leaving_broker_never_answers_metadata_that_leaves_the_others_out(cluster):
    """Metadata requests pipelined on one connection to a broker while it stops (SIGTERM): every
    answer it gives names the two other brokers. (It used to close its ZooKeeper session before
    it stopped serving, and answered the requests in between naming itself alone, which made
    librdkafka forget the other brokers: the acks=all producer of
    test_sigterm_is_a_controlled_shutdown then stalled.)"""
    c = cluster
    leaving = 2
    others = {1, 3}
    s = socket.create_connection(c.address(leaving), timeout=30)
    stop = threading.Event()
    sent = [0]

    def writer():
        cid = 0
        try:
            while not stop.is_set():
                cid += 1
                s.sendall(encode_request(ApiKey.METADATA, 9, cid, "t", METADATA_ALL).getvalue())
                sent[0] = cid
                if cid - len(answers) > 20:      # a bounded pipeline
                    stop.wait(0.001)
        except OSError:
            pass

    answers = []
    w = threading.Thread(target=writer)
    w.start()
    try:
        wait_for("answers", lambda: len(answers) > 0 or _read_one(s, answers), 30, 0)
        c.procs[leaving].send_signal(signal.SIGTERM)
        while True:
            try:
                _read_one(s, answers)
            except (ConnectionError, OSError):
                break
    finally:
        stop.set()
        s.close()
        w.join()
    assert c.procs.pop(leaving).wait(60) == 0
    assert len(answers) > 1
    lacking = [a for a in answers if not others <= a]
    assert not lacking, f"{len(lacking)} of {len(answers)} answers left out brokers: {lacking[:3]}"


def _read_one(s, answers):
    size = struct.unpack(">i", _recv_exact(s, 4))[0]
    _, resp = decode_response(ApiKey.METADATA, 9, memoryview(_recv_exact(s, size)))
    answers.append({b["node_id"] for b in resp["brokers"]})
    return False


# -- ControlledShutdown (API 7) ------------------------------------------------------------------
def broker_epochs(c):
    """Registered brokers' epochs (czxid of /brokers/ids/N), read from ZooKeeper."""
    from kazoo.client import KazooClient

    hosts, _, chroot = c.zk.partition("/")
    zk = KazooClient(hosts=hosts)
    zk.start(30)
    try:
        ids = zk.get_children(f"/{chroot}/brokers/ids")
        return {int(b): zk.exists(f"/{chroot}/brokers/ids/{b}").czxid for b in ids}
    finally:
        zk.stop()
        zk.close()


def controlled_shutdown(c, n, broker_id, broker_epoch=-1, version=3):
    answer = c.raw(n, ApiKey.CONTROLLED_SHUTDOWN, version,
                   {"broker_id": broker_id, "broker_epoch": broker_epoch})
    return answer["error_code"], [(r["topic_name"], r["partition_index"])
                                  for r in answer["remaining_partitions"]]


def test_controlled_shutdown_answers(cluster):
    """ControlledShutdown to a broker that is not the controller: NOT_CONTROLLER; to the
    controller for an unregistered broker id: BROKER_NOT_AVAILABLE; with a broker epoch that is
    not the registration's: STALE_BROKER_EPOCH and nothing moves; with the right epoch (v3) or
    none (v0, header without client id): leadership and ISR membership move away, and a
    partition whose only in-sync replica is the broker is answered as still led by it."""
    c = cluster
    create_topic(c, "cs", partitions=1, rf=3)
    md = c.metadata(1)
    controller = md["controller_id"]
    other = next(n for n in (1, 2, 3) if n != controller)
    epochs = broker_epochs(c)
    assert sorted(epochs) == [1, 2, 3]

    assert controlled_shutdown(c, other, other, epochs[other]) == (EC.NOT_CONTROLLER, [])
    assert controlled_shutdown(c, controller, 9) == (EC.BROKER_NOT_AVAILABLE, [])
    leader = c.partition(1, "cs")["leader_id"]
    before = c.partition(1, "cs")
    for stale in (epochs[leader] - 1, 0):
        assert controlled_shutdown(c, controller, leader, stale) == (EC.STALE_BROKER_EPOCH, [])
    assert c.partition(1, "cs")["leader_epoch"] == before["leader_epoch"]
    assert c.partition(1, "cs")["leader_id"] == leader

    assert controlled_shutdown(c, controller, leader, epochs[leader]) == (EC.NONE, [])
    # Metadata answers from broker 1's cache, which the move reaches a moment later (as
    # Kafka's UpdateMetadata does): the first answer in the next epoch.
    p = wait_for("the move in broker 1's Metadata", lambda: (
        lambda p: p if p["leader_epoch"] > before["leader_epoch"] else None)(
            c.partition(1, "cs")), interval=0.002)
    assert p["leader_id"] not in (leader, -1) and leader not in p["isr_nodes"]
    assert p["leader_epoch"] > before["leader_epoch"]
    # It still fetches (it is not really stopping), so it comes back into the ISR.
    wait_for("the broker back in the ISR", lambda: leader in c.partition(1, "cs")["isr_nodes"])

    # A replication-factor-1 partition cannot move: answered as remaining (v0: no epoch).
    create_topic(c, "solo", partitions=1, rf=1)
    solo = c.partition(1, "solo")["leader_id"]
    assert controlled_shutdown(c, controller, solo, version=0) == (EC.NONE, [("solo", 0)])
    assert c.partition(1, "solo")["leader_id"] == solo


def test_sigterm_retries_controlled_shutdown_then_falls_back(make_cluster):
    """SIGTERM to a broker that is the only replica of a partition: it asks the controller
    controlled.shutdown.max.retries times, controlled.shutdown.retry.backoff.ms apart, is told
    each time that it still leads the partition, then deletes its registration and exits 0; the
    partition goes offline (no other replica), and the other brokers' partitions did not."""
    c = make_cluster(["min.insync.replicas=1", "controlled.shutdown.max.retries=2",
                      "controlled.shutdown.retry.backoff.ms=300"])
    create_topic(c, "solo", partitions=3, rf=1)
    owner = c.partition(1, "solo", 0)["leader_id"]
    assert c.kill(owner, signal.SIGTERM) == 0
    out = (c.tmp / f"b{owner}.out").read_text()
    attempts = re.findall(r"controlled shutdown attempt (\d) of 2 failed \((.*)\)", out)
    assert [a for a, _ in attempts] == ["1", "2"], out[-3000:]
    assert all("still the leader of 1 partition(s), e.g. solo-" in why for _, why in attempts)
    survivor = min(c.procs)
    wait_for("the partition offline",
             lambda: c.partition(survivor, "solo", 0)["leader_id"] == -1)
    for p in (1, 2):
        assert c.partition(survivor, "solo", p)["leader_id"] in c.procs


# -- follower fetches (Fetch v15: replica_state) ---------------------------------------------------
def topic_id(c, n, topic):
    md = c.raw(n, ApiKey.METADATA, 12, {"topics": [{"name": topic}],
                                        "allow_auto_topic_creation": False,
                                        "include_topic_authorized_operations": False})
    return md["topics"][0]["topic_id"]


def follower_fetch(c, n, tid, replica_id, replica_epoch, leader_epoch, offset, last_epoch=-1):
    """A follower's Fetch v15 for partition 0, as raw bytes on a new connection."""
    with socket.create_connection(c.address(n), timeout=30) as s:
        resp = rawcall(s, ApiKey.FETCH, 15, {
            "replica_state": {"replica_id": replica_id, "replica_epoch": replica_epoch},
            "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20, "isolation_level": 0,
            "session_id": 0, "session_epoch": -1,
            "topics": [{"topic_id": tid, "partitions": [
                {"partition": 0, "current_leader_epoch": leader_epoch, "fetch_offset": offset,
                 "last_fetched_epoch": last_epoch, "log_start_offset": -1,
                 "partition_max_bytes": 1 << 20}]}],
            "forgotten_topics_data": [], "rack_id": ""})
    return resp["responses"][0]["partitions"][0]


def produce(c, topic, values, acks="all"):
    from confluent_kafka import Producer

    from .test_serve_cluster import QUIET
    p = Producer({"bootstrap.servers": c.bootstrap, "acks": acks, "linger.ms": 0, **QUIET})
    for v in values:
        p.produce(topic, v.encode() if isinstance(v, str) else v)
    assert p.flush(30) == 0


def test_follower_fetch_refusals(make_cluster):
    """Fetch v15 from broker ids that may not fetch, against the partition leader:
    - a broker that is no replica: UNKNOWN_LEADER_EPOCH with a leader epoch, else
      NOT_LEADER_OR_FOLLOWER (Kafka's followerReplicaOrThrow);
    - a leader epoch above the leader's: UNKNOWN_LEADER_EPOCH; below it: FENCED_LEADER_EPOCH;
    - a replica's id with a broker epoch that is not its registration's: STALE_BROKER_EPOCH, and
      the fetch counts for nothing: a follower out of the ISR (paused) is not taken back by
      such fetches at the leader's end, and is taken back by the same fetch with its epoch."""
    c = make_cluster(["min.insync.replicas=1", "replica.lag.time.max.ms=1000",
                      "zookeeper.session.timeout.ms=30000"])
    create_topic(c, "ff")
    produce(c, "ff", ["a", "b", "c"])
    p = c.partition(1, "ff")
    leader, epoch = p["leader_id"], p["leader_epoch"]
    tid = topic_id(c, leader, "ff")
    epochs = broker_epochs(c)
    follower = next(n for n in (1, 2, 3) if n != leader)

    assert follower_fetch(c, leader, tid, 7, -1, epoch, 3)["error_code"] == \
        EC.UNKNOWN_LEADER_EPOCH
    assert follower_fetch(c, leader, tid, 7, -1, -1, 3)["error_code"] == EC.NOT_LEADER_OR_FOLLOWER
    assert follower_fetch(c, leader, tid, follower, epochs[follower], epoch + 1, 3)[
        "error_code"] == EC.UNKNOWN_LEADER_EPOCH

    c.procs[follower].send_signal(signal.SIGSTOP)
    try:
        produce(c, "ff", ["d"], acks="1")        # the leader's end moves: the paused one lags
        wait_for("the paused follower out of the ISR",
                 lambda: follower not in c.partition(leader, "ff")["isr_nodes"], 30)
        for stale in (epochs[follower] - 1, epochs[follower] + 1000):
            answer = follower_fetch(c, leader, tid, follower, stale, epoch, 4, epoch)
            assert answer["error_code"] == EC.STALE_BROKER_EPOCH, answer
            assert not answer["records"]
        # More than a lag check's worth of refused fetches at the leader's end: still out.
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert follower_fetch(c, leader, tid, follower, epochs[follower] - 1, epoch, 3,
                                  epoch)["error_code"] == EC.STALE_BROKER_EPOCH
            assert follower not in c.partition(leader, "ff")["isr_nodes"]
            time.sleep(0.1)
        answer = follower_fetch(c, leader, tid, follower, epochs[follower], epoch, 4, epoch)
        assert answer["error_code"] == EC.NONE
        wait_for("the follower back in the ISR on a fetch with its epoch",
                 lambda: follower in c.partition(leader, "ff")["isr_nodes"], 10)
    finally:
        c.procs[follower].send_signal(signal.SIGCONT)

    # A leadership change (ControlledShutdown of the leader) makes the old epoch fenced.
    controller = c.metadata(1)["controller_id"]
    assert controlled_shutdown(c, controller, leader, epochs[leader])[0] == EC.NONE
    new = wait_for("a new leader", lambda: (q := c.partition(1, "ff"))["leader_id"] not in
                   (leader, -1) and q)
    other = next(n for n in (1, 2, 3) if n != new["leader_id"])
    # Broker 1's Metadata (its cache) may name the new leader a moment before that broker has
    # taken the leadership over (NOT_LEADER_OR_FOLLOWER until then), as with Kafka's
    # UpdateMetadata and LeaderAndIsr: ask until it leads.
    codes = []
    wait_for("the new leader leading", lambda: codes.append(follower_fetch(
        c, new["leader_id"], tid, other, epochs[other], epoch, 3, epoch)["error_code"])
        or codes[-1] != EC.NOT_LEADER_OR_FOLLOWER)
    assert codes[-1] == EC.FENCED_LEADER_EPOCH, codes


# -- a follower behind the leader's log start --------------------------------------------------------
def test_follower_behind_the_leaders_log_start_starts_over_there(cluster):
    """A follower stops at offset 10; the leader takes 20 more records and deletes the records
    below 25 (DeleteRecords). The follower comes back: the leader answers its fetch from 10
    OFFSET_OUT_OF_RANGE, it asks the leader's log start (ListOffsets as a replica), truncates
    fully and starts there, catches up and rejoins the ISR; its log starts where the leader's
    does (inside a batch: the batch is kept whole), with the leader's batches from there on.
    The follower that stayed moves its log start with the leader's (and refuses DeleteRecords
    itself: NOT_LEADER_OR_FOLLOWER)."""
    from klog.storage.checkpoint import read_checkpoint
    from klog.storage.files import CHECKPOINT

    from .test_serve_cluster import batches

    c = cluster
    create_topic(c, "gone")
    produce(c, "gone", [f"a{i}" for i in range(10)])
    leader = c.partition(1, "gone")["leader_id"]
    follower = next(n for n in (1, 2, 3) if n != leader)
    paths = {n: c.tmp / f"b{n}" / "gone-0" for n in (1, 2, 3)}
    wait_for("the follower holding all 10", lambda: sum(
        1 for _ in batches(str(paths[follower]))) >= 1 and _end(paths[follower]) == 10)
    assert c.kill(follower, signal.SIGTERM) == 0
    wait_for("the follower out of the ISR",
             lambda: follower not in c.partition(leader, "gone")["isr_nodes"])
    produce(c, "gone", [f"b{i}" for i in range(20)])
    stayed = next(n for n in (1, 2, 3) if n not in (leader, follower))
    # DeleteRecords is the leader's: a follower refuses it and keeps its records.
    answer = c.raw(stayed, ApiKey.DELETE_RECORDS, 2, {"topics": [{"name": "gone", "partitions": [
        {"partition_index": 0, "offset": 5}]}], "timeout_ms": 10000})
    assert answer["topics"][0]["partitions"][0]["error_code"] == EC.NOT_LEADER_OR_FOLLOWER
    assert read_checkpoint(str(paths[stayed] / CHECKPOINT)).get("log-start-offset", 0) == 0
    answer = c.raw(leader, ApiKey.DELETE_RECORDS, 2, {"topics": [{"name": "gone", "partitions": [
        {"partition_index": 0, "offset": 25}]}], "timeout_ms": 10000})
    assert answer["topics"][0]["partitions"][0] == {
        "partition_index": 0, "low_watermark": 25, "error_code": 0}, answer

    # The follower that stayed follows the leader's log start (from its fetch answers).
    wait_for("the other follower's log start at 25", lambda: read_checkpoint(
        str(paths[stayed] / CHECKPOINT)).get("log-start-offset") == 25)

    c.start(follower)
    wait_for("the follower back in the ISR",
             lambda: follower in c.partition(leader, "gone")["isr_nodes"], 45)
    # (Metadata may show it in sync a moment before its checkpoint has the new log start.)
    wait_for("the log start at 25 on both", lambda: {
        n: read_checkpoint(str(paths[n] / CHECKPOINT)).get("log-start-offset")
        for n in (leader, follower)} == {leader: 25, follower: 25})
    wait_for("the follower's end at the leader's", lambda: _end(paths[follower]) == 30)
    # The same batches from the one holding offset 25 on (it began at 10: one produce batch).
    theirs = [(b, raw) for b, raw in batches(str(paths[leader])) if _last(b, raw) >= 25]
    mine = batches(str(paths[follower]))
    assert mine and mine == theirs and mine[0][0] <= 25
    out = (c.tmp / f"b{follower}.out").read_text()
    assert "was out of range on leader" in out


def _last(base, raw):
    return base + int.from_bytes(raw[23:27], "big")


def _end(path):
    from .test_serve_cluster import batches

    found = batches(str(path))
    return _last(*found[-1]) + 1 if found else 0


# -- Metadata while ZooKeeper is away ------------------------------------------------------------
def test_metadata_without_zookeeper_is_the_last_view_read(tmp_path):
    """ZooKeeper stops: the brokers answer Metadata from the last view they read (Kafka's
    metadata cache), all three brokers and the topic's partition, never themselves alone (which
    makes librdkafka forget the others)."""
    from .zookeeper import ZooKeeperServer

    zk = ZooKeeperServer().start()
    c = Cluster(zk, tmp_path)
    try:
        for n in (1, 2, 3):
            c.start(n)
        wait_for("three registered brokers", lambda: _registered(c) == [1, 2, 3], 60)
        create_topic(c, "mc")
        before = {n: c.metadata(n, ["mc"]) for n in (1, 2, 3)}
        for n in (1, 2, 3):
            c.metadata(n)             # a full request too: cached as well
        zk.stop()
        for n in (1, 2, 3):
            log = c.tmp / f"b{n}.out"
            wait_for(f"broker {n} answering without ZooKeeper", lambda: (
                c.metadata(n, ["mc"]) and b"Metadata without ZooKeeper" in log.read_bytes()), 60)
            md = c.metadata(n, ["mc"])
            assert sorted(b["node_id"] for b in md["brokers"]) == [1, 2, 3], md["brokers"]
            assert md["topics"] == before[n]["topics"]
            assert md["controller_id"] == before[n]["controller_id"]
            full = c.metadata(n)
            assert sorted(b["node_id"] for b in full["brokers"]) == [1, 2, 3]
            assert "mc" in [t["name"] for t in full["topics"]]
    finally:
        c.stop()
        zk.stop()


def _registered(c):
    try:
        return sorted(b["node_id"] for b in c.metadata(1)["brokers"])
    except OSError:
        return None


def test_a_starting_broker_answers_nothing_before_it_has_joined(cluster):
    """A broker restarting: requests sent to it while it joins the cluster wait, and every
    Metadata answer it gives names the whole cluster, itself included (before, it answered
    naming itself alone until it reached ZooKeeper, and the others only until it registered)."""
    c = cluster
    assert c.kill(2, signal.SIGTERM) == 0
    answers = []
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            try:
                with socket.create_connection(c.address(2), timeout=2) as s:
                    answers.append(sorted(b["node_id"] for b in call(
                        s, ApiKey.METADATA, 9, METADATA_ALL)["brokers"]))
            except OSError:
                time.sleep(0.01)

    threads = [threading.Thread(target=poll) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        c.start(2)
        wait_for("broker 2 answering", lambda: [1, 2, 3] in answers, 60, 0.01)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert all(a == [1, 2, 3] for a in answers), sorted(set(map(tuple, answers)))
