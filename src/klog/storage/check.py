"""``klog check``: verify every batch of a data directory offline, and cut a partition at its
first damaged batch on request.

What is checked, per partition directory (``<topic>-<n>/``, see klog.storage.log):

- every batch of every segment: framing (batchLength at least a header, no more than the bytes
  left), magic 2, CRC32C over attributes..end, offsets (a batch's base offset is not below the
  previous batch's next offset, lastOffsetDelta >= 0, the first batch not below the segment's
  base offset). A CRC mismatch leaves the framing intact, so the walk goes on and reports every
  such batch; damaged framing ends the walk of that file (nothing after it can be located).
- zeros after the data of the last segment are space reserved before a crash, which the next
  open gives back: a note, not damage. Anywhere else they are damage.
- the indexes: offset-index entries increase and point at the start of the batch holding their
  offset; time-index entries increase and name offsets inside the segment. Indexes carry no
  checksum and are rebuilt by recovery, so a stale index of the last segment after a crash (no
  clean-shutdown marker) is a note; anything else is damage.
- log.checkpoint: readable, offsets not negative, the log start and the recovery point not past
  the end of the data.

Flushed data with a flipped byte is served as stored: the log does not re-read its flushed
segments, and a client with ``check.crcs=false`` takes the bytes as they come. This is how an
operator finds such damage.

Locking: a check takes the directory's lock (the ``.lock`` files of the data directory and of
each partition, flock, non-blocking) for its whole run, read-only or not: a live broker's active
segment has unflushed bytes and reserved zeros that would read as damage. A directory a live
process holds is refused (LogLockedError naming the process). A ``.lock`` file that does not
exist is not created, and the locks go with the process, so no lock is left behind.

``truncate_at_first_damage`` cuts a partition at its first damaged batch: the segment is cut
there, the segments after it deleted, the indexes of the cut segment and the producer snapshot
removed, the checkpoint lowered to the cut, the clean-shutdown marker removed (so the next open
rebuilds the indexes). Only with an explicit request; it says what it removed.
"""
import fcntl
import os
from dataclasses import dataclass, field

from klog._native.batch import read_header
from klog._native.crc32c import crc32c
from klog.errors import CorruptLogError, LogLockedError
from klog.storage.checkpoint import read_checkpoint, write_checkpoint
from klog.storage.files import (
    CHECKPOINT, CLEAN_SHUTDOWN, INDEX_SUFFIX, LOCK, LOG_SUFFIX, TIME_INDEX_SUFFIX, base_offset_of,
    fsync_dir, segment_name,
)

HEADER_SIZE = 61
LOG_OVERHEAD = 12
ATTRIBUTES = 21       # the CRC covers bytes 21..end of a batch
CRC_AT = 17
METADATA = "klog-metadata.json"
SNAPSHOT = "producer.snapshot"


@dataclass
class Damage:
    """One damaged range: ``path`` bytes [start, end); ``offsets`` (first, last) where known."""
    path: str
    start: int
    end: int
    reason: str
    offsets: tuple = None
    segment: int = None     # base offset of the segment holding it (data damage only)
    framing: bool = False   # nothing after it in the file can be located

    def __str__(self):
        where = f"{self.path}: bytes {self.start}..{self.end}"
        if self.offsets is not None:
            first, last = self.offsets
            where += f" (offsets {first}..{last})" if last is not None else f" (from offset {first})"
        return f"{where}: {self.reason}"


@dataclass
class PartitionReport:
    path: str
    segments: int = 0
    batches: int = 0
    bytes: int = 0
    end_offset: int = None
    damage: list = field(default_factory=list)    # data, index and checkpoint damage
    notes: list = field(default_factory=list)     # expected after a crash; not damage

    @property
    def data_damage(self):
        return [d for d in self.damage if d.segment is not None]


# -- finding what to check ---------------------------------------------------------------------------
def is_partition_dir(path):
    names = os.listdir(path)
    return CHECKPOINT in names or any(base_offset_of(n, LOG_SUFFIX) is not None for n in names)


def partition_dirs(root, topic=None):
    """The partition directories under ``root`` (a data directory, or one partition directory
    itself), only those of ``topic`` if given; sorted by topic, then partition number."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no such directory: {root}")
    if is_partition_dir(root) and not os.path.exists(os.path.join(root, METADATA)):
        if topic is not None and _topic_of(os.path.basename(root)) != topic:
            raise ValueError(f"{root} is not a partition of topic {topic!r}")
        return [root]
    found = []
    for name in os.listdir(root):
        path = os.path.join(root, name)
        t = _topic_of(name)
        if t is None or not os.path.isdir(path) or (topic is not None and t != topic):
            continue
        found.append((t, int(name.rsplit("-", 1)[1]), path))
    if topic is not None and not found:
        raise ValueError(f"no partition of topic {topic!r} in {root}")
    return [p for _, _, p in sorted(found)]


def _topic_of(name):
    topic, sep, n = name.rpartition("-")
    return topic if sep and topic and n.isdigit() else None


# -- locking -------------------------------------------------------------------------------------------
class DirectoryLocks:
    """flock the existing ``.lock`` files of ``paths`` (never creating one); LogLockedError if a
    live process holds any of them. A context manager; the locks go with the fds."""

    def __init__(self, paths):
        self.fds = []
        try:
            for path in paths:
                lock = os.path.join(path, LOCK)
                try:
                    fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue
                self.fds.append(fd)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    owner = os.pread(fd, 32, 0).decode(errors="replace").strip()
                    raise LogLockedError(
                        f"{path} is in use" + (f" by process {owner}" if owner else "")
                        + ": stop it before checking (a live log has unflushed bytes and "
                        "reserved space that would read as damage)") from None
        except BaseException:
            self.release()
            raise

    def release(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


# -- checking ------------------------------------------------------------------------------------------
def check_partition(path):
    """Check one partition directory (the caller holds its lock); a PartitionReport."""
    report = PartitionReport(path)
    names = os.listdir(path)
    bases = sorted(b for b in (base_offset_of(n, LOG_SUFFIX) for n in names) if b is not None)
    report.segments = len(bases)
    clean = CLEAN_SHUTDOWN in names
    expected = None   # next offset after the previous batch
    for i, base in enumerate(bases):
        seg_path = os.path.join(path, segment_name(base, LOG_SUFFIX))
        with open(seg_path, "rb") as f:
            data = f.read()
        last = i == len(bases) - 1
        expected, starts = _check_segment(report, seg_path, base, data, expected, last)
        if any(d.framing and d.path == seg_path for d in report.damage):
            continue   # its indexes point past the damage: nothing to learn from them
        _check_indexes(report, path, base, data, starts, expected, trusted=clean or not last)
    report.end_offset = expected if expected is not None else (bases[-1] if bases else None)
    _check_checkpoint(report, path, bases)
    return report


def _check_segment(report, seg_path, base, data, expected, last):
    """Walk one .log; returns (next offset after its last good batch, {position: batch})."""
    pos, size = 0, len(data)
    starts = {}
    if expected is None or expected < base:
        expected = base
    while pos < size:
        left = size - pos
        if left >= 4 and not any(data[pos:pos + min(left, HEADER_SIZE)]):
            # Zeros: reserved space after the data (the last segment after a crash), or damage.
            zeros = _zero_run(data, pos)
            if last and pos + zeros == size:
                report.notes.append(f"{seg_path}: bytes {pos}..{size} are zeros after the data "
                                    "(space reserved before a crash; the next open gives it back)")
            else:
                report.damage.append(Damage(seg_path, pos, pos + zeros if pos + zeros < size
                                            else size, "zeros where batches should be",
                                            (expected, None), base, framing=True))
            break
        if left < HEADER_SIZE:
            report.damage.append(Damage(seg_path, pos, size, f"{left} bytes, too few for a "
                                        "batch header", (expected, None), base, framing=True))
            break
        h = read_header(data, pos)
        n = h.size
        if n < HEADER_SIZE or n > left:
            report.damage.append(Damage(
                seg_path, pos, size, f"impossible batch length {h.length} ({left} bytes left)",
                (expected, None), base, framing=True))
            break
        if h.magic != 2:
            report.damage.append(Damage(seg_path, pos, size, f"unknown magic byte {h.magic}",
                                        (expected, None), base, framing=True))
            break
        offsets = (h.base_offset, h.last_offset)
        crc = crc32c(memoryview(data)[pos + ATTRIBUTES:pos + n])
        if crc != h.crc:
            report.damage.append(Damage(
                seg_path, pos, pos + n, f"CRC mismatch (stored {h.crc:#010x}, computed "
                f"{crc:#010x})", offsets, base))
        elif h.last_offset_delta < 0 or h.base_offset < expected:
            report.damage.append(Damage(
                seg_path, pos, pos + n, f"offsets {h.base_offset}..{h.last_offset} go backwards "
                f"(expected {expected} or more)", offsets, base))
        else:
            starts[pos] = h
            expected = h.last_offset + 1
        report.batches += 1
        report.bytes += n
        pos += n
    return expected, starts


def _zero_run(data, pos):
    end = pos
    size = len(data)
    while end < size:
        chunk = data[end:end + 4096]
        stripped = chunk.lstrip(b"\0")
        end += len(chunk) - len(stripped)
        if stripped:
            break
    return end - pos


def _check_indexes(report, path, base, data, starts, next_offset, trusted):
    """Offset and time index of one segment against its batches. ``trusted``: the open would
    use them as they are (a sealed segment, or any after a clean shutdown)."""
    def problem(file, msg):
        if trusted:
            report.damage.append(Damage(file, 0, os.path.getsize(file), msg))
        else:
            report.notes.append(f"{file}: {msg} (an index of the last segment after a crash: "
                                "recovery rebuilds it at the next open)")

    ipath = os.path.join(path, segment_name(base, INDEX_SUFFIX))
    tpath = os.path.join(path, segment_name(base, TIME_INDEX_SUFFIX))
    for p in (ipath, tpath):
        if not os.path.exists(p):
            report.notes.append(f"{p}: missing (rebuilt at the next open)")
    if os.path.exists(ipath):
        with open(ipath, "rb") as f:
            idx = f.read()
        prev = (-1, -1)
        for i in range(len(idx) // 8):
            rel = int.from_bytes(idx[8 * i:8 * i + 4], "big", signed=True)
            pos = int.from_bytes(idx[8 * i + 4:8 * i + 8], "big")
            if (rel, pos) == (0, 0) and i and not any(idx[8 * i:]):
                break   # preallocated zeros after the entries
            h = starts.get(pos)
            if rel <= prev[0] or pos <= prev[1] or h is None or h.last_offset != base + rel:
                problem(ipath, f"entry {i} (offset {base + rel}, byte {pos}) does not point at "
                        "the batch holding that offset")
                break
            prev = (rel, pos)
    if os.path.exists(tpath):
        with open(tpath, "rb") as f:
            tix = f.read()
        prev_ts, prev_off = None, -1
        for i in range(len(tix) // 12):
            ts = int.from_bytes(tix[12 * i:12 * i + 8], "big", signed=True)
            rel = int.from_bytes(tix[12 * i + 8:12 * i + 12], "big", signed=True)
            if (ts, rel) == (0, 0) and i and not any(tix[12 * i:]):
                break
            off = base + rel
            if (prev_ts is not None and ts <= prev_ts) or off < prev_off or off >= next_offset:
                problem(tpath, f"entry {i} (timestamp {ts}, offset {off}) is out of order or "
                        f"past the segment's data (next offset {next_offset})")
                break
            prev_ts, prev_off = ts, off


def _check_checkpoint(report, path, bases):
    cpath = os.path.join(path, CHECKPOINT)
    try:
        values = read_checkpoint(cpath)
    except CorruptLogError as exc:
        report.damage.append(Damage(cpath, 0, os.path.getsize(cpath), str(exc).split(": ", 1)[-1]))
        return
    if not values:
        if bases:
            report.notes.append(f"{cpath}: missing (the next open recovers the whole log)")
        return
    end = report.end_offset if report.end_offset is not None else 0
    damaged = report.data_damage
    for name in ("log-start-offset", "recovery-point"):
        v = values.get(name)
        if v is None:
            continue
        if v < 0:
            report.damage.append(Damage(cpath, 0, os.path.getsize(cpath), f"{name} {v} is negative"))
        elif v > end and not damaged:
            report.damage.append(Damage(
                cpath, 0, os.path.getsize(cpath),
                f"{name} {v} is past the end of the data (offset {end})"))


def check(root, topic=None):
    """Check every partition under ``root`` (locks taken and released here). A list of
    PartitionReport."""
    dirs = partition_dirs(root, topic)
    lock_paths = list(dirs)
    root = os.fspath(root)
    if root not in lock_paths:
        lock_paths.insert(0, root)
    with DirectoryLocks(lock_paths):
        return [check_partition(d) for d in dirs]


# -- repairing -----------------------------------------------------------------------------------------
def truncate_at_first_damage(report):
    """Cut the partition of ``report`` at its first damaged batch (the caller holds its lock).
    Returns a sentence saying what was removed, or None if it has no data damage."""
    damage = sorted(report.data_damage, key=lambda d: (d.segment, d.start))
    if not damage:
        return None
    first = damage[0]
    path = report.path
    names = os.listdir(path)
    bases = sorted(b for b in (base_offset_of(n, LOG_SUFFIX) for n in names) if b is not None)
    cut_offset = first.offsets[0] if first.offsets else first.segment
    removed_bytes = os.path.getsize(first.path) - first.start
    later = [b for b in bases if b > first.segment]
    for b in later:
        removed_bytes += os.path.getsize(os.path.join(path, segment_name(b, LOG_SUFFIX)))
    # The marker first: from here on an interrupted repair leaves a log that recovers.
    for name in (CLEAN_SHUTDOWN, SNAPSHOT):
        try:
            os.unlink(os.path.join(path, name))
        except FileNotFoundError:
            pass
    fsync_dir(path)
    values = read_checkpoint(os.path.join(path, CHECKPOINT)) if _readable_checkpoint(path) else {}
    write_checkpoint(os.path.join(path, CHECKPOINT), {
        "recovery-point": min(values.get("recovery-point", 0), cut_offset),
        "log-start-offset": min(values.get("log-start-offset", 0), cut_offset),
    })
    for b in later:
        for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX):
            try:
                os.unlink(os.path.join(path, segment_name(b, suffix)))
            except FileNotFoundError:
                pass
    with open(first.path, "r+b") as f:
        f.truncate(first.start)
        os.fsync(f.fileno())
    for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
        try:
            os.unlink(os.path.join(path, segment_name(first.segment, suffix)))
        except FileNotFoundError:
            pass
    fsync_dir(path)
    return (f"{path}: cut {os.path.basename(first.path)} at byte {first.start}, removing "
            f"offsets {cut_offset} and later ({removed_bytes} bytes"
            + (f", {len(later)} later segment{'s' if len(later) != 1 else ''}" if later else "")
            + f"); first damage: {first.reason}")


def _readable_checkpoint(path):
    try:
        read_checkpoint(os.path.join(path, CHECKPOINT))
        return True
    except CorruptLogError:
        return False
