"""Walking the batches of a segment: find a batch by offset or time, and validate + index.

Only batch headers are read (61 bytes each), so a lookup is a binary search in the index and a
short walk of at most ``index.interval.bytes``. ``Indexer.scan`` is the one place that turns
appended bytes into index entries: a live append and recovery after a crash both go through it,
so an index rebuilt by recovery is exactly the one the appends would have written.
"""
from libc.stdint cimport INT32_MAX, int32_t, int64_t, uint32_t

from klog._native.batch cimport (
    BASE_OFFSET, CRC, HEADER_SIZE, LAST_OFFSET_DELTA, LENGTH, LOG_OVERHEAD, MAGIC, MAX_TIMESTAMP,
    ATTRIBUTES,
)
from klog._native.crc32c cimport crc32c_update
from klog._native.index cimport OffsetIndex, TimeIndex
from klog._native.mmapfile cimport MappedFile
from klog._native.wire cimport load_i32, load_i64, load_u32

import os

from klog.errors import CorruptRecordError


cdef inline Py_ssize_t batch_size(const unsigned char* p) noexcept nogil:
    return <Py_ssize_t>load_i32(p + LENGTH) + LOG_OVERHEAD


cdef inline bint bad_size(Py_ssize_t size, Py_ssize_t left) noexcept nogil:
    """A batch size that cannot be stepped over: shorter than a header (a step backwards, or of
    zero bytes: forever) or longer than the bytes left in the file."""
    return size < HEADER_SIZE or size > left


cdef object bad_length(MappedFile f, Py_ssize_t pos):
    """The walkers below trust framing that recovery or the clean shutdown vouched for; a length
    that does not fit (damage in a segment that was not revalidated) would walk backwards, out of
    the file or forever, so it is an error, never a step."""
    cdef const unsigned char* p = f.base + pos
    return CorruptRecordError(
        f"{os.fspath(f.path)}: the batch at byte {pos} (header offsets "
        f"{load_i64(p + BASE_OFFSET)}..{load_i64(p + BASE_OFFSET) + load_i32(p + LAST_OFFSET_DELTA)})"
        f" declares an impossible length {load_i32(p + LENGTH)} ({f.size - pos} bytes left in "
        "the file); the segment is damaged")


cdef Py_ssize_t walk(MappedFile f, Py_ssize_t start, int64_t target, bint by_time) noexcept:
    """From ``start``, the first batch whose last offset (or, by_time, maxTimestamp) >= target;
    the end of the data if there is none; ``-1 - pos`` if the batch at pos has an impossible
    length (see bad_length: stepping by it would walk backwards, or forever)."""
    cdef const unsigned char* p
    cdef Py_ssize_t pos = start, end = f.size
    cdef int64_t key
    with nogil:
        while end - pos >= HEADER_SIZE:
            p = f.base + pos
            if by_time:
                key = load_i64(p + MAX_TIMESTAMP)
            else:
                key = load_i64(p + BASE_OFFSET) + load_i32(p + LAST_OFFSET_DELTA)
            if bad_size(batch_size(p), end - pos):
                return -1 - pos
            if key >= target:
                return pos
            pos += batch_size(p)
    return end


cdef Py_ssize_t walked(MappedFile f, Py_ssize_t pos) except -1:
    if pos < 0:
        raise bad_length(f, -1 - pos)
    return pos


def find_position(MappedFile f, Py_ssize_t start, int64_t target):
    """Position of the first batch at or after ``start`` whose last offset >= target (else size)."""
    return walked(f, walk(f, start, target, False))


def find_position_by_time(MappedFile f, Py_ssize_t start, int64_t timestamp):
    """Position of the first batch at or after ``start`` with maxTimestamp >= timestamp (else size)."""
    return walked(f, walk(f, start, timestamp, True))


def fetch_end(MappedFile f, Py_ssize_t start, Py_ssize_t max_bytes):
    """End of the whole batches from ``start`` that fit in ``max_bytes``; at least one batch, so a
    reader always makes progress (Kafka's fetch rule, KIP-74)."""
    cdef const unsigned char* base = f.base
    cdef Py_ssize_t pos = start, end = f.size, size
    cdef bint bad = False
    with nogil:
        while end - pos >= HEADER_SIZE:
            size = batch_size(base + pos)
            if bad_size(size, end - pos):
                bad = pos == start  # else: hand out the whole batches before the damage
                break
            if pos > start and pos + size - start > max_bytes:
                break
            pos += size
    if bad:
        raise bad_length(f, pos)
    return min(pos, end)


cdef class Indexer:
    """Validates and indexes batches as they are appended or recovered; holds a segment's state:
    where valid data ends, the next offset, the largest timestamp and its offset."""
    cdef public OffsetIndex offset_index
    cdef public TimeIndex time_index
    cdef readonly Py_ssize_t interval
    cdef public Py_ssize_t bytes_since_entry
    cdef public Py_ssize_t end
    cdef public int64_t next_offset
    cdef public int64_t max_timestamp
    cdef public int64_t offset_of_max_timestamp
    cdef public bint build

    def __init__(self, OffsetIndex offset_index, TimeIndex time_index, Py_ssize_t interval,
                 int64_t next_offset, bint build=True):
        self.offset_index = offset_index
        self.time_index = time_index
        self.interval = interval
        self.bytes_since_entry = 0
        self.end = 0
        self.next_offset = next_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = next_offset
        self.build = build

    cdef bint indexes_full(self):
        # Appends roll the segment before an index fills; recovery with a smaller
        # segment.index.bytes than the data was written with just indexes more sparsely.
        return (self.offset_index.file.size // self.offset_index.entry_size >= self.offset_index.max_entries
                or self.time_index.file.size // self.time_index.entry_size >= self.time_index.max_entries)

    def scan(self, MappedFile f, Py_ssize_t start, Py_ssize_t stop, bint check_crc):
        """Walk the batches in [start, stop); stop at the first invalid one.

        Returns None when every byte was a valid batch, else (position, reason, base_offset,
        last_offset) of the first bad one; reason is one of "truncated", "zeros", "length",
        "magic", "crc", "offsets". ``end`` and the offsets are left after the last good batch.
        """
        cdef const unsigned char* base = f.base
        cdef const unsigned char* p
        cdef Py_ssize_t pos = start, size
        cdef int32_t length, last_delta
        cdef int64_t base_offset = -1, last_offset = -1, ts
        cdef str reason = None
        if stop > f.size or start < 0 or start > stop:
            raise ValueError(f"scan range [{start}, {stop}) is outside the file's {f.size} bytes")
        while pos < stop:
            p = base + pos
            if stop - pos < HEADER_SIZE:
                # Never read past ``stop``: it may be the end of the file, and a mapped page past
                # EOF is SIGBUS (a batch starting 1-3 bytes before a page-aligned EOF).
                reason = "zeros" if stop - pos >= 4 and load_u32(p) == 0 else "truncated"
                break
            length = load_i32(p + LENGTH)
            base_offset = load_i64(p + BASE_OFFSET)
            last_delta = load_i32(p + LAST_OFFSET_DELTA)
            last_offset = base_offset + last_delta
            if length == 0 and base_offset == 0:
                reason = "zeros"
                break
            if length < HEADER_SIZE - LOG_OVERHEAD:
                reason = "length"
                break
            size = <Py_ssize_t>length + LOG_OVERHEAD
            if size > stop - pos:
                reason = "truncated"
                break
            if p[MAGIC] != 2:
                reason = "magic"
                break
            if check_crc and load_u32(p + CRC) != crc32c_update(0, p + ATTRIBUTES, size - ATTRIBUTES):
                reason = "crc"
                break
            if (base_offset < self.next_offset or last_delta < 0
                    or last_offset - self.offset_index.base_offset > INT32_MAX):
                reason = "offsets"
                break
            ts = load_i64(p + MAX_TIMESTAMP)
            if ts > self.max_timestamp:
                self.max_timestamp = ts
                self.offset_of_max_timestamp = last_offset
            if self.build and self.bytes_since_entry > self.interval and not self.indexes_full():
                self.offset_index.append_entry(last_offset, pos)
                self.time_index.append_entry(self.max_timestamp, self.offset_of_max_timestamp)
                self.bytes_since_entry = 0
            self.bytes_since_entry += size
            self.next_offset = last_offset + 1
            pos += size
            self.end = pos
        if reason is None:
            return None
        return (pos, reason, base_offset, last_offset)
