"""Over the wire, consumers see what the Partition says is committed: Fetch and ListOffsets stop
at the high watermark, a long-polling Fetch wakes when it moves, and a Produce with acks=all is
answered once the high watermark passes its batch (REQUEST_TIMED_OUT if it never does).
Replication moves the HW; here the test does, through the same Partition methods."""
import socket
import struct
import threading
import time

import klog
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.frames import decode_response, encode_request
from klog.protocol.messages import ApiKey

from .rawclient import call, recv_exact


def _sock(server):
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def fetch(s, topic, offset, max_wait_ms=0, min_bytes=0, cid=1):
    return call(s, ApiKey.FETCH, 12, {
        "replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": min_bytes,
        "max_bytes": 1 << 20, "isolation_level": 0, "session_id": 0, "session_epoch": -1,
        "topics": [{"topic": topic, "partitions": [
            {"partition": 0, "fetch_offset": offset, "log_start_offset": -1,
             "partition_max_bytes": 1 << 20}]}],
        "forgotten_topics_data": [], "rack_id": ""}, cid=cid)["responses"][0]["partitions"][0]


def latest(s, topic):
    r = call(s, ApiKey.LIST_OFFSETS, 7, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": topic, "partitions": [{"partition_index": 0, "timestamp": -1}]}]})
    return r["topics"][0]["partitions"][0]["offset"]


def produce_request(topic, values, acks, timeout_ms, cid):
    body = {"transactional_id": None, "acks": acks, "timeout_ms": timeout_ms, "topic_data": [
        {"name": topic, "partition_data": [{"index": 0, "records": klog.encode_batch(values)}]}]}
    return encode_request(ApiKey.PRODUCE, 9, cid, "raw", body).getvalue()


def read_response(s, api_key, version, cid):
    size = struct.unpack(">i", recv_exact(s, 4))[0]
    got, body = decode_response(api_key, version, memoryview(recv_exact(s, size)))
    assert got == cid
    return body


def offsets(records):
    return [r.offset for r in klog.decode_batch(bytes(records))]


def test_fetch_and_list_offsets_stop_at_the_high_watermark(server):
    broker = server.broker
    broker.create_topic("hw", 1)
    part = broker.partition("hw", 0)
    part.append([b"a", b"b", b"c"])
    part.append([b"d", b"e", b"f"])
    part.become_leader(part.leader_epoch, high_watermark=3)   # followers have only 0..2
    with _sock(server) as s:
        p = fetch(s, "hw", 0)
        assert (p["error_code"], p["high_watermark"], p["last_stable_offset"]) == (0, 3, 3)
        assert offsets(p["records"]) == [0, 1, 2]
        p = fetch(s, "hw", 3)                   # at the HW, below the log end: nothing, no error
        assert (p["error_code"], offsets(p["records"])) == (0, [])
        assert fetch(s, "hw", 7)["error_code"] == EC.OFFSET_OUT_OF_RANGE   # past the log end
        assert latest(s, "hw") == 3


def test_long_poll_fetch_wakes_when_the_high_watermark_moves(server):
    broker = server.broker
    broker.create_topic("hw-wait", 1)
    part = broker.partition("hw-wait", 0)
    part.become_leader(part.leader_epoch, high_watermark=0)
    part.append([b"a", b"b"])
    got = {}

    def poll():
        with _sock(server) as s:
            got["p"] = fetch(s, "hw-wait", 0, max_wait_ms=20_000, min_bytes=1)
            got["at"] = time.monotonic()

    t = threading.Thread(target=poll)
    t.start()
    moved = time.monotonic()
    part.update_high_watermark(2)
    t.join(30)
    assert not t.is_alive()
    assert offsets(got["p"]["records"]) == [0, 1]
    assert got["at"] - moved < 15      # woken by the move, not by max_wait_ms


def test_acks_all_is_answered_when_the_high_watermark_passes_the_batch(server):
    broker = server.broker
    broker.create_topic("hw-acks", 1)
    part = broker.partition("hw-acks", 0)
    part.become_leader(part.leader_epoch, high_watermark=0, in_sync_replicas=[0, 1])
    with _sock(server) as s:
        s.sendall(produce_request("hw-acks", [b"a", b"b"], -1, 30_000, cid=7))
        deadline = time.monotonic() + 30
        while part.log_end_offset < 2:         # appended, but not committed yet
            assert time.monotonic() < deadline
            time.sleep(0.01)
        part.update_high_watermark(1)          # not past the batch: still waiting
        part.update_high_watermark(2)
        r = read_response(s, ApiKey.PRODUCE, 9, 7)
        p = r["responses"][0]["partition_responses"][0]
        assert (p["error_code"], p["base_offset"]) == (0, 0)


def test_acks_all_times_out_when_the_high_watermark_stays(server):
    broker = server.broker
    broker.create_topic("hw-timeout", 1)
    part = broker.partition("hw-timeout", 0)
    part.become_leader(part.leader_epoch, high_watermark=0, in_sync_replicas=[0, 1])
    with _sock(server) as s:
        r = call(s, ApiKey.PRODUCE, 9, {"transactional_id": None, "acks": -1, "timeout_ms": 200,
                                        "topic_data": [{"name": "hw-timeout", "partition_data": [
                                            {"index": 0, "records": klog.encode_batch([b"a"])}]}]})
        p = r["responses"][0]["partition_responses"][0]
        assert p["error_code"] == EC.REQUEST_TIMED_OUT
        # acks=1 is answered on the append, whatever the HW
        r = call(s, ApiKey.PRODUCE, 9, {"transactional_id": None, "acks": 1, "timeout_ms": 200,
                                        "topic_data": [{"name": "hw-timeout", "partition_data": [
                                            {"index": 0, "records": klog.encode_batch([b"b"])}]}]},
                 cid=2)
        p = r["responses"][0]["partition_responses"][0]
        assert (p["error_code"], p["base_offset"]) == (0, 1)


def test_acks_all_below_min_insync_replicas_is_refused_over_the_wire(server):
    broker = server.broker
    broker.create_topic("hw-isr", 1, {"min.insync.replicas": 2})
    part = broker.partition("hw-isr", 0)
    part.become_leader(part.leader_epoch, high_watermark=0, in_sync_replicas=[0])
    with _sock(server) as s:
        r = call(s, ApiKey.PRODUCE, 9, {"transactional_id": None, "acks": -1, "timeout_ms": 5000,
                                        "topic_data": [{"name": "hw-isr", "partition_data": [
                                            {"index": 0, "records": klog.encode_batch([b"a"])}]}]})
        assert r["responses"][0]["partition_responses"][0]["error_code"] == EC.NOT_ENOUGH_REPLICAS
    assert part.log_end_offset == 0


def test_single_node_acks_all_unchanged(server):
    """One broker is its own ISR: acks=all is answered on the append, as before."""
    server.broker.create_topic("hw-single", 1)
    with _sock(server) as s:
        r = call(s, ApiKey.PRODUCE, 9, {"transactional_id": None, "acks": -1, "timeout_ms": 5000,
                                        "topic_data": [{"name": "hw-single", "partition_data": [
                                            {"index": 0, "records": klog.encode_batch([b"a"])}]}]})
        assert r["responses"][0]["partition_responses"][0]["error_code"] == 0
        assert latest(s, "hw-single") == 1
