"""Checkpoint values are held against the segments at open.

``log.checkpoint`` holds the recovery point and the log start offset. A value that the segments
cannot back is never silently applied: a log start past the end of the data is refused (it
would show an empty log over records nobody deleted), a recovery point past the end of intact
data is not trusted (the last segment is revalidated, and a warning names the checkpoint), a
negative one is refused. A log start inside a batch is legal (Kafka's DeleteRecords allows it).
"""
import logging
import os

import pytest

import klog
from faultkit import crash_copy, read_batches, seg_file, segment_bases

CFG = {"segment.bytes": 2048, "index.interval.bytes": 256}


def fill(d, n=60):
    log = klog.Log.open(d, CFG)
    for i in range(n):
        log.append([b"record-%03d" % i, b"more-%03d" % i])
    return log


def write_checkpoint(d, recovery_point, log_start):
    with open(os.path.join(d, "log.checkpoint"), "w") as f:
        f.write(f"0\n2\nrecovery-point {recovery_point}\nlog-start-offset {log_start}\n")


def files(d):
    out = {}
    for n in sorted(os.listdir(d)):
        if n != ".lock":
            with open(os.path.join(d, n), "rb") as f:
                out[n] = f.read()
    return out


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "crash"])
def test_log_start_past_the_end_is_refused(tmp_path, clean):
    d = str(tmp_path / "log")
    log = fill(d)
    end = log.log_end_offset
    if clean:
        log.close()
    else:
        d = crash_copy(log, str(tmp_path / "snap"))
        log.close()
    write_checkpoint(d, end, end + 5)
    before = [b.raw for b in read_batches(d)]
    checkpoint = files(d)["log.checkpoint"]
    with pytest.raises(klog.CorruptLogError) as err:
        klog.Log.open(d, CFG)
    msg = str(err.value)
    assert os.path.join(d, "log.checkpoint") in msg and f"log-start-offset {end + 5}" in msg, msg
    assert f"offset {end}" in msg, msg
    # Recovery may have trimmed reserved zeros after a crash; no batch and no checkpoint value
    # changed.
    assert [b.raw for b in read_batches(d)] == before
    assert files(d)["log.checkpoint"] == checkpoint


def test_log_start_inside_a_batch_is_kept(tmp_path):
    d = str(tmp_path / "log")
    with fill(d) as log:
        assert log.delete_before(31) == 31   # records 30 and 31 share a batch
    with klog.Log.open(d, CFG) as log:
        assert log.log_start_offset == 31
        assert [r.offset for r in log.records()][:2] == [31, 32]


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "crash"])
def test_recovery_point_past_the_end_revalidates_the_last_segment(tmp_path, caplog, clean):
    """The checkpoint says more was flushed than the (intact) files hold: do not trust it.
    The last segment is revalidated with CRCs, so a damaged last batch that a clean open would
    have served is found and cut (it is above the recovery point the files support)."""
    d = str(tmp_path / "log")
    log = fill(d)
    end = log.log_end_offset
    if clean:
        log.close()
    else:
        log.flush()
        d = crash_copy(log, str(tmp_path / "snap"))
        log.close()
        # Trim the reserved tail as a crash inside truncate_to would leave it: whole batches.
        last = read_batches(d)[-1]
        os.truncate(seg_file(d, last.segment), last.end)
    batches = read_batches(d)
    victim = batches[-1]
    assert victim.segment == segment_bases(d)[-1]
    with open(seg_file(d, victim.segment), "r+b") as f:   # a payload byte: the CRC catches it
        f.seek(victim.end - 3)
        b = f.read(1)
        f.seek(victim.end - 3)
        f.write(bytes([b[0] ^ 0x40]))
    write_checkpoint(d, end + 1000, 0)
    with caplog.at_level(logging.WARNING, logger="klog.storage"):
        with klog.Log.open(d, CFG) as log:
            assert log.log_end_offset == victim.base, "the damaged last batch was served"
            assert log.recovery_point <= log.log_end_offset
            assert [r.offset for r in log.records()] == list(range(victim.base))
    warned = [r.getMessage() for r in caplog.records if "recovery-point" in r.getMessage()]
    assert warned and os.path.join(d, "log.checkpoint") in warned[0], caplog.text
    assert f"recovery-point {end + 1000}" in warned[0], warned[0]


def test_negative_checkpoint_values_are_refused(tmp_path):
    d = str(tmp_path / "log")
    fill(d).close()
    write_checkpoint(d, -7, 0)
    with pytest.raises(klog.CorruptLogError, match="log.checkpoint.*negative"):
        klog.Log.open(d, CFG)
