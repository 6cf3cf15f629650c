"""Kafka's ConsumerProtocol: the subscription and assignment bytes consumer-group members exchange.

The coordinator never looks inside these bytes (a group's metadata is opaque to it); members that
use protocol type ``"consumer"`` agree on this encoding, so klog's embedded consumers, Java,
librdkafka, kafka-python and aiokafka members can share one group. Mirrors
``clients/src/main/resources/common/message/ConsumerProtocol{Subscription,Assignment}.json`` and
``ConsumerProtocol.java``. Big-endian, non-flexible (classic) encoding::

    Subscription := version:int16
                    topics:[string]            string := int16 length + UTF-8 (-1: null)
                    userData:nullable bytes     bytes  := int32 length + bytes  (-1: null)
                    ownedPartitions:[topic:string partitions:[int32]]     v1+
                    generationId:int32  (default -1)                      v2+
                    rackId:nullable string (default null)                 v3+
    Assignment   := version:int16
                    assignedPartitions:[topic:string partitions:[int32]]
                    userData:nullable bytes
    [T]          := int32 count (-1: null) + count * T

A newer version than we know is read with the newest layout we know and trailing bytes are
ignored, which is Kafka's own compatibility rule for these two schemas. Truncated or malformed
bytes raise ProtocolDecodeError naming the field and the byte position.

``StructReader``/``StructWriter`` are the primitive codecs, shared with the ``__consumer_offsets``
record schemas (klog.group.offsets), which also need the flexible (compact) forms.
"""
import struct
from dataclasses import dataclass

from klog.errors import KlogError
from klog.structs import TopicPartition

SUBSCRIPTION_VERSION = 3   # what we write: the newest version (as Java 3.x does)
ASSIGNMENT_VERSION = 3
PROTOCOL_TYPE = "consumer"

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class ProtocolDecodeError(KlogError, ValueError):
    """Bytes that do not decode as the schema they claim to be."""


class StructWriter:
    """Builds one Kafka struct. Non-flexible forms by default; ``compact_*`` and ``tags`` for
    flexible versions."""
    __slots__ = ("_parts",)

    def __init__(self):
        self._parts = []

    def int16(self, v):
        self._parts.append(_I16.pack(v))
        return self

    def int32(self, v):
        self._parts.append(_I32.pack(v))
        return self

    def int64(self, v):
        self._parts.append(_I64.pack(v))
        return self

    def string(self, s):
        """int16 length + UTF-8; None → length -1 (nullable string)."""
        if s is None:
            return self.int16(-1)
        data = s.encode("utf-8")
        if len(data) > 0x7FFF:
            raise ValueError(f"string of {len(data)} bytes is too long for an int16 length")
        self._parts.append(_I16.pack(len(data)))
        self._parts.append(data)
        return self

    def bytes(self, b):
        """int32 length + bytes; None → length -1 (nullable bytes)."""
        if b is None:
            return self.int32(-1)
        self._parts.append(_I32.pack(len(b)))
        self._parts.append(bytes(b))
        return self

    def array_length(self, n):
        return self.int32(n)

    def uvarint(self, v):
        out = bytearray()
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
        self._parts.append(bytes(out))
        return self

    def compact_string(self, s):
        if s is None:
            return self.uvarint(0)
        data = s.encode("utf-8")
        self.uvarint(len(data) + 1)
        self._parts.append(data)
        return self

    def compact_bytes(self, b):
        if b is None:
            return self.uvarint(0)
        self.uvarint(len(b) + 1)
        self._parts.append(bytes(b))
        return self

    def compact_array_length(self, n):
        return self.uvarint(n + 1)

    def tags(self):
        """An empty tagged-field section (we write no tagged fields)."""
        return self.uvarint(0)

    def getvalue(self):
        return b"".join(self._parts)


class StructReader:
    """Reads one Kafka struct from a bytes-like; every read checks the bytes left first."""
    __slots__ = ("_buf", "_pos", "what")

    def __init__(self, data, what):
        self._buf = bytes(data)
        self._pos = 0
        self.what = what   # for error messages: "ConsumerProtocol subscription"

    @property
    def position(self):
        return self._pos

    def remaining(self):
        return len(self._buf) - self._pos

    def _fail(self, field, why):
        raise ProtocolDecodeError(f"{self.what}: {why} reading {field} at byte {self._pos} "
                                  f"(of {len(self._buf)})")

    def _take(self, n, field):
        if n > len(self._buf) - self._pos:
            self._fail(field, f"truncated ({n} bytes needed, {len(self._buf) - self._pos} left)")
        start = self._pos
        self._pos += n
        return start

    def int16(self, field):
        return _I16.unpack_from(self._buf, self._take(2, field))[0]

    def int32(self, field):
        return _I32.unpack_from(self._buf, self._take(4, field))[0]

    def int64(self, field):
        return _I64.unpack_from(self._buf, self._take(8, field))[0]

    def _text(self, n, field):
        start = self._take(n, field)
        try:
            return self._buf[start:start + n].decode("utf-8")
        except UnicodeDecodeError:
            self._pos = start
            self._fail(field, "invalid UTF-8")

    def string(self, field, nullable=False):
        n = self.int16(field)
        if n < 0:
            if n == -1 and nullable:
                return None
            self._fail(field, f"bad string length {n}")
        return self._text(n, field)

    def bytes(self, field, nullable=True):
        n = self.int32(field)
        if n < 0:
            if n == -1 and nullable:
                return None
            self._fail(field, f"bad bytes length {n}")
        start = self._take(n, field)
        return self._buf[start:start + n]

    def array_length(self, field, min_item_size, nullable=False):
        """An int32 count, checked against the bytes left (each item needs at least
        ``min_item_size`` bytes), so a hostile count cannot make us loop or allocate."""
        n = self.int32(field)
        if n < 0:
            if n == -1 and nullable:
                return 0
            self._fail(field, f"bad array length {n}")
        if n * min_item_size > self.remaining():
            self._fail(field, f"array of {n} items cannot fit in {self.remaining()} bytes")
        return n

    def uvarint(self, field):
        value, shift = 0, 0
        while True:
            b = self._buf[self._take(1, field)]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 28:
                self._fail(field, "unsigned varint longer than 5 bytes")

    def compact_string(self, field, nullable=False):
        n = self.uvarint(field) - 1
        if n < 0:
            if nullable:
                return None
            self._fail(field, "null where a string is required")
        return self._text(n, field)

    def compact_bytes(self, field, nullable=False):
        n = self.uvarint(field) - 1
        if n < 0:
            if nullable:
                return None
            self._fail(field, "null where bytes are required")
        start = self._take(n, field)
        return self._buf[start:start + n]

    def compact_array_length(self, field, min_item_size):
        n = self.uvarint(field) - 1
        if n < 0:
            return 0
        if n * min_item_size > self.remaining():
            self._fail(field, f"array of {n} items cannot fit in {self.remaining()} bytes")
        return n

    def skip_tags(self, field="tagged fields"):
        for _ in range(self.uvarint(field)):
            self.uvarint(field)
            self._take(self.uvarint(field), field)


# -- ConsumerProtocol -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Subscription:
    """What a member asks for: its topics, assignor user data, the partitions it owns now
    (cooperative rebalancing) and the generation it owned them in."""
    topics: tuple
    user_data: bytes = None
    owned_partitions: tuple = ()      # TopicPartitions, grouped by topic on the wire
    generation_id: int = -1
    rack_id: str = None
    version: int = SUBSCRIPTION_VERSION

    def __post_init__(self):
        object.__setattr__(self, "topics", tuple(self.topics))
        object.__setattr__(self, "owned_partitions",
                           tuple(TopicPartition(*tp) for tp in self.owned_partitions))


@dataclass(frozen=True)
class Assignment:
    """What the leader gives a member: its partitions and assignor user data."""
    partitions: tuple                  # TopicPartitions, grouped by topic on the wire
    user_data: bytes = None
    version: int = ASSIGNMENT_VERSION

    def __post_init__(self):
        object.__setattr__(self, "partitions",
                           tuple(TopicPartition(*tp) for tp in self.partitions))


def _group_by_topic(partitions):
    """[(topic, [partition, ...])] in first-appearance order of topics."""
    grouped = {}
    for tp in partitions:
        grouped.setdefault(tp[0], []).append(tp[1])
    return grouped.items()


def _write_topic_partitions(w, partitions):
    grouped = list(_group_by_topic(partitions))
    w.array_length(len(grouped))
    for topic, parts in grouped:
        w.string(topic)
        w.array_length(len(parts))
        for p in parts:
            w.int32(p)


def _read_topic_partitions(r, field):
    out = []
    for _ in range(r.array_length(field, 6)):
        topic = r.string(f"{field}.topic")
        for _ in range(r.array_length(f"{field}.partitions", 4)):
            out.append(TopicPartition(topic, r.int32(f"{field}.partitions")))
    return out


def encode_subscription(sub):
    """Subscription → bytes, in ``sub.version``'s layout."""
    v = sub.version
    if not 0 <= v <= 0x7FFF:
        raise ValueError(f"subscription version must be 0..32767, not {v}")
    w = StructWriter().int16(v)
    w.array_length(len(sub.topics))
    for topic in sub.topics:
        w.string(topic)
    w.bytes(sub.user_data)
    if v >= 1:
        _write_topic_partitions(w, sub.owned_partitions)
    if v >= 2:
        w.int32(sub.generation_id)
    if v >= 3:
        w.string(sub.rack_id)
    return w.getvalue()


def decode_subscription(data):
    """bytes → Subscription (any version; fields newer than the version get their defaults)."""
    r = StructReader(data, "ConsumerProtocol subscription")
    version = r.int16("version")
    if version < 0:
        raise ProtocolDecodeError(f"ConsumerProtocol subscription: unsupported version {version}")
    topics = [r.string("topics") for _ in range(r.array_length("topics", 2))]
    user_data = r.bytes("userData")
    owned, generation, rack = (), -1, None
    # A v1+ subscription that ends early is read as the version its bytes cover: one odd
    # member must not stall the whole group's assignment.
    if version >= 1 and r.remaining():
        owned = _read_topic_partitions(r, "ownedPartitions")
    if version >= 2 and r.remaining():
        generation = r.int32("generationId")
    if version >= 3 and r.remaining():
        rack = r.string("rackId", nullable=True)
    return Subscription(topics, user_data, owned, generation, rack, version)


def encode_assignment(assignment):
    v = assignment.version
    if not 0 <= v <= 0x7FFF:
        raise ValueError(f"assignment version must be 0..32767, not {v}")
    w = StructWriter().int16(v)
    _write_topic_partitions(w, assignment.partitions)
    w.bytes(assignment.user_data)
    return w.getvalue()


def decode_assignment(data):
    """bytes → Assignment. Empty bytes (what the coordinator gives a member the leader left out)
    decode as an empty assignment."""
    if len(data) == 0:
        return Assignment((), None, 0)
    r = StructReader(data, "ConsumerProtocol assignment")
    version = r.int16("version")
    if version < 0:
        raise ProtocolDecodeError(f"ConsumerProtocol assignment: unsupported version {version}")
    partitions = _read_topic_partitions(r, "assignedPartitions")
    user_data = r.bytes("userData") if r.remaining() else None
    return Assignment(partitions, user_data, version)
