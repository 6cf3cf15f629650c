"""The log cleaner (Kafka's Cleaner): compaction keeps the latest record per key.

One pass, ``clean(log, now, first_dirty)``, on a log whose ``cleanup.policy`` contains ``compact``.
Which logs get a pass, and when, is klog.storage.log_cleaner's business (dirty ratio, lags, the
cleaner checkpoint); ``Log.clean`` runs a full pass at once.

1. **Cleanable range**: the sealed segments, oldest first, up to the first one whose max timestamp
   is younger than ``min.compaction.lag.ms``. The active segment is never cleaned. It splits at
   ``first_dirty`` (the cleaner checkpoint: everything below it was cleaned by an earlier pass, so
   each key appears there at most once) into a clean part and a dirty part. ``first_dirty`` None
   means the log start (everything dirty). A pass that found nothing to do is remembered: while
   the same segments (same objects, same sizes) and config are there and no kept tombstone has
   expired, the next pass returns at once.
2. **Offset map**, built from the dirty part only: key -> offset of its latest record (a dict of
   the key bytes, so no hash collisions; memory grows with the number of distinct dirty keys).
   A record of the cleanable range survives iff its key is not None, the map holds no later
   offset for its key, and it is not a tombstone (null value) with ``now - timestamp >=
   delete.retention.ms``. That is the tombstone rule: a tombstone lives ``delete.retention.ms``
   after its own timestamp (Kafka counts from its first cleaning, which needs the delete-horizon
   bit; this is simpler, and the same for LogAppendTime topics). The clean part is read (as
   Kafka's cleaner reads it when it recopies) to find what the new dirty keys supersede there.
3. **Recopy**, in groups of adjacent segments whose kept bytes stay under ``segment.bytes`` (and
   whose offsets and index entries fit one segment): offsets never change (gaps are fine): a
   batch that keeps all its records is copied byte for byte, one that keeps some is re-encoded at
   its original base offset with explicit offset deltas (same codec, timestamps, headers,
   producer fields, leader epoch, LogAppendTime), one that keeps none disappears. Records with a
   null key (written before the topic became compacted) are dropped, as Kafka's cleaner does.
   Control batches are copied unchanged. Unlike Kafka, a producer's last batch is not kept for
   its sequence numbers: the idempotence state (klog.storage.producer_state) comes from the
   snapshot written at close and the batches after it, so after an unclean stop a producer whose
   batches were all compacted away is unknown, and a retry of one of them is appended again
   rather than answered as a duplicate. A group is rewritten only if it removes something or
   merges several segments.

After a complete pass (``CleanResult.aborted`` false) every key appears at most once below
``CleanResult.dirty_end``: that is the next first dirty offset. A pass that stops early (the log
changed under it) must not advance it.

Files and crash safety. Old segments B1..Bk (bases b1 < ... < bk) become one segment at b1:

    a. write ``<b1>.log.cleaned``, ``.index.cleaned``, ``.timeindex.cleaned``; fsync them and the
       directory. (Without the log's locks: sealed segments do not change.)
    b. under the log's ``_flush_lock`` and ``_lock``, check the group is still in the log (else
       discard), rename the indexes to ``<b1>.index.swap`` / ``.timeindex.swap``, then
       ``<b1>.log.cleaned`` to ``<b1>.log.<bk>.swap``; fsync the directory. **This rename is the
       commit point.** Its name records the replaced bases [b1, bk], so recovery never infers the
       group from the data (a group whose later segments were emptied has no offsets to tell).
    c. delete B1..Bk's files, fsync, rename the swap files to ``<b1>.log`` etc., fsync, and put
       the new segment in the log's list in place of the old ones.

Recovery (``complete_swaps``, run by ``Log`` before it lists segments): ``.cleaned`` files are
deleted (a crash before the commit: every old segment is intact, so the group is all old); for
each ``<b1>.log.<bk>.swap`` the remaining files of bases in [b1, bk] are deleted and the swap files
renamed (a crash after the commit: all new); index ``.swap`` files without a log swap are deleted.
An index lost on the way is rebuilt by the normal recovery. So every crash point leaves each group
all-old or all-new, and the log valid.

Readers: the segment list changes in one step under ``_lock``; a view taken before keeps the old
segment's mapping alive after its files are unlinked, so it reads the old bytes, and an iterator
continues at its next offset in the new segments. An error before the commit point discards the
cleaned files and leaves the log as it was; an error after it takes the log offline (reopening
completes the swap).

Concurrency: one pass per log at a time. While a pass runs it holds views of the segments it
cleans, so ``truncate_to`` into them fails with BufferError meanwhile; segments deleted by
retention or truncation make the swap discard its group and end the pass.
"""
import bisect
import dataclasses
import os
import re
import threading
import weakref

from klog._native.batch import build_batch, decode_records, read_header, set_log_append_time
from klog._native.batch import validate_batch
from klog.clock import SYSTEM_CLOCK
from klog.codec import compressor, decompress
from klog.errors import CorruptRecordError, LogOfflineError
from klog.storage.files import (
    INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, base_offset_of, fsync_dir, segment_name,
)
from klog.storage.segment import LogSegment

CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
SUFFIXES = (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX)
INDEX_SUFFIXES = (INDEX_SUFFIX, TIME_INDEX_SUFFIX)
HEADER_SIZE = 61
INT32_MAX = (1 << 31) - 1
_LOG_SWAP = re.compile(r"^(\d{20})\.log\.(\d{20})\.swap$")

_pass_locks = weakref.WeakKeyDictionary()   # Log -> Lock: one cleaning pass per log at a time
_pass_locks_guard = threading.Lock()
_idle = weakref.WeakKeyDictionary()         # Log -> _IdleMemo of its last pass with nothing to do


class CleanerStopped(Exception):
    """The pass was asked to stop (the broker is closing); nothing it had not committed stays."""


@dataclasses.dataclass(frozen=True)
class CleanResult:
    """What one pass did. Counts and sizes cover the groups it rewrote."""
    segments_rewritten: int = 0     # old segments replaced
    segments_written: int = 0       # new segments that replaced them
    records_kept: int = 0
    records_removed: int = 0        # superseded, expired tombstones, null keys
    tombstones_removed: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    groups: tuple = ()              # ((first base, last base), ...) of the rewritten groups
    dirty_end: int = -1             # base of the first segment the pass left alone (-1: none
                                    # was cleanable): the next first dirty offset
    first_dirty: int = -1           # where the offset map started
    map_bytes: int = 0              # bytes the offset map was built from (the dirty part)
    bytes_read: int = 0             # every byte the pass decoded: map, clean part, recopy
    aborted: bool = False           # stopped early (the log changed): dirty_end not reached
    next_tombstone_expiry: float = float("inf")  # ms at which a kept tombstone expires




class _IdleMemo:
    """A pass found nothing to do over these segments: the next one can only find something if
    a segment changed or was added, the config changed, or a kept tombstone expired."""
    __slots__ = ("segments", "config", "next_expiry")

    def __init__(self, infos, config, next_expiry):
        self.segments = [(weakref.ref(i.segment), i.size) for i in infos]
        self.config = config
        self.next_expiry = next_expiry

    def still_idle(self, infos, config, now):
        return (config is self.config and now < self.next_expiry
                and len(infos) == len(self.segments)
                and all(ref() is i.segment and size == i.size
                        for (ref, size), i in zip(self.segments, infos)))


# -- file names ----------------------------------------------------------------------------------
def cleaned_name(base, suffix):
    return segment_name(base, suffix) + CLEANED_SUFFIX


def swap_name(base, suffix, last):
    """``<base>.log.<last>.swap`` for the log (it names the replaced bases); ``<base>.index.swap``
    for the indexes."""
    if suffix == LOG_SUFFIX:
        return f"{segment_name(base, LOG_SUFFIX)}.{last:020d}{SWAP_SUFFIX}"
    return segment_name(base, suffix) + SWAP_SUFFIX


def _unlink(path):
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


# -- recovery ------------------------------------------------------------------------------------
def complete_swaps(directory):
    """Finish or undo what an interrupted cleaning left in ``directory``; returns the
    [(first base, last base)] of the swaps completed. Call before listing segments."""
    names = os.listdir(directory)
    changed = False
    for n in names:
        if n.endswith(CLEANED_SUFFIX):
            changed |= _unlink(os.path.join(directory, n))
    swaps = sorted((int(m.group(1)), int(m.group(2)))
                   for m in map(_LOG_SWAP.match, names) if m is not None)
    for first, last in swaps:
        for n in names:
            for suffix in SUFFIXES:
                b = base_offset_of(n, suffix)
                if b is not None and first <= b <= last:
                    _unlink(os.path.join(directory, n))
        fsync_dir(directory)
        _finish_swap(directory, first, last)
        changed = True
    committed = {first for first, _ in swaps}
    for n in names:
        for suffix in INDEX_SUFFIXES:
            b = base_offset_of(n, suffix + SWAP_SUFFIX)
            if b is not None and b not in committed:
                changed |= _unlink(os.path.join(directory, n))
    if changed:
        fsync_dir(directory)
    return swaps


# -- the steps of a swap (module functions, so tests can interrupt each) ---------------------------
def _commit_swap(directory, first, last):
    """.cleaned → .swap, indexes first: the log's rename is the commit point."""
    for suffix in INDEX_SUFFIXES:
        os.rename(os.path.join(directory, cleaned_name(first, suffix)),
                  os.path.join(directory, swap_name(first, suffix, last)))
    os.rename(os.path.join(directory, cleaned_name(first, LOG_SUFFIX)),
              os.path.join(directory, swap_name(first, LOG_SUFFIX, last)))
    fsync_dir(directory)


def _delete_segment_files(directory, base):
    for suffix in SUFFIXES:
        _unlink(os.path.join(directory, segment_name(base, suffix)))


def _finish_swap(directory, first, last):
    """.swap → final names, the log last (while its swap name exists, recovery redoes this)."""
    for suffix in INDEX_SUFFIXES:
        try:
            os.replace(os.path.join(directory, swap_name(first, suffix, last)),
                       os.path.join(directory, segment_name(first, suffix)))
        except FileNotFoundError:
            pass  # lost in an earlier attempt: recovery rebuilds the index
    os.replace(os.path.join(directory, swap_name(first, LOG_SUFFIX, last)),
               os.path.join(directory, segment_name(first, LOG_SUFFIX)))
    fsync_dir(directory)


def _discard(directory, first, last):
    """Undo an uncommitted group: its .cleaned and index .swap files go."""
    for suffix in SUFFIXES:
        _unlink(os.path.join(directory, cleaned_name(first, suffix)))
    for suffix in INDEX_SUFFIXES:
        _unlink(os.path.join(directory, swap_name(first, suffix, last)))
    fsync_dir(directory)


class CleanedSegment(LogSegment):
    """A segment written under its temporary names (``<base>.log.cleaned``...)."""

    def __init__(self, directory, base_offset, config):
        for suffix in SUFFIXES:
            _unlink(os.path.join(directory, cleaned_name(base_offset, suffix)))
        super().__init__(directory, base_offset, config, active=True)

    def path(self, suffix):
        return super().path(suffix) + CLEANED_SUFFIX


# -- one pass --------------------------------------------------------------------------------------
class _SegmentInfo:
    """A dirty segment as the pass saw it: a view of its bytes and what the map says of it."""
    __slots__ = ("segment", "base", "view", "size", "last_offset", "batches", "records", "kept")

    def __init__(self, segment, view):
        self.segment = segment
        self.base = segment.base_offset
        self.view = view
        self.size = view.nbytes
        self.last_offset = segment.next_offset - 1
        self.batches = 0
        self.records = 0
        self.kept = 0


def _batches(info):
    """(position, header) of every batch in a segment view."""
    view, pos = info.view, 0
    while pos < info.size:
        h = read_header(view, pos)
        if h.size < HEADER_SIZE or pos + h.size > info.size:
            raise CorruptRecordError(
                f"{info.segment.path(LOG_SUFFIX)}: batch at byte {pos} declares length {h.length}"
                f" in a {info.size}-byte segment; not cleaning it")
        yield pos, h
        pos += h.size


def _pass_lock(log):
    with _pass_locks_guard:
        lock = _pass_locks.get(log)
        if lock is None:
            lock = _pass_locks[log] = threading.Lock()
        return lock


def clean(log, now=None, first_dirty=None, stopping=None):
    """Compact ``log`` once (see the module doc); returns a CleanResult. ``now`` (ms) decides
    tombstone expiry and min.compaction.lag.ms; ``first_dirty`` is the cleaner checkpoint (None:
    the whole log is dirty); ``stopping()`` true makes the pass give up between batches (raising
    CleanerStopped; groups already swapped in stay). A log whose cleanup.policy lacks
    ``compact`` is left alone."""
    now = SYSTEM_CLOCK.now_ms() if now is None else now
    with _pass_lock(log):
        with log._lock:
            log._check_writable()
            config = log.config
            if "compact" not in config.cleanup_policy:
                return CleanResult()
            infos = []
            try:
                for seg in log._segments[:-1]:
                    if (config.min_compaction_lag_ms > 0
                            and now - seg.max_timestamp < config.min_compaction_lag_ms):
                        break
                    infos.append(_SegmentInfo(seg, seg.log.view(0, seg.size)))
                dirty_end = log._segments[len(infos)].base_offset
            except BaseException:
                for info in infos:
                    info.view.release()
                raise
        try:
            memo = _idle.get(log)
            if infos and memo is not None and memo.still_idle(infos, config, now):
                return CleanResult(dirty_end=dirty_end, first_dirty=dirty_end,
                                   next_tombstone_expiry=memo.next_expiry)
            _idle.pop(log, None)
            return _clean(log, config, infos, dirty_end, now, first_dirty, stopping)
        finally:
            for info in infos:
                info.view.release()


def _clean(log, config, infos, dirty_end, now, first_dirty, stopping=None):
    if not infos:
        return CleanResult()
    bases = [info.base for info in infos]
    if first_dirty is None or first_dirty <= bases[0]:
        split = 0
    elif first_dirty >= dirty_end:
        split = len(infos)
    else:  # inside a segment (a crash before the checkpoint after a merge): all of it dirty
        split = bisect.bisect_right(bases, first_dirty) - 1
    clean_part, dirty = infos[:split], infos[split:]
    latest, tombstones = _build_offset_map(dirty)
    retention = config.delete_retention_ms
    next_expiry = float("inf")
    expired = set()
    for key, ts in tombstones.items():
        if now - ts >= retention:
            expired.add(key)
        else:
            next_expiry = min(next_expiry, ts + retention)
    for key, offset in latest.items():
        if key not in expired:
            infos[bisect.bisect_right(bases, offset) - 1].kept += 1
    for info in clean_part:
        next_expiry = min(next_expiry, _scan_clean(info, latest, retention, now))
    map_bytes = sum(info.size for info in dirty)

    totals = dict(segments_rewritten=0, segments_written=0, records_kept=0, records_removed=0,
                  tombstones_removed=0, bytes_before=0, bytes_after=0)
    groups = []
    aborted = False
    plan = [g for g in _plan_groups(infos, config)
            if len(g) > 1 or g[0].kept < g[0].records]  # else nothing to remove or merge
    if not plan:
        _idle[log] = _IdleMemo(infos, config, next_expiry)
    for group in plan:
        stats = _clean_group(log, config, group, latest, now, stopping)
        if stats is None:
            aborted = True
            break  # the log changed under us (retention, truncation, close): next pass
        for k, v in stats.items():
            totals[k] += v
        groups.append((group[0].base, group[-1].base))
    read = map_bytes + sum(info.size for info in clean_part) + totals["bytes_before"]
    return CleanResult(**totals, groups=tuple(groups), dirty_end=dirty_end,
                       first_dirty=dirty[0].base if dirty else dirty_end, map_bytes=map_bytes,
                       bytes_read=read, aborted=aborted, next_tombstone_expiry=next_expiry)


def _survives(r, latest, retention, now):
    """The rule of the module doc: a keyed record that nothing later supersedes, and not an
    expired tombstone."""
    return (r.key is not None and latest.get(r.key, -1) <= r.offset
            and (r.value is not None or now - r.timestamp < retention))


def _scan_clean(info, latest, retention, now):
    """Count a clean segment's batches, records and survivors; returns the earliest expiry of a
    tombstone it keeps."""
    next_expiry = float("inf")
    for pos, h in _batches(info):
        info.batches += 1
        if h.is_control:
            continue
        for r in decode_records(info.view[pos:pos + h.size], -1, decompress):
            info.records += 1
            if _survives(r, latest, retention, now):
                info.kept += 1
                if r.value is None:
                    next_expiry = min(next_expiry, r.timestamp + retention)
    return next_expiry


def _build_offset_map(infos):
    """key -> offset of its latest record; and key -> timestamp for keys whose latest record is a
    tombstone."""
    latest, tombstones = {}, {}
    for info in infos:
        for pos, h in _batches(info):
            info.batches += 1
            if h.is_control:
                continue
            for r in decode_records(info.view[pos:pos + h.size], -1, decompress):
                info.records += 1
                if r.key is None:
                    continue
                latest[r.key] = r.offset
                if r.value is None:
                    tombstones[r.key] = r.timestamp
                else:
                    tombstones.pop(r.key, None)
    return latest, tombstones


def _plan_groups(infos, config):
    """Adjacent segments whose expected output stays under segment.bytes, whose offsets fit the
    32-bit relative offsets of one segment and whose index entries fit its indexes."""
    interval = config.index_interval_bytes + 1
    max_entries = max(1, config.segment_index_bytes // 12) - 1  # time index: 12-byte entries
    groups, current, out_bytes, entries = [], [], 0, 0
    for info in infos:
        est = info.size * info.kept // info.records if info.records else 0
        ent = min(info.batches, info.size // interval + 1)
        if current and (out_bytes + est > config.segment_bytes
                        or info.last_offset - current[0].base > INT32_MAX
                        or entries + ent > max_entries):
            groups.append(current)
            current, out_bytes, entries = [], 0, 0
        current.append(info)
        out_bytes += est
        entries += ent
    if current:
        groups.append(current)
    return groups


def _clean_group(log, config, group, latest, now, stopping=None):
    """Write the group's cleaned segment and swap it in; the stats, or None if the log changed."""
    directory = log.path
    first, last = group[0].base, group[-1].base
    stats = dict(segments_rewritten=len(group), segments_written=1, records_kept=0,
                 records_removed=0, tombstones_removed=0,
                 bytes_before=sum(i.size for i in group), bytes_after=0)
    try:
        stats["bytes_after"] = _write_cleaned(directory, config, group, latest, stats, now,
                                              stopping)
        with log._flush_lock, log._lock:
            index = _find_group(log, group)
            if index is None:
                _discard(directory, first, last)
                return None
            _commit_swap(directory, first, last)
            _swap_in(log, group, index)
    except BaseException as exc:
        if not isinstance(exc, Exception):
            raise  # not an error but an exit (or a simulated crash): leave the files to recovery
        if os.path.exists(os.path.join(directory, swap_name(first, LOG_SUFFIX, last))):
            log._offline = LogOfflineError(
                f"the cleaner's swap of segments {first}..{last} failed after its commit point "
                f"({exc}); reopen the log to complete it")
        else:
            _discard(directory, first, last)
        raise
    return stats


def _find_group(log, group):
    """Where the group's segments still sit, unchanged and sealed, in the log; else None."""
    if log._closed or log._offline is not None:
        return None
    segs = log._segments
    for i, seg in enumerate(segs):
        if seg is group[0].segment:
            break
    else:
        return None
    end = i + len(group)
    if end >= len(segs):  # the group would reach the active segment
        return None
    for seg, info in zip(segs[i:end], group):
        if seg is not info.segment or seg.active or seg.size != info.size:
            return None
    return i


def _write_cleaned(directory, config, group, latest, stats, now, stopping=None):
    """Write the group's kept records to ``<first>.log.cleaned`` (+ indexes) and make them
    durable; returns the new segment's size."""
    first = group[0].base
    retention = config.delete_retention_ms
    # Room for every input byte and then some: a re-encoded subset can take a few more bytes
    # (timestamp deltas from a new base, another compressor), never near this.
    total = sum(i.size for i in group)
    capacity = total + total // 4 + config.max_message_bytes
    out = CleanedSegment(directory, first, dataclasses.replace(
        config, segment_bytes=max(1, capacity - config.max_message_bytes), preallocate=False))
    try:
        for info in group:
            for pos, h in _batches(info):
                if stopping is not None and stopping():
                    raise CleanerStopped(f"{directory}: cleaning stopped")
                raw = info.view[pos:pos + h.size]
                if h.is_control:
                    validate_batch(raw, True, True)
                    out.append(raw, h.base_offset, now)
                    continue
                records = decode_records(raw, -1, decompress)
                kept = [r for r in records if _survives(r, latest, retention, now)]
                stats["records_kept"] += len(kept)
                stats["records_removed"] += len(records) - len(kept)
                stats["tombstones_removed"] += sum(
                    1 for r in records if r.value is None and r.key is not None) - sum(
                    1 for r in kept if r.value is None)
                if len(kept) == len(records):
                    out.append(raw, h.base_offset, now)
                elif kept:
                    out.append(_reencode(h, kept), h.base_offset, now)
        out.seal()
        out.flush()
        size = out.size
    finally:
        out.close()
    fsync_dir(directory)
    return size


def _reencode(h, kept):
    """The kept records of the batch with header ``h``, as one batch at its base offset."""
    codec = h.compression
    base = h.base_offset
    batch = build_batch(
        [r.value for r in kept], [r.key for r in kept], [r.timestamp for r in kept],
        [r.headers for r in kept], base, codec, compressor(codec) if codec else None,
        h.producer_id, h.producer_epoch, h.base_sequence, h.leader_epoch, h.is_transactional,
        offset_deltas=[r.offset - base for r in kept])
    if h.log_append_time:
        batch = set_log_append_time(batch, h.max_timestamp)
    return batch


def _swap_in(log, group, index):
    """After the commit: old files out, new files in, new segment object in the list. Caller
    holds both of the log's locks."""
    directory = log.path
    first, last = group[0].base, group[-1].base
    for info in group:
        info.segment.close()  # views (readers', ours) keep the mapping alive
        _delete_segment_files(directory, info.base)
    fsync_dir(directory)
    _finish_swap(directory, first, last)
    seg = LogSegment(directory, first, log.config, active=False)
    if not seg.load_clean():  # e.g. no timestamps at all leave the time index empty
        problem = seg.recover(first)
        if problem is not None:
            raise CorruptRecordError(f"{seg.path(LOG_SUFFIX)}: cleaned segment fails its own "
                                     f"scan: {problem}")
        seg.seal()
    log._segments[index:index + len(group)] = [seg]
    log._bases[index:index + len(group)] = [first]
