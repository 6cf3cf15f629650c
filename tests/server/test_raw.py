"""Raw-socket tests: protocol edge cases and hardening (bad input closes one connection only)."""
import socket
import struct
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from klog.error_codes import ErrorCode as EC
from klog.protocol.frames import decode_response, encode_request
from klog.protocol.messages import REQUESTS, ApiKey

from .rawclient import call as _raw_call, recv_exact as _recv_exact

pytestmark = pytest.mark.timeout(60)


def _connect(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    return s


def _call(s, api_key, version, body, cid=1):
    return _raw_call(s, api_key, version, body, cid, "raw")


def _closed(s, timeout=5):
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def _still_serves(server):
    s = _connect(server)
    try:
        r = _call(s, ApiKey.API_VERSIONS, 3, {"client_software_name": "t",
                                               "client_software_version": "1"})
        assert r["error_code"] == 0
    finally:
        s.close()


def test_api_versions_advertises_every_handler(server):
    s = _connect(server)
    r = _call(s, ApiKey.API_VERSIONS, 0, {})
    got = {k["api_key"]: (k["min_version"], k["max_version"]) for k in r["api_keys"]}
    assert got == {k: (m.min_version, m.max_version) for k, m in REQUESTS.items()}
    s.close()


def test_api_versions_unsupported_version_gets_error_35_v0_body(server):
    s = _connect(server)
    # ApiVersions v99: header v2 (flexible), empty tagged fields, then a body we do not parse.
    payload = struct.pack(">hhih", 18, 99, 7, 1) + b"x" + b"\x00" + b"\x00\x00"
    s.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", _recv_exact(s, 4))[0]
    cid, body = decode_response(ApiKey.API_VERSIONS, 0, memoryview(_recv_exact(s, size)))
    assert cid == 7 and body["error_code"] == 35 and body["api_keys"]
    s.close()


def test_metadata_null_and_empty_topic_lists(server):
    s = _connect(server)
    _call(s, ApiKey.METADATA, 4, {"topics": [{"name": "auto1"}], "allow_auto_topic_creation": True})
    r = _call(s, ApiKey.METADATA, 1, {"topics": None})
    assert [t["name"] for t in r["topics"]] == ["auto1"]
    assert r["brokers"][0]["port"] == server.port and r["controller_id"] == 0
    assert _call(s, ApiKey.METADATA, 1, {"topics": []})["topics"] == []
    assert [t["name"] for t in _call(s, ApiKey.METADATA, 0, {"topics": []})["topics"]] == ["auto1"]
    r = _call(s, ApiKey.METADATA, 4, {"topics": [{"name": "nope"}], "allow_auto_topic_creation": False})
    assert r["topics"][0]["error_code"] == 3
    s.close()


def test_produce_acks0_no_response_and_errors(server):
    s = _connect(server)
    _call(s, ApiKey.METADATA, 4, {"topics": [{"name": "a0"}]})
    body = {"transactional_id": None, "acks": 0, "timeout_ms": 1000,
            "topic_data": [{"name": "a0", "partition_data": [{"index": 0, "records": b"garbage!"}]}]}
    s.sendall(encode_request(ApiKey.PRODUCE, 7, 5, "raw", body).getvalue())
    # The next answer on the connection is for the next request, not the acks=0 produce.
    body["acks"] = 1
    r = _call(s, ApiKey.PRODUCE, 7, body, cid=6)
    assert r["responses"][0]["partition_responses"][0]["error_code"] == 2   # CORRUPT_MESSAGE
    body["topic_data"][0]["partition_data"][0]["index"] = 9
    r = _call(s, ApiKey.PRODUCE, 7, body, cid=8)
    assert r["responses"][0]["partition_responses"][0]["error_code"] == 3
    s.close()


def test_produce_with_two_batches_for_one_partition_is_refused(server):
    """Kafka's rule for Produce v3+: exactly one batch per partition (INVALID_RECORD, 87)."""
    from klog._native.batch import build_batch

    s = _connect(server)
    _call(s, ApiKey.METADATA, 4, {"topics": [{"name": "two"}]})
    one = build_batch([b"a"])
    body = {"transactional_id": None, "acks": 1, "timeout_ms": 1000,
            "topic_data": [{"name": "two", "partition_data": [{"index": 0, "records": one + one}]}]}
    r = _call(s, ApiKey.PRODUCE, 7, body)["responses"][0]["partition_responses"][0]
    assert r["error_code"] == 87 and r["base_offset"] == -1
    body["topic_data"][0]["partition_data"][0]["records"] = one
    r = _call(s, ApiKey.PRODUCE, 7, body, cid=2)["responses"][0]["partition_responses"][0]
    assert (r["error_code"], r["base_offset"]) == (0, 0)   # nothing of the refused request stored
    s.close()


def test_fetch_offset_out_of_range_and_list_offsets(server):
    p = KafkaProducer(bootstrap_servers=server.address, enable_idempotence=False)
    for i in range(5):
        p.send("oor", b"x%d" % i, timestamp_ms=1_000_000 + i * 1000)
    p.flush()
    p.close()
    s = _connect(server)
    r = _call(s, ApiKey.FETCH, 11, {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
        "isolation_level": 0, "session_id": 0, "session_epoch": -1,
        "topics": [{"topic": "oor", "partitions": [
            {"partition": 0, "fetch_offset": 99, "log_start_offset": -1,
             "partition_max_bytes": 1 << 20}]}],
        "forgotten_topics_data": [], "rack_id": ""})
    part = r["responses"][0]["partitions"][0]
    assert r["session_id"] == 0
    assert part["error_code"] == 1 and part["high_watermark"] == 5 and part["log_start_offset"] == 0
    r = _call(s, ApiKey.LIST_OFFSETS, 5, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": "oor", "partitions": [{"partition_index": 0, "timestamp": t}
                                       for t in (-1, -2, 1_002_500, 9_999_999)]}]})
    offsets = [p["offset"] for p in r["topics"][0]["partitions"]]
    assert offsets == [5, 0, 3, -1]
    s.close()


def test_garbage_frame_closes_only_that_connection(server):
    bad = _connect(server)
    bad.sendall(struct.pack(">i", 6) + b"\xff\xff\xff\xff\xff\xff")
    assert _closed(bad)
    _still_serves(server)


def test_truncated_body_closes_connection(server):
    bad = _connect(server)
    payload = encode_request(ApiKey.METADATA, 4, 1, "x", {"topics": [{"name": "abc"}]}).getvalue()[4:]
    payload = payload[:-4]   # cut the body short
    bad.sendall(struct.pack(">i", len(payload)) + payload)
    assert _closed(bad)
    _still_serves(server)


def test_oversized_frame_declaration_closes_connection(server):
    bad = _connect(server)
    bad.sendall(struct.pack(">i", 200 * 1024 * 1024) + b"\x00" * 16)
    assert _closed(bad)
    neg = _connect(server)
    neg.sendall(struct.pack(">i", -5))
    assert _closed(neg)
    _still_serves(server)


def test_unknown_api_key_closes_connection_while_client_works(server):
    p = KafkaProducer(bootstrap_servers=server.address, enable_idempotence=False)
    p.send("live", b"before").get(timeout=10)
    bad = _connect(server)
    payload = struct.pack(">hhih", 999, 0, 1, -1)
    bad.sendall(struct.pack(">i", len(payload)) + payload)
    assert _closed(bad)
    p.send("live", b"after").get(timeout=10)
    p.close()
    c = KafkaConsumer(bootstrap_servers=server.address, enable_auto_commit=False)
    tp = TopicPartition("live", 0)
    c.assign([tp])
    c.seek(tp, 0)
    got = []
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        for recs in c.poll(200).values():
            got += [r.value for r in recs]
    assert got == [b"before", b"after"]
    c.close()


def test_unsupported_version_of_other_api_closes_connection(server):
    bad = _connect(server)
    payload = struct.pack(">hhih", ApiKey.METADATA, 77, 1, -1) + b"\x00"
    bad.sendall(struct.pack(">i", len(payload)) + payload)
    assert _closed(bad)
    _still_serves(server)


def test_init_producer_id_and_offset_for_leader_epoch(server):
    s = _connect(server)
    a = _call(s, ApiKey.INIT_PRODUCER_ID, 2, {"transactional_id": None, "transaction_timeout_ms": 1000})
    b = _call(s, ApiKey.INIT_PRODUCER_ID, 2, {"transactional_id": None, "transaction_timeout_ms": 1000})
    assert a["error_code"] == b["error_code"] == 0 and a["producer_id"] != b["producer_id"]
    _call(s, ApiKey.METADATA, 4, {"topics": [{"name": "ep"}]})
    r = _call(s, ApiKey.OFFSET_FOR_LEADER_EPOCH, 3, {"replica_id": -1, "topics": [
        {"topic": "ep", "partitions": [{"partition": 0, "current_leader_epoch": -1, "leader_epoch": 0}]}]})
    part = r["topics"][0]["partitions"][0]
    assert part["error_code"] == 0 and part["leader_epoch"] == 0 and part["end_offset"] == 0
    s.close()


def _fetch_body(topic, offset, max_wait_ms):
    return {"replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": 1, "max_bytes": 1 << 20,
            "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": topic, "partitions": [
                {"partition": 0, "fetch_offset": offset, "log_start_offset": -1,
                 "partition_max_bytes": 1 << 20}]}],
            "forgotten_topics_data": [], "rack_id": ""}


@pytest.mark.parametrize("appender", ["wire", "embedded-thread"])
def test_waiting_fetch_wakes_on_append(server, appender):
    """A fetch waiting out max_wait_ms for min_bytes returns as soon as a record is appended,
    whether by a Produce on another connection (appended on the event loop) or by an embedded
    producer in another thread of the same process."""
    import threading

    from klog._native.batch import build_batch

    server.broker.create_topic("wake", 1)
    s = _connect(server)
    s.settimeout(20)
    s.sendall(encode_request(ApiKey.FETCH, 11, 7, "raw", _fetch_body("wake", 0, 10_000)).getvalue())
    # Wait until the fetch is parked (registered as a waiter for appends), so the append
    # below really is what wakes it.
    deadline = time.monotonic() + 10
    while not server.server._waiters:
        assert time.monotonic() < deadline, "the fetch never started waiting"
        time.sleep(0.005)

    def append():
        if appender == "wire":
            p = _connect(server)
            body = {"transactional_id": None, "acks": 1, "timeout_ms": 1000, "topic_data": [
                {"name": "wake", "partition_data": [{"index": 0, "records": build_batch([b"hi"])}]}]}
            assert _call(p, ApiKey.PRODUCE, 7, body)["responses"][0]["partition_responses"][0][
                "error_code"] == 0
            p.close()
        else:
            with server.broker.producer() as prod:
                prod.send("wake", b"hi", partition=0).get()

    t0 = time.monotonic()
    threading.Thread(target=append).start()
    size = struct.unpack(">i", _recv_exact(s, 4))[0]
    waited = time.monotonic() - t0
    _, r = decode_response(ApiKey.FETCH, 11, memoryview(_recv_exact(s, size)))
    part = r["responses"][0]["partitions"][0]
    assert part["high_watermark"] == 1 and bytes(part["records"])
    assert waited < 5, f"fetch answered after {waited:.1f} s: woken by its timeout, not the append"
    s.close()


def test_produce_to_fsyncing_topic_is_durable_on_ack(server):
    """A topic with flush.messages=1: the produce is acknowledged once the batch is fsynced
    (the append runs off the event loop so the fsync does not stall other connections)."""
    from klog._native.batch import build_batch

    server.broker.create_topic("synced", 1, {"flush.messages": 1})
    s = _connect(server)
    body = {"transactional_id": None, "acks": -1, "timeout_ms": 1000, "topic_data": [
        {"name": "synced", "partition_data": [{"index": 0, "records": build_batch([b"a", b"b"])}]}]}
    r = _call(s, ApiKey.PRODUCE, 7, body)["responses"][0]["partition_responses"][0]
    assert r["error_code"] == 0
    log = server.broker.log("synced", 0)
    assert log.recovery_point == log.log_end_offset == 2
    s.close()


def test_unsent_splits_gathered_buffers_at_any_byte():
    from klog.server.server import _unsent

    bufs = [b"abc", bytearray(b"defg"), memoryview(b"hij")]
    for sent in range(11):
        assert b"".join(bytes(b) for b in _unsent(bufs, sent)) == b"abcdefghij"[sent:]


def test_large_fetch_to_a_slow_reader_arrives_intact(server):
    """A 24 MiB fetch response is more than the socket takes at once: the part the kernel
    doesn't take from the zero-copy write goes through the transport, in order."""
    from klog._native.batch import build_batch

    server.broker.create_topic("big", 1, {"max.message.bytes": 2 << 20})
    log = server.broker.log("big", 0)
    for i in range(24):
        log.append_batch(build_batch([bytes([i]) * 1000] * 1000))
    expected = bytes(log.read(0, 64 << 20))
    s = _connect(server)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    body = _fetch_body("big", 0, 0)
    body["max_bytes"] = body["topics"][0]["partitions"][0]["partition_max_bytes"] = 64 << 20
    s.sendall(encode_request(ApiKey.FETCH, 11, 3, "raw", body).getvalue())
    # Until the server's first write has filled the socket buffers and the rest waits in the
    # transport's buffer: the path under test.
    deadline = time.monotonic() + 10
    while not any(c.writer.transport.get_write_buffer_size() > 0
                  for c in list(server.server._conns)):
        assert time.monotonic() < deadline, "the response never overflowed the socket buffer"
        time.sleep(0.005)
    size = struct.unpack(">i", _recv_exact(s, 4))[0]
    _, r = decode_response(ApiKey.FETCH, 11, memoryview(_recv_exact(s, size)))
    assert bytes(r["responses"][0]["partitions"][0]["records"]) == expected
    assert len(expected) > 20 << 20
    _still_serves(server)
    s.close()


def test_pipelined_produces_answered_in_order_and_not_held_by_a_waiting_fetch(server):
    """Requests read together: the produce answers go out together, in order, and before a
    fetch behind them starts waiting out its max_wait_ms."""
    from klog._native.batch import build_batch

    server.broker.create_topic("pipe", 1)
    s = _connect(server)
    s.settimeout(20)

    def produce(cid):
        body = {"transactional_id": None, "acks": 1, "timeout_ms": 1000, "topic_data": [
            {"name": "pipe", "partition_data": [{"index": 0, "records": build_batch([b"%d" % cid])}]}]}
        return encode_request(ApiKey.PRODUCE, 7, cid, "raw", body).getvalue()

    fetch = encode_request(ApiKey.FETCH, 11, 99, "raw", _fetch_body("pipe", 20, 3000)).getvalue()
    s.sendall(b"".join(produce(cid) for cid in range(1, 21)) + fetch)
    t0 = time.monotonic()
    for cid in range(1, 21):
        size = struct.unpack(">i", _recv_exact(s, 4))[0]
        got_cid, r = decode_response(ApiKey.PRODUCE, 7, memoryview(_recv_exact(s, size)))
        part = r["responses"][0]["partition_responses"][0]
        assert (got_cid, part["error_code"], part["base_offset"]) == (cid, 0, cid - 1)
    assert time.monotonic() - t0 < 2, "produce answers waited for the fetch behind them"
    size = struct.unpack(">i", _recv_exact(s, 4))[0]
    got_cid, _ = decode_response(ApiKey.FETCH, 11, memoryview(_recv_exact(s, size)))
    assert got_cid == 99
    s.close()


def test_elect_leaders_on_a_single_node_needs_no_election(server):
    """A single node leads every partition as its preferred replica: ElectLeaders (43) answers
    ELECTION_NOT_NEEDED for a named partition, UNKNOWN_TOPIC_OR_PARTITION for one that does not
    exist, and nothing when asked for every partition (Kafka leaves those out)."""
    server.broker.create_topic("el", partitions=2)
    s = _connect(server)
    for version, election_type in ((0, None), (1, 0), (2, 1)):
        body = {"topic_partitions": [{"topic": "el", "partitions": [1, 5]},
                                     {"topic": "nope", "partitions": [0]}],
                "timeout_ms": 1000}
        if election_type is not None:
            body["election_type"] = election_type
        r = _call(s, ApiKey.ELECT_LEADERS, version, body)
        got = {(t["topic"], p["partition_id"]): p["error_code"]
               for t in r["replica_election_results"] for p in t["partition_result"]}
        assert got == {("el", 1): EC.ELECTION_NOT_NEEDED, ("el", 5): EC.UNKNOWN_TOPIC_OR_PARTITION,
                       ("nope", 0): EC.UNKNOWN_TOPIC_OR_PARTITION}, (version, r)
        body["topic_partitions"] = None
        assert _call(s, ApiKey.ELECT_LEADERS, version, body)["replica_election_results"] == []
    s.close()
