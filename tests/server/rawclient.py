"""A minimal Kafka client over a raw socket, for tests that need exact requests."""
import struct

from klog.protocol.frames import decode_response, encode_request


def recv_exact(s, n):
    """Exactly n bytes from socket s; ConnectionError if the server closes first."""
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return bytes(buf)


def call(s, api_key, version, body, cid=1, client_id="raw"):
    """Send one request and return the decoded response body (checking the correlation id)."""
    s.sendall(encode_request(api_key, version, cid, client_id, body).getvalue())
    size = struct.unpack(">i", recv_exact(s, 4))[0]
    got_cid, resp = decode_response(api_key, version, memoryview(recv_exact(s, size)))
    assert got_cid == cid
    return resp
