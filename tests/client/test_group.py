"""Consumer groups on both backends: subscribe, commit, resume, rebalance callbacks, group admin."""
import re

import pytest

from klog import errors
from klog.client import GroupDescription, OffsetAndMetadata, TopicPartition

from .conftest import poll_until, wait_for

FAST_GROUP = {"auto.offset.reset": "earliest", "session.timeout.ms": 6000,
              "heartbeat.interval.ms": 500}


def fill(client, topic, n, partitions=1):
    client.create_topic(topic, partitions)
    with client.producer() as p:
        for i in range(n):
            p.send(topic, b"%d" % i, partition=i % partitions)
        p.flush()


def test_commit_then_a_new_member_resumes_after_it(client):
    fill(client, "events", 10)
    tp = TopicPartition("events", 0)
    assigned = []
    with client.consumer("g1", dict(FAST_GROUP, **{"enable.auto.commit": False})) as c:
        c.subscribe(["events"], on_assign=assigned.extend)
        first = poll_until(c, 10)
        assert [r.value for r in first] == [b"%d" % i for i in range(10)]
        assert assigned == [tp]
        c.commit({tp: 6})
        assert c.committed(tp) == 6
        assert c.committed([tp], metadata=True) == {tp: OffsetAndMetadata(6, "", -1)} or \
            c.committed([tp], metadata=True)[tp].offset == 6
    with client.consumer("g1", FAST_GROUP) as c:
        c.subscribe(["events"])
        again = poll_until(c, 4)
        assert [r.offset for r in again] == [6, 7, 8, 9]


def test_commit_of_current_positions_and_auto_commit_on_close(client):
    fill(client, "events", 5)
    tp = TopicPartition("events", 0)
    with client.consumer("g2", dict(FAST_GROUP, **{"enable.auto.commit": False})) as c:
        c.subscribe(["events"])
        poll_until(c, 5)
        c.commit()
        assert c.committed(tp) == 5
    fill_more = client.producer()
    fill_more.send("events", b"5").get(30)
    fill_more.close()
    with client.consumer("g2", FAST_GROUP) as c:   # auto-commit (the default) commits on close
        c.subscribe(["events"])
        assert [r.offset for r in poll_until(c, 1)] == [5]
    assert client.list_group_offsets("g2") == {tp: OffsetAndMetadata(6, "", -1)} or \
        client.list_group_offsets("g2")[tp].offset == 6


def test_subscribe_to_a_pattern(client):
    for name in ("metrics.cpu", "metrics.mem", "logs"):
        fill(client, name, 1)
    with client.consumer("g3", FAST_GROUP) as c:
        c.subscribe(re.compile(r"metrics\..*"))
        got = poll_until(c, 2)
        assert sorted(r.topic for r in got) == ["metrics.cpu", "metrics.mem"]
        assert c.poll(300) == []


def test_two_members_split_the_partitions_and_revoke_on_leave(client):
    fill(client, "work", 4, partitions=4)
    revoked = []
    a = client.consumer("g4", FAST_GROUP)
    a.subscribe(["work"], on_revoke=revoked.append)
    wait_for(lambda: a.poll(100) or a.assignment() == {TopicPartition("work", p) for p in range(4)},
             what="first member owns all partitions")
    b = client.consumer("g4", FAST_GROUP)
    b.subscribe(["work"])
    try:
        def split():
            a.poll(50)
            b.poll(50)
            return len(a.assignment()) == 2 and len(b.assignment()) == 2
        wait_for(split, what="the partitions split 2/2")
        assert a.assignment() | b.assignment() == {TopicPartition("work", p) for p in range(4)}
        assert revoked, "the first member's partitions were revoked for the rebalance"
        desc = client.describe_group("g4")
        assert isinstance(desc, GroupDescription)
        assert desc.state == "Stable" and len(desc.members) == 2
        owned = sorted(tp for m in desc.members for tp in m.assignment)
        assert owned == [TopicPartition("work", p) for p in range(4)]
    finally:
        a.close()
        b.close()


def test_group_admin_list_alter_delete(client):
    fill(client, "t", 3)
    tp = TopicPartition("t", 0)
    with client.consumer("g5", FAST_GROUP) as c:
        c.subscribe(["t"])
        poll_until(c, 3)
        c.commit()
        listed = {g.group_id: g for g in client.list_groups()}
        assert listed["g5"].protocol_type == "consumer"
        with pytest.raises(errors.KlogError) as info:   # active members: refused
            client.delete_group("g5")
        assert type(info.value).__name__ == "NonEmptyGroupError"
    client.alter_group_offsets("g5", {tp: 1})
    assert client.list_group_offsets("g5")[tp].offset == 1
    with client.consumer("g5", FAST_GROUP) as c:
        c.subscribe(["t"])
        assert [r.offset for r in poll_until(c, 2)] == [1, 2]
    wait_for(lambda: client.describe_group("g5").state == "Empty", what="group empty")
    client.delete_group("g5")
    assert "g5" not in {g.group_id for g in client.list_groups()}
    assert client.describe_group("nobody").state == "Dead"


def test_auto_offset_reset_none_without_committed_offset(client):
    fill(client, "t", 1)
    with client.consumer("g6", dict(FAST_GROUP, **{"auto.offset.reset": "none"})) as c:
        c.subscribe(["t"])
        with pytest.raises(errors.KlogError) as info:
            poll_until(c, 1, timeout_s=20)
        assert type(info.value).__name__ == "NoOffsetForPartitionError"


def test_subscribe_without_group_is_invalid_group_id(client):
    client.create_topic("t", 1)
    with client.consumer(None) as c:
        with pytest.raises(errors.KlogError) as info:
            c.subscribe(["t"])
        assert info.value.error_code == 24


def test_on_assign_can_seek_and_ask_positions(client):
    fill(client, "t", 10)
    tp = TopicPartition("t", 0)
    seen = {}

    def on_assign(partitions):
        seen["assigned"] = set(partitions) <= c.assignment()
        seen["position"] = c.position(tp)
        c.seek(tp, 7)

    with client.consumer("g7", FAST_GROUP) as c:
        c.subscribe(["t"], on_assign=on_assign)
        got = poll_until(c, 3)
    assert seen == {"assigned": True, "position": 0}
    assert [r.offset for r in got] == [7, 8, 9]
