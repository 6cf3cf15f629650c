"""Consumer-group administration against three ``klog serve --zookeeper`` brokers: each group is
answered by its coordinator only (the leader of its ``__consumer_offsets`` partition), other
brokers say NOT_COORDINATOR per group, and ListGroups lists what a broker coordinates, so
confluent-kafka's AdminClient (which asks every broker and merges) sees every group once, also
after the coordinator is SIGKILLed."""
import time

from confluent_kafka import (
    Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, Producer, TopicPartition,
)
from confluent_kafka.admin import AdminClient

from klog.group.offsets import partition_for
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey

from .brokers import QUIET, create_topic, wait_for

OFFSETS_PARTITIONS = 3


def coordinator(c, group, via):
    """The leader of the group's offsets partition, as broker ``via``'s metadata says."""
    return c.partition(via, "__consumer_offsets",
                       partition_for(group, OFFSETS_PARTITIONS))["leader_id"]


def listed(c, n):
    return {g["group_id"] for g in c.raw(n, ApiKey.LIST_GROUPS, 4, {"states_filter": []})["groups"]}


def consume_and_commit(c, group, close=True, topic="g"):
    """A member of ``group`` reads the 10 records of ``topic``, commits offset 7 and leaves
    (``close``) or stays (returned)."""
    consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", **QUIET})
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < 10 and time.monotonic() < deadline:
        m = consumer.poll(0.2)
        if m is not None and m.error() is None:
            got.append(m)
    assert len(got) == 10, f"{group} read {len(got)} of 10 records"
    consumer.commit(message=got[6], asynchronous=False)
    if close:
        consumer.close()
        return None
    return consumer


def start(make_cluster, topic="g", rf=3):
    """Three brokers, ``topic`` with 10 records, ``__consumer_offsets`` created and in sync."""
    c = make_cluster(["min.insync.replicas=2", f"offsets.topic.num.partitions={OFFSETS_PARTITIONS}",
                      "group.initial.rebalance.delay.ms=0"])
    create_topic(c, topic, rf=rf)
    # acks=all needs min.insync.replicas=2 in-sync replicas: a single replica takes acks=1.
    producer = Producer({"bootstrap.servers": c.bootstrap, "acks": "all" if rf > 1 else "1",
                         **QUIET})
    for i in range(10):
        producer.produce(topic, f"m{i}".encode())
    assert producer.flush(30) == 0
    wait_for("__consumer_offsets created", lambda: c.raw(1, ApiKey.FIND_COORDINATOR, 3, {
        "key": "any", "key_type": 0})["node_id"] >= 0)
    wait_for("offsets partitions led, fully in sync", lambda: all(
        (p := c.partition(1, "__consumer_offsets", i))["leader_id"] > 0
        and len(p["isr_nodes"]) == 3 for i in range(OFFSETS_PARTITIONS)))
    return c


def test_group_admin_asks_the_coordinator_and_survives_its_sigkill(make_cluster):
    c = start(make_cluster)

    # Two groups on different coordinators: "kept" (its coordinator dies later) and "live".
    names = [f"grp-{i}" for i in range(40)]
    kept = names[0]
    live = next(g for g in names if coordinator(c, g, 1) != coordinator(c, kept, 1))
    gone = next(g for g in names if g not in (kept, live))
    old, live_coordinator = coordinator(c, kept, 1), coordinator(c, live, 1)
    consume_and_commit(c, kept)
    consume_and_commit(c, gone)
    member = consume_and_commit(c, live, close=False)
    try:
        ours = {kept, live, gone}
        # Each broker lists the groups it coordinates, and only those.
        for n in (1, 2, 3):
            assert listed(c, n) & ours == {g for g in ours if coordinator(c, g, n) == n}

        # One request naming a group coordinated here and one coordinated elsewhere.
        answer = c.raw(live_coordinator, ApiKey.DESCRIBE_GROUPS, 5, {
            "groups": [kept, live], "include_authorized_operations": False})["groups"]
        assert [(g["group_id"], g["error_code"]) for g in answer] == \
            [(kept, EC.NOT_COORDINATOR), (live, 0)]
        assert answer[1]["group_state"] == "Stable" and len(answer[1]["members"]) == 1
        answer = c.raw(live_coordinator, ApiKey.OFFSET_FETCH, 8, {
            "groups": [{"group_id": kept, "topics": None}, {"group_id": live, "topics": None}],
            "require_stable": False})["groups"]
        assert [(g["group_id"], g["error_code"]) for g in answer] == \
            [(kept, EC.NOT_COORDINATOR), (live, 0)]
        assert answer[1]["topics"][0]["partitions"][0]["committed_offset"] == 7
        answer = c.raw(live_coordinator, ApiKey.DELETE_GROUPS, 2, {"groups_names": [kept]})
        assert answer["results"] == [{"group_id": kept, "error_code": EC.NOT_COORDINATOR}]
        answer = c.raw(live_coordinator, ApiKey.OFFSET_DELETE, 0, {"group_id": kept, "topics": [
            {"name": "g", "partitions": [{"partition_index": 0}]}]})
        assert answer["error_code"] == EC.NOT_COORDINATOR

        # confluent-kafka's AdminClient: every group once; described and deleted on its
        # coordinator.
        admin = AdminClient({"bootstrap.servers": c.bootstrap, **QUIET})
        result = admin.list_consumer_groups().result(30)
        assert not result.errors, result.errors
        states = {g.group_id: g.state for g in result.valid if g.group_id in ours}
        assert sorted(g.group_id for g in result.valid if g.group_id in ours) == sorted(ours)
        assert states == {kept: ConsumerGroupState.EMPTY, gone: ConsumerGroupState.EMPTY,
                          live: ConsumerGroupState.STABLE}
        described = {g: f.result(30) for g, f in admin.describe_consumer_groups(
            [kept, live]).items()}
        assert described[kept].state == ConsumerGroupState.EMPTY
        assert described[kept].members == [] and described[kept].coordinator.id == old
        assert described[live].state == ConsumerGroupState.STABLE
        assert len(described[live].members) == 1
        assert described[live].coordinator.id == live_coordinator
        assert admin.delete_consumer_groups([gone])[gone].result(30) is None
        err = admin.delete_consumer_groups([live])[live].exception(30)
        assert err is not None and "NON_EMPTY_GROUP" in str(err)
        result = admin.list_consumer_groups().result(30)
        assert {g.group_id for g in result.valid} & ours == {kept, live}

        # The coordinator of "kept" dies; the new leader of its offsets partition has it.
        c.kill(old)
        survivor = min(c.procs)
        new = wait_for("a new coordinator", lambda: (
            n := coordinator(c, kept, survivor)) not in (-1, old) and n, 30)
        admin = AdminClient({"bootstrap.servers": c.bootstrap, **QUIET})
        wait_for("the group listed by its new coordinator", lambda: kept in {
            g.group_id for g in admin.list_consumer_groups().result(30).valid})
        result = admin.list_consumer_groups().result(30)
        assert sorted(g.group_id for g in result.valid if g.group_id in ours) == sorted([kept, live])
        kept_now = admin.describe_consumer_groups([kept])[kept].result(30)
        assert kept_now.state == ConsumerGroupState.EMPTY and kept_now.coordinator.id == new
        offsets = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(kept, [TopicPartition("g", 0)])])[kept].result(30)
        assert [tp.offset for tp in offsets.topic_partitions] == [7]

        # Restarted, the old coordinator replays every group of its offsets log but answers
        # only for those it coordinates now.
        c.start(old)
        wait_for("the old coordinator back in sync", lambda: all(
            old in c.partition(survivor, "__consumer_offsets", i)["isr_nodes"]
            for i in range(OFFSETS_PARTITIONS)), 60)

        def consistent():
            mine = {g for g in ours if coordinator(c, g, old) == old}
            return listed(c, old) & ours == mine and \
                mine == {g for g in ours if coordinator(c, g, old) == old}
        wait_for("the old coordinator listing what it coordinates", consistent)
        if coordinator(c, kept, old) != old:
            answer = c.raw(old, ApiKey.DESCRIBE_GROUPS, 5, {
                "groups": [kept], "include_authorized_operations": False})["groups"]
            assert answer[0]["error_code"] == EC.NOT_COORDINATOR
    finally:
        member.close()


def test_offsets_of_a_topic_with_no_replica_on_the_coordinator(make_cluster):
    """The coordinator checks committed partitions against the cluster's topics (ZooKeeper's),
    not its own broker's: a replication-factor-1 topic living on another broker is committed to,
    fetched and deleted like any other."""
    c = start(make_cluster, "solo", rf=1)
    home = c.partition(1, "solo")["leader_id"]
    group = next(g for g in (f"grp-{i}" for i in range(40)) if coordinator(c, g, 1) != home)
    consume_and_commit(c, group, topic="solo")
    admin = AdminClient({"bootstrap.servers": c.bootstrap, **QUIET})
    offsets = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition("solo", 0)])])[group].result(30)
    assert [tp.offset for tp in offsets.topic_partitions] == [7]
    answer = c.raw(coordinator(c, group, 1), ApiKey.OFFSET_DELETE, 0, {
        "group_id": group, "topics": [{"name": "solo", "partitions": [{"partition_index": 0}]}]})
    assert answer["error_code"] == 0
    assert answer["topics"][0]["partitions"][0]["error_code"] == 0
    offsets = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition("solo", 0)])])[group].result(30)
    assert [tp.offset for tp in offsets.topic_partitions] == [-1001]


def describe(c, n, group):
    return c.raw(n, ApiKey.DESCRIBE_GROUPS, 5, {
        "groups": [group], "include_authorized_operations": False})["groups"][0]


def test_a_coordinator_that_stays_leader_keeps_its_members(make_cluster):
    """The controller bumps the leader epoch of the group's offsets partition (a follower broker
    dies and leaves the ISR) while the coordinator stays its leader: the group keeps its members
    and generation (Kafka loads groups only when a broker becomes leader). Before, the group was
    reloaded from the log on every epoch and its members had to join again."""
    c = start(make_cluster)
    group = "stays"
    member = consume_and_commit(c, group, close=False)
    try:
        coord = coordinator(c, group, 1)
        offsets_p = partition_for(group, OFFSETS_PARTITIONS)
        wait_for("the group stable with its member", lambda: (
            d := describe(c, coord, group))["group_state"] == "Stable" and d["members"])
        before = describe(c, coord, group)
        epoch = c.partition(coord, "__consumer_offsets", offsets_p)["leader_epoch"]
        victim = next(n for n in sorted(c.procs) if n != coord)
        c.kill(victim)
        wait_for("the next epoch, same leader", lambda: (
            p := c.partition(coord, "__consumer_offsets", offsets_p))["leader_epoch"] > epoch
            and p["leader_id"] == coord and victim not in p["isr_nodes"], 45)
        after = describe(c, coord, group)
        assert after["group_state"] == "Stable", after
        assert [m["member_id"] for m in after["members"]] == \
            [m["member_id"] for m in before["members"]], after
    finally:
        member.close()
