"""How a broker learns a controller decision (klog.cluster.replica_manager): the state comes with
the watch, so applying it reads ZooKeeper once (the assignment, for the replica set and the
topic id), not twice; and a topic deleted and created again is still told apart (the guard of
that shortcut). A real ZooKeeper, a real Broker and ReplicaManager in-process, the real
Controller."""
import threading
import uuid

import pytest

import klog
from klog.cluster.controller import Controller
from klog.cluster.replica import Role
from klog.cluster.replica_manager import ReplicaManager
from klog.cluster.zkstore import ClusterStore

from .test_controller import wait_for


class Reads:
    """ZooKeeper gets of the replica manager's thread, by path."""

    def __init__(self, client, thread_name):
        self.paths = []
        self._lock = threading.Lock()
        real = client.get

        def get(path, *args, **kwargs):
            if threading.current_thread().name == thread_name:
                with self._lock:
                    self.paths.append(path)
            return real(path, *args, **kwargs)
        client.get = get

    def take(self):
        with self._lock:
            out, self.paths = self.paths, []
        return out


@pytest.fixture
def broker_1(zookeeper, tmp_path):
    """Broker 1 (its replica manager) and broker 2 (a registration) of a cluster whose
    controller runs on a third session."""
    connect = f"{zookeeper.address}/t{uuid.uuid4().hex[:12]}"
    stores = [ClusterStore(connect).start() for _ in range(3)]
    broker = klog.open(tmp_path / "b1")
    manager = ReplicaManager(broker, stores[0], 1).start()
    manager.broker_epoch = stores[0].register_broker(1, "127.0.0.1", 1)
    stores[1].register_broker(2, "127.0.0.1", 2)
    controller = Controller(stores[2], 3, lambda b, d: None).start()
    wait_for(lambda: controller.is_controller, what="a controller")
    try:
        yield manager, controller
    finally:
        controller.stop()
        manager.stop()
        broker.close()
        for s in stores:
            s.close()


def call(controller, fn, *args):
    result = controller.submit(fn, *args).get(timeout=60)
    if isinstance(result, Exception):
        raise result
    return result


def test_a_decision_is_applied_from_the_watch_with_one_read(broker_1):
    manager, controller = broker_1
    store = manager.store
    reads = Reads(store.client, manager._thread.name)
    call(controller, controller.create_topic, "t", 1, 2, {0: (1, 2)})
    wait_for(lambda: manager.get("t", 0) is not None
             and manager.get("t", 0).replica.role is Role.LEADER, what="broker 1 leads t-0")
    reads.take()
    assert call(controller, controller.controlled_shutdown, 1) == 0
    wait_for(lambda: manager.get("t", 0).replica.role is Role.FOLLOWER, what="broker 1 follows")
    assert manager.get("t", 0).replica.leader_epoch == 1
    assert reads.take() == [store._path("brokers", "topics", "t")]     # the assignment only


def test_a_recreated_topic_is_told_apart(broker_1):
    manager, controller = broker_1
    call(controller, controller.create_topic, "t", 1, 2, {0: (1, 2)})
    wait_for(lambda: manager.get("t", 0) is not None
             and manager.get("t", 0).replica.role is Role.LEADER, what="broker 1 leads t-0")
    first = manager.topic_ids["t"]
    call(controller, controller.delete_topic, "t")
    call(controller, controller.create_topic, "t", 1, 2, {0: (2, 1)})
    wait_for(lambda: manager.topic_ids.get("t") not in (None, first)
             and manager.get("t", 0) is not None
             and manager.get("t", 0).replica.role is Role.FOLLOWER,
             what="broker 1 follows the new t-0")
    assert manager.get("t", 0).replica.leader_id == 2
