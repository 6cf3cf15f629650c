"""Replication: Kafka's protocol between klog brokers, coordinated through ZooKeeper.

The logic that decides is kept free of I/O so a deterministic simulation can drive it
(tests/cluster/): ``replica`` (one broker's replica of one partition: leader or follower, ISR,
high watermark, leader-epoch truncation) and ``election`` (the controller's choices of leader and
ISR). The server wires them to sockets and ZooKeeper.
"""
from klog.cluster.state import EpochEnd, LeaderAndIsr, NO_LEADER, UNDEFINED_EPOCH_END
from klog.cluster.replica import FetchRequest, FetchResponse, Replica, ReplicaLog, Role

__all__ = ["EpochEnd", "FetchRequest", "FetchResponse", "LeaderAndIsr", "NO_LEADER", "Replica",
           "ReplicaLog", "Role", "UNDEFINED_EPOCH_END"]
