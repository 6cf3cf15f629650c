"""Which broker answers a group's requests: the group's coordinator (``Server.replication
.coordinates(group_id)``). A single node coordinates every group; in a cluster it is the leader
of the group's ``__consumer_offsets`` partition, and the other brokers answer NOT_COORDINATOR,
as Kafka does:

- JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetDelete: the whole request;
- OffsetFetch (v8 names several groups), DescribeGroups, DeleteGroups: per group;
- ListGroups lists the groups this broker coordinates (clients ask every broker and merge).

A group write (OffsetCommit, SyncGroup, DeleteGroups, OffsetDelete) is answered once
``replication.group_write_replicated`` says the ISR holds it (nothing to wait for on a single
node). Applied to klog.server.handlers.HANDLERS once, at import.
"""
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey
from klog.server.handlers import HANDLERS

NC = EC.NOT_COORDINATOR


def _not_coordinator(api_key, body):
    """The answer of a broker that is not the group's coordinator, for a whole request."""
    if api_key == ApiKey.JOIN_GROUP:
        return {"throttle_time_ms": 0, "error_code": NC, "generation_id": -1,
                "protocol_type": None, "protocol_name": None, "leader": "", "member_id": "",
                "members": [], "skip_assignment": False}
    if api_key == ApiKey.SYNC_GROUP:
        return {"throttle_time_ms": 0, "error_code": NC, "protocol_type": None,
                "protocol_name": None, "assignment": b""}
    if api_key == ApiKey.HEARTBEAT:
        return {"throttle_time_ms": 0, "error_code": NC}
    if api_key == ApiKey.LEAVE_GROUP:
        return {"throttle_time_ms": 0, "error_code": NC, "members": []}
    if api_key == ApiKey.OFFSET_COMMIT:
        return {"throttle_time_ms": 0, "topics": [
            {"name": t["name"], "partitions": [
                {"partition_index": p["partition_index"], "error_code": NC}
                for p in t["partitions"]]} for t in body["topics"]]}
    if api_key == ApiKey.OFFSET_DELETE:
        return {"throttle_time_ms": 0, "error_code": NC, "topics": []}
    raise AssertionError(api_key)


def _whole_request(api_key, handler, writes):
    async def routed(ctx, body):
        replication = ctx.server.replication
        group_id = body["group_id"]
        if not replication.coordinates(group_id):
            return _not_coordinator(api_key, body)
        answer = await handler(ctx, body)
        if writes:
            await replication.group_write_replicated(group_id)
        return answer
    return routed


def _per_group(ids_of, subset, not_coordinated, merge, writes=False):
    """A request naming several groups: the coordinated ones go to ``handler`` (in a copy of
    the body naming only them), the others are answered ``not_coordinated(group_id)``; the
    answers come back in the request's order."""
    def wrap(handler):
        async def routed(ctx, body):
            replication = ctx.server.replication
            ids = ids_of(ctx, body)
            mine = [replication.coordinates(g) for g in ids]
            if all(mine):   # a single node, always
                answer = await handler(ctx, body)
            elif not any(mine):
                answer = merge(ctx, None, [not_coordinated(ctx, g) for g in ids], ids, mine)
            else:
                inner = await handler(ctx, subset(ctx, body, mine))
                answer = merge(ctx, inner, [None if m else not_coordinated(ctx, g)
                                            for g, m in zip(ids, mine)], ids, mine)
            if writes:
                for g, m in zip(ids, mine):
                    if m:
                        await replication.group_write_replicated(g)
            return answer
        return routed
    return wrap


def _merge_by_id(key, id_field):
    """Answers of a per-group request in request order: ``key`` is the response's list, each
    entry naming its group in ``id_field``."""
    def merge(ctx, inner, theirs, ids, mine):
        ours = {r[id_field]: r for r in (inner[key] if inner is not None else ())}
        out = [ours[g] if m else t for g, t, m in zip(ids, theirs, mine)]
        return {**(inner or {"throttle_time_ms": 0}), key: out}
    return merge


def _offset_fetch_ids(ctx, body):
    return [g["group_id"] for g in body["groups"]] if ctx.version >= 8 else [body["group_id"]]


def _offset_fetch_subset(ctx, body, mine):
    return {**body, "groups": [g for g, m in zip(body["groups"], mine) if m]}


def _offset_fetch_other(ctx, group_id):
    if ctx.version >= 8:
        return {"group_id": group_id, "topics": [], "error_code": NC}
    return {"throttle_time_ms": 0, "topics": [], "error_code": NC}


def _offset_fetch_merge(ctx, inner, theirs, ids, mine):
    if ctx.version >= 8:
        return _merge_by_id("groups", "group_id")(ctx, inner, theirs, ids, mine)
    return theirs[0]     # one group, not coordinated here (else the handler answered alone)


def _describe_other(ctx, group_id):
    return {"error_code": NC, "group_id": group_id, "group_state": "", "protocol_type": "",
            "protocol_data": "", "members": []}


def _delete_other(ctx, group_id):
    return {"group_id": group_id, "error_code": NC}


def _list_groups(handler):
    async def routed(ctx, body):
        answer = await handler(ctx, body)
        coordinates = ctx.server.replication.coordinates
        answer["groups"] = [g for g in answer["groups"] if coordinates(g["group_id"])]
        return answer
    return routed


def install(handlers):
    for key in (ApiKey.JOIN_GROUP, ApiKey.HEARTBEAT, ApiKey.LEAVE_GROUP):
        handlers[key] = _whole_request(key, handlers[key], writes=False)
    for key in (ApiKey.SYNC_GROUP, ApiKey.OFFSET_COMMIT, ApiKey.OFFSET_DELETE):
        handlers[key] = _whole_request(key, handlers[key], writes=True)
    handlers[ApiKey.OFFSET_FETCH] = _per_group(
        _offset_fetch_ids, _offset_fetch_subset, _offset_fetch_other,
        _offset_fetch_merge)(handlers[ApiKey.OFFSET_FETCH])
    handlers[ApiKey.DESCRIBE_GROUPS] = _per_group(
        lambda ctx, body: body["groups"],
        lambda ctx, body, mine: {**body, "groups": [g for g, m in zip(body["groups"], mine) if m]},
        _describe_other, _merge_by_id("groups", "group_id"))(handlers[ApiKey.DESCRIBE_GROUPS])
    handlers[ApiKey.DELETE_GROUPS] = _per_group(
        lambda ctx, body: body["groups_names"],
        lambda ctx, body, mine: {**body, "groups_names": [
            g for g, m in zip(body["groups_names"], mine) if m]},
        _delete_other, _merge_by_id("results", "group_id"), writes=True)(handlers[ApiKey.DELETE_GROUPS])
    handlers[ApiKey.LIST_GROUPS] = _list_groups(handlers[ApiKey.LIST_GROUPS])


install(HANDLERS)
