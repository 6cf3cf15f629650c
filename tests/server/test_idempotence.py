"""Idempotent producers: InitProducerId, de-duplication of retried batches, across restarts."""
import os
import shutil
import socket
import threading
import time

import pytest

import confluent_kafka as ck

from klog._native.batch import build_batch
from klog.protocol.messages import ApiKey
from klog.server import ServerThread
from klog.storage.log import Log
from klog.storage.producer_state import (
    InvalidProducerEpochError, OutOfOrderSequenceError, increment_sequence,
)

from .rawclient import call as _raw_call

pytestmark = pytest.mark.timeout(60)

CONFIG = {"num.partitions": 1, "group.initial.rebalance.delay.ms": 0}


def _call(s, api_key, version, body, cid=1):
    return _raw_call(s, api_key, version, body, cid, "raw")


def _connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _init_pid(s):
    r = _call(s, ApiKey.INIT_PRODUCER_ID, 2, {"transactional_id": None,
                                              "transaction_timeout_ms": 1000})
    assert r["error_code"] == 0 and r["producer_epoch"] == 0
    return r["producer_id"]


def _produce(s, topic, batch):
    body = {"transactional_id": None, "acks": -1, "timeout_ms": 5000,
            "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": batch}]}]}
    r = _call(s, ApiKey.PRODUCE, 7, body)
    part = r["responses"][0]["partition_responses"][0]
    return part["error_code"], part["base_offset"]


def _batch(pid, seq, values, epoch=0):
    return build_batch(values, None, None, None, 0, 0, None, pid, epoch, seq)


def _values(log):
    return [r.value for r in log.records()]


def test_duplicate_batch_gets_original_offset_and_one_copy(server):
    s = _connect(server.port)
    _call(s, ApiKey.METADATA, 4, {"topics": [{"name": "idem"}]})
    pid = _init_pid(s)
    assert _produce(s, "idem", _batch(pid, 0, [b"a", b"b"])) == (0, 0)
    assert _produce(s, "idem", _batch(pid, 2, [b"c"])) == (0, 2)
    # Retries of both (the older one is still among the last 5): original offsets, no append.
    assert _produce(s, "idem", _batch(pid, 2, [b"c"])) == (0, 2)
    assert _produce(s, "idem", _batch(pid, 0, [b"a", b"b"])) == (0, 0)
    # Out of order: a gap in the sequence.
    assert _produce(s, "idem", _batch(pid, 7, [b"x"]))[0] == 45
    # An older epoch after a newer one was seen.
    assert _produce(s, "idem", _batch(pid, 0, [b"new"], epoch=1)) == (0, 3)
    assert _produce(s, "idem", _batch(pid, 1, [b"old"], epoch=0))[0] == 47
    # Non-idempotent batches are never de-duplicated.
    assert _produce(s, "idem", build_batch([b"plain"])) == (0, 4)
    assert _produce(s, "idem", build_batch([b"plain"])) == (0, 5)
    s.close()
    log = server.broker.log("idem", 0)
    assert _values(log) == [b"a", b"b", b"c", b"new", b"plain", b"plain"]


def test_duplicate_recognised_after_restart_and_ids_not_reused(tmp_path):
    data = tmp_path / "data"
    srv = ServerThread(data, CONFIG).start()
    try:
        s = _connect(srv.port)
        _call(s, ApiKey.METADATA, 4, {"topics": [{"name": "rs"}]})
        pid = _init_pid(s)
        for i in range(8):
            assert _produce(s, "rs", _batch(pid, i, [b"v%d" % i])) == (0, i)
        s.close()
    finally:
        srv.stop()
    srv = ServerThread(data, CONFIG).start()
    try:
        s = _connect(srv.port)
        assert _produce(s, "rs", _batch(pid, 7, [b"v7"])) == (0, 7)     # the last batch: dup
        assert _produce(s, "rs", _batch(pid, 4, [b"v4"])) == (0, 4)     # among the last 5
        assert _produce(s, "rs", _batch(pid, 9, [b"v9"]))[0] == 45
        assert _produce(s, "rs", _batch(pid, 8, [b"v8"])) == (0, 8)
        pid2 = _init_pid(s)
        assert pid2 != pid and pid2 > pid
        s.close()
        assert _values(srv.broker.log("rs", 0)) == [b"v%d" % i for i in range(9)]
    finally:
        srv.stop()


def test_state_rebuilt_from_headers_after_crash(tmp_path):
    """No clean close, no snapshot: the state comes from walking the batch headers."""
    src, crashed = tmp_path / "src", tmp_path / "crashed"
    log = Log.open(src)
    try:
        for i in range(0, 30, 3):
            base, dup = log.append_idempotent(_batch(77, i, [b"x", b"y", b"z"]))
            assert (base, dup) == (i, False)
        log.flush()
        # A copy of the files as a crash would leave them (no marker, no snapshot).
        shutil.copytree(src, crashed, ignore=shutil.ignore_patterns(".lock"))
    finally:
        log.close()
    assert not os.path.exists(crashed / "producer.snapshot")
    log = Log.open(crashed)
    try:
        assert log.append_idempotent(_batch(77, 27, [b"x", b"y", b"z"])) == (27, True)
        assert log.append_idempotent(_batch(77, 15, [b"x", b"y", b"z"])) == (15, True)
        with pytest.raises(OutOfOrderSequenceError):
            log.append_idempotent(_batch(77, 3, [b"x", b"y", b"z"]))   # older than the last 5
        assert log.append_idempotent(_batch(77, 30, [b"w"])) == (30, False)
        # Truncation forgets the removed batch: the same sequence is appended again.
        log.truncate_to(30)
        assert log.append_idempotent(_batch(77, 30, [b"w2"])) == (30, False)
        assert log.log_end_offset == 31
        assert log.append_idempotent(_batch(77, 0, [b"e1"], epoch=1)) == (31, False)
        with pytest.raises(InvalidProducerEpochError):
            log.append_idempotent(_batch(77, 31, [b"old"], epoch=0))
        with pytest.raises(OutOfOrderSequenceError):
            log.append_idempotent(_batch(77, 5, [b"n"], epoch=2))   # new epoch must start at 0
        assert log.log_end_offset == 32
    finally:
        log.close()


def test_concurrent_retries_append_once(tmp_path):
    log = Log.open(tmp_path / "c")
    try:
        batch = _batch(5, 0, [b"once"])
        results = []
        barrier = threading.Barrier(8)

        def send():
            barrier.wait(5)
            results.append(log.append_idempotent(batch))

        threads = [threading.Thread(target=send) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert sorted(results) == [(0, False)] + [(0, True)] * 7
        assert log.log_end_offset == 1
    finally:
        log.close()


def test_sequence_wraps_at_int32():
    m = 2**31 - 1
    assert increment_sequence(m, 1) == 0
    assert increment_sequence(m - 1, 3) == 1
    assert increment_sequence(5, 2) == 7


def test_wrapping_sequence_accepted(tmp_path):
    log = Log.open(tmp_path / "w")
    try:
        m = 2**31 - 1
        # A log starting at 10 may have forgotten producer 9 (its batches deleted), so its
        # batch at sequence m - 1 is taken as a continuation (KIP-360).
        log.truncate_fully_and_start_at(10)
        assert log.append_idempotent(_batch(9, m - 1, [b"a", b"b"])) == (10, False)
        assert log.append_idempotent(_batch(9, 0, [b"c"])) == (12, False)
        assert log.append_idempotent(_batch(9, m - 1, [b"a", b"b"])) == (10, True)
    finally:
        log.close()


def test_confluent_idempotent_producer_across_restart(tmp_path, monkeypatch):
    """C2/C3: produce responses are lost (the connection drops after the append), and once right
    before the server is stopped mid-stream and restarted on the same port and data dir, so
    librdkafka retries batches that are already in the log, some against the new server. Every
    acknowledged record is in the log exactly once, in order."""
    from klog.server import handlers

    original = handlers.HANDLERS[ApiKey.PRODUCE]
    lock = threading.Lock()
    state = {"calls": 0, "drops": 0, "arm": False}
    restart = threading.Event()

    async def lossy_produce(ctx, body):
        resp = await original(ctx, body)
        with lock:
            state["calls"] += 1
            drop = state["calls"] % 3 == 0 and state["drops"] < 12
            if drop:
                state["drops"] += 1
                if state["arm"]:
                    state["arm"] = False
                    restart.set()
        if drop:
            raise ConnectionAbortedError("test: produce response lost")
        return resp

    monkeypatch.setitem(handlers.HANDLERS, ApiKey.PRODUCE, lossy_produce)
    data = tmp_path / "data"
    srv = ServerThread(data, CONFIG).start()
    port = srv.port
    acked, failed = [], []

    def on_delivery(err, msg):
        (failed if err is not None else acked).append(msg.value())

    p = ck.Producer({"bootstrap.servers": f"127.0.0.1:{port}", "enable.idempotence": True,
                     "linger.ms": 2, "batch.num.messages": 20, "message.timeout.ms": 30000,
                     "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 200,
                     "retry.backoff.ms": 50})
    n = 600
    restarted = False
    try:
        for i in range(n):
            p.produce("ik", value=b"v%05d" % i, on_delivery=on_delivery)
            if i % 20 == 0:
                p.poll(0.01)
            if i == n // 2:
                with lock:
                    state["arm"] = True
                p.flush(0)
                deadline = time.monotonic() + 15
                while not restart.is_set() and time.monotonic() < deadline:
                    p.poll(0.01)
                assert restart.is_set()
                srv.stop()   # the dropped batch is in the log, its ack never sent
                srv = ServerThread(data, CONFIG, port=port).start()
                restarted = True
        assert p.flush(40) == 0
    finally:
        srv.stop()
    assert restarted and state["drops"] >= 3
    assert not failed, failed[:5]
    assert len(acked) == n
    srv = ServerThread(data, CONFIG).start()
    try:
        values = _values(srv.broker.log("ik", 0))
    finally:
        srv.stop()
    assert len(values) == len(set(values)), "duplicates in the log (C2)"
    assert set(acked) <= set(values), "acknowledged records lost (C3)"
    assert values == sorted(values)   # one idempotent producer: order kept


def test_snapshot_used_and_stale_snapshot_ignored(tmp_path):
    d = tmp_path / "s"
    with Log.open(d) as log:
        for i in range(4):
            log.append_idempotent(_batch(3, i, [b"s%d" % i]))
    snap = d / "producer.snapshot"
    assert snap.exists()
    with Log.open(d) as log:
        assert log.append_idempotent(_batch(3, 3, [b"s3"])) == (3, True)
    # A snapshot past the log end (the log was cut below it) is dropped; headers are walked.
    text = snap.read_text().replace('"offset": 4', '"offset": 999')
    snap.write_text(text.replace('[[0, 0, 0]', '[[0, 0, 50]'))
    log = Log.open(d)
    try:
        assert not snap.exists()
        assert log.append_idempotent(_batch(3, 0, [b"s0"])) == (0, True)
        assert log.append_idempotent(_batch(3, 4, [b"s4"])) == (4, False)
    finally:
        log.close()


def test_committed_offsets_survive_restart(tmp_path):
    """Server restart: the consumer reconnects and the group's committed offset is intact."""
    data = tmp_path / "data"
    srv = ServerThread(data, CONFIG).start()
    port = srv.port
    c = None
    try:
        p = ck.Producer({"bootstrap.servers": f"127.0.0.1:{port}", "enable.idempotence": True})
        for i in range(10):
            p.produce("co", value=b"%d" % i)
        assert p.flush(15) == 0
        c = ck.Consumer({"bootstrap.servers": f"127.0.0.1:{port}", "group.id": "g-restart",
                         "enable.auto.commit": False, "reconnect.backoff.ms": 50,
                         "reconnect.backoff.max.ms": 200})
        c.assign([ck.TopicPartition("co", 0, 0)])
        got = []
        deadline = time.monotonic() + 15
        while len(got) < 6 and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got.append(m)
        assert len(got) == 6
        c.commit(offsets=[ck.TopicPartition("co", 0, 6)], asynchronous=False)
        srv.stop()
        srv = ServerThread(data, CONFIG, port=port).start()
        committed = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                committed = c.committed([ck.TopicPartition("co", 0)], timeout=5)[0].offset
                break
            except ck.KafkaException:
                time.sleep(0.2)
        assert committed == 6
        rest = []
        deadline = time.monotonic() + 15
        while len(rest) < 4 and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                rest.append(m.value())
        assert rest == [b"6", b"7", b"8", b"9"]
    finally:
        if c is not None:
            c.close()
        srv.stop()
