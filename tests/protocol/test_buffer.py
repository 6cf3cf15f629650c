"""Wire primitives: fixed vectors, limits, and the frame writer."""
import struct
import uuid

import pytest

from klog.protocol.buffer import ZERO_COPY_MIN, ReadBuffer, WriteBuffer
from klog.protocol.errors import (
    EncodeError, InvalidLengthError, InvalidStringError, InvalidVarintError, NullNotAllowedError,
    ProtocolError, TruncatedError,
)

# (value, encoding) for unsigned varints - values from the protobuf/Kafka ByteUtils tests.
UVARINTS = [
    (0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02"),
    (16383, b"\xff\x7f"), (16384, b"\x80\x80\x01"), (2**31 - 1, b"\xff\xff\xff\xff\x07"),
    (2**32 - 1, b"\xff\xff\xff\xff\x0f"),
]
# zigzag: 0->0, -1->1, 1->2, -2->3 ...
VARINTS = [(0, b"\x00"), (-1, b"\x01"), (1, b"\x02"), (-2, b"\x03"), (63, b"\x7e"), (-64, b"\x7f"),
           (64, b"\x80\x01"), (2**31 - 1, b"\xfe\xff\xff\xff\x0f"), (-(2**31), b"\xff\xff\xff\xff\x0f")]


@pytest.mark.parametrize("value,enc", UVARINTS)
def test_uvarint_vectors(value, enc):
    w = WriteBuffer()
    w.write_uvarint(value)
    assert w.getvalue() == enc
    r = ReadBuffer(enc)
    assert r.read_uvarint() == value and r.remaining == 0


@pytest.mark.parametrize("value,enc", VARINTS)
def test_zigzag_varint_vectors(value, enc):
    w = WriteBuffer()
    w.write_varint(value)
    assert w.getvalue() == enc
    assert ReadBuffer(enc).read_varint() == value


def test_varlong_roundtrip_extremes():
    for v in (0, -1, 2**63 - 1, -(2**63), 1234567890123):
        w = WriteBuffer()
        w.write_varlong(v)
        assert ReadBuffer(w.getvalue()).read_varlong() == v
    assert len(_w(lambda w: w.write_varlong(-(2**63)))) == 10


def _w(fn):
    w = WriteBuffer()
    fn(w)
    return w.getvalue()


def test_overlong_varint_rejected():
    with pytest.raises(InvalidVarintError):
        ReadBuffer(b"\x80\x80\x80\x80\x80\x01").read_uvarint("x")
    with pytest.raises(InvalidVarintError):
        ReadBuffer(b"\xff\xff\xff\xff\x1f").read_uvarint("x")  # 5 bytes but > 32 bits
    with pytest.raises(TruncatedError):
        ReadBuffer(b"\x80\x80").read_uvarint("x")


def test_fixed_width_big_endian():
    data = struct.pack(">bhiqIHd", -2, -3, -4, -5, 2**32 - 1, 65535, 2.5)
    r = ReadBuffer(data)
    assert [r.read_int8(), r.read_int16(), r.read_int32(), r.read_int64(), r.read_uint32(),
            r.read_uint16(), r.read_float64()] == [-2, -3, -4, -5, 2**32 - 1, 65535, 2.5]
    assert r.remaining == 0


def test_strings_classic_and_compact():
    assert _w(lambda w: w.write_string("héllo")) == b"\x00\x06h\xc3\xa9llo"
    assert _w(lambda w: w.write_string(None, nullable=True)) == b"\xff\xff"
    assert _w(lambda w: w.write_compact_string("ab")) == b"\x03ab"
    assert _w(lambda w: w.write_compact_string(None, nullable=True)) == b"\x00"
    assert ReadBuffer(b"\x00\x06h\xc3\xa9llo").read_string() == "héllo"
    assert ReadBuffer(b"\xff\xff").read_string(nullable=True) is None
    assert ReadBuffer(b"\x03ab").read_compact_string() == "ab"
    assert ReadBuffer(b"\x00").read_compact_string(nullable=True) is None
    with pytest.raises(NullNotAllowedError, match="field topic"):
        ReadBuffer(b"\xff\xff").read_string("topic")
    with pytest.raises(InvalidStringError):
        ReadBuffer(b"\x00\x02\xff\xfe").read_string("s")
    with pytest.raises(EncodeError):
        WriteBuffer().write_string(None, "s")


def test_declared_lengths_checked_before_reading():
    with pytest.raises(InvalidLengthError, match="field name.*declared length 5"):
        ReadBuffer(b"\x00\x05abc").read_string("name")
    with pytest.raises(InvalidLengthError):
        ReadBuffer(b"\x7f\xff\xff\xff").read_bytes("records")
    with pytest.raises(InvalidLengthError):
        ReadBuffer(b"\xff\xff\xff\xff\x0f").read_compact_bytes("records")
    with pytest.raises(InvalidLengthError):
        ReadBuffer(b"\x7f\xff\xff\xff").read_array_length(4, "topics")
    with pytest.raises(InvalidLengthError):
        ReadBuffer(b"\xff\xff\xff\xfe").read_array_length(4, "topics")  # -2
    # a count of 3 int32s needs 12 bytes
    with pytest.raises(InvalidLengthError):
        ReadBuffer(b"\x00\x00\x00\x03" + b"\0" * 11).read_array_length(4, "ids")
    assert ReadBuffer(b"\x00\x00\x00\x03" + b"\0" * 12).read_array_length(4, "ids") == 3


def test_bytes_are_zero_copy_slices():
    data = bytearray(b"\x00\x00\x00\x04abcdXY")
    r = ReadBuffer(data)
    mv = r.read_bytes("records")
    assert isinstance(mv, memoryview) and bytes(mv) == b"abcd"
    data[4] = ord("z")          # the slice views the original buffer
    assert bytes(mv) == b"zbcd"


def test_uuid_and_tagged_fields():
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    w = WriteBuffer()
    w.write_uuid(u)
    w.write_uvarint(2)
    w.write_uvarint(0), w.write_uvarint(1), w.write_raw(b"\x05")
    w.write_uvarint(7), w.write_uvarint(2), w.write_raw(b"hi")
    r = ReadBuffer(w.getvalue())
    assert r.read_uuid() == u
    tags = {t: bytes(s.read_raw(s.remaining)) for t, s in r.read_tagged_fields("T")}
    assert tags == {0: b"\x05", 7: b"hi"}
    # a tagged field that claims more bytes than exist
    with pytest.raises(ProtocolError):
        list(ReadBuffer(b"\x01\x00\x09ab").read_tagged_fields("T"))


def test_write_buffer_frames_and_references_large_values():
    big = memoryview(bytearray(b"R" * ZERO_COPY_MIN))
    w = WriteBuffer()
    w.start_message()
    w.write_int32(7)
    w.write_bytes(big)
    w.write_int16(1)
    w.end_message()
    w.start_message()
    w.write_int8(9)
    w.end_message()
    bufs = w.buffers()
    assert any(b is big for b in bufs), "large value should be referenced, not copied"
    out = w.getvalue()
    size1 = struct.unpack(">i", out[:4])[0]
    assert size1 == 4 + 4 + ZERO_COPY_MIN + 2
    assert out[4 + size1:] == b"\x00\x00\x00\x01\x09"
    assert len(w) == len(out)
    with pytest.raises(RuntimeError):
        w.end_message()


def test_encode_range_errors_name_the_field():
    with pytest.raises(EncodeError, match="field acks"):
        WriteBuffer().write_int16(70000, "acks")
