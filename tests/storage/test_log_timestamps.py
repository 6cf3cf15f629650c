"""Lookups by timestamp, against brute force over the appended records:
``record_for_time`` (the first record at or after a time, with its own timestamp) and
``max_timestamp_record`` (the first record with the largest timestamp: ListOffsets
MAX_TIMESTAMP). Both must hold after a clean reopen, after recovery without the clean-shutdown
marker and with the time indexes lost, and after a crash (a copy of the open log's files)."""
import os
import shutil
import tempfile

from hypothesis import given
from hypothesis import strategies as st

import klog

from .helpers import examples, specs

CFG = {"segment.bytes": 1024, "index.interval.bytes": 64, "retention.ms": -1}


def expected_max(records, start):
    live = [r for r in records if r.offset >= start]
    if not live:
        return None
    top = max(r.timestamp for r in live)
    return next((r.offset, r.timestamp) for r in live if r.timestamp == top)


def expected_for_time(records, start, t):
    return next(((r.offset, r.timestamp) for r in records
                 if r.offset >= start and r.timestamp >= t), None)


def reopened(d, log, how):
    """The log at ``d`` after ``how``: kept open, closed and reopened, reopened without the
    clean-shutdown marker and time indexes, or a copy of its files taken while open (a crash)."""
    if how == "open":
        return log, d
    if how == "crash":
        copy = tempfile.mkdtemp()
        for name in os.listdir(d):
            if name != ".lock":
                try:
                    shutil.copy(os.path.join(d, name), os.path.join(copy, name))
                except FileNotFoundError:
                    pass   # a background flush renamed its checkpoint temp file meanwhile
        log.close()
        return klog.Log.open(copy, CFG), copy
    log.close()
    if how == "unclean":
        for name in os.listdir(d):
            if name.endswith(".timeindex") or name == ".clean-shutdown":
                os.unlink(os.path.join(d, name))
    return klog.Log.open(d, CFG), d


@examples(30)
@given(st.lists(specs(max_records=6, ts=st.integers(1_000, 1_020)), min_size=1, max_size=30),
       st.integers(0, 1 << 30), st.sampled_from(["open", "clean", "unclean", "crash"]))
def test_timestamp_lookups_match_brute_force(batch_specs, start_seed, how):
    with tempfile.TemporaryDirectory() as d:
        log = klog.Log.open(d, CFG)
        other = None
        try:
            expected = []
            for spec in batch_specs:
                expected.extend(spec.records(spec.append_to(log)))
            if start_seed % 3 == 0:   # sometimes a log start in the middle of a batch
                log.delete_before(start_seed % (log.log_end_offset + 1))
            log, other = reopened(d, log, how)
            start = log.log_start_offset
            assert log.max_timestamp_record() == expected_max(expected, start)
            stamps = sorted({r.timestamp for r in expected})
            for t in [-1, stamps[0] - 1] + stamps + [s + 1 for s in stamps]:
                assert log.record_for_time(t) == expected_for_time(expected, start, t), t
                assert log.offset_for_time(t) == (expected_for_time(expected, start, t)
                                                  or (None,))[0]
        finally:
            log.close()
            if other not in (None, d):
                shutil.rmtree(other, ignore_errors=True)


def test_max_timestamp_in_an_older_segment_and_ties(tmp_path):
    with klog.Log.open(tmp_path / "t-0", CFG) as log:
        assert log.max_timestamp_record() is None
        log.append([b"a" * 300, b"b" * 300], timestamps=[10, 90])     # 0, 1
        log.append([b"c" * 300, b"d" * 300], timestamps=[90, 20])     # 2, 3: a tie, later
        log.append([b"e" * 300], timestamps=[50])                      # 4
        assert len(log.segments) >= 2
        assert log.max_timestamp_record() == (1, 90)
        log.delete_before(2)   # the first 90 is gone; the tie at offset 2 is next
        assert log.max_timestamp_record() == (2, 90)
        log.delete_before(3)
        assert log.max_timestamp_record() == (4, 50)
        log.delete_before(5)
        assert log.max_timestamp_record() is None
