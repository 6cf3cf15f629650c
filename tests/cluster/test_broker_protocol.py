"""The protocol between klog brokers at its edges, against real ``klog serve --zookeeper``
processes: how a leaving broker answers, ControlledShutdown (API 7), follower fetches from
brokers that are not (or no longer) replicas, a follower that fell behind the leader's log start.
"""
import re
import signal
import socket
import struct
import threading

from klog.protocol.errors import ErrorCode as EC
from klog.protocol.frames import decode_response, encode_request
from klog.protocol.messages import ApiKey

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
    p = c.partition(1, "cs")
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
