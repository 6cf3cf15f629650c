"""Admin request handlers: config resources (DescribeConfigs, AlterConfigs,
IncrementalAlterConfigs), CreatePartitions, OffsetDelete, DescribeCluster, DescribeLogDirs,
DescribeProducers. Registered in klog.server.handlers.HANDLERS like the others.

Error codes follow Kafka's brokers: a bad topic config value is INVALID_CONFIG, a bad or
read-only broker config INVALID_REQUEST (Kafka's ConfigAdminManager turns every broker-config
validation failure into InvalidRequestException, KAFKA-13609), APPEND/SUBTRACT on a config that
is not a list INVALID_REQUEST (ConfigAdminManager), an unsupported resource type INVALID_REQUEST
(ConfigHelper: "Unsupported resource type").
"""
import os
import shutil

from dataclasses import replace

from klog.broker_config import (CLUSTER_DEFAULT, DYNAMIC_BROKER_CONFIG,
                                DYNAMIC_DEFAULT_BROKER_CONFIG, PER_BROKER, config_string)
from klog.config import BROKER_SETTINGS, BROKER_TO_TOPIC, SETTINGS, unknown_config
from klog.errors import ConfigError, InvalidPartitionsError, KlogError
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey
from klog.server.handlers import MAX_PARTITIONS, _run, api, error_code
from klog.structs import TopicPartition

TOPIC, GROUP, BROKER = 2, 3, 4
RESOURCE_NAMES = {0: "UNKNOWN", 1: "ANY", 2: "TOPIC", 3: "GROUP", 4: "BROKER", 8: "BROKER_LOGGER",
                  16: "CLIENT_METRICS"}
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
INT32_MIN = -(1 << 31)

# KIP-430 authorized-operation bitfields (bit n = AclOperation code n). With no authorizer Kafka
# reports every operation valid for the resource type (AuthHelper.authorizedOperations).
READ, WRITE, CREATE, DELETE_OP, ALTER, DESCRIBE = 3, 4, 5, 6, 7, 8
CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE = 9, 10, 11, 12
TOPIC_OPERATIONS = sum(1 << op for op in (READ, WRITE, CREATE, DELETE_OP, ALTER, DESCRIBE,
                                          DESCRIBE_CONFIGS, ALTER_CONFIGS))
CLUSTER_OPERATIONS = sum(1 << op for op in (CREATE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
                                            IDEMPOTENT_WRITE, ALTER, DESCRIBE))
MISMATCHED_ENDPOINT_TYPE = 114


class InvalidRequestError(KlogError):
    """A well-formed request klog will not carry out (Kafka's INVALID_REQUEST)."""
    error_code = EC.INVALID_REQUEST


class ListOperationError(KlogError):
    """APPEND or SUBTRACT on a config that is not a list. Kafka's brokers refuse it before
    anything else with InvalidRequestException (ConfigAdminManager; asserted by Kafka's
    PlaintextAdminIntegrationTest), so INVALID_REQUEST."""
    error_code = EC.INVALID_REQUEST


class InvalidReplicaAssignmentError(KlogError):
    """A replica assignment naming brokers that do not exist, or of the wrong size."""
    error_code = EC.INVALID_REPLICA_ASSIGNMENT


def _code(exc, resource_type=TOPIC):
    if isinstance(exc, ConfigError) or not isinstance(exc, KlogError):   # a bad name or value
        return EC.INVALID_REQUEST if resource_type == BROKER else EC.INVALID_CONFIG
    return error_code(exc)


def _broker_scope(broker, name):
    """True for the cluster-wide default (""), False for this broker; else INVALID_REQUEST."""
    if name == "":
        return True
    if name == str(broker.config["broker.id"]):
        return False
    raise InvalidRequestError(f"no broker {name!r} here (this is broker {broker.config['broker.id']}); "
                              "give its id or \"\" for the cluster-wide default")


def _unsupported(resource_type):
    return InvalidRequestError(
        f"resource type {RESOURCE_NAMES.get(resource_type, resource_type)} is not supported "
        "(klog has TOPIC and BROKER configs)")


# -- DescribeConfigs -------------------------------------------------------------------------------
def _describe_resource(broker, r, synonyms, documentation):
    kind, name = r["resource_type"], r["resource_name"]
    if kind == TOPIC:
        entries = broker.dynamic_config.describe_topic(broker.describe_topic(name).config,
                                                       broker.topic_overrides(name))
    elif kind == BROKER:
        entries = broker.dynamic_config.describe_broker(broker.config)
        if _broker_scope(broker, name):
            entries = _default_entries(broker, entries)
    else:
        raise _unsupported(kind)
    keys = r.get("configuration_keys")
    out = []
    for e in sorted(entries, key=lambda e: e.name):
        if keys is not None and e.name not in keys:
            continue
        out.append({
            "name": e.name, "value": config_string(e.value), "read_only": e.read_only,
            "config_source": e.source, "is_sensitive": False,
            "synonyms": [{"name": n, "value": config_string(v), "source": s}
                         for n, v, s in e.synonyms] if synonyms else [],
            "config_type": e.setting.config_type,
            "documentation": (e.setting.doc or None) if documentation else None})
    return out


def _default_entries(broker, entries):
    """Resource "": the cluster-wide defaults set, as Kafka describes it (its
    ``currentDynamicDefaultConfigs``), not this broker's whole config."""
    layer = broker.dynamic_config.layer_values(CLUSTER_DEFAULT)
    return [replace(e, value=layer[e.name], source=DYNAMIC_DEFAULT_BROKER_CONFIG,
                    synonyms=tuple(s for s in e.synonyms if s[2] != DYNAMIC_BROKER_CONFIG))
            for e in entries if e.name in layer]


@api(ApiKey.DESCRIBE_CONFIGS)
async def describe_configs(ctx, body):
    results = []
    for r in body["resources"]:
        res = {"error_code": 0, "error_message": None, "resource_type": r["resource_type"],
               "resource_name": r["resource_name"], "configs": []}
        try:
            res["configs"] = _describe_resource(ctx.broker, r, body.get("include_synonyms", False),
                                                body.get("include_documentation", False))
        except KlogError as exc:
            res["error_code"] = _code(exc, r["resource_type"])
            res["error_message"] = str(exc)
        results.append(res)
    return {"throttle_time_ms": 0, "results": results}


# -- IncrementalAlterConfigs / AlterConfigs --------------------------------------------------------
def _list_op(op, key, setting, current, value):
    """APPEND / SUBTRACT on a list-valued config (Kafka: old list, then the new parts not in it /
    without the given parts); other types are refused."""
    verb = "append" if op == APPEND else "subtract"
    if setting is None or not setting.list_valued:
        raise ListOperationError(f"Config value {verb} is not allowed for config key: {key}")
    old = [p for p in (config_string(current) or "").split(",") if p]
    parts = [p.strip() for p in (value or "").split(",") if p.strip()]
    if op == APPEND:
        new = old + [p for p in parts if p not in old]
    else:
        new = [p for p in old if p not in parts]
    return ",".join(new)


def _incremental_changes(r, current, setting_of):
    """{key: new value or None} from the resource's AlterableConfigs."""
    changes = {}
    for c in r["configs"]:
        key, op, value = c["name"], c["config_operation"], c["value"]
        if key in changes:
            raise InvalidRequestError(f"duplicate config key {key!r} in one resource")
        if op == SET:
            if value is None:
                raise InvalidRequestError(f"Null value not supported for: {key}")
            changes[key] = value
        elif op == DELETE:
            changes[key] = None
        elif op in (APPEND, SUBTRACT):
            changes[key] = _list_op(op, key, setting_of(key), current(key), value)
        else:
            raise InvalidRequestError(f"config operation {op} for {key!r}: expected SET (0), "
                                      "DELETE (1), APPEND (2) or SUBTRACT (3)")
    return changes


def _topic_setting(key):
    if key not in SETTINGS:
        raise unknown_config(key, SETTINGS)
    return SETTINGS[key]


def _broker_setting(broker, key):
    if key not in BROKER_SETTINGS and key not in BROKER_TO_TOPIC:
        raise unknown_config(key, list(BROKER_SETTINGS) + list(BROKER_TO_TOPIC), "broker config")
    return broker.config.setting(key)


def _alter_resource(broker, r, validate_only, incremental):
    kind, name = r["resource_type"], r["resource_name"]
    if kind == TOPIC:
        effective = broker.describe_topic(name).config
        if incremental:
            changes = _incremental_changes(r, lambda k: effective.get(k), _topic_setting)
        else:   # the legacy API replaces every override of the resource
            changes = _replacement(r, broker.topic_overrides(name))
        broker.alter_topic_config(name, changes, validate_only)
    elif kind == BROKER:
        cluster_default = _broker_scope(broker, name)
        if incremental:
            changes = _incremental_changes(r, broker.config.value,
                                           lambda k: _broker_setting(broker, k))
        else:
            layer = broker.dynamic_config.layer_values(CLUSTER_DEFAULT if cluster_default else PER_BROKER)
            changes = _replacement(r, layer)
        broker.alter_broker_config(changes, cluster_default, validate_only)
    else:
        raise _unsupported(kind)


def _replacement(r, current):
    new = {}
    for c in r["configs"]:
        if c["name"] in new:
            raise InvalidRequestError(f"duplicate config key {c['name']!r} in one resource")
        if c["value"] is None:
            raise InvalidRequestError(f"Null value not supported for: {c['name']}")
        new[c["name"]] = c["value"]
    changes = {k: None for k in current if k not in new}
    changes.update(new)
    return changes


def _alter_configs(broker, body, incremental):
    out = []
    seen = set()
    for r in body["resources"]:
        kind = r["resource_type"]
        res = {"error_code": 0, "error_message": None, "resource_type": kind,
               "resource_name": r["resource_name"]}
        try:
            if (kind, r["resource_name"]) in seen:
                raise InvalidRequestError("duplicate resource in one request")
            seen.add((kind, r["resource_name"]))
            _alter_resource(broker, r, body.get("validate_only", False), incremental)
        except (KlogError, ValueError, TypeError) as exc:
            res["error_code"] = _code(exc, kind)
            res["error_message"] = str(exc)[:1000]
        out.append(res)
    return out


@api(ApiKey.INCREMENTAL_ALTER_CONFIGS)
async def incremental_alter_configs(ctx, body):
    return {"throttle_time_ms": 0, "responses": await _run(_alter_configs, ctx.broker, body, True)}


@api(ApiKey.ALTER_CONFIGS)
async def alter_configs(ctx, body):
    return {"throttle_time_ms": 0, "responses": await _run(_alter_configs, ctx.broker, body, False)}


# -- CreatePartitions ------------------------------------------------------------------------------
def check_replica_assignment(broker, assignments, what):
    """Each entry must name exactly this broker (klog is one broker, replication factor 1)."""
    me = broker.config["broker.id"]
    for i, ids in enumerate(assignments):
        if not ids:
            raise InvalidReplicaAssignmentError(f"{what} {i}: empty replica list")
        if len(set(ids)) != len(ids):
            raise InvalidReplicaAssignmentError(f"{what} {i}: duplicate brokers in {ids}")
        unknown = sorted(set(ids) - {me})
        if unknown:
            raise InvalidReplicaAssignmentError(
                f"{what} {i}: unknown broker(s) {unknown} in replica assignment "
                f"(this cluster has broker {me})")


def _create_partitions(broker, body):
    out = []
    names = [t["name"] for t in body["topics"]]
    for t in body["topics"]:
        name, count = t["name"], t["count"]
        res = {"name": name, "error_code": 0, "error_message": None}
        try:
            if names.count(name) > 1:
                raise InvalidRequestError(f"topic {name!r} appears more than once in the request")
            current = broker.partition_count(name)
            if count > MAX_PARTITIONS:
                raise InvalidPartitionsError(
                    f"partition count {count} exceeds this server's limit of {MAX_PARTITIONS}")
            if count <= current:   # Kafka's wording
                raise InvalidPartitionsError(
                    f"Topic already has {current} partitions." if count == current else
                    f"Topic currently has {current} partitions, which is higher than the "
                    f"requested {count}.")
            if t["assignments"] is not None:
                ids = [a["broker_ids"] for a in t["assignments"]]
                if len(ids) != count - current:
                    raise InvalidReplicaAssignmentError(
                        f"Increasing the number of partitions by {count - current} but "
                        f"{len(ids)} assignments provided.")
                check_replica_assignment(broker, ids, "new partition")
            broker.add_partitions(name, count, body.get("validate_only", False))
        except KlogError as exc:
            res["error_code"] = _code(exc)
            res["error_message"] = str(exc)
        out.append(res)
    return out


@api(ApiKey.CREATE_PARTITIONS)
async def create_partitions(ctx, body):
    return {"throttle_time_ms": 0, "results": await _run(_create_partitions, ctx.broker, body)}


# -- OffsetDelete ----------------------------------------------------------------------------------
def _offset_delete(broker, body):
    gc = broker.group_coordinator
    unknown, wanted = {}, []
    for t in body["topics"]:
        for p in t["partitions"]:
            tp = TopicPartition(t["name"], p["partition_index"])
            try:
                ok = 0 <= tp.partition < gc.topic_partitions(tp.topic)
            except KlogError:
                ok = False
            if ok:
                wanted.append(tp)
            else:
                unknown[tp] = EC.UNKNOWN_TOPIC_OR_PARTITION
    group_error, errors = gc.delete_offsets(body["group_id"], wanted)
    if group_error:
        return {"error_code": group_error, "throttle_time_ms": 0, "topics": []}
    errors.update(unknown)
    topics = {}
    for t in body["topics"]:
        for p in t["partitions"]:
            tp = TopicPartition(t["name"], p["partition_index"])
            topics.setdefault(tp.topic, []).append(
                {"partition_index": tp.partition, "error_code": errors.get(tp, 0)})
    return {"error_code": 0, "throttle_time_ms": 0,
            "topics": [{"name": n, "partitions": ps} for n, ps in topics.items()]}


@api(ApiKey.OFFSET_DELETE)
async def offset_delete(ctx, body):
    return await _run(_offset_delete, ctx.broker, body)


# -- DescribeCluster -------------------------------------------------------------------------------
@api(ApiKey.DESCRIBE_CLUSTER)
async def describe_cluster(ctx, body):
    host, port = ctx.server.advertised
    node = ctx.broker.config["broker.id"]
    res = {"throttle_time_ms": 0, "error_code": 0, "error_message": None, "endpoint_type": 1,
           "cluster_id": ctx.server.cluster_id, "controller_id": node,
           "brokers": [{"broker_id": node, "host": host, "port": port, "rack": None,
                        "is_fenced": False}],
           "cluster_authorized_operations": CLUSTER_OPERATIONS
           if body.get("include_cluster_authorized_operations") else INT32_MIN}
    if body.get("endpoint_type", 1) != 1:   # 2 = controllers: klog serves the broker endpoint
        res.update(error_code=MISMATCHED_ENDPOINT_TYPE, brokers=[], cluster_authorized_operations=INT32_MIN,
                   error_message="this is a broker endpoint; klog has no separate controllers")
    return res


# -- DescribeLogDirs -------------------------------------------------------------------------------
def _describe_log_dirs(broker, topics, version):
    if topics is None:
        wanted = {name: None for name in broker.list_topics(internal=True)}
    else:
        wanted = {}
        for t in topics:
            wanted.setdefault(t["topic"], set()).update(t["partitions"])
    out = []
    for name, parts in wanted.items():
        try:
            desc = broker.describe_topic(name)
        except KlogError:
            continue   # Kafka leaves out what this log dir does not hold
        ps = [{"partition_index": p.partition, "partition_size": p.size, "offset_lag": 0,
               "is_future_key": False}
              for p in desc.partitions if parts is None or p.partition in parts]
        if ps:
            out.append({"name": name, "partitions": ps})
    usage = shutil.disk_usage(broker.data_dir)
    return {"throttle_time_ms": 0, "error_code": 0, "results": [{
        "error_code": 0, "log_dir": os.path.abspath(broker.data_dir), "topics": out,
        "total_bytes": usage.total, "usable_bytes": usage.free}]}


@api(ApiKey.DESCRIBE_LOG_DIRS)
async def describe_log_dirs(ctx, body):
    return await _run(_describe_log_dirs, ctx.broker, body.get("topics"), ctx.version)


# -- DescribeProducers -----------------------------------------------------------------------------
@api(ApiKey.DESCRIBE_PRODUCERS)
async def describe_producers(ctx, body):
    topics = []
    for t in body["topics"]:
        parts = []
        for p in t["partition_indexes"]:
            res = {"partition_index": p, "error_code": 0, "error_message": None,
                   "active_producers": []}
            try:
                log = ctx.broker.partition(t["name"], p)
                res["active_producers"] = [
                    {"producer_id": pid, "producer_epoch": epoch, "last_sequence": seq,
                     "last_timestamp": ts, "coordinator_epoch": -1, "current_txn_start_offset": -1}
                    for pid, epoch, seq, ts in sorted(log.active_producers())]
            except KlogError as exc:
                res["error_code"] = error_code(exc)
                res["error_message"] = str(exc)
            parts.append(res)
        topics.append({"name": t["name"], "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}
