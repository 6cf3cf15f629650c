"""Topic administration by the controller against a real ZooKeeper: deletion (and re-creation
under a new topic id, leader epochs going on), CreatePartitions, topic configs, ElectLeaders and
the periodic preferred-leader rebalance, driven by a FakeClock. Brokers are ZooKeeper
registrations, as in test_controller."""
import json
import uuid

import pytest
from kazoo.exceptions import BadVersionError

from klog.clock import FakeClock, Scheduler
from klog.cluster.controller import PREFERRED, UNCLEAN, Controller
from klog.cluster.state import NO_LEADER
from klog.cluster.zkstore import NotControllerError
from klog.errors import InternalTopicError, InvalidPartitionsError, UnknownTopicOrPartitionError
from klog.protocol.errors import ErrorCode as EC

from .test_controller import Cluster, wait_for


@pytest.fixture
def cluster(zookeeper):
    c = Cluster(f"{zookeeper.address}/t{uuid.uuid4().hex[:12]}")
    yield c
    c.close()


def three(cluster, **controller_options):
    """Brokers 1, 2, 3; broker 1 runs the controller (with ``controller_options``)."""
    for b in (1, 2, 3):
        store = cluster.broker(b)
        if b == 1:
            cluster.controllers[1] = Controller(store, 1, cluster.inbox,
                                                **controller_options).start()
    return cluster.controller()


def test_delete_topic_removes_every_znode_and_a_recreated_topic_starts_above_its_epochs(cluster):
    c = three(cluster)
    store = cluster.stores[1]
    first_id = cluster.call(c.create_topic, "t", 2, 3, None, {"retention.ms": "1000"})
    assert store.topic_config("t")[0] == {"retention.ms": "1000"}
    cluster.kill(2)       # partition leadership moves: epochs go up
    wait_for(lambda: all(store.partition_state("t", p).leader_epoch >= 1 for p in (0, 1)),
             what="epochs after a failure")
    highest = max(store.partition_state("t", p).leader_epoch for p in (0, 1))
    cluster.call(c.delete_topic, "t")
    zk = store.client
    assert store.topics() == [] and store.topics_marked_for_deletion() == []
    assert zk.exists(f"{store.chroot}/config/topics/t") is None
    assert store.leader_epoch_floor()[0] == highest + 1
    second_id = cluster.call(c.create_topic, "t", 2, 2)
    assert second_id != first_id and store.topic("t").topic_id == second_id
    assert all(store.partition_state("t", p).leader_epoch == highest + 1 for p in (0, 1))
    assert store.topic_config("t")[0] == {}          # the old config went with the old topic


def test_delete_refuses_internal_and_unknown_topics(cluster):
    c = three(cluster)
    cluster.call(c.create_topic, "__consumer_offsets", 1, 3)
    with pytest.raises(InternalTopicError):
        cluster.call(c.delete_topic, "__consumer_offsets")
    with pytest.raises(UnknownTopicOrPartitionError):
        cluster.call(c.delete_topic, "nope")
    assert cluster.stores[1].topics() == ["__consumer_offsets"]


def test_a_deletion_marker_is_finished_by_the_next_controller(cluster):
    cluster.broker(1, controller=True)
    cluster.broker(2, controller=True)
    c = cluster.controller()
    cluster.call(c.create_topic, "t", 1, 2)
    store = cluster.stores[3 - c.broker_id]
    # The controller marks the topic and dies before deleting it (as if it crashed in between).
    c.stop()
    store.client.create(f"{store.chroot}/admin/delete_topics/t")
    cluster.kill(c.broker_id)
    wait_for(lambda: store.topics() == [] and store.topics_marked_for_deletion() == [],
             what="the new controller to finish the deletion")


def test_create_partitions_spreads_new_partitions_and_gives_them_leaders(cluster):
    c = three(cluster)
    store = cluster.stores[1]
    cluster.call(c.create_topic, "t", 1, 2, {0: (2, 3)})
    cluster.call(c.add_partitions, "t", 4)
    parts = store.topic("t").partitions
    assert sorted(parts) == [0, 1, 2, 3] and parts[0] == (2, 3)
    assert all(len(r) == 2 and len(set(r)) == 2 for r in parts.values())
    # Kafka's spread: leaders round-robin from partition 0's leader, over brokers 1..3.
    assert [parts[p][0] for p in (1, 2, 3)] == [3, 1, 2]
    for p in (1, 2, 3):
        state = store.partition_state("t", p)
        assert state.leader == parts[p][0] and state.isr == parts[p]
        assert cluster.inbox.last(parts[p][0], "t", p).state == state
    with pytest.raises(InvalidPartitionsError, match="already has 4 partitions"):
        cluster.call(c.add_partitions, "t", 4)
    with pytest.raises(InvalidPartitionsError, match="higher than the requested 2"):
        cluster.call(c.add_partitions, "t", 2)
    with pytest.raises(UnknownTopicOrPartitionError):
        cluster.call(c.add_partitions, "nope", 2)
    cluster.call(c.add_partitions, "t", 5, [(1, 3)])
    assert store.topic("t").partitions[4] == (1, 3)


def test_topic_config_writes_are_compare_and_set_and_announced(cluster):
    c = three(cluster)
    store = cluster.stores[1]
    cluster.call(c.create_topic, "t", 1, 1)
    config, version = store.topic_config("t")
    cluster.call(c.set_topic_config, "t", {"min.insync.replicas": "2"}, version)
    assert store.topic_config("t")[0] == {"min.insync.replicas": "2"}
    with pytest.raises(BadVersionError):          # based on what was there before: refused
        cluster.call(c.set_topic_config, "t", {"retention.ms": "5"}, version)
    changes = store.config_changes()
    assert [t for _, t in changes] == ["t"]
    raw, _ = store.client.get(f"{store.chroot}/config/changes/"
                              f"config_change_{changes[0][0]:010d}")
    assert json.loads(raw) == {"version": 2, "entity_path": "topics/t"}
    # A deposed controller changes nothing.
    store.client.set(f"{store.chroot}/controller_epoch", b"99")
    with pytest.raises(NotControllerError):
        cluster.call(c.set_topic_config, "t", {"retention.ms": "5"},
                     store.topic_config("t")[1])
    assert store.topic_config("t")[0] == {"min.insync.replicas": "2"}


def test_elect_leaders_preferred(cluster):
    c = three(cluster)
    store = cluster.stores[1]
    cluster.call(c.create_topic, "t", 2, 3, {0: (2, 3, 1), 1: (3, 1, 2)})
    cluster.call(c.controlled_shutdown, 2)           # leadership of t-0 moves to 3, 2 leaves ISR
    got = cluster.call(c.elect_leaders, PREFERRED, [("t", 0), ("t", 1), ("t", 7), ("u", 0)])
    assert got[("t", 0)][0] == EC.PREFERRED_LEADER_NOT_AVAILABLE      # 2 is not in sync
    assert got[("t", 1)][0] == EC.ELECTION_NOT_NEEDED
    assert got[("t", 7)][0] == got[("u", 0)][0] == EC.UNKNOWN_TOPIC_OR_PARTITION
    s0 = store.partition_state("t", 0)
    store.write_isr_as_leader("t", 0, s0.with_isr((3, 1, 2)))       # 2 caught up again
    got = cluster.call(c.elect_leaders, PREFERRED, None)
    assert got[("t", 0)] == (EC.NONE, None) and got[("t", 1)][0] == EC.ELECTION_NOT_NEEDED
    state = store.partition_state("t", 0)
    assert state.leader == 2 and state.leader_epoch == s0.leader_epoch + 1
    assert cluster.inbox.last(2, "t", 0).state == state


def test_elect_leaders_unclean(cluster):
    c = three(cluster)
    store = cluster.stores[1]
    cluster.call(c.create_topic, "t", 1, 2, {0: (2, 3)})
    cluster.call(c.create_topic, "u", 1, 1, {0: (3,)})
    s0 = store.partition_state("t", 0)
    store.write_isr_as_leader("t", 0, s0.with_isr((2,)))     # 3 fell behind
    assert cluster.call(c.elect_leaders, UNCLEAN, [("t", 0)])[("t", 0)][0] == \
        EC.ELECTION_NOT_NEEDED                                 # it has a live leader
    cluster.kill(2)
    wait_for(lambda: store.partition_state("t", 0).leader == NO_LEADER, what="t-0 offline")
    got = cluster.call(c.elect_leaders, PREFERRED, [("t", 0)])
    assert got[("t", 0)][0] == EC.PREFERRED_LEADER_NOT_AVAILABLE
    got = cluster.call(c.elect_leaders, UNCLEAN, [("t", 0)])
    assert got[("t", 0)] == (EC.NONE, None)
    state = store.partition_state("t", 0)
    assert state.leader == 3 and state.isr == (3,)
    cluster.kill(3)
    wait_for(lambda: store.partition_state("u", 0).leader == NO_LEADER, what="u-0 offline")
    got = cluster.call(c.elect_leaders, UNCLEAN, [("u", 0)])
    assert got[("u", 0)][0] == EC.ELIGIBLE_LEADERS_NOT_AVAILABLE


def _imbalanced(cluster, c, store):
    """Four partitions preferring broker 2, all led by 3 after a controlled shutdown of 2 that
    did not stop it; 2 back in every ISR."""
    cluster.call(c.create_topic, "t", 4, 2, {p: (2, 3) for p in range(4)})
    cluster.call(c.controlled_shutdown, 2)
    for p in range(4):
        s = store.partition_state("t", p)
        assert s.leader == 3
        store.write_isr_as_leader("t", p, s.with_isr((3, 2)))


def test_auto_rebalance_moves_leadership_back_on_the_controllers_clock(cluster):
    clock = FakeClock()
    scheduler = Scheduler(clock)
    try:
        c = three(cluster, scheduler=scheduler, imbalance_check_interval_s=300)
        store = cluster.stores[1]
        _imbalanced(cluster, c, store)
        clock.advance(299_000)
        cluster.call(lambda: None)                   # the controller's queue is drained
        assert all(store.partition_state("t", p).leader == 3 for p in range(4))
        clock.advance(1_000)
        wait_for(lambda: all(store.partition_state("t", p).leader == 2 for p in range(4)),
                 what="the preferred leaders back")
    finally:
        scheduler.shutdown()


@pytest.mark.parametrize("options", [{"auto_leader_rebalance": False},
                                     {"imbalance_per_broker_percentage": 100}])
def test_no_auto_rebalance_when_disabled_or_under_the_threshold(cluster, options):
    clock = FakeClock()
    scheduler = Scheduler(clock)
    try:
        c = three(cluster, scheduler=scheduler, **options)
        store = cluster.stores[1]
        _imbalanced(cluster, c, store)
        clock.advance(3_000_000)
        cluster.call(lambda: None)
        assert all(store.partition_state("t", p).leader == 3 for p in range(4))
        if "imbalance_per_broker_percentage" in options:     # 4 of 4 is not above 100 %
            assert cluster.call(c._check_leader_imbalance) == 0
    finally:
        scheduler.shutdown()


def test_a_large_topic_is_deleted_in_batches(cluster, monkeypatch):
    from klog.cluster import zkstore
    monkeypatch.setattr(zkstore, "DELETE_BATCH", 2)
    c = three(cluster)
    store = cluster.stores[1]
    cluster.call(c.create_topic, "t", 5, 1)
    cluster.call(c.delete_topic, "t")
    assert store.topics() == [] and store.topics_marked_for_deletion() == []
    assert store.client.exists(f"{store.chroot}/config/topics/t") is None


def test_large_topics_are_written_in_batches_and_a_successor_finishes_them(cluster,
                                                                            monkeypatch):
    from klog.cluster import zkstore
    monkeypatch.setattr(zkstore, "CREATE_BATCH", 2)
    c = three(cluster)
    store = cluster.stores[1]
    cluster.call(c.create_topic, "t", 5, 2)
    cluster.call(c.add_partitions, "t", 9)
    assert all(store.partition_state("t", p).leader >= 0 for p in range(9))
    # A controller died after the first multi-op of a creation (here it only stops writing,
    # then goes): the next one finishes it.
    monkeypatch.setattr(store, "create_partition_states", lambda *a: None)
    cluster.call(c.create_topic, "u", 5, 2)
    monkeypatch.undo()
    assert sorted(store.client.get_children(f"{store.chroot}/brokers/topics/u/partitions")) == \
        ["0", "1"]
    cluster.controllers[2] = Controller(cluster.stores[2], 2, cluster.inbox).start()
    cluster.kill(1)
    store = cluster.stores[2]
    wait_for(lambda: sorted(store.client.get_children(
        f"{store.chroot}/brokers/topics/u/partitions")) == ["0", "1", "2", "3", "4"],
        what="the rest of u's partitions")
    assert all(store.partition_state("u", p).leader >= 0 for p in range(5))
