"""klog.Log end to end, against brute-force oracles over the records we appended."""
import bisect
import os
import struct
import tempfile
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

import klog
from klog import ConfigError, LogClosedError, OffsetOutOfRangeError, RecordTooLargeError
from klog._native.mmapfile import MappedFile
from klog.errors import CorruptRecordError, LogLockedError

from .helpers import (
    Spec, batches_of, examples, fill, random_spec, rng_for, segment_files, specs,
)

SMALL = {"segment.bytes": 1024, "index.interval.bytes": 100, "retention.ms": -1}


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "topic-0")


def assert_records(log, expected, start=None):
    got = list(log.records(start))
    assert got == [r for r in expected if r.offset >= (log.log_start_offset if start is None else start)]


# -- appending and reading ------------------------------------------------------------------
def test_offsets_are_consecutive_across_batches_and_records_round_trip(path):
    rng = rng_for(1)
    expected = []
    with klog.Log.open(path, SMALL) as log:
        assert (log.log_start_offset, log.log_end_offset) == (0, 0)
        for _ in range(60):
            spec = random_spec(rng)
            base = spec.append_to(log)
            assert base == len(expected)
            assert log.log_end_offset == base + len(spec)
            expected.extend(spec.records(base))
        assert [r.offset for r in log.records()] == list(range(len(expected)))
        assert_records(log, expected)
        assert len(log.segments) > 3


def test_append_batch_assigns_offsets_and_stores_bytes_unchanged(path):
    rng = rng_for(2)
    with klog.Log.open(path) as log:
        first = random_spec(rng, n=3)
        log.append(first.values, timestamps=first.timestamps)
        for codec in [None, "lz4", "gzip", "snappy", "zstd"]:
            spec = random_spec(rng, n=5, codecs=[codec])
            raw = spec.encode(base_offset=987_654)
            end = log.log_end_offset
            assert log.append_batch(raw) == end
            view = log.read(end)
            assert bytes(view[:8]) == struct.pack(">q", end)
            assert bytes(view[12:16]) == struct.pack(">i", log.leader_epoch)   # stamped
            assert bytes(view[8:12]) == raw[8:12]
            assert bytes(view[16:]) == raw[16:]   # CRC, attributes, records: byte for byte
            assert list(log.records(end)) == spec.records(end)
            view.release()
        # a memoryview / bytearray is as good as bytes
        spec = random_spec(rng, n=2, codecs=[None])
        end = log.log_end_offset
        assert log.append_batch(memoryview(bytearray(spec.encode()))) == end
        assert list(log.records(end)) == spec.records(end)


def test_read_at_every_offset_returns_the_batch_holding_it(path):
    rng = rng_for(3)
    with klog.Log.open(path, SMALL) as log:
        expected = fill(log, rng, 80)
        batches = batches_of(log)
        holder = {o: (b, last) for b, last, _ in batches for o in range(b, last + 1)}
        assert sorted(holder) == [r.offset for r in expected]
        for offset in range(log.log_end_offset):
            view = log.read(offset)
            h = klog.read_header(view)
            assert h.base_offset <= offset <= h.last_offset
            assert (h.base_offset, h.last_offset) == holder[offset]
            # whole batches, back to back, zero-copy out of the mapped segment
            pos, n = 0, 0
            while pos < view.nbytes:
                pos += klog.read_header(view, pos).size
                n += 1
            assert pos == view.nbytes
            assert view.readonly and isinstance(view.obj, MappedFile)
            decoded = klog.decode_batch(view)
            assert decoded == expected[h.base_offset:h.base_offset + len(decoded)]
            view.release()


def test_read_max_bytes_is_whole_batches_at_least_one(path):
    rng = rng_for(4)
    with klog.Log.open(path, {"segment.bytes": 4096, "index.interval.bytes": 200}) as log:
        fill(log, rng, 120)
        batches = batches_of(log)
        sizes = {b: s for b, _, s in batches}
        boundaries = set(log.segments) | {log.log_end_offset}
        for _ in range(300):
            b, last, size = rng.choice(batches)
            offset = rng.randint(b, last)
            max_bytes = rng.choice([0, 1, size - 1, size, size + 1, rng.randint(1, 3000), 1 << 20])
            view = log.read(offset, max_bytes=max_bytes)
            # at least the batch holding offset, even when it alone is bigger than max_bytes
            assert klog.read_header(view).base_offset == b
            pos, nxt = 0, b
            while pos < view.nbytes:
                h = klog.read_header(view, pos)
                assert (h.base_offset, h.size) == (nxt, sizes[nxt])
                pos += h.size
                nxt = h.last_offset + 1
            assert pos == view.nbytes
            assert view.nbytes <= max(max_bytes, size)
            # ... and no more batch would have fit (a read stops at the end of a segment)
            if nxt not in boundaries:
                assert view.nbytes + sizes[nxt] > max_bytes
            view.release()


def test_read_at_end_is_empty_and_outside_the_log_raises(path):
    rng = rng_for(5)
    with klog.Log.open(path, SMALL) as log:
        assert log.read(0).nbytes == 0
        with pytest.raises(OffsetOutOfRangeError):
            log.read(1)
        fill(log, rng, 30)
        end = log.log_end_offset
        assert log.read(end).nbytes == 0
        assert list(log.records(end)) == []
        for bad in (end + 1, end + 1000, -1):
            with pytest.raises(OffsetOutOfRangeError):
                log.read(bad)
            with pytest.raises(OffsetOutOfRangeError):
                log.records(bad)
        log.delete_before(end // 2)
        with pytest.raises(OffsetOutOfRangeError):
            log.read(end // 2 - 1)
        with pytest.raises(OffsetOutOfRangeError):
            log.records(0)
        view = log.read(end // 2)
        h = klog.read_header(view)
        assert h.base_offset <= end // 2 <= h.last_offset
        view.release()


def test_releasing_the_empty_view_at_the_end_breaks_nothing(path, tmp_path):
    with klog.Log.open(path) as log, klog.Log.open(str(tmp_path / "other")) as other:
        view = log.read(0)
        assert view.nbytes == 0
        view.release()          # as the docs ask: views pin their segment until released
        assert log.read(0).nbytes == 0
        assert other.read(0).nbytes == 0
        log.append([b"a"], timestamps=1)
        view = log.read(1)
        view.release()
        assert log.read(1).nbytes == 0 and bytes(log.read(0)[-1:]) == b"\x00"


def test_records_from_every_offset(path):
    rng = rng_for(6)
    with klog.Log.open(path, SMALL) as log:
        expected = fill(log, rng, 40)
        for start in [None] + list(range(log.log_end_offset + 1)):
            assert_records(log, expected, start)
        # a log start in the middle of a batch: records() starts exactly there
        mid = next(b + 1 for b, last, _ in batches_of(log) if last > b and b > 20)
        log.delete_before(mid)
        assert log.log_start_offset == mid
        assert next(iter(log.records())).offset == mid
        for start in range(mid, log.log_end_offset + 1):
            assert_records(log, expected, start)


def test_records_iterator_sees_appends_made_while_iterating(path):
    with klog.Log.open(path, SMALL) as log:
        log.append([b"a", b"b"], timestamps=1)
        it = log.records()
        assert next(it).value == b"a"
        log.append([b"c"], timestamps=2)
        assert [r.value for r in it] == [b"b", b"c"]


# -- offset_for_time -------------------------------------------------------------------------
def expected_offset_for_time(records, start, t):
    return next((r.offset for r in records if r.offset >= start and r.timestamp >= t), None)


@examples(25)
@given(st.lists(specs(max_records=8, ts=st.integers(1_000, 1_030)), min_size=1, max_size=40),
       st.integers(0, 1 << 30), st.booleans())
def test_offset_for_time_matches_brute_force(batch_specs, start_seed, reopen):
    with tempfile.TemporaryDirectory() as d:
        log = klog.Log.open(d, {"segment.bytes": 1024, "index.interval.bytes": 64,
                                "retention.ms": -1})
        try:
            expected = []
            for spec in batch_specs:
                expected.extend(spec.records(spec.append_to(log)))
            if start_seed % 3 == 0:   # sometimes a log start in the middle
                log.delete_before(start_seed % (log.log_end_offset + 1))
            if reopen:
                log.close()
                log = klog.Log.open(d, {"segment.bytes": 1024, "index.interval.bytes": 64})
            start = log.log_start_offset
            stamps = sorted({r.timestamp for r in expected})
            for t in [-1, 0, stamps[0] - 1] + stamps + [s + 1 for s in stamps]:
                assert log.offset_for_time(t) == expected_offset_for_time(expected, start, t), t
        finally:
            log.close()


def test_offset_for_time_across_segments_with_out_of_order_and_equal_timestamps(path):
    # one record per batch, timestamps 10, 30, 20, 20, 50, 40, 40, ... spread over many segments
    stamps = [10, 30, 20, 20, 50, 40, 40, 60, 5, 60, 70, 65, 65, 80]
    with klog.Log.open(path, {"segment.bytes": 1024, "index.interval.bytes": 0}) as log:
        for ts in stamps:
            log.append([b"x" * 300], timestamps=ts)
        assert len(log.segments) >= 4
        cases = {0: 0, 10: 0, 11: 1, 20: 1, 21: 1, 30: 1, 31: 4, 45: 4, 50: 4, 51: 7, 60: 7,
                 61: 10, 66: 10, 70: 10, 71: 13, 80: 13, 81: None}
        for t, want in cases.items():
            assert log.offset_for_time(t) == want, t
        log.delete_before(5)
        assert log.offset_for_time(20) == 5
        assert log.offset_for_time(5) == 5


# -- segments, reopen -----------------------------------------------------------------------
def test_segments_roll_by_segment_bytes_and_survive_reopen(path):
    rng = rng_for(7)
    cfg = {"segment.bytes": 1024, "index.interval.bytes": 128}
    with klog.Log.open(path, cfg) as log:
        expected = fill(log, rng, 60, max_value=60)
        segments = log.segments
        end = log.log_end_offset
    assert len(segments) > 4
    files = segment_files(path)
    assert sorted(files) == segments
    for base, size in files.items():
        assert size <= 1024
        with open(os.path.join(path, f"{base:020d}.log"), "rb") as f:
            head = f.read(61)
        if size:
            assert klog.read_header(head).base_offset == base
    assert os.path.exists(os.path.join(path, ".clean-shutdown"))
    with klog.Log.open(path, cfg) as log:
        assert log.segments == segments
        assert (log.log_start_offset, log.log_end_offset) == (0, end)
        assert_records(log, expected)
        expected += fill(log, rng, 20, max_value=60)
        assert_records(log, expected)
    with klog.Log.open(path, cfg) as log:
        assert_records(log, expected)
        assert len(batches_of(log)) == 80


def test_tiny_indexes_roll_segments_when_full(path):
    # 3 offset-index entries, 2 time-index entries per segment, an entry for every batch
    cfg = {"segment.index.bytes": 24, "index.interval.bytes": 0}
    rng = rng_for(13)
    with klog.Log.open(path, cfg) as log:
        expected = fill(log, rng, 40, ts_range=(0, 10_000))
        assert len(log.segments) >= 10
        for offset in range(log.log_end_offset):
            view = log.read(offset, max_bytes=1)
            h = klog.read_header(view)
            assert h.base_offset <= offset <= h.last_offset
            view.release()
        for t in sorted({r.timestamp for r in expected}):
            assert log.offset_for_time(t) == expected_offset_for_time(expected, 0, t)
    for name in os.listdir(path):
        if name.endswith(".index"):
            assert os.path.getsize(os.path.join(path, name)) <= 24
        if name.endswith(".timeindex"):
            assert os.path.getsize(os.path.join(path, name)) <= 24
    with klog.Log.open(path, cfg) as log:
        assert_records(log, expected)
        expected += fill(log, rng, 5)
        assert_records(log, expected)


def test_views_stay_readable_after_close(path):
    with klog.Log.open(path, {"segment.bytes": 1024}) as log:
        for i in range(10):
            log.append([b"%d" % i * 200], timestamps=i)
        views = [log.read(o) for o in (0, 5, 9)]
        copies = [bytes(v) for v in views]
    assert [bytes(v) for v in views] == copies
    assert klog.decode_batch(views[2])[0].value == b"9" * 200


def test_a_batch_bigger_than_segment_bytes_gets_its_own_segment(path):
    with klog.Log.open(path, {"segment.bytes": 1024}) as log:
        log.append([b"a"], timestamps=1)
        big = log.append([b"x" * 3000], timestamps=2)
        after = log.append([b"b"], timestamps=3)
        assert log.segments == [0, big, after]
        assert [r.value for r in log.records()] == [b"a", b"x" * 3000, b"b"]


def test_roll_starts_a_new_segment_and_is_a_no_op_when_empty(path):
    with klog.Log.open(path) as log:
        log.roll()
        assert log.segments == [0]
        log.append([b"a", b"b"], timestamps=1)
        log.roll()
        assert log.segments == [0, 2]
        log.roll()
        assert log.segments == [0, 2]
        log.append([b"c"], timestamps=1)
        assert [r.offset for r in log.records()] == [0, 1, 2]
    with klog.Log.open(path) as log:
        assert log.segments == [0, 2]


def test_unclean_reopen_recovers_the_same_content(path):
    rng = rng_for(8)
    with klog.Log.open(path, SMALL) as log:
        expected = fill(log, rng, 50)
    os.unlink(os.path.join(path, ".clean-shutdown"))
    os.unlink(os.path.join(path, "00000000000000000000.index"))  # indexes are rebuilt
    with klog.Log.open(path, SMALL) as log:
        assert log.log_end_offset == len(expected)
        assert_records(log, expected)
        for offset in range(0, log.log_end_offset, 7):
            view = log.read(offset)
            h = klog.read_header(view)
            assert h.base_offset <= offset <= h.last_offset
            view.release()


@pytest.mark.parametrize("records", [0, 5])
@pytest.mark.parametrize("roll", [False, True])
def test_preallocate_and_unclean_reopen(path, records, roll):
    cfg = {"preallocate": True, "segment.bytes": 4096, "max.message.bytes": 4096}
    with klog.Log.open(path, cfg) as log:
        for i in range(records):
            log.append([b"p" * 100], timestamps=i)
        if roll:
            log.roll()      # an empty active segment: preallocated again when reopened
    os.unlink(os.path.join(path, ".clean-shutdown"))
    with klog.Log.open(path, cfg) as log:
        assert log.log_end_offset == records
        assert [r.offset for r in log.records()] == list(range(records))
        assert log.append([b"q"], timestamps=9) == records


def test_second_open_of_the_same_directory_is_refused(path):
    with klog.Log.open(path):
        with pytest.raises(LogLockedError):
            klog.Log.open(path)
    klog.Log.open(path).close()


# -- retention and deletion -------------------------------------------------------------------
def segment_data_sizes(log):
    """{segment base: bytes of batches in it}, from the batches a reader sees (the active
    segment's file also holds space reserved ahead of the data)."""
    bases = log.segments
    sizes = dict.fromkeys(bases, 0)
    for base, _, size in batches_of(log, bases[0]):
        sizes[bases[bisect.bisect_right(bases, base) - 1]] += size
    return sizes


def segment_max_timestamps(log, expected):
    bases = log.segments + [log.log_end_offset]
    return {bases[i]: max((r.timestamp for r in expected if bases[i] <= r.offset < bases[i + 1]),
                          default=None) for i in range(len(bases) - 1)}


@pytest.mark.parametrize("retention_bytes", [0, 1, 1500, 3000, 10_000, 1 << 30])
def test_retention_bytes_deletes_whole_oldest_segments(path, retention_bytes):
    rng = rng_for(9)
    cfg = {"segment.bytes": 1024, "retention.bytes": retention_bytes, "retention.ms": -1}
    with klog.Log.open(path, cfg) as log:
        expected = fill(log, rng, 60, max_value=80)
        sizes = segment_data_sizes(log)
        segments, end = log.segments, log.log_end_offset
        active = segments[-1]
        assert sizes[active] > 0 and sum(sizes.values()) == log.size
        deleted = log.enforce_retention()
        on_disk = segment_files(path)
        kept = [b for b in segments if b in on_disk]
        # oldest first, whole segments
        assert kept == segments[deleted:]
        assert all(b in on_disk for b in log.segments)
        assert log.log_end_offset == end
        if retention_bytes == 0:
            # Kafka: everything goes, including the (rolled) active segment; the end stays
            assert deleted == len(segments)
            assert log.segments == [end] and log.log_start_offset == end
            assert list(log.records()) == []
        else:
            total = sum(sizes[b] for b in kept)
            # as Kafka: delete while what remains is still >= retention.bytes
            if deleted:
                assert total >= retention_bytes
            assert total - sizes[kept[0]] < retention_bytes
            assert active in kept                         # the active data is never lost
            assert log.log_start_offset == kept[0]
            assert_records(log, expected)
            assert [r.offset for r in log.records()][-1] == end - 1
        assert log.append([b"next"], timestamps=1) == end
    with klog.Log.open(path, cfg) as log:
        assert log.log_start_offset == (end if retention_bytes == 0 else kept[0])
        assert log.log_end_offset == end + 1


def test_retention_ms_deletes_expired_leading_segments(path):
    day = 86_400_000
    cfg = {"segment.bytes": 1024, "retention.ms": day}
    with klog.Log.open(path, cfg) as log:
        expected = []
        # segment i holds timestamps around i * 1000; one later segment is old (out of order)
        for i in range(12):
            ts = 1_000_000 + i * 1000 if i != 8 else 5
            spec = Spec([b"y" * 400, b"z" * 400], timestamps=[ts, ts - 3])
            expected.extend(spec.records(spec.append_to(log)))
        segments = log.segments
        maxts = segment_max_timestamps(log, expected)
        assert len(segments) >= 6
        end = log.log_end_offset
        # nothing has expired yet
        assert log.enforce_retention(now=1_000_000 + day) == 0
        # expire segments whose max timestamp < now - retention: the first four
        now = 1_000_000 + 3 * 1000 + day + 1
        expired = [b for b in segments if now - maxts[b] > day]
        assert log.enforce_retention(now=now) == 4
        assert log.segments == segments[4:]
        assert log.log_start_offset == segments[4]
        assert_records(log, expected)
        # the out-of-order old segment (index 8) is not deleted past a live one
        assert segments[8] in log.segments and segments[8] in expired
        # now everything is expired, the active segment too: Kafka rolls and deletes it
        assert log.enforce_retention(now=10 ** 12) == len(segments) - 4
        assert log.log_start_offset == log.log_end_offset == end
        assert list(log.records()) == []
        assert log.append([b"after"], timestamps=10 ** 12) == end
        assert [r.value for r in log.records()] == [b"after"]


def test_retention_ms_minus_one_keeps_everything(path):
    with klog.Log.open(path, {"segment.bytes": 1024, "retention.ms": -1}) as log:
        for i in range(10):
            log.append([b"q" * 500], timestamps=i)
        n = len(log.segments)
        assert log.enforce_retention(now=10 ** 15) == 0
        assert len(log.segments) == n and log.log_start_offset == 0


def test_delete_before(path):
    rng = rng_for(10)
    with klog.Log.open(path, SMALL) as log:
        expected = fill(log, rng, 40)
        end = log.log_end_offset
        segments = log.segments
        target = segments[3] + 1
        assert log.delete_before(target) == target
        assert log.log_start_offset == target
        assert log.segments == segments[3:]                # whole segments below it are gone
        assert sorted(segment_files(path)) == segments[3:]
        assert_records(log, expected)
        assert log.delete_before(2) == target              # never backwards
        assert log.delete_before(target) == target
        for bad in (end + 1, -1):
            with pytest.raises(OffsetOutOfRangeError):
                log.delete_before(bad)
        assert log.log_start_offset == target
    with klog.Log.open(path, SMALL) as log:
        assert log.log_start_offset == target               # checkpointed
        assert_records(log, expected)
        assert log.delete_before(end) == end
        assert list(log.records()) == []
        assert log.append([b"n"], timestamps=1) == end


# -- truncation -----------------------------------------------------------------------------
def test_truncate_to_removes_whole_batches(path):
    rng = rng_for(11)
    with klog.Log.open(path, SMALL) as log:
        expected = fill(log, rng, 50)
        batches = batches_of(log)
        end = log.log_end_offset
        # to the end and past it: nothing happens
        assert log.truncate_to(end) == end
        assert log.truncate_to(end + 10) == end
        assert_records(log, expected)
        # into the middle of the last batch (the active segment)
        b, last, _ = batches[-1]
        assert log.truncate_to(last) == b
        expected = expected[:b]
        assert log.log_end_offset == b and log.read(b).nbytes == 0
        assert_records(log, expected)
        # into the middle of a batch of a sealed segment, several segments back
        segments = log.segments
        b, last, _ = next(x for x in batches if x[0] > segments[-4] and x[1] > x[0])
        assert last < log.log_end_offset
        assert log.truncate_to(b + 1) == b
        expected = expected[:b]
        assert log.log_end_offset == b
        assert all(s <= b for s in log.segments)
        assert sorted(segment_files(path)) == log.segments
        assert_records(log, expected)
        # exactly at a batch boundary
        b2 = batches[len(batches) // 4][0]
        assert log.truncate_to(b2) == b2
        expected = expected[:b2]
        assert_records(log, expected)
        # appending continues from the new end, and everything survives a clean reopen
        expected += fill(log, rng, 10)
        assert [r.offset for r in log.records()] == list(range(len(expected)))
    with klog.Log.open(path, SMALL) as log:
        assert_records(log, expected)
        expected += fill(log, rng, 3)
    os.unlink(os.path.join(path, ".clean-shutdown"))
    with klog.Log.open(path, SMALL) as log:
        assert_records(log, expected)


def test_truncate_to_below_log_start_starts_over_there(path):
    rng = rng_for(12)
    with klog.Log.open(path, SMALL) as log:
        fill(log, rng, 30)
        log.delete_before(40)
        assert log.truncate_to(25) == 25
        assert (log.log_start_offset, log.log_end_offset) == (25, 25)
        assert list(log.records()) == [] and log.segments == [25]
        assert log.append([b"a"], timestamps=1) == 25
        assert [r.offset for r in log.records()] == [25]
        with pytest.raises(OffsetOutOfRangeError):
            log.truncate_to(-1)
    with klog.Log.open(path, SMALL) as log:
        assert (log.log_start_offset, log.log_end_offset) == (25, 26)


def test_truncate_to_inside_the_batch_holding_the_log_start(path):
    with klog.Log.open(path) as log:
        log.append([b"a"] * 3, timestamps=1)     # 0..2
        log.append([b"b"] * 5, timestamps=1)     # 3..7
        log.delete_before(5)
        new_end = log.truncate_to(6)
        # the batch 3..7 goes; the end cannot fall below the start
        assert log.log_start_offset <= log.log_end_offset == new_end
        assert log.log_start_offset == 5 and new_end == 5
        assert list(log.records()) == []
        assert log.append([b"c"], timestamps=1) == 5
        assert [(r.offset, r.value) for r in log.records()] == [(5, b"c")]


def test_a_cut_of_flushed_data_counts_as_unsynced_until_the_next_flush(tmp_path):
    """truncate_to flushes the segment after cutting it; that flush must really fdatasync the new
    length, or a power loss brings the cut batches back (valid CRCs: recovery keeps them)."""
    f = MappedFile(str(tmp_path / "x.log"), True, 1 << 16)
    f.append(b"x" * 100)
    f.flush()
    assert f.synced == f.size == 100
    f.truncate(40)
    assert f.size == 40 and f.synced != f.size    # the shorter length is not durable yet
    f.flush()
    assert f.synced == f.size == 40
    f.close()


def test_truncate_to_with_a_live_view_is_refused_without_changes(path):
    with klog.Log.open(path, {"segment.bytes": 1024}) as log:
        for i in range(20):
            log.append([b"x" * 100] * 2, timestamps=i)
        segments, end = log.segments, log.log_end_offset
        view = log.read(2)
        try:
            log.truncate_to(3)
        except BufferError:
            # refused: nothing may have changed
            assert log.segments == segments and log.log_end_offset == end
            assert sorted(segment_files(path)) == segments
            assert [r.offset for r in log.records()] == list(range(end))
        else:
            assert log.log_end_offset == 2
        assert bytes(view[:8]) == struct.pack(">q", 2)   # the view still reads the old bytes
        view.release()
        assert log.truncate_to(3) == 2
        assert [r.offset for r in log.records()] == [0, 1]


# -- limits and durability ------------------------------------------------------------------
def test_max_message_bytes(path):
    spec = Spec([b"m" * 100, b"n" * 50], timestamps=7)
    limit = len(spec.encode())
    with klog.Log.open(path, {"max.message.bytes": limit}) as log:
        assert log.append_batch(spec.encode()) == 0
        assert spec.append_to(log) == 2
        before = segment_files(path)
        big = Spec([b"m" * 101, b"n" * 50], timestamps=7)
        with pytest.raises(RecordTooLargeError, match="max.message.bytes"):
            big.append_to(log)
        with pytest.raises(RecordTooLargeError):
            log.append_batch(big.encode())
        assert log.log_end_offset == 4
        assert segment_files(path) == before
        assert log.read(4).nbytes == 0
        assert [r.offset for r in log.records()] == [0, 1, 2, 3]


def test_flush_messages_moves_the_recovery_point(path):
    with klog.Log.open(path, {"flush.messages": 1}) as log:
        for i in range(5):
            log.append([b"r"] * (i + 1), timestamps=1)
            assert log.recovery_point == log.log_end_offset
    with klog.Log.open(path + "-b") as log:   # default: never
        log.append([b"r"] * 3, timestamps=1)
        assert log.recovery_point == 0
        log.flush()
        assert log.recovery_point == 3


def read_checkpoint_file(path):
    with open(os.path.join(path, "log.checkpoint")) as f:
        lines = f.read().split("\n")
    return dict((k, int(v)) for k, v in (line.split() for line in lines[2:] if line))


def test_flush_ms_background_flusher_moves_the_recovery_point(path):
    with klog.Log.open(path, {"flush.ms": 50}) as log:
        log.append([b"a", b"b"], timestamps=1)
        deadline = time.monotonic() + 5
        # the in-memory recovery point moves first, the checkpoint file right after it
        while (log.recovery_point, read_checkpoint_file(path)["recovery-point"]) != (2, 2) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        assert log.recovery_point == 2
        assert read_checkpoint_file(path)["recovery-point"] == 2
        # later appends are picked up too, with no further calls
        log.append([b"c"], timestamps=1)
        deadline = time.monotonic() + 5
        while log.recovery_point != 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert log.recovery_point == 3


# -- lifecycle ------------------------------------------------------------------------------
def test_closed_log_raises_log_closed_error(path):
    log = klog.Log.open(path)
    log.append([b"a"], timestamps=1)
    log.close()
    log.close()   # idempotent
    assert log.closed
    batch = klog.encode_batch([b"x"])
    calls = [
        lambda: log.append([b"b"]), lambda: log.append_batch(batch), lambda: log.read(0),
        lambda: log.records(), lambda: log.offset_for_time(0), lambda: log.flush(),
        lambda: log.truncate_to(0), lambda: log.delete_before(1), lambda: log.enforce_retention(),
        lambda: log.roll(),
    ]
    for call in calls:
        with pytest.raises(LogClosedError):
            call()


def test_with_closes_the_log(path):
    with klog.Log.open(path) as log:
        log.append([b"a"], timestamps=1)
        assert not log.closed
    assert log.closed
    assert os.path.exists(os.path.join(path, ".clean-shutdown"))
    with pytest.raises(LogClosedError):
        log.append([b"b"])
    with klog.Log.open(path) as again:     # the directory lock was released
        assert again.log_end_offset == 1


# -- config ---------------------------------------------------------------------------------
@pytest.mark.parametrize("config, key", [
    ({"segment.byte": 1024}, "segment.byte"),
    ({"retention_ms": 5}, "retention_ms"),
    ({"segment.bytes": "abc"}, "segment.bytes"),
    ({"segment.bytes": 1.5}, "segment.bytes"),
    ({"segment.bytes": [1024]}, "segment.bytes"),
    ({"segment.bytes": True}, "segment.bytes"),
    ({"segment.bytes": None}, "segment.bytes"),
    ({"segment.bytes": 100}, "segment.bytes"),
    ({"segment.bytes": 1 << 31}, "segment.bytes"),
    ({"segment.bytes": "1e3"}, "segment.bytes"),
    ({"retention.ms": -2}, "retention.ms"),
    ({"flush.messages": 0}, "flush.messages"),
    ({"max.message.bytes": -1}, "max.message.bytes"),
    ({"preallocate": "yes"}, "preallocate"),
    ({"preallocate": 1}, "preallocate"),
    ({"cleanup.policy": "forever"}, "cleanup.policy"),
    ({"compression.type": "brotli"}, "compression.type"),
    ({"min.cleanable.dirty.ratio": 1.5}, "min.cleanable.dirty.ratio"),
    ({"min.cleanable.dirty.ratio": "half"}, "min.cleanable.dirty.ratio"),
    ({"min.cleanable.dirty.ratio": "nan"}, "min.cleanable.dirty.ratio"),
    ({"min.cleanable.dirty.ratio": float("nan")}, "min.cleanable.dirty.ratio"),
])
def test_bad_config_raises_config_error_naming_the_key(path, config, key):
    with pytest.raises(ConfigError) as info:
        klog.Log.open(path, config)
    assert key in str(info.value)
    assert not os.path.exists(path)         # refused before anything was created


def test_unknown_config_name_suggests_the_right_one(path):
    with pytest.raises(ConfigError, match="did you mean 'segment.bytes'"):
        klog.Log.open(path, {"segment.byte": 1024})
    with pytest.raises(ConfigError, match="did you mean 'retention.ms'"):
        klog.Log.open(path, {"retention_ms": 5})


def test_config_that_is_not_a_dict(path):
    with pytest.raises(ConfigError):
        klog.Log.open(path, [("segment.bytes", 1024)])


def test_config_accepts_kafka_style_strings(path):
    config = {"segment.bytes": "1024", "retention.ms": "-1", "preallocate": "false",
              "index.interval.bytes": " 128 ", "min.cleanable.dirty.ratio": "0.25",
              "message.timestamp.type": "CreateTime", "segment.ms": 60_000.0}
    with klog.Log.open(path, config) as log:
        assert log.config.segment_bytes == 1024
        assert log.config.retention_ms == -1
        assert log.config.preallocate is False
        assert log.config.index_interval_bytes == 128
        assert log.config.min_cleanable_dirty_ratio == 0.25
        assert log.config.segment_ms == 60_000 and isinstance(log.config.segment_ms, int)
        for _ in range(10):
            log.append([b"s" * 300], timestamps=1)
        assert len(log.segments) > 3        # the string segment.bytes is really in force
    assert klog.LogConfig.from_dict({"preallocate": "TRUE"}).preallocate is True


# -- bad input -----------------------------------------------------------------------------
BAD_APPENDS = [
    ("str values", dict(values="abc")),
    ("bytes values", dict(values=b"abc")),
    ("None values", dict(values=None)),
    ("int value", dict(values=[b"ok", 1])),
    ("str value", dict(values=["text"])),
    ("no records", dict(values=[])),
    ("keys length", dict(values=[b"a", b"b"], keys=[b"k"])),
    ("str key", dict(values=[b"a"], keys=["k"])),
    ("bytes keys", dict(values=[b"a", b"b", b"c"], keys=b"abc")),
    ("timestamp type", dict(values=[b"a"], timestamps=["now"])),
    ("timestamps length", dict(values=[b"a"], timestamps=[1, 2])),
    ("timestamp float", dict(values=[b"a"], timestamps=[1.5])),
    ("header value str", dict(values=[b"a"], headers=[[("k", "v")]])),
    ("header key bytes", dict(values=[b"a"], headers=[[(b"k", b"v")]])),
    ("header not a pair", dict(values=[b"a"], headers=[[("k",)]])),
    ("headers length", dict(values=[b"a", b"b"], headers=[None])),
    ("headers not a list", dict(values=[b"a"], headers=[("k", b"v")])),
    ("compression", dict(values=[b"a"], compression="brotli")),
    ("compression type", dict(values=[b"a"], compression=3.0)),
]


@pytest.mark.parametrize("kwargs", [k for _, k in BAD_APPENDS], ids=[n for n, _ in BAD_APPENDS])
def test_bad_append_input_raises_and_leaves_the_log_unchanged(path, kwargs):
    with klog.Log.open(path, SMALL) as log:
        log.append([b"first", b"second"], timestamps=5)
        files = segment_files(path)
        with pytest.raises((TypeError, ValueError)):
            log.append(**kwargs)
        assert log.log_end_offset == 2
        assert log.read(2).nbytes == 0
        assert [r.value for r in log.records()] == [b"first", b"second"]
        assert segment_files(path) == files
        assert log.append([b"third"], timestamps=6) == 2


def test_timestamp_out_of_int64_range_is_refused(path):
    with klog.Log.open(path) as log:
        with pytest.raises((ValueError, OverflowError)):
            log.append([b"a"], timestamps=[1 << 70])
        assert log.log_end_offset == 0 and log.read(0).nbytes == 0


@pytest.mark.parametrize("mangle", ["garbage", "short", "crc", "length", "magic", "two batches",
                                    "not bytes"])
def test_bad_append_batch_raises_and_leaves_the_log_unchanged(path, mangle):
    good = klog.encode_batch([b"a", b"b"], timestamps=1)
    bad = {
        "garbage": b"\x00" * 100,
        "short": good[:40],
        "crc": good[:-1] + bytes([good[-1] ^ 1]),
        "length": good[:8] + struct.pack(">i", len(good)) + good[12:],
        "magic": good[:16] + b"\x01" + good[17:],
        "two batches": good + good,
        "not bytes": "a string",
    }[mangle]
    with klog.Log.open(path) as log:
        log.append_batch(good)
        files = segment_files(path)
        with pytest.raises((CorruptRecordError, TypeError)):
            log.append_batch(bad)
        assert log.log_end_offset == 2 and log.read(2).nbytes == 0
        assert segment_files(path) == files


# -- threads -------------------------------------------------------------------------------
def test_concurrent_appends_and_a_reader_lose_and_duplicate_nothing(path):
    writers, per_writer = 4, 150
    errors = []
    results = {w: [] for w in range(writers)}
    done = threading.Event()
    seen = []

    with klog.Log.open(path, {"segment.bytes": 1024, "index.interval.bytes": 64}) as log:
        def write(w):
            try:
                for i in range(per_writer):
                    n = 1 + (i + w) % 4
                    values = [f"{w}:{i}:{j}".encode() for j in range(n)]
                    results[w].append((log.append(values, timestamps=i), values))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        def read():
            try:
                offset = 0
                while True:
                    finished = done.is_set()
                    before = offset
                    for r in log.records(offset):
                        assert r.offset == offset, (r.offset, offset)
                        seen.append(r.value)
                        offset += 1
                    if finished and offset == log.log_end_offset:
                        return
                    if offset == before:
                        time.sleep(0.001)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        reader = threading.Thread(target=read)
        reader.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        reader.join(30)
        assert not reader.is_alive()
        assert not errors, errors

        records = list(log.records())
        total = sum(1 + (i + w) % 4 for w in range(writers) for i in range(per_writer))
        assert log.log_end_offset == total
        assert [r.offset for r in records] == list(range(total))
        by_offset = {r.offset: r.value for r in records}
        for w in range(writers):
            for base, values in results[w]:
                assert [by_offset[base + j] for j in range(len(values))] == values
            bases = [b for b, _ in results[w]]
            assert bases == sorted(bases)
        assert seen == [r.value for r in records]
        assert len(set(seen)) == total
