"""A cluster broker holds only the partitions it is a replica of: the Broker's ``local``
partitions (created, reopened, grown, deleted), and the offsets store replays only those."""
import os
import uuid

import pytest

import klog
from klog.errors import UnknownTopicOrPartitionError
from klog.group.offsets import OFFSETS_TOPIC


def held(path, topic):
    return sorted(int(d.rsplit("-", 1)[1]) for d in os.listdir(path)
                  if d.rsplit("-", 1)[0] == topic)


def test_only_local_partitions_get_directories_across_reopen_and_growth(tmp_path):
    topic_id = uuid.uuid4()
    with klog.open(tmp_path) as b:
        b.create_topic("t", 3, topic_id=topic_id, local=[1])
        assert held(tmp_path, "t") == [1]
        assert b.describe_topic("t").topic_id == str(topic_id)
        with pytest.raises(UnknownTopicOrPartitionError, match="no replica on this broker"):
            b.partition("t", 0)
        b.partition("t", 1).append([b"v"], [None], 0)
    with klog.open(tmp_path) as b:                      # reopened: still only partition 1
        assert b.local_partitions("t") == [1] and b.partition_count("t") == 3
        assert b.partition("t", 1).log_end_offset == 1
        assert not b.hosts_partition("t", 2)
        b.add_partitions("t", 5, local=[4])
        assert held(tmp_path, "t") == [1, 4] and b.local_partitions("t") == [1, 4]
        b.delete_topic("t")
        assert held(tmp_path, "t") == []
        b.create_topic("s", 2)                          # a single node's topic: all, as before
        assert b.local_partitions("s") is None and held(tmp_path, "s") == [0, 1]


def test_the_offsets_store_replays_only_the_partitions_held(tmp_path):
    with klog.open(tmp_path) as b:
        b.create_topic(OFFSETS_TOPIC, 4, {"cleanup.policy": "compact"}, local=[2])
        gc = b.group_coordinator
        assert gc is not None
    with klog.open(tmp_path) as b:                      # replays at open: no error
        assert b.group_coordinator is not None
        assert held(tmp_path, OFFSETS_TOPIC) == [2]      # opened by the replay, no others


def test_partitions_moved_here_and_away_get_and_lose_their_directories(tmp_path):
    """A reassignment gives a broker a partition of a topic it holds (an empty directory) and
    takes one away (closed, directory deleted); both survive a reopen."""
    with klog.open(tmp_path) as b:
        b.create_topic("t", 3, topic_id=uuid.uuid4(), local=[1])
        b.partition("t", 1).append([b"v"], [None], 0)
        b.hold_partitions("t", [0, 1])
        assert held(tmp_path, "t") == [0, 1] and b.local_partitions("t") == [0, 1]
        assert b.partition("t", 0).log_end_offset == 0
        b.release_partitions("t", [1])
        assert held(tmp_path, "t") == [0] and b.local_partitions("t") == [0]
        with pytest.raises(UnknownTopicOrPartitionError, match="no replica on this broker"):
            b.partition("t", 1)
        assert not any(d.endswith(".deleted") for d in os.listdir(tmp_path))
    with klog.open(tmp_path) as b:
        assert b.local_partitions("t") == [0] and held(tmp_path, "t") == [0]
        b.hold_partitions("t", [1])                     # back again: starts empty
        assert b.partition("t", 1).log_end_offset == 0


def test_a_crash_while_releasing_leaves_nothing_behind(tmp_path, monkeypatch):
    """The directory is renamed before the metadata is saved: a crash in between (the save
    fails here) leaves a ``.deleted`` directory that the next open removes, and the partition
    (still named in the metadata) opens empty."""
    with klog.open(tmp_path) as b:
        b.create_topic("t", 2, topic_id=uuid.uuid4(), local=[0, 1])
        b.partition("t", 1).append([b"v"], [None], 0)

        def crash(topics):
            raise OSError("simulated crash")
        monkeypatch.setattr(b._store, "save", crash)
        with pytest.raises(OSError, match="simulated crash"):
            b.release_partitions("t", [1])
        monkeypatch.undo()
    assert any(d.endswith(".deleted") for d in os.listdir(tmp_path))
    with klog.open(tmp_path) as b:
        assert not any(d.endswith(".deleted") for d in os.listdir(tmp_path))
        assert b.local_partitions("t") == [0, 1] and b.partition("t", 1).log_end_offset == 0
