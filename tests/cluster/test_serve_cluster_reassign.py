"""Partition reassignment (KIP-455) end to end: ``klog serve --zookeeper`` processes and a real
ZooKeeper, driven by kafka-python's KafkaAdminClient (alter/list_partition_reassignments) and raw
requests for the exact error codes; confluent-kafka produces with acks=all throughout."""
import json
import os
import signal

from kafka import KafkaAdminClient, TopicPartition as KTP
from kafka.errors import InvalidReplicationAssignmentError

from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey

from .brokers import klog_cli, live_brokers, wait_for
from .test_serve_cluster import BackgroundProducer, read_all
from .test_serve_cluster_admin import admin as confluent_admin, controller

TIMEOUT = 60


def kadmin(c, n=None):
    """kafka-python's admin client, bootstrapped from broker ``n`` only if given (not a paused
    one)."""
    servers = c.bootstrap if n is None else "%s:%d" % c.address(n)
    return KafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=30000)


def create(c, name, assignment):
    from confluent_kafka.admin import NewTopic
    a = confluent_admin(c)       # kept: the future fails if its client is collected first
    a.create_topics([NewTopic(name, len(assignment), -1, replica_assignment=assignment)])[
        name].result(TIMEOUT)
    rf = len(assignment[0])
    wait_for("a leader with a full ISR", lambda: all(
        len(c.partition(n, name, p)["isr_nodes"]) == rf
        for n in c.procs for p in range(len(assignment))), TIMEOUT)


def has_dir(c, n, topic, p):
    return os.path.isdir(c.tmp / f"b{n}" / f"{topic}-{p}")


def alter_raw(c, n, topics):
    """AlterPartitionReassignments v0 to broker ``n``: {topic: {partition: replicas or None}}."""
    return c.raw(n, ApiKey.ALTER_PARTITION_REASSIGNMENTS, 0, {"timeout_ms": 30000, "topics": [
        {"name": t, "partitions": [{"partition_index": p, "replicas": r} for p, r in ps.items()]}
        for t, ps in topics.items()]})


def codes(resp):
    return {(t["name"], p["partition_index"]): p["error_code"]
            for t in resp["responses"] for p in t["partitions"]}


def list_raw(c, n, topics=None):
    return c.raw(n, ApiKey.LIST_PARTITION_REASSIGNMENTS, 0, {"timeout_ms": 30000,
                                                            "topics": topics})


def test_move_onto_a_new_broker_while_producing_loses_nothing(make_cluster):
    """Brokers 1..3, a topic on [1,2,3] led by 1 with acks=all traffic; broker 4 joins and the
    partition moves to [2,3,4] while producing goes on. Afterwards 4 holds the data (it is in
    the ISR), 1 led nothing and holds no directory, every acknowledged value is readable, also
    after the old leader and then the new leader are killed."""
    c = make_cluster()
    create(c, "moves", [[1, 2, 3]])
    assert c.partition(1, "moves")["leader_id"] == 1
    bg = BackgroundProducer(c, "moves", acks="all", **{"enable.idempotence": True})
    k = None
    try:
        wait_for("some acknowledgements", lambda: len(bg.acked) > 200, TIMEOUT)
        c.start(4)
        wait_for("broker 4 registered", lambda: live_brokers(c) == [1, 2, 3, 4], TIMEOUT)
        k = kadmin(c)
        tp = KTP("moves", 0)
        assert k.alter_partition_reassignments({tp: [2, 3, 4]}) == {tp: None}
        before = len(bg.acked)
        wait_for("the move to complete", lambda: not k.list_partition_reassignments()
                 and c.partition(2, "moves")["replica_nodes"] == [2, 3, 4], TIMEOUT)
        wait_for("acknowledgements after the move", lambda: len(bg.acked) > before + 300,
                 TIMEOUT)
    finally:
        assert bg.stop() == 0, c.log_output()
        if k is not None:
            k.close()
    assert not bg.failed, (bg.failed[:5], c.log_output())
    p = c.partition(2, "moves")
    assert p["leader_id"] in (2, 3, 4) and sorted(p["isr_nodes"]) == [2, 3, 4], p
    wait_for("broker 1's directory deleted", lambda: not has_dir(c, 1, "moves", 0), TIMEOUT)
    assert has_dir(c, 4, "moves", 0)
    seen = read_all(c, "moves", bg.acked)
    assert set(bg.acked) <= set(seen), f"lost {sorted(set(bg.acked) - set(seen))[:5]}"
    assert len(seen) == len(set(seen))

    c.kill(1)                                   # the old leader
    assert set(bg.acked) <= set(read_all(c, "moves", bg.acked))
    leader = c.partition(2, "moves")["leader_id"]
    c.kill(leader)                              # the new leader: one of the other two leads
    survivor = min(c.procs)
    wait_for("a leader among the survivors", lambda: c.partition(survivor, "moves")[
        "leader_id"] in c.procs, TIMEOUT)
    seen = read_all(c, "moves", bg.acked)
    assert set(bg.acked) <= set(seen), f"lost {sorted(set(bg.acked) - set(seen))[:5]}"


def test_errors_cancel_and_list(make_cluster):
    """Kafka's per-partition errors (asked of a broker that is not the controller: it
    forwards); a move that waits (its new replica is paused and cannot catch up) is listed with
    RS, adding and removing (kafka-python, raw, the CLI, ``cluster status``); cancelling it
    restores the original replicas, and the paused broker never keeps a directory for it."""
    c = make_cluster()
    ctl = controller(c)
    other, paused = sorted(n for n in c.procs if n != ctl)
    create(c, "errs", [[ctl, other], [other, paused]])
    resp = alter_raw(c, other, {"errs": {0: [1, 2, 2], 1: [], 5: [1]},
                                "nope": {0: [1, 2]}})
    assert resp["error_code"] == 0
    assert codes(resp) == {("errs", 0): EC.INVALID_REPLICA_ASSIGNMENT,
                           ("errs", 1): EC.INVALID_REPLICA_ASSIGNMENT,
                           ("errs", 5): EC.UNKNOWN_TOPIC_OR_PARTITION,
                           ("nope", 0): EC.UNKNOWN_TOPIC_OR_PARTITION}
    resp = alter_raw(c, ctl, {"errs": {0: [1, 2, 9], 1: None}})
    assert codes(resp) == {("errs", 0): EC.INVALID_REPLICA_ASSIGNMENT,
                           ("errs", 1): EC.NO_REASSIGNMENT_IN_PROGRESS}
    assert "[9]" in resp["responses"][0]["partitions"][0]["error_message"]
    assert list_raw(c, other)["topics"] == []

    k = kadmin(c, other)
    tp = KTP("errs", 0)
    try:
        assert k.alter_partition_reassignments({tp: [1, 2, 7]}) == \
            {tp: InvalidReplicationAssignmentError}
        c.procs[paused].send_signal(signal.SIGSTOP)     # registered, but fetches nothing
        try:
            assert k.alter_partition_reassignments({tp: [ctl, paused]}) == {tp: None}
            moving = {"replicas": [ctl, paused, other], "adding_replicas": [paused],
                      "removing_replicas": [other]}
            assert k.list_partition_reassignments() == {tp: moving}
            assert k.list_partition_reassignments([tp]) == {tp: moving}
            assert k.list_partition_reassignments([KTP("errs", 1)]) == {}
            assert list_raw(c, other, [{"name": "errs", "partition_indexes": [0]}])[
                "topics"] == [{"name": "errs", "partitions": [{"partition_index": 0, **moving}]}]
            assert c.partition(ctl, "errs", 0)["replica_nodes"] == [ctl, paused, other]
            listed = klog_cli("cluster", "reassign", "-b", "%s:%d" % c.address(other), "--list",
                              "--format", "json")
            assert listed.returncode == 0, listed.stderr
            assert json.loads(listed.stdout) == [{"topic": "errs", "partition": 0,
                                                  "replicas": [ctl, paused, other],
                                                  "adding": [paused], "removing": [other]}]
            for where in (["-b", "%s:%d" % c.address(other)],
                          ["--zookeeper", c.zk, "--no-high-watermark"]):
                shown = klog_cli("cluster", "status", *where, "--format", "json")
                errs0 = next(p for p in json.loads(shown.stdout)["partitions"]
                             if (p["topic"], p["partition"]) == ("errs", 0))
                assert (errs0["replicas"], errs0["adding"], errs0["removing"]) == \
                    ([ctl, paused, other], [paused], [other]), (where, errs0)
            assert k.alter_partition_reassignments({tp: None}) == {tp: None}
            assert k.list_partition_reassignments() == {}
            p = c.partition(ctl, "errs", 0)
            assert p["replica_nodes"] == [ctl, other] and sorted(p["isr_nodes"]) == \
                sorted([ctl, other]), p
        finally:
            c.procs[paused].send_signal(signal.SIGCONT)
    finally:
        k.close()
    wait_for(f"broker {paused} back in errs-1's ISR", lambda: sorted(
        c.partition(ctl, "errs", 1)["isr_nodes"]) == sorted([other, paused]), TIMEOUT)
    wait_for(f"no errs-0 directory on broker {paused}",
             lambda: not has_dir(c, paused, "errs", 0), TIMEOUT)
    assert has_dir(c, ctl, "errs", 0) and has_dir(c, other, "errs", 0)


def test_a_move_survives_a_controller_failover_and_a_returning_replica_drops_its_data(
        make_cluster):
    """A move that waits (its new replica is paused) outlives its controller, SIGKILLed: the
    next controller finds it in ZooKeeper, lists it, and completes it once the new replica
    catches up. The removed replica was the dead controller: when it comes back it deletes
    its directory of the partition."""
    c = make_cluster()
    ctl = controller(c)
    a, b = sorted(n for n in c.procs if n != ctl)
    create(c, "fo", [[ctl, a]])
    tp = KTP("fo", 0)
    c.procs[b].send_signal(signal.SIGSTOP)          # b will be added; it fetches nothing yet
    try:
        assert codes(alter_raw(c, a, {"fo": {0: [a, b]}})) == {("fo", 0): 0}
        assert list_raw(c, a)["topics"][0]["partitions"][0]["adding_replicas"] == [b]
        c.kill(ctl)
        wait_for("a new controller", lambda: c.metadata(a)["controller_id"] == a, TIMEOUT)
        k = kadmin(c, a)
        try:
            assert k.list_partition_reassignments() == {tp: {
                "replicas": [a, b, ctl], "adding_replicas": [b], "removing_replicas": [ctl]}}
        finally:
            k.close()
    finally:
        c.procs[b].send_signal(signal.SIGCONT)
    wait_for("the move completed by the new controller", lambda: not list_raw(c, a)["topics"]
             and c.partition(a, "fo")["replica_nodes"] == [a, b], TIMEOUT)
    p = c.partition(a, "fo")
    assert sorted(p["isr_nodes"]) == sorted([a, b]) and p["leader_id"] in (a, b), p
    assert has_dir(c, ctl, "fo", 0)                 # it was down while its replica moved
    c.start(ctl)
    wait_for(f"broker {ctl} deleting its directory of fo-0",
             lambda: not has_dir(c, ctl, "fo", 0), TIMEOUT)


def test_moving_a_groups_offsets_partition_moves_its_coordinator_with_the_commits(
        make_cluster):
    """A group's ``__consumer_offsets`` partition moves off its coordinator onto a new broker:
    the new leader there is the coordinator, with the committed offset; the old one answers
    NOT_COORDINATOR and no longer holds the partition."""
    from .test_cluster_groups import OFFSETS_PARTITIONS, consume_and_commit, start
    from klog.group.offsets import partition_for

    c = start(make_cluster)
    group = "moved-group"
    consume_and_commit(c, group)
    p = partition_for(group, OFFSETS_PARTITIONS)
    before = c.partition(1, "__consumer_offsets", p)
    old = before["leader_id"]
    c.start(4)
    wait_for("broker 4 registered", lambda: live_brokers(c) == [1, 2, 3, 4], TIMEOUT)
    target = [4] + [r for r in before["replica_nodes"] if r != old]
    assert codes(alter_raw(c, 1, {"__consumer_offsets": {p: target}})) == \
        {("__consumer_offsets", p): 0}
    wait_for("the offsets partition moved", lambda: not list_raw(c, 1)["topics"]
             and c.partition(1, "__consumer_offsets", p)["replica_nodes"] == target, TIMEOUT)
    assert c.partition(1, "__consumer_offsets", p)["leader_id"] == 4

    def fetch_offset(n):
        return c.raw(n, ApiKey.OFFSET_FETCH, 8, {
            "groups": [{"group_id": group, "topics": None}], "require_stable": False})["groups"][0]
    wait_for("the committed offset at the new coordinator",
             lambda: fetch_offset(4)["error_code"] == 0 and fetch_offset(4)["topics"], TIMEOUT)
    assert fetch_offset(4)["topics"][0]["partitions"][0]["committed_offset"] == 7
    assert fetch_offset(old)["error_code"] == EC.NOT_COORDINATOR
    wait_for(f"broker {old} dropping its copy",
             lambda: not has_dir(c, old, "__consumer_offsets", p), TIMEOUT)
