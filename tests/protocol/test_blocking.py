"""klog.protocol.blocking: one request and its answer over a blocking socket."""
import socket
import struct
import threading

import pytest

from klog.protocol import blocking
from klog.protocol.frames import decode_request, encode_response
from klog.protocol.messages import ApiKey

BODY = {"broker_id": 2, "broker_epoch": 41}
ANSWER = {"error_code": 0, "remaining_partitions": [
    {"topic_name": "t", "partition_index": 3}]}


def serve_one(sock, correlation_id=None, close_after=None):
    """Read one framed request from ``sock`` and answer it (with ``correlation_id`` if given),
    or close after ``close_after`` bytes of the answer."""
    def run():
        size = struct.unpack(">i", blocking.recv_exact(sock, 4, "client"))[0]
        req = decode_request(memoryview(blocking.recv_exact(sock, size, "client")))
        assert req.body == BODY
        cid = req.header.correlation_id if correlation_id is None else correlation_id
        out = encode_response(ApiKey.CONTROLLED_SHUTDOWN, 3, cid, ANSWER).getvalue()
        sock.sendall(out if close_after is None else out[:close_after])
        if close_after is not None:
            sock.close()
    sock.settimeout(10)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_call_sends_and_decodes_the_answer():
    a, b = socket.socketpair()
    a.settimeout(10)
    with a, b:
        t = serve_one(b)
        got = blocking.call(a, ApiKey.CONTROLLED_SHUTDOWN, 3, BODY, client_id="x",
                            correlation_id=7)
        t.join()
    assert got["remaining_partitions"] == ANSWER["remaining_partitions"]


def test_an_answer_to_another_request_is_refused():
    a, b = socket.socketpair()
    a.settimeout(10)
    with a, b:
        t = serve_one(b, correlation_id=8)
        with pytest.raises(ConnectionError, match="answer to request 8, expected 7"):
            blocking.call(a, ApiKey.CONTROLLED_SHUTDOWN, 3, BODY, client_id="x",
                          correlation_id=7, peer="broker 2")
        t.join()


def test_a_peer_closing_mid_answer_is_named():
    a, b = socket.socketpair()
    a.settimeout(10)
    with a:
        t = serve_one(b, close_after=6)
        with pytest.raises(ConnectionError, match="broker 2 closed the connection"):
            blocking.call(a, ApiKey.CONTROLLED_SHUTDOWN, 3, BODY, client_id="x", peer="broker 2")
        t.join()
