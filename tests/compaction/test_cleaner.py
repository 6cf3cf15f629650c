"""Log compaction (klog.storage.cleaner): what survives, at which offsets, in which bytes."""
import gc
import os

import pytest

import klog
from klog import CorruptRecordError, Log, Record, read_header
from klog._native.batch import build_batch, decode_records
from klog.storage import cleaner

from .helpers import COMPACT, fill_keyed, keyed_view, kill, latest_offsets, temp_files

NOW = 10_000_000


def _producer_42_sequences_0_to_6(log):
    """Producer 42's earlier batch: its batch at sequence 7 then follows (a producer unknown to
    the partition must start at sequence 0)."""
    log.append_batch(build_batch([b"p"] * 7, [b"p%d" % i for i in range(7)], [1] * 7, None, 0,
                                 0, None, producer_id=42, producer_epoch=3, base_sequence=0))


def surviving(log):
    return list(log.records())


def test_latest_value_per_key_survives_at_its_offset(compacted):
    log = compacted()
    written = fill_keyed(log, 300, keys=9)
    log.roll()
    end = log.log_end_offset
    result = log.clean(now=NOW)
    after = surviving(log)
    assert [(r.offset, r.key, r.value, r.timestamp) for r in after] == [
        (r.offset, r.key, r.value, r.timestamp)
        for r in written if latest_offsets(written)[r.key] == r.offset]
    assert keyed_view(after) == keyed_view(written)
    assert log.log_end_offset == end
    assert result.records_removed == 300 - 9 and result.records_kept == 9
    assert result.bytes_after < result.bytes_before
    assert result.dirty_end == end
    assert temp_files(log.path) == []


def test_active_segment_is_never_cleaned(compacted):
    log = compacted()
    written = fill_keyed(log, 200, keys=3)
    active_base = log.segments[-1]
    log.clean(now=NOW)
    after = surviving(log)
    # everything in the active segment is still there, superseded or not
    assert [r for r in after if r.offset >= active_base] == [
        r for r in written if r.offset >= active_base]
    # below it, one record per key at most
    cleaned = [r.key for r in after if r.offset < active_base]
    assert len(cleaned) == len(set(cleaned))
    assert keyed_view(after) == keyed_view(written)


def test_second_pass_with_nothing_to_do_rewrites_nothing(compacted):
    log = compacted()
    fill_keyed(log, 200, keys=5)
    log.roll()
    first = log.clean(now=NOW)
    assert first.segments_rewritten > 1
    files = _segment_inodes(log.path)
    second = log.clean(now=NOW)
    assert second.segments_rewritten == 0 and second.groups == ()
    assert _segment_inodes(log.path) == files


def _segment_inodes(path):
    """Segment files by name -> inode. Not log.checkpoint: the background flush of the rolled
    segments rewrites it whenever it runs, cleaning or not."""
    return {n: os.stat(os.path.join(path, n)).st_ino for n in os.listdir(path)
            if n.endswith((".log", ".index", ".timeindex"))}


def test_groups_stay_under_segment_bytes(compacted):
    log = compacted({"segment.bytes": 2048})
    # Each of 150 keys written twice in a row: half of every segment goes, and the kept half
    # (150 records of ~110 bytes) needs several segments of 2048 bytes.
    written = []
    for i in range(300):
        key, value = b"k%03d" % (i // 2), b"v%d" % i * 20
        written.append(Record(log.append([value], keys=[key], timestamps=i), i, key, value, ()))
    log.roll()
    before = len(log.segments)
    result = log.clean(now=NOW)
    assert len(result.groups) > 1
    sizes = [seg.size for seg in log._segments[:-1]]
    assert all(s <= 2048 for s in sizes), sizes
    assert surviving(log) == written[1::2]
    assert len(log.segments) < before / 1.5  # groups merged segments


def test_offsets_and_gaps_are_readable(compacted):
    log = compacted()
    written = fill_keyed(log, 120, keys=4)
    log.roll()
    log.clean(now=NOW)
    kept = {r.offset: r for r in surviving(log)}
    for offset in range(0, log.log_end_offset):
        got = list(log.records(offset))
        assert got == [kept[o] for o in sorted(kept) if o >= offset]
    # read() at an offset inside a gap returns the next batch after it
    first = min(kept)
    view = log.read(0)
    assert read_header(view).base_offset == first
    view.release()


def test_tombstones_kept_before_delete_retention_and_removed_after(compacted):
    log = compacted({"delete.retention.ms": 500})
    log.append([b"a1", b"b1", b"c1"], keys=[b"a", b"b", b"c"], timestamps=1_000)
    log.append([None], keys=[b"a"], timestamps=2_000)          # tombstone for a
    log.append([b"b2"], keys=[b"b"], timestamps=2_000)
    log.append([None, b"c2"], keys=[b"b", b"c"], timestamps=2_100)  # tombstone for b
    log.roll()
    end = log.log_end_offset

    result = log.clean(now=2_400)  # a's tombstone is 400 ms old, b's 300: both kept
    after = surviving(log)
    assert [(r.key, r.value) for r in after] == [(b"a", None), (b"b", None), (b"c", b"c2")]
    assert result.tombstones_removed == 0
    assert keyed_view(after) == {b"c": b"c2"}

    result = log.clean(now=2_550)  # a's is 550 ms old: gone; b's (450 ms) stays
    after = surviving(log)
    assert [(r.key, r.value) for r in after] == [(b"b", None), (b"c", b"c2")]
    assert result.tombstones_removed == 1

    log.clean(now=2_600)
    assert [(r.key, r.value) for r in surviving(log)] == [(b"c", b"c2")]
    assert log.log_end_offset == end


def test_superseded_tombstone_is_removed_at_once(compacted):
    log = compacted({"delete.retention.ms": 10**9})
    log.append([b"x1"], keys=[b"x"], timestamps=1)
    log.append([None], keys=[b"x"], timestamps=2)
    log.append([b"x2"], keys=[b"x"], timestamps=3)
    log.roll()
    result = log.clean(now=4)
    assert [(r.offset, r.value) for r in surviving(log)] == [(2, b"x2")]
    assert result.tombstones_removed == 1


@pytest.mark.parametrize("codec", ["lz4", "gzip", "snappy", "zstd"])
def test_compressed_batches_are_recompressed_with_their_codec(compacted, codec):
    log = compacted({"segment.bytes": 4096})
    written = []
    for i in range(12):
        keys = [b"k%d" % ((i * 5 + j) % 6) for j in range(5)]
        values = [b"value-%d-%d" % (i, j) * 3 for j in range(5)]
        headers = [[("h", b"%d" % j), ("n", None)] for j in range(5)]
        base = log.append(values, keys=keys, timestamps=1_000 + i, headers=headers,
                          compression=codec)
        written += [Record(base + j, 1_000 + i, keys[j], values[j], tuple(headers[j]))
                    for j in range(5)]
    log.roll()
    log.clean(now=NOW)
    latest = latest_offsets(written)
    assert surviving(log) == [r for r in written if latest[r.key] == r.offset]
    # every stored batch still uses the codec, and re-encoded ones keep their base offset
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        view = log.read(offset, max_bytes=1)
        h = read_header(view)
        assert h.compression == klog.codec_id(codec)
        assert h.base_offset % 5 == 0  # original batch boundaries
        assert h.record_count == len(decode_records(view, -1, klog.decompress))
        offset = h.last_offset + 1
        view.release()


def test_batch_that_keeps_every_record_is_copied_byte_for_byte(compacted):
    log = compacted()
    log.append([b"old"], keys=[b"a"], timestamps=5)
    _producer_42_sequences_0_to_6(log)
    keep = build_batch([b"1", b"2"], [b"b", b"c"], [6, 7], None, 0, 0, None,
                       producer_id=42, producer_epoch=3, base_sequence=7)
    base = log.append_batch(keep)
    view = log.read(base, max_bytes=1)
    stored = bytes(view)
    view.release()
    # all but the baseOffset and leader epoch the log assigned
    assert stored[8:12] == keep[8:12] and stored[16:] == keep[16:]
    log.append([b"new"], keys=[b"a"], timestamps=8)
    log.roll()
    log.clean(now=NOW)
    view = log.read(base, max_bytes=1)
    assert bytes(view) == stored
    view.release()


def test_reencoded_batch_keeps_header_fields(compacted):
    log = compacted()
    batch = build_batch([b"1", b"2", b"3"], [b"a", b"b", b"a"], [6, 7, 8], None, 0, 0, None,
                        producer_id=42, producer_epoch=3, base_sequence=7, leader_epoch=5)
    log.become_leader(5)   # the log stamps its own epoch; re-encoding keeps the stored one
    _producer_42_sequences_0_to_6(log)
    base = log.append_batch(batch)
    log.roll()
    log.clean(now=NOW)
    view = log.read(base)
    h = read_header(view)
    assert (h.base_offset, h.last_offset_delta, h.record_count) == (base, 2, 2)
    assert (h.producer_id, h.producer_epoch, h.base_sequence, h.leader_epoch) == (42, 3, 7, 5)
    assert [(r.offset, r.key, r.timestamp) for r in decode_records(view)] == [
        (base + 1, b"b", 7), (base + 2, b"a", 8)]
    view.release()


def test_log_append_time_survives_reencoding(compacted):
    log = compacted({"message.timestamp.type": "LogAppendTime"})
    log.append_batch(klog.encode_batch([b"1", b"2"], keys=[b"a", b"b"], timestamps=5))
    log.append_batch(klog.encode_batch([b"3"], keys=[b"a"], timestamps=5))
    stamps = {r.offset: r.timestamp for r in surviving(log)}
    assert stamps[1] > 5
    log.roll()
    log.clean(now=stamps[2] + 1)
    view = log.read(0)
    h = read_header(view)
    assert h.log_append_time
    view.release()
    assert {r.offset: r.timestamp for r in surviving(log)} == {1: stamps[1], 2: stamps[2]}


def test_build_batch_offset_deltas():
    b = build_batch([b"a", None, b"c"], [b"1", b"2", b"3"], [5, 6, 7], None, 100,
                    offset_deltas=[0, 4, 9])
    assert [r.offset for r in decode_records(b)] == [100, 104, 109]
    assert read_header(b).last_offset_delta == 9
    assert build_batch([b"a"], None, 5, None, 0) == build_batch([b"a"], None, 5, None, 0,
                                                                offset_deltas=[0])
    for bad in ([1, 1, 2], [-1, 0, 1], [0, 2, 1], [0, 1], [0, 1, 2**31]):
        with pytest.raises((ValueError, OverflowError)):
            build_batch([b"a", b"b", b"c"], None, 5, None, 0, offset_deltas=bad)


# -- null keys ------------------------------------------------------------------------------------
def test_compacted_log_rejects_null_keys(compacted):
    log = compacted()
    with pytest.raises(CorruptRecordError, match="without a key"):
        log.append([b"v"])
    with pytest.raises(CorruptRecordError, match="without a key"):
        log.append([b"v", b"w"], keys=[b"k", None])
    with pytest.raises(CorruptRecordError, match="without a key"):
        log.append_batch(klog.encode_batch([b"v", b"w"], keys=[b"k", None]))
    with pytest.raises(CorruptRecordError, match="without a key"):
        log.append_batch(klog.encode_batch([b"v"], compression="lz4"))
    assert log.log_end_offset == 0
    log.append([b"v"], keys=(k for k in [b"k"]))  # any iterable of keys
    log.append_batch(klog.encode_batch([b"v"], keys=[b"k"], compression="zstd"))
    assert [r.key for r in surviving(log)] == [b"k", b"k"]


def test_delete_policy_log_accepts_null_keys_and_is_not_cleaned(tmp_path):
    with Log.open(tmp_path, {"segment.bytes": 1024}) as log:
        for i in range(50):
            log.append([b"v%d" % i], keys=[b"k"], timestamps=1)
        log.append([b"nokey"])
        log.roll()
        assert log.clean(now=NOW) == cleaner.CleanResult()
        assert len(surviving(log)) == 51


def test_null_keys_written_before_compaction_are_dropped(tmp_path):
    with Log.open(tmp_path, {"segment.bytes": 1024}) as log:
        log.append([b"keyless"])
        log.append([b"a1"], keys=[b"a"])
        log.roll()
        log.update_config(dict(COMPACT))
        result = log.clean(now=NOW)
        assert [(r.key, r.value) for r in surviving(log)] == [(b"a", b"a1")]
        assert result.records_removed == 1


# -- which segments ------------------------------------------------------------------------------
def test_min_compaction_lag_by_segment_max_timestamp(compacted):
    log = compacted({"min.compaction.lag.ms": 1_000})
    for i in range(40):
        log.append([b"old%d" % i], keys=[b"k"], timestamps=1_000 + i)
    log.roll()
    old_segments = log.segments[:-1]
    for i in range(40):
        log.append([b"young%d" % i], keys=[b"k"], timestamps=5_000 + i)
    log.roll()
    result = log.clean(now=5_100)  # the first segments are 4 s old, the later ones 60 ms
    young_base = [b for b in log.segments if b >= 40][0]
    after = surviving(log)
    assert result.dirty_end == 40
    assert [r.value for r in after if r.offset < young_base] == [b"old39"]
    assert len([r for r in after if r.offset >= 40]) == 40
    assert len(old_segments) > 1
    log.clean(now=7_000)
    assert [r.value for r in surviving(log)] == [b"young39"]


def test_empty_cleaned_segment_and_compact_delete_retention(compacted):
    log = compacted({"cleanup.policy": "compact,delete", "retention.ms": 1_000})
    for i in range(30):
        log.append([b"v"], keys=[b"k%d" % i], timestamps=1_000)
    log.roll()
    for i in range(30):
        log.append([None], keys=[b"k%d" % i], timestamps=1_500)
    log.roll()
    log.append([b"live"], keys=[b"z"], timestamps=9_000)
    log.clean(now=1_600)  # tombstones (delete.retention.ms 1000) still live: values gone
    assert {r.key for r in surviving(log)} == {b"k%d" % i for i in range(30)} | {b"z"}
    log.clean(now=2_600)  # tombstones expired: the sealed segments are empty
    assert [r.value for r in surviving(log)] == [b"live"]
    assert log._segments[0].size == 0
    # retention drops the empty sealed segments instead of stopping at them
    assert log.enforce_retention(now=2_600) >= 1
    assert [r.value for r in surviving(log)] == [b"live"]
    assert log.log_start_offset == log.segments[0]


# -- reopening -------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["close", "crash"])
def test_cleaned_log_reopens(tmp_path, how):
    log = Log.open(tmp_path, COMPACT)
    written = fill_keyed(log, 250, keys=6, tombstone_every=7)
    log.roll()
    log.clean(now=NOW)
    before = surviving(log)
    end = log.log_end_offset
    if how == "close":
        log.close()
    else:
        log.flush()
        kill(log)
    with Log.open(tmp_path, COMPACT) as log:
        assert surviving(log) == before
        assert log.log_end_offset == end
        assert keyed_view(before) == keyed_view(written)
        log.append([b"more"], keys=[b"k000"])
        assert log.log_end_offset == end + 1


# -- readers ---------------------------------------------------------------------------------------
def test_view_taken_before_clean_reads_old_bytes(compacted):
    log = compacted({"segment.bytes": 100_000})
    written = fill_keyed(log, 100, keys=3)
    log.roll()
    view = log.read(0, max_bytes=1 << 20)
    snapshot = bytes(view)
    log.clean(now=NOW)
    gc.collect()
    assert not os.path.exists(os.path.join(log.path, "00000000000000000000.log.cleaned"))
    assert bytes(view) == snapshot  # the old files are unlinked, the mapping lives on
    assert decode_records(view, -1, klog.decompress) == written
    view.release()
    assert len(surviving(log)) == 3


def test_iterator_taken_before_clean_stays_consistent(compacted):
    log = compacted()
    written = fill_keyed(log, 400, keys=5)
    log.roll()
    by_offset = {r.offset: r for r in written}
    it = log.records(0)
    first = [next(it) for _ in range(50)]
    log.clean(now=NOW)
    rest = list(it)
    seen = first + rest
    offsets = [r.offset for r in seen]
    assert offsets == sorted(set(offsets))
    assert all(by_offset[r.offset] == r for r in seen)  # never a record that was not written
    assert keyed_view(seen) == keyed_view(written)      # and no key's latest value is missed
    assert seen[-1].offset == log.log_end_offset - 1


def test_offset_for_time_after_clean(compacted):
    log = compacted()
    for i in range(100):
        log.append([b"v%d" % i], keys=[b"k%d" % (i % 4)], timestamps=1_000 + 10 * i)
    log.roll()
    log.clean(now=NOW)
    kept = surviving(log)
    for ts in (0, 1_000, 1_500, 1_955, 1_960, 1_990):
        want = next((r.offset for r in kept if r.timestamp >= ts), None)
        assert log.offset_for_time(ts) == want


def test_clean_discards_group_if_segments_vanished(compacted, monkeypatch):
    """Retention deleting segments while the copy runs: the cleaned files are discarded."""
    log = compacted({"cleanup.policy": "compact,delete", "retention.ms": 10})
    written = fill_keyed(log, 200, keys=5)
    log.roll()
    real = cleaner._write_cleaned

    def write_then_retention(*args, **kw):
        size = real(*args, **kw)
        log.enforce_retention(now=NOW)  # every sealed segment is past retention.ms
        return size

    monkeypatch.setattr(cleaner, "_write_cleaned", write_then_retention)
    result = log.clean(now=NOW)
    assert result.groups == ()
    assert temp_files(log.path) == []
    assert surviving(log) == [r for r in written if r.offset >= log.log_start_offset]


# -- concurrency -----------------------------------------------------------------------------------
def test_clean_while_appending_reading_and_flushing(compacted):
    """Appends (rolling every ~1 KiB), a reader re-reading from the start and the periodic
    flusher all run while passes swap segments: no errors, every record read is the one written
    at its offset, and the key view ends equal to the model."""
    import threading

    def record_for(i):
        return b"k%d" % (i * 7 % 17), (None if i % 13 == 12 else b"v%d" % i * 5), 1_000 + i

    log = compacted({"flush.ms": 5})
    stop = threading.Event()
    errors = []
    n = [0]

    def appender():
        try:
            while not stop.is_set() and n[0] < 1_200:
                key, value, ts = record_for(n[0])
                log.append([value], keys=[key], timestamps=ts)
                n[0] += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def reader():
        try:
            while not stop.is_set():
                last = -1
                for r in log.records(0):
                    assert r.offset > last
                    assert (r.key, r.value, r.timestamp) == record_for(r.offset)
                    last = r.offset
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=appender), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    passes = 0
    while threads[0].is_alive() and not errors:
        log.clean(now=NOW)
        passes += 1
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    log.roll()
    log.clean(now=NOW)
    model = {}
    for i in range(n[0]):
        key, value, _ = record_for(i)
        if value is None:
            model.pop(key, None)
        else:
            model[key] = value
    got = surviving(log)
    assert keyed_view(got) == model
    assert len(got) <= 17 and passes > 3


def test_idle_pass_is_skipped_until_something_can_change(compacted, monkeypatch):
    log = compacted({"delete.retention.ms": 1_000})
    for i in range(60):
        log.append([b"v%d" % i], keys=[b"k%d" % i], timestamps=1_000)
    log.append([None], keys=[b"k0"], timestamps=2_000)
    log.roll()
    passes = []
    real = cleaner._build_offset_map
    monkeypatch.setattr(cleaner, "_build_offset_map", lambda infos: passes.append(1) or real(infos))

    assert log.clean(now=2_100).groups != ()  # k0's old value goes, its tombstone stays
    assert log.clean(now=2_200).groups == ()  # nothing left to do: remembered
    assert len(passes) == 2
    assert log.clean(now=2_900).groups == ()  # same segments, tombstone not expired: skipped
    assert len(passes) == 2
    assert log.clean(now=3_000).groups != ()  # the tombstone expired: a real pass removes it
    assert len(passes) == 3
    assert b"k0" not in {r.key for r in surviving(log)}
    log.clean(now=3_000)
    log.clean(now=3_000)
    assert len(passes) == 4
    log.append([b"again"], keys=[b"k1"], timestamps=3_000)
    log.roll()                                # a new sealed segment: a real pass
    assert log.clean(now=3_000).records_removed == 1
    assert len(passes) == 5
    log.clean(now=3_000)
    log.update_config(dict(COMPACT, **{"delete.retention.ms": 5}))
    log.clean(now=3_000)                      # a new config: a real pass
    assert len(passes) == 7
