"""Torn tails: what a crash leaves at the end of the active segment.

The crash model (faultkit.crash_copy): every file copied while the log is still open, after the
appends. That is exactly what kill -9 leaves (the page cache survives the process), with no
clean-shutdown marker and the checkpoint as of the last flush. The tail above the recovery point
is then damaged the ways a power loss can damage it: cut at any byte, zero-filled (file length
persisted, data not), a zeroed 4 KiB page, garbage after the data, preallocated zeros.

Pass: the reopened log equals the longest valid prefix of whole batches (bytes, offsets, records),
reads at every offset return the whole batch holding it, the rebuilt indexes point at batch
starts, and appends continue at the recovered end and survive another reopen.
"""
import os
import shutil
import struct

import pytest

import klog
from klog.storage.checkpoint import write_checkpoint
from faultkit import (
    SLOW, check_index_files, check_log_equals, crash_copy, open_in_subprocess, random_batch_args,
    read_batches, rng_for, seg_file, segment_bases,
)

# Small segments and a small max.message.bytes: the active segment's reserved space (segment
# size + one max batch) stays small, so the thousands of directory copies below stay cheap.
CFG = {"segment.bytes": 4096, "index.interval.bytes": 128, "max.message.bytes": 16384}
TS0 = 1_700_000_000_000


def build_crashed_log(root, name, cfg=CFG, sealed_batches=25, flushed_tail=2, unflushed_tail=3):
    """A log of several sealed segments, then a last segment whose first ``flushed_tail`` batches
    were flushed (the recovery point lies inside it) and ``unflushed_tail`` more that were not.
    Returns (crash snapshot dir, all batches as the oracle parsed them, recovery point)."""
    rng = rng_for(name)
    live = os.path.join(root, "live")
    ts = TS0
    log = klog.Log.open(live, cfg)
    for _ in range(sealed_batches):
        log.append(**random_batch_args(rng, ts=ts))
        ts += rng.randint(-40, 100)   # mostly increasing, sometimes not
    log.roll()
    for i in range(flushed_tail + unflushed_tail):
        if i == flushed_tail:
            log.flush()
        log.append(**random_batch_args(rng, max_records=3, max_value=50, ts=ts))
        ts += rng.randint(1, 100)
    rp = log.recovery_point
    snap = crash_copy(log, os.path.join(root, "snap"))
    log.close()
    shutil.rmtree(live)
    batches = read_batches(snap)
    bases = segment_bases(snap)
    assert len(bases) >= 3, "setup: want several sealed segments"
    last = [b for b in batches if b.segment == bases[-1]]
    assert len(last) == flushed_tail + unflushed_tail, "setup: the tail must be in one segment"
    assert rp == last[flushed_tail - 1].last + 1, "setup: recovery point inside the last segment"
    assert not os.path.exists(os.path.join(snap, ".clean-shutdown"))
    return snap, batches, rp


def valid_prefix(batches, segment, cut, zero_fill=False):
    """Batches of earlier segments, and those of ``segment`` that end at or before ``cut``.
    With ``zero_fill`` (bytes from ``cut`` on zeroed, length kept) a batch whose bytes past the
    cut were zeros already is untouched and still valid (its last byte, the header count of the
    last record, is usually 0)."""
    out = []
    for b in batches:
        if b.segment == segment and b.end > cut:
            if not zero_fill or any(b.raw[max(0, cut - b.pos):]):
                break
        out.append(b)
    return out


def check_recovered_and_appendable(work, expected, cfg=CFG):
    """Open ``work``: it must hold exactly ``expected``; one more append lands at the recovered
    end, and after a clean close and reopen the log is ``expected`` plus that batch."""
    end = expected[-1].last + 1
    with klog.Log.open(work, cfg) as log:
        check_log_equals(log, expected)
        assert log.recovery_point <= log.log_end_offset
        assert log.append([b"after-recovery", b"x"], timestamps=TS0 + 10**6) == end
        assert log.log_end_offset == end + 2
    after = read_batches(work)
    assert [b.raw for b in after[:-1]] == [b.raw for b in expected]
    assert (after[-1].base, after[-1].last) == (end, end + 1)
    check_index_files(work)
    with klog.Log.open(work, cfg) as log:
        check_log_equals(log, after)
    return after


@pytest.mark.parametrize("damage", ["cut", "zero-fill"])
def test_cut_at_every_byte_of_the_last_batches(fast_tmp, damage):
    """Truncate (or zero from) every byte position across the last three batches: recovery keeps
    exactly the whole batches before the cut."""
    tmp_path = fast_tmp
    snap, batches, rp = build_crashed_log(tmp_path, f"torn-{damage}")
    last_seg = segment_bases(snap)[-1]
    tail = [b for b in batches if b.segment == last_seg]
    first_cut, data_end = tail[-3].pos, tail[-1].end
    length = os.path.getsize(seg_file(snap, last_seg))
    assert length >= data_end  # space may be reserved past the data (zeros)
    cuts = range(first_cut, data_end + 1)
    for cut in cuts:
        work = str(tmp_path / f"w{cut}")
        shutil.copytree(snap, work)
        p = seg_file(work, last_seg)
        if damage == "cut":
            os.truncate(p, cut)
        else:
            with open(p, "r+b") as f:
                f.seek(cut)
                f.write(bytes(data_end - cut))
            assert os.path.getsize(p) == length
        expected = valid_prefix(batches, last_seg, cut, zero_fill=damage == "zero-fill")
        assert expected[-1].last + 1 >= rp
        try:
            check_recovered_and_appendable(work, expected)
        except Exception as exc:
            raise AssertionError(f"{damage} at byte {cut} of {os.path.basename(p)}") from exc
        shutil.rmtree(work)
    assert len(cuts) > 100  # every byte of three batches, not a sample


def test_unflushed_tail_survives_the_crash_intact(tmp_path):
    """Without any damage, the crash snapshot reopens with every batch (page cache survives
    kill -9), although the last three were never flushed."""
    snap, batches, rp = build_crashed_log(tmp_path, "intact")
    assert batches[-1].last + 1 > rp
    check_recovered_and_appendable(snap, batches)


def test_zeroed_page_in_the_unflushed_tail(tmp_path):
    """A 4 KiB page of zeros (a page that never reached the disk) anywhere in the unflushed part
    of the active segment: the log ends at the last whole batch before the page; the valid
    batches after the page are not resurrected (the log must stay a prefix)."""
    cfg = {"segment.bytes": 1 << 16, "index.interval.bytes": 256}
    rng = rng_for("zero-page")
    live = tmp_path / "live"
    log = klog.Log.open(live, cfg)
    ts = TS0
    while log.size < 6000:
        log.append(**random_batch_args(rng, ts=ts))
        ts += 10
    log.flush()
    rp = log.recovery_point
    while log.size < 24000:
        log.append(**random_batch_args(rng, ts=ts))
        ts += 10
    snap = crash_copy(log, str(tmp_path / "snap"))
    log.close()
    batches = read_batches(snap)
    assert segment_bases(snap) == [0]
    rp_pos = next(b.pos for b in batches if b.base == rp)
    data_end = batches[-1].end
    pages = [p for p in range(0, data_end, 4096) if p >= rp_pos]
    assert len(pages) >= 3
    for page in pages:
        work = str(tmp_path / f"p{page}")
        shutil.copytree(snap, work)
        with open(seg_file(work, 0), "r+b") as f:
            f.seek(page)
            f.write(bytes(min(4096, data_end - page)))
        expected = [b for b in batches if b.end <= page]
        try:
            check_recovered_and_appendable(work, expected, cfg)
        except Exception as exc:
            raise AssertionError(f"page at byte {page} zeroed") from exc
        shutil.rmtree(work)


def _garbage_variants(batches, rng):
    last = batches[-1]
    fake = bytearray(last.raw)                        # plausible header, valid length, bad CRC
    struct.pack_into(">q", fake, 0, last.last + 1)
    fake[-1] ^= 0x5A
    return {
        "random": rng.randbytes(3000),
        "random-short": rng.randbytes(40),            # less than a header
        "plausible-header-bad-crc": bytes(fake),
        "huge-length": struct.pack(">qi", last.last + 1, 0x7FFFFFF0) + bytes(49),
        "negative-length": struct.pack(">qi", last.last + 1, -5) + rng.randbytes(100),
        "ones": b"\xff" * 500,
        # a CRC-valid copy of the last (unflushed) batch: offsets go backwards
        "duplicate-of-last-batch": last.raw,
    }


@pytest.mark.parametrize("clean", [False, True], ids=["crashed", "clean-marker"])
def test_garbage_after_the_data(tmp_path, clean):
    """Bytes after the last batch that are not a valid next batch are cut off, with or without
    the clean-shutdown marker; nothing before them is lost. (With the marker the files are
    trusted: only the framing of the tail is checked, not CRCs, so the CRC-only variant is left
    to the crashed case. A valid copy of the last, flushed, batch is not a torn write: open
    fails closed.)"""
    snap, batches, rp = build_crashed_log(tmp_path, "garbage")
    if clean:
        with klog.Log.open(snap, CFG):
            pass
        assert os.path.exists(os.path.join(snap, ".clean-shutdown"))
        assert read_batches(snap) == batches
    last_seg = segment_bases(snap)[-1]
    rng = rng_for("garbage-bytes")
    for name, junk in _garbage_variants(batches, rng).items():
        if clean and name == "plausible-header-bad-crc":
            continue
        work = str(tmp_path / name)
        shutil.copytree(snap, work)
        with open(seg_file(work, last_seg), "ab") as f:
            f.write(junk)
        if clean and name == "duplicate-of-last-batch":
            # After a clean close the last batch is below the recovery point: a whole, CRC-valid
            # batch with flushed offsets where none can be is not a torn write. Fail closed.
            with pytest.raises(klog.CorruptLogError) as err:
                klog.Log.open(work, CFG)
            assert seg_file(work, last_seg) in str(err.value)
            assert f"byte {batches[-1].end} " in str(err.value)
            continue
        try:
            check_recovered_and_appendable(work, batches)
        except Exception as exc:
            raise AssertionError(f"garbage {name!r} after the data") from exc
        shutil.rmtree(work)


@pytest.mark.parametrize("trailing", [1, 2, 3])
def test_stray_bytes_at_a_page_aligned_end_of_a_sealed_segment(tmp_path, trailing):
    """1-3 stray bytes make a sealed segment's file exactly 4096 bytes long (so a 4-byte read at
    the data end would run past a read-only mapping of the file). Below the recovery point with
    the clean marker: CorruptLogError naming the file and the byte; unflushed (recovery point 0,
    crashed): the log ends at that segment's last whole batch, later segments are dropped."""
    cfg = {"segment.bytes": 1 << 16, "index.interval.bytes": 128}
    d = str(tmp_path / "log")
    with klog.Log.open(d, cfg) as log:
        log.append([b"a" * 100], timestamps=TS0)
        probe = log.size
    shutil.rmtree(d)
    # One batch of exactly 4096 - trailing bytes, then a roll, so the file is sealed.
    with klog.Log.open(d, cfg) as log:
        log.append([b"a" * (100 + 4096 - trailing - probe)], timestamps=TS0)
        assert log.size == 4096 - trailing
        log.roll()
        log.append([b"next segment"], timestamps=TS0 + 1)
    batches = read_batches(d)
    seg0 = seg_file(d, 0)
    with open(seg0, "ab") as f:
        f.write(b"\x07" * trailing)
    assert os.path.getsize(seg0) == 4096
    got = open_in_subprocess(d, cfg)
    assert got.get("error") == "CorruptLogError", got
    assert seg0 in got["message"] and f"byte {4096 - trailing}" in got["message"], got
    with pytest.raises(klog.CorruptLogError):
        klog.Log.open(d, cfg)
    # Crashed before any flush: the checkpoint says nothing is promised. (The failed open has
    # already consumed the clean-shutdown marker.)
    assert not os.path.exists(os.path.join(d, ".clean-shutdown"))
    with open(os.path.join(d, "log.checkpoint"), "w") as f:
        f.write("0\n2\nrecovery-point 0\nlog-start-offset 0\n")
    assert open_in_subprocess(d, cfg) == {"start": 0, "end": 1, "segments": [0], "records": 1}
    with klog.Log.open(d, cfg) as log:
        check_log_equals(log, batches[:1])
        assert log.segments == [0]
    assert os.path.getsize(seg0) == 4096 - trailing
    check_index_files(d)


def test_preallocated_zero_tail(tmp_path):
    """preallocate=true: the active segment's file is longer than its data (reserved zeros).
    After a crash the zeros are recognised as the end of the log, every batch is kept, appends
    go right after the data, and a clean close trims the file to its data."""
    cfg = dict(CFG, **{"preallocate": True, "max.message.bytes": 8192})
    snap, batches, rp = build_crashed_log(tmp_path, "prealloc", cfg=cfg)
    last_seg = segment_bases(snap)[-1]
    assert os.path.getsize(seg_file(snap, last_seg)) > batches[-1].end, \
        "setup: preallocate=true must leave a zero tail in the crash snapshot"
    after = check_recovered_and_appendable(snap, batches, cfg)
    with klog.Log.open(snap, cfg):
        pass
    assert os.path.getsize(seg_file(snap, last_seg)) == after[-1].end


@pytest.mark.parametrize("clean", [False, True], ids=["crashed", "clean-marker"])
def test_zero_tail_longer_than_the_data(tmp_path, clean):
    """A file extended with zeros past its data (length persisted, data not; or a
    preallocation that was never trimmed) opens with every batch."""
    snap, batches, rp = build_crashed_log(tmp_path, "zero-tail")
    if clean:
        with klog.Log.open(snap, CFG):
            pass
    last_seg = segment_bases(snap)[-1]
    with open(seg_file(snap, last_seg), "ab") as f:
        f.write(bytes(20000))
    check_recovered_and_appendable(snap, batches)
    assert os.path.getsize(seg_file(snap, last_seg)) == read_batches(snap)[-1].end


@pytest.mark.slow
def test_torn_tail_with_every_segment_unflushed(fast_tmp):
    """No flush ever (recovery point 0, the Kafka default): a cut inside the last segment keeps
    every earlier segment and the whole batches before the cut. Default: every 17th byte of the
    last segment; KLOG_SLOW_TESTS=1: every byte."""
    tmp_path = fast_tmp
    rng = rng_for("never-flushed")
    live = tmp_path / "live"
    log = klog.Log.open(live, CFG)
    for i in range(40):
        log.append(**random_batch_args(rng, ts=TS0 + i))
    snap = crash_copy(log, str(tmp_path / "snap"))
    log.close()
    # Rolled segments are flushed in the background; model a crash before any of that landed.
    write_checkpoint(os.path.join(snap, "log.checkpoint"), {"recovery-point": 0, "log-start-offset": 0})
    batches = read_batches(snap)
    bases = segment_bases(snap)
    assert len(bases) >= 3
    tail = [b for b in batches if b.segment == bases[-1]]
    step = 1 if SLOW else 17
    for cut in list(range(tail[0].pos, tail[-1].end, step)) + [tail[-1].end - 1]:
        work = str(tmp_path / f"w{cut}")
        shutil.copytree(snap, work)
        os.truncate(seg_file(work, bases[-1]), cut)
        expected = valid_prefix(batches, bases[-1], cut)
        try:
            check_recovered_and_appendable(work, expected)
        except Exception as exc:
            raise AssertionError(f"cut at byte {cut}") from exc
        shutil.rmtree(work)


@pytest.mark.parametrize("stray", [1, 2, 3])
def test_batch_torn_at_a_page_boundary_just_after_it_starts(tmp_path, stray):
    """The last batch starts 1-3 bytes before a page boundary and the file ends at that boundary
    (page-granular writeback): recovery must end the log before it, without reading past the
    end of the file (a mapped page past EOF is SIGBUS: the open runs in a subprocess so a
    regression fails this test instead of killing the run)."""
    cfg = {"segment.bytes": 1 << 16, "index.interval.bytes": 128, "max.message.bytes": 16384}
    probe_dir = str(tmp_path / "probe")
    with klog.Log.open(probe_dir, cfg) as log:
        log.append([b"a" * 100], timestamps=TS0)
        probe = log.size
    d = str(tmp_path / "log")
    log = klog.Log.open(d, cfg)
    log.append([b"a" * (100 + 4096 - stray - probe)], timestamps=TS0)
    assert log.size == 4096 - stray
    log.append([b"torn"], timestamps=TS0 + 1)
    snap = crash_copy(log, str(tmp_path / "snap"))
    log.close()
    os.truncate(seg_file(snap, 0), 4096)
    assert open_in_subprocess(snap, cfg) == {"start": 0, "end": 1, "segments": [0], "records": 1}
    assert os.path.getsize(seg_file(snap, 0)) == 4096 - stray
