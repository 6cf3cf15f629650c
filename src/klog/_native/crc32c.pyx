"""CRC-32C (Castagnoli) checksums, as used by Kafka RecordBatch v2.

Computes the reflected CRC with polynomial 0x82F63B78, initial value and
final XOR 0xFFFFFFFF: ``crc32c(b"123456789") == 0xE3069283``. The ``value``
argument continues a previous result, so ``crc32c(b, crc32c(a)) ==
crc32c(a + b)`` (same convention as the ``crc32c`` PyPI package).

On x86-64 with SSE4.2 the ``crc32`` instruction is used. It has 3 cycles of
latency but can start one per cycle, so a single dependency chain leaves two
thirds of the unit idle; large inputs are therefore split into three
interleaved streams whose partial CRCs are merged with a carry-less multiply
(PCLMULQDQ). Elsewhere a portable slicing-by-8 table implementation is used.

``HARDWARE`` says whether the hardware path is available on this CPU.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check
from libc.stdint cimport uint32_t

from operator import index as _index


cdef extern from "crc32c_impl.h" nogil:
    void klog_crc32c_init()
    int klog_crc32c_have_hw
    uint32_t klog_crc32c_update(uint32_t crc, const unsigned char* p, size_t n)
    uint32_t klog_crc32c_sw(uint32_t crc, const unsigned char* p, size_t n)
    uint32_t klog_crc32c_hw(uint32_t crc, const unsigned char* p, size_t n)


klog_crc32c_init()

HARDWARE = bool(klog_crc32c_have_hw)

# Below this, dropping and retaking the GIL costs more than it frees up.
cdef enum:
    _NOGIL_THRESHOLD = 65536

ctypedef uint32_t (*_crc_fn)(uint32_t, const unsigned char*, size_t) noexcept nogil


cdef uint32_t crc32c_update(uint32_t crc, const unsigned char* data, size_t length) noexcept nogil:
    """Continue ``crc`` over ``data[:length]``; update(0, d) is crc32c(d)."""
    return klog_crc32c_update(crc, data, length)


cdef inline uint32_t _as_crc(object value) except? 0xFFFFFFFF:
    cdef int overflow = 0
    cdef long long v
    if not PyLong_Check(value):
        value = _index(value)  # TypeError for floats, str, None, ...
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or v < 0 or v > 0xFFFFFFFF:
        raise ValueError(f"value must be an int in [0, 2**32), got {value!r}")
    return <uint32_t>v


cdef object _run(_crc_fn fn, object data, object value):
    cdef uint32_t crc = _as_crc(value)
    cdef Py_buffer view
    cdef const unsigned char* p
    cdef size_t n
    # PyBUF_SIMPLE: any contiguous buffer, read as raw bytes whatever its
    # format; non-contiguous exporters raise BufferError, non-buffers TypeError.
    try:
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    except (TypeError, BufferError):
        raise
    except Exception as exc:
        # e.g. numpy raises ValueError for non-contiguous arrays.
        raise BufferError(
            f"cannot read {type(data).__name__} as a contiguous buffer: {exc}"
        ) from exc
    try:
        p = <const unsigned char*>view.buf
        n = <size_t>view.len
        if n > _NOGIL_THRESHOLD:
            with nogil:
                crc = fn(crc, p, n)
        else:
            crc = fn(crc, p, n)
    finally:
        PyBuffer_Release(&view)
    return crc


def crc32c(data, value=0):
    """CRC-32C of a contiguous bytes-like object, continuing from ``value``
    (a previous result). Uses the fastest implementation available.
    """
    return _run(klog_crc32c_update, data, value)


def crc32c_software(data, value=0):
    """Like :func:`crc32c` but always uses the portable table implementation."""
    return _run(klog_crc32c_sw, data, value)


def crc32c_hardware(data, value=0):
    """Like :func:`crc32c` but always uses the CPU instruction path; raises
    RuntimeError when the CPU lacks it (see ``HARDWARE``).
    """
    if not klog_crc32c_have_hw:
        raise RuntimeError("CRC-32C hardware path unavailable: CPU lacks SSE4.2 (x86-64 only)")
    return _run(klog_crc32c_hw, data, value)
