"""Fetch, ListOffsets, Produce, DeleteRecords and OffsetForLeaderEpoch at their boundaries, in
raw requests (exact bytes, no client smoothing anything over).

- Fetch at the log end: empty, no error; at end + 1 and below the log start (after
  DeleteRecords, after retention): OFFSET_OUT_OF_RANGE with an empty (never null) record set.
- Unknown topic or partition: UNKNOWN_TOPIC_OR_PARTITION (3) in every API that names partitions.
- KIP-74 byte limits: a response holds at most ``max_bytes`` and a partition at most its
  ``partition_max_bytes`` of records, except for the first batch of the whole response.
- A Produce with several topics and partitions: one answer per partition, each stored.
"""
import socket
import struct
import time

import pytest

from klog._native.batch import build_batch, decode_records, read_header
from klog.protocol.messages import ApiKey

from .rawclient import call

pytestmark = pytest.mark.timeout(60)

OFFSET_OUT_OF_RANGE, UNKNOWN_TOPIC_OR_PARTITION, CORRUPT_MESSAGE = 1, 3, 2


@pytest.fixture
def conn(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    yield s
    s.close()


def fetch(s, parts, max_bytes=1 << 20, version=12, max_wait_ms=0):
    """Fetch [(topic, partition, offset, partition_max_bytes)] in that order; returns
    {(topic, partition): partition answer}, checking each asked partition is answered once and
    in order."""
    topics = []
    for topic, partition, offset, pmax in parts:
        if not topics or topics[-1]["topic"] != topic:
            topics.append({"topic": topic, "partitions": []})
        topics[-1]["partitions"].append({"partition": partition, "fetch_offset": offset,
                                         "log_start_offset": -1, "partition_max_bytes": pmax})
    r = call(s, ApiKey.FETCH, version, {
        "replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": 0, "max_bytes": max_bytes,
        "isolation_level": 0, "session_id": 0, "session_epoch": -1, "topics": topics,
        "forgotten_topics_data": [], "rack_id": ""})
    assert r.get("error_code", 0) == 0
    answered = [(t["topic"], p["partition_index"]) for t in r["responses"] for p in t["partitions"]]
    assert answered == [(t, p) for t, p, _, _ in parts]
    return {(t["topic"], p["partition_index"]): p for t in r["responses"] for p in t["partitions"]}


def batches(records):
    """[(base offset, size)] of the whole batches in a record set."""
    out, pos, data = [], 0, bytes(records)
    while pos < len(data):
        h = read_header(data, pos)
        out.append((h.base_offset, h.size))
        pos += h.size
    assert pos == len(data), "a record set must hold whole batches"
    return out


def assert_empty(part):
    assert part["records"] is not None, "an error answer needs an empty record set, not null"
    assert len(part["records"]) == 0


def fill(server, topic, partitions=1, batches_each=3, records_each=10, config=None):
    """``batches_each`` batches of ``records_each`` 100-byte records in every partition."""
    server.broker.create_topic(topic, partitions, config or {})
    now = int(time.time() * 1000)   # one timestamp: equal batch sizes, and not expired
    for p in range(partitions):
        log = server.broker.log(topic, p)
        for b in range(batches_each):
            log.append([b"%d:%d:%d:" % (p, b, i) + b"x" * 90 for i in range(records_each)],
                       timestamps=now)
    return server.broker.log(topic, 0)


# -- offsets at the edges ------------------------------------------------------------------------
@pytest.mark.parametrize("version", [4, 11, 12])   # 12: flexible, what librdkafka 2.x uses
def test_fetch_at_log_end_is_empty_and_past_it_out_of_range(server, conn, version):
    fill(server, "edge")
    end = 30
    r = fetch(conn, [("edge", 0, end, 1 << 20)], version=version)[("edge", 0)]
    assert (r["error_code"], r["high_watermark"]) == (0, end)
    assert_empty(r)
    r = fetch(conn, [("edge", 0, end + 1, 1 << 20)], version=version)[("edge", 0)]
    assert (r["error_code"], r["high_watermark"]) == (OFFSET_OUT_OF_RANGE, end)
    assert_empty(r)
    r = fetch(conn, [("edge", 0, end - 1, 1 << 20)], version=version)[("edge", 0)]
    assert r["error_code"] == 0 and batches(r["records"]) == [(20, batches(r["records"])[0][1])]


def test_fetch_past_end_with_long_poll_answers_at_once(server, conn):
    """An out-of-range offset is an answer, not a reason to wait for data."""
    fill(server, "edge-wait")
    r = fetch(conn, [("edge-wait", 0, 31, 1 << 20)], max_wait_ms=60_000)[("edge-wait", 0)]
    assert r["error_code"] == OFFSET_OUT_OF_RANGE


def test_fetch_below_log_start_after_delete_records(server, conn):
    fill(server, "below")
    r = call(conn, ApiKey.DELETE_RECORDS, 2, {"topics": [{"name": "below", "partitions": [
        {"partition_index": 0, "offset": 15}]}], "timeout_ms": 5000})
    assert r["topics"][0]["partitions"][0]["low_watermark"] == 15
    for offset in (0, 14):
        r = fetch(conn, [("below", 0, offset, 1 << 20)])[("below", 0)]
        assert (r["error_code"], r["log_start_offset"], r["high_watermark"]) == (
            OFFSET_OUT_OF_RANGE, 15, 30)
        assert_empty(r)
    # At the log start: the batch holding it (10..19) comes whole, the reader skips 10..14.
    r = fetch(conn, [("below", 0, 15, 1 << 20)])[("below", 0)]
    assert r["error_code"] == 0 and [b for b, _ in batches(r["records"])] == [10, 20]


def test_fetch_below_log_start_after_retention(server, conn):
    log = fill(server, "retained", batches_each=6,
               config={"segment.bytes": 1024, "retention.bytes": 3000})
    assert server.broker.enforce_retention() > 0
    start = log.log_start_offset
    assert start > 0
    r = fetch(conn, [("retained", 0, start - 1, 1 << 20)])[("retained", 0)]
    assert (r["error_code"], r["log_start_offset"]) == (OFFSET_OUT_OF_RANGE, start)
    assert_empty(r)
    r = fetch(conn, [("retained", 0, start, 1 << 20)])[("retained", 0)]
    assert r["error_code"] == 0 and batches(r["records"])[0][0] == start


def test_delete_records_past_the_end_is_out_of_range(server, conn):
    fill(server, "del-end")
    r = call(conn, ApiKey.DELETE_RECORDS, 2, {"topics": [{"name": "del-end", "partitions": [
        {"partition_index": 0, "offset": 31}, {"partition_index": 0, "offset": 30}]}],
        "timeout_ms": 5000})
    assert [(p["error_code"], p["low_watermark"]) for p in r["topics"][0]["partitions"]] == [
        (OFFSET_OUT_OF_RANGE, -1), (0, 30)]


# -- unknown topics and partitions ---------------------------------------------------------------
def test_unknown_topic_or_partition_everywhere(server, conn):
    fill(server, "known")
    cases = [("nosuch", 0), ("known", 1), ("known", -1)]
    got = fetch(conn, [(t, p, 0, 1 << 20) for t, p in cases] + [("known", 0, 0, 1 << 20)])
    for t, p in cases:
        assert got[(t, p)]["error_code"] == UNKNOWN_TOPIC_OR_PARTITION, (t, p)
        assert_empty(got[(t, p)])
    assert got[("known", 0)]["error_code"] == 0 and len(got[("known", 0)]["records"])

    for version in (1, 7):
        r = call(conn, ApiKey.LIST_OFFSETS, version, {"replica_id": -1, "isolation_level": 0,
                 "topics": [{"name": t, "partitions": [{"partition_index": p, "timestamp": -1}]}
                            for t, p in cases + [("known", 0)]]})
        assert [(t["name"], t["partitions"][0]["error_code"], t["partitions"][0]["offset"])
                for t in r["topics"]] == [(t, UNKNOWN_TOPIC_OR_PARTITION, -1) for t, _ in cases] + [
            ("known", 0, 30)]

    r = call(conn, ApiKey.DELETE_RECORDS, 2, {"timeout_ms": 5000, "topics": [
        {"name": t, "partitions": [{"partition_index": p, "offset": 1}]} for t, p in cases]})
    assert [(t["name"], t["partitions"][0]["error_code"], t["partitions"][0]["low_watermark"])
            for t in r["topics"]] == [(t, UNKNOWN_TOPIC_OR_PARTITION, -1) for t, _ in cases]

    r = call(conn, ApiKey.OFFSET_FOR_LEADER_EPOCH, 4, {"replica_id": -1, "topics": [
        {"topic": t, "partitions": [{"partition": p, "current_leader_epoch": -1,
                                     "leader_epoch": 0}]} for t, p in cases]})
    assert [(t["topic"], t["partitions"][0]["partition"], t["partitions"][0]["error_code"],
             t["partitions"][0]["end_offset"]) for t in r["topics"]] == [
        (t, p, UNKNOWN_TOPIC_OR_PARTITION, -1) for t, p in cases]
    assert not server.broker.has_topic("nosuch"), "asking about a topic must not create it"


# -- KIP-74 byte limits --------------------------------------------------------------------------
def test_fetch_response_max_bytes_spans_partitions(server, conn):
    fill(server, "budget", partitions=4)
    whole = fetch(conn, [("budget", 0, 0, 1 << 20)])[("budget", 0)]["records"]
    size = batches(whole)[0][1]
    assert batches(whole) == [(0, size), (10, size), (20, size)]   # equal batches, for the sums

    every = [("budget", p, 0, 1 << 20) for p in range(4)]
    # Room for two and a half batches: two from partition 0, then nothing at all.
    got = fetch(conn, every, max_bytes=size * 5 // 2)
    assert [len(batches(got[("budget", p)]["records"])) for p in range(4)] == [2, 0, 0, 0]
    # Room for exactly four: partition 0 gives three, partition 1 one, the rest none.
    got = fetch(conn, every, max_bytes=size * 4)
    assert [len(batches(got[("budget", p)]["records"])) for p in range(4)] == [3, 1, 0, 0]
    # One byte: the first batch of the response still comes (progress), and only it.
    got = fetch(conn, every, max_bytes=1)
    assert [len(batches(got[("budget", p)]["records"])) for p in range(4)] == [1, 0, 0, 0]
    # The first partition with data is the first that has any: 0 is at its end here.
    got = fetch(conn, [("budget", 0, 30, 1 << 20)] + every[1:], max_bytes=1)
    assert [len(batches(got[("budget", p)]["records"])) for p in range(4)] == [0, 1, 0, 0]
    for part in got.values():
        assert part["error_code"] == 0


def test_fetch_partition_max_bytes(server, conn):
    fill(server, "pmax", partitions=3)
    size = batches(fetch(conn, [("pmax", 0, 0, 1 << 20)])[("pmax", 0)]["records"])[0][1]
    every = [("pmax", p, 0, size * 3 // 2) for p in range(3)]
    got = fetch(conn, every)
    assert [batches(got[("pmax", p)]["records"]) for p in range(3)] == [[(0, size)]] * 3
    # A partition limit below one batch: only the response's first batch may break it.
    every = [("pmax", p, 0, size // 2) for p in range(3)]
    got = fetch(conn, every)
    assert [len(batches(got[("pmax", p)]["records"])) for p in range(3)] == [1, 0, 0]
    assert all(part["error_code"] == 0 and part["records"] is not None for part in got.values())


# -- Produce with several topics and partitions --------------------------------------------------
def test_produce_to_several_topics_and_partitions(server, conn):
    server.broker.create_topic("multi-a", 3)
    server.broker.create_topic("multi-b", 2)
    server.broker.log("multi-b", 1).append([b"already", b"there"])
    sent = {}

    def batch(topic, p, n):
        b = build_batch([b"%s-%d-%d" % (topic.encode(), p, i) for i in range(n)])
        sent[(topic, p)] = b
        return b

    # Partitions out of order, an unknown one in the middle, a corrupt batch: each is answered.
    request = [("multi-a", [(2, batch("multi-a", 2, 3)), (0, batch("multi-a", 0, 1)),
                            (1, batch("multi-a", 1, 5))]),
               ("multi-b", [(1, batch("multi-b", 1, 2)), (7, build_batch([b"lost"])),
                            (0, b"\x00" * 70)])]
    r = call(conn, ApiKey.PRODUCE, 9, {"transactional_id": None, "acks": -1, "timeout_ms": 5000,
             "topic_data": [{"name": t, "partition_data": [{"index": p, "records": rec}
                                                           for p, rec in ps]}
                            for t, ps in request]})
    answers = [(t["name"], [(p["index"], p["error_code"], p["base_offset"])
                            for p in t["partition_responses"]]) for t in r["responses"]]
    assert answers == [("multi-a", [(2, 0, 0), (0, 0, 0), (1, 0, 0)]),
                       ("multi-b", [(1, 0, 2), (7, UNKNOWN_TOPIC_OR_PARTITION, -1),
                                    (0, CORRUPT_MESSAGE, -1)])]
    # Every accepted batch is stored as sent (but for the base offset and leader epoch the
    # broker assigns).
    for (t, p), b in sent.items():
        base = 2 if (t, p) == ("multi-b", 1) else 0
        got = fetch(conn, [(t, p, base, 1 << 20)])[(t, p)]
        assert got["error_code"] == 0
        assert got["high_watermark"] == base + read_header(b).record_count
        stored = bytes(got["records"])
        assert stored[8:12] == bytes(b)[8:12] and stored[16:] == bytes(b)[16:]
        assert stored[12:16] == struct.pack(">i", server.broker.leader_epoch(t, p))
        assert [r.value for r in decode_records(got["records"])] == [
            r.value for r in decode_records(b)]
    assert server.broker.log("multi-b", 0).log_end_offset == 0


# -- ListOffsets -----------------------------------------------------------------------------------
def list_offsets(port, topic, stamps, version=8):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        r = call(s, ApiKey.LIST_OFFSETS, version, {"replica_id": -1, "isolation_level": 0,
                 "topics": [{"name": topic, "partitions": [
                     {"partition_index": 0, "current_leader_epoch": -1, "timestamp": t}
                     for t in stamps]}]})
    parts = r["topics"][0]["partitions"]
    assert all(p["error_code"] == 0 for p in parts)
    return [(p["offset"], p["timestamp"]) for p in parts]


def test_list_offsets_max_timestamp_and_found_timestamps_survive_restart(tmp_path):
    from klog.server import ServerThread

    with ServerThread(tmp_path / "data") as server:
        server.broker.create_topic("lo", 1, {"segment.bytes": 1024})
        log = server.broker.log("lo", 0)
        assert list_offsets(server.port, "lo", [-3, -1, -2, 0]) == [(-1, -1), (0, -1), (0, -1),
                                                                   (-1, -1)]
        for stamps in ([1000, 2000, 3000], [6000, 4000, 6000], [5000]):   # offsets 0-2, 3-5, 6
            log.append([b"v" * 300] * len(stamps), timestamps=stamps)
        assert len(log.segments) > 1
        # -3: the first record with the largest timestamp; by time: the first record at or
        # after it, with ITS timestamp; -1 latest, -2 earliest, -4 earliest local (v8).
        assert list_offsets(server.port, "lo", [-3, 2500, 4500, 6000, 6001, -1, -2, -4]) == [
            (3, 6000), (2, 3000), (3, 6000), (3, 6000), (-1, -1), (7, -1), (0, -1), (0, -1)]
        assert list_offsets(server.port, "lo", [-3, 2500], version=7) == [(3, 6000), (2, 3000)]
        log.delete_before(4)
        assert list_offsets(server.port, "lo", [-3, 2500, -2, -4]) == [
            (5, 6000), (4, 4000), (4, -1), (4, -1)]
    with ServerThread(tmp_path / "data") as server:
        assert list_offsets(server.port, "lo", [-3, 2500, -1]) == [(5, 6000), (4, 4000), (7, -1)]
