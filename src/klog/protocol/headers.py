"""Request and response headers, and which header version each API version uses.

    RequestHeader v0:  api_key int16, api_version int16, correlation_id int32 (only
                       ControlledShutdown v0 uses it)
    RequestHeader v1:  api_key int16, api_version int16, correlation_id int32,
                       client_id nullable string (int16 length)
    RequestHeader v2:  v1 + tagged fields.  client_id keeps its int16 length
                       (``flexibleVersions: none`` on that field), it is NOT compact.
    ResponseHeader v0: correlation_id int32
    ResponseHeader v1: v0 + tagged fields

Flexible API versions use request header v2 / response header v1
(``RequestHeader.json``, ``ResponseHeader.json``).  Exception (KIP-511): the
ApiVersions *response* header is always v0, so a client that sent a version the
broker does not know can still read the error.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .buffer import ReadBuffer, WriteBuffer
from .errors import UnknownApiError, UnsupportedVersionError
from .messages import REQUESTS, ApiKey


@dataclass
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None = None
    tagged_fields: dict = field(default_factory=dict)  # unknown tags, as raw memoryviews


def _is_flexible(api_key: int, api_version: int) -> bool:
    schema = REQUESTS.get(api_key)
    if schema is None:
        raise UnknownApiError(f"unknown API key {api_key}", "api_key")
    # Versions above what klog implements are still classified by Kafka's rule
    # (flexibleVersions "N+" is open-ended), so the header parses and the broker can
    # answer UNSUPPORTED_VERSION with the right correlation id.
    return schema.flexible_from is not None and api_version >= schema.flexible_from


def request_header_version(api_key: int, api_version: int) -> int:
    if api_key == ApiKey.CONTROLLED_SHUTDOWN and api_version == 0:
        return 0            # Kafka's one exception: no client id
    return 2 if _is_flexible(api_key, api_version) else 1


def response_header_version(api_key: int, api_version: int) -> int:
    if api_key == ApiKey.API_VERSIONS:
        return 0
    return 1 if _is_flexible(api_key, api_version) else 0


def read_request_header(r: ReadBuffer) -> RequestHeader:
    """Parse a request header; the cursor is left at the start of the body.

    Raises ``UnknownApiError`` / ``UnsupportedVersionError`` for an API key or version
    klog does not implement, after reading the fixed part, so ``.header`` carries the
    correlation id and client id.
    """
    api_key = r.read_int16("RequestHeader.api_key")
    api_version = r.read_int16("RequestHeader.api_version")
    correlation_id = r.read_int32("RequestHeader.correlation_id")
    if api_key == ApiKey.CONTROLLED_SHUTDOWN and api_version == 0:
        client_id = None                # request header v0
    else:
        client_id = r.read_string("RequestHeader.client_id", nullable=True)
    hdr = RequestHeader(api_key, api_version, correlation_id, client_id)
    if api_key not in REQUESTS:
        err = UnknownApiError(f"unknown API key {api_key} (correlation id {correlation_id})",
                              "RequestHeader.api_key")
        err.header = hdr
        raise err
    schema = REQUESTS[api_key]
    if not schema.supports(api_version):
        # Raised before the header's tagged fields: the body will not be read anyway, and
        # the caller needs only the correlation id to answer UNSUPPORTED_VERSION.
        raise UnsupportedVersionError(
            f"{schema.name} v{api_version} not supported (klog implements "
            f"v{schema.min_version}-{schema.max_version}, correlation id {correlation_id})",
            "RequestHeader.api_version", header=hdr)
    if request_header_version(api_key, api_version) >= 2:
        for tag, sub in r.read_tagged_fields("RequestHeader"):
            hdr.tagged_fields[tag] = sub.read_raw(sub.remaining)
    return hdr


def write_request_header(w: WriteBuffer, hdr: RequestHeader) -> None:
    w.write_int16(hdr.api_key, "api_key")
    w.write_int16(hdr.api_version, "api_version")
    w.write_int32(hdr.correlation_id, "correlation_id")
    if request_header_version(hdr.api_key, hdr.api_version) == 0:
        return
    w.write_string(hdr.client_id, "client_id", nullable=True)
    if request_header_version(hdr.api_key, hdr.api_version) >= 2:
        tags = sorted(hdr.tagged_fields.items())
        w.write_uvarint(len(tags))
        for tag, raw in tags:
            w.write_uvarint(tag)
            w.write_uvarint(len(raw))
            w.write_bytes_ref(raw)


def read_response_header(r: ReadBuffer, api_key: int, api_version: int) -> int:
    """Parse a response header; returns the correlation id (unknown tags skipped)."""
    correlation_id = r.read_int32("ResponseHeader.correlation_id")
    if response_header_version(api_key, api_version) >= 1:
        for _tag, _sub in r.read_tagged_fields("ResponseHeader"):
            pass
    return correlation_id


def write_response_header(w: WriteBuffer, api_key: int, api_version: int, correlation_id: int) -> None:
    w.write_int32(correlation_id, "correlation_id")
    if response_header_version(api_key, api_version) >= 1:
        w.write_uvarint(0)
