"""klog's cluster state in a real ZooKeeper (Debian's package, started by the tests): the
compare-and-set and fencing rules replication relies on, and wrong input from ZooKeeper."""
import json
import subprocess
import sys
import time
import uuid

import pytest
from kazoo.exceptions import NodeExistsError

from klog.cluster.state import LeaderAndIsr
from klog.cluster.zkstore import (ClusterStore, CorruptClusterStateError, NodeIdTakenError,
                                  NotControllerError, ZooKeeperUnavailableError, parse_connect)

from .zookeeper import free_port


@pytest.fixture
def connect(zookeeper):
    return f"{zookeeper.address}/t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(connect):
    with ClusterStore(connect) as s:
        yield s


def test_parse_connect():
    assert parse_connect("a:1,b:2/kafka/x") == ("a:1,b:2", "/kafka/x")
    assert parse_connect("a:2181") == ("a:2181", "/klog")
    for bad in ("", "a", "a:x", "a:1/", ":1", "a:1//x", " a:1", "a:70000"):
        with pytest.raises(ValueError, match="zookeeper.connect"):
            parse_connect(bad)


def test_unreachable_zookeeper_is_a_clear_error():
    store = ClusterStore(f"127.0.0.1:{free_port()}", connect_timeout_s=1)
    with pytest.raises(ZooKeeperUnavailableError, match="did not answer within 1 s"):
        store.start()


def test_cluster_id_is_created_once(connect):
    with ClusterStore(connect) as a, ClusterStore(connect) as b:
        assert a.cluster_id() == b.cluster_id()
        assert len(a.cluster_id()) == 22


def test_broker_registration_is_ephemeral_and_unique(connect):
    with ClusterStore(connect) as a, ClusterStore(connect) as b:
        epoch1 = a.register_broker(1, "127.0.0.1", 9092)
        with pytest.raises(NodeIdTakenError, match="node id 1 is already registered"):
            b.register_broker(1, "127.0.0.1", 9093)
        b.register_broker(2, "127.0.0.1", 9093)
        assert {k: v[0] for k, v in a.live_brokers().items()} == {1: epoch1, 2: b.live_brokers()[2][0]}
    with ClusterStore(connect) as c:
        assert c.live_brokers() == {}                    # gone with the sessions
        assert c.register_broker(1, "127.0.0.1", 9092) > epoch1   # a newer broker epoch


def test_one_controller_and_epochs_increase(connect):
    with ClusterStore(connect) as a, ClusterStore(connect) as b:
        first = a.elect_controller(1)
        assert first.epoch == 1
        assert b.elect_controller(2) is None
        assert b.controller() == 1
    with ClusterStore(connect) as c:
        assert c.controller() is None
        assert c.elect_controller(3).epoch == 2


def new_topic(store, fence, name="orders"):
    states = {p: LeaderAndIsr(1, 0, (1, 2, 3), fence.epoch) for p in range(2)}
    return store.create_topic(name, {0: (1, 2, 3), 1: (2, 3, 1)}, states, fence)


def test_topic_and_partition_state_in_kafkas_json(store):
    fence = store.elect_controller(1)
    topic_id = new_topic(store, fence)
    assert store.topics() == ["orders"]
    t = store.topic("orders")
    assert t.topic_id == topic_id and t.partitions == {0: (1, 2, 3), 1: (2, 3, 1)}
    raw, _ = store.client.get(f"{store.chroot}/brokers/topics/orders/partitions/0/state")
    assert json.loads(raw) == {"controller_epoch": 1, "leader": 1, "version": 1,
                               "leader_epoch": 0, "isr": [1, 2, 3]}
    with pytest.raises(NodeExistsError):
        new_topic(store, fence)


def test_leader_isr_write_is_compare_and_set(store):
    fence = store.elect_controller(1)
    new_topic(store, fence)
    read = store.partition_state("orders", 0)
    shrunk = store.write_isr_as_leader("orders", 0, read.with_isr((1, 2)))
    assert shrunk.isr == (1, 2) and shrunk.version == read.version + 1
    # the same write retried (its answer was lost) is recognised as done
    assert store.write_isr_as_leader("orders", 0, read.with_isr((1, 2))) == shrunk
    # a stale leader's different change fails
    assert store.write_isr_as_leader("orders", 0, read.with_isr((1,))) is None
    assert store.partition_state("orders", 0).isr == (1, 2)


def test_controller_writes_are_fenced_by_controller_epoch(connect):
    with ClusterStore(connect) as old:
        fence = old.elect_controller(1)
        new_topic(old, fence)
        state = old.partition_state("orders", 0)
        old.client.delete(f"{old.chroot}/controller")      # its session "expired"
        with ClusterStore(connect) as new:
            assert new.elect_controller(2).epoch == 2
            with pytest.raises(NotControllerError, match="controller epoch 1 was fenced"):
                old.write_state_as_controller("orders", 0, state.with_leader(2, (2, 3), 1), fence)
            assert new.partition_state("orders", 0) == state


def test_controller_write_on_a_moved_state_returns_none(store):
    fence = store.elect_controller(1)
    new_topic(store, fence)
    read = store.partition_state("orders", 0)
    written = store.write_state_as_controller("orders", 0, read.with_leader(2, (2, 3), 1), fence)
    assert (written.leader, written.leader_epoch, written.version) == (2, 1, read.version + 1)
    assert store.write_state_as_controller("orders", 0, read.with_leader(3, (3,), 1), fence) is None


@pytest.mark.parametrize("path,data,message", [
    ("brokers/topics/orders/partitions/0/state", b"\xff\xfe", "not JSON"),
    ("brokers/topics/orders/partitions/0/state", b'{"leader": 1}', "bad partition state"),
    ("brokers/topics/orders/partitions/0/state",
     b'{"leader":1,"leader_epoch":0,"isr":[],"controller_epoch":1}', "bad partition state"),
    ("brokers/topics/orders", b'{"partitions": {"0": [1]}}', "bad topic assignment"),
    ("brokers/topics/orders", b'{"topic_id": "AAAAAAAAAAAAAAAAAAAAAA", "partitions": {"0": []}}',
     "no replicas"),
    ("brokers/topics/orders", b'{"topic_id": "AAAAAAAAAAAAAAAAAAAAAA", "partitions": {"0": [1]}, '
     b'"adding_replicas": {"0": "two"}}', "bad topic assignment"),
    ("brokers/topics/orders", b'{"topic_id": "AAAAAAAAAAAAAAAAAAAAAA", "partitions": {"0": [1]}, '
     b'"removing_replicas": [1]}', "bad topic assignment"),
    ("controller_epoch", b"two", "is not an epoch"),
])
def test_corrupt_znodes_are_named_errors(store, path, data, message):
    fence = store.elect_controller(1)
    new_topic(store, fence)
    store.client.delete(f"{store.chroot}/controller")
    store.client.set(f"{store.chroot}/{path}", data)
    with pytest.raises(CorruptClusterStateError, match=message) as info:
        store.topic("orders")
        store.partition_state("orders", 0)
        store.elect_controller(1)
    assert f"{store.chroot}/{path}" in str(info.value)


CHILD = """
import sys, time
from klog.cluster.zkstore import ClusterStore
s = ClusterStore(sys.argv[1], session_timeout_ms=2000).start()
s.register_broker(7, "127.0.0.1", 9092)
print("registered", flush=True)
time.sleep(600)
"""


def test_registration_of_a_killed_broker_expires_with_its_session(connect):
    child = subprocess.Popen([sys.executable, "-c", CHILD, connect], stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"registered\n"
        with ClusterStore(connect) as watcher:
            assert 7 in watcher.live_brokers()
            child.kill()                      # no goodbye: ZooKeeper expires the session
            child.wait()
            killed = time.monotonic()
            while 7 in watcher.live_brokers() and time.monotonic() - killed < 30:
                time.sleep(0.1)
            assert 7 not in watcher.live_brokers()
            assert time.monotonic() - killed >= 1.0      # by expiry, not by a close
    finally:
        child.kill()
        child.wait()
