"""RecordBatch v2: build, validate and decode Kafka's batch format in one native call.

Layout (big-endian; Kafka clients/.../record/DefaultRecordBatch.java, DefaultRecord.java):

    0  baseOffset int64        | 8  batchLength int32 (size - 12) | 12 partitionLeaderEpoch int32
    16 magic int8 = 2          | 17 crc uint32: CRC-32C of bytes 21..end
    21 attributes int16: bits 0-2 codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd),
       bit 3 LogAppendTime, bit 4 transactional, bit 5 control
    23 lastOffsetDelta int32   | 27 baseTimestamp int64 | 35 maxTimestamp int64
    43 producerId int64        | 51 producerEpoch int16  | 53 baseSequence int32
    57 recordCount int32       | 61 records (compressed as one stream when a codec is set)

    record: length varint, attributes int8, timestampDelta varlong, offsetDelta varint,
            keyLen varint (-1 null), key, valueLen varint (-1 null), value,
            headerCount varint, then per header: keyLen varint, key (UTF-8), valLen varint, val

The CRC does not cover baseOffset or partitionLeaderEpoch, so a log assigns offsets in place.
Compression is policy, so it arrives as Python callables from klog.codec.
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_CheckBuffer, PyObject_GetBuffer
from cpython.list cimport PyList_Append
from cpython.number cimport PyNumber_Index
from cpython.unicode cimport PyUnicode_Check, PyUnicode_DecodeUTF8
from libc.stdint cimport int16_t, int32_t, int64_t, uint16_t, uint32_t, uint64_t, INT32_MAX
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from posix.time cimport clock_gettime, timespec, CLOCK_REALTIME

from klog._native.crc32c cimport crc32c_update
from klog._native.wire cimport (
    get_varint, load_i16, load_i32, load_i64, load_u32, put_varint, store_u16, store_u32,
    store_u64, varint_size,
)

from klog.errors import CorruptRecordError

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL

cdef tuple EMPTY = ()
MAGIC_V2 = 2


@cython.freelist(512)
cdef class Record:
    """One record as a reader sees it: its offset, timestamp (ms), key, value and headers.

    ``key`` and ``value`` are bytes or None (a None value is a tombstone); ``headers`` is a tuple of
    ``(str, bytes | None)`` pairs.
    """

    def __init__(self, int64_t offset, int64_t timestamp, key=None, value=None, headers=()):
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = tuple(headers)

    def _fields(self):
        return (self.offset, self.timestamp, self.key, self.value, self.headers)

    def __eq__(self, other):
        if not isinstance(other, Record):
            return NotImplemented
        return self._fields() == (<Record>other)._fields()

    def __hash__(self):
        return hash(self._fields())

    def __reduce__(self):
        return (Record, self._fields())

    def __repr__(self):
        return (f"Record(offset={self.offset}, timestamp={self.timestamp}, key={self.key!r}, "
                f"value={self.value!r}, headers={self.headers!r})")


@cython.final
cdef class ConsumerRecord(Record):
    """A Record with the topic and partition it was read from, as a consumer returns it."""

    def __init__(self, str topic, int partition, int64_t offset, int64_t timestamp, key=None,
                 value=None, headers=()):
        Record.__init__(self, offset, timestamp, key, value, headers)
        self.topic = topic
        self.partition = partition

    def _fields(self):
        return (self.topic, self.partition, self.offset, self.timestamp, self.key, self.value,
                self.headers)

    def __reduce__(self):
        return (ConsumerRecord, self._fields())

    def __repr__(self):
        return (f"ConsumerRecord(topic={self.topic!r}, partition={self.partition}, "
                f"offset={self.offset}, timestamp={self.timestamp}, key={self.key!r}, "
                f"value={self.value!r}, headers={self.headers!r})")


cdef inline int64_t now_ms() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000 + ts.tv_nsec // 1000000


ctypedef struct slot_t:
    const char* key
    Py_ssize_t key_len      # -1: null
    const char* value
    Py_ssize_t value_len    # -1: null
    int64_t timestamp
    Py_ssize_t body_len     # record length, not counting its own length varint
    Py_ssize_t header_bytes
    int32_t offset_delta    # i, unless the caller gives explicit deltas (a cleaned batch)


cdef inline object as_bytes(object v, str what):
    """Bytes-like → bytes (None stays None). bytes is the fast path; other buffers are copied."""
    if v is None or PyBytes_CheckExact(v):
        return v
    if isinstance(v, bytes):
        return v
    if PyObject_CheckBuffer(v) and not PyUnicode_Check(v):
        return bytes(memoryview(v).cast("B"))
    raise TypeError(f"{what} must be bytes-like or None, not {type(v).__name__}")


cdef Py_ssize_t headers_size(object hdrs, Py_ssize_t i) except -1:
    cdef Py_ssize_t size = 0, klen, vlen
    cdef object item, hval
    if hdrs is None:
        return varint_size(0)
    if isinstance(hdrs, (str, bytes)) or not isinstance(hdrs, (list, tuple)):
        raise TypeError(f"headers[{i}] must be a list of (str, bytes | None) pairs")
    size = varint_size(len(hdrs))
    for item in hdrs:
        if not isinstance(item, tuple) or len(<tuple>item) != 2:
            raise TypeError(f"headers[{i}] entries must be (str, bytes | None) pairs, got {item!r}")
        if not PyUnicode_Check((<tuple>item)[0]):
            raise TypeError(f"headers[{i}] keys must be str, got {type((<tuple>item)[0]).__name__}")
        PyUnicode_AsUTF8AndSize((<tuple>item)[0], &klen)
        hval = (<tuple>item)[1]
        if hval is None:
            vlen = -1
        elif PyBytes_CheckExact(hval):
            vlen = PyBytes_GET_SIZE(hval)
        else:
            raise TypeError(f"headers[{i}] values must be bytes or None, not {type(hval).__name__}")
        size += varint_size(klen) + klen + varint_size(vlen) + (vlen if vlen > 0 else 0)
    return size


cdef unsigned char* put_headers(unsigned char* p, object hdrs) except NULL:
    cdef Py_ssize_t klen, vlen
    cdef const char* kp
    cdef object item, hval
    if hdrs is None:
        return put_varint(p, 0)
    p = put_varint(p, len(hdrs))
    for item in hdrs:
        kp = PyUnicode_AsUTF8AndSize((<tuple>item)[0], &klen)
        p = put_varint(p, klen)
        memcpy(p, kp, klen)
        p += klen
        hval = (<tuple>item)[1]
        if hval is None:
            p = put_varint(p, -1)
        else:
            vlen = PyBytes_GET_SIZE(hval)
            p = put_varint(p, vlen)
            memcpy(p, PyBytes_AS_STRING(hval), vlen)
            p += vlen
    return p


def build_batch(values, keys=None, timestamps=None, headers=None, int64_t base_offset=0,
                int codec=0, compress=None, int64_t producer_id=-1, int producer_epoch=-1,
                int32_t base_sequence=-1, int32_t leader_epoch=-1, bint transactional=False,
                offset_deltas=None):
    """Encode one RecordBatch v2 from Python sequences; returns bytes with the CRC set.

    ``timestamps`` is None (now, for every record), one int for all, or one per record.
    ``compress`` (bytes -> bytes) is required when ``codec`` is not 0 and compresses the records.
    ``offset_deltas`` (default 0..n-1) gives each record's offsetDelta, strictly increasing from
    >= 0; lastOffsetDelta is the last of them. The log cleaner uses it to re-encode the records
    it keeps at their original offsets (gaps where records were removed).
    """
    cdef Py_ssize_t n, i, size = 0, records_size = 0
    cdef slot_t* slots = NULL
    cdef slot_t* s
    cdef int64_t base_ts, max_ts, ts_now = 0
    cdef int64_t one_ts = 0
    cdef bint ts_each = False, ts_one = False
    cdef unsigned char* p
    cdef unsigned char* start
    cdef object v, k, seq_values, seq_keys = None, seq_ts = None, seq_headers = None
    cdef object seq_deltas = None
    cdef int64_t delta, prev_delta = -1
    cdef list keep = None  # keeps converted (non-bytes) values alive until encoded
    cdef bytes records, out

    if codec < 0 or codec > 4:
        raise ValueError(f"unknown compression codec id {codec}")
    if codec and compress is None:
        raise ValueError("a compressor is required for a compressed batch")
    if isinstance(values, (bytes, str, bytearray, memoryview)):
        raise TypeError("values must be a sequence of bytes-like values, not a single value")
    seq_values = values if isinstance(values, (list, tuple)) else list(values)
    n = len(seq_values)
    if n == 0:
        raise ValueError("a batch needs at least one record")
    if n > INT32_MAX:
        raise ValueError("too many records for one batch")
    if keys is not None:
        seq_keys = keys if isinstance(keys, (list, tuple)) else list(keys)
        if len(seq_keys) != n:
            raise ValueError(f"keys has {len(seq_keys)} items for {n} values")
    if headers is not None:
        seq_headers = headers if isinstance(headers, (list, tuple)) else list(headers)
        if len(seq_headers) != n:
            raise ValueError(f"headers has {len(seq_headers)} items for {n} values")
    if timestamps is None:
        ts_now = now_ms()
        ts_one = True
        one_ts = ts_now
    elif isinstance(timestamps, int):
        one_ts = timestamps
        ts_one = True
    else:
        seq_ts = timestamps if isinstance(timestamps, (list, tuple)) else list(timestamps)
        if len(seq_ts) != n:
            raise ValueError(f"timestamps has {len(seq_ts)} items for {n} values")
        ts_each = True
    if offset_deltas is not None:
        seq_deltas = offset_deltas if isinstance(offset_deltas, (list, tuple)) else list(offset_deltas)
        if len(seq_deltas) != n:
            raise ValueError(f"offset_deltas has {len(seq_deltas)} items for {n} values")

    slots = <slot_t*>malloc(n * sizeof(slot_t))
    if slots == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            s = &slots[i]
            v = seq_values[i]
            if v is None:
                s.value = NULL
                s.value_len = -1
            else:
                if not PyBytes_CheckExact(v):
                    v = as_bytes(v, f"values[{i}]")
                    if keep is None:
                        keep = []
                    keep.append(v)
                s.value = PyBytes_AS_STRING(v)
                s.value_len = PyBytes_GET_SIZE(v)
            s.key = NULL
            s.key_len = -1
            if seq_keys is not None:
                k = seq_keys[i]
                if k is not None:
                    if not PyBytes_CheckExact(k):
                        k = as_bytes(k, f"keys[{i}]")
                        if keep is None:
                            keep = []
                        keep.append(k)
                    s.key = PyBytes_AS_STRING(k)
                    s.key_len = PyBytes_GET_SIZE(k)
            if ts_each:
                # an int or an integer type (numpy): a float would be truncated silently
                s.timestamp = PyNumber_Index(seq_ts[i])
            else:
                s.timestamp = one_ts
            s.header_bytes = headers_size(seq_headers[i], i) if seq_headers is not None else 1
            if seq_deltas is None:
                s.offset_delta = <int32_t>i
            else:
                delta = PyNumber_Index(seq_deltas[i])
                if delta <= prev_delta or delta > INT32_MAX:
                    raise ValueError(f"offset_deltas[{i}] = {delta}: deltas must increase "
                                     f"strictly from >= 0 and fit an int32")
                s.offset_delta = <int32_t>delta
                prev_delta = delta

        base_ts = slots[0].timestamp
        max_ts = base_ts
        for i in range(n):
            s = &slots[i]
            if s.timestamp > max_ts:
                max_ts = s.timestamp
            s.body_len = (1 + varint_size(s.timestamp - base_ts) + varint_size(s.offset_delta)
                          + varint_size(s.key_len) + (s.key_len if s.key_len > 0 else 0)
                          + varint_size(s.value_len) + (s.value_len if s.value_len > 0 else 0)
                          + s.header_bytes)
            records_size += varint_size(s.body_len) + s.body_len

        if codec == 0:
            out = PyBytes_FromStringAndSize(NULL, HEADER_SIZE + records_size)
            start = <unsigned char*>PyBytes_AS_STRING(out)
            p = start + HEADER_SIZE
        else:
            records = PyBytes_FromStringAndSize(NULL, records_size)
            p = <unsigned char*>PyBytes_AS_STRING(records)
        for i in range(n):
            s = &slots[i]
            p = put_varint(p, s.body_len)
            p[0] = 0
            p = put_varint(p + 1, s.timestamp - base_ts)
            p = put_varint(p, s.offset_delta)
            p = put_varint(p, s.key_len)
            if s.key_len > 0:
                memcpy(p, s.key, s.key_len)
                p += s.key_len
            p = put_varint(p, s.value_len)
            if s.value_len > 0:
                memcpy(p, s.value, s.value_len)
                p += s.value_len
            if seq_headers is None:
                p[0] = 0
                p += 1
            else:
                p = put_headers(p, seq_headers[i])
    finally:
        free(slots)

    if codec:
        payload = compress(records)
        if not PyBytes_CheckExact(payload):
            payload = bytes(payload)
        out = PyBytes_FromStringAndSize(NULL, HEADER_SIZE + PyBytes_GET_SIZE(payload))
        start = <unsigned char*>PyBytes_AS_STRING(out)
        memcpy(start + HEADER_SIZE, PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload))

    size = PyBytes_GET_SIZE(out)
    store_u64(start + BASE_OFFSET, <uint64_t>base_offset)
    store_u32(start + LENGTH, <uint32_t>(size - LOG_OVERHEAD))
    store_u32(start + LEADER_EPOCH, <uint32_t>leader_epoch)
    start[MAGIC] = 2
    store_u16(start + ATTRIBUTES, <uint16_t>(codec | (TRANSACTIONAL_FLAG if transactional else 0)))
    store_u32(start + LAST_OFFSET_DELTA, <uint32_t>(n - 1 if seq_deltas is None else prev_delta))
    store_u64(start + BASE_TIMESTAMP, <uint64_t>base_ts)
    store_u64(start + MAX_TIMESTAMP, <uint64_t>max_ts)
    store_u64(start + PRODUCER_ID, <uint64_t>producer_id)
    store_u16(start + PRODUCER_EPOCH, <uint16_t>producer_epoch)
    store_u32(start + BASE_SEQUENCE, <uint32_t>base_sequence)
    store_u32(start + RECORD_COUNT, <uint32_t>n)
    store_u32(start + CRC, crc32c_update(0, start + ATTRIBUTES, size - ATTRIBUTES))
    return out


cdef int check_batch(const unsigned char* p, Py_ssize_t size, bint check_crc) except -1:
    """Check one batch's framing, magic and (optionally) CRC; raise CorruptRecordError."""
    cdef int32_t length
    cdef uint32_t stored, actual
    if size < HEADER_SIZE:
        raise CorruptRecordError(f"record batch is {size} bytes; the v2 header alone is {HEADER_SIZE}")
    length = load_i32(p + LENGTH)
    if length < HEADER_SIZE - LOG_OVERHEAD or length > size - LOG_OVERHEAD:
        raise CorruptRecordError(
            f"record batch declares length {length}, but {size - LOG_OVERHEAD} bytes follow the header")
    if p[MAGIC] != 2:
        raise CorruptRecordError(f"record batch magic is {p[MAGIC]}; only v2 (magic 2) is supported")
    if check_crc:
        stored = load_u32(p + CRC)
        actual = crc32c_update(0, p + ATTRIBUTES, length + LOG_OVERHEAD - ATTRIBUTES)
        if stored != actual:
            raise CorruptRecordError(
                f"record batch CRC mismatch: stored 0x{stored:08x}, computed 0x{actual:08x}")
    return 0


cdef inline const unsigned char* need_varint(const unsigned char* p, const unsigned char* end,
                                             int64_t* out, str what) except NULL:
    p = get_varint(p, end, out)
    if p == NULL:
        raise CorruptRecordError(f"truncated or overlong varint in record {what}")
    return p


cdef inline object take_bytes(const unsigned char** pp, const unsigned char* end, int64_t n, str what):
    if n == -1:
        return None
    if n < -1 or n > end - pp[0]:
        raise CorruptRecordError(f"record {what} length {n} runs past the end of its record")
    v = PyBytes_FromStringAndSize(<const char*>pp[0], n)
    pp[0] += n
    return v


cdef Record decode_record(const unsigned char** qp, const unsigned char* end, int64_t base_offset,
                          int64_t base_ts, int64_t max_ts, bint log_append_time,
                          str topic=None, int32_t partition=-1):
    """Decode the record at qp[0] (bounds-checked against ``end``) and advance qp past it."""
    cdef const unsigned char* q = qp[0]
    cdef const unsigned char* rec_end
    cdef int64_t length, ts_delta, off_delta, klen, vlen, hcount, hklen, hvlen, j
    cdef tuple hdrs
    cdef list hlist
    cdef Record r
    cdef ConsumerRecord cr
    q = need_varint(q, end, &length, "length")
    if length < 1 or length > end - q:
        raise CorruptRecordError(
            f"record in batch at offset {base_offset} declares length {length}, {end - q} bytes left")
    rec_end = q + length
    q += 1  # record attributes: unused
    q = need_varint(q, rec_end, &ts_delta, "timestamp")
    q = need_varint(q, rec_end, &off_delta, "offset delta")
    q = need_varint(q, rec_end, &klen, "key length")
    key = take_bytes(&q, rec_end, klen, "key")
    q = need_varint(q, rec_end, &vlen, "value length")
    value = take_bytes(&q, rec_end, vlen, "value")
    q = need_varint(q, rec_end, &hcount, "header count")
    if hcount == 0:
        hdrs = EMPTY
    else:
        if hcount < 0 or hcount > rec_end - q:
            raise CorruptRecordError(f"record declares {hcount} headers in {rec_end - q} bytes")
        hlist = []
        for j in range(hcount):
            q = need_varint(q, rec_end, &hklen, "header key length")
            if hklen < 0 or hklen > rec_end - q:
                raise CorruptRecordError(f"record header key length {hklen} is out of bounds")
            try:
                hkey = PyUnicode_DecodeUTF8(<const char*>q, hklen, NULL)
            except UnicodeDecodeError as exc:
                raise CorruptRecordError(f"record header key is not UTF-8: {exc}") from None
            q += hklen
            q = need_varint(q, rec_end, &hvlen, "header value length")
            hlist.append((hkey, take_bytes(&q, rec_end, hvlen, "header value")))
        hdrs = tuple(hlist)
    if q != rec_end:
        raise CorruptRecordError(
            f"record in batch at offset {base_offset} has {rec_end - q} stray bytes")
    qp[0] = rec_end
    if topic is None:
        r = Record.__new__(Record)
    else:
        cr = ConsumerRecord.__new__(ConsumerRecord)
        cr.topic = topic
        cr.partition = partition
        r = cr
    r.offset = base_offset + off_delta
    r.timestamp = max_ts if log_append_time else base_ts + ts_delta
    r.key = key
    r.value = value
    r.headers = hdrs
    return r


cdef object open_records(const unsigned char* p, Py_ssize_t size, object decompress,
                         const unsigned char** q, const unsigned char** end):
    """Point q/end at the records of the batch at p, decompressing them if needed; returns the
    object that owns the decompressed bytes (keep it alive while reading), or None."""
    cdef int codec = load_i16(p + ATTRIBUTES) & CODEC_MASK
    if not codec:
        q[0] = p + HEADER_SIZE
        end[0] = p + size
        return None
    if decompress is None:
        raise CorruptRecordError(
            f"batch at offset {load_i64(p + BASE_OFFSET)} is compressed (codec {codec})")
    payload = decompress(codec, PyBytes_FromStringAndSize(<const char*>p + HEADER_SIZE, size - HEADER_SIZE))
    if not PyBytes_CheckExact(payload):
        payload = bytes(payload)
    q[0] = <const unsigned char*>PyBytes_AS_STRING(payload)
    end[0] = q[0] + PyBytes_GET_SIZE(payload)
    return payload


cdef list decode_into(const unsigned char* p, Py_ssize_t size, int64_t min_offset,
                      object decompress, list out):
    """Append the records of the (already framed) batch at p with offset >= min_offset to out."""
    cdef int64_t base_offset = load_i64(p + BASE_OFFSET)
    cdef int16_t attributes = load_i16(p + ATTRIBUTES)
    cdef int64_t base_ts = load_i64(p + BASE_TIMESTAMP)
    cdef int64_t max_ts = load_i64(p + MAX_TIMESTAMP)
    cdef int32_t count = load_i32(p + RECORD_COUNT)
    cdef bint log_append_time = (attributes & TIMESTAMP_TYPE_FLAG) != 0
    cdef const unsigned char* q
    cdef const unsigned char* end
    cdef int64_t i
    cdef Record r

    size = load_i32(p + LENGTH) + LOG_OVERHEAD
    if count < 0:
        raise CorruptRecordError(f"record batch at offset {base_offset} declares {count} records")
    payload = open_records(p, size, decompress, &q, &end)
    for i in range(count):
        r = decode_record(&q, end, base_offset, base_ts, max_ts, log_append_time)
        if r.offset >= min_offset:
            PyList_Append(out, r)
    if q != end:
        raise CorruptRecordError(
            f"batch at offset {base_offset} has {end - q} bytes after its {count} records")
    return out


cdef class _Buffer:
    """Holds a Py_buffer over a bytes-like for the duration of a native call."""
    cdef Py_buffer view
    cdef bint held

    def __cinit__(self, obj):
        PyObject_GetBuffer(obj, &self.view, PyBUF_SIMPLE)
        self.held = True

    def __dealloc__(self):
        if self.held:
            PyBuffer_Release(&self.view)


def validate_batch(buf, bint check_crc=True, bint exact=True):
    """Check a batch (length, magic, CRC); with ``exact``, it must fill ``buf`` exactly.

    Returns the batch's size in bytes; raises CorruptRecordError.
    """
    cdef _Buffer b = _Buffer(buf)
    cdef const unsigned char* p = <const unsigned char*>b.view.buf
    check_batch(p, b.view.len, check_crc)
    cdef Py_ssize_t size = load_i32(p + LENGTH) + LOG_OVERHEAD
    if exact and size != b.view.len:
        raise CorruptRecordError(
            f"buffer holds {b.view.len} bytes but its record batch is {size}: "
            "expected exactly one batch")
    return size


def check_records(buf, decompress=None):
    """Walk the records of one batch: framing, offset deltas 0..count-1, count. A compressed
    batch is decompressed with ``decompress(codec, payload)`` and checked the same way (without
    ``decompress``, only its header is checked).

    A produced batch must pass this before it is appended, so readers never meet a record
    the framing cannot parse (Kafka's LogValidator does the same).
    """
    cdef _Buffer b = _Buffer(buf)
    cdef const unsigned char* p = <const unsigned char*>b.view.buf
    check_batch(p, b.view.len, False)
    cdef int32_t count = load_i32(p + RECORD_COUNT)
    cdef int32_t last_delta = load_i32(p + LAST_OFFSET_DELTA)
    cdef int16_t attributes = load_i16(p + ATTRIBUTES)
    cdef const unsigned char* q = p + HEADER_SIZE
    cdef const unsigned char* end = p + load_i32(p + LENGTH) + LOG_OVERHEAD
    cdef const unsigned char* rec
    cdef int64_t length, v, i
    if count < 1:
        raise CorruptRecordError(f"record batch declares {count} records; at least one is required")
    if last_delta != count - 1:
        raise CorruptRecordError(
            f"record batch declares {count} records but lastOffsetDelta {last_delta}")
    if attributes & CODEC_MASK:
        if decompress is None:
            return count
        payload = open_records(p, end - p, decompress, &q, &end)
    for i in range(count):
        q = need_varint(q, end, &length, "length")
        if length < 1 or length > end - q:
            raise CorruptRecordError(f"record {i} declares length {length}, {end - q} bytes left")
        rec = q + length
        q = need_varint(q + 1, rec, &v, "timestamp")
        q = need_varint(q, rec, &v, "offset delta")
        if v != i:
            raise CorruptRecordError(f"record {i} has offset delta {v}; expected {i}")
        q = rec
    if q != end:
        raise CorruptRecordError(f"record batch has {end - q} bytes after its {count} records")
    return count


def decode_records(buf, int64_t min_offset=-1, decompress=None):
    """Decode every batch in ``buf`` (whole batches back to back) into a list of Record."""
    cdef _Buffer b = _Buffer(buf)
    cdef const unsigned char* p = <const unsigned char*>b.view.buf
    cdef Py_ssize_t left = b.view.len, size
    cdef list out = []
    while left > 0:
        check_batch(p, left, True)
        size = load_i32(p + LENGTH) + LOG_OVERHEAD
        decode_into(p, size, min_offset, decompress, out)
        p += size
        left -= size
    return out


class BatchHeader(tuple):
    """The fixed 61-byte header of a v2 batch, as plain values."""
    __slots__ = ()
    _fields = ("base_offset", "length", "leader_epoch", "magic", "crc", "attributes",
               "last_offset_delta", "base_timestamp", "max_timestamp", "producer_id",
               "producer_epoch", "base_sequence", "record_count")

    base_offset = property(lambda self: self[0])
    length = property(lambda self: self[1])
    leader_epoch = property(lambda self: self[2])
    magic = property(lambda self: self[3])
    crc = property(lambda self: self[4])
    attributes = property(lambda self: self[5])
    last_offset_delta = property(lambda self: self[6])
    base_timestamp = property(lambda self: self[7])
    max_timestamp = property(lambda self: self[8])
    producer_id = property(lambda self: self[9])
    producer_epoch = property(lambda self: self[10])
    base_sequence = property(lambda self: self[11])
    record_count = property(lambda self: self[12])

    @property
    def size(self):
        return self[1] + LOG_OVERHEAD

    @property
    def last_offset(self):
        return self[0] + self[6]

    @property
    def compression(self):
        return self[5] & CODEC_MASK

    @property
    def is_control(self):
        return bool(self[5] & CONTROL_FLAG)

    @property
    def is_transactional(self):
        return bool(self[5] & TRANSACTIONAL_FLAG)

    @property
    def log_append_time(self):
        return bool(self[5] & TIMESTAMP_TYPE_FLAG)

    def __repr__(self):
        return "BatchHeader(" + ", ".join(f"{k}={v!r}" for k, v in zip(self._fields, self)) + ")"


def read_header(buf, Py_ssize_t pos=0):
    """Parse the header of the batch at ``pos`` (no CRC check)."""
    cdef _Buffer b = _Buffer(buf)
    if pos < 0 or b.view.len - pos < HEADER_SIZE:
        raise CorruptRecordError(f"no complete batch header at byte {pos}")
    cdef const unsigned char* p = <const unsigned char*>b.view.buf + pos
    return BatchHeader((
        load_i64(p + BASE_OFFSET), load_i32(p + LENGTH), load_i32(p + LEADER_EPOCH), p[MAGIC],
        load_u32(p + CRC), load_i16(p + ATTRIBUTES), load_i32(p + LAST_OFFSET_DELTA),
        load_i64(p + BASE_TIMESTAMP), load_i64(p + MAX_TIMESTAMP), load_i64(p + PRODUCER_ID),
        load_i16(p + PRODUCER_EPOCH), load_i32(p + BASE_SEQUENCE), load_i32(p + RECORD_COUNT)))


def set_log_append_time(batch, int64_t timestamp):
    """A copy of ``batch`` stamped with LogAppendTime: the attribute bit, maxTimestamp (readers
    then give every record this timestamp) and a recomputed CRC."""
    cdef bytearray out = bytearray(batch)
    cdef unsigned char* p = <unsigned char*>(<char*>out)
    cdef Py_ssize_t size = len(out)
    check_batch(p, size, False)
    store_u16(p + ATTRIBUTES, <uint16_t>(load_i16(p + ATTRIBUTES) | TIMESTAMP_TYPE_FLAG))
    store_u64(p + MAX_TIMESTAMP, <uint64_t>timestamp)
    store_u32(p + CRC, crc32c_update(0, p + ATTRIBUTES, size - ATTRIBUTES))
    return bytes(out)


@cython.final
cdef class RecordReader:
    """Iterates records one at a time from chunks of whole batches, without building lists.

    ``source(offset)`` returns the next chunk (a bytes-like of whole batches starting with the
    one that holds ``offset``; empty at the end). Records below ``offset`` are skipped (a fetch
    starts at a batch boundary), and so are control batches. One record is decoded per
    ``__next__``, so memory stays flat however long the log is.
    """
    cdef object source
    cdef object decompress
    cdef _Buffer chunk
    cdef object payload            # keeps a decompressed batch alive while it is read
    cdef const unsigned char* p    # next batch in the chunk
    cdef Py_ssize_t left           # chunk bytes from p on
    cdef const unsigned char* q    # next record in the current batch
    cdef const unsigned char* end  # end of the current batch's records
    cdef int32_t remaining         # records left in the current batch
    cdef int64_t base_offset, base_ts, max_ts
    cdef bint log_append_time
    cdef public int64_t next_offset
    cdef readonly int64_t start
    cdef readonly str topic
    cdef readonly int32_t partition

    def __init__(self, source, int64_t offset, decompress=None, str topic=None, int32_t partition=-1):
        self.topic = topic
        self.partition = partition
        self.start = offset
        self.source = source
        self.decompress = decompress
        self.next_offset = offset
        self.chunk = None
        self.left = 0
        self.remaining = 0

    def __iter__(self):
        return self

    cdef bint next_batch(self) except -1:
        cdef Py_ssize_t size
        cdef int16_t attributes
        while True:
            if self.left <= 0:
                self.chunk = None
                self.payload = None
                data = self.source(self.next_offset)
                if data is None:
                    return False
                self.chunk = _Buffer(data)
                self.p = <const unsigned char*>self.chunk.view.buf
                self.left = self.chunk.view.len
                if self.left == 0:
                    self.chunk = None
                    return False
            check_batch(self.p, self.left, True)  # as consumers do (check.crcs)
            size = load_i32(self.p + LENGTH) + LOG_OVERHEAD
            attributes = load_i16(self.p + ATTRIBUTES)
            self.base_offset = load_i64(self.p + BASE_OFFSET)
            self.base_ts = load_i64(self.p + BASE_TIMESTAMP)
            self.max_ts = load_i64(self.p + MAX_TIMESTAMP)
            self.log_append_time = (attributes & TIMESTAMP_TYPE_FLAG) != 0
            self.remaining = load_i32(self.p + RECORD_COUNT)
            if self.remaining < 0:
                raise CorruptRecordError(
                    f"record batch at offset {self.base_offset} declares {self.remaining} records")
            last = self.base_offset + load_i32(self.p + LAST_OFFSET_DELTA)
            if last < self.next_offset or attributes & CONTROL_FLAG or self.remaining <= 0:
                self.next_offset = max(self.next_offset, last + 1)
                self.remaining = 0
                self.p += size
                self.left -= size
                continue
            self.payload = open_records(self.p, size, self.decompress, &self.q, &self.end)
            self.p += size
            self.left -= size
            self.next_offset = last + 1
            return True

    def __next__(self):
        cdef Record r
        while True:
            if self.remaining <= 0:
                if not self.next_batch():
                    raise StopIteration
            r = decode_record(&self.q, self.end, self.base_offset, self.base_ts, self.max_ts,
                              self.log_append_time, self.topic, self.partition)
            self.remaining -= 1
            if self.remaining == 0 and self.q != self.end:
                raise CorruptRecordError(
                    f"batch at offset {self.base_offset} has {self.end - self.q} bytes after its records")
            if r.offset >= self.start:
                return r
