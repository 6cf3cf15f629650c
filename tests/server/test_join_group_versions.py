"""JoinGroup's error answers at every version, raw: ``protocol_name`` is not nullable below v7
(Kafka's JoinGroupResponse), so an answer without a chosen protocol carries "" there and null
from v7; a null below v7 cannot be encoded and the connection would be closed instead.
(The cluster-mode NOT_COORDINATOR answer: tests/cluster/test_serve_cluster_fidelity.py.)"""
import socket

from klog.group import errors as E
from klog.protocol.messages import ApiKey

from .rawclient import call


def join(s, version, cid, member_id="", protocol_type="consumer", protocol="range"):
    return call(s, ApiKey.JOIN_GROUP, version, {
        "group_id": "g", "session_timeout_ms": 10000, "rebalance_timeout_ms": 10000,
        "member_id": member_id, "group_instance_id": None, "protocol_type": protocol_type,
        "protocols": [{"name": protocol, "metadata": b""}], "reason": None}, cid=cid)


def test_join_group_errors_without_a_protocol_at_every_version(server):
    host, port = server.address.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        for v in range(8):
            answer = join(s, v, cid=v + 1, member_id="unknown")
            assert answer["error_code"] == E.UNKNOWN_MEMBER_ID, v
            assert answer["protocol_name"] == ("" if v < 7 else None), v
        # A group with a chosen protocol: a member that speaks another one is refused.
        first = join(s, 4, cid=50)
        assert first["error_code"] == E.MEMBER_ID_REQUIRED
        joined = join(s, 4, cid=51, member_id=first["member_id"])
        assert (joined["error_code"], joined["protocol_name"]) == (E.NONE, "range")
        for v in range(8):
            answer = join(s, v, cid=60 + v, protocol_type="other", protocol="x")
            assert answer["error_code"] == E.INCONSISTENT_GROUP_PROTOCOL, v
            assert answer["protocol_name"] == ("" if v < 7 else None), v
