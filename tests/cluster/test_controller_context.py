"""The controller's cached view (klog.cluster.context.ControllerContext): the data type alone,
then the view of a real controller against a real ZooKeeper, compared with what ZooKeeper holds
after each of the controller's writes and after changes made by other paths (a leader's ISR
change, a topic created or deleted by another writer)."""
import threading
import uuid

import pytest

from klog.cluster.context import ControllerContext
from klog.cluster.state import LeaderAndIsr
from klog.cluster.zkstore import ClusterStore, ControllerEpoch, TopicAssignment

from .test_controller import Cluster, wait_for

TID, OTHER_TID = uuid.uuid4(), uuid.uuid4()


def state(leader, isr, version, epoch=0):
    return LeaderAndIsr(leader, epoch, tuple(isr), 1, version)


# -- the data type ---------------------------------------------------------------------------------
def test_a_state_is_taken_only_if_newer_and_of_the_topic_held():
    ctx = ControllerContext()
    ctx.set_topic("t", TopicAssignment(TID, {0: (1, 2, 3)}, 0), {0: state(1, (1, 2, 3), 3)})
    assert not ctx.update_state("t", 0, state(2, (2, 3), 2))          # older
    assert not ctx.update_state("t", 0, state(2, (2, 3), 3))          # the same version
    assert not ctx.update_state("t", 0, state(2, (2, 3), 4), OTHER_TID)   # another incarnation
    assert not ctx.update_state("t", 1, state(2, (2, 3), 4))          # not in the assignment
    assert not ctx.update_state("u", 0, state(2, (2, 3), 4))          # unknown topic
    assert ctx.states[("t", 0)] == state(1, (1, 2, 3), 3)
    assert ctx.update_state("t", 0, state(2, (2, 3), 4), TID)
    assert ctx.states[("t", 0)] == state(2, (2, 3), 4)


def test_another_topic_id_replaces_the_incarnation_and_its_states():
    ctx = ControllerContext()
    ctx.set_topic("t", TopicAssignment(TID, {0: (1,), 1: (2,)}, 5),
                  {0: state(1, (1,), 7), 1: state(2, (2,), 7)})
    ctx.set_topic("t", TopicAssignment(OTHER_TID, {0: (3,)}, 0), {0: state(3, (3,), 0)})
    assert ctx.topic_id("t") == OTHER_TID
    assert ctx.states == {("t", 0): state(3, (3,), 0)}     # version 0 taken: a new znode
    ctx.set_topic("t", TopicAssignment(OTHER_TID, {0: (3,), 1: (1,)}, 1))
    assert ctx.missing_states("t") == {1: (1,)}
    ctx.remove_topic("t")
    assert ctx.topics == {} and ctx.states == {}


def test_partitions_led_by_a_broker_not_serving_come_first_user_topics_before_internal():
    ctx = ControllerContext()
    ctx.set_topic("__consumer_offsets", TopicAssignment(TID, {0: (1, 2), 1: (2, 1)}, 0),
                  {0: state(1, (1, 2), 0), 1: state(2, (2, 1), 0)})
    ctx.set_topic("orders", TopicAssignment(OTHER_TID, {0: (2, 1), 1: (1, 2)}, 0),
                  {0: state(2, (2, 1), 0), 1: state(1, (1, 2), 0)})
    keys = [("__consumer_offsets", 0), ("__consumer_offsets", 1), ("orders", 0), ("orders", 1)]
    assert ctx.first_for(keys, {1}) == [("orders", 0), ("__consumer_offsets", 1),
                                        ("orders", 1), ("__consumer_offsets", 0)]
    assert ctx.led_by(2) == [("__consumer_offsets", 1), ("orders", 0)]
    ctx.deleting.add("orders")
    assert ctx.led_by(2) == [("__consumer_offsets", 1)]       # no decisions for it


# -- a controller's view against ZooKeeper ---------------------------------------------------------
@pytest.fixture
def cluster(zookeeper):
    c = Cluster(f"{zookeeper.address}/t{uuid.uuid4().hex[:12]}")
    yield c
    c.close()


def zookeeper_view(store):
    """{topic: (topic id, assignment, {partition: state})} as ZooKeeper holds it, topics marked
    for deletion left out."""
    deleting = set(store.topics_marked_for_deletion())
    out = {}
    for name in store.topics():
        if name in deleting:
            continue
        a = store.topic(name)
        out[name] = (a.topic_id, a.partitions,
                     {p: store.partition_state(name, p) for p in a.partitions})
    return out


def controller_view(cluster):
    """The same, from the controller's context, read on the controller's thread."""
    def snapshot(c):
        ctx = c.ctx
        return {name: (a.topic_id, dict(a.partitions),
                       {p: ctx.states.get((name, p)) for p in a.partitions})
                for name, a in ctx.topics.items() if name not in ctx.deleting}
    c = cluster.controller()
    return cluster.call(snapshot, c)


def assert_views_match(cluster, store):
    assert controller_view(cluster) == zookeeper_view(store)


def test_the_view_matches_zookeeper_after_each_controller_write(cluster):
    for b in (1, 2, 3):
        cluster.broker(b, controller=(b == 1))
    c = cluster.controller()
    store = cluster.stores[1]
    cluster.call(c.create_topic, "t", 2, 3, {0: (2, 3, 1), 1: (3, 1, 2)})
    cluster.call(c.create_topic, "u", 1, 1, {0: (2,)})
    assert_views_match(cluster, store)
    cluster.call(c.add_partitions, "t", 3, [(1, 2, 3)])
    assert_views_match(cluster, store)
    assert cluster.call(c.controlled_shutdown, 2) == 1      # "u" has no other replica
    assert_views_match(cluster, store)
    assert controller_view(cluster)["t"][2][0].leader == 3
    cluster.kill(2)                                          # a death: decided from the view
    wait_for(lambda: store.partition_state("u", 0).leader == -1, what="u offline")
    wait_for(lambda: controller_view(cluster) == zookeeper_view(store), what="views equal")
    cluster.broker(2)
    wait_for(lambda: store.partition_state("u", 0).leader == 2, what="u back")
    wait_for(lambda: controller_view(cluster) == zookeeper_view(store), what="views equal")
    s0 = store.partition_state("t", 0)
    store.write_isr_as_leader("t", 0, s0.with_isr((3, 1, 2)))   # broker 2 caught up again
    wait_for(lambda: controller_view(cluster)["t"][2][0].isr == (3, 1, 2),
             what="the leader's ISR change in the view")
    assert cluster.call(c.elect_preferred_leaders) == 1
    assert_views_match(cluster, store)
    cluster.call(c.delete_topic, "u")
    assert "u" not in controller_view(cluster)
    assert_views_match(cluster, store)


def test_a_failed_compare_and_set_reads_the_partition_and_decides_again(cluster):
    for b in (1, 2, 3):
        cluster.broker(b, controller=(b == 1))
    c = cluster.controller()
    store = cluster.stores[1]
    cluster.call(c.create_topic, "t", 1, 3, {0: (2, 3, 1)})
    writes = []
    real = store.write_states_as_controller

    def counting(states, fence):
        result = real(states, fence)
        writes.append({k: v is not None for k, v in result.items()})
        return result
    store.write_states_as_controller = counting

    def behind_its_back_then_shut_down(c):
        # The leader drops broker 1 from the ISR; the controller's watch reports it only after
        # this event, so the shutdown is decided from the old view: its write must fail and
        # be decided again on what ZooKeeper holds.
        s = store.partition_state("t", 0)
        store.write_isr_as_leader("t", 0, s.with_isr((2, 3)))
        return c.controlled_shutdown(2)
    assert cluster.call(behind_its_back_then_shut_down, c) == 0
    assert writes == [{("t", 0): False}, {("t", 0): True}]
    final = store.partition_state("t", 0)
    assert (final.leader, final.isr) == (3, (3,))          # broker 1 was not put back
    assert_views_match(cluster, store)


def test_topics_created_and_deleted_by_another_path_appear_and_disappear(cluster):
    for b in (1, 2, 3):
        cluster.broker(b, controller=(b == 1))
    c = cluster.controller()
    store = cluster.stores[1]
    # Another writer with the controller's fence (e.g. an earlier klog's tool).
    other = ClusterStore(cluster.connect).start()
    try:
        fence = ControllerEpoch(c.fence.epoch, c.fence.zk_version)
        first = {0: LeaderAndIsr(1, 0, (1, 2), c.fence.epoch), 1: LeaderAndIsr(2, 0, (2, 3),
                                                                              c.fence.epoch)}
        tid = other.create_topic("x", {0: (1, 2), 1: (2, 3)}, first, fence)
        wait_for(lambda: "x" in controller_view(cluster), what="x in the view")
        assert controller_view(cluster)["x"][0] == tid
        assert_views_match(cluster, store)
        # Its partitions are decided like the others: broker 2's death moves x-1.
        cluster.kill(2)
        wait_for(lambda: store.partition_state("x", 1).leader == 3, what="x-1 moved")
        wait_for(lambda: controller_view(cluster) == zookeeper_view(store), what="views equal")
        other.delete_topic("x", fence, 1)
        wait_for(lambda: "x" not in controller_view(cluster), what="x gone from the view")
        # The same name again, another incarnation: the view takes its id and states.
        again = other.create_topic("x", {0: (3, 1)}, {0: LeaderAndIsr(3, 5, (3, 1),
                                                                      c.fence.epoch)}, fence)
        wait_for(lambda: controller_view(cluster).get("x", (None,))[0] == again,
                 what="the new x in the view")
        assert_views_match(cluster, store)
    finally:
        other.close()


def test_a_death_is_decided_without_reading_the_states(cluster):
    """The point of the view: a broker's death costs the controller writes, not reads of every
    partition's state."""
    for b in (1, 2, 3):
        cluster.broker(b, controller=(b == 1))
    c = cluster.controller()
    store = cluster.stores[1]
    cluster.call(c.create_topic, "t", 6, 3)
    reads = []
    real = store.partition_state
    lock = threading.Lock()

    def counting(topic, p):
        with lock:
            reads.append((topic, p))
        return real(topic, p)
    store.partition_state = counting
    led = [p for p in range(6) if real("t", p).leader == 2]
    cluster.kill(2)
    wait_for(lambda: all(real("t", p).leader not in (2, -1) and 2 not in real("t", p).isr
                         for p in range(6)), what="broker 2 out of every partition")
    store.partition_state = real
    assert led and reads == []
    wait_for(lambda: controller_view(cluster) == zookeeper_view(store), what="views equal")
