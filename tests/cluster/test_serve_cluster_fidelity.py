"""Cluster-mode answers that must match Kafka's exactly: three ``klog serve --zookeeper``
processes and a real ZooKeeper, driven by raw requests and
confluent-kafka's AdminClient."""
import socket

from klog.group.offsets import partition_for
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey

from .test_serve_cluster import call, make_cluster, wait_for  # noqa: F401

TIMEOUT = 60


def raw(c, n, api_key, version, body):
    with socket.create_connection(c.address(n), timeout=30) as s:
        return call(s, api_key, version, body)


def coordinator_of(c, group):
    """The group's coordinator, once ``__consumer_offsets`` exists and has a leader."""
    def ask():
        try:
            answer = raw(c, min(c.procs), ApiKey.FIND_COORDINATOR, 1,
                         {"key": group, "key_type": 0})
        except OSError:
            return None
        return answer["error_code"] == 0 and answer["node_id"]
    return wait_for("a coordinator", ask, TIMEOUT)


def test_join_and_sync_group_not_coordinator_is_encodable_at_every_version(make_cluster):
    """A broker that is not the group's coordinator answers JoinGroup v0-v7 and SyncGroup
    v0-v5 NOT_COORDINATOR, with JoinGroup's protocol_name "" below v7 (not nullable there in
    Kafka's JoinGroupResponse) and null from v7: the connection stays open (kafka-python
    after a coordinator failover used to see it closed)."""
    c = make_cluster(["min.insync.replicas=2", "offsets.topic.num.partitions=1"])
    coordinator = coordinator_of(c, "grp")
    assert partition_for("grp", 1) == 0
    other = next(n for n in (1, 2, 3) if n != coordinator)
    with socket.create_connection(c.address(other), timeout=30) as s:
        for v in range(8):
            body = {"group_id": "grp", "session_timeout_ms": 10000, "rebalance_timeout_ms": 10000,
                    "member_id": "", "group_instance_id": None, "protocol_type": "consumer",
                    "protocols": [{"name": "range", "metadata": b""}], "reason": None}
            answer = call(s, ApiKey.JOIN_GROUP, v, body, cid=v + 1)
            assert answer["error_code"] == EC.NOT_COORDINATOR, v
            assert answer["protocol_name"] == ("" if v < 7 else None), v
        for v in range(6):
            answer = call(s, ApiKey.SYNC_GROUP, v, {
                "group_id": "grp", "generation_id": 1, "member_id": "m",
                "group_instance_id": None, "protocol_type": "consumer", "protocol_name": "range",
                "assignments": []}, cid=100 + v)
            assert answer["error_code"] == EC.NOT_COORDINATOR, v
