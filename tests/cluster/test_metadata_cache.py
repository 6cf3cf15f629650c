"""The broker's MetadataCache (klog.cluster.metadata_cache) against a real ZooKeeper: after each
change settles (creations, deletions, a re-creation under a new topic id, leader changes, a
broker's death, a lost session) its answer equals ``read_view``'s, and no answer goes back in
a partition's leader epoch."""
import time
import uuid

import pytest
from kazoo.client import KazooClient

from klog.cluster.metadata_cache import MetadataCache
from klog.cluster.metadata_view import read_view
from klog.cluster.state import LeaderAndIsr
from klog.cluster.zkstore import ClusterStore
from klog.protocol.errors import ErrorCode as EC

DEADLINE_S = 30


@pytest.fixture
def connect(zookeeper):
    return f"{zookeeper.address}/c{uuid.uuid4().hex[:12]}"


@pytest.fixture
def writer(connect):
    with ClusterStore(connect) as s:
        yield s


@pytest.fixture
def cache(connect, writer):
    with ClusterStore(connect, session_timeout_ms=4000) as s:
        c = MetadataCache(s, 1).start()
        try:
            yield c
        finally:
            c.stop()


class EpochWatch:
    """Every answer seen, checked: a partition's leader epoch (per topic id) never goes back."""

    def __init__(self):
        self.epochs = {}

    def check(self, view):
        for t in view.topics:
            for p in t["partitions"]:
                key = (t["topic_id"], p["partition_index"])
                assert p["leader_epoch"] >= self.epochs.get(key, -1), (t["name"], p)
                self.epochs[key] = p["leader_epoch"]


def settled(cache, store, seen=None):
    """Poll until the cache is loaded and answers as ZooKeeper does now; that answer."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        want = read_view(store, None)
        got = cache.view(None) if cache.loaded else None
        if got is not None and seen is not None:
            seen.check(got)
        if got == want:
            return got
        assert time.monotonic() < deadline, f"cache {got} != ZooKeeper {want}"
        time.sleep(0.02)


def states(fence, leaders, epoch=0):
    return {p: LeaderAndIsr(b, epoch, (b,), fence.epoch) for p, b in enumerate(leaders)}


def test_the_cache_follows_creations_deletions_and_recreation(cache, writer):
    seen = EpochWatch()
    fence = writer.elect_controller(1)
    writer.register_broker(1, "127.0.0.1", 9092)
    writer.create_topic("a", {0: (1,), 1: (1,)}, states(fence, [1, 1]), fence)
    view = settled(cache, writer, seen)
    assert [t["name"] for t in view.topics] == ["a"] and view.controller_id == 1

    writer.create_topic("b", {0: (1,)}, states(fence, [1], epoch=3), fence)
    view = settled(cache, writer, seen)
    assert [t["name"] for t in view.topics] == ["a", "b"]
    old_id = view.topics[1]["topic_id"]

    writer.delete_topic("b", fence, retired_epoch=3)
    view = settled(cache, writer, seen)
    assert [t["name"] for t in view.topics] == ["a"]
    assert cache.view(["b"]).topics[0]["error_code"] == EC.UNKNOWN_TOPIC_OR_PARTITION

    writer.create_topic("b", {0: (1,), 1: (1,), 2: (1,)}, states(fence, [1, 1, 1], 4), fence)
    view = settled(cache, writer, seen)
    b = view.topics[1]
    assert b["topic_id"] != old_id and len(b["partitions"]) == 3      # another incarnation


def test_the_cache_follows_leader_changes_and_broker_deaths(cache, writer, connect):
    seen = EpochWatch()
    fence = writer.elect_controller(1)
    writer.register_broker(1, "127.0.0.1", 9092)
    with ClusterStore(connect) as two:                  # broker 2's session
        two.register_broker(2, "127.0.0.1", 9093)
        writer.create_topic("a", {0: (1, 2), 1: (2, 1)},
                            {0: LeaderAndIsr(1, 0, (1, 2), fence.epoch),
                             1: LeaderAndIsr(2, 0, (2, 1), fence.epoch)}, fence)
        view = settled(cache, writer, seen)
        assert [b["node_id"] for b in view.brokers] == [1, 2]

        held = writer.partition_state("a", 0)
        writer.write_state_as_controller("a", 0, held.with_leader(2, (2, 1), fence.epoch), fence)
        view = settled(cache, writer, seen)
        assert [(p["leader_id"], p["leader_epoch"]) for p in view.topics[0]["partitions"]] == [
            (2, 1), (2, 0)]
    # broker 2's session closed: its ephemeral registration is gone
    view = settled(cache, writer, seen)
    assert [b["node_id"] for b in view.brokers] == [1]
    assert [(p["leader_id"], p["offline_replicas"], p["error_code"])
            for p in view.topics[0]["partitions"]] == [
        (-1, [2], EC.LEADER_NOT_AVAILABLE), (-1, [2], EC.LEADER_NOT_AVAILABLE)]

    # a state written after its topic (a creation finished later) is picked up too
    writer.client.delete(writer.state_path("a", 1))
    settled(cache, writer)
    writer.client.create(writer.state_path("a", 1),
                         b'{"leader": 1, "leader_epoch": 7, "isr": [1], "controller_epoch": 1}')
    view = settled(cache, writer, seen)
    assert view.topics[0]["partitions"][1]["leader_epoch"] == 7


def expire_session(store):
    """ZooKeeper's own way: another client with the session's id and password closes it."""
    session_id, password = store.client.client_id
    other = KazooClient(hosts=store.hosts, client_id=(session_id, password))
    other.start()
    other.stop()
    other.close()


def test_a_lost_session_is_resynced_and_never_goes_back(cache, writer):
    seen = EpochWatch()
    fence = writer.elect_controller(1)
    writer.register_broker(1, "127.0.0.1", 9092)
    writer.create_topic("a", {0: (1,)}, states(fence, [1]), fence)
    writer.create_topic("gone", {0: (1,)}, states(fence, [1]), fence)
    settled(cache, writer, seen)
    syncs = cache.syncs

    expire_session(cache.store)
    deadline = time.monotonic() + DEADLINE_S
    while cache.loaded:                 # kazoo says LOST: the cache stops answering alone
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # changes its watches, lost with the session, will never report
    held = writer.partition_state("a", 0)
    writer.write_state_as_controller("a", 0, held.with_leader(1, (1,), fence.epoch), fence)
    writer.delete_topic("gone", fence, retired_epoch=0)
    writer.create_topic("new", {0: (1,)}, states(fence, [1], 5), fence)

    view = settled(cache, writer, seen)
    assert cache.syncs > syncs
    assert [t["name"] for t in view.topics] == ["a", "new"]
    assert view.topics[0]["partitions"][0]["leader_epoch"] == 1
    # and the watches of the new session work
    held = writer.partition_state("a", 0)
    writer.write_state_as_controller("a", 0, held.with_leader(1, (1,), fence.epoch), fence)
    view = settled(cache, writer, seen)
    assert view.topics[0]["partitions"][0]["leader_epoch"] == 2


def test_a_read_served_is_merged_and_an_older_one_never_wins(cache, writer):
    fence = writer.elect_controller(1)
    writer.register_broker(1, "127.0.0.1", 9092)
    writer.create_topic("a", {0: (1,)}, states(fence, [1]), fence)
    held = writer.partition_state("a", 0)
    writer.write_state_as_controller("a", 0, held.with_leader(1, (1,), fence.epoch), fence)
    settled(cache, writer)
    live, controller = writer.live_brokers(), writer.controller()
    # A read that started before the leader change and is merged after it (its version older)
    # answers with what the cache holds: epoch 1, not the read's 0.
    older = {("a", 0): held}
    parts = cache.merge(live, controller, {"a": writer.topic("a")}, older)
    assert parts[3][("a", 0)].leader_epoch == 1
    assert cache.view(["a"]).topics[0]["partitions"][0]["leader_epoch"] == 1
