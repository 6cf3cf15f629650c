"""One request must never leave a data directory that cannot restart.

Before: CreateTopics for 10 000 partitions, or a few hundred auto-created topics, at an open-file
limit of 1024 ran the server out of file descriptors half way; the metadata (written first)
named partitions that were never created, and every restart failed with EMFILE. Now: the soft
limit is raised to the hard one, sealed segments hold no descriptors, creations past the
partition budget (``max.partitions``, by default what the limit allows) are refused with
INVALID_PARTITIONS, and a creation is all or nothing (metadata written last)."""
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time

import pytest

import klog
from klog.errors import PartitionLimitError
from klog.fdlimit import FDS_PER_PARTITION
from klog.protocol.frames import encode_request
from klog.protocol.headers import ApiKey

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "server"))
from rawclient import call  # noqa: E402

SRC = os.path.dirname(os.path.dirname(klog.__file__))


def nfds():
    return len(os.listdir("/proc/self/fd"))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _limit(n):
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def _serve(data, port, nofile):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "klog", "serve", "--data-dir", str(data),
                             "--listen", f"127.0.0.1:{port}"], env=env, preexec_fn=_limit(nofile),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            return proc, socket.create_connection(("127.0.0.1", port), timeout=120)
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"klog serve exited {proc.returncode}: "
                                     f"{proc.stdout.read().decode()[-3000:]}")
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("klog serve did not start")
            time.sleep(0.1)


def _stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("klog serve did not stop on SIGTERM")
    out = proc.stdout.read().decode()
    assert rc == 0, f"klog serve exited {rc}: {out[-3000:]}"


def _on_disk_matches_metadata(data):
    try:
        with open(os.path.join(data, "klog-metadata.json")) as f:
            topics = json.load(f)["topics"]
    except FileNotFoundError:
        return {}
    for name, t in topics.items():
        if name.startswith("__"):
            continue
        for p in range(t["partitions"]):
            d = os.path.join(data, f"{name}-{p}")
            assert os.path.isdir(d) and os.path.exists(os.path.join(d, f"{0:020d}.log")), (
                f"metadata names {name}-{p}, which is not on disk")
    return topics


@pytest.mark.timeout(600)
def test_serve_at_1024_descriptors_survives_huge_creations_and_restarts(tmp_path):
    data = tmp_path / "data"
    port = _free_port()
    proc, s = _serve(data, port, 1024)
    try:
        r = call(s, ApiKey.CREATE_TOPICS, 4, {"topics": [
            {"name": "huge", "num_partitions": 10_000, "replication_factor": 1,
             "assignments": [], "configs": []}], "timeout_ms": 60_000, "validate_only": False})
        res = r["topics"][0]
        assert res["error_code"] in (0, 37), res
        codes = {}
        for i in range(0, 300, 10):
            names = [f"auto-{j:03d}" for j in range(i, i + 10)]
            r = call(s, ApiKey.METADATA, 4, {"topics": [{"name": n} for n in names],
                                            "allow_auto_topic_creation": True}, cid=2 + i)
            for t in r["topics"]:
                codes[t["name"]] = t["error_code"]
        assert set(codes.values()) <= {0, 37}, codes
        assert 0 in codes.values(), "not one auto-created topic: the budget is far too small"
        assert res["error_code"] == 37 or 37 in codes.values()   # something hit the budget
        # The server still works after the refusals.
        r = call(s, ApiKey.METADATA, 4, {"topics": None}, cid=999)
        listed = {t["name"] for t in r["topics"]}
        assert listed == {n for n, c in codes.items() if c == 0} | (
            {"huge"} if res["error_code"] == 0 else set())
        s.close()
    finally:
        if proc.poll() is None:
            _stop(proc)
    topics = _on_disk_matches_metadata(str(data))
    assert set(topics) == listed
    # And it restarts, at the same limit, with everything it acknowledged.
    proc, s = _serve(data, port, 1024)
    try:
        r = call(s, ApiKey.METADATA, 4, {"topics": None})
        assert {t["name"] for t in r["topics"]} == listed
        s.close()
    finally:
        _stop(proc)
    _on_disk_matches_metadata(str(data))


def test_partition_budget_refuses_with_invalid_partitions(tmp_path):
    with klog.open(tmp_path / "d", {"max.partitions": 5}) as b:
        b.create_topic("a", 3)
        with pytest.raises(PartitionLimitError, match="max.partitions"):
            b.create_topic("b", 3)
        with pytest.raises(PartitionLimitError):
            b.add_partitions("a", 6)
        b.add_partitions("a", 5)
        assert b.list_topics() == ["a"] and b.partition_count("a") == 5
        assert not os.path.exists(tmp_path / "d" / "b-0")
        from klog.server.handlers import error_code
        assert error_code(PartitionLimitError("x")) == 37


def test_default_budget_follows_the_open_file_limit(tmp_path):
    code = (
        "import resource, klog, sys\n"
        "b = klog.open(sys.argv[1])\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], b.max_partitions)\n"
        "b.close()\n")
    env = dict(os.environ, PYTHONPATH=SRC)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limits = (512, min(hard, 4096))

    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)

    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "d")], env=env,
                       preexec_fn=lower, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    soft_after, budget = map(int, r.stdout.split())
    assert soft_after == limits[1], "the soft limit was not raised to the hard limit"
    assert 0 < budget * FDS_PER_PARTITION < soft_after


@pytest.mark.parametrize("how", ["create", "grow"])
def test_creation_is_all_or_nothing(tmp_path, how):
    """Partition 3 cannot be created (a plain file has its name): the partitions made before
    it are removed, the metadata does not name them, and the directory reopens."""
    d = tmp_path / "d"
    with klog.open(d) as b:
        if how == "grow":
            b.create_topic("t", 2)
        (d / "t-3").write_bytes(b"in the way")
        with pytest.raises(OSError):
            if how == "create":
                b.create_topic("t", 5)
            else:
                b.add_partitions("t", 5)
        want = [] if how == "create" else ["t"]
        assert b.list_topics() == want
        parts = sorted(n for n in os.listdir(d) if n.startswith("t-"))
        assert parts == (["t-0", "t-1", "t-3"] if how == "grow" else ["t-3"])
    with klog.open(d) as b:
        assert b.list_topics() == want
        if how == "grow":
            assert b.partition_count("t") == 2
    _on_disk_matches_metadata(str(d))
    os.unlink(d / "t-3")
    with klog.open(d) as b:   # and the creation works once the way is clear
        if how == "create":
            b.create_topic("t", 5)
        else:
            b.add_partitions("t", 5)
        assert b.partition_count("t") == 5


def test_leftover_of_a_crashed_creation_is_replaced_but_data_is_not(tmp_path):
    d = tmp_path / "d"
    with klog.open(d) as b:
        pass
    klog.Log.open(str(d / "t-0")).close()                  # empty: a crashed creation's
    with klog.Log.open(str(d / "u-0")) as log:              # holds data: not ours to delete
        log.append([b"keep me"])
    with klog.open(d) as b:
        b.create_topic("t", 1)
        with pytest.raises(klog.errors.TopicExistsError, match="u-0 holds data"):
            b.create_topic("u", 1)
        assert b.list_topics() == ["t"]
    with klog.Log.open(str(d / "u-0")) as log:
        assert [r.value for r in log.records()] == [b"keep me"]


def test_descriptors_per_partition_do_not_grow_with_segments(tmp_path):
    """Only the active segment holds descriptors: before, every rolled segment kept three."""
    with klog.open(tmp_path / "d", {"log.segment.bytes": 4096}) as b:
        before = nfds()
        b.create_topic("t", 10)
        for i in range(1000):
            b.log("t", i % 10).append([b"x" * 200])
        for p in range(10):
            b.log("t", p).flush()
            assert len(b.log("t", p).segments) >= 4
        assert (nfds() - before) / 10 <= FDS_PER_PARTITION
    with klog.open(tmp_path / "d", {"log.segment.bytes": 4096}) as b:
        assert (nfds() - before) / 10 <= FDS_PER_PARTITION


def test_views_of_a_segment_reopened_read_only_stay_valid_and_block_truncation(tmp_path):
    log = klog.Log.open(str(tmp_path / "log"), {"segment.bytes": 2048})
    for i in range(100):
        log.append([b"value-%03d" % i * 5])
    bases = log.segments
    view = log.read(bases[1], 1)          # of the writable mapping, before the flush
    want = bytes(view)
    log.flush()                           # the rolled segment reopens read-only
    assert not log._segments[1].log.writable
    assert bytes(view) == want
    with pytest.raises(BufferError):
        log.truncate_to(bases[1] + 1)
    assert bytes(view) == want
    view.release()
    assert log.truncate_to(bases[1] + 1) <= bases[1] + 1
    log.close()
