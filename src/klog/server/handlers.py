"""Request handlers: ``async handler(ctx, body) -> response body dict`` (None: no response).

Each handler answers every version in REQUESTS[api_key]'s range (what ApiVersions advertises).
"""
import asyncio
import logging
import os
import threading
import time
import uuid

from klog._native.batch import validate_batch
from klog.errors import (
    ConfigError, CorruptRecordError, InternalTopicError, InvalidPartitionsError, InvalidTopicError, KlogError,
    LogClosedError, LogOfflineError, OffsetOutOfRangeError, RecordTooLargeError, TopicExistsError,
    UnknownTopicOrPartitionError,
    FencedLeaderEpochError, NotLeaderOrFollowerError, UnknownLeaderEpochError, UnknownTopicIdError,
)
from klog.partition import LOG_END, READ_UNCOMMITTED, WIRE_ISOLATION
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import REQUESTS, ApiKey
from klog.server import epochs
from klog.storage.producer_state import InvalidProducerEpochError, OutOfOrderSequenceError
from klog.structs import TopicPartition
from klog.storage.files import write_atomic

HANDLERS = {}


def api(key):
    def register(fn):
        HANDLERS[key] = fn
        return fn
    return register


class Context:
    """One request: the server, its header, the peer; views to release after sending."""
    __slots__ = ("server", "broker", "header", "version", "peer", "views")

    def __init__(self, server, header, peer):
        self.server = server
        self.broker = server.broker
        self.header = header
        self.version = header.api_version
        self.peer = peer
        self.views = []

    def release(self):
        for v in self.views:
            try:
                v.release()
            except (BufferError, ValueError):
                pass
        self.views.clear()


# klog's exceptions carry their Kafka error code (KlogError.error_code, from klog.error_codes);
# this table only covers exceptions that do not, most specific first. tests/client/test_errors.py
# checks that every entry agrees with the class's own code.
ERROR_CODES = (
    (UnknownTopicOrPartitionError, EC.UNKNOWN_TOPIC_OR_PARTITION),
    (InternalTopicError, EC.INVALID_REQUEST),
    (CorruptRecordError, EC.CORRUPT_MESSAGE),
    (RecordTooLargeError, EC.MESSAGE_TOO_LARGE),
    (OffsetOutOfRangeError, EC.OFFSET_OUT_OF_RANGE),
    (InvalidTopicError, EC.INVALID_TOPIC_EXCEPTION),
    (TopicExistsError, EC.TOPIC_ALREADY_EXISTS),
    (InvalidPartitionsError, EC.INVALID_PARTITIONS),
    (ConfigError, EC.INVALID_CONFIG),
    (LogClosedError, EC.KAFKA_STORAGE_ERROR),
    (LogOfflineError, EC.KAFKA_STORAGE_ERROR),
    (OutOfOrderSequenceError, EC.OUT_OF_ORDER_SEQUENCE_NUMBER),
    (InvalidProducerEpochError, EC.INVALID_PRODUCER_EPOCH),
    (FencedLeaderEpochError, EC.FENCED_LEADER_EPOCH),
    (UnknownLeaderEpochError, EC.UNKNOWN_LEADER_EPOCH),
    (UnknownTopicIdError, EC.UNKNOWN_TOPIC_ID),
)


def error_code(exc):
    own = getattr(exc, "error_code", None)
    if own is not None:
        return own
    for cls, code in ERROR_CODES:
        if isinstance(exc, cls):
            return code
    return EC.UNKNOWN_SERVER_ERROR


def _storage_error(conditions, api_name, topic, partition, exc):
    """An OSError from the disk (ENOSPC, EIO, EMFILE...) while serving one partition: that
    partition is answered KAFKA_STORAGE_ERROR, as Kafka turns an IOException into a
    KafkaStorageException; the rest of the request and the connection go on. One log line per
    (API, errno), rate-limited: a full disk fails every request, not just one."""
    conditions.report((api_name, getattr(exc, "errno", None)), logging.ERROR,
                      "%s %s-%s failed, answered KAFKA_STORAGE_ERROR: %s",
                      api_name, topic, partition, exc)
    return EC.KAFKA_STORAGE_ERROR


def _run(fn, *args):
    """Blocking broker work (fsyncs, file creation) off the event loop."""
    return asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _appends_may_block(replication, topic_data):
    """Whether a Produce might fsync (a topic with flush.messages / flush.ms set).

    Other appends run on the event loop: they only write to the page cache, which takes
    microseconds, while a hop to a worker thread and back costs about a millisecond here
    (two cross-CPU wake-ups and the GIL) and capped the server at ~1000 produce requests/s."""
    for t in topic_data:
        for p in t["partition_data"]:
            try:
                if replication.partition(t["name"], p["index"]).fsyncs_on_append:
                    return True
            except (KlogError, OSError):
                pass   # answered with an error, no append
    return False


# -- ApiVersions -----------------------------------------------------------------------------------
def api_versions_body(version):
    return {
        "error_code": 0,
        "api_keys": [{"api_key": k, "min_version": s.min_version, "max_version": s.max_version}
                     for k, s in sorted(REQUESTS.items()) if k in HANDLERS],
        "throttle_time_ms": 0,
    }


@api(ApiKey.API_VERSIONS)
async def api_versions(ctx, body):
    return api_versions_body(ctx.version)


# -- Produce ---------------------------------------------------------------------------------------
def _produce(replication, topic_data, conditions, acks=1):
    """Append each partition's batch; returns (responses, waits): ``waits`` pairs a response
    of an acks=all append with what ``replication.await_acks_all`` waits on (nothing when
    this broker is the partition's only in-sync replica)."""
    out = []
    waits = []
    for t in topic_data:
        name = t["name"]
        parts = []
        for p in t["partition_data"]:
            res = {"index": p["index"], "error_code": 0, "base_offset": -1,
                   "log_append_time_ms": -1, "log_start_offset": -1, "record_errors": []}
            records = p["records"]
            try:
                part = replication.partition(name, p["index"])
                if records is None or len(records) == 0:
                    raise CorruptRecordError("no records")
                if validate_batch(records, False, False) != len(records):
                    # Kafka's rule for Produce v3+; its clients never send more than one.
                    res["error_code"] = EC.INVALID_RECORD
                    res["error_message"] = "only one record batch per partition is allowed"
                    parts.append(res)
                    continue
                info, waiter = replication.append(part, records, acks)
                res["base_offset"] = info.base_offset
                res["log_start_offset"] = info.log_start_offset
                if waiter is not None:
                    waits.append((res, waiter))
            except (KlogError, ValueError) as exc:
                res["error_code"] = error_code(exc) if isinstance(exc, KlogError) else EC.CORRUPT_MESSAGE
                res["error_message"] = str(exc)[:500]
            except OSError as exc:
                res["error_code"] = _storage_error(conditions, "Produce to", name, p["index"], exc)
                res["error_message"] = str(exc)[:500]
            parts.append(res)
        out.append({"name": name, "partition_responses": parts})
    return out, waits


@api(ApiKey.PRODUCE)
async def produce(ctx, body):
    acks = body["acks"]
    if acks not in (0, 1, -1):
        responses = [{"name": t["name"], "partition_responses": [
            {"index": p["index"], "error_code": EC.INVALID_REQUIRED_ACKS, "base_offset": -1}
            for p in t["partition_data"]]} for t in body["topic_data"]]
    else:
        topic_data = body["topic_data"]
        server = ctx.server
        replication = server.replication
        if _appends_may_block(replication, topic_data):
            responses, waits = await _run(_produce, replication, topic_data, server.conditions,
                                          acks)
        else:
            responses, waits = _produce(replication, topic_data, server.conditions, acks)
        if waits:
            await replication.await_acks_all(waits, body.get("timeout_ms", 30000), error_code)
    if acks == 0:
        return None   # Kafka sends no response at all to acks=0
    return {"responses": responses, "throttle_time_ms": 0}


# -- Fetch -----------------------------------------------------------------------------------------
def _check_leader(part):
    """Clients produce to, fetch from and list offsets of a partition's leader only."""
    if not part.is_leader:
        raise NotLeaderOrFollowerError(
            f"{part.topic}-{part.partition}: this broker is not the leader (epoch "
            f"{part.leader_epoch})")


def _fetch_once(ctx, body, replica_id, replica_epoch=-1):
    """One pass over the requested partitions. KIP-74: the response holds at most ``max_bytes``
    of records and each partition at most its ``partition_max_bytes``, except that the first
    batch of the whole response is sent even if it is larger, so a consumer always progresses;
    once anything is in, a batch that does not fit is left for the next fetch. A follower's
    fetch (``replica_id`` >= 0, with its broker epoch from Fetch v15) is the replication hook's
    to answer."""
    replication = ctx.server.replication
    partition = replication.partition
    # A replica's fetch reads to the log end; a consumer's to the high watermark (or LSO).
    isolation = LOG_END if replica_id >= 0 else \
        WIRE_ISOLATION.get(body.get("isolation_level", 0), READ_UNCOMMITTED)
    budget = body.get("max_bytes", 0x7FFFFFFF)
    total = 0
    error = False
    responses = []
    for t in body["topics"]:
        parts = []
        for p in t["partitions"]:
            # Never a null record set, not even with an error: librdkafka 2.x rejects the whole
            # response then ("invalid MessageSetSize -1") and never sees OFFSET_OUT_OF_RANGE.
            res = {"partition_index": p["partition"], "error_code": 0, "high_watermark": -1,
                   "last_stable_offset": -1, "log_start_offset": -1,
                   "aborted_transactions": [], "records": b""}
            parts.append(res)
            try:
                part = partition(t["topic"], p["partition"])
                if replica_id >= 0:
                    answered = replication.follower_fetch(part, replica_id, replica_epoch, p, res)
                    if answered is not None:
                        failed, nbytes = answered
                        error |= failed
                        total += nbytes
                        continue
                elif not part.is_leader:
                    _check_leader(part)
                epochs.check_leader_epoch(part, p.get("current_leader_epoch", -1), t["topic"],
                                          p["partition"])
                start, hw = part.log_start_offset, part.high_watermark
                upto = part.offset_limit(isolation)
                res.update(high_watermark=hw, last_stable_offset=part.last_stable_offset,
                           log_start_offset=start)
                offset = p["fetch_offset"]
                diverging = epochs.diverging_epoch(part, p.get("last_fetched_epoch", -1), offset)
                if diverging is not None:
                    # The fetcher's log has records we never had: it truncates first.
                    res["diverging_epoch"] = diverging
                    error = True   # answer at once, with no records
                elif not start <= offset <= part.log_end_offset:
                    res["error_code"] = EC.OFFSET_OUT_OF_RANGE
                    error = True
                elif offset < upto:
                    limit = min(p["partition_max_bytes"], budget)
                    if total == 0 or limit > 0:
                        view = part.read(offset, max(1, limit), isolation)
                        if total and view.nbytes > limit:
                            view.release()   # its first batch alone is over what is left
                        else:
                            ctx.views.append(view)
                            res["records"] = view
                            total += view.nbytes
                            budget -= view.nbytes
            except KlogError as exc:
                res["error_code"] = error_code(exc)
                error = True
            except OSError as exc:
                res["error_code"] = _storage_error(ctx.server.conditions, "Fetch from",
                                                   t["topic"], p["partition"], exc)
                error = True
        responses.append({"topic": t["topic"], "partitions": parts})
    return responses, total, error


@api(ApiKey.FETCH)
async def fetch(ctx, body):
    server = ctx.server
    replication = server.replication
    deadline = time.monotonic() + max(0, body["max_wait_ms"]) / 1000.0
    min_bytes = body["min_bytes"]
    replica_id, replica_epoch = body.get("replica_id", -1), -1
    if ctx.version >= 15:   # KIP-903: the replica id and its broker epoch in replica_state
        state = body.get("replica_state") or {}
        replica_id, replica_epoch = state.get("replica_id", -1), state.get("replica_epoch", -1)
    unknown_ids = ()
    if ctx.version >= 13:   # topics by id (KIP-516)
        unknown_ids = replication.resolve_fetch_topic_ids(body["topics"])
    while True:
        seq = replication.change_seq()
        responses, total, error = _fetch_once(ctx, body, replica_id, replica_epoch)
        left = deadline - time.monotonic()
        if total >= min_bytes or error or left <= 0 or server.stopping:
            break
        ctx.release()
        await replication.wait_for_change(seq, left)
    if ctx.version >= 13:
        epochs.mark_fetch_topic_ids(responses, body["topics"], unknown_ids, EC.UNKNOWN_TOPIC_ID)
    return {"throttle_time_ms": 0, "error_code": 0, "session_id": 0, "responses": responses}


# -- ListOffsets -----------------------------------------------------------------------------------
@api(ApiKey.LIST_OFFSETS)
async def list_offsets(ctx, body):
    # A consumer's "latest" is what its isolation level can read; a follower's the log end.
    isolation = LOG_END if body.get("replica_id", -1) >= 0 else \
        WIRE_ISOLATION.get(body.get("isolation_level", 0), READ_UNCOMMITTED)
    replication = ctx.server.replication
    topics = []
    for t in body["topics"]:
        parts = []
        for p in t["partitions"]:
            res = {"partition_index": p["partition_index"], "error_code": 0, "timestamp": -1,
                   "offset": -1, "leader_epoch": -1}
            ts = p["timestamp"]
            try:
                log = replication.partition(t["name"], p["partition_index"])
                _check_leader(log)
                epochs.check_leader_epoch(log, p.get("current_leader_epoch", -1), t["name"],
                                          p["partition_index"])
                if ts == -1:   # latest
                    res["offset"] = log.offset_limit(isolation)
                elif ts in (-2, -4):   # earliest; earliest local (v8): no tiered storage here
                    res["offset"] = log.log_start_offset
                else:
                    # -3, max timestamp (v7, KIP-734): the first record with the largest
                    # timestamp; else the first record at or after ``ts``. Both answer with the
                    # record's own timestamp, or -1 and -1 when there is none.
                    found = log.max_timestamp_record() if ts == -3 else log.record_for_time(ts)
                    if found is not None:
                        res["offset"], res["timestamp"] = found
                if res["offset"] >= 0:   # the epoch that wrote it (the latest for the end)
                    res["leader_epoch"] = log.epoch_for_offset(res["offset"])
            except KlogError as exc:
                res["error_code"] = error_code(exc)
            except OSError as exc:
                res["error_code"] = _storage_error(ctx.server.conditions, "ListOffsets of",
                                                   t["name"], p["partition_index"], exc)
            parts.append(res)
        topics.append({"name": t["name"], "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}


# -- group coordination ----------------------------------------------------------------------------
@api(ApiKey.FIND_COORDINATOR)
async def find_coordinator(ctx, body):
    keys = body["coordinator_keys"] if ctx.version >= 4 else [body.get("key")]
    found = await ctx.server.replication.coordinators(keys, body.get("key_type", 0))
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


@api(ApiKey.JOIN_GROUP)
async def join_group(ctx, body):
    gc = ctx.broker.group_coordinator
    fut = gc.join_group(
        body["group_id"], body["member_id"], body["protocol_type"],
        [(p["name"], bytes(p["metadata"])) for p in body["protocols"]],
        body["session_timeout_ms"], body.get("rebalance_timeout_ms", -1),
        client_id=ctx.header.client_id or "", client_host=str(ctx.peer[0]) if ctx.peer else "",
        group_instance_id=body.get("group_instance_id"),
        require_known_member_id=ctx.version >= 4)
    r = await asyncio.wrap_future(fut)
    return {"throttle_time_ms": 0, "error_code": r.error, "generation_id": r.generation_id,
            "protocol_type": r.protocol_type,
            "protocol_name": r.protocol_name if (r.protocol_name is not None or ctx.version >= 7) else "",
            "leader": r.leader_id or "", "member_id": r.member_id or "",
            "members": [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                         "metadata": m.metadata} for m in r.members]}


@api(ApiKey.SYNC_GROUP)
async def sync_group(ctx, body):
    gc = ctx.broker.group_coordinator
    assignments = {a["member_id"]: bytes(a["assignment"]) for a in body["assignments"]}
    fut = gc.sync_group(body["group_id"], body["generation_id"], body["member_id"],
                        assignments or None, body.get("protocol_type"), body.get("protocol_name"),
                        body.get("group_instance_id"))
    r = await asyncio.wrap_future(fut)
    return {"throttle_time_ms": 0, "error_code": r.error, "protocol_type": r.protocol_type,
            "protocol_name": r.protocol_name, "assignment": r.assignment or b""}


@api(ApiKey.HEARTBEAT)
async def heartbeat(ctx, body):
    err = ctx.broker.group_coordinator.heartbeat(body["group_id"], body["generation_id"],
                                                 body["member_id"], body.get("group_instance_id"))
    return {"throttle_time_ms": 0, "error_code": err}


@api(ApiKey.LEAVE_GROUP)
async def leave_group(ctx, body):
    gc = ctx.broker.group_coordinator
    if ctx.version < 3:
        r = gc.leave_group(body["group_id"], [body["member_id"]])
        err = r.error or (r.members[0][2] if r.members else 0)
        return {"throttle_time_ms": 0, "error_code": err}
    r = gc.leave_group(body["group_id"], [(m["member_id"], m.get("group_instance_id"))
                                          for m in body["members"]])
    return {"throttle_time_ms": 0, "error_code": r.error, "members": [
        {"member_id": m, "group_instance_id": i, "error_code": e} for m, i, e in r.members]}


@api(ApiKey.OFFSET_COMMIT)
async def offset_commit(ctx, body):
    offsets = {}
    for t in body["topics"]:
        for p in t["partitions"]:
            offsets[TopicPartition(t["name"], p["partition_index"])] = (
                p["committed_offset"], p.get("committed_metadata") or "",
                p.get("committed_leader_epoch", -1))
    errors = await _run(lambda: ctx.broker.group_coordinator.commit_offsets(
        body["group_id"], body.get("member_id", ""), body.get("generation_id_or_member_epoch", -1),
        offsets, body.get("group_instance_id")))
    topics = {}
    for tp, err in errors.items():
        topics.setdefault(tp.topic, []).append({"partition_index": tp.partition, "error_code": err})
    return {"throttle_time_ms": 0, "topics": [{"name": n, "partitions": ps}
                                              for n, ps in topics.items()]}


def _offset_fetch_group(gc, group_id, topics):
    wanted = None
    if topics is not None:
        wanted = [TopicPartition(t["name"], p) for t in topics for p in t["partition_indexes"]]
    r = gc.fetch_offsets(group_id, wanted)
    out = {}
    for tp, c in r.offsets.items():
        out.setdefault(tp.topic, []).append({
            "partition_index": tp.partition, "committed_offset": c.offset,
            "committed_leader_epoch": c.leader_epoch, "metadata": c.metadata or "",
            "error_code": 0})
    return r.error, [{"name": n, "partitions": ps} for n, ps in out.items()]


@api(ApiKey.OFFSET_FETCH)
async def offset_fetch(ctx, body):
    gc = ctx.broker.group_coordinator
    if ctx.version >= 8:
        groups = []
        for g in body["groups"]:
            err, topics = _offset_fetch_group(gc, g["group_id"], g.get("topics"))
            groups.append({"group_id": g["group_id"], "topics": topics, "error_code": err})
        return {"throttle_time_ms": 0, "groups": groups}
    topics = body.get("topics")
    err, out = _offset_fetch_group(gc, body["group_id"], topics)
    if ctx.version < 2 and err:
        for t in out:
            for p in t["partitions"]:
                p["error_code"] = err
    return {"throttle_time_ms": 0, "topics": out, "error_code": err}


@api(ApiKey.LIST_GROUPS)
async def list_groups(ctx, body):
    groups = ctx.broker.group_coordinator.list_groups(body.get("states_filter") or None)
    return {"throttle_time_ms": 0, "error_code": 0, "groups": [
        {"group_id": g.group_id, "protocol_type": g.protocol_type, "group_state": g.state}
        for g in groups]}


@api(ApiKey.DESCRIBE_GROUPS)
async def describe_groups(ctx, body):
    out = []
    for d in ctx.broker.group_coordinator.describe_groups(body["groups"]):
        out.append({"error_code": d.error, "group_id": d.group_id, "group_state": d.state,
                    "protocol_type": d.protocol_type or "", "protocol_data": d.protocol or "",
                    "members": [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                                 "client_id": m.client_id or "", "client_host": m.client_host or "",
                                 "member_metadata": m.metadata or b"",
                                 "member_assignment": m.assignment or b""} for m in d.members]})
    return {"throttle_time_ms": 0, "groups": out}


@api(ApiKey.DELETE_GROUPS)
async def delete_groups(ctx, body):
    res = ctx.broker.group_coordinator.delete_groups(body["groups_names"])
    return {"throttle_time_ms": 0, "results": [{"group_id": g, "error_code": e}
                                               for g, e in res.items()]}


# -- admin -----------------------------------------------------------------------------------------
MAX_PARTITIONS = 10_000   # per topic, for topics created over the network


def _create_topics(broker, body, version):
    out = []
    for t in body["topics"]:
        name = t["name"]
        res = {"name": name, "error_code": 0, "error_message": None, "num_partitions": -1,
               "replication_factor": -1, "configs": None}
        try:
            if t["replication_factor"] not in (-1, 1):
                res["error_code"] = EC.INVALID_REPLICATION_FACTOR
                res["error_message"] = "klog has one broker: replication factor must be 1"
            elif t["assignments"] and (t["replication_factor"] != -1 or t["num_partitions"] != -1):
                # Kafka: with an explicit assignment both must be -1 (INVALID_REQUEST)
                res["error_code"] = EC.INVALID_REQUEST
                res["error_message"] = ("num_partitions and replication_factor must be -1 when "
                                        "a replica assignment is given")
            else:
                n = t["num_partitions"]
                if t["assignments"]:
                    from klog.server.admin import InvalidReplicaAssignmentError, check_replica_assignment
                    parts = sorted(a["partition_index"] for a in t["assignments"])
                    if parts != list(range(len(parts))):
                        raise InvalidReplicaAssignmentError(
                            f"partitions in the replica assignment must be 0..{len(parts) - 1}, "
                            f"not {parts}")
                    check_replica_assignment(broker, [a["broker_ids"] for a in sorted(
                        t["assignments"], key=lambda a: a["partition_index"])], "partition")
                    n = len(parts)
                n = broker.config["num.partitions"] if n == -1 else n
                if n > MAX_PARTITIONS:   # a client-chosen int32: do not open 2**31 logs
                    raise InvalidPartitionsError(
                        f"partition count {n} exceeds this server's limit of {MAX_PARTITIONS}")
                config = {c["name"]: c["value"] for c in t["configs"] if c["value"] is not None}
                if body.get("validate_only"):   # the real create's checks, budget included
                    broker.create_topic(name, n, config, validate_only=True)
                else:
                    res["topic_id"] = uuid.UUID(broker.create_topic(name, n, config).topic_id)
                res["num_partitions"], res["replication_factor"] = n, 1
        except (KlogError, ValueError, TypeError) as exc:
            res["error_code"] = getattr(exc, "error_code", None) or (
                error_code(exc) if isinstance(exc, KlogError) else EC.INVALID_CONFIG)
            res["error_message"] = str(exc)
        out.append(res)
    return out


@api(ApiKey.CREATE_TOPICS)
async def create_topics(ctx, body):
    return {"throttle_time_ms": 0,
            "topics": await _run(_create_topics, ctx.broker, body, ctx.version)}


def _delete_topics(broker, names):
    out = []
    for name in names:
        try:
            broker.delete_topic(name)   # refuses internal topics (InternalTopicError)
            out.append({"name": name, "error_code": 0})
        except KlogError as exc:
            out.append({"name": name, "error_code": error_code(exc)})
    return out


def _delete_topics_by_state(broker, topics):
    """DeleteTopics v6+: each topic by name or by id (not both, as Kafka requires)."""
    out = []
    for t in topics:
        name, topic_id = t.get("name"), t.get("topic_id", epochs.ZERO_UUID)
        res = {"name": name, "topic_id": topic_id, "error_code": 0, "error_message": None}
        try:
            if name is not None and topic_id != epochs.ZERO_UUID:
                res["error_code"] = EC.INVALID_REQUEST
                res["error_message"] = "give a topic name or a topic id, not both"
                out.append(res)
                continue
            if name is None:
                name = res["name"] = epochs.topic_name_for_id(broker, topic_id)
            else:
                res["topic_id"] = epochs.topic_uuid(broker, name)
        except KlogError as exc:
            res["error_code"], res["error_message"] = error_code(exc), str(exc)
            out.append(res)
            continue
        res.update(_delete_topics(broker, [name])[0])
        out.append(res)
    return out


@api(ApiKey.DELETE_TOPICS)
async def delete_topics(ctx, body):
    if ctx.version >= 6:
        return {"throttle_time_ms": 0,
                "responses": await _run(_delete_topics_by_state, ctx.broker, body["topics"])}
    return {"throttle_time_ms": 0,
            "responses": await _run(_delete_topics, ctx.broker, body["topic_names"])}


def _delete_records(broker, topics, conditions):
    out = []
    for t in topics:
        parts = []
        for p in t["partitions"]:
            res = {"partition_index": p["partition_index"], "low_watermark": -1, "error_code": 0}
            try:
                part = broker.partition(t["name"], p["partition_index"])
                res["low_watermark"] = part.delete_records(p["offset"])   # -1: the HW
            except KlogError as exc:
                res["error_code"] = error_code(exc)
            except OSError as exc:
                res["error_code"] = _storage_error(conditions, "DeleteRecords of", t["name"],
                                                   p["partition_index"], exc)
            parts.append(res)
        out.append({"name": t["name"], "partitions": parts})
    return out


@api(ApiKey.DELETE_RECORDS)
async def delete_records(ctx, body):
    return {"throttle_time_ms": 0, "topics": await _run(_delete_records, ctx.broker, body["topics"],
                                                        ctx.server.conditions)}


@api(ApiKey.CONTROLLED_SHUTDOWN)
async def controlled_shutdown(ctx, body):
    # A single node has no controller (cluster mode: klog.cluster.controlled_shutdown).
    return {"error_code": EC.NOT_CONTROLLER, "remaining_partitions": []}


@api(ApiKey.ELECT_LEADERS)
async def elect_leaders(ctx, body):
    # A single node leads every partition and is its preferred replica: nothing to elect, for
    # either election type (cluster mode: klog.cluster.admin_handlers). Asked for every
    # partition (null), Kafka leaves out those that need no election: nothing is left.
    results = []
    for t in body["topic_partitions"] or ():
        parts = []
        for p in t["partitions"]:
            code, message = EC.ELECTION_NOT_NEEDED, None
            try:
                ctx.broker.partition(t["topic"], p)
            except KlogError as exc:
                code, message = exc.error_code, str(exc)[:500]
            parts.append({"partition_id": p, "error_code": code, "error_message": message})
        results.append({"topic": t["topic"], "partition_result": parts})
    return {"throttle_time_ms": 0, "error_code": 0, "replica_election_results": results}


class ProducerIdAllocator:
    """Unique producer ids, never reused after a restart: ids are handed out from blocks whose
    end is first written durably to ``<data_dir>/producer-id-block``, and a new process starts
    past the last block (and past the time in ms)."""

    BLOCK = 1000
    FILE = "producer-id-block"

    def __init__(self, data_dir):
        self._path = os.path.join(data_dir, self.FILE)
        self._next = None
        self._block_end = None
        self._lock = threading.Lock()

    def _reserve(self):
        """Durably claim the next block. Caller holds _lock."""
        if self._next is None:
            self._next = time.time_ns() // 1_000_000
            try:
                with open(self._path, "rb") as f:
                    self._next = max(self._next, int(f.read().strip() or 0))
            except (OSError, ValueError):
                pass
        self._block_end = self._next + self.BLOCK
        write_atomic(self._path, f"{self._block_end}\n".encode())

    def next(self):
        with self._lock:
            if self._block_end is None or self._next >= self._block_end:
                self._reserve()
            pid = self._next
            self._next += 1
            return pid


@api(ApiKey.INIT_PRODUCER_ID)
async def init_producer_id(ctx, body):
    if body.get("transactional_id") is not None:
        return {"throttle_time_ms": 0, "error_code": EC.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                "producer_id": -1, "producer_epoch": -1}
    pid, epoch = body.get("producer_id", -1), body.get("producer_epoch", -1)
    if pid >= 0 and 0 <= epoch < 32767:
        return {"throttle_time_ms": 0, "error_code": 0, "producer_id": pid,
                "producer_epoch": epoch + 1}
    pid = await _run(ctx.server.producer_ids.next)
    # The node id in the high bits: brokers of a cluster never hand out the same id.
    pid += ctx.server.replication.node_id << 48
    return {"throttle_time_ms": 0, "error_code": 0, "producer_id": pid, "producer_epoch": 0}


@api(ApiKey.OFFSET_FOR_LEADER_EPOCH)
async def offset_for_leader_epoch(ctx, body):
    return {"throttle_time_ms": 0,
            "topics": epochs.offsets_for_leader_epochs(ctx.server.replication, body["topics"],
                                                       error_code)}


from klog.server import admin  # noqa: E402,F401  (registers the admin handlers)
from klog.server import group_routing  # noqa: E402,F401  (group requests: their coordinator only)
from klog.server import topic_metadata  # noqa: E402,F401  (Metadata, for both modes)
