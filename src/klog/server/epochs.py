"""Leader-epoch and topic-id rules of the request handlers (KIP-101, KIP-320, KIP-516, KIP-595).

One partition leader, so the rules reduce to comparisons with the partition's current epoch
(``Partition.leader_epoch``) and lookups in its leader-epoch cache. Kept apart from the handlers so
Fetch, ListOffsets, OffsetForLeaderEpoch and Metadata apply the same ones, and so the
replication work can reuse them for follower fetches.
"""
import uuid

from klog.errors import (
    FencedLeaderEpochError, KlogError, NotLeaderOrFollowerError, UnknownLeaderEpochError,
    UnknownTopicIdError,
)
from klog.protocol.types import ZERO_UUID

NO_EPOCH = -1


def check_leader_epoch(log, current, topic, partition):
    """A request's ``current_leader_epoch`` against the partition's (Kafka's
    Partition.localLogWithEpochOrThrow): older is fenced (the client's metadata is stale),
    newer is unknown (this broker lags the client's metadata), -1 skips the check."""
    if current is None or current < 0:
        return
    ours = log.leader_epoch
    if current < ours:
        raise FencedLeaderEpochError(
            f"{topic}-{partition}: leader epoch {current} is older than the current epoch {ours}")
    if current > ours:
        raise UnknownLeaderEpochError(
            f"{topic}-{partition}: leader epoch {current} is newer than the current epoch {ours}")


def diverging_epoch(log, last_fetched_epoch, fetch_offset):
    """For Fetch v12+: None when the fetcher's log can agree with ours up to ``fetch_offset``,
    else the ``{"epoch", "end_offset"}`` it must truncate to (Kafka's Partition.readRecords):
    our end offset for its last fetched epoch is below its fetch offset, or we never had that
    epoch (the largest epoch we know below it comes back)."""
    if last_fetched_epoch is None or last_fetched_epoch < 0:
        return None
    epoch, end = log.end_offset_for_epoch(last_fetched_epoch)
    if epoch < last_fetched_epoch or end < fetch_offset:
        return {"epoch": epoch, "end_offset": end}
    return None


def topic_uuid(broker, name):
    """The topic's id as the wire carries it (zero UUID if the topic is unknown)."""
    try:
        return uuid.UUID(broker.describe_topic(name).topic_id)
    except KlogError:
        return ZERO_UUID


def topic_name_for_id(broker, topic_id):
    """Topic name for a wire topic id; UnknownTopicIdError if no topic has it."""
    name = None if topic_id is None or topic_id == ZERO_UUID else broker.topic_for_id(str(topic_id))
    if name is None:
        raise UnknownTopicIdError(f"no topic has id {topic_id}")
    return name


def offsets_for_leader_epochs(partitions, topics, error_code):
    """OffsetForLeaderEpoch's answer: per partition the largest epoch <= the requested one and
    its end offset (see LeaderEpochCache.end_offset_for); errors as (code, -1, -1). Only the
    leader answers (Kafka's fetchOnlyFromLeader); ``partitions.partition(topic, p)`` gives the
    Partition (the server's replication hook)."""
    out = []
    for t in topics:
        parts = []
        for p in t["partitions"]:
            res = {"error_code": 0, "partition": p["partition"], "leader_epoch": NO_EPOCH,
                   "end_offset": -1}
            try:
                log = partitions.partition(t["topic"], p["partition"])
                if not log.is_leader:
                    raise NotLeaderOrFollowerError(
                        f"{t['topic']}-{p['partition']}: this broker is not the leader")
                check_leader_epoch(log, p.get("current_leader_epoch", NO_EPOCH), t["topic"],
                                   p["partition"])
                res["leader_epoch"], res["end_offset"] = log.end_offset_for_epoch(p["leader_epoch"])
            except KlogError as exc:
                res["error_code"] = error_code(exc)
            parts.append(res)
        out.append({"topic": t["topic"], "partitions": parts})
    return out


def resolve_fetch_topic_ids(broker, topics):
    """Fetch v13+ names topics by id: fill in each topic's name (None for an unknown id, which
    the broker then refuses) and return the indexes of the unknown ones."""
    unknown = set()
    for i, t in enumerate(topics):
        try:
            t["topic"] = topic_name_for_id(broker, t.get("topic_id"))
        except UnknownTopicIdError:
            t["topic"] = None
            unknown.add(i)
    return unknown


def mark_fetch_topic_ids(responses, topics, unknown, code):
    """Fetch v13+ answers by topic id; partitions of an unknown id get ``code``
    (UNKNOWN_TOPIC_ID) rather than the unknown-name error the lookup gave."""
    for i, (r, t) in enumerate(zip(responses, topics)):
        r["topic_id"] = t.get("topic_id", ZERO_UUID)
        if i in unknown:
            for p in r["partitions"]:
                p["error_code"] = code
