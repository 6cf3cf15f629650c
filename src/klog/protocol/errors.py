"""Wire-protocol exceptions and Kafka error codes.

Two different things live here:

* ``ProtocolError`` and its subclasses: raised by klog when bytes off the wire
  cannot be decoded (or a value cannot be encoded).  Every decoder in this
  package raises only these, so a connection handler needs exactly one
  ``except ProtocolError`` to drop a misbehaving peer.
* ``ErrorCode``: the int16 error codes Kafka puts *inside* responses, re-exported
  from ``klog.error_codes`` (the one table of codes).
"""
from __future__ import annotations

from klog.error_codes import RETRIABLE, ErrorCode  # noqa: F401 (the one table)


class ProtocolError(Exception):
    """Bytes that are not a valid Kafka message (or a value that cannot be encoded)."""

    def __init__(self, message: str, field: str | None = None, offset: int | None = None):
        self.field = field
        self.offset = offset
        where = []
        if field:
            where.append(f"field {field}")
        if offset is not None:
            where.append(f"at byte {offset}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class TruncatedError(ProtocolError):
    """The message ends before a field does."""


class InvalidLengthError(ProtocolError):
    """A declared length/count is negative, too large for the bytes left, or over a limit."""


class InvalidVarintError(ProtocolError):
    """A varint longer than its type allows (5 bytes for 32-bit, 10 for 64-bit)."""


class InvalidStringError(ProtocolError):
    """A string that is not valid UTF-8."""


class InvalidTaggedFieldError(ProtocolError):
    """A tagged field whose declared size does not match its contents."""


class NullNotAllowedError(ProtocolError):
    """A null (-1 / 0 length) for a field not nullable in this version."""


class UnknownApiError(ProtocolError):
    """An API key this module has no schema for."""


class UnsupportedVersionError(ProtocolError):
    """A known API at a version outside the range implemented here.

    ``header`` is set when the request header could still be parsed, so a broker
    can answer (Kafka answers ApiVersions with error 35 in a v0 body).
    """

    def __init__(self, message, field=None, offset=None, header=None):
        super().__init__(message, field, offset)
        self.header = header


class FrameTooLargeError(InvalidLengthError):
    """A frame size prefix above the configured maximum (Kafka: socket.request.max.bytes)."""


class EncodeError(ProtocolError):
    """A value that cannot be encoded as its declared type."""
