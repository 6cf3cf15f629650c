"""Storage failures over the wire: an OSError from the disk (EIO, ENOSPC, EMFILE) while serving
a partition answers THAT partition KAFKA_STORAGE_ERROR (56), as Kafka does; the other
partitions of the request get their answers, the connection stays open, and the server logs one
line per condition (rate-limited), never a traceback per request. An accept loop out of file
handles logs once and backs off instead of spinning, and accepts again once handles are free.
"""
import errno
import logging
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

import klog
from klog._native.batch import build_batch
from klog.protocol.frames import decode_response, encode_request
from klog.protocol.messages import ApiKey

from .rawclient import call, recv_exact

pytestmark = pytest.mark.timeout(120)

KAFKA_STORAGE_ERROR = 56
MiB = 1 << 20


def produce_body(topic, partitions, batch):
    return {"transactional_id": None, "acks": 1, "timeout_ms": 5000, "topic_data": [
        {"name": topic, "partition_data": [{"index": p, "records": batch} for p in partitions]}]}


def fetch_body(topic, partitions, offset=0):
    return {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
            "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": topic, "partitions": [
                {"partition": p, "fetch_offset": offset, "log_start_offset": -1,
                 "partition_max_bytes": 1 << 20} for p in partitions]}],
            "forgotten_topics_data": [], "rack_id": ""}


def produce_codes(r):
    return [(p["index"], p["error_code"]) for t in r["responses"] for p in t["partition_responses"]]


# -- injected EIO --------------------------------------------------------------------------------
def test_injected_eio_answers_that_partition_only(server, caplog):
    server.broker.create_topic("eio", 3)
    for p in range(3):
        server.broker.log("eio", p).append([b"before"] * 30)
    sick = server.broker.log("eio", 1)

    def broken(*_a, **_k):
        raise OSError(errno.EIO, "Input/output error (injected)")

    for name in ("append_idempotent", "read", "record_for_time", "max_timestamp_record"):
        setattr(sick, name, broken)
    batch = build_batch([b"fine"])
    caplog.set_level(logging.INFO, logger="klog.server")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        for i in range(30):   # the same failure, request after request, on one connection
            r = call(s, ApiKey.PRODUCE, 9, produce_body("eio", [0, 1, 2], batch), cid=i)
            assert produce_codes(r) == [(0, 0), (1, KAFKA_STORAGE_ERROR), (2, 0)]
            r = call(s, ApiKey.FETCH, 12, fetch_body("eio", [0, 1, 2], offset=i), cid=i)
            parts = r["responses"][0]["partitions"]
            assert [p["error_code"] for p in parts] == [0, KAFKA_STORAGE_ERROR, 0]
            assert parts[1]["records"] is not None and len(parts[1]["records"]) == 0
            assert len(parts[0]["records"]) and len(parts[2]["records"])
            r = call(s, ApiKey.LIST_OFFSETS, 7, {"replica_id": -1, "isolation_level": 0,
                     "topics": [{"name": "eio", "partitions": [
                         {"partition_index": p, "timestamp": -3} for p in (0, 1, 2)]}]}, cid=i)
            assert [p["error_code"] for p in r["topics"][0]["partitions"]] == [
                0, KAFKA_STORAGE_ERROR, 0]
    assert server.broker.log("eio", 0).log_end_offset == 60
    lines = [rec for rec in caplog.records if rec.name == "klog.server"
             and "KAFKA_STORAGE_ERROR" in rec.getMessage()]
    # one line per condition (Produce, Fetch, ListOffsets with EIO), not one per request
    assert len(lines) == 3, [rec.getMessage() for rec in lines]
    assert all("eio-1" in rec.getMessage() and "Input/output error" in rec.getMessage()
               for rec in lines)
    assert not [rec for rec in caplog.records if rec.exc_info], "no tracebacks"


def test_condition_log_counts_what_it_suppressed():
    from klog.server.conditions import ConditionLog

    now = [100.0]
    lines = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger = logging.getLogger("klog.test.conditions")
    logger.addHandler(Capture())
    logger.propagate = False
    cond = ConditionLog(logger, interval=10, clock=lambda: now[0])
    assert cond.report("a", logging.ERROR, "disk %s", "full")
    for _ in range(5):
        now[0] += 1
        assert not cond.report("a", logging.ERROR, "disk %s", "full")
    assert cond.report("b", logging.ERROR, "other")    # another condition: its own line
    now[0] += 10
    assert cond.report("a", logging.ERROR, "disk %s", "full")
    assert lines == ["disk full", "other", "disk full (5 more like this in the last 15 s)"]


# -- a real full disk: a small tmpfs under `klog serve` --------------------------------------------
@pytest.fixture
def small_fs(tmp_path):
    """An 8 MiB tmpfs at tmp_path/mnt, unmounted afterwards."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.fail(f"needs root to mount a small tmpfs; running as uid {os.geteuid()}")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs at {mnt}: {r.stderr.strip() or r.returncode}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(data, log_path, nofile=None):
    """``klog serve`` in a child process (a SIGBUS or fd exhaustion stays there), its log in
    ``log_path``; returns (process, port) once it accepts connections."""
    port = free_port()
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(klog.__file__))
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")

    def limit():
        if nofile is not None:
            # The hard limit too: the broker raises the soft limit to the hard one at open.
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    out = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "klog", "serve", "--data-dir", str(data),
                             "--listen", f"127.0.0.1:{port}"], env=env, stdout=out,
                            stderr=subprocess.STDOUT, preexec_fn=limit)
    out.close()
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                call(s, ApiKey.API_VERSIONS, 0, {})
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("klog serve did not start: " + open(log_path).read())
            time.sleep(0.1)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_full_disk_answers_storage_error_and_recovers(small_fs, tmp_path):
    data = small_fs / "data"
    with klog.open(data) as b:
        b.create_topic("full", 2, {"segment.bytes": 64 * MiB, "max.message.bytes": 256 * 1024})
    ballast = small_fs / "ballast"
    with open(ballast, "wb") as f:
        f.write(b"\xaa" * (2 * MiB))
    server_log = tmp_path / "serve.log"
    proc, port = serve(data, server_log)
    batch = build_batch([os.urandom(50_000)])
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            codes, acked = [], {0: 0, 1: 0}
            for i in range(400):   # ~8 MiB would be needed: the disk fills first
                r = call(s, ApiKey.PRODUCE, 9, produce_body("full", [0, 1], batch), cid=i)
                codes = produce_codes(r)
                assert [p for p, _ in codes] == [0, 1]   # every partition answered, each time
                for p, code in codes:
                    acked[p] += code == 0
                    assert code in (0, KAFKA_STORAGE_ERROR), codes
                if all(code == KAFKA_STORAGE_ERROR for _, code in codes):
                    break
            assert all(code == KAFKA_STORAGE_ERROR for _, code in codes), "the disk never filled"
            for i in range(20):   # still full: still answered, the connection still open
                r = call(s, ApiKey.PRODUCE, 9, produce_body("full", [0, 1], batch), cid=1000 + i)
                assert produce_codes(r) == [(0, KAFKA_STORAGE_ERROR), (1, KAFKA_STORAGE_ERROR)]
            r = call(s, ApiKey.FETCH, 12, fetch_body("full", [0, 1]), cid=2000)
            parts = r["responses"][0]["partitions"]
            assert [(p["error_code"], p["high_watermark"]) for p in parts] == [
                (0, acked[0]), (0, acked[1])]       # what was acknowledged is all there
            os.unlink(ballast)
            r = call(s, ApiKey.PRODUCE, 9, produce_body("full", [0, 1], batch), cid=3000)
            assert produce_codes(r) == [(0, 0), (1, 0)]
            assert [p["base_offset"] for p in r["responses"][0]["partition_responses"]] == [
                acked[0], acked[1]]
    finally:
        stop(proc)
    elapsed = time.monotonic() - t0
    text = open(server_log, encoding="utf-8", errors="replace").read()
    assert "Traceback" not in text, text[-3000:]
    lines = [line for line in text.splitlines() if "KAFKA_STORAGE_ERROR" in line]
    assert lines and all("No space left on device" in line for line in lines), text[-3000:]
    # ConditionLog: a line per 10 s per condition at most, however many requests failed
    assert len(lines) <= 1 + int(elapsed // 10) + 1, lines


# -- out of file handles -------------------------------------------------------------------------
def answered_or_refused(c, server_log, deadline):
    """Whether connection ``c`` (an ApiVersions request sent) gets its answer (True), or the
    server logs that it cannot accept connections while ``c`` waits unanswered (False)."""
    c.sendall(encode_request(ApiKey.API_VERSIONS, 0, 7, "raw", {}).getvalue())
    while time.monotonic() < deadline:
        if select.select([c], [], [], 0.1)[0]:
            return True
        if "[Errno 24]" in open(server_log, encoding="utf-8", errors="replace").read():
            return False   # EMFILE logged (nothing else needs a new file handle yet)
    raise AssertionError("neither answered nor refused")


def api_versions_answer(c):
    size = struct.unpack(">i", recv_exact(c, 4))[0]
    return decode_response(ApiKey.API_VERSIONS, 0, memoryview(recv_exact(c, size)))[1]


def test_accept_loop_out_of_file_handles_backs_off_and_recovers(tmp_path):
    data = tmp_path / "data"
    with klog.open(data) as b:
        b.create_topic("fds", 1, {"segment.bytes": 1024})   # every produce rolls: new files
    server_log = tmp_path / "serve.log"
    nofile = 64
    proc, port = serve(data, server_log, nofile=nofile)
    held = []
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            # Use up the server's file handles with idle connections it accepts (each answers),
            # until a new one stays in the kernel's backlog, unanswered.
            deadline = time.monotonic() + 60
            while True:
                c = socket.create_connection(("127.0.0.1", port), timeout=20)
                if not answered_or_refused(c, server_log, deadline):
                    waiting = c
                    break
                held.append(c)
                assert api_versions_answer(c)["error_code"] == 0
            out_since = time.monotonic()
            assert len(held) < nofile
            # A connection it already has keeps working; a partition that needs a new
            # segment file gets KAFKA_STORAGE_ERROR, not a closed connection.
            r = call(s, ApiKey.PRODUCE, 9, produce_body("fds", [0], build_batch([b"x" * 2000])))
            assert produce_codes(r) in ([(0, KAFKA_STORAGE_ERROR)], [(0, 0)])
            r = call(s, ApiKey.PRODUCE, 9, produce_body("fds", [0], build_batch([b"x" * 2000])),
                     cid=2)
            assert produce_codes(r) == [(0, KAFKA_STORAGE_ERROR)]
            # Out of handles for a while (the back-off retries accept() about once a second):
            # the log must stay short, no traceback storm.
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                call(s, ApiKey.API_VERSIONS, 0, {}, cid=3)
                time.sleep(0.05)
            text = open(server_log, encoding="utf-8", errors="replace").read()
            periods = 1 + int((time.monotonic() - out_since) // 10)   # ConditionLog's interval
            assert "Traceback" not in text, text[-3000:]
            accept_lines = [line for line in text.splitlines() if "cannot accept" in line]
            assert 1 <= len(accept_lines) <= periods, text[-3000:]
            assert "Too many open files" in accept_lines[0]
            assert len(text.splitlines()) <= 4 + 2 * periods, text[-3000:]
            # Handles freed: the waiting connection is accepted and answered.
            for c in held[:10]:
                c.close()
            del held[:10]
            waiting.settimeout(20)
            assert api_versions_answer(waiting)["error_code"] == 0
            held.append(waiting)
            r = call(s, ApiKey.PRODUCE, 9, produce_body("fds", [0], build_batch([b"x" * 2000])),
                     cid=4)
            assert produce_codes(r) == [(0, 0)]
    finally:
        for c in held:
            c.close()
        stop(proc)
