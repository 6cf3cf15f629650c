"""One owner per log directory: a second open, in this process or another, gets LogLockedError
naming the directory (and the owner's pid); the lock goes away with the owner, however it ends."""
import os
import signal
import subprocess
import sys

import pytest

import klog
from faultkit import python_env, run_python

HOLDER = r"""
import sys, klog
log = klog.Log.open(sys.argv[1], {"flush.messages": 1})
log.append([b"from the holder"])
print("ready", flush=True)
sys.stdin.readline()          # hold the lock until told to go
log.close()
print("closed", flush=True)
"""

TRY_OPEN = r"""
import sys, klog
try:
    klog.Log.open(sys.argv[1]).close()
    print("opened")
except klog.LogLockedError as exc:
    print("LogLockedError:", exc)
"""


def start_holder(path):
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], env=python_env(),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    line = p.stdout.readline()
    if line.strip() != "ready":
        p.kill()
        raise AssertionError(f"holder did not start: {line!r} {p.stderr.read()}")
    return p


def test_second_open_in_the_same_process(tmp_path):
    d = str(tmp_path / "log")
    log = klog.Log.open(d)
    try:
        with pytest.raises(klog.LogLockedError) as err:
            klog.Log.open(d)
        assert d in str(err.value)
        assert str(os.getpid()) in str(err.value)
        # The refused open did not disturb the owner.
        log.append([b"still mine"])
        assert [r.value for r in log.records()] == [b"still mine"]
    finally:
        log.close()
    with klog.Log.open(d) as again:
        assert [r.value for r in again.records()] == [b"still mine"]


def test_other_process_holds_the_lock(tmp_path):
    """Another process owns the log: open here fails with LogLockedError naming the directory and
    the owner's pid; once the owner closes, open works and sees its data."""
    d = tmp_path / "log"
    holder = start_holder(d)
    try:
        with pytest.raises(klog.LogLockedError) as err:
            klog.Log.open(d)
        msg = str(err.value)
        assert str(d) in msg and f"process {holder.pid}" in msg, msg
    finally:
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "closed"
        assert holder.wait(timeout=30) == 0
    with klog.Log.open(d) as log:
        assert [r.value for r in log.records()] == [b"from the holder"]


def test_this_process_holds_the_lock_against_a_child(tmp_path):
    """This process owns the log: a second process gets LogLockedError with the path and our
    pid; after close it can open."""
    d = str(tmp_path / "log")
    log = klog.Log.open(d)
    try:
        r = run_python(TRY_OPEN, d, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("LogLockedError:"), r.stdout
        assert d in r.stdout and f"process {os.getpid()}" in r.stdout, r.stdout
    finally:
        log.close()
    r = run_python(TRY_OPEN, d, timeout=60)
    assert r.stdout.strip() == "opened", r.stdout + r.stderr


def test_lock_dies_with_a_killed_owner(tmp_path):
    """kill -9 of the owner releases the lock (flock is per open file, closed by the kernel);
    the stale pid left in .lock does not block the next owner, which recovers the data."""
    d = tmp_path / "log"
    holder = start_holder(d)
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=30) == -signal.SIGKILL
    holder.stdout.close()
    holder.stderr.close()
    holder.stdin.close()
    with open(d / ".lock") as f:
        assert f.read().strip() == str(holder.pid)
    with klog.Log.open(d) as log:
        assert [r.value for r in log.records()] == [b"from the holder"]


def test_failed_open_releases_the_lock(tmp_path):
    """An open that fails (here: a corrupt checkpoint) must not leave the directory locked: the
    next attempt gets the same error, not LogLockedError, and works once the cause is fixed."""
    d = str(tmp_path / "log")
    with klog.Log.open(d) as log:
        log.append([b"x"])
    with open(os.path.join(d, "log.checkpoint"), "w") as f:
        f.write("not a checkpoint")
    for _ in range(2):
        with pytest.raises(klog.CorruptLogError):
            klog.Log.open(d)
    os.unlink(os.path.join(d, "log.checkpoint"))
    with klog.Log.open(d) as log:
        assert [r.value for r in log.records()] == [b"x"]


def test_lock_released_when_the_log_object_is_collected(tmp_path):
    """A Log dropped without close (no reference left) releases the lock on collection."""
    import gc

    d = str(tmp_path / "log")
    log = klog.Log.open(d)
    log.append([b"y"])
    del log
    gc.collect()
    with klog.Log.open(d) as log:
        assert [r.value for r in log.records()] == [b"y"]
