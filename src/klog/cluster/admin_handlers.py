"""Cluster administration over the wire (``klog serve --zookeeper``), Kafka's ZooKeeper-mode
design: every change of cluster state is made by the controller, as a version-checked multi-op
fenced by its epoch (klog.cluster.controller, klog.cluster.zkstore).

- CreateTopics, DeleteTopics, CreatePartitions and ElectLeaders are answered by the controller;
  another broker answers NOT_CONTROLLER and clients retry on the controller Metadata names (as
  they do with Kafka, which they send these requests to).
- CreateTopics writes the topic's config overrides to ``/config/topics/<topic>``; replication
  factor -1 means ``default.replication.factor``, partitions -1 ``num.partitions``.
- DeleteTopics marks the topic in ``/admin/delete_topics`` and the controller deletes it; every
  broker drops its replicas (and the groups' offsets for it) when it sees the topic gone.
- ElectLeaders (43): PREFERRED or UNCLEAN per partition, with Kafka's per-partition errors
  (ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE,
  UNKNOWN_TOPIC_OR_PARTITION); asked for all partitions (null), those that need no election
  are left out of the answer, as Kafka does.
- AlterPartitionReassignments (45) and ListPartitionReassignments (46), KIP-455: the controller
  starts, cancels and lists moves (klog.cluster.reassign_driver); another broker forwards the
  request to it, as AlterConfigs. Per partition: UNKNOWN_TOPIC_OR_PARTITION,
  INVALID_REPLICA_ASSIGNMENT (empty, duplicates, a broker that is not registered),
  NO_REASSIGNMENT_IN_PROGRESS (cancelling none); NOT_CONTROLLER on top when no controller
  could be reached.
- AlterConfigs / IncrementalAlterConfigs on TOPIC resources change ``/config/topics`` through
  the controller (clients send them to any broker: a non-controller forwards them, KIP-590's
  idea without the envelope) and every broker applies the change (klog.cluster.topic_configs);
  DescribeConfigs reads ZooKeeper. Values are validated as on a single node (INVALID_CONFIG).
  A BROKER resource named by the node id is this broker's own, as on a single node; the
  cluster-wide default (resource "") lives in ZooKeeper's ``/config/brokers/<default>`` and
  every broker runs with it below its own settings (klog.cluster.broker_configs). A change
  reaches the replicas (``min.insync.replicas`` where the topic sets none).
- DescribeCluster lists the live brokers and the controller from ZooKeeper (Metadata's last
  view while ZooKeeper is unreachable); BROKER config resources are named by the node id.

``install`` puts these over the handlers the server already uses in cluster mode.
"""
from __future__ import annotations

import logging
import queue
import socket
import time
from types import SimpleNamespace

from kazoo.exceptions import BadVersionError

from klog.broker import _canonical_config
from klog.broker_config import STATIC_BROKER_CONFIG, config_string
from klog.cluster import bounded, broker_configs
from klog.cluster.assignment import InvalidReplicationFactorError
from klog.cluster.controller import (CAS_ATTEMPTS, PREFERRED, UNCLEAN, Controller,
                                    TopicDeletionInProgressError)
from klog.cluster.reassignment import InvalidReplicaAssignmentError
from klog.cluster.topic_configs import apply_broker_config
from klog.cluster.zkstore import NotControllerError
from klog.errors import (InternalTopicError, InvalidPartitionsError, KlogError, TopicExistsError,
                         UnknownTopicOrPartitionError)
from klog.metadata import collision_key, is_internal, validate_topic_name
from klog.protocol import elect_leaders as _elect_leaders_schema  # noqa: F401 - registers API 43
from klog.protocol import reassignments as _reassignments_schema  # noqa: F401 - APIs 45, 46
from klog.protocol.errors import ErrorCode as EC
from klog.protocol import blocking
from klog.protocol.messages import REQUESTS, ApiKey
from klog.protocol.types import ZERO_UUID
from klog.server import admin as single
from klog.server import handlers as base

log = logging.getLogger("klog.cluster.admin")

HANDLERS = {}
CONTROLLER_TIMEOUT_S = 30.0
FORWARDED_CLIENT_ID = "klog-forwarded-by-"   # a forwarded request is never forwarded again
# A dead controller's successor is elected once its ZooKeeper session expires (6 s by default,
# up to a 2 s tick later, then the election): wait that long for it before answering an error.
FORWARD_PATIENCE_S = 15.0
FORWARD_RETRY_S = 0.2


def api(key):
    def register(fn):
        HANDLERS[key] = fn
        return fn
    return register


def install(handlers: dict) -> dict:
    """The cluster-mode handler table: ``handlers`` with these on top."""
    return {**handlers, **HANDLERS}


def _node(ctx):
    return ctx.server.cluster


class ControllerTimeoutError(KlogError):
    """The controller did not finish within the request's time (it may still do it)."""
    error_code = EC.REQUEST_TIMED_OUT


def on_controller(node, fn, *args):
    """Run ``fn(controller, *args)`` on this broker's controller thread and return its result
    (or raise what it raised); NotControllerError if this broker is not the controller."""
    if not node.is_controller:
        raise NotControllerError(f"broker {node.node_id} is not the controller")
    if bounded.deadline_passed():     # the client has its answer (REQUEST_TIMED_OUT) already
        raise bounded.DeadlineExceededError("the request's timeout_ms passed before the "
                                            "controller could start it")
    done = node.controller.submit(fn, node.controller, *args)
    wait = bounded.time_left(CONTROLLER_TIMEOUT_S)     # an admin request's own deadline
    try:
        result = done.get(timeout=wait)
    except queue.Empty:
        raise ControllerTimeoutError(
            f"the controller did not answer within {wait:.3g} s (ZooKeeper unreachable?); "
            "it may still do it") from None
    if isinstance(result, Exception):
        raise result
    return result


def _code(exc) -> int:
    if isinstance(exc, NotControllerError):
        return EC.NOT_CONTROLLER
    if isinstance(exc, InvalidReplicationFactorError):
        return EC.INVALID_REPLICATION_FACTOR
    if isinstance(exc, KlogError):
        return base.error_code(exc)
    return EC.UNKNOWN_SERVER_ERROR


def _not_controller(node) -> str:
    return f"broker {node.node_id} is not the controller"


def request_topic_creation(node, name, partitions, replication_factor, config=None):
    """Have the controller create a topic unless it exists (auto-creation, the offsets topic):
    directly if this broker is the controller, else by a CreateTopics request to it. Returns
    without waiting for the answer: the caller's client asks again."""
    if node.is_controller:
        node.controller.submit(_create_if_absent, node.controller, name, partitions,
                               replication_factor, None, config)
        return
    _send_to_controller(node, ApiKey.CREATE_TOPICS, 4, {
        "topics": [{"name": name, "num_partitions": partitions,
                    "replication_factor": replication_factor, "assignments": [],
                    "configs": [{"name": k, "value": str(v)} for k, v in (config or {}).items()]}],
        "timeout_ms": 10000, "validate_only": False}, wait=False)


def _require_zookeeper(node):
    """kazoo would wait for ZooKeeper to come back: a retriable error at once instead."""
    if not bounded.wait_connected(node):
        raise bounded.ZooKeeperUnavailableError(
            f"broker {node.node_id} cannot reach ZooKeeper just now")


def _send_to_controller(node, api_key, version, body, wait=True):
    """One request to the controller broker; its decoded answer (None with ``wait=False``)."""
    _require_zookeeper(node)
    store = node.store
    controller, live = store.controller(), store.live_brokers()
    if controller is None or controller not in live or controller == node.node_id:
        raise NotControllerError("no controller is elected just now")
    info = live[controller][1]
    with socket.create_connection((info["host"], info["port"]), timeout=CONTROLLER_TIMEOUT_S) as s:
        blocking.send_request(s, api_key, version, body,
                              client_id=f"{FORWARDED_CLIENT_ID}{node.node_id}")
        if not wait:
            s.recv(1 << 16)
            return None
        return blocking.read_response(s, api_key, version, peer="the controller")


def _forward_to_controller(node, api_key, version, body, patience_s=FORWARD_PATIENCE_S):
    """``_send_to_controller``, retried while there is no controller or it cannot be reached
    (it died and the next one is not elected yet), as Kafka's forwarding waits for the
    controller: the client gets an answer, not an error, across a controller's failover. Only
    for requests that may be sent twice (configs set to values). None if this broker became
    the controller meanwhile (the caller does it here)."""
    deadline = time.monotonic() + patience_s
    while True:
        if node.is_controller:
            return None
        try:
            return _send_to_controller(node, api_key, version, body)
        except (NotControllerError, OSError):   # not when ZooKeeper is away: answer now
            if time.monotonic() + FORWARD_RETRY_S >= deadline:
                raise
            time.sleep(FORWARD_RETRY_S)


# -- ApiVersions: what this (cluster-mode) server answers ----------------------------------------
@api(ApiKey.API_VERSIONS)
async def api_versions(ctx, body):
    answer = base.api_versions_body(ctx.version)
    listed = {k["api_key"] for k in answer["api_keys"]}
    for key in sorted(set(ctx.server.handlers) - listed):
        s = REQUESTS.get(key)
        if s is not None:
            answer["api_keys"].append({"api_key": key, "min_version": s.min_version,
                                       "max_version": s.max_version})
    answer["api_keys"].sort(key=lambda k: k["api_key"])
    return answer


# -- CreateTopics --------------------------------------------------------------------------------
def _create_if_absent(controller, name, partitions, replication_factor, assignment=None,
                      config=None):
    """On the controller thread, so two requests for one name cannot both pass the check."""
    _check_absent(controller.store, name)
    return controller.create_topic(name, partitions, replication_factor, assignment, config)


def _check_assignment(lists, live, what, replication_factor=None):
    """Replica lists naming live brokers, no duplicates, one size for all."""
    for i, ids in enumerate(lists):
        if not ids:
            raise InvalidReplicaAssignmentError(f"{what} {i}: empty replica list")
        if len(set(ids)) != len(ids):
            raise InvalidReplicaAssignmentError(f"{what} {i}: duplicate brokers in {list(ids)}")
        unknown = sorted(set(ids) - set(live))
        if unknown:
            raise InvalidReplicaAssignmentError(
                f"{what} {i}: broker(s) {unknown} in the replica assignment are not registered "
                f"(live brokers: {sorted(live)})")
        size = replication_factor or len(lists[0])
        if len(ids) != size:
            raise InvalidReplicaAssignmentError(
                f"{what} {i}: {len(ids)} replicas, but the others have {size} (inconsistent "
                "replication factor between partitions)")


def _check_absent(store, name):
    """TopicExistsError unless ``name`` is free: not a topic, not still being deleted (the
    controller's check), and no topic whose name differs only in '.' vs '_' (Kafka's
    collision rule; a broker could not create both locally)."""
    topics = store.topics()
    if name in topics:
        raise TopicExistsError(f"topic {name!r} already exists")
    if name in store.topics_marked_for_deletion():
        raise TopicDeletionInProgressError(f"topic {name!r} is marked for deletion")
    clash = [t for t in topics if collision_key(t) == collision_key(name)]
    if clash:
        raise TopicExistsError(f"topic {name!r} collides with existing topic {clash[0]!r} "
                               "('.' and '_' are interchangeable in Kafka's metric names)")


def _create_topic(node, broker, t, validate_only):
    name = t["name"]
    validate_topic_name(name)
    config = {c["name"]: c["value"] for c in t["configs"] if c["value"] is not None}
    overrides = _canonical_config(config)
    broker.config.topic_config(overrides)        # validates every value (INVALID_CONFIG)
    live = node.store.live_brokers()
    n, rf, assignment = t["num_partitions"], t["replication_factor"], None
    if t["assignments"]:
        if n != -1 or rf != -1:   # Kafka: with an explicit assignment both must be -1
            raise single.InvalidRequestError("num_partitions and replication_factor must be -1 "
                                              "when a replica assignment is given")
        by_partition = {a["partition_index"]: tuple(a["broker_ids"]) for a in t["assignments"]}
        if sorted(by_partition) != list(range(len(t["assignments"]))):
            raise InvalidReplicaAssignmentError(
                f"partitions in the replica assignment must be 0..{len(t['assignments']) - 1}, "
                f"not {sorted(a['partition_index'] for a in t['assignments'])}")
        _check_assignment([by_partition[p] for p in sorted(by_partition)], live, "partition")
        assignment, n, rf = by_partition, len(by_partition), len(by_partition[0])
    n = broker.config["num.partitions"] if n == -1 else n
    rf = broker.config["default.replication.factor"] if rf == -1 else rf
    if n < 1 or n > base.MAX_PARTITIONS:
        raise InvalidPartitionsError(f"partition count must be 1..{base.MAX_PARTITIONS}, not {n}")
    if not 1 <= rf <= len(live):
        raise InvalidReplicationFactorError(
            f"replication factor {rf} is not within 1..{len(live)} (live brokers)")
    _check_absent(node.store, name)
    topic_id = None
    if not validate_only:
        topic_id = on_controller(node, _create_if_absent, name, n, rf, assignment,
                                 {k: config_string(v) for k, v in overrides.items()})
    return topic_id, n, rf


def _create_topic_answer(t):
    return {"name": t["name"], "error_code": 0, "error_message": None, "num_partitions": -1,
            "replication_factor": -1, "configs": None}


def _create_topics(node, broker, body, out):
    for t in body["topics"]:
        if bounded.deadline_passed():
            return
        res = _create_topic_answer(t)
        try:
            topic_id, n, rf = _create_topic(node, broker, t, body.get("validate_only", False))
        except (KlogError, ValueError, TypeError) as exc:
            res["error_code"] = _code(exc) if isinstance(exc, KlogError) else EC.INVALID_CONFIG
            res["error_message"] = str(exc)[:500]
        else:
            if topic_id is not None:
                res["topic_id"] = topic_id
            res["num_partitions"], res["replication_factor"] = n, rf
        out.append(res)


async def _on_controller_within_timeout(ctx, body, items, work, answer, *args):
    """The controller's answers to ``items`` (``answer(item)`` makes an item's blank answer):
    ``work(*args, out)`` appends one per item in order, on the admin threads, within the
    request's timeout_ms; what it has not answered by then is REQUEST_TIMED_OUT (never waiting
    on ZooKeeper without bound, klog.cluster.bounded). NOT_CONTROLLER at once off the
    controller."""
    node = _node(ctx)
    if not node.is_controller:
        return [{**answer(item), "error_code": EC.NOT_CONTROLLER,
                 "error_message": _not_controller(node)} for item in items]
    out: list = []
    try:
        await bounded.admin_call(node, bounded.request_deadline(body.get("timeout_ms", 0)),
                                 work, *args, out)
        return out
    except KlogError as exc:
        done = list(out)     # the work left behind may still append: answer what was done
        return done + [{**answer(item), "error_code": _code(exc), "error_message": str(exc)}
                       for item in items[len(done):]]


@api(ApiKey.CREATE_TOPICS)
async def create_topics(ctx, body):
    return {"throttle_time_ms": 0, "topics": await _on_controller_within_timeout(
        ctx, body, body["topics"], _create_topics, _create_topic_answer, _node(ctx),
        ctx.broker, body)}


# -- DeleteTopics --------------------------------------------------------------------------------
def _delete_topic(node, name):
    if is_internal(name):
        raise InternalTopicError(f"topic {name!r} is internal and cannot be deleted")
    if name not in node.store.topics():
        raise UnknownTopicOrPartitionError(f"unknown topic {name!r}")
    on_controller(node, Controller.delete_topic, name)


def _delete_topics(node, body, version, out):
    asked = _asked_deletions(body, version)
    ids = {v: k for k, v in node.manager.topic_ids.items()}
    for name, topic_id in asked:
        if bounded.deadline_passed():
            return
        res = _delete_topic_answer(version, (name, topic_id))
        try:
            if version >= 6:
                if name is not None and topic_id != ZERO_UUID:
                    raise single.InvalidRequestError("give a topic name or a topic id, not both")
                if name is None:
                    name = res["name"] = ids.get(topic_id)
                    if name is None:
                        res["error_code"] = EC.UNKNOWN_TOPIC_ID
                        res["error_message"] = f"no topic has id {topic_id}"
                        continue
                else:
                    res["topic_id"] = node.manager.topic_ids.get(name, ZERO_UUID)
            _delete_topic(node, name)
        except KlogError as exc:
            res["error_code"], res["error_message"] = _code(exc), str(exc)[:500]
        finally:
            out.append(res)       # once answered (a timed-out request answers the rest)


def _asked_deletions(body, version):
    if version >= 6:
        return [(t.get("name"), t.get("topic_id", ZERO_UUID)) for t in body["topics"]]
    return [(n, None) for n in body["topic_names"]]


def _delete_topic_answer(version, asked):
    name, topic_id = asked
    res = {"name": name, "error_code": 0, "error_message": None}
    if version >= 6:
        res["topic_id"] = topic_id
    return res


@api(ApiKey.DELETE_TOPICS)
async def delete_topics(ctx, body):
    v = ctx.version
    return {"throttle_time_ms": 0, "responses": await _on_controller_within_timeout(
        ctx, body, _asked_deletions(body, v), _delete_topics,
        lambda asked: _delete_topic_answer(v, asked), _node(ctx), body, v)}


# -- CreatePartitions ----------------------------------------------------------------------------
def _create_partitions(node, body, out):
    names = [t["name"] for t in body["topics"]]
    for t in body["topics"]:
        if bounded.deadline_passed():
            return
        name, count = t["name"], t["count"]
        res = _partitions_answer(t)
        try:
            if names.count(name) > 1:
                raise single.InvalidRequestError(
                    f"topic {name!r} appears more than once in the request")
            if name not in node.store.topics():
                raise UnknownTopicOrPartitionError(f"unknown topic {name!r}")
            if is_internal(name):
                raise InternalTopicError(
                    f"topic {name!r} is internal: its partition count cannot change")
            current = node.store.topic(name)
            have = len(current.partitions)
            if count > base.MAX_PARTITIONS:
                raise InvalidPartitionsError(
                    f"partition count {count} exceeds this server's limit of {base.MAX_PARTITIONS}")
            if count <= have:   # Kafka's wording
                raise InvalidPartitionsError(
                    f"Topic already has {have} partitions." if count == have else
                    f"Topic currently has {have} partitions, which is higher than the "
                    f"requested {count}.")
            assignment = None
            if t["assignments"] is not None:
                assignment = [tuple(a["broker_ids"]) for a in t["assignments"]]
                if len(assignment) != count - have:
                    raise InvalidReplicaAssignmentError(
                        f"Increasing the number of partitions by {count - have} but "
                        f"{len(assignment)} assignments provided.")
                _check_assignment(assignment, node.store.live_brokers(), "new partition",
                                  len(current.partitions[0]))
            elif len(current.partitions[0]) > len(node.store.live_brokers()):
                raise InvalidReplicationFactorError(
                    f"replication factor {len(current.partitions[0])} is larger than the "
                    f"{len(node.store.live_brokers())} live brokers")
            if not body.get("validate_only"):
                on_controller(node, Controller.add_partitions, name, count, assignment)
        except KlogError as exc:
            res["error_code"], res["error_message"] = _code(exc), str(exc)[:500]
        out.append(res)


def _partitions_answer(t):
    return {"name": t["name"], "error_code": 0, "error_message": None}


@api(ApiKey.CREATE_PARTITIONS)
async def create_partitions(ctx, body):
    return {"throttle_time_ms": 0, "results": await _on_controller_within_timeout(
        ctx, body, body["topics"], _create_partitions, _partitions_answer, _node(ctx), body)}


# -- ElectLeaders (43) ---------------------------------------------------------------------------
def _elect_leaders(node, election_type, partitions):
    return on_controller(node, Controller.elect_leaders, election_type, partitions)


@api(ApiKey.ELECT_LEADERS)
async def elect_leaders(ctx, body):
    election_type = body.get("election_type", PREFERRED) if ctx.version >= 1 else PREFERRED
    asked = body["topic_partitions"]
    answer = {"throttle_time_ms": 0, "error_code": 0, "replica_election_results": []}
    if election_type not in (PREFERRED, UNCLEAN):
        answer["error_code"] = EC.INVALID_REQUEST
        return answer
    partitions = None
    if asked is not None:
        partitions = list(dict.fromkeys((t["topic"], p) for t in asked for p in t["partitions"]))
    node = _node(ctx)
    try:
        if not node.is_controller:
            raise NotControllerError(_not_controller(node))
        results = await bounded.admin_call(   # REQUEST_TIMED_OUT after the request's timeout_ms
            node, bounded.request_deadline(body.get("timeout_ms", 0)), _elect_leaders, node,
            election_type, partitions)
    except KlogError as exc:
        # Kafka answers per partition (NOT_CONTROLLER on a broker that is not the controller);
        # asked for every partition, there are none to answer for: the error goes on top.
        results = {tp: (_code(exc), str(exc)[:500]) for tp in partitions or ()}
        if partitions is None and ctx.version >= 1:
            answer["error_code"] = _code(exc)
    by_topic: dict = {}
    for (topic, p), (code, message) in results.items():
        if asked is None and code == EC.ELECTION_NOT_NEEDED:
            continue        # Kafka leaves out what the client did not name
        by_topic.setdefault(topic, []).append(
            {"partition_id": p, "error_code": code, "error_message": message})
    answer["replica_election_results"] = [{"topic": t, "partition_result": ps}
                                          for t, ps in by_topic.items()]
    return answer


# -- AlterPartitionReassignments (45), ListPartitionReassignments (46) ---------------------------
def _on_controller_or_forward(ctx, api_key, body, answer_here):
    """``answer_here(node)`` on the controller; elsewhere the request goes to the controller
    (never twice: a forwarded request that finds no controller here answers NOT_CONTROLLER).
    A listing waits for the next controller across a failover; a change is sent once (a
    cancellation sent twice would answer NO_REASSIGNMENT_IN_PROGRESS): the client retries."""
    node = _node(ctx)
    forwarded = (ctx.header.client_id or "").startswith(FORWARDED_CLIENT_ID)
    if node.is_controller or forwarded:
        return answer_here(node)
    if api_key == ApiKey.LIST_PARTITION_REASSIGNMENTS:
        answer = _forward_to_controller(node, api_key, ctx.version, body,
                                        min(FORWARD_PATIENCE_S, bounded.time_left(
                                            FORWARD_PATIENCE_S)))
        return answer_here(node) if answer is None else answer
    return _send_to_controller(node, api_key, ctx.version, body)


def _top_level_error(exc):
    code = EC.NOT_CONTROLLER if isinstance(exc, NotControllerError) else (
        _code(exc) if isinstance(exc, KlogError) else EC.REQUEST_TIMED_OUT)
    return code, f"{type(exc).__name__}: {exc}"[:500]


def _alter_reassignments(node, body):
    requests = {}
    for t in body["topics"]:
        for p in t["partitions"]:
            replicas = p["replicas"]
            requests[(t["name"], p["partition_index"])] = None if replicas is None \
                else tuple(replicas)
    _require_zookeeper(node)
    results = on_controller(node, lambda c, r: c.reassignments.alter(r), requests)
    by_topic: dict = {}
    for (topic, p), (code, message) in results.items():
        by_topic.setdefault(topic, []).append(
            {"partition_index": p, "error_code": code, "error_message": message})
    return {"throttle_time_ms": 0, "error_code": 0, "error_message": None,
            "responses": [{"name": t, "partitions": ps} for t, ps in by_topic.items()]}


@api(ApiKey.ALTER_PARTITION_REASSIGNMENTS)
async def alter_partition_reassignments(ctx, body):
    return await _reassignment_request(ctx, ApiKey.ALTER_PARTITION_REASSIGNMENTS, body,
                                       _alter_reassignments, "responses")


async def _reassignment_request(ctx, api_key, body, work, results_field):
    """``work(node, body)`` on the controller (or forwarded there) within the request's
    timeout_ms; a top-level error (NOT_CONTROLLER, REQUEST_TIMED_OUT...) with no results."""
    try:
        return await bounded.admin_call(      # REQUEST_TIMED_OUT after its timeout_ms
            _node(ctx), bounded.request_deadline(body.get("timeout_ms", 0)),
            _on_controller_or_forward, ctx, api_key, body, lambda node: work(node, body))
    except (KlogError, OSError, ValueError) as exc:
        code, message = _top_level_error(exc)
        return {"throttle_time_ms": 0, "error_code": code, "error_message": message,
                results_field: []}


def _list_reassignments(node, body):
    asked = body.get("topics")
    partitions = None if asked is None else [
        (t["name"], p) for t in asked for p in t["partition_indexes"]]
    _require_zookeeper(node)
    moving = on_controller(node, lambda c, ps: c.reassignments.list(ps), partitions)
    by_topic: dict = {}
    for (topic, p), a in sorted(moving.items()):
        by_topic.setdefault(topic, []).append(
            {"partition_index": p, "replicas": list(a.replicas),
             "adding_replicas": list(a.adding), "removing_replicas": list(a.removing)})
    return {"throttle_time_ms": 0, "error_code": 0, "error_message": None,
            "topics": [{"name": t, "partitions": ps} for t, ps in by_topic.items()]}


@api(ApiKey.LIST_PARTITION_REASSIGNMENTS)
async def list_partition_reassignments(ctx, body):
    return await _reassignment_request(ctx, ApiKey.LIST_PARTITION_REASSIGNMENTS, body,
                                       _list_reassignments, "topics")


# -- topic configs: DescribeConfigs, AlterConfigs, IncrementalAlterConfigs ----------------------
class ClusterTopicConfigs:
    """The broker's topic-config surface (``describe_topic``, ``topic_overrides``,
    ``alter_topic_config``) over ZooKeeper's ``/config/topics``, so the single-node config
    handlers (klog.server.admin) serve cluster mode unchanged; everything else is the broker's.
    ``alter_topic_config`` validates as a single node does and writes through the controller."""

    def __init__(self, node, broker):
        self._node = node
        self._broker = broker

    def __getattr__(self, name):
        return getattr(self._broker, name)

    def _overrides(self, name):
        _require_zookeeper(self._node)
        if name not in self._node.store.topics():
            raise UnknownTopicOrPartitionError(f"unknown topic {name!r}")
        config, version = self._node.store.topic_config(name)
        return _canonical_config(config), version

    def topic_overrides(self, name):
        return self._overrides(name)[0]

    def describe_topic(self, name):
        overrides = self.topic_overrides(name)
        return SimpleNamespace(config=self._broker.config.topic_config(overrides).to_dict())

    def alter_broker_config(self, changes, cluster_default=False, validate_only=False):
        """This broker's own settings stay local; the cluster-wide defaults ("") live in
        ZooKeeper for every broker (klog.cluster.broker_configs)."""
        if not cluster_default:
            return self._broker.alter_broker_config(changes, False, validate_only)
        _require_zookeeper(self._node)
        broker_configs.alter_defaults(self._node.manager, changes, validate_only)

    def alter_topic_config(self, name, changes, validate_only=False):
        for _ in range(CAS_ATTEMPTS):
            overrides, version = self._overrides(name)
            new = dict(overrides)
            for key, value in changes.items():
                if value is None:
                    new.pop(key, None)
                else:
                    new.update(_canonical_config({key: value}))
            log_config = self._broker.config.topic_config(new)     # validates everything
            if is_internal(name):
                before = self._broker.config.topic_config(overrides).cleanup_policy
                if log_config.cleanup_policy != before:   # its readers need every key's latest
                    raise InternalTopicError(
                        f"topic {name!r} is internal: its cleanup.policy stays {before!r} "
                        f"(asked for {log_config.cleanup_policy!r})")
            if validate_only:
                return
            try:
                on_controller(self._node, Controller.set_topic_config, name,
                              {k: config_string(v) for k, v in new.items()}, version)
                return
            except BadVersionError:
                continue         # changed meanwhile: apply the changes to what is there now
        raise single.InvalidRequestError(f"the config of topic {name!r} kept changing; "
                                         "try again")


# The cluster settings this broker runs with (klog.server_properties.CLUSTER_SETTINGS and
# zookeeper.connect): described read-only with a BROKER resource, as Kafka lists them.
_INT, _LONG, _STRING = 3, 5, 2


def _cluster_entries(node):
    """[(name, value, Kafka ConfigType)] of this broker's cluster settings."""
    return [("zookeeper.connect", node.store.connect, _STRING),
            ("zookeeper.session.timeout.ms", node.session_timeout_ms, _INT),
            ("zookeeper.connection.timeout.ms", round(node.store._connect_timeout_s * 1000), _INT),
            ("replica.lag.time.max.ms", node.manager.lag_ms, _LONG),
            ("controlled.shutdown.max.retries", node.shutdown_retries, _INT),
            ("controlled.shutdown.retry.backoff.ms", node.shutdown_backoff_ms, _LONG)]


def _with_cluster_settings(node, r, configs, documentation):
    keys = r.get("configuration_keys")
    extra = [{"name": name, "value": str(value), "read_only": True,
              "config_source": STATIC_BROKER_CONFIG, "is_sensitive": False, "synonyms": [],
              "config_type": kind,
              "documentation": "a cluster-mode setting (klog serve --zookeeper)"
              if documentation else None}
             for name, value, kind in _cluster_entries(node) if keys is None or name in keys]
    return sorted(configs + extra, key=lambda e: e["name"])


def _describe_configs(node, broker, body):
    view = ClusterTopicConfigs(node, broker)
    results = []
    for r in body["resources"]:
        res = {"error_code": 0, "error_message": None, "resource_type": r["resource_type"],
               "resource_name": r["resource_name"], "configs": []}
        try:
            res["configs"] = single._describe_resource(
                view, r, body.get("include_synonyms", False),
                body.get("include_documentation", False))
            if r["resource_type"] == single.BROKER and r["resource_name"] != "":
                res["configs"] = _with_cluster_settings(
                    node, r, res["configs"], body.get("include_documentation", False))
        except KlogError as exc:
            res["error_code"] = single._code(exc, r["resource_type"])
            res["error_message"] = str(exc)
        results.append(res)
    return {"throttle_time_ms": 0, "results": results}


@api(ApiKey.DESCRIBE_CONFIGS)
async def describe_configs(ctx, body):
    return await base._run(_describe_configs, _node(ctx), ctx.broker, body)


def _alter_configs(ctx, body, incremental):
    """TOPIC resources through the controller (forwarded there by another broker), the rest
    here, answered in the request's order; a changed BROKER config reaches the replicas."""
    answers = _alter_configs_answers(ctx, body, incremental)
    if not body.get("validate_only") and any(
            r["resource_type"] == single.BROKER for r in body["resources"]):
        apply_broker_config(_node(ctx).manager)
    return answers


def _alter_configs_answers(ctx, body, incremental):
    node, broker = _node(ctx), ctx.broker
    here = node.is_controller or (ctx.header.client_id or "").startswith(FORWARDED_CLIENT_ID)
    topics = [r for r in body["resources"] if r["resource_type"] == single.TOPIC]
    if here or not topics:
        return single._alter_configs(ClusterTopicConfigs(node, broker), body, incremental)
    others = [r for r in body["resources"] if r["resource_type"] != single.TOPIC]
    answers = single._alter_configs(ClusterTopicConfigs(node, broker),
                                    {**body, "resources": others}, incremental)
    api_key = ApiKey.INCREMENTAL_ALTER_CONFIGS if incremental else ApiKey.ALTER_CONFIGS
    try:
        answer = _forward_to_controller(node, api_key, ctx.version, {**body, "resources": topics})
        forwarded = answer["responses"] if answer is not None else single._alter_configs(
            ClusterTopicConfigs(node, broker), {**body, "resources": topics}, incremental)
    except (KlogError, OSError, ValueError) as exc:
        code = EC.NOT_CONTROLLER if isinstance(exc, NotControllerError) else EC.REQUEST_TIMED_OUT
        forwarded = [{"error_code": code, "error_message": f"forwarding to the controller: {exc}",
                      "resource_type": r["resource_type"], "resource_name": r["resource_name"]}
                     for r in topics]
    forwarded, answers = iter(forwarded), iter(answers)
    return [next(forwarded) if r["resource_type"] == single.TOPIC else next(answers)
            for r in body["resources"]]


@api(ApiKey.INCREMENTAL_ALTER_CONFIGS)
async def incremental_alter_configs(ctx, body):
    return {"throttle_time_ms": 0, "responses": await base._run(_alter_configs, ctx, body, True)}


@api(ApiKey.ALTER_CONFIGS)
async def alter_configs(ctx, body):
    return {"throttle_time_ms": 0, "responses": await base._run(_alter_configs, ctx, body, False)}


# -- DescribeCluster: the live brokers and the controller, as Metadata -----------------------------
def _live_and_controller(store):
    return store.live_brokers(), store.controller()


@api(ApiKey.DESCRIBE_CLUSTER)
async def describe_cluster(ctx, body):
    answer = await single.describe_cluster(ctx, body)
    if answer["error_code"]:
        return answer
    node = _node(ctx)
    cache = node.metadata_cache
    try:
        if not cache.loaded:        # loaded: what Metadata answers too
            cache.merge(*await bounded.read(node, _live_and_controller, node.store), {}, {})
    except Exception:   # noqa: BLE001 - ZooKeeper unreachable: Metadata's last view, as it does
        pass
    brokers = [(b, info["host"], info["port"]) for b, (_, info) in sorted(cache.live.items())]
    controller = cache.controller
    if brokers:
        answer["brokers"] = [{"broker_id": b, "host": host, "port": port, "rack": None,
                              "is_fenced": False} for b, host, port in brokers]
    answer["controller_id"] = -1 if controller is None else controller
    return answer
