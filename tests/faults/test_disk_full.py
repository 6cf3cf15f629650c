"""Disk full (reliability.md recipe 3) on a small tmpfs mounted for the test.

Pass: the producer gets OSError(ENOSPC), never a SIGBUS; nothing that was not acknowledged
becomes visible (records() is exactly the acknowledged batches, in the process that hit the
error and after a reopen); the log uses the space there is before refusing; appends resume once
space is freed; a reopen recovers everything acknowledged.

The filling runs in a child process so that a SIGBUS (a mapped page the file system could not
back) shows up as that child's exit status instead of killing the test run.
"""
import errno
import json
import os
import random
import subprocess
import sys

import pytest

import klog
from faultkit import crash_copy, python_env

pytestmark = pytest.mark.needs_root   # mounts a small tmpfs

MiB = 1 << 20


def value(seq, size):
    """The record with sequence number ``seq``: its number, then incompressible filler."""
    return b"%08d" % seq + random.Random(seq).randbytes(size - 8)


@pytest.fixture
def small_fs(tmp_path):
    """A 4 MiB tmpfs at tmp_path/mnt, unmounted afterwards."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.fail("test_disk_full needs root to mount a small tmpfs (mount -t tmpfs); "
                    f"running as uid {os.geteuid()}")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs at {mnt} (needs CAP_SYS_ADMIN): "
                    f"{r.stderr.strip() or r.returncode}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


FILLER = r"""
import errno, json, os, random, sys, klog

def value(seq, size):
    return b"%08d" % seq + random.Random(seq).randbytes(size - 8)

d, cfg, size = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
out = sys.stdout
log = klog.Log.open(d, cfg)
acked, seq = [], 0

def append(seq):
    n = 1 + seq % 3
    return log.append([value(seq + j, size) for j in range(n)]), n

def visible():
    return [(r.offset, r.value) for r in log.records()]

def expected():
    return [(base + j, value(s + j, size)) for base, s, n in acked for j in range(n)]

error = None
while seq < 100000:
    try:
        base, n = append(seq)
    except OSError as exc:
        error = exc
        break
    acked.append((base, seq, n))
    seq += n
st = os.statvfs(d)
report = {"phase": "full", "errno": getattr(error, "errno", None), "error": repr(error),
          "acked": len(acked), "end": log.log_end_offset, "free": st.f_bavail * st.f_frsize,
          "consistent": visible() == expected()}
# More attempts while still full: each fails the same way and leaves nothing behind.
retries = []
for _ in range(3):
    try:
        append(seq)
        retries.append("appended")
    except OSError as exc:
        retries.append(exc.errno)
report["retries"] = retries
report["still_consistent"] = visible() == expected() and log.log_end_offset == report["end"]
out.write(json.dumps(report) + "\n")
out.flush()
sys.stdin.readline()             # the parent frees space
resumed = 0
for _ in range(5):
    base, n = append(seq)
    acked.append((base, seq, n))
    seq += n
    resumed += 1
out.write(json.dumps({"phase": "resumed", "resumed": resumed,
                      "consistent": visible() == expected(), "end": log.log_end_offset,
                      "acked": [[b, s, n] for b, s, n in acked]}) + "\n")
out.flush()
log.close()
"""


@pytest.mark.parametrize("flush", [True, False], ids=["flush-every-message", "no-flush"])
def test_disk_full_then_resume(small_fs, tmp_path, flush):
    ballast = small_fs / "ballast"
    with open(ballast, "wb") as f:
        f.write(b"\xaa" * MiB)
    st = os.statvfs(small_fs)
    free_at_start = st.f_bavail * st.f_frsize
    d = small_fs / "log"
    size = 1000
    cfg = {"segment.bytes": 64 * MiB, "max.message.bytes": 64 * 1024,
           "index.interval.bytes": 512}
    if flush:
        cfg["flush.messages"] = 1
    p = subprocess.Popen([sys.executable, "-c", FILLER, str(d), json.dumps(cfg), str(size)],
                         env=python_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        if not line:
            p.wait(30)
            raise AssertionError(f"filler died (exit {p.returncode}, "
                                 f"{'SIGBUS' if p.returncode == -7 else ''}): "
                                 f"{p.stderr.read()[-3000:]}")
        full = json.loads(line)
        assert full["errno"] == errno.ENOSPC, f"expected OSError(ENOSPC), got {full['error']}"
        assert full["consistent"], "after ENOSPC, records() is not exactly the acknowledged batches"
        assert full["retries"] == [errno.ENOSPC] * 3, full["retries"]
        assert full["still_consistent"], "failed retries left something visible"
        data = full["end"] * size
        assert data >= free_at_start - 512 * 1024, (
            f"ENOSPC after only {data} bytes of records with {free_at_start} bytes free at start "
            f"({full['free']} still free): the log refuses writes the disk could take")
        os.unlink(ballast)
        p.stdin.write("go\n")
        p.stdin.flush()
        line = p.stdout.readline()
        if not line:
            p.wait(30)
            raise AssertionError(f"filler died after space was freed (exit {p.returncode}): "
                                 f"{p.stderr.read()[-3000:]}")
        resumed = json.loads(line)
        assert resumed["resumed"] == 5 and resumed["consistent"]
        assert p.wait(60) == 0, p.stderr.read()[-3000:]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    acked = resumed["acked"]
    expected = [(base + j, value(s + j, size)) for base, s, n in acked for j in range(n)]
    assert [o for o, _ in expected] == list(range(len(expected)))
    with klog.Log.open(d, cfg) as log:
        assert log.log_end_offset == resumed["end"] == len(expected)
        assert [(r.offset, r.value) for r in log.records()] == expected


CRASH_WHEN_FULL = r"""
import json, os, random, signal, sys, klog

def value(seq, size):
    return b"%08d" % seq + random.Random(seq).randbytes(size - 8)

d, cfg, size = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
log = klog.Log.open(d, cfg)
acked, seq = [], 0
while True:
    n = 1 + seq % 3
    try:
        base = log.append([value(seq + j, size) for j in range(n)])
    except OSError as exc:
        print(json.dumps({"errno": exc.errno, "acked": [[b, s, k] for b, s, k in acked]}),
              flush=True)
        os.kill(os.getpid(), signal.SIGKILL)      # crash right after the failure
    acked.append((base, seq, n))
    seq += n
"""


def test_crash_right_after_enospc_recovers_exactly_the_acknowledged(small_fs):
    """The process dies (SIGKILL) right after its append failed with ENOSPC: the reopened log
    holds exactly the acknowledged batches (the failed one neither visible nor resurrected by
    recovery); after space is freed appends continue at the recovered end."""
    with open(small_fs / "ballast", "wb") as f:
        f.write(b"\xaa" * MiB)
    d = small_fs / "log"
    size = 1500
    cfg = {"segment.bytes": 64 * MiB, "max.message.bytes": 64 * 1024, "flush.messages": 1,
           "index.interval.bytes": 512}
    r = subprocess.run([sys.executable, "-c", CRASH_WHEN_FULL, str(d), json.dumps(cfg),
                        str(size)], env=python_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == -9, f"filler: exit {r.returncode}: {r.stderr[-3000:]}"
    report = json.loads(r.stdout)
    assert report["errno"] == errno.ENOSPC
    expected = [(base + j, value(s + j, size)) for base, s, n in report["acked"]
                for j in range(n)]
    assert expected
    os.unlink(small_fs / "ballast")
    with klog.Log.open(d, cfg) as log:
        assert [(rec.offset, rec.value) for rec in log.records()] == expected
        end = log.log_end_offset
        assert end == len(expected)
        assert log.append([b"after"]) == end
    with klog.Log.open(d, cfg) as log:
        assert log.log_end_offset == end + 1


def fill_fs(path):
    """Write ``path`` until the file system is full; returns the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 16, 4096, 512, 1):
            block = b"\xbb" * chunk
            while True:
                try:
                    n = f.write(block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
                written += n
                if n < chunk:
                    break
    return written


@pytest.fixture
def fs_16m(tmp_path):
    mnt = tmp_path / "mnt16"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs at {mnt} (needs root / CAP_SYS_ADMIN): "
                    f"{r.stderr.strip() or r.returncode}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_enospc_while_writing_an_index_entry_leaves_no_trace(fs_16m, tmp_path):
    """The batch itself fits in space the segment already reserved, but its offset-index entry
    needs a new block and the disk is full: the append fails with ENOSPC and the batch must
    not stay in the log (not readable now, not recovered after a crash), or the next append
    would be shadowed by an unacknowledged batch at the same offset."""
    d = fs_16m / "log"
    # index.interval.bytes=0: one offset-index entry per batch; equal timestamps: no time-index
    # entries, so the offset index is the file that needs space.
    cfg = {"segment.bytes": 8 * MiB, "max.message.bytes": 64 * 1024, "index.interval.bytes": 0}
    log = klog.Log.open(d, cfg)
    index = d / ("%020d.index" % 0)
    acked = []
    while True:
        base = log.append([b"%08d" % len(acked)], timestamps=1_700_000_000_000)
        acked.append(base)
        size = os.path.getsize(index)
        if size and log._segments[-1].offset_index.entries * 8 == size:
            break                      # the next entry needs the index file to grow
        assert len(acked) < 100_000
    fill_fs(fs_16m / "ballast")
    with pytest.raises(OSError) as err:
        log.append([b"%08d" % len(acked)], timestamps=1_700_000_000_000)
    assert err.value.errno == errno.ENOSPC
    want = [(o, b"%08d" % o) for o in acked]
    assert log.log_end_offset == len(acked)
    assert [(r.offset, r.value) for r in log.records()] == want
    crashed = crash_copy(log, str(tmp_path / "crashed"))  # what a crash now would leave
    os.unlink(fs_16m / "ballast")
    assert log.append([b"next"], timestamps=1_700_000_000_000) == len(acked)
    assert [(r.offset, r.value) for r in log.records()][-2:] == want[-1:] + [(len(acked), b"next")]
    log.close()
    with klog.Log.open(crashed, cfg) as log:
        assert [(r.offset, r.value) for r in log.records()] == want
