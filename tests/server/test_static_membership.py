"""Static membership (KIP-345, ``group.instance.id``) over the wire and embedded: a member that
restarts within its session timeout gets its partitions back and the other member sees no
rebalance; a second member with the same instance id fences the first (FENCED_INSTANCE_ID)."""
import socket
import time

import confluent_kafka as ck
import pytest

from klog.group import errors as E
from klog.protocol.messages import ApiKey

from .rawclient import call

pytestmark = pytest.mark.timeout(120)

PARTITIONS = 4
T = 30.0


class Counted:
    """A confluent-kafka consumer with group.instance.id, counting its rebalance callbacks."""

    def __init__(self, server, instance, group="static", topic="t"):
        self.assigned, self.assigns, self.revokes = frozenset(), 0, 0
        self.c = ck.Consumer({
            "bootstrap.servers": server.address, "group.id": group,
            "group.instance.id": instance, "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 300, "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "range", "topic.metadata.refresh.interval.ms": 60_000})
        self.c.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, _c, ps):
        self.assigns += 1
        self.assigned = frozenset(p.partition for p in ps)

    def _on_revoke(self, _c, ps):
        self.revokes += 1
        self.assigned = frozenset()

    def poll(self):
        m = self.c.poll(0.05)
        assert m is None or m.error() is None or m.error().code() == ck.KafkaError._PARTITION_EOF, \
            m.error()


def _poll_until(consumers, cond, what, timeout=T):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        for c in consumers:
            c.poll()


def test_restarted_static_consumer_gets_its_partitions_back_without_a_rebalance(server):
    server.broker.create_topic("t", PARTITIONS)
    gc = server.broker.group_coordinator
    a, b = Counted(server, "A"), Counted(server, "B")
    opened = [a, b]
    try:
        _poll_until([a, b], lambda: a.assigned and b.assigned and len(a.assigned | b.assigned)
                    == PARTITIONS and gc.group_state("static")[0] == "Stable", "the split")
        mine = a.assigned
        _, generation, _, members = gc.group_state("static")
        b_events = (b.assigns, b.revokes)
        opened.remove(a)
        a.c.close()    # static: no LeaveGroup, the coordinator keeps A's place for its session
        assert gc.group_state("static")[:2] == ("Stable", generation)
        a2 = Counted(server, "A")
        opened.append(a2)
        _poll_until([a2, b], lambda: a2.assigned, "the restarted consumer's assignment")
        assert a2.assigned == mine
        # B kept polling all along: no revoke, no assign; the group never rebalanced.
        for _ in range(20):
            b.poll()
        assert (b.assigns, b.revokes) == b_events
        state, generation_now, _, members_now = gc.group_state("static")
        assert (state, generation_now) == ("Stable", generation)
        assert len(members_now) == 2 and set(members_now) != set(members)   # A: a new member id
    finally:
        for c in opened:
            c.c.close()


def _join(s, instance, member_id="", cid=1):
    return call(s, ApiKey.JOIN_GROUP, 5, {
        "group_id": "fence", "session_timeout_ms": 10_000, "rebalance_timeout_ms": 10_000,
        "member_id": member_id, "group_instance_id": instance, "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": b"m"}]}, cid)


def test_second_member_with_the_same_instance_id_fences_the_first(server):
    s1 = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    s2 = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        first = _join(s1, "same")
        assert first["error_code"] == 0 and first["leader"] == first["member_id"]
        gen = first["generation_id"]
        sync = call(s1, ApiKey.SYNC_GROUP, 3, {
            "group_id": "fence", "generation_id": gen, "member_id": first["member_id"],
            "group_instance_id": "same",
            "assignments": [{"member_id": first["member_id"], "assignment": b"all"}]}, 2)
        assert sync["error_code"] == 0

        def heartbeat(s, member_id, cid):
            return call(s, ApiKey.HEARTBEAT, 3, {"group_id": "fence", "generation_id": gen,
                                                 "member_id": member_id,
                                                 "group_instance_id": "same"}, cid)["error_code"]
        assert heartbeat(s1, first["member_id"], 3) == 0
        second = _join(s2, "same", cid=4)
        assert second["error_code"] == 0 and second["member_id"] != first["member_id"]
        assert second["generation_id"] == gen
        assert heartbeat(s1, first["member_id"], 5) == E.FENCED_INSTANCE_ID == 82
        assert heartbeat(s2, second["member_id"], 6) == 0
        r = call(s1, ApiKey.OFFSET_COMMIT, 7, {
            "group_id": "fence", "generation_id": gen, "member_id": first["member_id"],
            "group_instance_id": "same", "topics": [{"name": "t", "partitions": [
                {"partition_index": 0, "committed_offset": 1, "committed_leader_epoch": -1,
                 "committed_metadata": ""}]}]}, 7)
        assert r["topics"][0]["partitions"][0]["error_code"] == 82
        left = call(s1, ApiKey.LEAVE_GROUP, 3, {"group_id": "fence", "members": [
            {"member_id": first["member_id"], "group_instance_id": "same"}]}, 8)
        assert left["members"][0]["error_code"] == 82
        left = call(s2, ApiKey.LEAVE_GROUP, 3, {"group_id": "fence", "members": [
            {"member_id": "", "group_instance_id": "same"}]}, 9)
        assert left["error_code"] == 0 and left["members"][0]["error_code"] == 0
        assert left["members"][0]["member_id"] == second["member_id"]
        assert server.broker.group_coordinator.group_state("fence")[0] == "Empty"
    finally:
        s1.close()
        s2.close()


def test_embedded_static_consumer_restart_keeps_partitions(server):
    broker = server.broker
    broker.create_topic("e", PARTITIONS)
    events = {"A": [], "B": [], "A2": []}

    def consumer(instance, name):
        c = broker.consumer("emb", {"group.instance.id": instance, "session.timeout.ms": 10_000,
                                    "heartbeat.interval.ms": 200})
        c.subscribe(["e"], on_assign=lambda ps: events[name].append(("assign", set(ps))),
                    on_revoke=lambda ps: events[name].append(("revoke", set(ps))))
        return c

    def poll_until(consumers, cond, what):
        deadline = time.monotonic() + T
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            for c in consumers:
                c.poll(20)

    gc = broker.group_coordinator
    a, b = consumer("A", "A"), consumer("B", "B")
    poll_until([a, b], lambda: a.assignment() and b.assignment()
               and len(a.assignment() | b.assignment()) == PARTITIONS
               and gc.group_state("emb")[0] == "Stable", "the split")
    mine, generation = a.assignment(), gc.group_state("emb")[1]
    b_events = list(events["B"])
    a.close()
    assert gc.group_state("emb")[:2] == ("Stable", generation)   # no LeaveGroup
    a2 = consumer("A", "A2")
    poll_until([a2, b], lambda: a2.assignment(), "the restarted consumer's assignment")
    assert a2.assignment() == mine
    for _ in range(10):
        b.poll(20)
    assert events["B"] == b_events
    assert gc.group_state("emb")[:2] == ("Stable", generation)
    a2.close()
    b.close()
