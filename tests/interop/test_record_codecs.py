"""klog's RecordBatch v2 bytes against two independent implementations of the format.

(a) batches klog builds are read by kafka-python's record code and by aiokafka's, both its
    Cython and its pure-Python implementation;
(b) batches those libraries' builders produce (each codec) are read by ``klog.decode_batch``
    and appended to a real ``klog.Log``, which assigns offsets and stores the bytes unchanged
    but for the 8-byte base offset.

Codec needs, found in the libraries' source: kafka-python uses ``lz4`` (frame), ``zstandard`` and
python-snappy's ``snappy`` module; aiokafka uses ``cramjam`` for snappy, lz4 and zstd. gzip is
the standard library for both. python-snappy (0.7+) is a thin wrapper of cramjam's raw snappy;
where it is not installed, kafka-python gets an equivalent cramjam-backed ``snappy`` module here,
so its own xerial framing code still runs.
"""
import struct
import types

import cramjam
import pytest

import aiokafka.codec
import aiokafka.record._crecords as aio_c
import aiokafka.record.default_records as aio_py
import kafka.codec
from kafka.record.default_records import DefaultRecordBatch as KafkaPyBatch
from kafka.record.default_records import DefaultRecordBatchBuilder as KafkaPyBuilder
from kafka.record.memory_records import MemoryRecords as KafkaPyMemoryRecords

import klog
from klog._native.batch import set_log_append_time, validate_batch
from klog.codec import codec_id
from klog.errors import CorruptRecordError

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]

READERS = {
    "kafka-python": KafkaPyBatch,
    "aiokafka-cython": aio_c.DefaultRecordBatch,
    "aiokafka-python": aio_py._DefaultRecordBatchPy,
}
BUILDERS = {
    "kafka-python": KafkaPyBuilder,
    "aiokafka-cython": aio_c.DefaultRecordBatchBuilder,
    "aiokafka-python": aio_py._DefaultRecordBatchBuilderPy,
}


@pytest.fixture(scope="module", autouse=True)
def kafka_python_snappy():
    """Give kafka-python a snappy module if python-snappy is missing (see the module doc)."""
    if kafka.codec.has_snappy():
        yield
        return
    shim = types.SimpleNamespace(
        compress=lambda data: bytes(cramjam.snappy.compress_raw(bytes(data))),
        decompress=lambda data: bytes(cramjam.snappy.decompress_raw(bytes(data))),
    )
    mp = pytest.MonkeyPatch()
    mp.setattr(kafka.codec, "snappy", shim)
    try:
        yield
    finally:
        mp.undo()


def test_oracles_are_what_they_claim():
    """Both aiokafka implementations are distinct and really present; every codec is usable."""
    assert aio_c.DefaultRecordBatch is not aio_py._DefaultRecordBatchPy
    assert aio_c.DefaultRecordBatch.__module__.startswith("aiokafka.record._crecords")
    assert aio_c.DefaultRecordBatchBuilder is not aio_py._DefaultRecordBatchBuilderPy
    assert type(aio_c.DefaultRecordBatch).__name__ == "type"  # an extension type, not a class
    import aiokafka.record._crecords.default_records as cmod
    assert not cmod.__file__.endswith(".py")
    for has in ("has_gzip", "has_snappy", "has_lz4", "has_zstd"):
        assert getattr(kafka.codec, has)(), f"kafka-python {has}"
        assert getattr(aiokafka.codec, has)(), f"aiokafka {has}"


# -- shared data ---------------------------------------------------------------------------------
VALUES = [b"first value " * 20, None, b"", b"\x00\x01\x02" * 50, "caf\u00e9 \u2615".encode() * 30]
KEYS = [b"key-a", None, b"", b"key-d", b"key-e"]
HEADERS = [
    [("trace-id", b"0123456789"), ("null", None)],
    [],
    [("empty", b"")],
    [("\u00fc\u00f1\u00ee\u00e7\u00f8d\u00e9", b"\xff\xfe"), ("\u4e2d\u6587", None), ("dup", b"1"),
     ("dup", b"2")],
    [],
]
TIMESTAMPS = [1_700_000_000_500, 1_700_000_000_100, 1_700_000_001_000, 1_699_999_999_999,
              1_700_000_000_500]


def their_records(batch):
    return [(r.offset, r.timestamp, r.key, r.value, [tuple(h) for h in r.headers]) for r in batch]


def our_records(records):
    return [(r.offset, r.timestamp, r.key, r.value, [tuple(h) for h in r.headers])
            for r in records]


def expected(base):
    return [(base + i, TIMESTAMPS[i], KEYS[i], VALUES[i], [tuple(h) for h in HEADERS[i]])
            for i in range(len(VALUES))]


# -- (a) klog builds, they read ---------------------------------------------------------------------
@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("compression", CODECS)
def test_klog_batches_decode_with_client_libraries(reader, compression):
    raw = klog.encode_batch(VALUES, KEYS, TIMESTAMPS, HEADERS, base_offset=1000,
                            compression=compression)
    batch = READERS[reader](raw)
    assert batch.validate_crc()
    assert batch.magic == 2
    assert batch.base_offset == 1000
    assert batch.compression_type == codec_id(compression)
    assert batch.timestamp_type == 0
    assert not batch.is_transactional and not batch.is_control_batch
    assert batch.last_offset_delta == len(VALUES) - 1
    assert batch.first_timestamp == TIMESTAMPS[0]
    assert batch.max_timestamp == max(TIMESTAMPS)
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (-1, -1, -1)
    assert their_records(batch) == expected(1000)
    assert batch.next_offset == 1000 + len(VALUES)


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("compression", [None, "lz4"])
def test_klog_log_append_time_batches_decode_with_client_libraries(reader, compression):
    raw = klog.encode_batch(VALUES, KEYS, TIMESTAMPS, HEADERS, base_offset=7,
                            compression=compression)
    stamped = set_log_append_time(raw, 1_800_000_000_000)
    batch = READERS[reader](stamped)
    assert batch.validate_crc()
    assert batch.timestamp_type == 1
    assert [r.timestamp for r in batch] == [1_800_000_000_000] * len(VALUES)
    assert [r.timestamp for r in klog.decode_batch(stamped)] == [1_800_000_000_000] * len(VALUES)


@pytest.mark.parametrize("reader", list(READERS))
def test_klog_batch_with_many_records_and_big_values(reader):
    n = 2000
    values = [b"v%06d" % i * (1 + i % 13) for i in range(n)]
    values[7] = bytes(range(256)) * 1024  # 256 KiB: several lz4 blocks
    timestamps = [1_000_000 - i * 17 for i in range(n)]  # strictly decreasing
    raw = klog.encode_batch(values, timestamps=timestamps, base_offset=2**40, compression="lz4")
    batch = READERS[reader](raw)
    assert batch.validate_crc()
    records = list(batch)
    assert [r.value for r in records] == values
    assert [r.timestamp for r in records] == timestamps
    assert records[-1].offset == 2**40 + n - 1
    assert all(r.key is None and list(r.headers) == [] for r in records)


def test_log_fetch_chunk_decodes_with_memory_records(tmp_path):
    """What a fetch would return (several stored batches) parses as Kafka MemoryRecords."""
    with klog.Log.open(tmp_path / "log") as log:
        for i, compression in enumerate(CODECS):
            log.append_batch(klog.encode_batch([b"batch %d rec %d " % (i, j) * 10 for j in range(3)],
                                               timestamps=100 + i, compression=compression))
        chunk = bytes(log.read(0, 1 << 20))
    want = [(i * 3 + j, b"batch %d rec %d " % (i, j) * 10) for i in range(5) for j in range(3)]
    for memory_records in (KafkaPyMemoryRecords, aio_c.MemoryRecords):
        mr = memory_records(chunk)
        got, codecs = [], []
        while mr.has_next():
            batch = mr.next_batch()
            assert batch.validate_crc()
            codecs.append(batch.compression_type)
            got += [(r.offset, r.value) for r in batch]
        assert got == want
        assert codecs == [0, 1, 2, 3, 4]


# -- (b) they build, klog reads and stores ------------------------------------------------------------
def build_with(builder_name, compression, producer=(-1, -1, -1)):
    builder = BUILDERS[builder_name](2, codec_id(compression), False, *producer, 1 << 20)
    for i, value in enumerate(VALUES):
        meta = builder.append(i, TIMESTAMPS[i], KEYS[i], value, HEADERS[i])
        assert meta is not None
    raw = bytes(builder.build())
    # the builders silently fall back to no compression when it does not pay: make sure it did
    assert raw[22] & 0x07 == codec_id(compression), "the builder did not compress"
    return raw


@pytest.mark.parametrize("builder", list(BUILDERS))
@pytest.mark.parametrize("compression", CODECS)
def test_client_batches_decode_with_klog(builder, compression):
    raw = build_with(builder, compression)
    assert validate_batch(raw) == len(raw)
    assert our_records(klog.decode_batch(raw)) == expected(0)
    header = klog.read_header(raw)
    assert header.compression == codec_id(compression)
    assert header.base_timestamp == TIMESTAMPS[0]
    assert header.max_timestamp == max(TIMESTAMPS)
    assert header.record_count == len(VALUES)
    # and klog agrees with the library that built it
    assert our_records(klog.decode_batch(raw)) == their_records(READERS[builder](raw))


@pytest.mark.parametrize("builder", list(BUILDERS))
@pytest.mark.parametrize("compression", CODECS)
def test_client_batches_append_to_log_and_read_back(builder, compression, tmp_path):
    raw = build_with(builder, compression)
    with klog.Log.open(tmp_path / "log") as log:
        assert log.append([b"before-0", b"before-1", b"before-2"], timestamps=5) == 0
        base = log.append_batch(raw)
        assert base == 3  # the log assigns the base offset; the client sent 0
        assert log.append_batch(bytearray(raw)) == 3 + len(VALUES)
        assert log.log_end_offset == 3 + 2 * len(VALUES)

        records = list(log.records(base))
        assert our_records(records) == expected(3) + expected(3 + len(VALUES))
        assert [r.value for r in log.records()][:3] == [b"before-0", b"before-1", b"before-2"]
        # a read from an offset inside the batch still yields only the later records
        assert [r.offset for r in log.records(base + 2)][:3] == [5, 6, 7]

        # byte-for-byte storage: only the base offset and the leader epoch (both outside the
        # CRC) differ
        view = log.read(base, max_bytes=1)
        try:
            stored = bytes(view)
        finally:
            view.release()
        assert len(stored) == len(raw)
        assert stored[:8] == struct.pack(">q", base)
        assert stored[12:16] == struct.pack(">i", log.leader_epoch)
        assert stored[8:12] == raw[8:12] and stored[16:] == raw[16:]
        # the stored batch still satisfies the library that built it
        theirs = READERS[builder](stored)
        assert theirs.validate_crc()
        assert their_records(theirs) == expected(3)

    # and all of it survives a close and reopen
    with klog.Log.open(tmp_path / "log") as log:
        assert our_records(list(log.records(3))) == expected(3) + expected(3 + len(VALUES))
        view = log.read(3 + len(VALUES), max_bytes=1)
        try:
            assert bytes(view)[8:12] == raw[8:12] and bytes(view)[16:] == raw[16:]
        finally:
            view.release()


@pytest.mark.parametrize("builder", list(BUILDERS))
def test_idempotent_producer_fields_are_stored_unchanged(builder, tmp_path):
    raw = build_with(builder, "lz4", producer=(4242, 7, 100))
    header = klog.read_header(raw)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (4242, 7, 100)
    with klog.Log.open(tmp_path / "log") as log:
        # Starting at 1 (as after DeleteRecords) the log may have forgotten producer 4242, so
        # its first batch here may carry sequence 100 (KIP-360); and the offset is rewritten.
        log.truncate_fully_and_start_at(1)
        base = log.append_batch(raw)
        view = log.read(base, max_bytes=1)
        try:
            stored = bytes(view)
        finally:
            view.release()
    assert stored[8:12] == raw[8:12] and stored[16:] == raw[16:]   # all but offset and epoch
    header = klog.read_header(stored)
    assert header.base_offset == 1
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (4242, 7, 100)


@pytest.mark.parametrize("builder", list(BUILDERS))
def test_log_append_time_topic_restamps_client_batches(builder, tmp_path):
    raw = build_with(builder, "zstd")
    with klog.Log.open(tmp_path / "log", {"message.timestamp.type": "LogAppendTime"}) as log:
        base = log.append_batch(raw)
        records = list(log.records(base))
        view = log.read(base)
        try:
            stored = bytes(view)
        finally:
            view.release()
    stamps = {r.timestamp for r in records}
    assert len(stamps) == 1 and stamps != {max(TIMESTAMPS)}
    theirs = READERS[builder](stored)
    assert theirs.validate_crc()
    assert theirs.timestamp_type == 1
    their = list(theirs)  # a batch iterates once
    assert {r.timestamp for r in their} == stamps
    assert [r.value for r in their] == VALUES


@pytest.mark.parametrize("builder", list(BUILDERS))
def test_damaged_client_batch_is_refused_and_nothing_is_written(builder, tmp_path):
    raw = bytearray(build_with(builder, "gzip"))
    raw[-1] ^= 0xFF
    with klog.Log.open(tmp_path / "log") as log:
        with pytest.raises(CorruptRecordError):
            log.append_batch(bytes(raw))
        assert log.log_end_offset == 0
        assert bytes(log.read(0)) == b""
        with pytest.raises(CorruptRecordError):
            klog.decode_batch(bytes(raw))
