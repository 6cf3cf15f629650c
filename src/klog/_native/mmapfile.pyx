"""A file mapped into memory: appends are memcpy, reads are zero-copy views.

The mapping reserves ``capacity`` bytes of address space at open and never moves, so views handed
out stay valid while the file grows. Only bytes below ``reserved`` (the file's length, extended with
posix_fallocate before anything is written there) are ever touched: a page past EOF raises SIGBUS,
and so would a sparse page on a full disk. So a full disk is an OSError(ENOSPC) from ``append``,
before any byte is copied.

Views (buffer exports) keep the mapping alive after ``close``; shrinking the file under a live view
raises BufferError (as resizing an exported bytearray does) instead of leaving a view over
unmapped pages.

Concurrency: one writer at a time (the caller holds the log's lock); views may be read from any
thread, but only bytes below ``size`` at the time of the view are stable.
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from libc.errno cimport errno
from libc.string cimport memcpy, strerror
from posix.fcntl cimport O_CREAT, O_RDONLY, O_RDWR, open as c_open
from posix.mman cimport MAP_FAILED, MAP_SHARED, MS_SYNC, PROT_READ, PROT_WRITE, madvise, mmap, msync, munmap
from posix.stat cimport fstat, struct_stat
from posix.unistd cimport close as c_close, ftruncate

from klog._native.includes.posix cimport MADV_POPULATE_WRITE, O_CLOEXEC, fdatasync, posix_fallocate
from klog._native.wire cimport store_u64

import os

cdef Py_ssize_t PAGE = 4096
cdef unsigned char EMPTY[1]
DEFAULT_GROW_STEP = 8 << 20


cdef inline Py_ssize_t page_ceil(Py_ssize_t n) noexcept nogil:
    return (n + PAGE - 1) & ~(PAGE - 1)


cdef inline Py_ssize_t page_floor(Py_ssize_t n) noexcept nogil:
    return n & ~(PAGE - 1)


cdef object os_error(int err, object path):
    return OSError(err, strerror(err).decode(errors="replace"), os.fspath(path))


cdef class MappedFile:
    """A mapped file of ``size`` valid bytes; writable ones grow by ``grow_step`` up to ``capacity``."""

    def __cinit__(self):
        self.fd = -1
        self.base = NULL

    def __init__(self, path, bint writable=False, Py_ssize_t capacity=0,
                 Py_ssize_t grow_step=DEFAULT_GROW_STEP):
        cdef struct_stat st
        cdef void* addr
        cdef bytes bpath = os.fsencode(path)
        self.path = path
        self.writable = writable
        self.grow_step = max(PAGE, page_ceil(grow_step))
        self.fd = c_open(bpath, (O_RDWR | O_CREAT if writable else O_RDONLY) | O_CLOEXEC, 0o644)
        if self.fd < 0:
            raise os_error(errno, path)
        if fstat(self.fd, &st) != 0:
            raise os_error(errno, path)
        self.size = self.reserved = self.synced = st.st_size
        self.capacity = page_ceil(max(capacity, st.st_size)) if writable else st.st_size
        if self.capacity == 0:
            return
        addr = mmap(NULL, self.capacity, PROT_READ | PROT_WRITE if writable else PROT_READ,
                    MAP_SHARED, self.fd, 0)
        if addr == MAP_FAILED:
            raise os_error(errno, path)
        self.base = <unsigned char*>addr

    def __dealloc__(self):
        if self.base != NULL:
            munmap(self.base, self.capacity)
        if self.fd >= 0:
            c_close(self.fd)

    cdef int check_open(self) except -1:
        if self.fd < 0:
            raise ValueError(f"{os.fspath(self.path)}: file is closed")
        return 0

    cdef int ensure(self, Py_ssize_t n) except -1:
        """Make room for n more bytes: reserve disk blocks first, then pre-fault the pages."""
        cdef Py_ssize_t need = self.size + n, target
        cdef int err
        self.check_open()
        if not self.writable:
            raise ValueError(f"{os.fspath(self.path)}: opened read-only")
        if need <= self.reserved:
            return 0
        if need > self.capacity:
            raise ValueError(f"{os.fspath(self.path)}: {n} more bytes exceed the mapped capacity "
                             f"{self.capacity} (size {self.size})")
        target = min(self.capacity, max(page_ceil(need), self.reserved + self.grow_step))
        err = posix_fallocate(self.fd, self.reserved, target - self.reserved)
        if err != 0:
            raise os_error(err, self.path)
        # Fault the new pages in one call instead of one trap per 4 KiB page (Linux >= 5.14).
        madvise(self.base + page_floor(self.reserved), target - page_floor(self.reserved),
                MADV_POPULATE_WRITE)
        self.reserved = target
        return 0

    cdef unsigned char* claim(self, Py_ssize_t n) except NULL:
        """Pointer to n writable bytes at the end; ``size`` moves when the caller calls commit."""
        self.ensure(n)
        return self.base + self.size

    def commit(self, Py_ssize_t n):
        if n < 0 or self.size + n > self.reserved:
            raise ValueError("commit past the claimed space")
        self.size += n

    def append(self, data):
        """Copy ``data`` (bytes-like) to the end; return the position it starts at."""
        cdef Py_buffer src
        cdef Py_ssize_t pos = self.size
        PyObject_GetBuffer(data, &src, PyBUF_SIMPLE)
        try:
            if src.len:
                memcpy(self.claim(src.len), src.buf, src.len)
                self.size += src.len
        finally:
            PyBuffer_Release(&src)
        return pos

    def write_u64(self, Py_ssize_t pos, unsigned long long value):
        """Overwrite 8 bytes at ``pos`` (big-endian); used to assign a batch's base offset."""
        self.check_open()
        if not self.writable or pos < 0 or pos + 8 > self.size:
            raise ValueError(f"cannot write 8 bytes at {pos} (size {self.size})")
        store_u64(self.base + pos, value)

    def set_size(self, Py_ssize_t n):
        """Declare the valid length (after recovery found where the data really ends)."""
        if n < 0 or n > self.reserved:
            raise ValueError(f"size {n} is outside the file (length {self.reserved})")
        self.size = n
        self.synced = min(self.synced, n)

    def view(self, Py_ssize_t start=0, Py_ssize_t end=-1):
        """A read-only, zero-copy memoryview of bytes [start, end)."""
        if end < 0:
            end = self.size
        if start < 0 or start > end or end > self.size:
            raise IndexError(f"view [{start}, {end}) is outside [0, {self.size})")
        return memoryview(self)[start:end]

    def flush(self):
        """Make every byte below ``size`` durable (msync MS_SYNC + fdatasync)."""
        cdef Py_ssize_t start
        self.check_open()
        if not self.writable or self.synced == self.size:
            return
        start = page_floor(self.synced)
        if self.size > start and msync(self.base + start, self.size - start, MS_SYNC) != 0:
            raise os_error(errno, self.path)
        if fdatasync(self.fd) != 0:
            raise os_error(errno, self.path)
        self.synced = self.size

    def truncate(self, Py_ssize_t n):
        """Cut the file to n bytes. Refused while views are alive: they could cover the cut."""
        self.check_open()
        if n < 0 or n > self.size:
            raise ValueError(f"cannot truncate to {n} (size {self.size})")
        if n == self.size:
            return
        if self.exports:
            raise BufferError(f"{os.fspath(self.path)}: {self.exports} views of this file are "
                              "still alive; release them before truncating")
        if ftruncate(self.fd, n) != 0:
            raise os_error(errno, self.path)
        self.size = self.reserved = n
        self.synced = min(self.synced, n)

    def trim(self):
        """Give back the reserved space past ``size`` (views never reach past ``size``)."""
        self.check_open()
        if self.writable and self.reserved > self.size:
            if ftruncate(self.fd, self.size) != 0:
                raise os_error(errno, self.path)
            self.reserved = self.size

    def close(self):
        """Trim and close the file; the mapping itself lives until the last view is gone."""
        if self.fd < 0:
            return
        try:
            self.trim()
        finally:
            c_close(self.fd)
            self.fd = -1

    @property
    def closed(self):
        return self.fd < 0

    def __len__(self):
        return self.size

    def __getbuffer__(self, Py_buffer* buffer, int flags):
        if flags & PyBUF_WRITABLE:
            raise BufferError("views of a mapped file are read-only")
        buffer.buf = self.base if self.base != NULL else EMPTY
        buffer.obj = self
        buffer.len = self.size
        buffer.readonly = 1
        buffer.itemsize = 1
        buffer.format = NULL
        buffer.ndim = 1
        buffer.shape = NULL
        buffer.strides = NULL
        buffer.suboffsets = NULL
        buffer.internal = NULL
        self.exports += 1

    def __releasebuffer__(self, Py_buffer* buffer):
        self.exports -= 1

    def __repr__(self):
        mode = "rw" if self.writable else "r"
        return f"<MappedFile {os.fspath(self.path)!r} {mode} size={self.size} reserved={self.reserved}>"
