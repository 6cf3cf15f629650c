"""A cluster member's Metadata view read from a real ZooKeeper (klog.cluster.metadata_view):
every asked topic in order, live leaders only, offline replicas named, a partition whose state
znode is not written yet answered LEADER_NOT_AVAILABLE rather than failing the whole view."""
import uuid

import pytest

from klog.cluster.metadata_view import read_view
from klog.cluster.state import LeaderAndIsr
from klog.cluster.zkstore import ClusterStore
from klog.protocol.errors import ErrorCode as EC


@pytest.fixture
def store(zookeeper):
    with ClusterStore(f"{zookeeper.address}/t{uuid.uuid4().hex[:12]}") as s:
        yield s


def test_the_view_answers_each_topic_in_order_from_zookeeper(store):
    fence = store.elect_controller(1)
    store.register_broker(1, "127.0.0.1", 9092)
    store.register_broker(2, "127.0.0.1", 9093)          # broker 3 is not alive
    store.create_topic("a", {0: (1, 2, 3), 1: (3, 1, 2)},
                       {0: LeaderAndIsr(1, 4, (1, 2), fence.epoch),
                        1: LeaderAndIsr(3, 2, (3,), fence.epoch)}, fence)
    store.create_topic("b", {0: (2, 1)}, {0: LeaderAndIsr(2, 0, (2, 1), fence.epoch)}, fence)
    # a partition whose state a controller has not written yet (a creation left halfway)
    store.client.delete(store.state_path("b", 0))

    view = read_view(store, ["b", "nope", "a", "a"])
    assert view.controller_id == 1
    assert sorted(b["node_id"] for b in view.brokers) == [1, 2]
    assert [(t["name"], t["error_code"]) for t in view.topics] == [
        ("b", 0), ("nope", EC.UNKNOWN_TOPIC_OR_PARTITION), ("a", 0), ("a", 0)]
    b, _, a, _ = view.topics
    assert [(p["partition_index"], p["leader_id"], p["error_code"]) for p in b["partitions"]] == [
        (0, -1, EC.LEADER_NOT_AVAILABLE)]
    assert [(p["leader_id"], p["leader_epoch"], p["isr_nodes"], p["offline_replicas"],
             p["error_code"]) for p in a["partitions"]] == [
        (1, 4, [1, 2], [3], 0),
        (-1, 2, [3], [3], EC.LEADER_NOT_AVAILABLE)]       # its leader (3) is not alive
    assert [t["name"] for t in read_view(store, None).topics] == ["a", "b"]
