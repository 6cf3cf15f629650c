"""Whole frames: size prefix + header + body, in both directions.

    frame = int32 size, then `size` bytes: header, body

A broker reads frames with ``FrameSplitter`` (bounded by ``max_frame_size``,
Kafka's ``socket.request.max.bytes``, 100 MiB by default), parses each with
``decode_request`` and answers with ``encode_response``, whose ``buffers()`` go
straight to ``sendmsg``/``writelines``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .buffer import ReadBuffer, WriteBuffer
from .errors import FrameTooLargeError, InvalidLengthError, UnknownApiError, UnsupportedVersionError
from .headers import (
    RequestHeader,
    read_request_header,
    read_response_header,
    write_request_header,
    write_response_header,
)
from .messages import REQUESTS, RESPONSES

DEFAULT_MAX_FRAME = 100 * 1024 * 1024


@dataclass
class Request:
    header: RequestHeader
    body: dict


def _schema(table, api_key, version, hdr=None):
    schema = table.get(api_key)
    if schema is None:
        err = UnknownApiError(f"unknown API key {api_key}", "api_key")
        err.header = hdr
        raise err
    if not schema.supports(version):
        raise UnsupportedVersionError(
            f"{schema.name} v{version} not supported (klog implements "
            f"v{schema.min_version}-{schema.max_version})", "api_version", header=hdr)
    return schema


def decode_request(payload) -> Request:
    """Decode one request frame *without* its size prefix.

    An unsupported version raises ``UnsupportedVersionError`` with ``.header`` set
    (the ApiVersions case: answer error 35 with a v0 body).
    """
    r = ReadBuffer(payload)
    hdr = read_request_header(r)
    schema = _schema(REQUESTS, hdr.api_key, hdr.api_version, hdr)
    return Request(hdr, schema.decode(r, hdr.api_version))


def encode_request(api_key: int, api_version: int, correlation_id: int, client_id: str | None,
                   body: dict, w: WriteBuffer | None = None) -> WriteBuffer:
    """Append one size-prefixed request frame to ``w`` (a new buffer if None)."""
    schema = _schema(REQUESTS, api_key, api_version)
    w = WriteBuffer() if w is None else w
    w.start_message()
    write_request_header(w, RequestHeader(api_key, api_version, correlation_id, client_id))
    schema.encode(body, api_version, w)
    w.end_message()
    return w


def encode_response(api_key: int, api_version: int, correlation_id: int, body: dict,
                    w: WriteBuffer | None = None) -> WriteBuffer:
    """Append one size-prefixed response frame to ``w`` (a new buffer if None)."""
    schema = _schema(RESPONSES, api_key, api_version)
    w = WriteBuffer() if w is None else w
    w.start_message()
    write_response_header(w, api_key, api_version, correlation_id)
    schema.encode(body, api_version, w)
    w.end_message()
    return w


def decode_response(api_key: int, api_version: int, payload) -> tuple[int, dict]:
    """Decode one response frame without its size prefix -> (correlation_id, body)."""
    schema = _schema(RESPONSES, api_key, api_version)
    r = ReadBuffer(payload)
    cid = read_response_header(r, api_key, api_version)
    return cid, schema.decode(r, api_version)


class FrameSplitter:
    """Cuts a byte stream into frame payloads (size prefixes removed).

    ``feed(data)`` returns the complete payloads so far, as memoryviews.  A size
    prefix that is negative or above ``max_frame_size`` raises before any buffer
    of that size is allocated.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME):
        self.max_frame_size = max_frame_size
        self._buf = bytearray()

    def feed(self, data) -> list:
        self._buf += data
        out = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 4:
            size = int.from_bytes(buf[pos:pos + 4], "big", signed=True)
            if size < 0:
                raise InvalidLengthError(f"negative frame size {size}", "frame size", pos)
            if size > self.max_frame_size:
                raise FrameTooLargeError(
                    f"frame of {size} bytes exceeds limit of {self.max_frame_size}", "frame size", pos)
            if len(buf) - pos - 4 < size:
                break
            out.append(memoryview(bytes(buf[pos + 4:pos + 4 + size])))
            pos += 4 + size
        if pos:
            del buf[:pos]
        return out

    def pending_frame_size(self) -> int:
        """Bytes (size prefix included) the partly received frame will take once complete;
        0 when no size prefix is waiting for its payload."""
        if len(self._buf) < 4:
            return 0
        return 4 + int.from_bytes(self._buf[:4], "big", signed=True)
