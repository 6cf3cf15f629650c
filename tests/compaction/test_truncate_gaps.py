"""truncate_to on a compacted log: an offset inside a gap becomes the new end, exactly."""
import klog


def compacted_log(path):
    log = klog.Log.open(path, {"segment.bytes": 1024, "cleanup.policy": "compact"})
    for i in range(60):
        log.append([b"v%d" % i], keys=[b"k%d" % (i % 5)])
    log.roll()
    log.clean()
    return log


def surviving_offsets(log):
    return [r.offset for r in log.records()]


def test_truncate_into_a_gap_ends_the_log_there(tmp_path):
    log = compacted_log(tmp_path / "log")
    offsets = surviving_offsets(log)
    assert offsets == [55, 56, 57, 58, 59]           # only the latest per key survives
    assert log.truncate_to(20) == 20                 # 20 lies in a gap: nothing to cut, end is 20
    assert log.log_end_offset == 20
    assert surviving_offsets(log) == []
    assert log.append([b"new"], keys=[b"k9"]) == 20  # offsets never go backwards
    log.close()
    with klog.Log.open(tmp_path / "log", {"cleanup.policy": "compact"}) as again:
        assert surviving_offsets(again) == [20] and again.log_end_offset == 21


def test_truncate_inside_the_kept_batches(tmp_path):
    log = compacted_log(tmp_path / "log")
    assert log.truncate_to(57) == 57
    assert surviving_offsets(log) == [55, 56]
    assert log.append([b"x"], keys=[b"k1"]) == 57
    log.close()
