"""Kafka wire protocol: primitives, declarative schemas, headers and frames.

Pure Python reference implementation; the decoders raise only ``ProtocolError``.
"""
from .buffer import ReadBuffer, WriteBuffer
from .errors import ErrorCode, ProtocolError, UnsupportedVersionError
from .frames import FrameSplitter, Request, decode_request, decode_response, encode_request, encode_response
from .headers import RequestHeader, request_header_version, response_header_version
from .messages import REQUESTS, RESPONSES, ApiKey

__all__ = [
    "ApiKey", "ErrorCode", "FrameSplitter", "ProtocolError", "REQUESTS", "RESPONSES", "ReadBuffer",
    "Request", "RequestHeader", "UnsupportedVersionError", "WriteBuffer", "decode_request",
    "decode_response", "encode_request", "encode_response", "request_header_version",
    "response_header_version",
]
