"""A producer the partition never stored a batch from must start at sequence 0 (jepsen3: 127
acknowledged writes lost). librdkafka takes a success for a batch past its unacknowledged ones
as their acknowledgement; the broker answers OUT_OF_ORDER_SEQUENCE_NUMBER instead, which
librdkafka retries after an epoch bump when earlier batches are outstanding."""
import socket
import struct
import threading
import time

import pytest

import confluent_kafka as ck

from klog._native.batch import build_batch, read_header
from klog.error_codes import ErrorCode as EC
from klog.protocol.messages import ApiKey
from klog.server import ServerThread

from .rawclient import call, recv_exact

pytestmark = pytest.mark.timeout(90)

CONFIG = {"num.partitions": 1, "group.initial.rebalance.delay.ms": 0}


def _produce(s, topic, pid, seq, values, epoch=0):
    batch = build_batch(values, None, None, None, 0, 0, None, pid, epoch, seq)
    body = {"transactional_id": None, "acks": -1, "timeout_ms": 5000,
            "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": batch}]}]}
    part = call(s, ApiKey.PRODUCE, 8, body)["responses"][0]["partition_responses"][0]
    return part["error_code"], part["base_offset"]


def test_batch_past_a_refused_first_batch_is_refused_with_out_of_order_sequence(server):
    """The jepsen3 reproduction on one broker: the producer's batch with sequences 0-4 never
    reached the log (in the cluster: refused by a broker that was not yet the leader); its
    batch with sequences 5-9 must not be acknowledged, else 0-4 count as stored."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        call(s, ApiKey.METADATA, 4, {"topics": [{"name": "gap"}]})
        r = call(s, ApiKey.INIT_PRODUCER_ID, 2, {"transactional_id": None,
                                                 "transaction_timeout_ms": -1})
        pid = r["producer_id"]
        assert _produce(s, "gap", pid, 5, [b"v%d" % i for i in range(5, 10)])[0] == \
            EC.OUT_OF_ORDER_SEQUENCE_NUMBER
        log = server.broker.log("gap", 0)
        assert log.log_end_offset == 0   # nothing appended
        # The producer sends its batches in order: both stored.
        assert _produce(s, "gap", pid, 0, [b"v%d" % i for i in range(5)]) == (0, 0)
        assert _produce(s, "gap", pid, 5, [b"v%d" % i for i in range(5, 10)]) == (0, 5)
        # librdkafka's recovery: a new epoch starts at 0 (also for a producer unknown here).
        assert _produce(s, "gap", pid, 0, [b"e1"], epoch=1) == (0, 10)
        assert _produce(s, "gap", pid + 1, 0, [b"other"], epoch=3) == (0, 11)
    finally:
        s.close()
    assert [r.value for r in log.records()] == \
        [b"v%d" % i for i in range(10)] + [b"e1", b"other"]


class HoldFirstProduce:
    """TCP proxy in front of the broker: the first Produce request it sees is held back until the
    next Produce request of the same connection arrives, then both are forwarded together. So
    the second batch is already in flight when the broker answers the first."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held = threading.Event()        # the first Produce is being held
        self.released = threading.Event()    # ... and went out just before the second one
        self._armed = True
        self._socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:   # the broker is stopping: the client reconnects in vain
                c.close()
                continue
            self._socks += [c, u]
            threading.Thread(target=self._pump, args=(u, c), daemon=True).start()
            threading.Thread(target=self._frames, args=(c, u), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _frames(self, src, dst):
        held = None
        try:
            while True:
                frame = recv_exact(src, 4)
                frame += recv_exact(src, struct.unpack(">i", frame)[0])
                api_key = struct.unpack(">h", frame[4:6])[0]
                if api_key == ApiKey.PRODUCE and self._armed:
                    if held is None:
                        held = frame
                        self.held.set()
                        continue
                    self._armed = False
                    dst.sendall(held + frame)
                    self.released.set()
                    held = None
                    continue
                dst.sendall(frame)
        except (OSError, ConnectionError):
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.listener.close()
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass


def _wait(event, what, timeout, producer):
    deadline = time.monotonic() + timeout
    while not event.is_set():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        producer.poll(0.02)


def test_confluent_producer_whose_first_batch_is_refused_loses_and_duplicates_nothing(
        tmp_path, monkeypatch):
    """The client side of the race: librdkafka's first batch to the partition (sequence 0) is
    refused as NOT_LEADER_OR_FOLLOWER (not stored) while its next batch (sequence 1) is already
    in flight. Before the fix the broker stored the second batch; librdkafka then reported
    the first delivered ("implicitly acked") though it was never stored. Now the second batch
    gets OUT_OF_ORDER_SEQUENCE_NUMBER, librdkafka bumps its epoch and sends everything again:
    every acknowledged value is in the log exactly once, in order."""
    from klog.server import handlers

    original = handlers.HANDLERS[ApiKey.PRODUCE]
    answers = []   # (producer epoch, base sequence, error code) of each idempotent batch
    state = {"refused": None}

    async def refuse_first_batch(ctx, body):
        t = body["topic_data"][0]
        h = read_header(bytes(t["partition_data"][0]["records"]))
        if state["refused"] is None and t["name"] == "race" and h.producer_id >= 0:
            state["refused"] = (h.producer_epoch, h.base_sequence)
            return {"responses": [{"name": "race", "partition_responses": [
                {"index": 0, "error_code": EC.NOT_LEADER_OR_FOLLOWER, "base_offset": -1}]}],
                "throttle_time_ms": 0}
        resp = await original(ctx, body)
        if t["name"] == "race":
            answers.append((h.producer_epoch, h.base_sequence,
                            resp["responses"][0]["partition_responses"][0]["error_code"]))
        return resp

    monkeypatch.setitem(handlers.HANDLERS, ApiKey.PRODUCE, refuse_first_batch)
    proxy = None
    srv = ServerThread(tmp_path / "data", CONFIG)
    try:
        # The broker advertises the proxy, so the producer's connections all go through it.
        proxy = HoldFirstProduce(0)
        srv.server.advertised = ("127.0.0.1", proxy.port)
        srv.start()
        proxy.upstream_port = srv.port
        acked, failed = [], []

        def on_delivery(err, msg):
            (failed if err is not None else acked).append(msg.value())

        # One message a batch: librdkafka counts in-flight *messages* against its limit of 5,
        # so only small batches are pipelined (in the soak the window was a thread race).
        p = ck.Producer({"bootstrap.servers": f"127.0.0.1:{proxy.port}",
                         "enable.idempotence": True, "linger.ms": 1, "batch.num.messages": 1,
                         "message.timeout.ms": 60000, "retry.backoff.ms": 50})
        values = [b"v%03d" % i for i in range(40)]
        p.produce("race", value=values[0], on_delivery=on_delivery)
        _wait(proxy.held, "the first batch to reach the proxy", 30, p)
        p.produce("race", value=values[1], on_delivery=on_delivery)
        _wait(proxy.released, "the second batch to follow the first", 30, p)
        for v in values[2:]:
            p.produce("race", value=v, on_delivery=on_delivery)
        assert p.flush(60) == 0
        log = srv.broker.log("race", 0)
        stored = [r.value for r in log.records()]
    finally:
        srv.stop()
        if proxy is not None:
            proxy.close()
    # The race happened: the first batch (epoch 0, sequence 0) was refused and the broker then
    # saw a later batch of the same epoch before any batch of that producer was stored.
    assert state["refused"] == (0, 0)
    assert answers and answers[0][0] == 0 and answers[0][1] > 0, answers
    assert not failed, failed[:5]
    assert sorted(acked) == values
    assert len(stored) == len(set(stored)), "a value stored twice"
    lost = sorted(set(acked) - set(stored))
    assert not lost, f"acknowledged but not stored: {lost[:12]}"
    assert stored == values   # one idempotent producer: its order kept
    assert answers[0][2] == EC.OUT_OF_ORDER_SEQUENCE_NUMBER, answers
