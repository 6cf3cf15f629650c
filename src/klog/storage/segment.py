"""LogSegment: one ``<base>.log`` with its ``.index`` and ``.timeindex``.

On disk: the .log holds RecordBatch v2 bytes back to back, exactly as produced and served; the
indexes are Kafka's sparse entry formats (see klog._native.index). The active segment's files
have space reserved ahead of the data (posix_fallocate) and are appended with pwrite; every
segment is read through a read-only mapping (klog._native.mmapfile). Rolling trims a segment to
its real size; once its bytes are flushed it is reopened read-only, which keeps no file
descriptor, so a partition holds descriptors for its active segment only.

After a crash the .log may be longer than its data (reserved zeros) or end in a torn batch, and
the indexes may be stale: ``recover`` revalidates every batch (length, magic, CRC, offsets) and
rebuilds both indexes, stopping at the first bad byte. Concurrency: the owning Log serializes
appends, truncation and rolls; reads may run alongside an append.

Open files: a sealed, read-only segment is mapped on first use and kept in a process-wide LRU
(``OPEN_SEGMENTS``, ``MAX_OPEN_SEGMENTS`` segments); the least recently used ones are unmapped,
and mapped again when read. A read-only mapping holds no file descriptor, so this bounds the
mappings (vm.max_map_count) and address space, not descriptors. Views handed out keep their own
mapping alive (and still count against truncation, see ``log_views``); a reader in the middle of
a walk holds its own reference, so eviction never pulls a mapping from under it.
"""
import collections
import os
import threading

from klog._native.batch import decode_records, read_header
from klog._native.index import OffsetIndex, TimeIndex
from klog._native.mmapfile import MappedFile
from klog._native.scan import Indexer, fetch_end, find_position, find_position_by_time
from klog.codec import decompress
from klog.errors import CorruptIndexError
from klog.storage.files import INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, segment_name


MAX_OPEN_SEGMENTS = 8192   # sealed segments mapped at once, per process (<= 3 mappings each)


class OpenSegments:
    """The sealed segments whose files are mapped, least recently used first (the CLOCK
    approximation: a read only sets the segment's ``_referenced`` flag, no lock; eviction gives a
    flagged segment a second chance). Evicting one unmaps it (its views keep their own
    mappings). ``lock`` also guards every map / unmap of a segment's files."""

    def __init__(self, capacity):
        self.capacity = capacity
        self.lock = threading.RLock()
        self._lru = collections.OrderedDict()

    def touch(self, seg):
        """Register a segment just mapped; evict beyond ``capacity``."""
        with self.lock:
            self._lru[id(seg)] = seg
            self._lru.move_to_end(id(seg))
            self._evict()

    def _evict(self):
        while len(self._lru) > self.capacity:
            key, old = self._lru.popitem(last=False)
            if old._referenced:
                old._referenced = False   # used since it was last looked at: a second chance
                self._lru[key] = old
                continue
            old._unmap_sealed()

    def discard(self, seg):
        with self.lock:
            self._lru.pop(id(seg), None)

    def resize(self, capacity):
        with self.lock:
            self.capacity = max(1, capacity)
            self._evict()

    def __len__(self):
        return len(self._lru)


OPEN_SEGMENTS = OpenSegments(MAX_OPEN_SEGMENTS)


class LogSegment:
    def __init__(self, directory, base_offset, config, active):
        self.directory = directory
        self.base_offset = base_offset
        self.config = config
        self.active = active
        self._files = None          # (MappedFile, OffsetIndex, TimeIndex) while mapped
        self._size = 0              # the .log's size while unmapped
        self.indexer = None         # a sealed segment's state lives on while it is unmapped
        self.created_ms = None
        self.index_lost = False
        self._deleted = False
        self._referenced = False    # read since OPEN_SEGMENTS last looked (see there)
        self._retired_logs = []   # earlier mappings of the .log that views still hold
        self._map(active)

    # -- files -----------------------------------------------------------------------------
    def path(self, suffix):
        return os.path.join(self.directory, segment_name(self.base_offset, suffix))

    @property
    def log(self):
        return self._mapped()[0]

    @property
    def offset_index(self):
        return self._mapped()[1]

    @property
    def time_index(self):
        return self._mapped()[2]

    def _mapped(self):
        files = self._files
        if files is None:
            with OPEN_SEGMENTS.lock:
                files = self._files
                if files is None:
                    if self._deleted:
                        raise FileNotFoundError(f"{self.path(LOG_SUFFIX)}: segment was deleted")
                    files = self._map(False)
        else:
            self._referenced = True
        return files

    def _map(self, writable):
        cfg = self.config
        capacity = cfg.segment_bytes + cfg.max_message_bytes if writable else 0
        with OPEN_SEGMENTS.lock:
            if os.path.exists(self.path(LOG_SUFFIX)):
                for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
                    if not os.path.exists(self.path(suffix)):
                        # A lost index file: start it empty; load_clean refuses, so it is rebuilt.
                        open(self.path(suffix), "ab").close()
                        self.index_lost = True
            log = MappedFile(self.path(LOG_SUFFIX), writable, capacity)
            offset_index = OffsetIndex(self.path(INDEX_SUFFIX), self.base_offset,
                                       cfg.segment_index_bytes, writable)
            time_index = TimeIndex(self.path(TIME_INDEX_SUFFIX), self.base_offset,
                                   cfg.segment_index_bytes, writable)
            self._files = (log, offset_index, time_index)
            if writable or self.indexer is None:
                state = self.indexer
                self.indexer = Indexer(offset_index, time_index, cfg.index_interval_bytes,
                                       self.base_offset)
                if state is not None:
                    self._restore(state)
            else:   # mapped again after an eviction: the same state object, new files
                self.indexer.offset_index = offset_index
                self.indexer.time_index = time_index
            if writable:
                OPEN_SEGMENTS.discard(self)
                if cfg.preallocate and log.size == 0:
                    log.preallocate()
            else:
                self._referenced = True   # about to be read: not the one to evict now
                OPEN_SEGMENTS.touch(self)
            return self._files

    def _unmap_sealed(self):
        """Evicted from OPEN_SEGMENTS: drop the mappings (read-only: no descriptor to close)."""
        with OPEN_SEGMENTS.lock:
            files = self._files
            if files is None or files[0].writable:
                return
            if files[0].exports:
                self._retired_logs.append(files[0])
            self._size = files[0].size
            self._files = None
            self.indexer.offset_index = None
            self.indexer.time_index = None

    @classmethod
    def create(cls, directory, base_offset, config):
        """A new, empty, active segment (any stale files of that name are removed first)."""
        for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX):
            try:
                os.unlink(os.path.join(directory, segment_name(base_offset, suffix)))
            except FileNotFoundError:
                pass
        return cls(directory, base_offset, config, active=True)

    @property
    def size(self):
        files = self._files
        return files[0].size if files is not None else self._size

    @property
    def next_offset(self):
        return self.indexer.next_offset

    @property
    def max_timestamp(self):
        return self.indexer.max_timestamp

    @property
    def is_empty(self):
        return self.size == 0

    # -- loading -----------------------------------------------------------------------------
    def load_clean(self):
        """After a clean shutdown: trust the files; find the state from the last index entry."""
        if self.index_lost:
            return False
        if self.log.size and not self.time_index.entries:
            # seal() always leaves the max timestamp there; without it max_timestamp would come
            # from the tail alone (wrong offset_for_time, early time retention): rebuild.
            return False
        try:
            self.offset_index.sanity_check(self.log.size)
            last_offset, position = self.offset_index.lookup(2 ** 62)
            ts, ts_offset = self.time_index.last_entry
            self.time_index.sanity_check(2 ** 62)
        except CorruptIndexError:
            return False
        tail = Indexer(self.offset_index, self.time_index, 0, self.base_offset, build=False)
        if tail.scan(self.log, position, self.log.size, False) is not None:
            return False
        self.indexer.next_offset = tail.next_offset
        self.indexer.end = self.log.size
        if tail.max_timestamp > ts:
            ts, ts_offset = tail.max_timestamp, tail.offset_of_max_timestamp
        self.indexer.max_timestamp, self.indexer.offset_of_max_timestamp = ts, ts_offset
        self.indexer.bytes_since_entry = self.log.size - position
        return True

    def framed_end(self):
        """The offset after the last batch, if the file is whole batches to its last byte by
        their headers (no CRC check); else None (damage, or zeros after the data: only recovery
        can tell a torn tail from lost data)."""
        walker = Indexer(self.offset_index, self.time_index, 0, self.base_offset, build=False)
        if walker.scan(self.log, 0, self.log.size, False) is not None:
            return None
        return walker.next_offset

    def recover(self, expected_base):
        """Validate every batch and rebuild both indexes. Returns None if the whole file is valid,
        else (position, reason, next_offset, found): where valid data ends, why, the offset that
        was expected there, and for a valid batch out of order its base offset (else None). The
        caller decides whether that is a torn tail or lost flushed data."""
        if not self.log.writable:
            self.make_active()
        self.offset_index.reset()
        self.time_index.reset()
        self.indexer = Indexer(self.offset_index, self.time_index,
                               self.config.index_interval_bytes, expected_base)
        # At open ``size`` is the whole file (reserved zeros included), unless ``preallocate``
        # just reserved space past it: never scan beyond ``size``.
        err = self.indexer.scan(self.log, 0, self.log.size, True)
        if err is None:
            return None
        # For "offsets" the batch there is whole and CRC-valid: its own base offset tells what
        # data it is (the expected offset may itself come from a damaged baseOffset before it).
        return (err[0], err[1], self.indexer.next_offset, err[2] if err[1] == "offsets" else None)

    def make_active(self):
        """Remap a sealed segment writable (to truncate it or to append to it again)."""
        if self.log.writable:
            return
        if self.log_views:
            raise BufferError(f"{self.path(LOG_SUFFIX)}: {self.log_views} views of this segment "
                              "are still alive")
        for f in (self.offset_index.file, self.time_index.file):
            if f.exports:
                raise BufferError(f"{f.path}: views of this segment are still alive")
        with OPEN_SEGMENTS.lock:
            self._mapped()
            self.close()
            self._map(True)   # a new Indexer over the writable files, with the state restored
        self.active = True

    def release_write(self):
        """A sealed segment whose bytes are all durable: reopen it read-only, which keeps no file
        descriptor (see MappedFile). Views of the writable mapping stay valid (each keeps its
        mapping alive). Returns True if it was reopened."""
        if self.active or not self.log.writable:
            return False
        files = (self.log, self.offset_index.file, self.time_index.file)
        if any(f.synced != f.size or f.reserved != f.size for f in files):
            return False   # not flushed (or not trimmed) yet: the next flush comes back here
        with OPEN_SEGMENTS.lock:
            old = self.log
            self.close()
            if old.exports:
                # Views of the writable mapping outlive it; truncation must still see them.
                self._retired_logs.append(old)
            self._map(False)   # the same Indexer (its state), now over read-only files
        return True

    @property
    def log_views(self):
        """Zero-copy views alive over this segment's .log, of any of its mappings."""
        self._retired_logs = [f for f in self._retired_logs if f.exports]
        files = self._files
        return (files[0].exports if files is not None else 0) + sum(
            f.exports for f in self._retired_logs)

    def _restore(self, state):
        self.indexer.next_offset = state.next_offset
        self.indexer.end = state.end
        self.indexer.max_timestamp = state.max_timestamp
        self.indexer.offset_of_max_timestamp = state.offset_of_max_timestamp
        self.indexer.bytes_since_entry = state.bytes_since_entry

    # -- writing -----------------------------------------------------------------------------
    def should_roll(self, size, last_offset, now_ms):
        """Kafka's LogSegment.shouldRoll: size, age, a full index, or an offset that no longer
        fits the 32-bit relative offsets of the index."""
        if self.log.size == 0:  # rolling an empty segment recreates it with the current config
            return size > self.log.capacity or last_offset - self.base_offset > 0x7FFFFFFF
        cfg = self.config
        if self.log.size > cfg.segment_bytes - size or self.log.size + size > self.log.capacity:
            return True
        if self.created_ms is not None and now_ms - self.created_ms >= cfg.segment_ms - cfg.segment_jitter_ms:
            return True
        if self.offset_index.is_full or self.time_index.is_full:
            return True
        return last_offset - self.base_offset > 0x7FFFFFFF

    def append(self, batch, base_offset, now_ms, leader_epoch=None):
        """Copy a validated batch in, assign its base offset (and the leader epoch, when given)
        in place, index it."""
        if self.log.size == 0:
            self.created_ms = now_ms
        pos = self.log.append_batch(batch, base_offset, leader_epoch)
        ix = self.indexer
        state = (ix.next_offset, ix.end, ix.max_timestamp, ix.offset_of_max_timestamp,
                 ix.bytes_since_entry)
        try:
            err = ix.scan(self.log, pos, self.log.size, False)
        except BaseException:
            # Indexing failed (ENOSPC growing an index file): the batch is not acknowledged, so
            # it must not stay readable, nor look valid to recovery after a crash.
            (ix.next_offset, ix.end, ix.max_timestamp, ix.offset_of_max_timestamp,
             ix.bytes_since_entry) = state
            try:
                self.offset_index.truncate_to(base_offset)
                self.time_index.truncate_to(base_offset)
                self.log.write_u64(pos, 0)       # baseOffset 0 and length 0: recovery reads
                self.log.write_u64(pos + 8, 0)   # "zeros" here, the end of the data
            finally:
                self.log.set_size(pos)
            raise
        if err is not None:  # cannot happen for a validated batch; never leave it in the log
            self.log.truncate(pos)
            raise AssertionError(f"appended batch failed its own scan: {err}")
        return pos

    def seal(self):
        """Stop being active: final time-index entry (so it holds the segment's max timestamp),
        then give back reserved space. A read-only (already sealed) segment has nothing to do."""
        self.active = False
        if not self.log.writable:
            return
        if self.indexer.max_timestamp >= 0:
            self.time_index.append(self.indexer.max_timestamp, self.indexer.offset_of_max_timestamp)
        for f in (self.log, self.offset_index, self.time_index):
            f.trim()

    def truncate_to(self, offset):
        """Remove every batch that holds an offset >= ``offset`` and make this the active
        segment. Returns the new next offset: the base of the batch that held ``offset``, or
        ``offset`` itself when it falls in a gap (compaction leaves gaps)."""
        pos = self.position_of(offset)
        new_end = offset
        if pos < self.log.size:
            new_end = min(offset, read_header(self.log, pos).base_offset)
        self.make_active()
        if pos < self.log.size:
            self.log.truncate(pos)
            # Rebuild rather than patch: a header-only walk, and the state (max timestamp)
            # comes out exactly as the appends left it.
            self.offset_index.reset()
            self.time_index.reset()
            self.indexer = Indexer(self.offset_index, self.time_index,
                                   self.config.index_interval_bytes, self.base_offset)
            self.indexer.scan(self.log, 0, self.log.size, False)
            self.log.flush()
        self.indexer.next_offset = max(self.indexer.next_offset, new_end)
        return new_end

    def flush(self):
        for f in (self.log, self.offset_index, self.time_index):
            f.flush()

    def close(self):
        with OPEN_SEGMENTS.lock:
            OPEN_SEGMENTS.discard(self)
            files = self._files
            if files is not None:
                for f in (files[0], files[1].file, files[2].file):
                    f.close()

    def delete(self):
        self._deleted = True
        self.close()
        for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX):
            try:
                os.unlink(self.path(suffix))
            except FileNotFoundError:
                pass

    # -- reading -----------------------------------------------------------------------------
    def position_of(self, offset):
        """Byte position of the batch that holds ``offset`` (or the first after it)."""
        _, start = self.offset_index.lookup(offset)
        return find_position(self.log, start, offset)

    def read(self, offset, max_bytes, max_offset=None):
        """Whole batches from the one holding ``offset``; an empty view past the segment's data.
        With ``max_offset``: only batches that start below it (Kafka's maxPosition: a read
        bounded by the high watermark never returns the batch that holds it)."""
        pos = self.position_of(offset)
        end = fetch_end(self.log, pos, max_bytes)
        if max_offset is not None and max_offset < self.next_offset:
            end = max(pos, min(end, self.position_of(max_offset)))
        return self.log.view(pos, end)

    def offset_for_time(self, timestamp, min_offset):
        """First offset >= min_offset whose record timestamp >= ``timestamp``, or None."""
        found = self.record_for_time(timestamp, min_offset)
        return None if found is None else found[0]

    def record_for_time(self, timestamp, min_offset):
        """(offset, timestamp) of the first record >= min_offset whose timestamp >= ``timestamp``,
        or None."""
        _, after = self.time_index.lookup_before(timestamp)
        pos = self.position_of(max(after, min_offset))
        size = self.log.size
        while pos < size:
            pos = find_position_by_time(self.log, pos, timestamp)
            if pos >= size:
                return None
            end = fetch_end(self.log, pos, 0)
            for record in decode_records(self.log.view(pos, end), min_offset, decompress):
                if record.timestamp >= timestamp:
                    return record.offset, record.timestamp
            pos = end
        return None

    def max_timestamp_record(self, min_offset):
        """(offset, timestamp) of the first record >= min_offset carrying the largest timestamp
        of this segment's records >= min_offset, or None if there are none (ListOffsets
        MAX_TIMESTAMP, KIP-734).

        The segment's state (kept in the time index, so it survives a reopen, and rebuilt by
        recovery) names the batch with the largest maxTimestamp by its last offset: only that
        batch is decoded. Only when the log start cut that batch's best record away are the
        batch headers from ``min_offset`` on walked."""
        if self.is_empty or self.next_offset <= min_offset:
            return None
        pos = self.position_of(max(self.indexer.offset_of_max_timestamp, min_offset))
        found = self._first_record_at(pos, self.max_timestamp, min_offset)
        if found is not None:
            return found
        best_ts, best_pos, pos, size = None, None, self.position_of(min_offset), self.log.size
        while pos < size:
            header = read_header(self.log, pos)
            ts = header.max_timestamp
            if header.base_offset < min_offset:   # straddles the log start: its own records
                end = fetch_end(self.log, pos, 0)
                ts = max((r.timestamp for r in decode_records(self.log.view(pos, end),
                                                               min_offset, decompress)),
                         default=None)
            if ts is not None and (best_ts is None or ts > best_ts):
                best_ts, best_pos = ts, pos
            pos += header.size
        return None if best_pos is None else self._first_record_at(best_pos, best_ts, min_offset)

    def _first_record_at(self, pos, timestamp, min_offset):
        """(offset, timestamp) of the first record >= min_offset with exactly ``timestamp`` in
        the batch at ``pos``, or None."""
        if pos >= self.log.size:
            return None
        end = fetch_end(self.log, pos, 0)
        for record in decode_records(self.log.view(pos, end), min_offset, decompress):
            if record.timestamp == timestamp:
                return record.offset, record.timestamp
        return None

    def __repr__(self):
        state = "active" if self.active else "sealed"
        return f"<LogSegment {self.base_offset} {state} size={self.size} next={self.next_offset}>"
