from libc.stdint cimport int16_t, int32_t, int64_t, uint32_t

# RecordBatch v2 header offsets (DefaultRecordBatch.java); see batch.pyx for the layout.
cdef enum:
    BASE_OFFSET = 0
    LENGTH = 8
    LEADER_EPOCH = 12
    MAGIC = 16
    CRC = 17
    ATTRIBUTES = 21
    LAST_OFFSET_DELTA = 23
    BASE_TIMESTAMP = 27
    MAX_TIMESTAMP = 35
    PRODUCER_ID = 43
    PRODUCER_EPOCH = 51
    BASE_SEQUENCE = 53
    RECORD_COUNT = 57
    HEADER_SIZE = 61
    LOG_OVERHEAD = 12  # baseOffset + batchLength: the bytes batchLength does not count

cdef enum:
    CODEC_MASK = 0x07
    TIMESTAMP_TYPE_FLAG = 0x08
    TRANSACTIONAL_FLAG = 0x10
    CONTROL_FLAG = 0x20


cdef class Record:
    cdef readonly int64_t offset
    cdef readonly int64_t timestamp
    cdef readonly object key
    cdef readonly object value
    cdef readonly tuple headers


cdef class ConsumerRecord(Record):
    cdef readonly str topic
    cdef readonly int partition


cdef int check_batch(const unsigned char* p, Py_ssize_t size, bint check_crc) except -1
cdef list decode_into(const unsigned char* p, Py_ssize_t size, int64_t min_offset,
                      object decompress, list out)
