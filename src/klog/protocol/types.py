"""Field types for the declarative schemas in ``schema.py``.

Each type knows how to read and write itself in the classic and the flexible
(KIP-482 compact) encoding, its smallest possible encoded size (used to bound a
declared array count before allocating) and its default value.
"""
from __future__ import annotations

import uuid as _uuid

from .buffer import ReadBuffer, WriteBuffer

ZERO_UUID = _uuid.UUID(int=0)


class FieldType:
    name = "?"
    fixed = 0

    def min_size(self, flexible: bool) -> int:
        return self.fixed

    def default(self):
        return 0

    def parse_default(self, text: str):
        return int(text, 0)

    def __repr__(self):
        return self.name


class _Fixed(FieldType):
    def __init__(self, name, size, reader, writer):
        self.name, self.fixed = name, size
        self._r, self._w = reader, writer

    def read(self, r: ReadBuffer, flexible, nullable, field):
        return self._r(r, field)

    def write(self, w: WriteBuffer, v, flexible, nullable, field):
        self._w(w, v, field)


INT8 = _Fixed("int8", 1, ReadBuffer.read_int8, WriteBuffer.write_int8)
INT16 = _Fixed("int16", 2, ReadBuffer.read_int16, WriteBuffer.write_int16)
UINT16 = _Fixed("uint16", 2, ReadBuffer.read_uint16, WriteBuffer.write_uint16)
INT32 = _Fixed("int32", 4, ReadBuffer.read_int32, WriteBuffer.write_int32)
UINT32 = _Fixed("uint32", 4, ReadBuffer.read_uint32, WriteBuffer.write_uint32)
INT64 = _Fixed("int64", 8, ReadBuffer.read_int64, WriteBuffer.write_int64)


class _Float64(_Fixed):
    def default(self):
        return 0.0

    def parse_default(self, text):
        return float(text)


FLOAT64 = _Float64("float64", 8, ReadBuffer.read_float64, WriteBuffer.write_float64)


class _Bool(_Fixed):
    def default(self):
        return False

    def parse_default(self, text):
        return text == "true"


BOOL = _Bool("bool", 1, ReadBuffer.read_bool, WriteBuffer.write_bool)


class _Uuid(_Fixed):
    def default(self):
        return ZERO_UUID

    def parse_default(self, text):
        return _uuid.UUID(text) if text else ZERO_UUID


UUID = _Uuid("uuid", 16, ReadBuffer.read_uuid, WriteBuffer.write_uuid)


class _String(FieldType):
    name = "string"

    def min_size(self, flexible):
        return 1 if flexible else 2

    def default(self):
        return ""

    def parse_default(self, text):
        return text

    def read(self, r, flexible, nullable, field):
        if flexible:
            return r.read_compact_string(field, nullable)
        return r.read_string(field, nullable)

    def write(self, w, v, flexible, nullable, field):
        if flexible:
            w.write_compact_string(v, field, nullable)
        else:
            w.write_string(v, field, nullable)


STRING = _String()


class _Bytes(FieldType):
    """Opaque bytes; decoded as a memoryview slice of the frame (no copy)."""
    name = "bytes"

    def min_size(self, flexible):
        return 1 if flexible else 4

    def default(self):
        return b""

    def parse_default(self, text):
        return b""

    def read(self, r, flexible, nullable, field):
        if flexible:
            return r.read_compact_bytes(field, nullable)
        return r.read_bytes(field, nullable)

    def write(self, w, v, flexible, nullable, field):
        if flexible:
            w.write_compact_bytes(v, field, nullable)
        else:
            w.write_bytes(v, field, nullable)


class _Records(_Bytes):
    """Record batches (Produce/Fetch): same wire form as bytes, kept opaque here."""
    name = "records"


BYTES = _Bytes()
RECORDS = _Records()


class Array(FieldType):
    def __init__(self, item: FieldType):
        self.item = item
        self.name = f"[]{item.name}"

    def min_size(self, flexible):
        return 1 if flexible else 4

    def default(self):
        return []

    def parse_default(self, text):
        return []

    def read(self, r, flexible, nullable, field):
        item = self.item
        imin = item.min_size(flexible)
        if flexible:
            n = r.read_compact_array_length(imin, field, nullable)
        else:
            n = r.read_array_length(imin, field, nullable)
        if n < 0:
            return None
        rd = item.read
        return [rd(r, flexible, False, field) for _ in range(n)]

    def write(self, w, v, flexible, nullable, field):
        if v is None:
            if not nullable:
                from .errors import EncodeError
                raise EncodeError("null array not allowed", field)
            if flexible:
                w.write_uvarint(0)
            else:
                w.write_int32(-1)
            return
        if flexible:
            w.write_uvarint(len(v) + 1, field)
        else:
            w.write_int32(len(v), field)
        wr = self.item.write
        for x in v:
            wr(w, x, flexible, False, field)
