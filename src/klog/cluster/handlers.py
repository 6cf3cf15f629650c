"""The Kafka requests a broker answers from ZooKeeper's view of the cluster in cluster mode
(``klog serve --zookeeper``): the server uses these in place of the single-node handlers of
klog.server.handlers (``Server.handlers``). Every other request has one path for both modes:
Produce, Fetch, ListOffsets, OffsetForLeaderEpoch, InitProducerId, FindCoordinator and the group
requests ask the Partition and ``Server.replication`` (klog.cluster.replication.
ClusterReplication here).

- Metadata lists the live brokers, the controller, and per partition the leader, replicas, ISR,
  offline replicas and leader epoch, from ZooKeeper. Topics are never auto-created.
- CreateTopics goes to the controller (a non-controller answers NOT_CONTROLLER; clients then
  retry on the controller that Metadata names).
- DeleteTopics and CreatePartitions are refused (INVALID_REQUEST, saying so) until they go
  through the controller.
"""
from __future__ import annotations

import asyncio
import logging

from klog.errors import KlogError, TopicExistsError
from klog.metadata import INTERNAL_TOPICS, validate_topic_name
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey
from klog.server import handlers as base

HANDLERS = {}
CONTROLLER_TIMEOUT_S = 30.0


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


# -- CreateTopics ------------------------------------------------------------------------------
def _create_topics(node, broker, body):
    out = []
    for t in body["topics"]:
        name = t["name"]
        res = {"name": name, "error_code": 0, "error_message": None, "num_partitions": -1,
               "replication_factor": -1, "configs": None}
        out.append(res)
        if not node.is_controller:
            res["error_code"] = EC.NOT_CONTROLLER
            res["error_message"] = f"broker {node.node_id} is not the controller"
            continue
        try:
            validate_topic_name(name)
            n = t["num_partitions"]
            n = broker.config["num.partitions"] if n == -1 else n
            rf = t["replication_factor"]
            rf = 1 if rf == -1 else rf
            live = node.store.live_brokers()
            if t["assignments"]:
                res["error_code"] = EC.INVALID_REQUEST
                res["error_message"] = "explicit replica assignments are not supported yet"
                continue
            if n < 1 or n > base.MAX_PARTITIONS:
                res["error_code"] = EC.INVALID_PARTITIONS
                res["error_message"] = f"partition count must be 1..{base.MAX_PARTITIONS}, not {n}"
                continue
            if not 1 <= rf <= len(live):
                res["error_code"] = EC.INVALID_REPLICATION_FACTOR
                res["error_message"] = (f"replication factor {rf} is not within 1..{len(live)} "
                                        "(live brokers)")
                continue
            if name in node.store.topics():
                res["error_code"] = EC.TOPIC_ALREADY_EXISTS
                res["error_message"] = f"topic {name!r} already exists"
                continue
            if not body.get("validate_only"):
                done = node.controller.submit(_create_if_absent, node.controller, name, n, rf)
                topic_id = done.get(timeout=CONTROLLER_TIMEOUT_S)
                if isinstance(topic_id, Exception):
                    raise topic_id
                res["topic_id"] = topic_id
            res["num_partitions"], res["replication_factor"] = n, rf
        except Exception as exc:     # noqa: BLE001 - answered per topic, never a dropped connection
            from klog.cluster.zkstore import NotControllerError
            res["error_code"] = (EC.NOT_CONTROLLER if isinstance(exc, NotControllerError)
                                 else base.error_code(exc) if isinstance(exc, KlogError)
                                 else EC.UNKNOWN_SERVER_ERROR)
            res["error_message"] = str(exc)[:500]
    return out


def _create_if_absent(controller, name, partitions, replication_factor):
    """On the controller thread, so two requests for one name cannot both pass the check."""
    if name in controller.store.topics():
        raise TopicExistsError(f"topic {name!r} already exists")
    return controller.create_topic(name, partitions, replication_factor)


@api(ApiKey.CREATE_TOPICS)
async def create_topics(ctx, body):
    return {"throttle_time_ms": 0,
            "topics": await base._run(_create_topics, _node(ctx), ctx.broker, body)}


# -- not in cluster mode yet -------------------------------------------------------------------
# The single-node handlers would change this broker's local copy only, behind ZooKeeper's back
# (a deleted topic's logs gone here while the cluster still serves it): refused, saying so.
def _not_yet(what):
    return f"{what} is not supported in cluster mode (klog serve --zookeeper) yet"


@api(ApiKey.DELETE_TOPICS)
async def delete_topics(ctx, body):
    if ctx.version >= 6:
        named = [(t.get("name"), t.get("topic_id")) for t in body["topics"]]
    else:
        named = [(n, None) for n in body["topic_names"]]
    responses = []
    for name, topic_id in named:
        r = {"name": name, "error_code": EC.INVALID_REQUEST,
             "error_message": _not_yet("DeleteTopics")}
        if ctx.version >= 6:
            r["topic_id"] = topic_id
        responses.append(r)
    return {"throttle_time_ms": 0, "responses": responses}


@api(ApiKey.CREATE_PARTITIONS)
async def create_partitions(ctx, body):
    return {"throttle_time_ms": 0, "results": [
        {"name": t["name"], "error_code": EC.INVALID_REQUEST,
         "error_message": _not_yet("CreatePartitions")} for t in body["topics"]]}
