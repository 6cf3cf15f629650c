"""Read cursor and write buffer for Kafka wire primitives.

Wire primitives (``clients/src/main/java/org/apache/kafka/common/protocol/types/Type.java``),
all big-endian:

    int8/16/32/64, uint16/32, float64  fixed width
    bool                               int8, non-zero = true
    unsigned varint / varlong          LEB128, at most 5 / 10 bytes
    varint / varlong                   zigzag, then as unsigned
    string                             int16 N, N bytes UTF-8       (nullable: N = -1)
    bytes                              int32 N, N bytes             (nullable: N = -1)
    compact string / bytes             uvarint N+1, N bytes         (0 = null)
    array                              int32 N, N items             (nullable: N = -1)
    compact array                      uvarint N+1, N items         (0 = null)
    uuid                               16 bytes
    tagged fields (KIP-482)            uvarint count, then per field: uvarint tag,
                                       uvarint size, size bytes; tags ascending

``ReadBuffer`` never trusts a declared length: every length or count is checked
against the bytes left *before* anything is allocated (CVE-2022-34917), so a
4-byte "2**31-1 items" frame fails at once instead of allocating.  Byte fields come
back as ``memoryview`` slices of the input; record batches are never copied.

``WriteBuffer`` builds frames.  ``start_message()`` reserves the int32 size prefix,
``end_message()`` fills it in.  Large ``bytes``-like values (record batches read
from mapped segments) are kept by reference as separate chunks: ``buffers()`` returns
the list for ``socket.sendmsg`` / ``transport.writelines`` without joining.
"""
from __future__ import annotations

import struct
import uuid as _uuid

from .errors import (
    EncodeError,
    InvalidLengthError,
    InvalidStringError,
    InvalidTaggedFieldError,
    InvalidVarintError,
    NullNotAllowedError,
    TruncatedError,
)

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")

#: Values at least this long are referenced, not copied, by ``WriteBuffer.write_bytes_ref``.
ZERO_COPY_MIN = 4096


class ReadBuffer:
    """A cursor over a bytes-like object.  Not thread-safe; one reader per frame.

    ``field`` arguments only name the field in error messages.
    """

    __slots__ = ("_mv", "_pos", "_end", "_base")

    def __init__(self, data, start: int = 0, end: int | None = None):
        mv = data if isinstance(data, memoryview) else memoryview(data)
        if mv.format != "B" or mv.ndim != 1:
            mv = mv.cast("B")
        self._mv = mv
        self._pos = start
        self._end = len(mv) if end is None else end
        self._base = 0

    # -- position -------------------------------------------------------------
    @property
    def pos(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def _need(self, n: int, field) -> int:
        pos = self._pos
        if n > self._end - pos:
            raise TruncatedError(
                f"needs {n} bytes, only {self._end - pos} left", field, pos)
        self._pos = pos + n
        return pos

    def sub(self, n: int, field=None) -> "ReadBuffer":
        """A reader over the next ``n`` bytes; this cursor moves past them."""
        start = self._need(n, field)
        r = ReadBuffer(self._mv, start, start + n)
        return r

    def skip(self, n: int, field=None) -> None:
        self._need(n, field)

    def check_count(self, count: int, min_item_size: int, field) -> None:
        """Refuse a declared item count that cannot fit in the bytes left."""
        if count < 0:
            raise InvalidLengthError(f"negative count {count}", field, self._pos)
        if count * max(min_item_size, 1) > self._end - self._pos:
            raise InvalidLengthError(
                f"declared {count} items of >= {max(min_item_size, 1)} bytes, "
                f"only {self._end - self._pos} bytes left", field, self._pos)

    # -- fixed width ----------------------------------------------------------
    def read_int8(self, field=None) -> int:
        return _I8.unpack_from(self._mv, self._need(1, field))[0]

    def read_bool(self, field=None) -> bool:
        return self._mv[self._need(1, field)] != 0

    def read_int16(self, field=None) -> int:
        return _I16.unpack_from(self._mv, self._need(2, field))[0]

    def read_uint16(self, field=None) -> int:
        return _U16.unpack_from(self._mv, self._need(2, field))[0]

    def read_int32(self, field=None) -> int:
        return _I32.unpack_from(self._mv, self._need(4, field))[0]

    def read_uint32(self, field=None) -> int:
        return _U32.unpack_from(self._mv, self._need(4, field))[0]

    def read_int64(self, field=None) -> int:
        return _I64.unpack_from(self._mv, self._need(8, field))[0]

    def read_float64(self, field=None) -> float:
        return _F64.unpack_from(self._mv, self._need(8, field))[0]

    def read_uuid(self, field=None) -> _uuid.UUID:
        p = self._need(16, field)
        return _uuid.UUID(bytes=bytes(self._mv[p:p + 16]))

    # -- varints --------------------------------------------------------------
    def _read_uvar(self, max_bytes: int, field) -> int:
        mv, pos, end = self._mv, self._pos, self._end
        result = shift = 0
        for i in range(max_bytes):
            if pos + i >= end:
                raise TruncatedError("varint runs past the end", field, pos)
            b = mv[pos + i]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                self._pos = pos + i + 1
                return result
            shift += 7
        raise InvalidVarintError(f"varint longer than {max_bytes} bytes", field, pos)

    def read_uvarint(self, field=None) -> int:
        v = self._read_uvar(5, field)
        if v > 0xFFFFFFFF:
            raise InvalidVarintError(f"unsigned varint {v} exceeds 32 bits", field, self._pos)
        return v

    def read_uvarlong(self, field=None) -> int:
        v = self._read_uvar(10, field)
        if v > 0xFFFFFFFFFFFFFFFF:
            raise InvalidVarintError(f"unsigned varlong {v} exceeds 64 bits", field, self._pos)
        return v

    def read_varint(self, field=None) -> int:
        v = self.read_uvarint(field)
        return (v >> 1) ^ -(v & 1)

    def read_varlong(self, field=None) -> int:
        v = self.read_uvarlong(field)
        return (v >> 1) ^ -(v & 1)

    # -- lengths --------------------------------------------------------------
    def _length(self, n: int, nullable: bool, field, start) -> int:
        if n < 0:
            if n == -1 and nullable:
                return -1
            raise (NullNotAllowedError("null not allowed", field, start) if n == -1
                   else InvalidLengthError(f"negative length {n}", field, start))
        if n > self._end - self._pos:
            raise InvalidLengthError(
                f"declared length {n}, only {self._end - self._pos} bytes left", field, start)
        return n

    def read_compact_length(self, nullable: bool, field=None) -> int:
        """uvarint N+1 -> N, or -1 for null.  N is checked against the bytes left."""
        start = self._pos
        return self._length(self.read_uvarint(field) - 1, nullable, field, start)

    # -- strings and bytes ----------------------------------------------------
    def _decode_str(self, n: int, field) -> str:
        p = self._need(n, field)
        try:
            return str(self._mv[p:p + n], "utf-8")
        except UnicodeDecodeError as e:
            raise InvalidStringError(f"invalid UTF-8 ({e.reason})", field, p) from None

    def read_string(self, field=None, nullable: bool = False):
        start = self._pos
        n = self._length(self.read_int16(field), nullable, field, start)
        return None if n < 0 else self._decode_str(n, field)

    def read_compact_string(self, field=None, nullable: bool = False):
        n = self.read_compact_length(nullable, field)
        return None if n < 0 else self._decode_str(n, field)

    def read_raw(self, n: int, field=None) -> memoryview:
        p = self._need(n, field)
        return self._mv[p:p + n]

    def read_bytes(self, field=None, nullable: bool = False):
        start = self._pos
        n = self._length(self.read_int32(field), nullable, field, start)
        return None if n < 0 else self.read_raw(n, field)

    def read_compact_bytes(self, field=None, nullable: bool = False):
        n = self.read_compact_length(nullable, field)
        return None if n < 0 else self.read_raw(n, field)

    # -- arrays (count only; items are read by the caller) --------------------
    def read_array_length(self, min_item_size: int, field=None, nullable: bool = False) -> int:
        start = self._pos
        n = self.read_int32(field)
        if n == -1 and nullable:
            return -1
        if n == -1:
            raise NullNotAllowedError("null array not allowed", field, start)
        self.check_count(n, min_item_size, field)
        return n

    def read_compact_array_length(self, min_item_size: int, field=None, nullable: bool = False) -> int:
        start = self._pos
        n = self.read_uvarint(field) - 1
        if n == -1:
            if nullable:
                return -1
            raise NullNotAllowedError("null array not allowed", field, start)
        self.check_count(n, min_item_size, field)
        return n

    # -- tagged fields --------------------------------------------------------
    def read_tagged_fields(self, field=None):
        """Yield ``(tag, ReadBuffer over its bytes)``; the caller decodes known tags."""
        count = self.read_uvarint(field)
        self.check_count(count, 2, field)  # each entry is >= tag byte + size byte
        seen = set()
        for _ in range(count):
            at = self._pos
            tag = self.read_uvarint(field)
            if tag in seen:
                # KIP-482: tags are unique (and ascending); a repeat would silently replace
                # the first value.
                raise InvalidTaggedFieldError(f"tagged field {tag} appears twice", field, at)
            seen.add(tag)
            size = self.read_uvarint(field)
            yield tag, self.sub(size, f"{field}[tag {tag}]" if field else f"tag {tag}")


class WriteBuffer:
    """Builds one or more size-prefixed frames.

    Small values are appended to a bytearray; large bytes-like values passed to
    ``write_bytes_ref`` are held by reference as their own chunk.  Holding a
    reference means the caller must keep that memory valid (e.g. not unmap a
    segment) until the buffers have been sent.
    """

    __slots__ = ("_chunks", "_buf", "_done", "_msg_start")

    def __init__(self):
        self._chunks: list = []   # finished chunks: bytearray (ours) or memoryview (referenced)
        self._buf = bytearray()
        self._done = 0            # total length of self._chunks
        self._msg_start = None    # (chunk index or None for _buf, offset, absolute position)

    def __len__(self) -> int:
        return self._done + len(self._buf)

    # -- framing --------------------------------------------------------------
    def start_message(self) -> None:
        if self._msg_start is not None:
            raise RuntimeError("start_message() called twice without end_message()")
        self._msg_start = (len(self._chunks), len(self._buf), len(self))
        self._buf += b"\0\0\0\0"

    def end_message(self) -> None:
        if self._msg_start is None:
            raise RuntimeError("end_message() without start_message()")
        chunk_idx, off, abs_pos = self._msg_start
        self._msg_start = None
        size = len(self) - abs_pos - 4
        target = self._buf if chunk_idx == len(self._chunks) else self._chunks[chunk_idx]
        _I32.pack_into(target, off, size)

    # -- output ---------------------------------------------------------------
    def buffers(self) -> list:
        """The frame(s) as a list of buffers, for ``sendmsg``/``writelines``."""
        out = list(self._chunks)
        if self._buf:
            out.append(self._buf)
        return out

    def getvalue(self) -> bytes:
        return b"".join(self.buffers())

    # -- primitives -----------------------------------------------------------
    def _pack(self, st, v, field):
        try:
            self._buf += st.pack(v)
        except (struct.error, TypeError) as e:
            raise EncodeError(f"cannot encode {v!r}: {e}", field) from None

    def write_int8(self, v, field=None):
        self._pack(_I8, v, field)

    def write_bool(self, v, field=None):
        self._buf.append(1 if v else 0)

    def write_int16(self, v, field=None):
        self._pack(_I16, v, field)

    def write_uint16(self, v, field=None):
        self._pack(_U16, v, field)

    def write_int32(self, v, field=None):
        self._pack(_I32, v, field)

    def write_uint32(self, v, field=None):
        self._pack(_U32, v, field)

    def write_int64(self, v, field=None):
        self._pack(_I64, v, field)

    def write_float64(self, v, field=None):
        self._pack(_F64, v, field)

    def write_uuid(self, v, field=None):
        if isinstance(v, _uuid.UUID):
            self._buf += v.bytes
        elif isinstance(v, (bytes, bytearray, memoryview)) and len(v) == 16:
            self._buf += v
        else:
            raise EncodeError(f"not a UUID: {v!r}", field)

    def write_uvarint(self, v, field=None):
        if not isinstance(v, int) or v < 0 or v > 0xFFFFFFFFFFFFFFFF:
            raise EncodeError(f"cannot encode {v!r} as unsigned varint", field)
        buf = self._buf
        while v > 0x7F:
            buf.append((v & 0x7F) | 0x80)
            v >>= 7
        buf.append(v)

    def write_varint(self, v, field=None):
        if not -(1 << 31) <= v < (1 << 31):
            raise EncodeError(f"{v} out of range for varint", field)
        self.write_uvarint((v << 1) ^ (v >> 31), field)

    def write_varlong(self, v, field=None):
        if not -(1 << 63) <= v < (1 << 63):
            raise EncodeError(f"{v} out of range for varlong", field)
        self.write_uvarint((v << 1) ^ (v >> 63), field)

    def write_raw(self, data) -> None:
        self._buf += data

    def write_bytes_ref(self, data) -> None:
        """Append ``data`` without copying it if it is large (see class doc)."""
        if len(data) < ZERO_COPY_MIN:
            self._buf += data
            return
        if self._buf:
            self._chunks.append(self._buf)
            self._done += len(self._buf)
            self._buf = bytearray()
        mv = data if isinstance(data, memoryview) else memoryview(data)
        self._chunks.append(mv)
        self._done += mv.nbytes

    def write_buffer(self, other: "WriteBuffer") -> None:
        """Append another buffer's contents (references stay references)."""
        for chunk in other.buffers():
            self.write_bytes_ref(chunk)

    @staticmethod
    def _utf8(v, field) -> bytes:
        if not isinstance(v, str):
            raise EncodeError(f"expected str, got {type(v).__name__}", field)
        return v.encode("utf-8")

    def write_string(self, v, field=None, nullable=False):
        if v is None:
            if not nullable:
                raise EncodeError("null not allowed", field)
            self._buf += b"\xff\xff"
            return
        b = self._utf8(v, field)
        if len(b) > 0x7FFF:
            raise EncodeError(f"string of {len(b)} bytes exceeds int16 length", field)
        self._buf += _I16.pack(len(b)) + b

    def write_compact_string(self, v, field=None, nullable=False):
        if v is None:
            if not nullable:
                raise EncodeError("null not allowed", field)
            self._buf.append(0)
            return
        b = self._utf8(v, field)
        self.write_uvarint(len(b) + 1, field)
        self._buf += b

    def write_bytes(self, v, field=None, nullable=False):
        if v is None:
            if not nullable:
                raise EncodeError("null not allowed", field)
            self._buf += b"\xff\xff\xff\xff"
            return
        self._buf += _I32.pack(_nbytes(v, field))
        self.write_bytes_ref(v)

    def write_compact_bytes(self, v, field=None, nullable=False):
        if v is None:
            if not nullable:
                raise EncodeError("null not allowed", field)
            self._buf.append(0)
            return
        self.write_uvarint(_nbytes(v, field) + 1, field)
        self.write_bytes_ref(v)


def _nbytes(v, field) -> int:
    if isinstance(v, memoryview):
        return v.nbytes
    if isinstance(v, (bytes, bytearray)):
        return len(v)
    raise EncodeError(f"expected bytes-like, got {type(v).__name__}", field)
