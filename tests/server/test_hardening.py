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
from klog.protocol.errors import ProtocolError, UnsupportedVersionError
from klog.protocol.frames import decode_request, decode_response, encode_request
from klog.protocol.messages import REQUESTS, ApiKey
from klog.server import ServerThread

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


def _frames_until_close_or_sentinel(s, deadline, frames=None):
    """Read response frames until EOF/reset ("closed") or the sentinel's answer ("answered").
    ``frames``: a list that gets each response payload (size prefix removed) before the
    sentinel's."""
    buf = bytearray()
    while True:
        while len(buf) >= 8:
            size, cid = struct.unpack(">ii", buf[:8])
            assert 4 <= size < 64 << 20, f"bad response frame size {size}"
            if len(buf) < 4 + size:
                break
            payload = bytes(buf[4:4 + size])
            del buf[:4 + size]
            if cid == SENTINEL_CID:
                return "answered"
            if frames is not None:
                frames.append(payload)
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


def _expected_answer(payload):
    """What the server must do with one fuzzed frame: ("close",), ("silent",) for an acks=0
    Produce, or ("answer", api_key, version, correlation id)."""
    try:
        req = decode_request(payload)
    except UnsupportedVersionError as exc:
        hdr = exc.header
        if hdr is not None and hdr.api_key == ApiKey.API_VERSIONS:
            return ("answer", ApiKey.API_VERSIONS, 0, hdr.correlation_id)   # error 35, v0 body
        return ("close",)
    except ProtocolError:
        return ("close",)
    hdr = req.header
    if hdr.api_key == ApiKey.PRODUCE and req.body.get("acks") == 0:
        return ("silent",)
    return ("answer", hdr.api_key, hdr.api_version, hdr.correlation_id)


def _check_answer(expected, outcome, frames, answered):
    """The positive oracle of the fuzz test: a request that decodes is answered, with its own
    correlation id and a response that decodes, and the connection stays usable; one that does
    not decode closes the connection unanswered."""
    if expected[0] == "close":
        assert (outcome, frames) == ("closed", []), (expected, outcome, frames)
        return
    assert outcome == "answered", (expected, outcome)
    if expected[0] == "silent":
        assert frames == [], frames
        return
    _, api_key, version, cid = expected
    assert len(frames) == 1, (expected, frames)
    got_cid, _ = decode_response(api_key, version, memoryview(frames[0]))
    assert got_cid == cid
    answered.append(api_key)


_GARBAGE_PRODUCE = {"transactional_id": None, "acks": 1, "timeout_ms": 1000, "topic_data": [
    {"name": "fuzzed", "partition_data": [{"index": 0, "records": b"not a record batch"}]}]}


def test_fuzzed_frames_get_error_or_close_and_server_keeps_serving(server):
    healthy = Healthy(server)
    healthy.round_trip()
    outcomes = []
    answered = []   # API keys of the fuzzed requests answered (and checked)

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(cases)
    @example(("framed", _frame(struct.pack(">hhih", 18, 99, 7, 1) + b"x\x00\x00\x00")))
    @example(("framed", encode_request(ApiKey.PRODUCE, 7, 8, "x", dict(_GARBAGE_PRODUCE, acks=0))
                        .getvalue()))
    @example(("framed", encode_request(ApiKey.PRODUCE, 7, 8, "x", _GARBAGE_PRODUCE).getvalue()))
    @example(("framed", encode_request(ApiKey.METADATA, 4, 9, "x", {
        "topics": [], "allow_auto_topic_creation": False}).getvalue()))
    def one(case):
        kind, data = case
        s = _connect(server)
        try:
            deadline = time.monotonic() + IO_TIMEOUT
            if kind == "framed":
                # A whole frame, then a sentinel ApiVersions: the connection must answer the
                # sentinel (after an error response or none) or close; it must not wedge.
                # Which of the two, and what the answer says, follows from the frame.
                expected = _expected_answer(data[4:])
                frames = []
                if _send(s, data + _sentinel(), shut_wr=False):
                    outcome = _frames_until_close_or_sentinel(s, deadline, frames)
                    outcomes.append(outcome)
                    _check_answer(expected, outcome, frames, answered)
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
    # The explicit examples get answers (35; CORRUPT_MESSAGE; none for acks=0; metadata) and
    # the connection stays usable for the sentinel.
    assert outcomes.count("answered") >= 4, outcomes
    assert len(answered) >= 3, answered   # the oracle checked real answers, not only closes
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


# -- connection and memory limits (klog.server.limits) ---------------------------------------------
def _limited_server(tmp_path, **settings):
    config = {"num.partitions": 1, "group.initial.rebalance.delay.ms": 0}
    config.update({k.replace("_", "."): v for k, v in settings.items()})
    return ServerThread(tmp_path / "limited", config).start()


def _usable(s, cid=1):
    """True if an ApiVersions round trip works, False if the server closed the connection."""
    try:
        return _call(s, ApiKey.API_VERSIONS, 0, {}, cid)["error_code"] == 0
    except (ConnectionError, OSError):
        return False


def _wait_closed(s, timeout=IO_TIMEOUT):
    """True once the server closed ``s`` (EOF or reset) within ``timeout``."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def _eventually_usable(connect, timeout=IO_TIMEOUT):
    """A new connection is admitted again once the server noticed a slot was freed."""
    deadline = time.monotonic() + timeout
    while True:
        s = connect()
        if _usable(s):
            return s
        s.close()
        assert time.monotonic() < deadline, "no connection admitted after one was closed"
        time.sleep(0.02)


def test_max_connections_closes_connections_over_the_cap(tmp_path):
    srv = _limited_server(tmp_path, max_connections=3)
    try:
        first = [_connect(srv) for _ in range(3)]
        assert all(_usable(s) for s in first)
        extra = _connect(srv)
        assert _wait_closed(extra), "a 4th connection was not closed with max.connections=3"
        extra.close()
        assert all(_usable(s, cid=2) for s in first)   # the admitted ones are untouched
        first.pop().close()
        first.append(_eventually_usable(lambda: _connect(srv)))
    finally:
        for s in first:
            s.close()
        srv.stop()


def test_max_connections_per_ip_with_overrides(tmp_path):
    srv = _limited_server(tmp_path, max_connections_per_ip=1,
                          max_connections_per_ip_overrides="127.0.0.2:3")

    def from_ip(ip):
        return socket.create_connection(("127.0.0.1", srv.port), timeout=IO_TIMEOUT,
                                        source_address=(ip, 0))
    opened = []
    try:
        opened.append(from_ip("127.0.0.1"))
        assert _usable(opened[-1])
        second = from_ip("127.0.0.1")
        assert _wait_closed(second), "a 2nd connection from 127.0.0.1 was not closed (per.ip=1)"
        second.close()
        for _ in range(3):   # the override lets 127.0.0.2 have three
            opened.append(from_ip("127.0.0.2"))
            assert _usable(opened[-1])
        fourth = from_ip("127.0.0.2")
        assert _wait_closed(fourth), "a 4th connection from 127.0.0.2 was not closed (override 3)"
        fourth.close()
    finally:
        for s in opened:
            s.close()
        srv.stop()


def test_bad_per_ip_override_is_a_clear_config_error(tmp_path):
    with pytest.raises(klog.ConfigError, match=r"max.connections.per.ip.overrides.*'nonsense'"):
        _limited_server(tmp_path, max_connections_per_ip_overrides="127.0.0.1:2,nonsense")


def test_idle_connections_are_closed_but_not_one_waiting_in_a_long_poll_fetch(tmp_path):
    import concurrent.futures

    # 1 s: the chatty connection's requests, 0.1 s apart, stay well inside it on a slow machine.
    srv = _limited_server(tmp_path, connections_max_idle_ms=1000)
    idle, busy, chatty = _connect(srv), _connect(srv), _connect(srv)
    try:
        assert _usable(idle) and _usable(chatty)
        _call(busy, ApiKey.METADATA, 4, {"topics": [{"name": "quiet"}],
                                         "allow_auto_topic_creation": True})
        busy.settimeout(10)
        fetch = {
            "replica_id": -1, "max_wait_ms": 3000, "min_bytes": 1, "max_bytes": 1 << 20,
            "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": "quiet", "partitions": [
                {"partition": 0, "fetch_offset": 0, "log_start_offset": -1,
                 "partition_max_bytes": 1 << 20}]}],
            "forgotten_topics_data": [], "rack_id": ""}
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            # A long-poll Fetch on an empty partition: 3 s of waiting, well past the idle limit.
            waiting = pool.submit(_call, busy, ApiKey.FETCH, 11, fetch, 5)
            # Meanwhile a connection that keeps talking (requests 100 ms apart) is never idle.
            i = 0
            while not waiting.done():
                assert _usable(chatty, cid=10 + i), "a connection in use was closed as idle"
                i += 1
                time.sleep(0.1)
            r = waiting.result()
        assert time.monotonic() - t0 >= 2.9
        assert r["responses"][0]["partitions"][0]["error_code"] == 0
        # ...and the silent one was closed.
        assert _wait_closed(idle, timeout=1.0), "an idle connection outlived connections.max.idle.ms"
    finally:
        for s in (idle, busy, chatty):
            s.close()
        srv.stop()


def test_tls_client_hello_on_the_plaintext_listener_is_named_and_closed(server, caplog):
    import logging
    import ssl

    caplog.set_level(logging.INFO, logger="klog.server")
    ctx = ssl.create_default_context()
    for _ in range(3):
        raw = _connect(server)
        with pytest.raises((ssl.SSLError, OSError)):
            ctx.wrap_socket(raw, server_hostname="localhost")   # sends a real ClientHello
        raw.close()
    msg = ("TLS handshake on a plaintext listener from 127.0.0.1; klog serve speaks PLAINTEXT "
           "only")
    lines = [r.getMessage() for r in caplog.records if r.name == "klog.server"]
    assert lines.count(msg) == 1, lines          # once per peer, not once per attempt
    assert not any("exceeds limit" in line for line in lines), lines
    Healthy(server).round_trip()


def _vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def _serve_process(data, *configs):
    import os
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(klog.__file__))
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    args = [sys.executable, "-m", "klog", "serve", "--data-dir", str(data),
            "--listen", f"127.0.0.1:{port}"]
    for c in configs:
        args += ["-c", c]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            assert proc.poll() is None, "klog serve exited"
            assert time.monotonic() < deadline, "klog serve did not start"
            time.sleep(0.1)


class _Stub:
    def __init__(self, port):
        self.port = port


def test_queued_max_request_bytes_bounds_memory_of_partial_frames(tmp_path):
    """Ten connections each send 30 MiB of a 40 MiB frame and stall. Without a cap the server
    buffers all 300 MiB; with queued.max.request.bytes=64 MiB it reads one of them and stops
    reading the others' sockets, while well-behaved clients (a 2 MiB produce included) go on."""
    import threading

    MiB = 1 << 20
    proc, port = _serve_process(tmp_path / "data", "queued.max.request.bytes=%d" % (64 * MiB),
                                "message.max.bytes=%d" % (4 * MiB))
    stub = _Stub(port)
    attackers, threads = [], []
    try:
        healthy = Healthy(stub)
        healthy.round_trip()
        before = _vm_rss_kib(proc.pid)

        def attack(s):
            s.settimeout(2.0)   # no progress for 2 s: the server stopped reading us
            try:
                s.sendall(struct.pack(">i", 40 * MiB))
                chunk = b"\x00" * MiB
                for _ in range(30):
                    s.sendall(chunk)
            except (socket.timeout, OSError):
                pass

        for _ in range(10):
            s = _connect(stub)
            attackers.append(s)
            threads.append(threading.Thread(target=attack, args=(s,), daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        healthy.round_trip()
        # A 2 MiB produce (several reads: it needs a reservation too) fits beside the one
        # partial frame admitted.
        big = b"x" * (2 * MiB)
        _call(healthy.sock, ApiKey.METADATA, 4, {"topics": [{"name": "big"}],
                                                 "allow_auto_topic_creation": True}, 899)
        r = _call(healthy.sock, ApiKey.PRODUCE, 7, {
            "transactional_id": None, "acks": 1, "timeout_ms": 5000,
            "topic_data": [{"name": "big", "partition_data": [
                {"index": 0, "records": klog.encode_batch([big])}]}]}, 900)
        assert r["responses"][0]["partition_responses"][0]["error_code"] == 0
        grown_mib = (_vm_rss_kib(proc.pid) - before) / 1024
        assert grown_mib < 120, f"server RSS grew by {grown_mib:.0f} MiB with a 64 MiB cap"
        for s in attackers:
            s.close()
        healthy.round_trip()
        healthy.close()
    finally:
        for s in attackers:
            s.close()
        proc.terminate()
        proc.wait(30)


def test_request_memory_pool_waits_then_grants_in_order():
    import asyncio

    from klog.server.limits import RequestMemoryPool

    async def scenario():
        pool = RequestMemoryPool(100)
        await pool.reserve(150)            # nothing reserved: one frame over the cap still goes
        assert pool.reserved == 150
        second = asyncio.ensure_future(pool.reserve(60))
        third = asyncio.ensure_future(pool.reserve(30))
        cancelled = asyncio.ensure_future(pool.reserve(10))
        await asyncio.sleep(0)
        assert not second.done() and not third.done() and pool.waiting == 3
        cancelled.cancel()
        await asyncio.sleep(0)
        pool.release(150)                  # both waiters fit now (90 <= 100)
        await asyncio.wait_for(asyncio.gather(second, third), 1)
        assert pool.reserved == 90 and pool.waiting == 0
        pool.release(60)
        pool.release(30)
        assert pool.reserved == 0
        unbounded = RequestMemoryPool(-1)
        await unbounded.reserve(1 << 40)
        await unbounded.reserve(1 << 40)

    asyncio.run(scenario())
