"""Hardening: fuzzed frames and requests over real sockets, huge declared lengths, idle crowds.

Every bad input must end in an error response or a closed connection, never a wedged connection
or a dead server; a healthy client keeps doing ApiVersions + Produce + Fetch throughout.
"""
import socket
import struct
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import klog
from klog.protocol.frames import encode_request
from klog.protocol.messages import REQUESTS, ApiKey

from .rawclient import call as _raw_call

pytestmark = pytest.mark.timeout(120)

IO_TIMEOUT = 5.0
SENTINEL_CID = 0x5EE1D


# -- a small raw client ----------------------------------------------------------------------------
def _connect(server, timeout=IO_TIMEOUT):
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def _call(s, api_key, version, body, cid=1):
    return _raw_call(s, api_key, version, body, cid, "healthy")


class Healthy:
    """One long-lived, well-behaved client: ApiVersions + Produce + Fetch round trips."""

    def __init__(self, server, topic="healthy"):
        self.server, self.topic, self.n = server, topic, 0
        self.sock = _connect(server)
        _call(self.sock, ApiKey.METADATA, 4, {"topics": [{"name": topic}],
                                              "allow_auto_topic_creation": True})

    def round_trip(self):
        s, cid = self.sock, self.n * 3 + 10
        r = _call(s, ApiKey.API_VERSIONS, 3, {"client_software_name": "t",
                                               "client_software_version": "1"}, cid)
        assert r["error_code"] == 0 and r["api_keys"]
        value = b"v%d" % self.n
        r = _call(s, ApiKey.PRODUCE, 7, {
            "transactional_id": None, "acks": 1, "timeout_ms": 5000,
            "topic_data": [{"name": self.topic, "partition_data": [
                {"index": 0, "records": klog.encode_batch([value])}]}]}, cid + 1)
        part = r["responses"][0]["partition_responses"][0]
        assert part["error_code"] == 0 and part["base_offset"] == self.n, part
        r = _call(s, ApiKey.FETCH, 11, {
            "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
            "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": self.topic, "partitions": [
                {"partition": 0, "fetch_offset": self.n, "log_start_offset": -1,
                 "partition_max_bytes": 1 << 20}]}],
            "forgotten_topics_data": [], "rack_id": ""}, cid + 2)
        part = r["responses"][0]["partitions"][0]
        assert part["error_code"] == 0 and part["high_watermark"] == self.n + 1
        assert [rec.value for rec in klog.decode_batch(part["records"])] == [value]
        self.n += 1

    def close(self):
        self.sock.close()


# -- outcomes of one bad connection ----------------------------------------------------------------
def _send(s, data, shut_wr):
    """Send; a server that already closed on us is a fine outcome (returns False)."""
    try:
        s.sendall(data)
        if shut_wr:
            s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def _frames_until_close_or_sentinel(s, deadline):
    """Read response frames until EOF/reset ("closed") or the sentinel's answer ("answered")."""
    buf = bytearray()
    while True:
        while len(buf) >= 8:
            size, cid = struct.unpack(">ii", buf[:8])
            assert 4 <= size < 64 << 20, f"bad response frame size {size}"
            if len(buf) < 4 + size:
                break
            del buf[:4 + size]
            if cid == SENTINEL_CID:
                return "answered"
        left = deadline - time.monotonic()
        assert left > 0, "connection neither answered nor closed: wedged"
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return "closed"
        except socket.timeout:
            raise AssertionError("connection neither answered nor closed: wedged") from None
        if not chunk:
            return "closed"
        buf += chunk


def _sentinel():
    return encode_request(ApiKey.API_VERSIONS, 0, SENTINEL_CID, "sentinel", {}).getvalue()


# APIs whose valid requests may legitimately park the connection for a client-chosen time
# (Fetch max_wait_ms, JoinGroup/SyncGroup rebalance waits) are not fuzzed with "valid-looking"
# headers: a random 2**31 ms wait is correct behaviour, not a hang.
_PARKING = {ApiKey.FETCH, ApiKey.JOIN_GROUP, ApiKey.SYNC_GROUP}
_KEYS = sorted(k for k in REQUESTS if k not in _PARKING)

api_keys = st.one_of(st.sampled_from(_KEYS), st.integers(-32768, 32767))
versions = st.one_of(st.integers(-1, 16), st.integers(-32768, 32767))
client_ids = st.one_of(st.none(), st.text(max_size=8))


@st.composite
def framed_requests(draw):
    """A correctly sized frame: a plausible header, then random body bytes."""
    cid = draw(st.integers(-(2 ** 31), 2 ** 31 - 1))
    if draw(st.booleans()):   # a supported API and version: the body decoder gets exercised
        key = draw(st.sampled_from(_KEYS))
        version = draw(st.integers(REQUESTS[key].min_version, REQUESTS[key].max_version))
    else:
        key, version = draw(api_keys), draw(versions)
    hdr = struct.pack(">hhi", key, version, cid)
    cl = draw(client_ids)
    hdr += struct.pack(">h", -1) if cl is None else struct.pack(">h", len(cl.encode())) + cl.encode()
    payload = hdr + draw(st.binary(max_size=64))
    return struct.pack(">i", len(payload)) + payload


@st.composite
def truncated_requests(draw):
    """A real, well-formed request cut short (or a fuzzed frame cut short)."""
    full = draw(st.one_of(
        framed_requests(),
        st.sampled_from([
            encode_request(ApiKey.METADATA, 4, 3, "x", {"topics": [{"name": "abc"}],
                                                        "allow_auto_topic_creation": False}),
            encode_request(ApiKey.API_VERSIONS, 3, 4, "x", {"client_software_name": "a",
                                                            "client_software_version": "1"}),
            encode_request(ApiKey.LIST_OFFSETS, 5, 5, "x", {
                "replica_id": -1, "isolation_level": 0, "topics": [
                    {"name": "abc", "partitions": [{"partition_index": 0, "timestamp": -1}]}]}),
        ]).map(lambda w: w.getvalue())))
    return full[:draw(st.integers(0, len(full) - 1))]


@st.composite
def huge_frames(draw):
    size = draw(st.one_of(st.integers(100 * 1024 * 1024 + 1, 2 ** 31 - 1),
                          st.integers(-(2 ** 31), -1), st.just(2 ** 31 - 1)))
    return struct.pack(">i", size) + draw(st.binary(max_size=256))


cases = st.one_of(
    st.tuples(st.just("framed"), framed_requests()),
    st.tuples(st.just("truncated"), truncated_requests()),
    st.tuples(st.just("huge"), huge_frames()),
    st.tuples(st.just("raw"), st.binary(min_size=1, max_size=128)),
)


def _frame(payload):
    return struct.pack(">i", len(payload)) + payload


_GARBAGE_PRODUCE = {"transactional_id": None, "acks": 1, "timeout_ms": 1000, "topic_data": [
    {"name": "fuzzed", "partition_data": [{"index": 0, "records": b"not a record batch"}]}]}


def test_fuzzed_frames_get_error_or_close_and_server_keeps_serving(server):
    healthy = Healthy(server)
    healthy.round_trip()
    outcomes = []

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(cases)
    @example(("framed", _frame(struct.pack(">hhih", 18, 99, 7, 1) + b"x\x00\x00\x00")))
    @example(("framed", encode_request(ApiKey.PRODUCE, 7, 8, "x", dict(_GARBAGE_PRODUCE, acks=0))
                        .getvalue()))
    @example(("framed", encode_request(ApiKey.PRODUCE, 7, 8, "x", _GARBAGE_PRODUCE).getvalue()))
    def one(case):
        kind, data = case
        s = _connect(server)
        try:
            deadline = time.monotonic() + IO_TIMEOUT
            if kind == "framed":
                # A whole frame, then a sentinel ApiVersions: the connection must answer the
                # sentinel (after an error response or none) or close; it must not wedge.
                if _send(s, data + _sentinel(), shut_wr=False):
                    outcomes.append(_frames_until_close_or_sentinel(s, deadline))
            elif kind == "huge":
                # Refused on the size prefix alone, before the payload could ever arrive.
                if _send(s, data, shut_wr=False):
                    assert _frames_until_close_or_sentinel(s, deadline) == "closed"
            else:
                # Truncated or arbitrary bytes, then end of stream: the server must close.
                if _send(s, data, shut_wr=True):
                    assert _frames_until_close_or_sentinel(s, deadline) == "closed"
        finally:
            s.close()
        healthy.round_trip()

    one()
    # The explicit examples get error responses (35; CORRUPT_MESSAGE; none for acks=0) and the
    # connection stays usable for the sentinel.
    assert outcomes.count("answered") >= 3, outcomes
    healthy.close()
    # A fresh client after the storm, too.
    fresh = Healthy(server)
    fresh.n = healthy.n
    fresh.round_trip()
    fresh.close()


def _rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_huge_declared_lengths_do_not_allocate(server):
    """The server runs in this process (ServerThread), so this process's RSS is the server's."""
    healthy = Healthy(server)
    healthy.round_trip()
    junk = b"\x00" * 65536
    before = _rss_kib()
    for _ in range(20):
        # A frame declaring 2**31-1 bytes, followed by some of "its" payload.
        s = _connect(server)
        if _send(s, struct.pack(">i", 2 ** 31 - 1) + junk, shut_wr=False):
            assert _frames_until_close_or_sentinel(s, time.monotonic() + IO_TIMEOUT) == "closed"
        s.close()
        # A sane frame whose body declares huge string/bytes/array lengths.
        for body in (struct.pack(">i", 2 ** 31 - 1),                      # topics: [2**31-1]
                     struct.pack(">ih", 1, 32767) + b"ab",                 # name: 32767 chars
                     struct.pack(">i", 2 ** 31 - 1) + b"\x01"):
            payload = struct.pack(">hhih", ApiKey.METADATA, 4, 9, -1) + body
            s = _connect(server)
            if _send(s, struct.pack(">i", len(payload)) + payload + _sentinel(), shut_wr=False):
                assert _frames_until_close_or_sentinel(s, time.monotonic() + IO_TIMEOUT) == "closed"
            s.close()
        # Produce whose records field declares 2**31-1 bytes.
        payload = (struct.pack(">hhih", ApiKey.PRODUCE, 7, 9, -1) + struct.pack(">h", -1)
                   + struct.pack(">hi", 1, 1000) + struct.pack(">i", 1) + struct.pack(">h", 1) + b"t"
                   + struct.pack(">i", 1) + struct.pack(">i", 0) + struct.pack(">i", 2 ** 31 - 1))
        s = _connect(server)
        if _send(s, struct.pack(">i", len(payload)) + payload + _sentinel(), shut_wr=False):
            assert _frames_until_close_or_sentinel(s, time.monotonic() + IO_TIMEOUT) == "closed"
        s.close()
    healthy.round_trip()
    grown_kib = _rss_kib() - before
    assert grown_kib < 8 * 1024, f"RSS grew by {grown_kib} KiB"
    healthy.close()


def test_create_topics_with_absurd_partition_count_is_refused(server):
    s = _connect(server)
    r = _call(s, ApiKey.CREATE_TOPICS, 4, {"topics": [
        {"name": "absurd", "num_partitions": 2 ** 31 - 1, "replication_factor": 1,
         "assignments": [], "configs": []}], "timeout_ms": 5000, "validate_only": False})
    assert r["topics"][0]["error_code"] == 37   # INVALID_PARTITIONS
    assert "absurd" not in server.broker.list_topics()
    s.close()
    Healthy(server).round_trip()


def test_hundreds_of_idle_connections_do_not_hurt_others(server):
    healthy = Healthy(server)
    healthy.round_trip()
    idle = []
    try:
        for i in range(300):
            s = _connect(server, timeout=10)
            if i % 3 == 1:
                s.sendall(struct.pack(">i", 1000))          # a frame that never completes
            elif i % 3 == 2:
                s.sendall(struct.pack(">i", 1000) + b"\x00" * 10)
            idle.append(s)
        deadline = time.monotonic() + 10
        while len(server.server._conns) < 301 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(server.server._conns) >= 301
        for _ in range(5):
            t0 = time.monotonic()
            healthy.round_trip()
            assert time.monotonic() - t0 < 1.0
        t0 = time.monotonic()
        fresh = Healthy(server)
        fresh.n = healthy.n
        fresh.round_trip()
        fresh.close()
        assert time.monotonic() - t0 < 1.0
        # The idle ones are still open (no spurious disconnects) and still usable.
        s = idle[0]
        r = _call(s, ApiKey.API_VERSIONS, 0, {}, cid=77)
        assert r["error_code"] == 0
    finally:
        for s in idle:
            s.close()
        healthy.close()
