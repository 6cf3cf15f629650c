"""Consumer behaviour without group membership (assign), on both backends."""
import pytest

from klog import errors
from klog.client import ConsumerRecord, OffsetAndTimestamp, TopicPartition

from .conftest import poll_until


def fill(client, topic, n, partitions=1, timestamps=None):
    client.create_topic(topic, partitions)
    with client.producer() as p:
        for i in range(n):
            p.send(topic, b"%d" % i, partition=i % partitions,
                   timestamp=None if timestamps is None else timestamps[i])
        p.flush()


def test_assign_seek_position_lag(client):
    fill(client, "t", 10)
    tp = TopicPartition("t", 0)
    with client.consumer(None, {"auto.offset.reset": "earliest"}) as c:
        c.assign([tp])
        assert c.assignment() == {tp}
        assert c.position(tp) == 0
        assert c.lag(tp) == 10
        records = poll_until(c, 10)
        assert all(isinstance(r, ConsumerRecord) for r in records)
        assert [r.offset for r in records] == list(range(10))
        assert c.position(tp) == 10 and c.lag() == {tp: 0}
        c.seek(tp, 7)
        assert c.position(tp) == 7
        assert [r.offset for r in poll_until(c, 3)] == [7, 8, 9]
        c.seek_to_beginning([tp])
        assert c.position(tp) == 0
        assert poll_until(c, 1)[0].offset == 0
        c.seek_to_end()
        assert c.position(tp) == 10
        assert c.poll(100) == []


def test_latest_reset_reads_only_new_records(client):
    fill(client, "t", 3)
    tp = TopicPartition("t", 0)
    with client.consumer(None, {"auto.offset.reset": "latest"}) as c:
        c.assign([tp])
        assert c.position(tp) == 3
        with client.producer() as p:
            p.send("t", b"new").get(30)
        [r] = poll_until(c, 1)
        assert (r.offset, r.value) == (3, b"new")


def test_poll_respects_max_records(client):
    fill(client, "t", 20)
    with client.consumer(None, {"auto.offset.reset": "earliest", "max.poll.records": 5}) as c:
        c.assign([("t", 0)])
        got = []
        while len(got) < 20:
            batch = c.poll(1000)
            assert len(batch) <= 5
            got += batch
        assert len(c.poll(50, max_records=1)) == 0


def test_beginning_end_offsets_and_offsets_for_times(client):
    fill(client, "t", 4, timestamps=[1000, 2000, 3000, 4000])
    tp = TopicPartition("t", 0)
    with client.consumer(None) as c:
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 4}
        # the record's own timestamp, not the target (Kafka's ListOffsets)
        assert c.offsets_for_times({tp: 1500}) == {tp: OffsetAndTimestamp(1, 2000)}
        assert c.offsets_for_times({tp: 4000}) == {tp: OffsetAndTimestamp(3, 4000)}
        assert c.offsets_for_times({tp: 9000}) == {tp: None}


def test_pause_and_resume(client):
    fill(client, "t", 4, partitions=2)
    p0, p1 = TopicPartition("t", 0), TopicPartition("t", 1)
    with client.consumer(None, {"auto.offset.reset": "earliest"}) as c:
        c.assign([p0, p1])
        c.pause([p1])
        got = poll_until(c, 2)
        assert {r.partition for r in got} == {0}
        assert c.poll(300) == []
        c.resume([p1])
        assert {r.partition for r in poll_until(c, 2)} == {1}


def test_assign_unknown_partition_is_unknown_topic_or_partition(client):
    client.create_topic("t", 1)
    with client.consumer(None) as c:
        with pytest.raises(errors.UnknownTopicOrPartitionError):
            c.assign([("t", 3)])


def test_commit_without_group_is_invalid_group_id(client):
    fill(client, "t", 1)
    with client.consumer(None) as c:
        c.assign([("t", 0)])
        with pytest.raises(errors.KlogError) as info:
            c.commit({("t", 0): 1})
        assert type(info.value).__name__ == "InvalidGroupIdError"
        assert info.value.error_code == 24


def test_seek_on_unassigned_partition_is_illegal_state(client):
    fill(client, "t", 1)
    with client.consumer(None) as c:
        c.assign([("t", 0)])
        with pytest.raises(errors.KlogError) as info:
            c.seek(("t", 1), 0)
        assert type(info.value).__name__ == "IllegalStateError"
