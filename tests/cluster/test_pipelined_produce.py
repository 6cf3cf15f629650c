"""Produce requests pipelined behind an acks=all one (klog.server.deferred), against three real
``klog serve --zookeeper`` processes: raw requests for the order of the answers, the bound per
connection and a connection closed with answers pending; real clients for the whole path.

A follower paused with SIGSTOP holds the high watermark (the ISR keeps it: ZooKeeper session and
replica.lag.time.max.ms are both 30 s here), so an acks=all answer waits as long as the test
needs; the leader's log end (ListOffsets with a replica id) shows what was appended meanwhile."""
import signal
import socket
import struct
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from klog._native.batch import build_batch
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.frames import decode_response, encode_request
from klog.protocol.messages import ApiKey
from klog.server.deferred import MAX_PENDING_ANSWERS

from .brokers import QUIET, create_topic, wait_for

pytestmark = [pytest.mark.needs_zookeeper, pytest.mark.timeout(240)]

SETTINGS = ("min.insync.replicas=2", "zookeeper.session.timeout.ms=30000",
            "replica.lag.time.max.ms=30000")
PRODUCE_V = 8


@pytest.fixture
def c(make_cluster):
    return make_cluster(SETTINGS)


def _produce_body(topic, batch, acks=-1, timeout_ms=60000):
    return {"transactional_id": None, "acks": acks, "timeout_ms": timeout_ms,
            "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": batch}]}]}


class Pipe:
    """A raw connection that sends several requests in one write and reads the answers as they
    come, each decoded by the request its correlation id names."""

    def __init__(self, address):
        self.sock = socket.create_connection(address, timeout=60)
        self.sent = {}

    def send(self, *requests, first_cid=1):
        """``requests``: (api key, version, body); correlation ids ``first_cid``, +1, ..."""
        data = b""
        for i, (key, version, body) in enumerate(requests):
            self.sent[first_cid + i] = (key, version)
            data += encode_request(key, version, first_cid + i, "pipe", body).getvalue()
        self.sock.sendall(data)

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def answer(self):
        """(correlation id, decoded body) of the next answer."""
        size = struct.unpack(">i", self._exact(4))[0]
        frame = self._exact(size)
        cid = struct.unpack(">i", frame[:4])[0]
        assert cid in self.sent, f"an answer with correlation id {cid}, never sent here"
        key, version = self.sent[cid]
        got, body = decode_response(key, version, memoryview(frame))
        return got, body

    def nothing_yet(self):
        """No byte of an answer has arrived."""
        timeout = self.sock.gettimeout()
        self.sock.setblocking(False)
        try:
            self.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(timeout)
        return False    # a byte, or the connection closed

    def close(self):
        self.sock.close()


def _log_end(c, leader, topic):
    """The leader's log end offset (ListOffsets latest as a replica reads it)."""
    r = c.raw(leader, ApiKey.LIST_OFFSETS, 4, {
        "replica_id": 99, "isolation_level": 0, "topics": [{"name": topic, "partitions": [
            {"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}]})
    return r["topics"][0]["partitions"][0]["offset"]


def _paused(c, topic):
    """Pause one follower of ``topic`` once the leader has acknowledged a first record (offset
    0) with acks=all: returns (leader, follower)."""
    leader = c.partition(1, topic)["leader_id"]

    def first():       # the leader may apply ZooKeeper's word a little after Metadata says it
        r = c.raw(leader, ApiKey.PRODUCE, PRODUCE_V, _produce_body(topic, build_batch([b"0"])))
        return _part(r)["error_code"] == 0
    wait_for(f"{topic}: a first record acknowledged", first)
    follower = next(n for n in (1, 2, 3) if n != leader)
    c.procs[follower].send_signal(signal.SIGSTOP)
    return leader, follower


def _part(answer):
    return answer["responses"][0]["partition_responses"][0]


def test_produce_behind_acks_all_is_appended_at_once_and_answered_in_request_order(c):
    create_topic(c, "order")
    leader, follower = _paused(c, "order")
    try:
        pipe = Pipe(c.address(leader))
        # 1, 2: acks=all (held by the paused follower); 3: acks=1 (its answer ready at once);
        # 4: a topic that does not exist (an error at once); 5: ListOffsets (not a Produce:
        # handled once every answer before it is written).
        pipe.send((ApiKey.PRODUCE, PRODUCE_V, _produce_body("order", build_batch([b"a1"]))),
                  (ApiKey.PRODUCE, PRODUCE_V, _produce_body("order", build_batch([b"a2"]))),
                  (ApiKey.PRODUCE, PRODUCE_V, _produce_body("order", build_batch([b"b"]), acks=1)),
                  (ApiKey.PRODUCE, PRODUCE_V, _produce_body("no-such-topic", build_batch([b"x"]))),
                  (ApiKey.LIST_OFFSETS, 4, {
                      "replica_id": -1, "isolation_level": 0, "topics": [{"name": "order",
                      "partitions": [{"partition_index": 0, "current_leader_epoch": -1,
                                      "timestamp": -1}]}]}))
        # All three batches are in the leader's log while the first is still unanswered (one at
        # a time, the second would wait for the first's answer).
        wait_for("the three batches appended", lambda: _log_end(c, leader, "order") == 4)
        assert pipe.nothing_yet()
    finally:
        c.procs[follower].send_signal(signal.SIGCONT)
    answers = [pipe.answer() for _ in range(5)]
    assert [cid for cid, _ in answers] == [1, 2, 3, 4, 5]
    parts = [_part(a) for _, a in answers[:4]]
    assert [(p["error_code"], p["base_offset"]) for p in parts[:3]] == [(0, 1), (0, 2), (0, 3)]
    assert parts[3]["error_code"] == EC.UNKNOWN_TOPIC_OR_PARTITION
    # ListOffsets saw the two acks=all batches acknowledged: the high watermark past them.
    assert answers[4][1]["topics"][0]["partitions"][0]["offset"] >= 3
    pipe.close()


def test_at_most_the_limit_of_answers_wait_per_connection(c):
    create_topic(c, "bound")
    n = MAX_PENDING_ANSWERS + 3
    leader, follower = _paused(c, "bound")
    try:
        pipe = Pipe(c.address(leader))
        pipe.send(*[(ApiKey.PRODUCE, PRODUCE_V, _produce_body("bound", build_batch([b"v%d" % i])))
                    for i in range(n)])
        wait_for("the first batches appended",
                 lambda: _log_end(c, leader, "bound") == 1 + MAX_PENDING_ANSWERS)
        # The rest waits for the first answer (the follower is paused: none comes). A later
        # append would show here within the second; under load it may only pass wrongly.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert _log_end(c, leader, "bound") == 1 + MAX_PENDING_ANSWERS
            time.sleep(0.05)
        assert pipe.nothing_yet()
    finally:
        c.procs[follower].send_signal(signal.SIGCONT)
    answers = [pipe.answer() for _ in range(n)]
    assert [cid for cid, _ in answers] == list(range(1, n + 1))
    assert [(_part(a)["error_code"], _part(a)["base_offset"]) for _, a in answers] == \
        [(0, 1 + i) for i in range(n)]
    pipe.close()


def test_connection_closed_with_answers_pending_releases_them(c):
    """The answers of a closed connection are dropped, never written to the socket number the
    next connection gets (the server writes with os.writev on the descriptor)."""
    create_topic(c, "closed")
    leader, follower = _paused(c, "closed")
    try:
        pipe = Pipe(c.address(leader))
        pipe.send(*[(ApiKey.PRODUCE, PRODUCE_V, _produce_body("closed", build_batch([b"v%d" % i])))
                    for i in range(3)], first_cid=1000)
        wait_for("the batches appended", lambda: _log_end(c, leader, "closed") == 4)
        pipe.close()
        time.sleep(0.2)     # (only gives the leader the chance to notice; not an outcome)
        # New connections take the freed descriptor while the old answers are still pending.
        others = [Pipe(c.address(leader)) for _ in range(3)]
    finally:
        c.procs[follower].send_signal(signal.SIGCONT)
    wait_for("the batches committed", lambda: c.raw(leader, ApiKey.LIST_OFFSETS, 4, {
        "replica_id": -1, "isolation_level": 0, "topics": [{"name": "closed", "partitions": [
            {"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}]})[
        "topics"][0]["partitions"][0]["offset"] == 4)
    for i, other in enumerate(others):
        other.send((ApiKey.API_VERSIONS, 3, {"client_software_name": "t",
                                             "client_software_version": "1"}), first_cid=7 + i)
        cid, body = other.answer()    # a stray answer (cid 1000..1002) would fail here
        assert cid == 7 + i and body["error_code"] == 0
        other.close()
    out = (c.tmp / f"b{leader}.out").read_text()
    assert "Traceback" not in out and "never retrieved" not in out


def test_pipelined_idempotent_batches_keep_their_sequence_checks(c):
    create_topic(c, "idem")
    leader = c.partition(1, "idem")["leader_id"]
    r = c.raw(leader, ApiKey.INIT_PRODUCER_ID, 2, {"transactional_id": None,
                                                   "transaction_timeout_ms": -1})
    pid, epoch = r["producer_id"], r["producer_epoch"]

    def batch(seq, values):
        return build_batch(values, producer_id=pid, producer_epoch=epoch, base_sequence=seq)

    leader, follower = _paused(c, "idem")
    try:
        pipe = Pipe(c.address(leader))
        pipe.send((ApiKey.PRODUCE, PRODUCE_V, _produce_body("idem", batch(0, [b"a", b"b"]))),
                  (ApiKey.PRODUCE, PRODUCE_V, _produce_body("idem", batch(0, [b"a", b"b"]))),
                  (ApiKey.PRODUCE, PRODUCE_V, _produce_body("idem", batch(9, [b"gap"]))),
                  (ApiKey.PRODUCE, PRODUCE_V, _produce_body("idem", batch(2, [b"c"]))))
        wait_for("the new batches appended", lambda: _log_end(c, leader, "idem") == 4)
        assert pipe.nothing_yet()
    finally:
        c.procs[follower].send_signal(signal.SIGCONT)
    answers = [pipe.answer() for _ in range(4)]
    assert [cid for cid, _ in answers] == [1, 2, 3, 4]
    assert [(_part(a)["error_code"], _part(a)["base_offset"]) for _, a in answers] == [
        (0, 1), (0, 1), (EC.OUT_OF_ORDER_SEQUENCE_NUMBER, -1), (0, 3)]
    pipe.close()
    assert _log_end(c, leader, "idem") == 4


def _consume_all(c, topic, n, timeout=60):
    consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False, **QUIET})
    got = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            got += [m.value() for m in consumer.consume(1000, 0.2) if m.error() is None]
    finally:
        consumer.close()
    return got


@pytest.mark.parametrize("idempotent", [True, False])
def test_confluent_kafka_acks_all_many_in_flight_every_record_once_in_order(c, idempotent):
    create_topic(c, "ck")
    p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "linger.ms": 1,
                  "batch.num.messages": 50, "max.in.flight": 5,
                  "enable.idempotence": idempotent, **QUIET})
    errors = []
    values = [b"v%06d" % i for i in range(5000)]
    for v in values:
        p.produce("ck", v, partition=0, on_delivery=lambda e, m: e and errors.append(e))
        p.poll(0)
    assert p.flush(60) == 0 and errors == []
    assert _consume_all(c, "ck", len(values)) == values


def test_kafka_python_acks_all_many_in_flight_every_record_once_in_order(c):
    from kafka import KafkaProducer

    create_topic(c, "kp")
    p = KafkaProducer(bootstrap_servers=c.bootstrap.split(","), acks="all", linger_ms=1,
                      batch_size=512, max_in_flight_requests_per_connection=5, retries=0)
    values = [b"k%06d" % i for i in range(3000)]
    futures = [p.send("kp", v, partition=0) for v in values]
    p.flush(60)
    offsets = [f.get(30).offset for f in futures]
    p.close()
    assert offsets == list(range(len(values)))
    assert _consume_all(c, "kp", len(values)) == values
