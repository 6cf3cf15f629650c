"""Sparse offset and time indexes in Kafka's entry formats (OffsetIndex.java, TimeIndex.java).

Offset index: 8-byte big-endian entries, int32 (offset - base_offset), int32 byte position in the
segment's .log. Time index: 12-byte entries, int64 timestamp, int32 (offset - base_offset); an
entry is added only when its timestamp is greater than the last one's. Entries are appended every
``index.interval.bytes`` of log; both files are mapped for
lookups and grow up to ``max_bytes``. They carry no checksum: after an unclean stop they are
rebuilt from the log, and ``sanity_check`` catches a file that does not fit its segment.
"""
from libc.stdint cimport INT32_MAX, int32_t, int64_t, uint32_t, uint64_t

from klog._native.mmapfile cimport MappedFile
from klog._native.wire cimport load_i32, load_i64, store_u32, store_u64

from klog.errors import CorruptIndexError

INDEX_RESERVE_STEP = 64 << 10

import os

cdef enum:
    OFFSET_ENTRY = 8
    TIME_ENTRY = 12


cdef class Index:
    """What both indexes share (Kafka's AbstractIndex): a mapped file of fixed-size entries."""

    def __init__(self, path, int64_t base_offset, Py_ssize_t max_bytes, bint writable,
                 Py_ssize_t entry_size):
        self.base_offset = base_offset
        self.entry_size = entry_size
        self.max_entries = max(1, max_bytes // entry_size)
        self.file = MappedFile(path, writable, self.max_entries * entry_size, INDEX_RESERVE_STEP)
        if self.file.size % entry_size:
            # A torn last entry: drop it; recovery or sanity_check decides about the rest.
            self.file.set_size(self.file.size - self.file.size % entry_size)

    @property
    def entries(self):
        return self.file.size // self.entry_size

    @property
    def is_full(self):
        return self.file.size // self.entry_size >= self.max_entries

    def reset(self):
        self.file.truncate(0)

    def flush(self):
        self.file.flush()

    def trim(self):
        self.file.trim()

    def close(self):
        self.file.close()


cdef class OffsetIndex(Index):
    """Maps offsets to byte positions: ``lookup(t)`` is the last entry at or before t."""

    def __init__(self, path, int64_t base_offset, Py_ssize_t max_bytes=10 << 20, bint writable=True):
        Index.__init__(self, path, base_offset, max_bytes, writable, OFFSET_ENTRY)

    cdef int64_t offset_at(self, Py_ssize_t i) noexcept:
        return self.base_offset + load_i32(self.file.base + i * OFFSET_ENTRY)

    cdef int64_t position_at(self, Py_ssize_t i) noexcept:
        return <uint32_t>load_i32(self.file.base + i * OFFSET_ENTRY + 4)

    def entry(self, Py_ssize_t i):
        if i < 0 or i >= self.file.size // OFFSET_ENTRY:
            raise IndexError(f"offset index entry {i} out of range")
        return (self.offset_at(i), self.position_at(i))

    @property
    def last_offset(self):
        cdef Py_ssize_t n = self.file.size // OFFSET_ENTRY
        return self.offset_at(n - 1) if n else self.base_offset

    cdef int append_entry(self, int64_t offset, int64_t position) except -1:
        cdef Py_ssize_t n = self.file.size // OFFSET_ENTRY
        cdef unsigned char entry[TIME_ENTRY]
        if n >= self.max_entries:
            raise CorruptIndexError(f"{os.fspath(self.file.path)}: index is full ({n} entries)")
        if offset - self.base_offset > INT32_MAX or offset < self.base_offset or not 0 <= position <= 0xFFFFFFFF:
            raise ValueError(f"offset {offset} / position {position} do not fit this index")
        if n and (offset <= self.offset_at(n - 1) or position <= self.position_at(n - 1)):
            raise ValueError(f"index entry ({offset}, {position}) is not after the last one")
        store_u32(entry, <uint32_t>(offset - self.base_offset))
        store_u32(entry + 4, <uint32_t>position)
        self.file.write(entry, OFFSET_ENTRY)
        return 0

    def append(self, int64_t offset, int64_t position):
        self.append_entry(offset, position)

    cdef Py_ssize_t lookup_slot(self, int64_t target) noexcept:
        """Index of the last entry whose offset <= target; -1 if none."""
        cdef Py_ssize_t lo = 0, hi = self.file.size // OFFSET_ENTRY, mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.offset_at(mid) <= target:
                lo = mid + 1
            else:
                hi = mid
        return lo - 1

    def lookup(self, int64_t target):
        """(offset, position) of the last entry at or before ``target``; (base_offset, 0) if none."""
        cdef Py_ssize_t i = self.lookup_slot(target)
        if i < 0:
            return (self.base_offset, 0)
        return (self.offset_at(i), self.position_at(i))

    def truncate_to(self, int64_t offset):
        """Drop every entry whose offset >= ``offset``."""
        cdef Py_ssize_t keep = self.lookup_slot(offset - 1) + 1
        self.file.truncate(keep * OFFSET_ENTRY)

    def sanity_check(self, Py_ssize_t log_size):
        """Raise CorruptIndexError unless entries increase and point inside the log."""
        cdef Py_ssize_t n = self.file.size // OFFSET_ENTRY, i
        for i in range(n):
            if self.position_at(i) >= log_size or (
                    i and (self.offset_at(i) <= self.offset_at(i - 1)
                           or self.position_at(i) <= self.position_at(i - 1))):
                raise CorruptIndexError(
                    f"{os.fspath(self.file.path)}: entry {i} ({self.offset_at(i)}, "
                    f"{self.position_at(i)}) is out of order or past the log's {log_size} bytes")


cdef class TimeIndex(Index):
    """Maps timestamps to offsets: ``lookup_before(t)`` is the last entry with timestamp < t."""

    def __init__(self, path, int64_t base_offset, Py_ssize_t max_bytes=10 << 20, bint writable=True):
        Index.__init__(self, path, base_offset, max_bytes, writable, TIME_ENTRY)

    cdef int64_t timestamp_at(self, Py_ssize_t i) noexcept:
        return load_i64(self.file.base + i * TIME_ENTRY)

    cdef int64_t offset_at(self, Py_ssize_t i) noexcept:
        return self.base_offset + load_i32(self.file.base + i * TIME_ENTRY + 8)

    def entry(self, Py_ssize_t i):
        if i < 0 or i >= self.file.size // TIME_ENTRY:
            raise IndexError(f"time index entry {i} out of range")
        return (self.timestamp_at(i), self.offset_at(i))

    @property
    def last_entry(self):
        """(timestamp, offset) of the last entry; (-1, base_offset) when empty."""
        cdef Py_ssize_t n = self.file.size // TIME_ENTRY
        if n == 0:
            return (-1, self.base_offset)
        return (self.timestamp_at(n - 1), self.offset_at(n - 1))

    cdef int append_entry(self, int64_t timestamp, int64_t offset) except -1:
        """Append (timestamp, offset) if timestamp is greater than the last entry's; else no-op."""
        cdef Py_ssize_t n = self.file.size // TIME_ENTRY
        cdef unsigned char entry[TIME_ENTRY]
        if n and timestamp <= self.timestamp_at(n - 1):
            return 0
        if n >= self.max_entries:
            raise CorruptIndexError(f"{os.fspath(self.file.path)}: time index is full ({n} entries)")
        if offset - self.base_offset > INT32_MAX or offset < self.base_offset:
            raise ValueError(f"offset {offset} does not fit this index")
        if n and offset < self.offset_at(n - 1):
            raise ValueError(f"time index offset {offset} is before the last entry's")
        store_u64(entry, <uint64_t>timestamp)
        store_u32(entry + 8, <uint32_t>(offset - self.base_offset))
        self.file.write(entry, TIME_ENTRY)
        return 0

    def append(self, int64_t timestamp, int64_t offset):
        self.append_entry(timestamp, offset)

    cdef Py_ssize_t lookup_slot(self, int64_t timestamp) noexcept:
        """Index of the last entry whose timestamp < ``timestamp``; -1 if none."""
        cdef Py_ssize_t lo = 0, hi = self.file.size // TIME_ENTRY, mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.timestamp_at(mid) < timestamp:
                lo = mid + 1
            else:
                hi = mid
        return lo - 1

    def lookup_before(self, int64_t timestamp):
        """(timestamp, offset) of the last entry with timestamp < the given one; every record at
        or before that offset is older than ``timestamp``. (-1, base_offset) if none."""
        cdef Py_ssize_t i = self.lookup_slot(timestamp)
        if i < 0:
            return (-1, self.base_offset)
        return (self.timestamp_at(i), self.offset_at(i))

    def truncate_to(self, int64_t offset):
        """Drop every entry whose offset >= ``offset``."""
        cdef Py_ssize_t n = self.file.size // TIME_ENTRY
        while n and self.offset_at(n - 1) >= offset:
            n -= 1
        self.file.truncate(n * TIME_ENTRY)

    def sanity_check(self, int64_t next_offset):
        cdef Py_ssize_t n = self.file.size // TIME_ENTRY, i
        for i in range(n):
            if self.offset_at(i) >= next_offset or (i and (
                    self.timestamp_at(i) <= self.timestamp_at(i - 1)
                    or self.offset_at(i) < self.offset_at(i - 1))):
                raise CorruptIndexError(
                    f"{os.fspath(self.file.path)}: entry {i} ({self.timestamp_at(i)}, "
                    f"{self.offset_at(i)}) is out of order or past the log end {next_offset}")
