# C declarations the native modules need beyond Cython's bundled posix/*.pxd.
from posix.types cimport off_t

cdef extern from "<fcntl.h>" nogil:
    int posix_fallocate(int fd, off_t offset, off_t length)
    enum: O_CLOEXEC

cdef extern from "<sys/mman.h>" nogil:
    """
    #ifndef MADV_POPULATE_WRITE
    #define MADV_POPULATE_WRITE 23
    #endif
    """
    enum: MADV_POPULATE_WRITE

cdef extern from "<unistd.h>" nogil:
    int fdatasync(int fd)
