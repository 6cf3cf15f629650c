"""RecordBatch v2 build / validate / decode (klog._native.batch, klog.encode_batch/decode_batch).

Header layout and CRC rules: shared/reference/kafka-storage-and-protocol.md §2. The header is
parsed here with ``struct`` and the CRC recomputed with the ``crc32c`` package, so neither check
relies on klog's own parsing. Corrupt batches are crafted with a tiny independent record encoder
(``raw_record`` / ``raw_batch``) whose CRC is correct, so each one reaches the record parser.
"""
import struct
import time

import crc32c
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import klog
from klog._native.batch import (
    BatchHeader, Record, RecordReader, build_batch, check_records, decode_records, read_header,
    set_log_append_time, validate_batch,
)
from klog.codec import codec_id, decompress
from klog.errors import CorruptRecordError

HEADER = struct.Struct(">qiibIhiqqqhii")  # DefaultRecordBatch.java, 61 bytes
assert HEADER.size == 61
CODECS = ["gzip", "snappy", "lz4", "zstd"]


def parse_header(buf):
    (base_offset, length, leader_epoch, magic, crc, attributes, last_offset_delta, base_ts, max_ts,
     producer_id, producer_epoch, base_sequence, count) = HEADER.unpack_from(buf, 0)
    return dict(base_offset=base_offset, length=length, leader_epoch=leader_epoch, magic=magic,
                crc=crc, attributes=attributes, last_offset_delta=last_offset_delta,
                base_timestamp=base_ts, max_timestamp=max_ts, producer_id=producer_id,
                producer_epoch=producer_epoch, base_sequence=base_sequence, record_count=count)


def crc_of(buf):
    return crc32c.crc32c(bytes(buf[21:]))


# -- an independent encoder for crafting (corrupt) batches ------------------------------------
def varint(v):
    z = (v << 1) ^ (v >> 63)
    z &= (1 << 64) - 1
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def field(b):
    return varint(-1) if b is None else varint(len(b)) + b


def record_body(offset_delta=0, ts_delta=0, key=None, value=b"v", headers=(), attributes=0):
    body = bytes([attributes]) + varint(ts_delta) + varint(offset_delta) + field(key) + field(value)
    body += varint(len(headers))
    for hk, hv in headers:
        hk = hk.encode() if isinstance(hk, str) else hk
        body += varint(len(hk)) + hk + field(hv)
    return body


def raw_record(*args, **kwargs):
    body = record_body(*args, **kwargs)
    return varint(len(body)) + body


def raw_batch(records, count=None, last_offset_delta=None, base_offset=0, attributes=0,
              base_ts=1000, max_ts=None, magic=2, length_delta=0, fix_crc=True):
    """A v2 batch around already-encoded ``records`` bytes; the CRC is right unless told."""
    if count is None:
        count = records.count
    records = bytes(records)
    if last_offset_delta is None:
        last_offset_delta = count - 1
    total = 61 + len(records)
    buf = bytearray(HEADER.pack(base_offset, total - 12 + length_delta, -1, magic, 0, attributes,
                                last_offset_delta, base_ts, base_ts if max_ts is None else max_ts,
                                -1, -1, -1, count)) + records
    if fix_crc:
        struct.pack_into(">I", buf, 17, crc_of(buf))
    return bytes(buf)


class Counted(bytes):
    count = 0


def records_of(*recs):
    """Concatenated records; the batch will declare one record per argument."""
    out = Counted(b"".join(recs))
    out.count = len(recs)
    return out


def with_crc(buf):
    buf = bytearray(buf)
    struct.pack_into(">I", buf, 17, crc_of(buf))
    return bytes(buf)


def decoded(buf):
    return [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in klog.decode_batch(buf)]


# -- round trips --------------------------------------------------------------------------------
def test_round_trip_values_keys_headers_timestamps():
    values = [b"first", None, b"", b"\x00\xff" * 100, b"last"]
    keys = [b"k0", None, b"", b"k3", None]
    headers = [
        [("trace", b"abc"), ("empty", b""), ("nul", None)],
        [],
        None,
        [("cl\u00e9", b"\xc3\xa9"), ("\u4e2d\u6587", None), ("\U0001f600", b"smile")],
        [("dup", b"1"), ("dup", b"2")],
    ]
    timestamps = [1_700_000_000_000, 1_699_999_999_000, 1_700_000_000_500, 5, 1_700_000_009_999]
    buf = klog.encode_batch(values, keys, timestamps, headers, base_offset=100)
    records = klog.decode_batch(buf)
    assert [r.offset for r in records] == [100, 101, 102, 103, 104]
    assert [r.value for r in records] == values
    assert records[1].value is None and records[2].value == b""  # tombstone vs empty value
    assert [r.key for r in records] == keys
    assert records[1].key is None and records[2].key == b""
    assert [r.timestamp for r in records] == timestamps
    assert [r.headers for r in records] == [
        (("trace", b"abc"), ("empty", b""), ("nul", None)),
        (),
        (),
        (("cl\u00e9", b"\xc3\xa9"), ("\u4e2d\u6587", None), ("\U0001f600", b"smile")),
        (("dup", b"1"), ("dup", b"2")),
    ]
    for r in records:
        assert isinstance(r, Record)
        assert isinstance(r.headers, tuple)
        assert r.value is None or type(r.value) is bytes


def test_record_value_semantics():
    r = klog.decode_batch(klog.encode_batch([b"v"], [b"k"], [7], [[("h", b"x")]], base_offset=3))[0]
    assert r == Record(3, 7, b"k", b"v", [("h", b"x")])
    assert r != Record(3, 7, b"k", b"w", [("h", b"x")])
    assert hash(r) == hash(Record(3, 7, b"k", b"v", (("h", b"x"),)))
    import pickle
    assert pickle.loads(pickle.dumps(r)) == r
    assert "offset=3" in repr(r) and "value=b'v'" in repr(r)


def test_only_values():
    before = int(time.time() * 1000)
    buf = klog.encode_batch([b"a", b"b", b"c"])
    after = int(time.time() * 1000)
    records = klog.decode_batch(buf)
    assert [(r.offset, r.key, r.value, r.headers) for r in records] == [
        (0, None, b"a", ()), (1, None, b"b", ()), (2, None, b"c", ())]
    # default timestamp: now, the same for every record of the batch
    assert len({r.timestamp for r in records}) == 1
    assert before <= records[0].timestamp <= after


def test_all_tombstones():
    buf = klog.encode_batch([None, None], keys=[b"a", b"b"])
    assert [(r.key, r.value) for r in klog.decode_batch(buf)] == [(b"a", None), (b"b", None)]


def test_single_int_timestamp_applies_to_every_record():
    buf = klog.encode_batch([b"a", b"b", b"c"], timestamps=1234)
    assert [r.timestamp for r in klog.decode_batch(buf)] == [1234, 1234, 1234]
    h = parse_header(buf)
    assert h["base_timestamp"] == h["max_timestamp"] == 1234


@pytest.mark.parametrize("timestamps", [
    [10, 5, 20, 0, 15],                       # out of order: negative deltas
    [0, -1, -1000, 1000, 0],                  # negative timestamps
    [1_700_000_000_000, 0, 1, 2**40, 3],      # big jumps both ways
    [-2**63, 2**63 - 1, 0, -1, 2**62],        # int64 extremes (deltas wrap, as in Java)
])
def test_explicit_timestamps_round_trip(timestamps):
    buf = klog.encode_batch([b"x"] * len(timestamps), timestamps=timestamps)
    assert [r.timestamp for r in klog.decode_batch(buf)] == timestamps
    h = parse_header(buf)
    assert h["base_timestamp"] == timestamps[0]  # Kafka: the first record's timestamp
    assert h["max_timestamp"] == max(timestamps)


def test_timestamps_from_iterables():
    buf = klog.encode_batch((b"a", b"b"), keys=iter([b"k", None]), timestamps=(t for t in (3, 4)),
                            headers=iter([[("h", None)], []]))
    assert decoded(buf) == [(0, 3, b"k", b"a", (("h", None),)), (1, 4, None, b"b", ())]


def test_bytes_like_values_and_keys():
    mv = memoryview(b"..memory..")[2:8]
    values = [bytearray(b"array"), mv, memoryview(bytearray(b"xyz")), b"plain"]
    keys = [memoryview(b"k1"), bytearray(b"k2"), None, b"k4"]
    buf = klog.encode_batch(values, keys)
    records = klog.decode_batch(buf)
    assert [r.value for r in records] == [b"array", b"memory", b"xyz", b"plain"]
    assert [r.key for r in records] == [b"k1", b"k2", None, b"k4"]
    assert all(type(r.value) is bytes for r in records)


def test_non_contiguous_and_multibyte_memoryview_values():
    strided = memoryview(b"abcdef")[::2]  # not contiguous
    wide = memoryview(bytearray(8)).cast("I")  # itemsize 4
    try:
        buf = klog.encode_batch([wide])
    except (TypeError, ValueError):
        pytest.fail("a contiguous multi-byte-item buffer is bytes-like and must be accepted")
    assert klog.decode_batch(buf)[0].value == bytes(8)
    # a strided view: either copied correctly or refused cleanly, never misread
    try:
        buf = klog.encode_batch([strided])
    except (TypeError, ValueError):
        pass
    else:
        assert klog.decode_batch(buf)[0].value == b"ace"


def test_large_values_and_many_records():
    big = bytes(range(256)) * 4096  # 1 MiB
    buf = klog.encode_batch([big, b"small"])
    assert [r.value for r in klog.decode_batch(buf)] == [big, b"small"]
    n = 5000
    buf = klog.encode_batch([str(i).encode() for i in range(n)], base_offset=7)
    records = klog.decode_batch(buf)
    assert len(records) == n
    assert records[-1].offset == 7 + n - 1 and records[-1].value == str(n - 1).encode()
    h = parse_header(buf)
    assert h["record_count"] == n and h["last_offset_delta"] == n - 1


def test_records_in_several_concatenated_batches():
    a = klog.encode_batch([b"a0", b"a1"], base_offset=10)
    b = klog.encode_batch([b"b0"], base_offset=12, compression="lz4")
    assert [(r.offset, r.value) for r in klog.decode_batch(a + b)] == [
        (10, b"a0"), (11, b"a1"), (12, b"b0")]
    assert klog.decode_batch(b"") == []


def read_chunk(buf, start=-1):
    """What Log.records and the consumer do with one chunk: (records, next offset)."""
    chunks = [buf]
    reader = RecordReader(lambda offset: chunks.pop() if chunks else None, start, decompress)
    return list(reader), reader.next_offset


def test_decode_records_min_offset_and_record_reader():
    a = klog.encode_batch([b"a0", b"a1", b"a2"], base_offset=10)
    b = klog.encode_batch([b"b0"], base_offset=13)
    assert [r.offset for r in decode_records(a + b, 12, decompress)] == [12, 13]
    recs, next_offset = read_chunk(a + b, 11)
    assert [r.offset for r in recs] == [11, 12, 13]
    assert next_offset == 14


def test_decode_compressed_without_decompressor_is_corrupt_record_error():
    buf = klog.encode_batch([b"x"], compression="gzip")
    with pytest.raises(CorruptRecordError):
        decode_records(buf)


# -- header fields ----------------------------------------------------------------------------
@pytest.mark.parametrize("compression", [None] + CODECS)
def test_header_fields(compression):
    values = [b"a" * 50, None, b"c" * 50]
    buf = klog.encode_batch(values, keys=[b"k", b"k", None], timestamps=[500, 300, 900],
                            base_offset=123456789012, compression=compression)
    h = parse_header(buf)
    assert h["base_offset"] == 123456789012
    assert h["length"] == len(buf) - 12
    assert h["leader_epoch"] == -1
    assert h["magic"] == 2
    assert h["attributes"] == codec_id(compression)  # codec only: CreateTime, not transactional
    assert h["last_offset_delta"] == 2
    assert h["record_count"] == 3
    assert h["base_timestamp"] == 500
    assert h["max_timestamp"] == 900
    assert (h["producer_id"], h["producer_epoch"], h["base_sequence"]) == (-1, -1, -1)
    # klog's own header reader agrees with struct
    rh = read_header(buf)
    assert isinstance(rh, BatchHeader)
    assert dict(zip(BatchHeader._fields, rh)) == h
    assert rh.size == len(buf)
    assert rh.last_offset == 123456789012 + 2
    assert rh.compression == codec_id(compression)
    assert not rh.is_control and not rh.is_transactional and not rh.log_append_time


def test_read_header_at_position_and_out_of_bounds():
    a = klog.encode_batch([b"a"], base_offset=1)
    b = klog.encode_batch([b"bb", b"cc"], base_offset=2)
    assert read_header(a + b, len(a)).base_offset == 2
    assert read_header(a + b, len(a)).record_count == 2
    for pos in (-1, len(a + b) - 60, len(a + b)):
        with pytest.raises(CorruptRecordError):
            read_header(a + b, pos)
    with pytest.raises(CorruptRecordError):
        read_header(a[:60])


def test_build_batch_producer_fields_and_transactional():
    buf = build_batch([b"x", b"y"], None, 5, None, 9, 0, None, producer_id=77, producer_epoch=3,
                      base_sequence=40, leader_epoch=12, transactional=True)
    h = parse_header(buf)
    assert (h["producer_id"], h["producer_epoch"], h["base_sequence"]) == (77, 3, 40)
    assert h["leader_epoch"] == 12
    assert h["attributes"] == 0x10
    assert read_header(buf).is_transactional
    assert h["crc"] == crc_of(buf)
    assert decoded(buf) == [(9, 5, None, b"x", ()), (10, 5, None, b"y", ())]


def test_build_batch_rejects_unknown_codec_and_missing_compressor():
    with pytest.raises(ValueError):
        build_batch([b"x"], codec=5, compress=lambda b: b)
    with pytest.raises(ValueError):
        build_batch([b"x"], codec=-1)
    with pytest.raises(ValueError):
        build_batch([b"x"], codec=3, compress=None)


# -- CRC ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compression", [None] + CODECS)
def test_crc_is_crc32c_of_bytes_21_to_end(compression):
    buf = klog.encode_batch([b"hello", b"world"], keys=[b"k", None], headers=[[("h", b"v")], []],
                            compression=compression)
    assert parse_header(buf)["crc"] == crc32c.crc32c(buf[21:])
    assert validate_batch(buf) == len(buf)


def test_base_offset_does_not_change_crc_or_anything_else():
    args = ([b"a", b"b"], [b"k", None], [1, 2], [[("h", b"1")], None])
    zero = klog.encode_batch(*args, base_offset=0)
    for base in (1, 1000, 2**40, 2**63 - 1):
        other = klog.encode_batch(*args, base_offset=base)
        assert other[8:] == zero[8:]
        assert struct.unpack(">q", other[:8])[0] == base
    # and a log rewriting the base offset in place keeps the batch valid
    moved = struct.pack(">q", 555) + zero[8:]
    validate_batch(moved)
    assert [r.offset for r in klog.decode_batch(moved)] == [555, 556]


def test_leader_epoch_is_not_covered_by_crc():
    buf = bytearray(klog.encode_batch([b"a"]))
    struct.pack_into(">i", buf, 12, 42)
    assert validate_batch(bytes(buf)) == len(buf)
    assert read_header(bytes(buf)).leader_epoch == 42


# -- compression ----------------------------------------------------------------------------------
@pytest.mark.parametrize("compression", CODECS + [c.upper() for c in CODECS] + [1, 2, 3, 4])
def test_each_codec_round_trips(compression):
    values = [b"payload-%d " % i * 20 for i in range(200)] + [None, b""]
    keys = [b"key-%d" % (i % 7) for i in range(200)] + [None, b"k"]
    headers = [[("i", str(i).encode())] for i in range(200)] + [None, [("\u00e9", None)]]
    timestamps = list(range(1000, 1200)) + [5, 2000]
    buf = klog.encode_batch(values, keys, timestamps, headers, base_offset=9,
                            compression=compression)
    plain = klog.encode_batch(values, keys, timestamps, headers, base_offset=9)
    cid = codec_id(compression)
    assert parse_header(buf)["attributes"] & 7 == cid
    assert len(buf) < len(plain)  # it really is compressed
    assert decoded(buf) == decoded(plain)
    # the payload after the header is the codec's own stream
    payload = buf[61:]
    magic = {1: b"\x1f\x8b", 2: b"\x82SNAPPY\x00", 3: b"\x04\x22\x4d\x18", 4: b"\x28\xb5\x2f\xfd"}
    assert payload.startswith(magic[cid])
    assert decompress(cid, payload) == plain[61:]


def test_lz4_frame_is_kafka_compatible():
    """KIP-57 framing as the Java writer: FLG 0x60 (v1, independent blocks, no checksums, no
    content size), BD 0x40 (64 KiB blocks)."""
    buf = klog.encode_batch([bytes(range(256)) * 1024], compression="lz4")
    frame = buf[61:]
    assert frame[:4] == b"\x04\x22\x4d\x18"
    assert frame[4] == 0x60
    assert frame[5] == 0x40


def test_compression_none_names():
    for c in (None, "none", "NONE", 0):
        buf = klog.encode_batch([b"x" * 100], compression=c)
        assert parse_header(buf)["attributes"] == 0


# -- LogAppendTime --------------------------------------------------------------------------------
@pytest.mark.parametrize("compression", [None, "lz4", "zstd"])
def test_set_log_append_time(compression):
    buf = klog.encode_batch([b"a", b"b", b"c"], timestamps=[30, 10, 20], base_offset=4,
                            compression=compression)
    stamped = set_log_append_time(buf, 999_999)
    assert type(stamped) is bytes
    assert parse_header(buf)["attributes"] & 0x08 == 0  # the input is untouched
    h = parse_header(stamped)
    assert h["attributes"] == 0x08 | codec_id(compression)
    assert h["max_timestamp"] == 999_999
    assert h["base_timestamp"] == 30
    assert h["crc"] == crc32c.crc32c(stamped[21:])
    assert validate_batch(stamped) == len(stamped)
    assert read_header(stamped).log_append_time
    records = klog.decode_batch(stamped)
    assert [r.timestamp for r in records] == [999_999] * 3
    assert [r.offset for r in records] == [4, 5, 6]
    assert [r.value for r in records] == [b"a", b"b", b"c"]
    # only the attributes, maxTimestamp and CRC changed
    assert stamped[:17] == buf[:17]
    assert stamped[23:35] == buf[23:35] and stamped[43:] == buf[43:]


def test_set_log_append_time_rejects_garbage():
    with pytest.raises(CorruptRecordError):
        set_log_append_time(b"\x00" * 10, 5)
    buf = bytearray(klog.encode_batch([b"a"]))
    buf[16] = 1
    with pytest.raises(CorruptRecordError):
        set_log_append_time(bytes(buf), 5)


# -- bad arguments to the builder -------------------------------------------------------------
@pytest.mark.parametrize("kwargs, exc", [
    (dict(values=[]), ValueError),
    (dict(values=()), ValueError),
    (dict(values=None), TypeError),
    (dict(values=5), TypeError),
    (dict(values=b"abc"), TypeError),            # one value, not a sequence of values
    (dict(values="abc"), TypeError),
    (dict(values=bytearray(b"abc")), TypeError),
    (dict(values=["text"]), TypeError),          # str is not bytes
    (dict(values=[b"ok", "text"]), TypeError),
    (dict(values=[1]), TypeError),
    (dict(values=[{}]), TypeError),
    (dict(values=[b"a"], keys=["k"]), TypeError),
    (dict(values=[b"a"], keys=[1]), TypeError),
    (dict(values=[b"a"], keys=b"k"), TypeError),
    (dict(values=[b"a", b"b"], keys=[b"k"]), ValueError),
    (dict(values=[b"a"], keys=[b"k", b"l"]), ValueError),
    (dict(values=[b"a"], timestamps=1.5), TypeError),
    (dict(values=[b"a"], timestamps=[1.5]), TypeError),
    (dict(values=[b"a"], timestamps=["1"]), TypeError),
    (dict(values=[b"a"], timestamps=[None]), TypeError),
    (dict(values=[b"a"], timestamps=[2**70]), OverflowError),
    (dict(values=[b"a", b"b"], timestamps=[1]), ValueError),
    (dict(values=[b"a"], headers=["x"]), TypeError),
    (dict(values=[b"a"], headers=[5]), TypeError),
    (dict(values=[b"a"], headers=[{"k": b"v"}]), TypeError),
    (dict(values=[b"a"], headers=[[("k",)]]), TypeError),
    (dict(values=[b"a"], headers=[[("k", b"v", b"w")]]), TypeError),
    (dict(values=[b"a"], headers=[[["k", b"v"]]]), TypeError),
    (dict(values=[b"a"], headers=[[(b"k", b"v")]]), TypeError),
    (dict(values=[b"a"], headers=[[(None, b"v")]]), TypeError),
    (dict(values=[b"a"], headers=[[("k", "v")]]), TypeError),
    (dict(values=[b"a"], headers=[[("k", 1)]]), TypeError),
    (dict(values=[b"a"], headers=[[("\udc80", b"v")]]), ValueError),  # unencodable key
    (dict(values=[b"a", b"b"], headers=[[]]), ValueError),
    (dict(values=[b"a"], compression="nope"), ValueError),
    (dict(values=[b"a"], compression=7), ValueError),
    (dict(values=[b"a"], compression=True), ValueError),
    (dict(values=[b"a"], base_offset="1"), TypeError),
])
def test_bad_arguments(kwargs, exc):
    with pytest.raises(exc) as info:
        klog.encode_batch(**kwargs)
    assert not isinstance(info.value, CorruptRecordError)
    assert str(info.value)


def test_bad_argument_messages_name_the_culprit():
    with pytest.raises(TypeError, match=r"values\[1\].*str"):
        klog.encode_batch([b"ok", "text"])
    with pytest.raises(TypeError, match=r"keys\[0\]"):
        klog.encode_batch([b"a"], keys=["k"])
    with pytest.raises(ValueError, match="keys has 1 items for 2 values"):
        klog.encode_batch([b"a", b"b"], keys=[b"k"])
    with pytest.raises(ValueError, match="timestamps has 1 items for 2 values"):
        klog.encode_batch([b"a", b"b"], timestamps=[1])
    with pytest.raises(TypeError, match=r"headers\[0\]"):
        klog.encode_batch([b"a"], headers=[[("k", "v")]])
    with pytest.raises(ValueError, match="at least one record"):
        klog.encode_batch([])


# -- corrupt buffers --------------------------------------------------------------------------------
SMALL = klog.encode_batch([b"v1", None, b""], keys=[b"k", None, b"kk"], timestamps=[5, 3, 9],
                          headers=[[("h", b"x"), ("\u00e9", None)], [], None], base_offset=7)
SMALL_LZ4 = klog.encode_batch([b"z" * 40] * 3, compression="lz4")


def assert_corrupt(buf, *, records=True):
    """Every reader rejects ``buf`` with CorruptRecordError (and nothing else)."""
    with pytest.raises(CorruptRecordError):
        klog.decode_batch(buf)
    with pytest.raises(CorruptRecordError):
        read_chunk(buf)
    if records:
        with pytest.raises(CorruptRecordError):
            check_records(buf)


@pytest.mark.parametrize("batch", [SMALL, SMALL_LZ4], ids=["plain", "lz4"])
def test_every_truncation_is_rejected(batch):
    assert len(klog.decode_batch(batch)) == 3
    for cut in range(1, len(batch)):
        piece = batch[:cut]
        with pytest.raises(CorruptRecordError):
            klog.decode_batch(piece)
        with pytest.raises(CorruptRecordError):
            validate_batch(piece)
        with pytest.raises(CorruptRecordError):
            check_records(piece)
        with pytest.raises(CorruptRecordError):
            read_chunk(piece)


def test_truncation_with_consistent_length_and_crc_is_rejected():
    """Cut records off and fix up length and CRC: only the record walk can notice."""
    for cut in range(62, len(SMALL)):
        buf = bytearray(SMALL[:cut])
        struct.pack_into(">i", buf, 8, cut - 12)
        buf = with_crc(buf)
        validate_batch(buf)  # framing and CRC are fine now
        assert_corrupt(buf)


@pytest.mark.parametrize("magic", [0, 1, 3, 255])
def test_bad_magic(magic):
    buf = bytearray(SMALL)
    buf[16] = magic  # not covered by the CRC: the CRC still matches
    assert_corrupt(bytes(buf))
    with pytest.raises(CorruptRecordError, match="magic"):
        validate_batch(bytes(buf))


def test_bad_crc():
    buf = bytearray(SMALL)
    buf[17] ^= 0x01
    with pytest.raises(CorruptRecordError, match="CRC"):
        validate_batch(bytes(buf))
    with pytest.raises(CorruptRecordError, match="CRC"):
        klog.decode_batch(bytes(buf))
    # validation can be told to skip the CRC (recovery of a trusted segment)
    assert validate_batch(bytes(buf), False) == len(buf)


@pytest.mark.parametrize("pos", [21, 22, 30, 40, 50, 58, 61, -1])
def test_any_flipped_covered_byte_fails_crc(pos):
    for batch in (SMALL, SMALL_LZ4):
        buf = bytearray(batch)
        buf[pos] ^= 0x40
        with pytest.raises(CorruptRecordError, match="CRC"):
            validate_batch(bytes(buf))
        with pytest.raises(CorruptRecordError):
            klog.decode_batch(bytes(buf))


@pytest.mark.parametrize("length", [-1, -2**31, 0, 48, 1 << 30])
def test_declared_length_impossible(length):
    buf = bytearray(SMALL)
    struct.pack_into(">i", buf, 8, length)
    assert_corrupt(bytes(buf))
    with pytest.raises(CorruptRecordError, match="length"):
        validate_batch(bytes(buf))


@pytest.mark.parametrize("delta", [1, 2, 100])
def test_declared_length_too_big(delta):
    buf = bytearray(SMALL)
    struct.pack_into(">i", buf, 8, len(SMALL) - 12 + delta)
    assert_corrupt(bytes(buf))
    with pytest.raises(CorruptRecordError):
        validate_batch(bytes(buf))
    # even with spare bytes behind it, the CRC no longer matches
    assert_corrupt(bytes(buf) + b"\x00" * delta)


@pytest.mark.parametrize("delta", [1, 2, 10])
def test_declared_length_too_small(delta):
    buf = bytearray(SMALL)
    struct.pack_into(">i", buf, 8, len(SMALL) - 12 - delta)
    assert_corrupt(bytes(buf))
    with pytest.raises(CorruptRecordError):
        validate_batch(bytes(buf))
    with pytest.raises(CorruptRecordError):
        validate_batch(bytes(buf), False, True)  # exact: the buffer is longer than the batch


def test_stray_bytes_after_a_batch():
    with pytest.raises(CorruptRecordError, match="exactly one batch"):
        validate_batch(SMALL + b"\x00")
    assert validate_batch(SMALL + b"\x00", True, False) == len(SMALL)
    for tail in (b"\x00", b"\x00" * 11, b"\xff" * 60, SMALL[:61]):
        with pytest.raises(CorruptRecordError):
            klog.decode_batch(SMALL + tail)


def test_header_only_batch_with_no_records():
    buf = raw_batch(b"", count=0, last_offset_delta=0)
    with pytest.raises(CorruptRecordError):
        check_records(buf)
    buf = raw_batch(b"", count=1)
    assert_corrupt(buf)


def test_crafted_valid_batch_decodes():
    """Sanity check of the test's own encoder: a well-formed crafted batch is accepted."""
    recs = records_of(raw_record(0, 0, b"k", b"v", [("h", None)]), raw_record(1, -3, None, None))
    buf = raw_batch(recs, base_offset=50)
    assert check_records(buf) == 2
    assert decoded(buf) == [(50, 1000, b"k", b"v", (("h", None),)), (51, 997, None, None, ())]
    assert buf[61:] == klog.encode_batch([b"v", None], [b"k", None], [1000, 997],
                                         [[("h", None)], None])[61:]


def framed(*parts):
    """A record whose length prefix matches the bytes that follow it."""
    body = b"".join(parts)
    return varint(len(body)) + body


def lying_records():
    """Record-level lies, each inside a batch whose length and CRC are right."""
    ok = raw_record(0, 0, b"k", b"v")
    body = record_body(0, 0, b"k", b"v")
    pre = (b"\x00", varint(0), varint(0))  # attributes, timestamp delta, offset delta
    null = varint(-1)
    cases = {
        "record length past end": records_of(varint(len(body) + 5) + body),
        "record length short": records_of(varint(len(body) - 1) + body),
        "record length zero": records_of(varint(0) + body),
        "record length negative": records_of(varint(-4) + body),
        "key length past record": records_of(framed(*pre, varint(50), b"k", null, varint(0))),
        "value length past record": records_of(framed(*pre, null, varint(60), b"v", varint(0))),
        "key length below -1": records_of(framed(*pre, varint(-2), null, varint(0))),
        "value length below -1": records_of(framed(*pre, null, varint(-7), varint(0))),
        "header count negative": records_of(framed(*pre, null, null, varint(-1))),
        "header count too big": records_of(framed(*pre, null, null, varint(1000))),
        "header count missing": records_of(framed(*pre, null, null)),
        "header key past record": records_of(framed(*pre, null, null, varint(1), varint(20), b"h")),
        "header key negative": records_of(framed(*pre, null, null, varint(1), null, null)),
        "header value past record": records_of(
            framed(*pre, null, null, varint(1), varint(1), b"h", varint(30))),
        "header value below -1": records_of(
            framed(*pre, null, null, varint(1), varint(1), b"h", varint(-3))),
        "header key not utf-8": records_of(raw_record(0, 0, None, b"v", [(b"\xff\xfe", b"x")])),
        "stray bytes inside record": records_of(framed(body, b"\x00\x00")),
        "overlong varint": records_of(b"\xff" * 11 + ok),
        "overlong timestamp varint": records_of(framed(b"\x00", b"\xff" * 10 + b"\x01", varint(0),
                                                       null, null, varint(0))),
        "truncated varint at end": records_of(ok + b"\x80"),
        "count larger than records": records_of(ok, b""),
        "stray bytes after records": records_of(ok + b"\x00\x00\x00"),
        "second record truncated": records_of(ok, raw_record(1, 0, b"k", b"v")[:-2]),
    }
    return cases


# check_records walks framing and offset deltas only, not keys, values or headers, so only the
# decoders are held to these (check_records may still raise CorruptRecordError, never worse)
NOT_SEEN_BY_CHECK_RECORDS = {
    "key length past record", "value length past record", "key length below -1",
    "value length below -1", "header count negative", "header count too big",
    "header count missing", "header key past record", "header key negative",
    "header value past record", "header value below -1", "header key not utf-8",
    "stray bytes inside record"}


@pytest.mark.parametrize("name", list(lying_records()))
def test_records_that_lie(name):
    recs = lying_records()[name]
    buf = raw_batch(recs)
    validate_batch(buf)  # header, length and CRC are all fine
    assert_corrupt(buf, records=name not in NOT_SEEN_BY_CHECK_RECORDS)
    try:
        check_records(buf)
    except CorruptRecordError:
        pass


def test_count_smaller_than_records():
    buf = raw_batch(raw_record(0) + raw_record(1), count=1)
    assert_corrupt(buf)


def test_negative_and_huge_record_count():
    for count in (-1, -2**31, 2**31 - 1):
        buf = raw_batch(bytes(raw_record(0)), count=count, last_offset_delta=0)
        assert_corrupt(buf)


@pytest.mark.parametrize("deltas, last", [
    ([0, 2], 1),       # a gap
    ([1, 2], 1),       # does not start at 0
    ([0, 0], 1),       # repeated
    ([1, 0], 1),       # backwards
    ([0, -1], 1),      # negative
    ([0, 1], 2),       # lastOffsetDelta disagrees with the count
    ([0, 1], 0),
    ([0, 1], -1),
])
def test_check_records_rejects_wrong_offset_deltas(deltas, last):
    recs = b"".join(raw_record(d) for d in deltas)
    buf = raw_batch(recs, count=len(deltas), last_offset_delta=last)
    validate_batch(buf)
    with pytest.raises(CorruptRecordError):
        check_records(buf)


def test_check_records_accepts_good_batches():
    for n in (1, 2, 300):
        buf = klog.encode_batch([b"x"] * n)
        assert check_records(buf) == n
    assert check_records(SMALL_LZ4) == 3
    # a batch from a different base offset or with a LogAppendTime stamp is still fine
    assert check_records(set_log_append_time(SMALL, 1)) == 3


def test_compressed_batch_with_bad_payload_and_good_crc():
    for codec in (1, 2, 3, 4):
        for payload in (b"", b"\x00" * 20, b"garbage payload!" * 3):
            buf = raw_batch(payload, count=1, attributes=codec)
            with pytest.raises(CorruptRecordError):
                klog.decode_batch(buf)


@pytest.mark.parametrize("compression", CODECS)
def test_compressed_batch_whose_records_lie(compression):
    """The codec stream is fine but the records inside it are not."""
    from klog.codec import compressor
    cid = codec_id(compression)
    good = raw_record(0, 0, b"k", b"v")
    for inner, count in ((good + b"\x00", 1), (good[:-1], 1), (good, 2),
                         (raw_record(0, 0, b"k", b"v", [(b"\xff", None)]), 1)):
        buf = raw_batch(compressor(cid)(inner), count=count, attributes=cid)
        validate_batch(buf)
        with pytest.raises(CorruptRecordError):
            klog.decode_batch(buf)


def test_unknown_codec_in_attributes():
    for codec in (5, 6, 7):
        buf = raw_batch(bytes(raw_record(0)), count=1, attributes=codec)
        with pytest.raises(CorruptRecordError):
            klog.decode_batch(buf)


def test_wrong_buffer_types_are_type_errors():
    for bad in (None, 5, "text", [1, 2]):
        for fn in (klog.decode_batch, validate_batch, check_records, read_header):
            with pytest.raises(TypeError):
                fn(bad)


def test_readers_accept_bytes_like():
    for buf in (bytearray(SMALL), memoryview(SMALL), memoryview(b"xx" + SMALL)[2:]):
        assert len(klog.decode_batch(buf)) == 3
        assert validate_batch(buf) == len(SMALL)
        assert check_records(buf) == 3
        assert read_header(buf).base_offset == 7


# -- property tests ---------------------------------------------------------------------------------
opt_bytes = st.none() | st.binary(max_size=64)
header_st = st.lists(st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=16)),
                     max_size=4)
record_st = st.tuples(opt_bytes, opt_bytes, st.none() | header_st,
                      st.integers(-2**61, 2**61))


@settings(max_examples=300, deadline=None)
@given(records=st.lists(record_st, min_size=1, max_size=20),
       base_offset=st.integers(0, 2**62),
       compression=st.sampled_from([None] + CODECS))
def test_property_round_trip(records, base_offset, compression):
    keys = [r[0] for r in records]
    values = [r[1] for r in records]
    headers = [r[2] for r in records]
    timestamps = [r[3] for r in records]
    buf = klog.encode_batch(values, keys, timestamps, headers, base_offset, compression)
    assert validate_batch(buf) == len(buf)
    assert check_records(buf) == len(records)
    assert parse_header(buf)["crc"] == crc_of(buf)
    out = klog.decode_batch(buf)
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in out] == [
        (base_offset + i, timestamps[i], keys[i], values[i], tuple(headers[i] or ()))
        for i in range(len(records))]


def _only_corrupt_record_errors(buf):
    for fn in (klog.decode_batch, validate_batch, check_records,
               read_chunk, lambda b: validate_batch(b, False, False),
               lambda b: set_log_append_time(b, 1)):
        try:
            fn(buf)
        except CorruptRecordError:
            pass


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_property_random_bytes_only_raise_corrupt_record_error(buf):
    _only_corrupt_record_errors(buf)


@settings(max_examples=500, deadline=None)
@given(body=st.binary(max_size=200), count=st.integers(-3, 40),
       attributes=st.integers(-0x8000, 0x7FFF), magic=st.sampled_from([2, 2, 2, 1]))
def test_property_random_records_behind_a_valid_header(body, count, attributes, magic):
    """Random record bytes behind a correct length, magic and CRC reach the record parsers."""
    buf = raw_batch(body, count=count, last_offset_delta=max(count - 1, 0),
                    attributes=attributes if attributes & 0x07 < 5 else attributes & ~0x07,
                    magic=magic)
    _only_corrupt_record_errors(buf)


@settings(max_examples=500, deadline=None)
@given(base=st.sampled_from([SMALL, SMALL_LZ4,
                             klog.encode_batch([b"g" * 30] * 3, compression="gzip"),
                             klog.encode_batch([b"s" * 30] * 3, compression="snappy"),
                             klog.encode_batch([b"d" * 30] * 3, compression="zstd")]),
       edits=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=4),
       fix_crc=st.booleans())
def test_property_mutated_batches_only_raise_corrupt_record_error(base, edits, fix_crc):
    buf = bytearray(base)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    if fix_crc:
        buf = bytearray(with_crc(buf))
    _only_corrupt_record_errors(bytes(buf))


# --- compressed batches are checked inside before a log accepts them ------------------------

def test_append_batch_rejects_compressed_batch_with_garbage_inside(tmp_path):
    import lz4.frame

    import klog
    from klog.errors import CorruptRecordError

    good = klog.encode_batch([b"a", b"b"], compression="lz4")
    payload = lz4.frame.compress(b"\x00" * 40, block_linked=False)   # valid lz4, bad records
    bad = bytearray(good[:61] + payload)
    bad[8:12] = (len(bad) - 12).to_bytes(4, "big")
    bad[17:21] = crc32c.crc32c(bytes(bad[21:])).to_bytes(4, "big")  # a CRC that checks out
    with klog.Log.open(tmp_path / "log") as log:
        with pytest.raises(CorruptRecordError):
            log.append_batch(bytes(bad))
        assert log.log_end_offset == 0
        assert log.append_batch(good) == 0
        assert [r.value for r in log.records()] == [b"a", b"b"]
