"""The controller's reassignment writes (klog.cluster.reassign_driver) on a real ZooKeeper: the
assignment (Kafka's ``adding_replicas`` / ``removing_replicas``) and the partition state land
together, a deposed controller changes nothing, a concurrent ISR change makes it read again,
and a new controller resumes what it finds."""
import json
import threading
import uuid
from types import SimpleNamespace

import pytest

from klog.cluster.reassign_driver import ReassignmentDriver
from klog.cluster.reassignment import PartitionAssignment
from klog.cluster.state import LeaderAndIsr
from klog.cluster.zkstore import ClusterStore, NotControllerError
from klog.protocol.errors import ErrorCode as EC


@pytest.fixture
def connect(zookeeper):
    return f"{zookeeper.address}/t{uuid.uuid4().hex[:12]}"


def controller(store, fence, live=(1, 2, 3, 4)):
    """What the driver uses of a Controller: its store, fence, live brokers, event queue."""
    submitted = []
    c = SimpleNamespace(store=store, fence=fence, _stopped=threading.Event(),
                        _live=lambda: {b: 0 for b in live}, _require_controller=lambda: None,
                        submit=lambda fn, *args: submitted.append((fn, args)))
    c.submitted = submitted
    return c


def topic(store, fence):
    store.ensure_admin_paths()
    states = {0: LeaderAndIsr(1, 0, (1, 2, 3), fence.epoch)}
    store.create_topic("orders", {0: (1, 2, 3)}, states, fence)


def test_a_move_writes_assignment_and_state_together_in_kafkas_json(connect):
    with ClusterStore(connect) as store:
        fence = store.elect_controller(1)
        topic(store, fence)
        driver = ReassignmentDriver(controller(store, fence))
        assert driver.alter({("orders", 0): (2, 3, 4), ("orders", 7): (1,),
                             ("gone", 0): (1,)}) == {
            ("orders", 0): (EC.NONE, None),
            ("orders", 7): (EC.UNKNOWN_TOPIC_OR_PARTITION,
                            "The partition orders-7 does not exist."),
            ("gone", 0): (EC.UNKNOWN_TOPIC_OR_PARTITION, "The partition gone-0 does not exist.")}
        raw = json.loads(store.client.get(f"{store.chroot}/brokers/topics/orders")[0])
        assert (raw["partitions"], raw["adding_replicas"], raw["removing_replicas"]) == \
            ({"0": [2, 3, 4, 1]}, {"0": [4]}, {"0": [1]})
        state = store.partition_state("orders", 0)
        assert (state.leader, state.leader_epoch, state.isr) == (1, 1, (1, 2, 3))
        assert driver.list() == {("orders", 0): PartitionAssignment((2, 3, 4, 1), (4,), (1,))}

        # Not yet: 4 is not in the ISR. Then the leader adds it; the watch's check completes.
        driver.check("orders", 0)
        assert store.topic("orders").partitions[0] == (2, 3, 4, 1)
        store.write_isr_as_leader("orders", 0, state.with_isr((1, 2, 3, 4)))
        driver.check("orders", 0)
        t = store.topic("orders")
        assert (t.partitions, t.adding, t.removing) == ({0: (2, 3, 4)}, {}, {})
        state = store.partition_state("orders", 0)
        assert (state.leader, state.leader_epoch, state.isr) == (2, 2, (2, 3, 4))
        assert driver.list() == {}
        assert driver.alter({("orders", 0): None}) == {("orders", 0): (
            EC.NO_REASSIGNMENT_IN_PROGRESS, "no partition reassignment is in progress")}


def test_a_deposed_controller_changes_nothing(connect):
    with ClusterStore(connect) as old:
        fence = old.elect_controller(1)
        topic(old, fence)
        old.client.delete(f"{old.chroot}/controller")      # its session "expired"
        with ClusterStore(connect) as new:
            assert new.elect_controller(2).epoch == 2
            before = (new.topic("orders"), new.partition_state("orders", 0))
            with pytest.raises(NotControllerError, match="fenced"):
                ReassignmentDriver(controller(old, fence)).alter({("orders", 0): (2, 3, 4)})
            assert (new.topic("orders"), new.partition_state("orders", 0)) == before


def test_an_isr_change_in_between_makes_it_read_again(connect, monkeypatch):
    with ClusterStore(connect) as store:
        fence = store.elect_controller(1)
        topic(store, fence)
        driver = ReassignmentDriver(controller(store, fence))
        read = store.partition_state
        raced = []

        def racing_read(t, p):
            state = read(t, p)
            if not raced:        # the leader shrinks the ISR right after the controller read
                raced.append(store.write_isr_as_leader(t, p, state.with_isr((1, 2))))
            return state
        monkeypatch.setattr(store, "partition_state", racing_read)
        assert driver.alter({("orders", 0): (2, 3, 4)}) == {("orders", 0): (EC.NONE, None)}
        state = read("orders", 0)
        assert raced[0] is not None and state.isr == (1, 2) and state.leader_epoch == 1


def test_a_new_controller_resumes_the_moves_it_finds(connect):
    with ClusterStore(connect) as store:
        fence = store.elect_controller(1)
        topic(store, fence)
        ReassignmentDriver(controller(store, fence)).alter({("orders", 0): (2, 3, 4)})
        store.client.delete(f"{store.chroot}/controller")
        fence2 = store.elect_controller(2)
        successor = controller(store, fence2)
        driver = ReassignmentDriver(successor)
        driver.resume()
        assert ("orders", 0) in driver._watched
        assert successor.submitted == [(driver.check, ("orders", 0))]   # the watch's first read
        state = store.partition_state("orders", 0)
        store.write_isr_as_leader("orders", 0, state.with_isr((1, 2, 3, 4)))
        driver.check("orders", 0)
        assert store.topic("orders").partitions[0] == (2, 3, 4)
        assert store.partition_state("orders", 0).controller_epoch == fence2.epoch
