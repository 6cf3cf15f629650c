"""Metadata in cluster mode (``klog serve --zookeeper``): the one request a cluster member
answers from ZooKeeper's view with its own handler, in place of the single-node one of
klog.server.handlers (``Server.handlers``; klog.cluster.admin_handlers.install adds the
controller's admin requests, klog.cluster.controlled_shutdown ControlledShutdown). Every other
request has one path for both modes: Produce, Fetch, ListOffsets, OffsetForLeaderEpoch,
InitProducerId, FindCoordinator and the group requests ask the Partition and
``Server.replication`` (klog.cluster.replication.ClusterReplication here).

Metadata lists the live brokers, the controller, and per partition the leader, replicas, ISR,
offline replicas and leader epoch, from ZooKeeper (the last view read while ZooKeeper is
unreachable). Auto-creation is admin_handlers' wrapper.
"""
from __future__ import annotations

import asyncio
import logging

from klog.metadata import INTERNAL_TOPICS
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey
from klog.server import handlers as base

HANDLERS = {}


def api(key):
    def register(fn):
        HANDLERS[key] = fn
        return fn
    return register


def _node(ctx):
    return ctx.server.cluster


# -- Metadata ----------------------------------------------------------------------------------
def _cluster_view(node, names):
    store = node.store
    live = store.live_brokers()
    controller = store.controller()
    all_topics = store.topics()
    if names is None:
        names = all_topics
    topics = []
    for name in names:
        if name not in all_topics:
            topics.append({"error_code": EC.UNKNOWN_TOPIC_OR_PARTITION, "name": name,
                           "partitions": []})
            continue
        assignment = store.topic(name)
        parts = []
        for p, replicas in sorted(assignment.partitions.items()):
            state = store.partition_state(name, p)
            leader = state.leader if state.leader in live else -1
            parts.append({"error_code": 0 if leader >= 0 else EC.LEADER_NOT_AVAILABLE,
                          "partition_index": p, "leader_id": leader,
                          "leader_epoch": state.leader_epoch, "replica_nodes": list(replicas),
                          "isr_nodes": list(state.isr),
                          "offline_replicas": [r for r in replicas if r not in live]})
        topics.append({"error_code": 0, "name": name, "topic_id": assignment.topic_id,
                       "is_internal": name in INTERNAL_TOPICS, "partitions": parts})
    brokers = [{"node_id": b, "host": info["host"], "port": info["port"], "rack": None}
               for b, (_, info) in sorted(live.items())]
    return brokers, controller, topics


METADATA_ZOOKEEPER_WAIT_S = 5.0


@api(ApiKey.METADATA)
async def metadata(ctx, body):
    node, v = _node(ctx), ctx.version
    requested = body.get("topics")
    names = None
    if requested is not None and not (v == 0 and not requested):
        by_id = {i: n for n, i in node.manager.topic_ids.items()}
        names = [t["name"] if t.get("name") is not None else by_id.get(t.get("topic_id"), "")
                 for t in requested]
    cache = node.metadata_cache
    try:
        # Reads wait while kazoo reconnects: not connected, or no answer soon, is "without".
        if not node.store.client.connected:
            raise ConnectionError("not connected to ZooKeeper")
        brokers, controller, topics = await asyncio.wait_for(
            base._run(_cluster_view, node, names), METADATA_ZOOKEEPER_WAIT_S)
        cache.update(brokers=brokers, controller=controller)
        cache.setdefault("topics", {}).update((t["name"], t) for t in topics if not t["error_code"])
    except Exception as exc:   # noqa: BLE001 - ZooKeeper unreachable (or stopping): say so
        ctx.server.conditions.report(("Metadata", type(exc).__name__), logging.WARNING,
                                     "Metadata without ZooKeeper: %s", exc)
        # The last view read from ZooKeeper (Kafka's metadata cache). Never "this broker alone":
        # librdkafka forgets the brokers a Metadata answer leaves out.
        host, port = ctx.server.advertised
        brokers = cache.get("brokers") or [{"node_id": node.node_id, "host": host,
                                            "port": port, "rack": None}]
        controller = cache.get("controller", -1)
        known = cache.get("topics", {})
        topics = list(known.values()) if names is None else [
            known.get(n) or {"error_code": EC.LEADER_NOT_AVAILABLE, "name": n, "partitions": []}
            for n in names]
    from klog.server.admin import CLUSTER_OPERATIONS, INT32_MIN, TOPIC_OPERATIONS
    if body.get("include_topic_authorized_operations"):
        for t in topics:
            t["topic_authorized_operations"] = TOPIC_OPERATIONS if t["error_code"] == 0 else INT32_MIN
    return {
        "throttle_time_ms": 0, "brokers": brokers, "cluster_id": node.cluster_id,
        "controller_id": controller if controller is not None else -1, "topics": topics,
        "cluster_authorized_operations": CLUSTER_OPERATIONS
        if body.get("include_cluster_authorized_operations") else INT32_MIN,
    }
