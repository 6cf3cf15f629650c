"""A segment file: disk space reserved ahead with posix_fallocate, appended with pwrite, read
through a shared mapping as zero-copy views.

Reserving before writing means a full disk is an OSError(ENOSPC) before any byte of a batch is
written, and the file never has holes. Appends use pwrite rather than stores into a writable
mapping: measured here (``bench/append_path.py``, figures in BENCHMARKS.md), stores through
the mapping are slower and far less steady (a page fault and page_mkwrite per 4 KiB page) than
pwrite. The page cache is the same either way, so the read mapping sees every byte the
moment pwrite returns.

The mapping reserves ``capacity`` bytes of address space at open and never moves, so views stay
valid while the file grows. Views only ever cover bytes below ``size``, inside the file, so no view
can touch a page past EOF (SIGBUS). Space reserved past ``size`` is given back by ``trim`` (on
roll and close); after a crash it reads as zeros, which recovery treats as the end of the data.

Views (buffer exports) keep the mapping alive after ``close``; shrinking the file under a live view
raises BufferError (as resizing an exported bytearray does).

A read-only file keeps no descriptor: it is mapped and its fd closed at once (a mapping does
not need one), so sealed segments cost address space, not file handles.

Concurrency: one writer at a time (the caller holds the log's lock); views may be read from any
thread, but only bytes below ``size`` at the time of the view are stable. pwrite, pwritev,
posix_fallocate and fdatasync run without the GIL (so appends and flushes of different logs
overlap); the caller's buffer stays pinned by the buffer protocol meanwhile, and a ``close`` that
comes in during such a call leaves the fd to the call to close when it is done, so the number
is never reused under a running write.
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from libc.errno cimport ENOSPC, errno
from libc.string cimport memcpy, strerror
from posix.fcntl cimport O_CREAT, O_RDONLY, O_RDWR, open as c_open
from posix.mman cimport MAP_FAILED, MAP_SHARED, PROT_READ, mmap, munmap
from posix.stat cimport fstat, struct_stat
from posix.types cimport off_t
from posix.uio cimport iovec, pwritev
from posix.unistd cimport close as c_close, ftruncate, pwrite

from klog._native.includes.posix cimport O_CLOEXEC, fdatasync, posix_fallocate
from klog._native.wire cimport store_u32, store_u64

import os

cdef Py_ssize_t PAGE = 4096
cdef unsigned char EMPTY[1]
DEFAULT_RESERVE_STEP = 8 << 20


cdef inline Py_ssize_t page_ceil(Py_ssize_t n) noexcept nogil:
    return (n + PAGE - 1) & ~(PAGE - 1)


cdef object os_error(int err, object path):
    return OSError(err, strerror(err).decode(errors="replace"), os.fspath(path))


cdef class MappedFile:
    """``size`` valid bytes of a file; writable ones grow by appends up to ``capacity``."""

    def __cinit__(self):
        self.fd = -1
        self.doomed_fd = -1
        self.base = NULL

    def __init__(self, path, bint writable=False, Py_ssize_t capacity=0,
                 Py_ssize_t reserve_step=DEFAULT_RESERVE_STEP):
        cdef struct_stat st
        cdef void* addr
        cdef bytes bpath = os.fsencode(path)
        self.path = path
        self.writable = writable
        self.reserve_step = max(PAGE, page_ceil(reserve_step))
        self.fd = c_open(bpath, (O_RDWR | O_CREAT if writable else O_RDONLY) | O_CLOEXEC, 0o644)
        if self.fd < 0:
            raise os_error(errno, path)
        if fstat(self.fd, &st) != 0:
            raise os_error(errno, path)
        self.size = self.reserved = self.synced = st.st_size
        self.capacity = page_ceil(max(capacity, st.st_size)) if writable else st.st_size
        if self.capacity:
            addr = mmap(NULL, self.capacity, PROT_READ, MAP_SHARED, self.fd, 0)
            if addr == MAP_FAILED:
                raise os_error(errno, path)
            self.base = <unsigned char*>addr
        if not writable:
            c_close(self.fd)
            self.fd = -1

    def __dealloc__(self):
        if self.base != NULL:
            munmap(self.base, self.capacity)
        if self.fd >= 0:
            c_close(self.fd)
        if self.doomed_fd >= 0:
            c_close(self.doomed_fd)

    cdef int check_open(self) except -1:
        if self.fd < 0 and (self.writable or self.closed_ro):
            raise ValueError(f"{os.fspath(self.path)}: file is closed")
        return 0

    cdef int enter(self) except -1:
        """Before a syscall on ``fd`` without the GIL (see ``close``)."""
        self.check_open()
        self.busy += 1
        return 0

    cdef void leave(self) noexcept:
        self.busy -= 1
        if self.busy == 0 and self.doomed_fd >= 0:
            c_close(self.doomed_fd)
            self.doomed_fd = -1

    cdef int ensure(self, Py_ssize_t n) except -1:
        """Make sure n more bytes have disk space reserved (ENOSPC here, before writing)."""
        cdef Py_ssize_t need = self.size + n, target, step_target
        cdef int err = 0, fd
        cdef off_t start
        self.check_open()
        if not self.writable:
            raise ValueError(f"{os.fspath(self.path)}: opened read-only")
        if need > self.capacity:
            raise ValueError(f"{os.fspath(self.path)}: {n} more bytes exceed the mapped capacity "
                             f"{self.capacity} (size {self.size})")
        if need <= self.reserved:
            return 0
        fd, start = self.fd, self.reserved
        target = min(self.capacity, max(page_ceil(need), self.reserved + self.reserve_step))
        self.enter()
        with nogil:
            err = posix_fallocate(fd, start, target - start)
            if err == ENOSPC and target > page_ceil(need):
                # Less free than a whole step: reserve just this write, so the disk really is
                # full before the producer is told so (and writes resume with a little space).
                target = page_ceil(need)
                err = posix_fallocate(fd, start, target - start)
        self.leave()
        if err != 0:
            raise os_error(err, self.path)
        self.reserved = target
        return 0

    cdef int write(self, const unsigned char* data, Py_ssize_t n) except -1:
        """Append n bytes at ``size``; on error ``size`` stays, so nothing written becomes visible.
        ``data`` must stay valid meanwhile (callers hold a buffer or own the memory)."""
        cdef ssize_t done = 0, w = 0
        cdef int fd, err = 0
        cdef off_t pos = self.size
        self.ensure(n)
        fd = self.fd
        self.enter()
        with nogil:
            while done < n:
                w = pwrite(fd, data + done, n - done, pos + done)
                if w < 0:
                    err = errno   # before anything else can touch errno
                    break
                done += w
        self.leave()
        if err:
            raise os_error(err, self.path)
        self.size += n
        return 0

    def append(self, data):
        """Append ``data`` (bytes-like); return the position it starts at."""
        cdef Py_buffer src
        cdef Py_ssize_t pos = self.size
        PyObject_GetBuffer(data, &src, PyBUF_SIMPLE)   # pins the bytes while the GIL is released
        try:
            self.write(<const unsigned char*>src.buf, src.len)
        finally:
            PyBuffer_Release(&src)
        return pos

    def append_batch(self, data, long long base_offset, leader_epoch=None):
        """Append a record batch with its baseOffset (bytes 0..7) and, when ``leader_epoch`` is
        given, its partitionLeaderEpoch (bytes 12..15) replaced, in one pwritev, without
        touching the caller's buffer: neither field is covered by the CRC. Returns the position
        it starts at."""
        cdef Py_buffer src
        cdef Py_ssize_t pos = self.size, done = 0, length
        cdef Py_ssize_t head_len = 8 if leader_epoch is None else 16
        cdef unsigned char head[16]
        cdef iovec iov[2]
        cdef ssize_t w = 0
        cdef int fd, err = 0
        cdef int epoch = 0 if leader_epoch is None else leader_epoch
        cdef const char* body
        PyObject_GetBuffer(data, &src, PyBUF_SIMPLE)   # pins the bytes while the GIL is released
        try:
            if src.len < head_len:
                raise ValueError(f"a record batch is longer than {head_len} bytes")
            self.ensure(src.len)
            store_u64(head, <unsigned long long>base_offset)
            body, length, fd = <const char*>src.buf, src.len, self.fd
            if head_len == 16:
                memcpy(head + 8, body + 8, 4)    # batchLength, as sent
                store_u32(head + 12, <unsigned int>epoch)
            iov[0].iov_base = head
            iov[0].iov_len = head_len
            iov[1].iov_base = <char*>body + head_len
            iov[1].iov_len = length - head_len
            self.enter()
            with nogil:
                w = pwritev(fd, iov, 2, pos)
                if w < 0:
                    err = errno
                else:
                    done = w
                    while done < length:  # short write: finish it plainly
                        if done < head_len:
                            w = pwrite(fd, head + done, head_len - done, pos + done)
                        else:
                            w = pwrite(fd, body + done, length - done, pos + done)
                        if w < 0:
                            err = errno
                            break
                        done += w
            self.leave()
            if err:
                raise os_error(err, self.path)
            self.size += length
        finally:
            PyBuffer_Release(&src)
        return pos

    def write_u64(self, Py_ssize_t pos, unsigned long long value):
        """Overwrite 8 bytes at ``pos`` (big-endian)."""
        cdef unsigned char buf[8]
        self.check_open()
        if not self.writable or pos < 0 or pos + 8 > self.size:
            raise ValueError(f"cannot write 8 bytes at {pos} (size {self.size})")
        store_u64(buf, value)
        if pwrite(self.fd, buf, 8, pos) != 8:
            raise os_error(errno, self.path)

    def preallocate(self):
        """Reserve the whole capacity on disk now (posix_fallocate); trimmed again on close."""
        cdef int err
        self.check_open()
        if self.writable and self.capacity > self.reserved:
            err = posix_fallocate(self.fd, self.reserved, self.capacity - self.reserved)
            if err != 0:
                raise os_error(err, self.path)
            self.reserved = self.capacity

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
        """Make every byte below ``size`` durable (fdatasync: the data and the file length)."""
        cdef Py_ssize_t size = self.size
        cdef int fd, rc, err = 0
        if not self.writable or self.synced == size:
            return
        self.check_open()
        fd = self.fd
        self.enter()
        with nogil:
            rc = fdatasync(fd)
            if rc != 0:
                err = errno
        self.leave()
        if rc != 0:
            raise os_error(err, self.path)
        # Another flush may have synced more meanwhile (appends go on while this one waits).
        if size > self.synced:
            self.synced = size

    def truncate(self, Py_ssize_t n):
        """Cut the file to n bytes. Refused while views are alive: they could cover the cut."""
        self.check_open()
        if n < 0 or n > self.size:
            raise ValueError(f"cannot truncate to {n} (size {self.size})")
        if n == self.size and self.reserved == n:
            return
        if self.exports and n < self.size:
            raise BufferError(f"{os.fspath(self.path)}: {self.exports} views of this file are "
                              "still alive; release them before truncating")
        if ftruncate(self.fd, n) != 0:
            raise os_error(errno, self.path)
        self.size = self.reserved = n
        # The new length is durable only after an fdatasync: without one, a power loss could
        # bring the cut (valid, CRC-correct) batches back. So the next flush must sync.
        self.synced = -1

    def trim(self):
        """Give back space past ``size`` (views never reach past ``size``)."""
        self.check_open()
        if self.writable and self.reserved > self.size:
            if ftruncate(self.fd, self.size) != 0:
                raise os_error(errno, self.path)
            self.reserved = self.size

    def close(self):
        """Trim and close the file; the mapping itself lives until the last view is gone."""
        self.closed_ro = True
        if self.fd < 0:
            return
        try:
            self.trim()
        finally:
            if self.busy:
                # A flush or write on another thread is using the fd without the GIL: it
                # closes it when done (``leave``), so the number is not reused under it.
                self.doomed_fd = self.fd
            else:
                c_close(self.fd)
            self.fd = -1

    @property
    def closed(self):
        return self.fd < 0 and (self.writable or self.closed_ro)

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
