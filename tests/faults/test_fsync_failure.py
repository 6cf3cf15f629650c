"""fsync failure (reliability.md recipe 4): after a failed fsync the page cache may call dirty
pages clean while the disk lost them, so the log must stop acknowledging: LogOfflineError for
that append and every later one, no clean-shutdown marker, and on reopen (recovery) every write
acknowledged before the failure is there.

The failure is injected at LogSegment.flush (the Python layer that calls fdatasync), the only
hook available without a fault-injecting file system."""
import errno
import os

import pytest

import klog
from klog.storage import segment as segment_module


def test_failed_fsync_takes_the_log_offline(tmp_path, monkeypatch):
    d = str(tmp_path / "log")
    cfg = {"flush.messages": 1, "segment.bytes": 4096}
    log = klog.Log.open(d, cfg)
    acked = {}
    for i in range(30):
        acked[log.append([b"ok-%d" % i])] = b"ok-%d" % i
    assert log.recovery_point == log.log_end_offset == 30

    def broken_flush(self):
        raise OSError(errno.EIO, "injected fsync failure", self.path(".log"))

    monkeypatch.setattr(segment_module.LogSegment, "flush", broken_flush)
    with pytest.raises(klog.LogOfflineError) as err:
        log.append([b"unknown"])
    assert "injected fsync failure" in str(err.value) and d in str(err.value)
    monkeypatch.undo()                      # even with a working disk again: stay offline
    for attempt in (lambda: log.append([b"after"]), log.flush, lambda: log.truncate_to(3)):
        with pytest.raises(klog.LogOfflineError):
            attempt()
    assert log.recovery_point == 30
    # Reads of acknowledged data still work while offline.
    assert {r.offset: r.value for r in log.records() if r.offset < 30} == acked
    log.close()
    assert not os.path.exists(os.path.join(d, ".clean-shutdown"))
    with klog.Log.open(d, cfg) as log:
        got = {r.offset: r.value for r in log.records()}
        assert {o: got.get(o) for o in acked} == acked
        # The append that failed is "unknown": present at offset 30 or absent, nothing else.
        assert set(got) - set(acked) <= {30} and got.get(30, b"unknown") == b"unknown"
        assert log.append([b"after reopen"]) == log.log_end_offset - 1
