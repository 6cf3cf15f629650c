"""Consumer groups with consumers polling in their own threads: partitions split among members,
rebalances when members leave, stall (max.poll.interval.ms) or die (session.timeout.ms),
pattern subscriptions, cooperative rebalancing, and a wire-style member (kafka-python's
assignor and codecs) sharing a group with embedded consumers."""
import time

import pytest
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.protocol.consumer.metadata import (
    ConsumerProtocolAssignment as KpAssignment, ConsumerProtocolSubscription as KpSubscription,
)

from klog import CommitFailedError, TopicPartition
from klog.group import errors as E
from klog.group.coordinator import STABLE


def all_partitions(topic, n):
    return {TopicPartition(topic, p) for p in range(n)}


def split_evenly(workers, topic, n):
    owned = [w.assignment() for w in workers]
    union = set().union(*owned)
    sizes = sorted(len(o) for o in owned)
    return (union == all_partitions(topic, n) and sum(sizes) == n
            and sizes[-1] - sizes[0] <= 1)


@pytest.fixture
def six(broker, produce):
    broker.create_topic("t", 6)
    for p in range(6):
        produce("t", p, [f"{p}-{i}" for i in range(20)])
    return "t"


def test_members_split_partitions_and_read_every_record_once(broker, six, workers, until):
    ws = [workers("g", ["t"]) for _ in range(3)]
    until(lambda: split_evenly(ws, "t", 6) and sum(len(w.records) for w in ws) == 120,
          what="three members to split six partitions and read everything")
    values = [v for w in ws for v in w.values()]
    assert sorted(values) == sorted(f"{p}-{i}".encode() for p in range(6) for i in range(20))
    (desc,) = broker.group_coordinator.describe_groups(["g"])
    assert desc.state == STABLE and len(desc.members) == 3 and desc.protocol == "range"


def test_a_member_closing_hands_its_partitions_over(six, workers, until):
    a, b = workers("g", ["t"]), workers("g", ["t"])
    until(lambda: split_evenly([a, b], "t", 6), what="two members to split")
    gave_up = a.assignment()
    a.close()
    assert a.revoked[-1] == sorted(gave_up)          # on_revoke ran on close
    until(lambda: b.assignment() == all_partitions("t", 6), what="b to take over")
    assert b.assigned[-1] == sorted(all_partitions("t", 6))


def test_a_member_that_stops_polling_loses_its_partitions(six, workers, until):
    a = workers("g", ["t"])
    b = workers("g", ["t"], **{"max.poll.interval.ms": 300})
    until(lambda: split_evenly([a, b], "t", 6), what="two members to split")
    had = b.assignment()
    b.stall()                                        # busy elsewhere: no poll() calls
    until(lambda: a.assignment() == all_partitions("t", 6), what="a to get everything")
    assert b.consumer._member.poll_timeout_expired
    with pytest.raises(CommitFailedError, match="max.poll.interval.ms"):
        b.consumer.commit()
    b.resume()                                       # polls again: finds them lost, rejoins
    until(lambda: split_evenly([a, b], "t", 6), what="the two to split again")
    assert sorted(had) in b.revoked                  # reported as revoked (lost)


def test_a_member_whose_heartbeats_stop_is_expired(broker, six, workers, until):
    a = workers("g", ["t"])
    b = workers("g", ["t"], **{"session.timeout.ms": 300})
    until(lambda: split_evenly([a, b], "t", 6), what="two members to split")
    dead_id = b.consumer._member.member_id
    t0 = time.monotonic()
    b.die()
    until(lambda: a.assignment() == all_partitions("t", 6), what="a to get everything")
    assert time.monotonic() - t0 >= 0.25             # not before the session timeout
    assert dead_id not in broker.group_coordinator.group_state("g")[3]


def test_pattern_subscription_picks_up_new_topics(broker, produce, workers, until):
    broker.create_topic("ev-a", 1)
    broker.create_topic("other", 1)
    produce("ev-a", 0, ["a"])
    produce("other", 0, ["x"])
    w = workers("p", r"ev-.*")
    until(lambda: w.values() == [b"a"], what="the first matching topic")
    broker.create_topic("ev-b", 2)
    produce("ev-b", 1, ["b"])
    until(lambda: sorted(w.values()) == [b"a", b"b"], what="the new matching topic")
    assert w.assignment() == {("ev-a", 0), ("ev-b", 0), ("ev-b", 1)}
    assert w.consumer.subscription() == {"ev-a", "ev-b"}


def test_leader_rebalances_when_partitions_are_added(broker, produce, workers, until):
    broker.create_topic("grow", 1)
    a, b = workers("g", ["grow"]), workers("g", ["grow"])
    until(lambda: len(a.assignment() | b.assignment()) == 1, what="the first assignment")
    broker.add_partitions("grow", 4)
    produce("grow", 3, ["new"])
    until(lambda: a.assignment() | b.assignment() == all_partitions("grow", 4),
          what="the new partitions to be assigned")
    until(lambda: b"new" in a.values() + b.values(), what="records of a new partition")


def test_cooperative_rebalance_only_revokes_what_moves(six, workers, until):
    coop = {"partition.assignment.strategy": "cooperative-sticky"}
    a = workers("g", ["t"], **coop)
    until(lambda: a.assignment() == all_partitions("t", 6), what="a to own everything")
    b = workers("g", ["t"], **coop)
    until(lambda: split_evenly([a, b], "t", 6), what="a cooperative split")
    assert len(a.assignment()) == 3
    # a never gave up everything at once: it only revoked the three that moved to b.
    assert all(len(r) == 3 for r in a.revoked), a.revoked
    assert set().union(*map(set, a.revoked)) == b.assignment()
    until(lambda: sum(len(w.records) for w in (a, b)) == 120, what="all records")
    assert len(a.values() + b.values()) == 120       # nothing read twice


def test_wire_style_member_shares_a_group_with_embedded_consumers(broker, six, workers, until):
    """A member that speaks the group protocol through the coordinator API with kafka-python's
    ConsumerProtocol codecs and range assignor (what a Kafka client does over the wire) leads
    the group; an embedded consumer follows; then the wire member dies and is expired."""
    c = broker.group_coordinator
    meta = KpSubscription(version=0, topics=["t"], user_data=b"").encode()
    r = c.join_group("g", "", "consumer", [("range", meta)], 300, 5000, client_id="kafka-python",
                     require_known_member_id=True).result(5)
    r = c.join_group("g", r.member_id, "consumer", [("range", meta)], 300, 5000).result(5)
    wire_id = r.member_id
    c.sync_group("g", r.generation_id, wire_id, {wire_id: b""}).result(5)

    w = workers("g", ["t"])
    # The embedded member's join starts a rebalance; the wire member learns it by heartbeat.
    until(lambda: c.heartbeat("g", r.generation_id, wire_id) == E.REBALANCE_IN_PROGRESS,
          what="the rebalance")
    r = c.join_group("g", wire_id, "consumer", [("range", meta)], 300, 5000).result(5)
    assert r.leader_id == wire_id and len(r.members) == 2

    class Cluster:
        def partitions_for_topic(self, topic):
            return set(range(broker.partition_count(topic)))

    class Member:
        def __init__(self, m):
            self.member_id, self.group_instance_id = m.member_id, m.group_instance_id
            self.metadata = KpSubscription.decode(m.metadata)    # our consumer's bytes

    plan = RangePartitionAssignor.assign(Cluster(), [Member(m) for m in r.members])
    mine = c.sync_group("g", r.generation_id, wire_id,
                        {m: a.encode() for m, a in plan.items()}).result(5)
    assert KpAssignment.decode(mine.assignment).partitions()
    theirs = next(m for m in plan if m != wire_id)
    expected = {TopicPartition(tp.topic, tp.partition) for tp in plan[theirs].partitions()}
    until(lambda: w.assignment() == expected, what="the embedded member to take the leader's plan")

    # The wire client stops heartbeating: expired after 300 ms, its partitions come over.
    until(lambda: w.assignment() == all_partitions("t", 6), what="the dead member's partitions")
    assert c.group_state("g")[3] == (w.consumer._member.member_id,)
