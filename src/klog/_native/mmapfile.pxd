cdef class MappedFile:
    cdef readonly object path
    cdef int fd
    cdef unsigned char* base
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t reserved
    cdef readonly Py_ssize_t size
    cdef readonly Py_ssize_t synced
    cdef readonly bint writable
    cdef readonly Py_ssize_t exports
    cdef Py_ssize_t reserve_step
    cdef int busy            # syscalls running without the GIL on fd
    cdef int doomed_fd       # closed while busy: closed by the last one out
    cdef bint closed_ro      # close() was called (a read-only file has no fd to tell)

    cdef int ensure(self, Py_ssize_t n) except -1
    cdef int write(self, const unsigned char* data, Py_ssize_t n) except -1
    cdef int check_open(self) except -1
    cdef int enter(self) except -1
    cdef void leave(self) noexcept
