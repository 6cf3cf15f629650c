"""klog mirror, run as the CLI (a subprocess), embedded -> klog serve and klog serve -> klog serve,
including a SIGKILL mid-way and a restart: nothing lost, nothing written twice, and the records
re-read from the source are reported as skipped duplicates."""
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

import klog
from klog.server import ServerThread
from klog.structs import TopicPartition

PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(klog.__file__)))


def cli_env():
    """The subprocess imports the same klog as this process."""
    env = {k: v for k, v in os.environ.items() if k != "KLOG_DATA_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PKG_ROOT, env.get("PYTHONPATH")) if p)
    return env


def mirror_cmd(*args):
    return [sys.executable, "-m", "klog", "mirror", *map(str, args)]


def run_mirror(*args, timeout=120):
    proc = subprocess.run(mirror_cmd(*args, "-e", "--json"), capture_output=True, text=True,
                          env=cli_env(), timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fill(client, topic, n, partitions):
    client.create_topic(topic, partitions)
    with client.producer() as p:
        for i in range(n):
            p.send(topic, b"value-%d" % i, key=b"key-%d" % (i % 97),
                   timestamp=1_600_000_000_000 + i, headers=[("app", b"%d" % i)])
        p.flush()


def read_all(client, topic):
    out = []
    with client.consumer(None, {"auto.offset.reset": "earliest"}) as c:
        tps = c.partitions_for(topic)
        ends = c.end_offsets(tps)
        c.assign(tps)
        deadline = time.monotonic() + 60
        while any(c.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline
            out += c.poll(200)
    return out


def source_of(record):
    h = dict(record.headers)
    return h["klog.mirror.topic"].decode(), int(h["klog.mirror.partition"]), \
        int(h["klog.mirror.offset"])


@pytest.fixture
def servers(tmp_path):
    started = []

    def start(name):
        s = ServerThread(tmp_path / name, {"num.partitions": 1}).start()
        started.append(s)
        return s
    yield start
    for s in started:
        s.stop()


def test_embedded_to_serve_copies_everything_and_keeps_partitions(tmp_path, servers):
    with klog.connect(tmp_path / "edge") as edge:
        fill(edge, "events", 600, 3)
        fill(edge, "other", 5, 1)
        source = {(r.partition, r.offset): r for r in read_all(edge, "events")}
    dst = servers("dst")
    report = run_mirror("--from", tmp_path / "edge", "--to", f"kafka://{dst.address}",
                        "--topics", "ev.*")
    assert report == {"mirrored": 600, "skipped_duplicates": 0, "topics": {"events": "kept"}}
    with klog.connect(f"kafka://{dst.address}") as c:
        assert c.list_topics() == ["events"]
        copied = read_all(c, "events")
    assert len(copied) == 600
    for r in copied:
        topic, partition, offset = source_of(r)
        s = source[(partition, offset)]
        assert (topic, r.partition) == ("events", partition)
        assert (r.key, r.value, r.timestamp) == (s.key, s.value, s.timestamp)
        assert r.headers[:len(s.headers)] == s.headers


def test_serve_to_serve_killed_and_restarted_loses_nothing_and_reports_duplicates(servers):
    src, dst = servers("src"), servers("dst")
    total = 4000
    with klog.connect(f"kafka://{src.address}") as c:
        fill(c, "orders", total, 2)
    args = ["--from", f"kafka://{src.address}", "--to", f"kafka://{dst.address}",
            "--topics", "orders", "--group", "m1"]
    proc = subprocess.Popen(mirror_cmd(*args, "--rate", 1000), env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:   # kill it once records are copied and acknowledged but not yet committed
            assert proc.poll() is None, proc.stderr.read()
            # Stopped while looking, so it cannot commit between the look and the kill.
            proc.send_signal(signal.SIGSTOP)
            copied = sum(p.log_end_offset for p in dst.broker.describe_topic("orders").partitions) \
                if dst.broker.has_topic("orders") else 0
            fetched = src.broker.group_coordinator.fetch_offsets("m1").offsets
            done = sum(max(0, c.offset) for c in fetched.values())
            if copied >= 500 and copied > done:
                break
            proc.send_signal(signal.SIGCONT)
            assert time.monotonic() < deadline, "the mirror made no progress"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    copied = sum(p.log_end_offset for p in dst.broker.describe_topic("orders").partitions)
    assert copied < total, "killed too late to test a restart"
    with klog.connect(f"kafka://{src.address}") as c:
        committed = {tp: om.offset for tp, om in c.list_group_offsets("m1").items()}
    with klog.connect(f"kafka://{dst.address}") as c:
        before = [source_of(r) for r in read_all(c, "orders")]
    # records the killed mirror wrote after its last commit: read again, must be skipped
    expected_skipped = sum(1 for t, p, o in before if o >= committed.get(TopicPartition(t, p), 0))

    assert expected_skipped > 0, "killed after a commit: the restart has nothing to skip"
    report = run_mirror(*args)
    assert report["skipped_duplicates"] == expected_skipped
    assert report["mirrored"] == total - len(before)
    with klog.connect(f"kafka://{dst.address}") as c:
        after = Counter(source_of(r) for r in read_all(c, "orders"))
    with klog.connect(f"kafka://{src.address}") as c:
        wanted = {("orders", r.partition, r.offset) for r in read_all(c, "orders")}
    assert set(after) == wanted                      # nothing lost
    assert max(after.values()) == 1                  # nothing written twice


def test_different_partition_counts_place_records_by_key(tmp_path, servers):
    with klog.connect(tmp_path / "edge") as edge:
        fill(edge, "events", 300, 3)
    dst = servers("dst")
    with klog.connect(f"kafka://{dst.address}") as c:
        c.create_topic("events", 2)
    report = run_mirror("--from", tmp_path / "edge", "--to", f"kafka://{dst.address}",
                        "--topics", "events")
    assert report["topics"] == {"events": "by key"} and report["mirrored"] == 300
    with klog.connect(f"kafka://{dst.address}") as c:
        copied = read_all(c, "events")
    placed = {}
    for r in copied:
        assert placed.setdefault(r.key, r.partition) == r.partition
    assert len(copied) == 300


def test_no_matching_topic_is_one_clear_line(tmp_path, servers):
    with klog.connect(tmp_path / "edge") as edge:
        edge.create_topic("events", 1)
    dst = servers("dst")
    proc = subprocess.run(mirror_cmd("--from", tmp_path / "edge", "--to", f"kafka://{dst.address}",
                                     "--topics", "nothing.*", "-e"),
                          capture_output=True, text=True, env=cli_env(), timeout=60)
    assert proc.returncode == 1
    assert "nothing.*" in proc.stderr and "Traceback" not in proc.stderr
