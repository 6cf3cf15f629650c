"""Corruption: damaged bytes in flushed and unflushed data, damaged or missing index files, a
damaged checkpoint.

Policy under test (reliability.md, "Recovery policy"): opening without the clean-shutdown marker
revalidates from the segment holding the recovery point. Damage found below the recovery point is
flushed data we promised to keep: the open fails closed with CorruptLogError naming the file, the
byte and the offset, and changes nothing on disk. Damage above it is a torn write: the log is cut
at the damaged batch (longest valid prefix). Segments wholly below the recovery point are not
revalidated (Kafka's rule; they were fsynced and checked when written); damage there must still
never crash, hang or be served as valid by a CRC-checking reader.

The bytes flipped at random are the ones the format protects: batchLength, magic, and everything
the CRC covers (attributes .. end), plus the CRC itself. baseOffset and partitionLeaderEpoch are
outside the CRC by Kafka's design; baseOffset damage is tested on its own below.
"""
import json
import os
import shutil
import struct

import pytest

import klog
from faultkit import (
    SLOW, check_index_files, check_log_equals, crash_copy, offset_for_time_oracle,
    open_in_subprocess, random_batch_args, read_batches, rng_for, run_python, seg_file,
    segment_bases,
)

TS0 = 1_700_000_000_000
ONE_SEGMENT = {"segment.bytes": 1 << 16, "index.interval.bytes": 200, "max.message.bytes": 16384,
               "segment.index.bytes": 4096}
TRIALS = 300 if SLOW else 40   # bit flips per test (marked slow: KLOG_SLOW_TESTS=1 for 300)


def build_one_segment(root, name, flushed=30, unflushed=8):
    """One segment: ``flushed`` batches fsynced (recovery point after them), then ``unflushed``
    more; crash snapshot. Returns (dir, batches, recovery point)."""
    rng = rng_for(name)
    log = klog.Log.open(os.path.join(root, "live"), ONE_SEGMENT)
    for i in range(flushed + unflushed):
        if i == flushed:
            log.flush()
        log.append(**random_batch_args(rng, ts=TS0 + 1000 * i))
    rp = log.recovery_point
    snap = crash_copy(log, os.path.join(root, "snap"))
    log.close()
    shutil.rmtree(os.path.join(root, "live"))
    batches = read_batches(snap)
    assert segment_bases(snap) == [0] and len(batches) == flushed + unflushed
    assert rp == batches[flushed - 1].last + 1
    return snap, batches, rp


def protected_bytes(batch):
    """Byte positions (in the file) covered by the framing or the CRC: batchLength (8..12),
    magic and CRC (16..21), attributes .. end (21..)."""
    return list(range(batch.pos + 8, batch.pos + 12)) + list(range(batch.pos + 16, batch.end))


def flip(path, pos, bit):
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)[0]
        f.seek(pos)
        f.write(bytes([b ^ (1 << bit)]))


def snapshot_bytes(d):
    """The data files (.log) of a log dir. A failed open may rebuild indexes (derived data, and
    rebuilt again on the next open anyway); it must not cut or rewrite any data."""
    return {n: open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))
            if n.endswith(".log")}


@pytest.mark.slow
def test_bit_flips_below_the_recovery_point_fail_closed(fast_tmp):
    """A flipped bit anywhere the format protects, in a batch below the recovery point: open
    raises CorruptLogError naming the .log file, the byte where the damaged batch starts and
    its offset; the failed open leaves every .log file as it was."""
    snap, batches, rp = build_one_segment(fast_tmp, "flip-below")
    flushed = [b for b in batches if b.last < rp]
    rng = rng_for("flip-below-positions")
    for trial in range(TRIALS):
        victim = rng.choice(flushed)
        pos, bit = rng.choice(protected_bytes(victim)), rng.randrange(8)
        work = str(fast_tmp / f"t{trial}")
        shutil.copytree(snap, work)
        path = seg_file(work, 0)
        flip(path, pos, bit)
        before = snapshot_bytes(work)
        with pytest.raises(klog.CorruptLogError) as err:
            klog.Log.open(work, ONE_SEGMENT)
        msg = str(err.value)
        where = (f"trial {trial}: bit {bit} of byte {pos} "
                 f"(batch at {victim.pos}, offset {victim.base})")
        assert path in msg, where + ": " + msg
        assert f"byte {victim.pos} " in msg, where + ": " + msg
        assert f"offset {victim.base}" in msg, where + ": " + msg
        assert snapshot_bytes(work) == before, where + ": the failed open changed data files"
        shutil.rmtree(work)


@pytest.mark.slow
def test_bit_flips_above_the_recovery_point_cut_the_log(fast_tmp):
    """A flipped bit in an unflushed batch is a torn write: the log is cut at that batch; the
    batches before it (flushed or not) stay; appends continue at the cut."""
    snap, batches, rp = build_one_segment(fast_tmp, "flip-above")
    unflushed = [b for b in batches if b.base >= rp]
    rng = rng_for("flip-above-positions")
    for trial in range(TRIALS):
        victim = rng.choice(unflushed)
        pos, bit = rng.choice(protected_bytes(victim)), rng.randrange(8)
        work = str(fast_tmp / f"t{trial}")
        shutil.copytree(snap, work)
        flip(seg_file(work, 0), pos, bit)
        expected = [b for b in batches if b.base < victim.base]
        where = f"trial {trial}: bit {bit} of byte {pos} (batch at {victim.pos})"
        with klog.Log.open(work, ONE_SEGMENT) as log:
            try:
                check_log_equals(log, expected)
            except AssertionError as exc:
                raise AssertionError(where) from exc
            assert log.append([b"next"], timestamps=TS0) == victim.base, where
        with klog.Log.open(work, ONE_SEGMENT) as log:
            assert log.log_end_offset == victim.base + 1, where
        shutil.rmtree(work)


def test_zeroed_page_below_the_recovery_point_fails_closed(tmp_path):
    """A 4 KiB page of flushed data reads back as zeros (lost write): CorruptLogError naming the
    file and the first batch the page damaged."""
    snap, batches, rp = build_one_segment(tmp_path, "zero-page-below", flushed=60, unflushed=5)
    rp_pos = next(b.pos for b in batches if b.base == rp)
    assert rp_pos > 8192
    path = seg_file(snap, 0)
    with open(path, "r+b") as f:
        f.seek(4096)
        f.write(bytes(4096))
    victim = next(b for b in batches if b.end > 4096)
    with pytest.raises(klog.CorruptLogError) as err:
        klog.Log.open(snap, ONE_SEGMENT)
    msg = str(err.value)
    assert path in msg and f"byte {victim.pos} " in msg and f"offset {victim.base}" in msg, msg
    assert f"flushed up to offset {rp}" in msg, msg


@pytest.mark.parametrize("bit", [0, 1, 4, 7, 10, 16, 24, 31, 40, 62, 63])
def test_base_offset_flip_in_flushed_data_fails_closed(tmp_path, bit):
    """baseOffset is outside the CRC. A flipped bit in the baseOffset of a flushed batch that
    more flushed batches follow breaks the offset sequence; whichever batch the break shows up
    at, it is below the recovery point, so the open must fail closed, never drop the flushed
    batches after it."""
    snap, batches, rp = build_one_segment(tmp_path, "base-offset-flip")
    victim = batches[10]
    assert batches[20].last < rp
    path = seg_file(snap, 0)
    flip(path, victim.pos + 7 - bit // 8, bit % 8)
    before = snapshot_bytes(snap)
    got = open_in_subprocess(snap, ONE_SEGMENT)
    assert got.get("error") == "CorruptLogError", (
        f"flushed data silently changed: opened as {got}; expected end {batches[-1].last + 1}")
    assert path in got["message"]
    assert snapshot_bytes(snap) == before


DAMAGED_LENGTH_READER = r"""
import json, sys, klog
d, cfg = sys.argv[1], json.loads(sys.argv[2])
out = {"reads": {}, "records": None}
with klog.Log.open(d, cfg) as log:
    for o in range(log.log_start_offset, log.log_end_offset):
        try:
            v = log.read(o, 1)
            klog.decode_batch(v)
            out["reads"][o] = "ok"
            v.release()
        except klog.CorruptRecordError as exc:
            out["reads"][o] = "CorruptRecordError"
    try:
        sum(1 for _ in log.records())
        out["records"] = "ok"
    except klog.CorruptRecordError as exc:
        out["records"] = "CorruptRecordError"
    try:
        log.offset_for_time(2**62)
        out["offset_for_time"] = "ok"
    except klog.CorruptRecordError:
        out["offset_for_time"] = "CorruptRecordError"
print(json.dumps(out))
"""


@pytest.mark.parametrize("length", [-12, -100_000_000, -49, 0, 30, 1_000_000])
def test_damaged_length_in_a_segment_that_is_not_revalidated(tmp_path, length):
    """After a clean shutdown segments are trusted, not revalidated. A damaged batchLength in
    one of them must make readers raise CorruptRecordError, not walk backwards into unmapped
    memory (SIGSEGV), loop forever (length -12 is a zero-byte step), or return garbage as a
    valid batch. Reads run in a child process with a timeout."""
    cfg = {"segment.bytes": 4096, "index.interval.bytes": 1000, "max.message.bytes": 16384}
    d = str(tmp_path / "log")
    with klog.Log.open(d, cfg) as log:
        for i in range(60):
            log.append([b"v%d-%d" % (i, j) for j in range(i % 4 + 1)], timestamps=TS0 + i)
    batches = read_batches(d)
    victim = [b for b in batches if b.segment == 0][5]
    with open(seg_file(d, 0), "r+b") as f:
        f.seek(victim.pos + 8)
        f.write(struct.pack(">i", length))
    try:
        r = run_python(DAMAGED_LENGTH_READER, d, json.dumps(cfg), timeout=30)
    except Exception as exc:
        raise AssertionError(f"reading with batchLength {length} hung") from exc
    assert r.returncode == 0, f"reader died (exit {r.returncode}): {r.stderr[-2000:]}"
    got = json.loads(r.stdout)
    assert got["records"] == "CorruptRecordError"
    reads = {int(k): v for k, v in got["reads"].items()}
    for o in range(victim.base, victim.last + 1):
        assert reads[o] == "CorruptRecordError", (o, reads[o])
    intact = [b for b in batches if b.segment != 0 or b.pos < victim.pos]
    for b in intact:
        assert reads[b.base] == "ok", (b.base, reads[b.base])


def test_flip_in_a_sealed_segment_below_the_recovery_point(tmp_path):
    """Segments wholly below the recovery point are trusted at open (Kafka's rule). A flipped
    payload bit there therefore opens fine, but a CRC-checking reader (klog.decode_batch on
    read()) rejects exactly the damaged batch, and nothing else changes."""
    cfg = {"segment.bytes": 4096, "index.interval.bytes": 128, "max.message.bytes": 16384}
    rng = rng_for("sealed-flip")
    d = str(tmp_path / "log")
    with klog.Log.open(d, cfg) as log:
        for i in range(40):
            log.append(**random_batch_args(rng, ts=TS0 + 100 * i))
    batches = read_batches(d)
    assert len(segment_bases(d)) >= 3
    victim = [b for b in batches if b.segment == 0][3]
    flip(seg_file(d, 0), victim.end - 5, 3)
    with klog.Log.open(d, cfg) as log:
        assert log.log_end_offset == batches[-1].last + 1
        for b in batches:
            view = log.read(b.base, 1)
            if b is victim:
                with pytest.raises(klog.CorruptRecordError, match="CRC"):
                    klog.decode_batch(view)
            else:
                assert bytes(view) == b.raw
            view.release()


# -- index files ----------------------------------------------------------------------------

INDEXED = {"segment.bytes": 6000, "index.interval.bytes": 64, "max.message.bytes": 16384,
           "segment.index.bytes": 4096}


def build_indexed(root, clean):
    """Several segments with many index entries each, timestamps mostly increasing (so every
    time index has several entries) and some out of order. Returns (dir, batches, originals:
    the index files as a clean close writes them)."""
    rng = rng_for("indexed")
    d = os.path.join(root, "log")
    log = klog.Log.open(d, INDEXED)
    ts = TS0
    for i in range(70):
        log.append(**random_batch_args(rng, max_value=80, ts=ts))
        ts += rng.choice([500, 700, 900, -300])
    if clean:
        log.close()
    else:
        log.flush()
        snap = crash_copy(log, os.path.join(root, "snap"))
        log.close()
        clean_copy = os.path.join(root, "clean")
        shutil.copytree(d, clean_copy)
        shutil.rmtree(d)
        os.rename(snap, d)
        d_clean = clean_copy
    batches = read_batches(d)
    ref = d if clean else d_clean
    originals = {n: open(os.path.join(ref, n), "rb").read() for n in os.listdir(ref)
                 if n.endswith((".index", ".timeindex"))}
    bases = segment_bases(d)
    assert len(bases) >= 3
    for b in bases:
        assert len(originals[f"{b:020d}.index"]) >= 16
        assert len(originals[f"{b:020d}.timeindex"]) >= 24
    return d, batches, originals


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "crashed"])
@pytest.mark.parametrize("damage", ["delete", "zero"])
@pytest.mark.parametrize("which", [".index", ".timeindex", "both"])
@pytest.mark.parametrize("segment", ["sealed", "active"])
def test_damaged_index_files_are_rebuilt(tmp_path, clean, damage, which, segment):
    """A deleted or zero-filled .index / .timeindex of a sealed or the active segment, after a
    clean or an unclean shutdown: the log opens, every lookup is right (read at every offset,
    offset_for_time), and after close the files hold exactly the entries the appends wrote
    (the rebuild is the same walk as the appends)."""
    check_damaged_index(tmp_path, clean, damage, which, segment, rebuilt=True)


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "crashed"])
@pytest.mark.parametrize("which", [".index", ".timeindex", "both"])
@pytest.mark.parametrize("segment", ["sealed", "active"])
def test_emptied_index_files_give_right_lookups(tmp_path, clean, which, segment):
    """An index file cut to 0 bytes. Every lookup stays right (read at every offset,
    offset_for_time: the segment's max timestamp must not come from its tail alone), and an
    emptied .timeindex is rebuilt. An empty .index is legal for a segment smaller than
    index.interval.bytes, so (as in Kafka) a trusted segment may keep it: lookups then walk the
    segment from byte 0."""
    check_damaged_index(tmp_path, clean, "empty", which, segment,
                        rebuilt=which != ".index")


def check_damaged_index(tmp_path, clean, damage, which, segment, rebuilt):
    d, batches, originals = build_indexed(tmp_path, clean)
    bases = segment_bases(d)
    target = bases[1] if segment == "sealed" else bases[-1]
    for suffix in ([".index", ".timeindex"] if which == "both" else [which]):
        path = seg_file(d, target, suffix)
        if damage == "delete":
            os.unlink(path)
        elif damage == "zero":
            size = os.path.getsize(path)
            with open(path, "r+b") as f:
                f.write(bytes(size))
        else:
            os.truncate(path, 0)
    with klog.Log.open(d, INDEXED) as log:
        check_log_equals(log, batches)
        stamps = sorted({b.max_ts for b in batches})
        probes = [stamps[0] - 1] + stamps[::3] + [s + 1 for s in stamps[::4]] + [stamps[-1] + 1]
        for t in probes:
            assert log.offset_for_time(t) == offset_for_time_oracle(batches, t), t
    check_index_files(d)
    for name, data in originals.items():
        with open(os.path.join(d, name), "rb") as f:
            got = f.read()
        if not rebuilt and name.endswith(".index") and got == b"":
            continue
        assert got == data, f"{name} differs from the index the appends wrote"


# -- checkpoint -------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [
    b"", b"garbage\n", b"0\n2\nrecovery-point 12\n",
    b"0\n2\nrecovery-point x\nlog-start-offset 0\n",
    b"7\n2\nrecovery-point 1\nlog-start-offset 0\n", b"\xff\xfe\x00\x01", b"0\n",
])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, content):
    """A damaged log.checkpoint: CorruptLogError naming the file and saying what to do, for an
    unclean and a clean shutdown alike; the data files are untouched."""
    d = str(tmp_path / "log")
    with klog.Log.open(d, {"flush.messages": 1}) as log:
        log.append([b"a", b"b"])
    before = snapshot_bytes(d)
    ck = os.path.join(d, "log.checkpoint")
    with open(ck, "wb") as f:
        f.write(content)
    for clean in (True, False):
        if not clean:
            assert not os.path.exists(os.path.join(d, ".clean-shutdown"))
        with pytest.raises(klog.CorruptLogError) as err:
            klog.Log.open(d, {"flush.messages": 1})
        msg = str(err.value)
        assert ck in msg and "checkpoint" in msg, msg
        assert snapshot_bytes(d) == before
        assert "delete it" in msg, msg
    # The remedy the message names works: without the checkpoint the whole log is recovered.
    os.unlink(ck)
    with klog.Log.open(d) as log:
        assert [r.value for r in log.records()] == [b"a", b"b"]


def test_lost_flushed_tail_fails_closed(tmp_path):
    """The last flushed batches read back as zeros (the file length persisted, the data did not:
    a lost write): the checkpoint says they were flushed, so open fails closed naming the first
    missing offset, instead of quietly ending the log before them."""
    d = str(tmp_path / "log")
    log = klog.Log.open(d, {"flush.messages": 1})
    for i in range(5):
        log.append([b"%d" % i])
    assert log.recovery_point == 5
    snap = crash_copy(log, str(tmp_path / "snap"))
    log.close()
    batches = read_batches(snap)
    with open(seg_file(snap, 0), "r+b") as f:
        f.seek(batches[3].pos)
        f.write(bytes(batches[4].end - batches[3].pos))
    with pytest.raises(klog.CorruptLogError) as err:
        klog.Log.open(snap)
    msg = str(err.value)
    assert seg_file(snap, 0) in msg and f"byte {batches[3].pos} " in msg, msg
    assert "expected offset 3" in msg and "flushed up to offset 5" in msg, msg
