"""One Kafka request and its answer over a blocking socket: klog's own calls between brokers
(follower fetches, ControlledShutdown, requests forwarded to the controller) and from tools
(``klog cluster status``). The server side is asyncio; these callers run on plain threads."""
from __future__ import annotations

import socket
import struct
from typing import Callable, Optional

from klog.protocol.frames import decode_response, encode_request


def recv_exact(sock: socket.socket, n: int, peer: str,
               before_each_read: Optional[Callable[[], None]] = None) -> bytes:
    """``n`` bytes from ``sock``; ConnectionError naming ``peer`` if it closes first.
    ``before_each_read`` runs before every ``recv`` (e.g. to shorten the socket's timeout to a
    caller's deadline)."""
    buf = bytearray()
    while len(buf) < n:
        if before_each_read is not None:
            before_each_read()
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"{peer} closed the connection")
        buf += chunk
    return bytes(buf)


def send_request(sock: socket.socket, api_key: int, version: int, body: dict, *,
                 client_id: str, correlation_id: int = 1) -> None:
    sock.sendall(encode_request(api_key, version, correlation_id, client_id, body).getvalue())


def read_response(sock: socket.socket, api_key: int, version: int, *, correlation_id: int = 1,
                  peer: str = "the broker",
                  before_each_read: Optional[Callable[[], None]] = None) -> dict:
    """The answer to the request sent with ``correlation_id`` (ConnectionError for another)."""
    size = struct.unpack(">i", recv_exact(sock, 4, peer, before_each_read))[0]
    cid, body = decode_response(api_key, version,
                                memoryview(recv_exact(sock, size, peer, before_each_read)))
    if cid != correlation_id:
        raise ConnectionError(f"{peer}: answer to request {cid}, expected {correlation_id}")
    return body


def call(sock: socket.socket, api_key: int, version: int, body: dict, *, client_id: str,
         correlation_id: int = 1, peer: str = "the broker",
         before_each_read: Optional[Callable[[], None]] = None) -> dict:
    """Send one request and read its answer."""
    send_request(sock, api_key, version, body, client_id=client_id, correlation_id=correlation_id)
    return read_response(sock, api_key, version, correlation_id=correlation_id, peer=peer,
                         before_each_read=before_each_read)
