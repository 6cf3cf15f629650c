"""The Kafka requests a broker answers differently in cluster mode (``klog serve --zookeeper``):
the server uses these in place of the single-node handlers of klog.server.handlers.

- Produce goes through the partition's ``Replica``: NOT_LEADER_OR_FOLLOWER on a non-leader,
  NOT_ENOUGH_REPLICAS before the append and NOT_ENOUGH_REPLICAS_AFTER_APPEND after it by
  ``min.insync.replicas`` for acks=all, which is answered once the high watermark passes the
  batch (REQUEST_TIMED_OUT after the request's ``timeout_ms``); acks=1 on the leader's append.
- Fetch with a replica id (a follower) is answered by ``Replica.handle_fetch`` (a broker that is
  not a replica of the partition is refused with UNKNOWN_LEADER_EPOCH, or NOT_LEADER_OR_FOLLOWER
  without a leader epoch, as Kafka; a broker epoch that is not the registration's with
  STALE_BROKER_EPOCH: ``ReplicaManager.handle_follower_fetch``); a consumer's Fetch
  (replica id -1) is served by the leader only and never past the high watermark.
- Metadata lists the live brokers, the controller, and per partition the leader, replicas, ISR,
  offline replicas and leader epoch, from ZooKeeper. Topics are never auto-created.
- CreateTopics goes to the controller (a non-controller answers NOT_CONTROLLER; clients then
  retry on the controller that Metadata names).
- DeleteTopics and CreatePartitions are refused (INVALID_REQUEST, saying so) until they go
  through the controller.
- ListOffsets "latest" is the high watermark, on the leader only; producer ids carry the node
  id in their high bits so brokers never hand out the same.
- Groups: ``__consumer_offsets`` is a replicated topic, created through the controller at the
  first FindCoordinator; a group's coordinator is the leader of its partition (Kafka's
  ``partitionFor``), which reloads the partition's groups when it becomes leader (ReplicaManager);
  other brokers answer the group requests NOT_COORDINATOR. OffsetCommit and SyncGroup answer
  once the offsets partition's high watermark reached its end (a bounded wait).
"""
from __future__ import annotations

import asyncio
import logging
import time

from klog._native.batch import validate_batch
from klog.cluster.replica import FetchRequest, Role
from klog.errors import KlogError, TopicExistsError
from klog.group.offsets import OFFSETS_TOPIC, partition_for
from klog.metadata import INTERNAL_TOPICS, validate_topic_name
from klog.partition import READ_UNCOMMITTED
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey
from klog.server import epochs
from klog.server import handlers as base
from klog.storage.producer_state import InvalidProducerEpochError, OutOfOrderSequenceError

HANDLERS = {}
CONTROLLER_TIMEOUT_S = 30.0


def api(key):
    def register(fn):
        HANDLERS[key] = fn
        return fn
    return register


def _node(ctx):
    return ctx.server.cluster


def _missing(node, topic):
    return EC.NOT_LEADER_OR_FOLLOWER if topic in node.manager.topic_ids \
        else EC.UNKNOWN_TOPIC_OR_PARTITION


# -- Produce -----------------------------------------------------------------------------------
@api(ApiKey.PRODUCE)
async def produce(ctx, body):
    acks = body["acks"]
    if acks not in (0, 1, -1):
        return await base.produce(ctx, body)
    node = _node(ctx)
    out, waiting = [], []
    for t in body["topic_data"]:
        name = t["name"]
        parts = []
        for p in t["partition_data"]:
            res = {"index": p["index"], "error_code": 0, "base_offset": -1,
                   "log_append_time_ms": -1, "log_start_offset": -1, "record_errors": []}
            parts.append(res)
            hosted = node.manager.get(name, p["index"])
            if hosted is None:
                res["error_code"] = _missing(node, name)
                continue
            records = p["records"]
            try:
                if records is None or len(records) == 0:
                    raise base.CorruptRecordError("no records")
                if validate_batch(records, False, False) != len(records):
                    res["error_code"] = EC.INVALID_RECORD
                    res["error_message"] = "only one record batch per partition is allowed"
                    continue
                with hosted.lock:
                    appended = hosted.replica.append([records], acks=acks)
                    hosted.sync()
                    start = hosted.replica.log.log_start_offset
            except (KlogError, OutOfOrderSequenceError, InvalidProducerEpochError,
                    ValueError) as exc:
                code = base.error_code(exc)
                if code == EC.UNKNOWN_SERVER_ERROR and isinstance(exc, ValueError):
                    code = EC.CORRUPT_MESSAGE
                res["error_code"], res["error_message"] = code, str(exc)[:500]
                continue
            except OSError as exc:
                res["error_code"] = base._storage_error(ctx.server.conditions, "Produce to",
                                                        name, p["index"], exc)
                continue
            if appended.error:
                res["error_code"] = appended.error
                continue
            res["base_offset"], res["log_start_offset"] = appended.first_offset, start
            if acks == -1:
                waiting.append((res, hosted, appended))
        out.append({"name": name, "partition_responses": parts})
    node.changes.notify()
    deadline = time.monotonic() + max(0, body.get("timeout_ms", 30_000)) / 1000
    while waiting:
        seq = node.changes.seq
        still = []
        for res, hosted, appended in waiting:
            with hosted.lock:
                outcome = hosted.replica.acks_all_outcome(appended)
            if outcome is None:
                still.append((res, hosted, appended))
            elif outcome:
                res["error_code"] = outcome
        waiting = still
        left = deadline - time.monotonic()
        if waiting and (left <= 0 or ctx.server.stopping):
            for res, _, _ in waiting:
                res["error_code"] = EC.REQUEST_TIMED_OUT
            break
        if waiting:
            await node.changes.wait(seq, left)
    if acks == 0:
        return None
    return {"responses": out, "throttle_time_ms": 0}


# -- Fetch -------------------------------------------------------------------------------------
def _fetch_once(ctx, body, replica_id, replica_epoch=-1):
    node = _node(ctx)
    budget = body.get("max_bytes", 0x7FFFFFFF)
    total, error, responses = 0, False, []
    for t in body["topics"]:
        parts = []
        for p in t["partitions"]:
            res = {"partition_index": p["partition"], "error_code": 0, "high_watermark": -1,
                   "last_stable_offset": -1, "log_start_offset": -1,
                   "aborted_transactions": [], "records": b""}
            parts.append(res)
            hosted = node.manager.get(t["topic"], p["partition"]) if t["topic"] else None
            if hosted is None:
                res["error_code"] = _missing(node, t["topic"])
                error = True
                continue
            offset = p["fetch_offset"]
            if replica_id >= 0:
                answer = node.manager.handle_follower_fetch(hosted, FetchRequest(
                    replica_id, offset, p.get("last_fetched_epoch", -1),
                    p.get("current_leader_epoch", -1), p["partition_max_bytes"], replica_epoch))
                res.update(error_code=answer.error, high_watermark=answer.high_watermark,
                           last_stable_offset=answer.high_watermark,
                           log_start_offset=answer.log_start_offset)
                if answer.diverging_epoch is not None:
                    d = answer.diverging_epoch
                    # The leader knows none of the follower's epochs: epoch -1 with an end
                    # offset >= 0 tells our follower to fall back to its high watermark.
                    res["diverging_epoch"] = {"epoch": d.epoch, "end_offset": max(d.end_offset, 0)}
                    error = True
                elif answer.error:
                    error = True
                elif answer.records:
                    res["records"] = answer.records
                    total += len(answer.records)
                continue
            try:
                with hosted.lock:
                    replica = hosted.replica
                    role, epoch, hw = replica.role, replica.leader_epoch, replica.high_watermark
                asked = p.get("current_leader_epoch", -1)
                if role is not Role.LEADER:
                    res["error_code"] = EC.NOT_LEADER_OR_FOLLOWER
                elif 0 <= asked < epoch:
                    res["error_code"] = EC.FENCED_LEADER_EPOCH
                elif asked > epoch:
                    res["error_code"] = EC.UNKNOWN_LEADER_EPOCH
                if res["error_code"]:
                    error = True
                    continue
                part = hosted.part
                start, end = part.log_start_offset, part.log_end_offset
                res.update(high_watermark=hw, last_stable_offset=hw, log_start_offset=start)
                diverging = epochs.diverging_epoch(part, p.get("last_fetched_epoch", -1), offset)
                if diverging is not None:
                    res["diverging_epoch"] = diverging
                    error = True
                elif not start <= offset <= end:
                    res["error_code"] = EC.OFFSET_OUT_OF_RANGE
                    error = True
                elif offset < hw:
                    limit = min(p["partition_max_bytes"], budget)
                    if total == 0 or limit > 0:
                        view = part.read(offset, max(1, limit), READ_UNCOMMITTED)
                        ctx.views.append(view)
                        if not (total and view.nbytes > limit) and view.nbytes:
                            res["records"] = view
                            total += view.nbytes
                            budget -= view.nbytes
            except KlogError as exc:
                res["error_code"] = base.error_code(exc)
                error = True
            except OSError as exc:
                res["error_code"] = base._storage_error(ctx.server.conditions, "Fetch from",
                                                        t["topic"], p["partition"], exc)
                error = True
        responses.append({"topic": t["topic"], "partitions": parts})
    return responses, total, error


@api(ApiKey.FETCH)
async def fetch(ctx, body):
    node, server = _node(ctx), ctx.server
    replica_id, replica_epoch = body.get("replica_id", -1), -1
    if ctx.version >= 15:
        state = body.get("replica_state") or {}
        replica_id, replica_epoch = state.get("replica_id", -1), state.get("replica_epoch", -1)
    unknown = set()
    if ctx.version >= 13:
        names = {v: k for k, v in node.manager.topic_ids.items()}
        for i, t in enumerate(body["topics"]):
            t["topic"] = names.get(t.get("topic_id"))
            if t["topic"] is None:
                unknown.add(i)
    deadline = time.monotonic() + max(0, body["max_wait_ms"]) / 1000.0
    while True:
        seq = node.changes.seq
        responses, total, error = _fetch_once(ctx, body, replica_id, replica_epoch)
        left = deadline - time.monotonic()
        if total >= body["min_bytes"] or error or left <= 0 or server.stopping:
            break
        ctx.release()
        await node.changes.wait(seq, left)
    if ctx.version >= 13:
        epochs.mark_fetch_topic_ids(responses, body["topics"], unknown, EC.UNKNOWN_TOPIC_ID)
    return {"throttle_time_ms": 0, "error_code": 0, "session_id": 0, "responses": responses}


# -- ListOffsets -------------------------------------------------------------------------------
@api(ApiKey.LIST_OFFSETS)
async def list_offsets(ctx, body):
    node = _node(ctx)
    answer = await base.list_offsets(ctx, body)
    for t, asked in zip(answer["topics"], body["topics"]):
        for res, p in zip(t["partitions"], asked["partitions"]):
            hosted = node.manager.get(t["name"], res["partition_index"])
            if hosted is None or hosted.replica.role is not Role.LEADER:
                res.update(error_code=EC.NOT_LEADER_OR_FOLLOWER if hosted is not None
                           else _missing(node, t["name"]), offset=-1, leader_epoch=-1)
            elif p["timestamp"] == -1 and res["error_code"] == 0:
                # A consumer's "latest" is the high watermark; a follower's the log end (Kafka).
                hw = hosted.replica.high_watermark if body.get("replica_id", -1) < 0 \
                    else hosted.part.log_end_offset
                res["offset"] = hw
                res["leader_epoch"] = hosted.part.epoch_for_offset(hw)
    return answer


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


# -- coordinators and producer ids -------------------------------------------------------------
def _request_offsets_topic(node, broker):
    """Have the controller create ``__consumer_offsets`` (``offsets.topic.replication.factor``
    capped by the live brokers, as Kafka does at first use), with its config in ZooKeeper."""
    from klog.cluster.admin_handlers import request_topic_creation
    from klog.cluster.topic_configs import offsets_topic_config
    rf = min(broker.config["offsets.topic.replication.factor"], len(node.store.live_brokers()))
    request_topic_creation(node, OFFSETS_TOPIC, broker.config["offsets.topic.num.partitions"], rf,
                           offsets_topic_config(broker))


def _coordinators(node, broker, keys):
    """key -> (node id, host, port): the leader of the group's ``__consumer_offsets``
    partition (``partition_for``), as in Kafka; (-1, ...) while it has no live leader or the
    topic is still being created."""
    store = node.store
    if OFFSETS_TOPIC not in store.topics():
        _request_offsets_topic(node, broker)
        return {}
    n = len(store.topic(OFFSETS_TOPIC).partitions)
    live = store.live_brokers()
    out = {}
    for key in keys:
        leader = store.partition_state(OFFSETS_TOPIC, partition_for(key, n)).leader
        if leader in live:
            out[key] = (leader, live[leader][1]["host"], live[leader][1]["port"])
    return out


@api(ApiKey.FIND_COORDINATOR)
async def find_coordinator(ctx, body):
    node = _node(ctx)
    keys = body.get("coordinator_keys") if ctx.version >= 4 else [body.get("key")]
    try:
        found = await base._run(_coordinators, node, ctx.broker, keys)
    except Exception:     # noqa: BLE001 - ZooKeeper or the controller unreachable: ask again
        found = {}
    answers = []
    for k in keys:
        b, host, port = found.get(k, (-1, "", -1))
        answers.append({"key": k, "node_id": b, "host": host, "port": port,
                        "error_code": 0 if b >= 0 else EC.COORDINATOR_NOT_AVAILABLE,
                        "error_message": None})
    if ctx.version >= 4:
        return {"throttle_time_ms": 0, "coordinators": answers}
    a = answers[0]
    return {"throttle_time_ms": 0, "error_code": a["error_code"], "error_message": None,
            "node_id": a["node_id"], "host": a["host"], "port": a["port"]}


# -- group requests: only on the group's coordinator ---------------------------------------------
def _coordinates(node, group_id):
    """Whether this broker leads the group's ``__consumer_offsets`` partition."""
    n = node.manager.partition_counts.get(OFFSETS_TOPIC)
    if not n:
        return False
    hosted = node.manager.get(OFFSETS_TOPIC, partition_for(group_id, n))
    return hosted is not None and hosted.replica.role is Role.LEADER


def _not_coordinator(api_key, version, body):
    nc = EC.NOT_COORDINATOR
    if api_key == ApiKey.JOIN_GROUP:
        return {"throttle_time_ms": 0, "error_code": nc, "generation_id": -1,
                "protocol_type": None, "protocol_name": None, "leader": "", "member_id": "",
                "members": [], "skip_assignment": False}
    if api_key == ApiKey.SYNC_GROUP:
        return {"throttle_time_ms": 0, "error_code": nc, "protocol_type": None,
                "protocol_name": None, "assignment": b""}
    if api_key == ApiKey.HEARTBEAT:
        return {"throttle_time_ms": 0, "error_code": nc}
    if api_key == ApiKey.LEAVE_GROUP:
        return {"throttle_time_ms": 0, "error_code": nc, "members": []}
    if api_key == ApiKey.OFFSET_COMMIT:
        return {"throttle_time_ms": 0, "topics": [
            {"name": t["name"], "partitions": [
                {"partition_index": p["partition_index"], "error_code": nc}
                for p in t["partitions"]]} for t in body["topics"]]}
    raise AssertionError(api_key)


COMMIT_REPLICATION_WAIT_S = 10.0


async def _replicated(node, group_id):
    """Wait (bounded) until the group's offsets partition's high watermark reaches its log end:
    a commit is answered once the ISR holds it, as Kafka appends commits with acks=all."""
    hosted = node.manager.get(OFFSETS_TOPIC, partition_for(
        group_id, node.manager.partition_counts[OFFSETS_TOPIC]))
    if hosted is None:
        return
    target = hosted.part.log_end_offset
    deadline = time.monotonic() + COMMIT_REPLICATION_WAIT_S
    while hosted.replica.high_watermark < target and time.monotonic() < deadline:
        seq = node.changes.seq
        if hosted.replica.high_watermark >= target:
            break
        await node.changes.wait(seq, deadline - time.monotonic())


def _coordinator_only(api_key):
    async def handler(ctx, body):
        node = _node(ctx)
        if not _coordinates(node, body["group_id"]):
            return _not_coordinator(api_key, ctx.version, body)
        answer = await base.HANDLERS[api_key](ctx, body)
        if api_key in (ApiKey.OFFSET_COMMIT, ApiKey.SYNC_GROUP):
            await _replicated(node, body["group_id"])
        return answer
    return handler


for _key in (ApiKey.JOIN_GROUP, ApiKey.SYNC_GROUP, ApiKey.HEARTBEAT, ApiKey.LEAVE_GROUP,
             ApiKey.OFFSET_COMMIT):
    HANDLERS[_key] = _coordinator_only(_key)


@api(ApiKey.OFFSET_FETCH)
async def offset_fetch(ctx, body):
    node = _node(ctx)
    if ctx.version >= 8:
        groups = [g["group_id"] for g in body["groups"]]
    else:
        groups = [body["group_id"]]
    if all(_coordinates(node, g) for g in groups):
        return await base.offset_fetch(ctx, body)
    if ctx.version >= 8:
        return {"throttle_time_ms": 0, "groups": [
            {"group_id": g, "topics": [], "error_code": EC.NOT_COORDINATOR} for g in groups]}
    return {"throttle_time_ms": 0, "topics": [], "error_code": EC.NOT_COORDINATOR}


@api(ApiKey.INIT_PRODUCER_ID)
async def init_producer_id(ctx, body):
    answer = await base.init_producer_id(ctx, body)
    if answer["error_code"] == 0 and body.get("producer_id", -1) < 0:
        answer["producer_id"] += _node(ctx).node_id << 48
    return answer


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
