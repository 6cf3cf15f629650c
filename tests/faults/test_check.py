"""klog.storage.check against the damage the fault tests make: what is damage, what is only the
trace of a crash (reserved zeros, stale indexes of the last segment), and that a partition cut
at its first damage opens again."""
import os
import shutil
import struct

import pytest

import klog
from klog.storage import check
from faultkit import crash_copy, read_batches, seg_file, segment_bases

CFG = {"segment.bytes": 4096, "index.interval.bytes": 256}


def fill(d, n=200):
    log = klog.Log.open(d, CFG)
    for i in range(n):
        log.append([b"record-%04d" % i * 4], timestamps=1_700_000_000_000 + i)
    return log


def report_of(d):
    (r,) = check.check(d)
    return r


def test_a_crash_copy_is_clean_with_notes(tmp_path):
    log = fill(str(tmp_path / "live"))
    d = crash_copy(log, str(tmp_path / "snap"))
    log.close()
    r = report_of(d)
    assert r.damage == [], [str(x) for x in r.damage]
    assert any("zeros after the data" in n for n in r.notes), r.notes
    assert r.end_offset == 200 and r.batches == 200


def test_zeroed_page_in_a_sealed_segment_is_damage(tmp_path):
    d = str(tmp_path / "log")
    fill(d).close()
    base = segment_bases(d)[1]
    with open(seg_file(d, base), "r+b") as f:
        f.seek(1024)
        f.write(bytes(1024))
    r = report_of(d)
    data = [x for x in r.damage if x.segment is not None]
    assert data and data[0].path == seg_file(d, base), [str(x) for x in r.damage]
    assert 1024 - 61 < data[0].start <= 1024
    assert data[0].offsets[0] > base


def test_damaged_index_of_a_sealed_segment_is_damage(tmp_path):
    d = str(tmp_path / "log")
    fill(d).close()
    base = segment_bases(d)[0]
    path = seg_file(d, base, ".index")
    assert os.path.getsize(path) >= 16
    with open(path, "r+b") as f:
        f.seek(12)
        f.write(struct.pack(">I", 5))   # entry 1 points at byte 5
    r = report_of(d)
    assert [x.path for x in r.damage] == [path], [str(x) for x in r.damage]
    assert "entry 1" in r.damage[0].reason


def test_checkpoint_past_the_data_is_damage(tmp_path):
    d = str(tmp_path / "log")
    fill(d).close()
    with open(os.path.join(d, "log.checkpoint"), "w") as f:
        f.write("0\n2\nrecovery-point 900\nlog-start-offset 0\n")
    r = report_of(d)
    assert len(r.damage) == 1 and "recovery-point 900 is past the end" in r.damage[0].reason


@pytest.mark.parametrize("length", [-12, -403649718, 0])
def test_cut_at_first_damage_then_the_log_opens(tmp_path, length):
    """The fault run's log that could not open (a damaged length in a sealed segment below the
    recovery point): check finds it, the cut makes the log open with everything before it."""
    log = fill(str(tmp_path / "live"))
    log.flush()
    d = crash_copy(log, str(tmp_path / "snap"))
    log.close()
    batches = read_batches(d)
    victim = [b for b in batches if b.segment == segment_bases(d)[1]][3]
    with open(seg_file(d, victim.segment), "r+b") as f:
        f.seek(victim.pos + 8)
        f.write(struct.pack(">i", length))
    with pytest.raises(klog.CorruptLogError):
        klog.Log.open(d, CFG).close()
    r = report_of(d)
    first = r.data_damage[0]
    assert (first.path, first.start, first.offsets[0]) == (seg_file(d, victim.segment),
                                                          victim.pos, victim.base)
    with check.DirectoryLocks([d]):
        said = check.truncate_at_first_damage(r)
    assert f"byte {victim.pos}" in said and f"offsets {victim.base} and later" in said, said
    assert report_of(d).damage == []
    with klog.Log.open(d, CFG) as log:
        assert log.log_end_offset == victim.base
        assert [r.offset for r in log.records()] == list(range(victim.base))
