"""Metadata (API 3): one handler for a single node and a cluster member.

The cluster's view comes from ``Server.replication`` (``metadata_view``, klog.server.cluster_view):
a single node is a cluster of one (LocalReplication), a cluster member reads ZooKeeper
(ClusterReplication; its last view while ZooKeeper is unreachable). The rest is decided here,
the same way for both, as Kafka's KafkaApis.handleTopicMetadataRequest does:

- topics null (v1+), or empty at v0: every topic, internal ones included (``is_internal``);
- a topic by id (v12+): an unknown id answers UNKNOWN_TOPIC_ID with a null name; a null name
  before v12 is INVALID_REQUEST ("Topic name can not be null for version 10/11");
- an unknown name: INVALID_TOPIC_EXCEPTION if it is not a legal topic name; otherwise created
  when ``auto.create.topics.enable`` and the request's ``allow_auto_topic_creation`` (always
  true before v4) both allow it (never an internal topic), else UNKNOWN_TOPIC_OR_PARTITION. A
  single node creates it at once and describes it; a cluster member asks the controller and
  answers LEADER_NOT_AVAILABLE (Kafka's answer) until it exists;
- no authorizer: every operation is authorized (KIP-430 fields when asked for).
"""
from klog.errors import KlogError
from klog.metadata import is_internal, validate_topic_name
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey
from klog.protocol.types import ZERO_UUID
from klog.server.admin import CLUSTER_OPERATIONS, INT32_MIN, TOPIC_OPERATIONS
from klog.server.handlers import api


@api(ApiKey.METADATA)
async def metadata(ctx, body):
    v = ctx.version
    replication = ctx.server.replication
    requested = body.get("topics")
    every_topic = requested is None or (v == 0 and not requested)
    by_id = {}          # position -> the answer for a topic asked by id that is not known
    names = None
    if not every_topic:
        names = []
        for i, t in enumerate(requested):
            name = t.get("name")
            if name is None:
                topic_id = t.get("topic_id", ZERO_UUID)
                if v < 12:
                    # (a response name is not nullable before v12)
                    by_id[i] = {"error_code": EC.INVALID_REQUEST, "name": "",
                                "topic_id": topic_id, "partitions": []}
                else:
                    name = replication.topic_name_for_id(topic_id)
                    if name is None:
                        by_id[i] = {"error_code": EC.UNKNOWN_TOPIC_ID, "name": None,
                                    "topic_id": topic_id, "partitions": []}
            names.append(name)
    view = await replication.metadata_view(
        None if names is None else [n for i, n in enumerate(names) if i not in by_id])
    topics = view.topics
    if names is not None:
        if by_id:       # put the ids' answers back in the request's order
            known = iter(topics)
            topics = [by_id[i] if i in by_id else next(known) for i in range(len(names))]
        allowed = None
        for i, t in enumerate(topics):
            if t["error_code"] != EC.UNKNOWN_TOPIC_OR_PARTITION or i in by_id:
                continue
            try:
                validate_topic_name(t["name"])
            except KlogError:
                t["error_code"] = EC.INVALID_TOPIC_EXCEPTION
                continue
            if allowed is None:
                allowed = (body.get("allow_auto_topic_creation", True) if v >= 4 else True) \
                    and ctx.broker.config["auto.create.topics.enable"]
            if allowed and not is_internal(t["name"]) and requested[i].get("name") is not None:
                topics[i] = await replication.auto_create_topic(t["name"])
    if body.get("include_topic_authorized_operations"):
        for t in topics:
            t["topic_authorized_operations"] = \
                TOPIC_OPERATIONS if t["error_code"] == 0 else INT32_MIN
    return {
        "throttle_time_ms": 0, "brokers": view.brokers, "cluster_id": ctx.server.cluster_id,
        "controller_id": view.controller_id, "topics": topics,
        "cluster_authorized_operations": CLUSTER_OPERATIONS
        if body.get("include_cluster_authorized_operations") else INT32_MIN,
    }

