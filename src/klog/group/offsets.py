"""The ``__consumer_offsets`` topic: committed offsets and group metadata, stored as Kafka does.

Every key and value starts with an int16 schema version (``CoordinatorRecordSerde.java``); the
schemas are ``group-coordinator/src/main/resources/common/message/*.json``::

    key   v0, v1  OffsetCommitKey    group:string topic:string partition:int32
    key   v2      GroupMetadataKey   group:string
    key   v3+     records of newer group types (KIP-848, share groups): skipped on load
    OffsetCommitValue   v0  offset:int64 metadata:string commitTimestamp:int64
                        v1  v0 + expireTimestamp:int64
                        v2  as v0
                        v3  offset:int64 leaderEpoch:int32 metadata:string commitTimestamp:int64
                        v4  v3, flexible (compact strings, tagged fields)
    GroupMetadataValue  protocolType:string generation:int32 protocol:nullable string
                        leader:nullable string currentStateTimestamp:int64 (v2+)
                        members:[memberId:string groupInstanceId:nullable string (v3+)
                                 clientId:string clientHost:string rebalanceTimeout:int32 (v1+)
                                 sessionTimeout:int32 subscription:bytes assignment:bytes]
                        v4 is v3, flexible
    a null value is a tombstone: the key is deleted.

We write OffsetCommitKey v1 / OffsetCommitValue v3 and GroupMetadataKey v2 / GroupMetadataValue
v3, as Kafka 3.x does; we read every version above. A group lives in partition
``abs(javaStringHash(group)) % partitions`` (``GroupMetadataManager.partitionFor``), with
``Utils.abs`` mapping Integer.MIN_VALUE to 0.

The topic is created on first write with ``offsets.topic.num.partitions`` partitions,
``cleanup.policy=compact`` and ``offsets.topic.segment.bytes``; after that its partition count is
whatever it was created with (as in Kafka, changing the setting later does not move groups).

Crash behaviour: a commit is one batch, so it survives whole or not at all (batch CRC); how much
survives a power failure is the topic's flush policy (the broker's ``log.flush.*`` defaults).
Loading replays each partition from its log start: the last value per key wins, a tombstone
deletes it, so the result is the same before and after compaction.

Concurrency: thread-safe. Callers serialize the writes of one group (the coordinator holds the
group's lock), so each group's records reach the log in the order its state changed.
"""
import threading
from collections import namedtuple
from dataclasses import dataclass

from klog.errors import CorruptLogError, TopicExistsError
from klog.group.protocol import ProtocolDecodeError, StructReader, StructWriter
from klog.partition import LOG_END
from klog.structs import TopicPartition

OFFSETS_TOPIC = "__consumer_offsets"
OFFSET_KEY_VERSION = 1
GROUP_KEY_VERSION = 2
OFFSET_VALUE_VERSION = 3
GROUP_VALUE_VERSION = 3

OffsetKey = namedtuple("OffsetKey", "group topic partition")
GroupKey = namedtuple("GroupKey", "group")


@dataclass(frozen=True)
class CommittedOffset:
    """One committed offset as stored (OffsetCommitValue)."""
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp: int = -1
    expire_timestamp: int = -1    # only v1 records carry one


@dataclass(frozen=True)
class MemberRecord:
    member_id: str
    group_instance_id: str
    client_id: str
    client_host: str
    rebalance_timeout: int
    session_timeout: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True)
class GroupRecord:
    """A group's membership as of its last rebalance (GroupMetadataValue)."""
    protocol_type: str
    generation: int
    protocol: str
    leader: str
    current_state_timestamp: int
    members: tuple = ()


@dataclass
class LoadedOffsets:
    offsets: dict      # group -> {TopicPartition: CommittedOffset}
    groups: dict       # group -> GroupRecord


def java_string_hash(s):
    """Java's String.hashCode: 31*h + c over UTF-16 code units, as a signed int32."""
    data = s.encode("utf-16-be", "surrogatepass")
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(group_id, num_partitions):
    h = java_string_hash(group_id)
    return (0 if h == -(1 << 31) else abs(h)) % num_partitions


# -- record codecs -------------------------------------------------------------------------------
def encode_offset_key(group, topic, partition):
    return (StructWriter().int16(OFFSET_KEY_VERSION).string(group).string(topic)
            .int32(partition).getvalue())


def encode_group_key(group):
    return StructWriter().int16(GROUP_KEY_VERSION).string(group).getvalue()


def decode_key(data):
    """OffsetKey, GroupKey, or None for record types of newer group protocols."""
    r = StructReader(data, f"{OFFSETS_TOPIC} key")
    version = r.int16("version")
    if version in (0, 1):
        return OffsetKey(r.string("group"), r.string("topic"), r.int32("partition"))
    if version == 2:
        return GroupKey(r.string("group"))
    if version > 2:
        return None
    raise ProtocolDecodeError(f"{OFFSETS_TOPIC} key: unknown version {version}")


def encode_offset_value(c):
    return (StructWriter().int16(OFFSET_VALUE_VERSION).int64(c.offset).int32(c.leader_epoch)
            .string(c.metadata).int64(c.commit_timestamp).getvalue())


def decode_offset_value(data):
    r = StructReader(data, "OffsetCommitValue")
    version = r.int16("version")
    if version in (0, 2):
        return CommittedOffset(r.int64("offset"), -1, r.string("metadata"),
                               r.int64("commitTimestamp"))
    if version == 1:
        return CommittedOffset(r.int64("offset"), -1, r.string("metadata"),
                               r.int64("commitTimestamp"), r.int64("expireTimestamp"))
    if version == 3:
        return CommittedOffset(r.int64("offset"), r.int32("leaderEpoch"), r.string("metadata"),
                               r.int64("commitTimestamp"))
    if version == 4:
        c = CommittedOffset(r.int64("offset"), r.int32("leaderEpoch"),
                            r.compact_string("metadata"), r.int64("commitTimestamp"))
        r.skip_tags()
        return c
    raise ProtocolDecodeError(f"OffsetCommitValue: unknown version {version}")


def encode_group_value(g):
    w = StructWriter().int16(GROUP_VALUE_VERSION)
    w.string(g.protocol_type).int32(g.generation).string(g.protocol).string(g.leader)
    w.int64(g.current_state_timestamp)
    w.array_length(len(g.members))
    for m in g.members:
        w.string(m.member_id).string(m.group_instance_id).string(m.client_id)
        w.string(m.client_host).int32(m.rebalance_timeout).int32(m.session_timeout)
        w.bytes(m.subscription).bytes(m.assignment)
    return w.getvalue()


def decode_group_value(data):
    r = StructReader(data, "GroupMetadataValue")
    version = r.int16("version")
    if not 0 <= version <= 4:
        raise ProtocolDecodeError(f"GroupMetadataValue: unknown version {version}")
    flex = version >= 4
    text = r.compact_string if flex else r.string
    blob = (lambda f: r.compact_bytes(f)) if flex else (lambda f: r.bytes(f, nullable=False))
    protocol_type = text("protocolType")
    generation = r.int32("generation")
    protocol = text("protocol", nullable=True)
    leader = text("leader", nullable=True)
    state_ts = r.int64("currentStateTimestamp") if version >= 2 else -1
    count = (r.compact_array_length("members", 14) if flex
             else r.array_length("members", 18))
    members = []
    for _ in range(count):
        member_id = text("memberId")
        instance = text("groupInstanceId", nullable=True) if version >= 3 else None
        client_id = text("clientId")
        client_host = text("clientHost")
        rebalance = r.int32("rebalanceTimeout") if version >= 1 else -1
        session = r.int32("sessionTimeout")
        members.append(MemberRecord(member_id, instance, client_id, client_host, rebalance,
                                    session, blob("subscription"), blob("assignment")))
        if flex:
            r.skip_tags()
    if flex:
        r.skip_tags()
    return GroupRecord(protocol_type, generation, protocol, leader, state_ts, tuple(members))


# -- the store -----------------------------------------------------------------------------------
class OffsetStore:
    """Reads and writes the ``__consumer_offsets`` topic of one broker."""

    def __init__(self, broker):
        self._broker = broker
        self._lock = threading.Lock()
        self._partitions = None   # the topic's partition count, once it exists

    @property
    def num_partitions(self):
        if self._partitions is None:
            if OFFSETS_TOPIC in self._broker.list_topics(internal=True):
                self._partitions = self._broker.partition_count(OFFSETS_TOPIC)
            else:
                return self._broker.config["offsets.topic.num.partitions"]
        return self._partitions

    def partition_for(self, group_id):
        return partition_for(group_id, self.num_partitions)

    def _ensure_topic(self):
        if self._partitions is not None:
            return
        with self._lock:
            if self._partitions is not None:
                return
            config = self._broker.config
            try:
                self._broker.create_topic(
                    OFFSETS_TOPIC, config["offsets.topic.num.partitions"],
                    {"cleanup.policy": "compact",
                     "segment.bytes": config["offsets.topic.segment.bytes"]})
            except TopicExistsError:
                pass
            self._partitions = self._broker.partition_count(OFFSETS_TOPIC)

    def append(self, group_id, records):
        """Append ``[(key, value or None)]`` for one group as one batch (atomic)."""
        if not records:
            return
        self._ensure_topic()
        part = self._broker.partition(OFFSETS_TOPIC, self.partition_for(group_id))
        part.append([v for _, v in records], [k for k, _ in records], self._broker.clock.now_ms())

    def load(self, partitions=None):
        """Replay the topic (or only ``partitions``): LoadedOffsets with the latest offsets and
        group record per group."""
        offsets, groups = {}, {}
        if OFFSETS_TOPIC not in self._broker.list_topics(internal=True):
            return LoadedOffsets(offsets, groups)
        if partitions is None:     # cluster mode: only the partitions held here
            partitions = [p for p in range(self.num_partitions)
                          if self._broker.hosts_partition(OFFSETS_TOPIC, p)]
        for p in partitions:
            # To the log end, as Kafka's GroupMetadataManager loads: the leader's log is the
            # group's state.
            for record in self._broker.partition(OFFSETS_TOPIC, p).records(isolation=LOG_END):
                try:
                    self._apply(record, offsets, groups)
                except ProtocolDecodeError as exc:
                    # Only klog and Kafka write here; garbage means damage, and silently
                    # dropping a group's offsets would rewind its consumers. Fail closed.
                    raise CorruptLogError(
                        f"{OFFSETS_TOPIC}-{p} offset {record.offset}: {exc}; refusing to load "
                        "committed offsets from a damaged record") from None
        return LoadedOffsets({g: o for g, o in offsets.items() if o}, groups)

    @staticmethod
    def _apply(record, offsets, groups):
        if record.key is None:
            raise ProtocolDecodeError("record has no key")
        key = decode_key(record.key)
        if isinstance(key, OffsetKey):
            tp = TopicPartition(key.topic, key.partition)
            if record.value is None:
                offsets.get(key.group, {}).pop(tp, None)
            else:
                offsets.setdefault(key.group, {})[tp] = decode_offset_value(record.value)
        elif isinstance(key, GroupKey):
            if record.value is None:
                groups.pop(key.group, None)
            else:
                groups[key.group] = decode_group_value(record.value)
