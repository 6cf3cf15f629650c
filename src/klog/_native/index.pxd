from libc.stdint cimport int64_t
from klog._native.mmapfile cimport MappedFile


cdef class Index:
    cdef readonly MappedFile file
    cdef readonly int64_t base_offset
    cdef readonly Py_ssize_t max_entries
    cdef readonly Py_ssize_t entry_size


cdef class OffsetIndex(Index):
    cdef int64_t offset_at(self, Py_ssize_t i) noexcept
    cdef int64_t position_at(self, Py_ssize_t i) noexcept
    cdef int append_entry(self, int64_t offset, int64_t position) except -1
    cdef Py_ssize_t lookup_slot(self, int64_t target) noexcept


cdef class TimeIndex(Index):
    cdef int64_t timestamp_at(self, Py_ssize_t i) noexcept
    cdef int64_t offset_at(self, Py_ssize_t i) noexcept
    cdef int append_entry(self, int64_t timestamp, int64_t offset) except -1
    cdef Py_ssize_t lookup_slot(self, int64_t timestamp) noexcept
