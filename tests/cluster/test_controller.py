"""The controller against a real ZooKeeper: election and failover of the controller itself,
topic creation, and its reaction to brokers dying, restarting and shutting down. Brokers here are
ZooKeeper registrations (their own sessions); what the controller tells them is collected."""
import threading
import time
import uuid

import pytest

from klog.cluster.controller import Controller
from klog.cluster.state import NO_LEADER
from klog.cluster.zkstore import ClusterStore, NotControllerError


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Inbox:
    """Decisions sent to brokers, by broker id."""

    def __init__(self):
        self.lock = threading.Lock()
        self.got = {}

    def __call__(self, broker, decision):
        with self.lock:
            self.got.setdefault(broker, []).append(decision)

    def last(self, broker, topic, partition):
        with self.lock:
            for d in reversed(self.got.get(broker, [])):
                if (d.topic, d.partition) == (topic, partition):
                    return d
        return None


class Cluster:
    def __init__(self, connect):
        self.connect = connect
        self.stores = {}
        self.controllers = {}
        self.inbox = Inbox()

    def broker(self, b, *, controller=False):
        store = ClusterStore(self.connect).start()
        store.register_broker(b, "127.0.0.1", 9000 + b)
        self.stores[b] = store
        if controller:
            self.controllers[b] = Controller(store, b, self.inbox).start()
        return store

    def kill(self, b):
        c = self.controllers.pop(b, None)
        if c:
            c.stop()
        self.stores.pop(b).close()

    def controller(self):
        wait_for(lambda: any(c.is_controller for c in self.controllers.values()),
                 what="a controller")
        return next(c for c in self.controllers.values() if c.is_controller)

    def call(self, fn, *args):
        result = self.controller().submit(fn, *args).get(timeout=60)
        if isinstance(result, Exception):
            raise result
        return result

    def close(self):
        for b in list(self.stores):
            self.kill(b)


@pytest.fixture
def cluster(zookeeper):
    c = Cluster(f"{zookeeper.address}/t{uuid.uuid4().hex[:12]}")
    yield c
    c.close()


def test_one_controller_and_failover_with_a_new_epoch(cluster):
    cluster.broker(1, controller=True)
    cluster.broker(2, controller=True)
    first = cluster.controller()
    epoch = first.fence.epoch
    other = 3 - first.broker_id
    cluster.kill(first.broker_id)
    wait_for(lambda: cluster.controllers[other].is_controller, what="failover")
    assert cluster.controllers[other].fence.epoch == epoch + 1


def test_create_topic_spreads_replicas_and_tells_each_replica(cluster):
    for b in (1, 2, 3):
        cluster.broker(b, controller=(b == 1))
    c = cluster.controller()
    cluster.call(c.create_topic, "orders", 3, 3)
    store = cluster.stores[1]
    assignment = store.topic("orders").partitions
    assert sorted(assignment) == [0, 1, 2]
    assert sorted(r[0] for r in assignment.values()) == [1, 2, 3]     # leaders spread
    live = {b: e for b, (e, _) in store.live_brokers().items()}
    for p, replicas in assignment.items():
        state = store.partition_state("orders", p)
        assert (state.leader, state.leader_epoch, state.isr) == (replicas[0], 0, replicas)
        for b in replicas:
            d = cluster.inbox.last(b, "orders", p)
            assert d.state == state and d.broker_epoch == live[b] and d.replicas == replicas


def test_leader_death_moves_leadership_within_isr(cluster):
    for b in (1, 2, 3):
        cluster.broker(b, controller=(b == 1))
    c = cluster.controller()
    cluster.call(c.create_topic, "t", 1, 3, {0: (2, 3, 1)})
    cluster.kill(2)
    store = cluster.stores[1]
    wait_for(lambda: store.partition_state("t", 0).leader == 3, what="new leader")
    state = store.partition_state("t", 0)
    assert (state.leader_epoch, state.isr) == (1, (3, 1))
    wait_for(lambda: cluster.inbox.last(3, "t", 0).state == state, what="broker 3 told")
    assert cluster.inbox.last(2, "t", 0).state.leader_epoch == 0      # the dead one was not


def test_last_isr_member_dies_offline_until_it_returns(cluster):
    for b in (1, 2):
        cluster.broker(b, controller=(b == 1))
    c = cluster.controller()
    cluster.call(c.create_topic, "t", 1, 1, {0: (2,)})
    cluster.kill(2)
    store = cluster.stores[1]
    wait_for(lambda: store.partition_state("t", 0).leader == NO_LEADER, what="offline")
    assert store.partition_state("t", 0).isr == (2,)
    cluster.broker(2)
    wait_for(lambda: store.partition_state("t", 0).leader == 2, what="back online")
    assert store.partition_state("t", 0).leader_epoch == 2


def test_restarted_broker_loses_leadership_and_gets_decisions_for_its_new_epoch(cluster):
    for b in (1, 2, 3):
        cluster.broker(b, controller=(b == 1))
    c = cluster.controller()
    cluster.call(c.create_topic, "t", 1, 3, {0: (2, 3, 1)})
    old_epoch = cluster.stores[2].live_brokers()[2][0]
    cluster.kill(2)
    cluster.broker(2)                        # back quickly, under a new broker epoch
    store = cluster.stores[1]
    new_epoch = store.live_brokers()[2][0]
    assert new_epoch > old_epoch
    wait_for(lambda: store.partition_state("t", 0).leader == 3, what="leadership moved")
    wait_for(lambda: (cluster.inbox.last(2, "t", 0) or None)
             and cluster.inbox.last(2, "t", 0).broker_epoch == new_epoch,
             what="decision for the new registration")
    assert 2 not in store.partition_state("t", 0).isr


def test_controlled_shutdown_then_preferred_leader_election(cluster):
    for b in (1, 2, 3):
        cluster.broker(b, controller=(b == 1))
    c = cluster.controller()
    cluster.call(c.create_topic, "t", 2, 3, {0: (2, 3, 1), 1: (3, 1, 2)})
    assert cluster.call(c.controlled_shutdown, 2) == 0
    store = cluster.stores[1]
    s0 = store.partition_state("t", 0)
    assert s0.leader == 3 and 2 not in s0.isr
    assert 2 not in store.partition_state("t", 1).isr
    # broker 2 stays (it did not actually stop): once back in the ISR, leadership returns.
    store.write_isr_as_leader("t", 0, s0.with_isr((3, 1, 2)))
    assert cluster.call(c.elect_preferred_leaders) == 1
    assert store.partition_state("t", 0).leader == 2


def test_deposed_controller_is_fenced_and_steps_down(cluster):
    cluster.broker(1, controller=True)
    c = cluster.controller()
    store = cluster.stores[1]
    epoch = c.fence.epoch
    # Another controller was elected behind its back: the epoch moved on in ZooKeeper.
    store.client.set(f"{store.chroot}/controller_epoch", b"41")
    with pytest.raises(NotControllerError):
        cluster.call(c.create_topic, "t", 1, 1)
    assert store.topics() == []
    # It freed /controller, so an election happens again, at an epoch above the usurper's.
    wait_for(lambda: c.is_controller and c.fence.epoch == 42, what="a new election")
    assert epoch < 42
    cluster.call(c.create_topic, "t", 1, 1)
    assert store.topics() == ["t"]
