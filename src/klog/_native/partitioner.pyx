"""Key -> partition hashing, compatible with the Java client and with librdkafka.

Java client: ``Utils.murmur2`` (clients/.../common/utils/Utils.java) and
``BuiltInPartitioner.partitionForKey``::

    m = 0x5bd1e995, r = 24, h = 0x9747b28c ^ len(key)       (all arithmetic mod 2**32)
    each little-endian 4-byte word k:  k *= m; k ^= k >>> r; k *= m; h *= m; h ^= k
    tail, falling through:  3: h ^= b[2] << 16;  2: h ^= b[1] << 8;  1: h ^= b[0]; h *= m
    h ^= h >>> 13; h *= m; h ^= h >>> 15
    partition = (h & 0x7fffffff) % num_partitions

Java returns ``h`` as a signed int, and so does :func:`murmur2` here; kafka-python and aiokafka
return the same bits unsigned (``h & 0xffffffff``). The partition masks the sign bit
(``Utils.toPositive``); ``abs`` would send most negative hashes elsewhere.

Published vectors, signed (unsigned): ``b"kafka"`` -798503068 (0xd067cf64), ``b"1234"``
-1614185708 (0x9fc97b14), ``b""`` 275646681 (0x106e08d9) from librdkafka's rdmurmur2.c;
``b"21"`` -973932308, ``b"foobar"`` -790332482, ``b"abc"`` 479470107 from Kafka's
UtilsTest.testMurmur2.

librdkafka's default partitioner, ``consistent_random`` (src/rdkafka_msg.c): IEEE CRC-32 of
the key (zlib's: reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF), taken
unsigned, ``% partition_cnt``; empty and null keys go to a random partition. Its
``murmur2_random`` is the Java scheme. With default settings the two clients send the same key to
different partitions.

Null keys: every ``partition*`` function returns -1 for a ``None`` key (and the CRC ones for an
empty key too) instead of choosing; the producer applies its own null-key policy (sticky
partitioning, KIP-480/KIP-794). Keys are the serialized bytes: ``bytes`` is the fast path, any
other contiguous buffer is read as raw bytes, ``str`` is refused rather than silently encoded.

All functions are pure and hold the GIL; :func:`partition_keys` returns a ``list`` of ints (see
there for why not an ``array``).
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_GET_SIZE
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.sequence cimport PySequence_Check, PySequence_Fast
from cpython.unicode cimport PyUnicode_Check
from libc.stdint cimport INT32_MAX, int32_t, uint32_t

from operator import index as _index


cdef extern from "Python.h":
    # Borrowed references, no checks: only used on the result of PySequence_Fast.
    Py_ssize_t PySequence_Fast_GET_SIZE(object seq)
    PyObject* PySequence_Fast_GET_ITEM(object seq, Py_ssize_t i)


# ---------------------------------------------------------------------------------------------
# Hashes

cdef inline uint32_t _murmur2_u32(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    # Unsigned arithmetic wraps mod 2**32 like Java's int; >> on it is Java's >>>.
    cdef uint32_t m = 0x5bd1e995u
    cdef int r = 24
    cdef uint32_t h = 0x9747b28cu ^ <uint32_t>n   # Java: seed ^ length
    cdef uint32_t k
    cdef Py_ssize_t words = n >> 2
    cdef Py_ssize_t i
    for i in range(words):
        # Byte-wise little-endian load: safe for any alignment and host byte order, and
        # compilers fuse it into a single load on little-endian CPUs.
        k = (<uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16)
             | (<uint32_t>p[3] << 24))
        k *= m
        k ^= k >> r
        k *= m
        h *= m
        h ^= k
        p += 4
    n &= 3
    if n == 3:
        h ^= <uint32_t>p[2] << 16
    if n >= 2:
        h ^= <uint32_t>p[1] << 8
    if n >= 1:
        h ^= p[0]
        h *= m
    h ^= h >> 13
    h *= m
    h ^= h >> 15
    return h


cdef int32_t murmur2(const unsigned char* data, Py_ssize_t n) noexcept nogil:
    """Java's Utils.murmur2 of data[:n], as the signed int Java returns."""
    return <int32_t>_murmur2_u32(data, n)


cdef inline int32_t _murmur2_partition(const unsigned char* p, Py_ssize_t n,
                                       uint32_t num_partitions) noexcept nogil:
    return <int32_t>((_murmur2_u32(p, n) & 0x7fffffffu) % num_partitions)


# Slicing-by-8 tables for the reflected IEEE polynomial; row 0 is the classic byte table and
# row j advances a byte through j further zero bytes, so eight input bytes fold per step.
cdef uint32_t _crc_table[8][256]


cdef void _crc_init() noexcept nogil:
    cdef uint32_t c
    cdef int i, j
    for i in range(256):
        c = <uint32_t>i
        for j in range(8):
            c = (c >> 1) ^ (0xEDB88320u if c & 1 else 0u)
        _crc_table[0][i] = c
    for i in range(256):
        c = _crc_table[0][i]
        for j in range(1, 8):
            c = (c >> 8) ^ _crc_table[0][c & 0xff]
            _crc_table[j][i] = c


_crc_init()


cdef uint32_t crc32(const unsigned char* data, Py_ssize_t n) noexcept nogil:
    """IEEE CRC-32 of data[:n], equal to ``zlib.crc32``."""
    cdef uint32_t c = 0xFFFFFFFFu
    while n >= 8:
        c ^= (<uint32_t>data[0] | (<uint32_t>data[1] << 8) | (<uint32_t>data[2] << 16)
              | (<uint32_t>data[3] << 24))
        c = (_crc_table[7][c & 0xff] ^ _crc_table[6][(c >> 8) & 0xff]
             ^ _crc_table[5][(c >> 16) & 0xff] ^ _crc_table[4][c >> 24]
             ^ _crc_table[3][data[4]] ^ _crc_table[2][data[5]]
             ^ _crc_table[1][data[6]] ^ _crc_table[0][data[7]])
        data += 8
        n -= 8
    while n > 0:
        c = (c >> 8) ^ _crc_table[0][(c ^ data[0]) & 0xff]
        data += 1
        n -= 1
    return c ^ 0xFFFFFFFFu


cdef inline int32_t _crc32_partition(const unsigned char* p, Py_ssize_t n,
                                     uint32_t num_partitions) noexcept nogil:
    if n == 0:
        return -1  # librdkafka: empty key -> random partition, the caller's choice
    return <int32_t>(crc32(p, n) % num_partitions)


ctypedef int32_t (*_partition_fn)(const unsigned char*, Py_ssize_t, uint32_t) noexcept nogil


# ---------------------------------------------------------------------------------------------
# Argument handling

cdef uint32_t _num_partitions(object n) except 0:
    """num_partitions as a C value in [1, INT32_MAX], or ValueError."""
    cdef int overflow = 0
    cdef long long v
    if n is True or n is False:
        raise ValueError(f"num_partitions must be an int >= 1, got {n!r} (bool)")
    if not PyLong_Check(n):
        try:
            n = _index(n)  # numpy integers and other __index__ types are fine
        except TypeError:
            raise ValueError(
                f"num_partitions must be an int >= 1, got {type(n).__name__} {n!r}"
            ) from None
    v = PyLong_AsLongLongAndOverflow(n, &overflow)
    if overflow or v < 1:
        raise ValueError(f"num_partitions must be an int >= 1, got {n!r}")
    if v > INT32_MAX:
        raise ValueError(
            f"num_partitions must be at most {INT32_MAX} (partition ids are int32), got {n!r}"
        )
    return <uint32_t>v


cdef object _not_a_key(object key, str where, bint none_ok):
    if PyUnicode_Check(key):
        return TypeError(
            f"{where} is a str; keys are hashed as serialized bytes, so encode it first "
            f"(e.g. key.encode('utf-8'))"
        )
    allowed = "bytes, a bytes-like object or None" if none_ok else "bytes or a bytes-like object"
    return TypeError(f"{where} must be {allowed}, not {type(key).__name__}")


cdef int _key_buffer(object key, Py_buffer* view, str where, bint none_ok) except -1:
    """Export ``key`` as contiguous raw bytes (whatever its item format) into ``view``."""
    if PyUnicode_Check(key):  # str has no buffer; say why instead of "not a buffer"
        raise _not_a_key(key, where, none_ok)
    try:
        PyObject_GetBuffer(key, view, PyBUF_SIMPLE)
    except TypeError:
        raise _not_a_key(key, where, none_ok) from None
    except Exception as exc:
        # BufferError for non-contiguous memoryviews; numpy raises ValueError instead.
        raise BufferError(
            f"{where}: cannot read {type(key).__name__} as contiguous bytes: {exc}"
        ) from exc
    return 0


cdef int32_t _partition_buffer(_partition_fn fn, object key, uint32_t num_partitions,
                               str where) except -2:
    cdef Py_buffer view
    cdef int32_t part
    _key_buffer(key, &view, where, True)
    try:
        part = fn(<const unsigned char*>view.buf, view.len, num_partitions)
    finally:
        PyBuffer_Release(&view)
    return part


cdef inline int32_t _partition_one(_partition_fn fn, object key, object num_partitions) except -2:
    cdef uint32_t n = _num_partitions(num_partitions)
    if PyBytes_Check(key):
        return fn(<const unsigned char*>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), n)
    if key is None:
        return -1
    return _partition_buffer(fn, key, n, "key")


cdef enum:
    _SMALL_INTS = 256  # CPython preallocates ints -5..256
    _SHARED_INTS_MAX = 1 << 20


cdef object _partition_many(_partition_fn fn, object keys, object num_partitions):
    cdef uint32_t n = _num_partitions(num_partitions)
    cdef object seq, out, part, key
    cdef list ints = None
    cdef Py_ssize_t i, count
    cdef PyObject* item
    cdef int32_t p
    if PyBytes_Check(keys) or PyUnicode_Check(keys) or isinstance(keys, (bytearray, memoryview)):
        raise TypeError(
            f"keys must be a sequence of keys, not a single {type(keys).__name__}; "
            f"use the single-key function for one key"
        )
    if not PySequence_Check(keys):
        raise TypeError(
            f"keys must be a sequence (list, tuple, ...) of bytes-like keys or None, "
            f"not {type(keys).__name__}"
        )
    seq = PySequence_Fast(keys, "keys must be a sequence")  # a list or tuple is used as is
    count = PySequence_Fast_GET_SIZE(seq)
    out = PyList_New(count)
    if _SMALL_INTS < n <= _SHARED_INTS_MAX and n <= count:
        # Above CPython's small-int cache each PyLong_FromLong allocates; share one int object
        # per partition instead (2-4x faster for 1000 partitions, and less memory).
        ints = [None] * n
    for i in range(count):
        item = PySequence_Fast_GET_ITEM(seq, i)  # borrowed; no Python code runs until used
        if PyBytes_Check(<object>item):
            p = fn(<const unsigned char*>PyBytes_AS_STRING(<object>item),
                   PyBytes_GET_SIZE(<object>item), n)
        elif item == <PyObject*>None:
            p = -1
        else:
            # A buffer exporter can run Python code (3.12+ __buffer__) that mutates the list:
            # own the key while exporting it, and stop if the list changed size.
            key = <object>item
            p = _partition_buffer(fn, key, n, f"keys[{i}]")
            if PySequence_Fast_GET_SIZE(seq) != count:
                raise RuntimeError("keys changed size during partitioning")
        if ints is None or p < 0:
            part = p
        else:
            part = ints[p]
            if part is None:
                part = ints[p] = p
        Py_INCREF(part)
        PyList_SET_ITEM(out, i, part)  # steals the reference taken above
    return out


# ---------------------------------------------------------------------------------------------
# Python API

def partition_for_key(key, num_partitions):
    """Java's default partition for a serialized key: ``(murmur2(key) & 0x7fffffff) % n``.

    Returns -1 for a ``None`` key (the caller applies its null-key policy). An empty key is a
    real key and is hashed, as in Java. ``num_partitions`` must be an int >= 1 (ValueError).
    """
    return _partition_one(_murmur2_partition, key, num_partitions)


def partition_keys(keys, num_partitions):
    """``[partition_for_key(k, num_partitions) for k in keys]`` in one native call.

    ``keys`` is a sequence (list, tuple, ...) of bytes, other bytes-like objects or None;
    None gives -1. Returns a ``list`` of ints sharing one int object per partition: an
    ``array('i')`` fills about 7 ns/key faster, but then every Python access creates an int, so
    indexing it is ~2x slower and bucketing ``zip(keys, parts)`` no faster. Raises TypeError
    naming the index of the first bad key.
    """
    return _partition_many(_murmur2_partition, keys, num_partitions)


def crc32_partition(key, num_partitions):
    """librdkafka's ``consistent_random`` partition for a key: ``zlib.crc32(key) % n``.

    Returns -1 for a ``None`` or empty key, where librdkafka picks a random partition.
    """
    return _partition_one(_crc32_partition, key, num_partitions)


def crc32_partition_keys(keys, num_partitions):
    """:func:`crc32_partition` over a sequence of keys, as a list (see :func:`partition_keys`)."""
    return _partition_many(_crc32_partition, keys, num_partitions)


# The C-level ``murmur2``/``crc32`` (cimportable, see the .pxd) own these names in Cython's
# scope, so the Python functions are defined under private names and published below.

@cython.embedsignature(False)
def _murmur2_py(key):
    """murmur2(key) -> int

    Java's ``Utils.murmur2`` of a bytes-like ``key``, as the signed 32-bit int Java returns
    (kafka-python's ``murmur2`` returns the same bits unsigned: ``murmur2(k) & 0xffffffff``).
    """
    cdef Py_buffer view
    cdef int32_t h
    if PyBytes_Check(key):
        return murmur2(<const unsigned char*>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key))
    _key_buffer(key, &view, "key", False)
    try:
        h = murmur2(<const unsigned char*>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
    return h


@cython.embedsignature(False)
def _crc32_py(key):
    """crc32(key) -> int

    IEEE CRC-32 of a bytes-like ``key``, unsigned, equal to ``zlib.crc32(key)``: the hash of
    librdkafka's ``consistent`` and ``consistent_random`` partitioners.
    """
    cdef Py_buffer view
    cdef uint32_t c
    if PyBytes_Check(key):
        return crc32(<const unsigned char*>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key))
    _key_buffer(key, &view, "key", False)
    try:
        c = crc32(<const unsigned char*>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
    return c


def _publish(fn, name):
    fn.__name__ = fn.__qualname__ = name
    globals()[name] = fn


_publish(_murmur2_py, "murmur2")
_publish(_crc32_py, "crc32")
del _murmur2_py, _crc32_py, _publish
