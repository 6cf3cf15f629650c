from libc.stdint cimport int32_t, uint32_t

# Java's Utils.murmur2 of data[:n], as the signed int Java returns.
cdef int32_t murmur2(const unsigned char* data, Py_ssize_t n) noexcept nogil

# IEEE CRC-32 (zlib.crc32) of data[:n]: librdkafka's consistent hash.
cdef uint32_t crc32(const unsigned char* data, Py_ssize_t n) noexcept nogil
