"""Committed offsets: commit, close, reopen the broker and resume; auto-commit; every
auto.offset.reset value; several groups on one topic; commit errors."""
import time

import pytest

from klog import (
    CommitFailedError, NoOffsetForPartitionError, OffsetAndMetadata, TopicPartition,
)
from klog.errors import UnknownTopicOrPartitionError

T0 = TopicPartition("t", 0)
T1 = TopicPartition("t", 1)


@pytest.fixture
def topic(broker, produce):
    broker.create_topic("t", 2)
    produce("t", 0, [f"a{i}" for i in range(10)])
    produce("t", 1, [f"b{i}" for i in range(10)])
    return "t"


def test_commit_close_reopen_resume_at_committed_offset(reopen, broker, topic, fast):
    c = broker.consumer("g", {**fast, "enable.auto.commit": False})
    c.subscribe(["t"])
    got = []
    while len(got) < 20:
        got += c.poll(1000)
    c.seek(T0, 4)
    c.commit()                                   # positions: t-0 at 4, t-1 at 10
    assert c.committed([T0, T1]) == {T0: 4, T1: 10}
    c.commit({T1: OffsetAndMetadata(6, "checkpoint")})
    assert c.committed(T1, metadata=True) == OffsetAndMetadata(6, "checkpoint", -1)
    c.close()
    broker.close()

    with reopen() as b2:
        c = b2.consumer("g", fast)
        c.subscribe(["t"])
        got = []
        deadline = time.monotonic() + 10
        while len(got) < 10 and time.monotonic() < deadline:
            got += c.poll(200)
        assert sorted((r.partition, r.offset) for r in got) == \
            [(0, o) for o in range(4, 10)] + [(1, o) for o in range(6, 10)]
        c.close()


def test_manual_assignment_commits_and_resumes_too(broker, topic):
    c = broker.consumer("manual", {"enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([T0])
    c.poll(1000, max_records=3)
    c.commit()
    c.close()
    c = broker.consumer("manual", {"auto.offset.reset": "earliest"})
    c.assign([T0])
    assert c.position(T0) == 3
    assert c.poll(1000)[0].offset == 3
    c.close()


def test_auto_commit_on_poll_and_on_close(broker, topic, fast):
    c = broker.consumer("auto", {**fast, "auto.commit.interval.ms": 50})
    c.assign([T0])
    assert len(c.poll(1000, max_records=4)) == 4
    assert c.committed(T0) is None               # not yet due
    time.sleep(0.08)
    c.poll(0, max_records=2)                     # commits the 4 already returned, then fetches 2
    assert c.committed(T0) == 4
    c.close()
    assert broker.consumer("auto").committed(T0) == 6     # committed on close

    off = broker.consumer("off", {**fast, "enable.auto.commit": False})
    off.assign([T0])
    off.poll(1000)
    off.close()
    assert broker.consumer("off").committed(T0) is None


def test_auto_offset_reset_each_value(broker, topic, produce):
    earliest = broker.consumer("e", {"auto.offset.reset": "earliest"})
    earliest.assign([T0])
    assert earliest.poll(1000)[0].offset == 0

    latest = broker.consumer("l", {"auto.offset.reset": "latest"})
    latest.assign([T0])
    assert latest.poll(50) == []
    produce("t", 0, ["fresh"])
    assert [r.value for r in latest.poll(1000)] == [b"fresh"]

    none = broker.consumer("n", {"auto.offset.reset": "none"})
    none.assign([T0, T1])
    with pytest.raises(NoOffsetForPartitionError, match=r"no committed offset for t-0, t-1 and "
                                                        r"auto.offset.reset is 'none'") as info:
        none.poll(0)
    assert info.value.partitions == [T0, T1]
    with pytest.raises(NoOffsetForPartitionError):
        none.position(T0)
    none.commit({T0: 7, T1: 2})
    assert [r.offset for r in none.poll(1000) if r.partition == 0][0] == 7
    for c in (earliest, latest, none):
        c.close()


def test_two_groups_read_one_topic_independently(broker, topic, fast):
    a = broker.consumer("A", {**fast, "enable.auto.commit": False})
    b = broker.consumer("B", {**fast, "enable.auto.commit": False})
    a.assign([T0])
    b.assign([T0])
    assert [r.offset for r in a.poll(1000, max_records=5)] == list(range(5))
    assert [r.offset for r in b.poll(1000, max_records=2)] == [0, 1]
    a.commit()
    b.commit()
    assert (a.committed(T0), b.committed(T0)) == (5, 2)
    a.close()
    b.close()
    a, b = broker.consumer("A"), broker.consumer("B")
    a.assign([T0])
    b.assign([T0])
    assert (a.poll(1000)[0].offset, b.poll(1000)[0].offset) == (5, 2)


def test_commit_errors(broker, topic, workers, until):
    c = broker.consumer("errs", {"enable.auto.commit": False})
    c.assign([T0])
    with pytest.raises(UnknownTopicOrPartitionError, match="no such partition.*nope-0"):
        c.commit({("nope", 0): 1})
    with pytest.raises(ValueError, match="must be >= 0"):
        c.commit({T0: -3})
    with pytest.raises(TypeError, match="must be an int or OffsetAndMetadata"):
        c.commit({T0: "3"})
    assert c.committed([T0, T1]) == {T0: None, T1: None}
    # A group with live subscribed members refuses a manual-assignment commit.
    w = workers("errs", ["t"])
    until(lambda: w.assignment(), what="the subscribed member's assignment")
    with pytest.raises(CommitFailedError, match="has active members"):
        c.commit({T0: 1})
    c.close()
