"""The cluster as Metadata describes it: what ``Server.replication.metadata_view`` supplies to the
one Metadata handler (klog.server.topic_metadata), in the wire's own shape so a single node
builds it without copies.

A single node is a cluster of one: broker ``node_id`` at its advertised address is the
controller, the leader of every partition and its only replica and in-sync replica. A cluster
member fills the same fields from ZooKeeper (klog.cluster.metadata_view).
"""
from __future__ import annotations

from dataclasses import dataclass

from klog.metadata import INTERNAL_TOPICS
from klog.protocol.errors import ErrorCode as EC


@dataclass
class MetadataView:
    """``brokers``: the live brokers as Metadata's wire entries (node_id, host, port, rack);
    ``controller_id``: -1 when none is known; ``topics``: wire topic entries, one per name
    asked (in order), or every topic the cluster has (internal ones included) when none
    were named. A name the view does not know has UNKNOWN_TOPIC_OR_PARTITION; one it cannot
    tell about just now (a cluster member away from ZooKeeper) LEADER_NOT_AVAILABLE."""
    brokers: list
    controller_id: int
    topics: list


def broker_entry(node_id, host, port, rack=None) -> dict:
    return {"node_id": node_id, "host": host, "port": port, "rack": rack}


def topic_entry(name, topic_id, partitions, error_code=0) -> dict:
    return {"error_code": error_code, "name": name, "topic_id": topic_id,
            "is_internal": name in INTERNAL_TOPICS, "partitions": partitions}


def partition_entry(index, leader, leader_epoch, replicas, isr, offline=()) -> dict:
    return {"error_code": 0 if leader >= 0 else EC.LEADER_NOT_AVAILABLE,
            "partition_index": index, "leader_id": leader, "leader_epoch": leader_epoch,
            "replica_nodes": list(replicas), "isr_nodes": list(isr),
            "offline_replicas": list(offline)}


def missing_topic(name, error_code=EC.UNKNOWN_TOPIC_OR_PARTITION) -> dict:
    return {"error_code": error_code, "name": name, "partitions": []}
