# Byte-level helpers shared by the native modules: big-endian loads/stores and Kafka's
# zigzag varints (DefaultRecord, utils/ByteUtils.java). `cdef inline` in a .pxd so every
# module that cimports them inlines them; callers check bounds before calling.
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t


cdef inline uint16_t load_u16(const unsigned char* p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]


cdef inline uint32_t load_u32(const unsigned char* p) noexcept nogil:
    return ((<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16)
            | (<uint32_t>p[2] << 8) | <uint32_t>p[3])


cdef inline uint64_t load_u64(const unsigned char* p) noexcept nogil:
    return (<uint64_t>load_u32(p) << 32) | load_u32(p + 4)


cdef inline int16_t load_i16(const unsigned char* p) noexcept nogil:
    return <int16_t>load_u16(p)


cdef inline int32_t load_i32(const unsigned char* p) noexcept nogil:
    return <int32_t>load_u32(p)


cdef inline int64_t load_i64(const unsigned char* p) noexcept nogil:
    return <int64_t>load_u64(p)


cdef inline void store_u16(unsigned char* p, uint16_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 8)
    p[1] = <uint8_t>v


cdef inline void store_u32(unsigned char* p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 24)
    p[1] = <uint8_t>(v >> 16)
    p[2] = <uint8_t>(v >> 8)
    p[3] = <uint8_t>v


cdef inline void store_u64(unsigned char* p, uint64_t v) noexcept nogil:
    store_u32(p, <uint32_t>(v >> 32))
    store_u32(p + 4, <uint32_t>v)


cdef inline size_t uvarint_size(uint64_t v) noexcept nogil:
    cdef size_t n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


cdef inline uint64_t zigzag(int64_t v) noexcept nogil:
    return (<uint64_t>v << 1) ^ <uint64_t>(v >> 63)


cdef inline int64_t unzigzag(uint64_t v) noexcept nogil:
    return <int64_t>(v >> 1) ^ -<int64_t>(v & 1)


cdef inline size_t varint_size(int64_t v) noexcept nogil:
    return uvarint_size(zigzag(v))


cdef inline unsigned char* put_uvarint(unsigned char* p, uint64_t v) noexcept nogil:
    while v >= 0x80:
        p[0] = <uint8_t>(v | 0x80)
        v >>= 7
        p += 1
    p[0] = <uint8_t>v
    return p + 1


cdef inline unsigned char* put_varint(unsigned char* p, int64_t v) noexcept nogil:
    return put_uvarint(p, zigzag(v))


cdef inline const unsigned char* get_varint(const unsigned char* p, const unsigned char* end,
                                            int64_t* out) noexcept nogil:
    """Decode one zigzag varint (at most 10 bytes); NULL if it runs past `end` or is too long."""
    cdef uint64_t v = 0
    cdef int shift = 0
    cdef uint8_t b
    while p < end and shift < 64:
        b = p[0]
        p += 1
        v |= <uint64_t>(b & 0x7F) << shift
        if b < 0x80:
            out[0] = unzigzag(v)
            return p
        shift += 7
    return NULL
