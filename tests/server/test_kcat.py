"""kcat (librdkafka's CLI) against the klog server: -L, -P/-C, -G groups and -Q offsets by time.

kcat is a hard requirement here (Debian package ``kcat``; CI installs it): the tests fail, never
skip, when it is missing.
"""
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest
from kafka import KafkaProducer

from klog.structs import TopicPartition

pytestmark = [pytest.mark.timeout(120), pytest.mark.needs_kcat]

KCAT = shutil.which("kcat") or shutil.which("kafkacat")


def _kcat_path():
    assert KCAT, ("kcat is not installed (apt-get install kcat); the kcat interop tests need it "
                  "on PATH")
    return KCAT


def kcat(server, *args, stdin=None, timeout=30):
    """Run kcat to completion; return (stdout, stderr)."""
    cmd = [_kcat_path(), "-b", server.address, *args]
    p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, text=True)
    assert p.returncode == 0, f"{cmd} exited {p.returncode}\nstdout:{p.stdout}\nstderr:{p.stderr}"
    return p.stdout, p.stderr


def _produce_keyed(server, topic, pairs):
    data = "".join(f"{k}:{v}\n" for k, v in pairs)
    kcat(server, "-P", "-t", topic, "-K:", stdin=data)


def test_kcat_metadata_lists_topics_and_partitions(server):
    server.broker.create_topic("three", 3)
    server.broker.create_topic("one", 1)
    out, _ = kcat(server, "-L")
    assert re.search(rf"broker 0 at 127\.0\.0\.1:{server.port}", out), out
    topics = dict(re.findall(r'topic "([^"]+)" with (\d+) partitions', out))
    assert topics == {"three": "3", "one": "1"}, out
    parts = re.findall(r"partition (\d+), leader 0, replicas: 0, isrs: 0", out)
    assert sorted(parts) == ["0", "0", "1", "2"], out
    out, _ = kcat(server, "-L", "-t", "three")
    assert re.findall(r'topic "([^"]+)" with (\d+) partitions', out) == [("three", "3")], out


def test_kcat_produce_then_consume_from_beginning_and_relative(server):
    pairs = [(f"k{i}", f"value-{i}") for i in range(10)]
    _produce_keyed(server, "kv", pairs)
    assert server.broker.log("kv", 0).log_end_offset == 10
    out, err = kcat(server, "-C", "-t", "kv", "-o", "beginning", "-e", "-f", "%k=%s\n")
    assert out.splitlines() == [f"{k}={v}" for k, v in pairs], (out, err)
    out, _ = kcat(server, "-C", "-t", "kv", "-o", "-2", "-e", "-f", "%k=%s\n")
    assert out.splitlines() == [f"{k}={v}" for k, v in pairs[-2:]], out
    # Offsets, partition and the same records through another format string.
    out, _ = kcat(server, "-C", "-t", "kv", "-o", "5", "-e", "-f", "%p:%o:%k\n")
    assert out.splitlines() == [f"0:{i}:k{i}" for i in range(5, 10)], out


def _read_lines(proc, n, timeout):
    """Read n stdout lines from proc within timeout (a reader thread: no blocking forever)."""
    lines = []
    done = threading.Event()

    def reader():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if len(lines) >= n:
                break
        done.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    done.wait(timeout)
    return list(lines)


def test_kcat_group_consumer_commits_offsets(server):
    pairs = [(f"g{i}", f"gv{i}") for i in range(6)]
    _produce_keyed(server, "grp", pairs)
    cmd = [_kcat_path(), "-b", server.address, "-G", "kgroup", "-u", "-o", "beginning",
           "-f", "%k=%s\n", "-X", "auto.commit.interval.ms=100", "grp"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = _read_lines(proc, len(pairs), timeout=30)
        assert lines == [f"{k}={v}" for k, v in pairs]
        # Let an auto-commit go by, then stop kcat the polite way (it commits and leaves).
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()
        proc.stderr.close()
    tp = TopicPartition("grp", 0)
    deadline = time.monotonic() + 10
    while True:
        r = server.broker.group_coordinator.fetch_offsets("kgroup", [tp])
        c = r.offsets.get(tp)
        if (c is not None and c.offset == len(pairs)) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.error == 0 and c is not None and c.offset == len(pairs), r
    # A second member of the group resumes from the committed offset: nothing new to print.
    out, err = kcat(server, "-G", "kgroup", "-e", "-f", "%k=%s\n", "grp")
    assert out == "", (out, err)
    # ... until something new arrives.
    _produce_keyed(server, "grp", [("late", "one")])
    out, err = kcat(server, "-G", "kgroup", "-e", "-f", "%k=%s\n", "grp")
    assert out.splitlines() == ["late=one"], (out, err)


def test_kcat_query_offsets_by_timestamp(server):
    p = KafkaProducer(bootstrap_servers=server.address, enable_idempotence=False, linger_ms=0)
    for i in range(5):
        p.send("qt", b"x%d" % i, timestamp_ms=1_000_000 + i * 1000).get(timeout=10)
    p.close()
    expected = {1_000_000: 0, 999_999: 0, 1_002_500: 3, 1_004_000: 4, 9_999_999: -1}
    for ts, offset in expected.items():
        out, _ = kcat(server, "-Q", "-t", f"qt:0:{ts}")
        assert out.strip() == f"qt [0] offset {offset}", (ts, out)


def test_kcat_is_installed():
    """Guard: make the missing-tool failure explicit even if every other test is deselected."""
    path = _kcat_path()
    assert os.access(path, os.X_OK)
