"""The __consumer_offsets store: Kafka's key/value schemas (hand-computed bytes), Java's String
hash for placement, replay semantics (last value wins, tombstones delete), topic creation."""
import struct

import pytest

import klog
from klog.errors import CorruptLogError
from klog.group.offsets import (
    OFFSETS_TOPIC, CommittedOffset, GroupKey, GroupRecord, MemberRecord, OffsetKey, OffsetStore,
    decode_group_value, decode_key, decode_offset_value, encode_group_key, encode_group_value,
    encode_offset_key, encode_offset_value, java_string_hash, partition_for,
)
from klog.group.protocol import ProtocolDecodeError
from klog.structs import TopicPartition


def s16(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


@pytest.mark.parametrize("text, expected", [
    ("", 0), ("a", 97), ("hello", 99162322), ("Aa", 2112), ("BB", 2112),
    ("polygenelubricants", -(1 << 31)),          # Java's famous Integer.MIN_VALUE hash
    ("\U0001F600", 0xD83D * 31 + 0xDE00),        # hashed as its UTF-16 surrogate pair
])
def test_java_string_hash(text, expected):
    assert java_string_hash(text) == expected


def test_partition_for_uses_kafkas_abs():
    assert partition_for("polygenelubricants", 50) == 0      # Utils.abs(MIN_VALUE) == 0
    assert partition_for("hello", 50) == 99162322 % 50
    h = java_string_hash("my-group")
    assert h < 0 and partition_for("my-group", 50) == abs(h) % 50


def test_key_encodings():
    assert encode_offset_key("g", "t", 3) == b"\x00\x01" + s16("g") + s16("t") + b"\x00\x00\x00\x03"
    assert encode_group_key("g") == b"\x00\x02" + s16("g")
    assert decode_key(encode_offset_key("grp", "top", 7)) == OffsetKey("grp", "top", 7)
    assert decode_key(b"\x00\x00" + s16("g") + s16("t") + b"\x00\x00\x00\x01") == OffsetKey("g", "t", 1)
    assert decode_key(encode_group_key("grp")) == GroupKey("grp")
    assert decode_key(b"\x00\x05whatever") is None          # newer record types are skipped


def test_offset_value_versions():
    v3 = encode_offset_value(CommittedOffset(42, 5, "md", 1000))
    assert v3 == b"\x00\x03" + struct.pack(">qi", 42, 5) + s16("md") + struct.pack(">q", 1000)
    assert decode_offset_value(v3) == CommittedOffset(42, 5, "md", 1000)
    v0 = b"\x00\x00" + struct.pack(">q", 9) + s16("m") + struct.pack(">q", 77)
    assert decode_offset_value(v0) == CommittedOffset(9, -1, "m", 77)
    v1 = b"\x00\x01" + struct.pack(">q", 9) + s16("m") + struct.pack(">qq", 77, 88)
    assert decode_offset_value(v1) == CommittedOffset(9, -1, "m", 77, 88)
    # v4: flexible, compact string (uvarint len+1) and an empty tagged-field section.
    v4 = b"\x00\x04" + struct.pack(">qi", 9, 2) + b"\x02m" + struct.pack(">q", 77) + b"\x00"
    assert decode_offset_value(v4) == CommittedOffset(9, 2, "m", 77)
    with pytest.raises(ProtocolDecodeError, match="unknown version 9"):
        decode_offset_value(b"\x00\x09")
    with pytest.raises(ProtocolDecodeError, match="truncated"):
        decode_offset_value(v3[:-1])


def test_group_value_round_trip_and_v0():
    record = GroupRecord("consumer", 7, "range", "m1", 1234, (
        MemberRecord("m1", None, "cli", "/1.2.3.4", 300000, 45000, b"sub", b"asg"),))
    data = encode_group_value(record)
    assert data[:2] == b"\x00\x03"
    assert decode_group_value(data) == record
    v0 = (b"\x00\x00" + s16("consumer") + b"\x00\x00\x00\x02" + s16("rr") + s16("m")
          + b"\x00\x00\x00\x01" + s16("m") + s16("c") + s16("h") + b"\x00\x00\x27\x10"
          + b"\x00\x00\x00\x01S" + b"\x00\x00\x00\x01A")
    assert decode_group_value(v0) == GroupRecord(
        "consumer", 2, "rr", "m", -1, (MemberRecord("m", None, "c", "h", -1, 10000, b"S", b"A"),))


def test_store_creates_a_compacted_topic_and_replays_latest_values(tmp_path):
    config = {"offsets.topic.num.partitions": 5, "offsets.topic.segment.bytes": 65536}
    with klog.open(tmp_path, config) as b:
        store = OffsetStore(b)
        assert store.load().offsets == {}
        assert OFFSETS_TOPIC not in b.list_topics(internal=True)    # created on first write
        key = encode_offset_key("g", "t", 0)
        store.append("g", [(key, encode_offset_value(CommittedOffset(1)))])
        store.append("g", [(key, encode_offset_value(CommittedOffset(2))),
                           (encode_offset_key("g", "t", 1), encode_offset_value(CommittedOffset(5)))])
        store.append("g", [(encode_offset_key("g", "t", 1), None)])          # tombstone
        store.append("h", [(encode_group_key("h"), encode_group_value(GroupRecord("", 3, None, None, 0)))])
        desc = b.describe_topic(OFFSETS_TOPIC)
        assert desc.internal and len(desc.partitions) == 5
        assert desc.config["cleanup.policy"] == "compact"
        assert desc.config["segment.bytes"] == 65536
        assert OFFSETS_TOPIC not in b.list_topics()
        # The group's records are in its partition.
        p = partition_for("g", 5)
        assert b.log(OFFSETS_TOPIC, p).log_end_offset == 4
    with klog.open(tmp_path, {"offsets.topic.num.partitions": 9}) as b:
        store = OffsetStore(b)
        assert store.num_partitions == 5        # fixed at creation, as in Kafka
        loaded = store.load()
        assert loaded.offsets == {"g": {TopicPartition("t", 0): CommittedOffset(2)}}
        assert loaded.groups["h"].generation == 3


def test_damaged_record_fails_the_load_clearly(tmp_path):
    with klog.open(tmp_path, {"offsets.topic.num.partitions": 1}) as b:
        store = OffsetStore(b)
        store.append("g", [(encode_offset_key("g", "t", 0), b"\x00\x03\x00")])
        with pytest.raises(CorruptLogError, match=r"__consumer_offsets-0 offset 0: OffsetCommitValue"):
            store.load()


def test_broker_open_loads_committed_offsets(tmp_path):
    with klog.open(tmp_path) as b:
        assert b._coordinator is None                 # no groups yet: nothing to load
        b.create_topic("t", 1)
        b.group_coordinator.commit_offsets("g", "", -1, {("t", 0): 5})
    with klog.open(tmp_path) as b:
        assert b._coordinator is not None             # replayed while opening
        assert b.group_coordinator.fetch_offsets("g", [("t", 0)]).offsets[("t", 0)].offset == 5


def test_broker_with_damaged_offsets_fails_to_open(tmp_path):
    with klog.open(tmp_path, {"offsets.topic.num.partitions": 1}) as b:
        OffsetStore(b).append("g", [(encode_offset_key("g", "t", 0), b"\x00\x03\x00")])
    for _ in range(2):   # the failed open released the directory (no BrokerLockedError)
        with pytest.raises(CorruptLogError, match="__consumer_offsets-0"):
            klog.open(tmp_path)


def test_deleting_a_topic_deletes_its_committed_offsets(tmp_path):
    """Kafka drops a deleted topic's committed offsets; otherwise a group resumes a re-created
    topic at an offset of the old one and skips its first records."""
    import klog

    with klog.open(tmp_path / "d") as broker:
        broker.create_topic("t", partitions=1)
        broker.create_topic("other", partitions=1)
        p = broker.producer()
        for i in range(10):
            p.send("t", b"old%d" % i, partition=0)
            p.send("other", b"x", partition=0)
        p.flush()
        c = broker.consumer("g", {"auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.assign([("t", 0), ("other", 0)])
        while sum(1 for _ in c.poll(timeout_ms=200)) or c.position(("t", 0)) < 10:
            pass
        c.commit()
        c.close()
        broker.delete_topic("t")
        broker.create_topic("t", partitions=1)
        p.send("t", b"new0", partition=0).get()
        c = broker.consumer("g", {"auto.offset.reset": "earliest", "enable.auto.commit": False})
        assert c.committed(("t", 0)) is None
        assert c.committed(("other", 0)) == 10        # other topics keep theirs
        c.assign([("t", 0)])
        got = []
        while not got:
            got = [r.value for r in c.poll(timeout_ms=1000)]
        assert got == [b"new0"]
        c.close()
    with klog.open(tmp_path / "d") as broker:       # and the tombstones replay after a restart
        c = broker.consumer("g", {"enable.auto.commit": False})
        assert c.committed(("t", 0)) is None
        c.close()
