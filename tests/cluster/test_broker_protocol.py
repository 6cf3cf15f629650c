"""The protocol between klog brokers at its edges, against real ``klog serve --zookeeper``
processes: how a leaving broker answers, ControlledShutdown (API 7), follower fetches from
brokers that are not (or no longer) replicas, a follower that fell behind the leader's log start.
"""
import signal
import socket
import struct
import threading

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
