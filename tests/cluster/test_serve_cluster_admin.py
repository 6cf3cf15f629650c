"""Cluster administration end to end: three ``klog serve --zookeeper`` processes and a real
ZooKeeper, driven by confluent-kafka's AdminClient (delete_topics, create_partitions,
alter/describe configs, elect_leaders) and raw requests for the exact error codes."""
import json
import os
import signal
import uuid

from confluent_kafka import Consumer, ElectionType, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, NewPartitions, NewTopic)

from klog._native.batch import build_batch
from klog.protocol.elect_leaders import ELECT_LEADERS_REQUEST  # noqa: F401 - registers API 43
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey

from .test_serve_cluster import QUIET, create_topic, make_cluster, wait_for  # noqa: F401

TIMEOUT = 60


def admin(c):
    return AdminClient({"bootstrap.servers": c.bootstrap, **QUIET})


def code_of(future):
    try:
        future.result(TIMEOUT)
    except KafkaException as exc:
        return exc.args[0].code()
    return 0


def dirs(c, topic):
    """{broker: sorted partition numbers it holds a directory for}."""
    out = {}
    for n in (1, 2, 3):
        root = c.tmp / f"b{n}"
        out[n] = sorted(int(d.rsplit("-", 1)[1]) for d in os.listdir(root)
                        if d.rsplit("-", 1)[0] == topic and d.rsplit("-", 1)[1].isdigit())
    return out


def topic_id(c, n, topic):
    md = c.raw(n, ApiKey.METADATA, 12, {
        "topics": [{"topic_id": uuid.UUID(int=0), "name": topic}],
        "allow_auto_topic_creation": False, "include_topic_authorized_operations": False})
    return md["topics"][0]["topic_id"]


def controller(c):
    return c.metadata(next(iter(c.procs)))["controller_id"]


def produce_raw(c, n, topic, partition, acks=-1):
    resp = c.raw(n, ApiKey.PRODUCE, 8, {
        "transactional_id": None, "acks": acks, "timeout_ms": 10000, "topic_data": [
            {"name": topic, "partition_data": [
                {"index": partition, "records": build_batch([b"x"], None, None, None, 0, 0,
                                                            None)}]}]})
    return resp["responses"][0]["partition_responses"][0]["error_code"]


def commit(config, tp):
    """Commit ``tp`` for the group of ``config``, again while the group's coordinator is still
    being settled (the offsets topic was just created)."""
    consumer = Consumer(config)

    def attempt():
        try:
            consumer.commit(offsets=[tp], asynchronous=False)
            return True
        except KafkaException as exc:
            if not exc.args[0].retriable() and exc.args[0].code() != EC.NOT_COORDINATOR:
                raise
            return False
    try:
        wait_for("a commit", attempt, TIMEOUT)
    finally:
        consumer.close()


def test_delete_topics_everywhere_and_recreate_with_a_new_id(make_cluster):
    """DeleteTopics removes the topic from every broker (its directories, its group offsets),
    also from one that was down meanwhile; re-created, it has a new topic id, leader epochs
    above the old ones and none of the old data; an unknown topic and an internal topic are
    refused with Kafka's codes."""
    c = make_cluster()
    a = admin(c)
    create_topic(c, "d", partitions=2, rf=2)
    replicas = {q: c.partition(1, "d", q)["replica_nodes"] for q in (0, 1)}
    wait_for("directories on the replicas only", lambda: dirs(c, "d") == {
        n: [q for q in (0, 1) if n in replicas[q]] for n in (1, 2, 3)}, TIMEOUT)
    p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", **QUIET})
    for i in range(5):
        p.produce("d", f"old{i}".encode(), partition=0)
    assert p.flush(TIMEOUT) == 0
    group = {"bootstrap.servers": c.bootstrap, "group.id": "g", "enable.auto.commit": False,
             **QUIET}
    commit(group, TopicPartition("d", 0, 3))
    old_id = topic_id(c, 1, "d")
    old_epoch = max(c.partition(1, "d", q)["leader_epoch"] for q in (0, 1))

    assert code_of(a.delete_topics(["d"], operation_timeout=30)["d"]) == 0
    wait_for("every broker to drop the topic", lambda: all(
        not ps for ps in dirs(c, "d").values()), TIMEOUT)
    for n in (1, 2, 3):
        assert c.metadata(n, ["d"])["topics"][0]["error_code"] == EC.UNKNOWN_TOPIC_OR_PARTITION

    create_topic(c, "d", partitions=2, rf=2)
    assert topic_id(c, 1, "d") != old_id
    assert min(c.partition(1, "d", q)["leader_epoch"] for q in (0, 1)) > old_epoch
    consumer = Consumer(group)
    committed = consumer.committed([TopicPartition("d", 0)], timeout=TIMEOUT)
    assert committed[0].offset < 0                  # the group's offset went with the topic
    consumer.close()
    p.produce("d", b"new", partition=0)
    assert p.flush(TIMEOUT) == 0
    consumer = Consumer({**group, "group.id": "h", "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition("d", 0, 0)])
    msg = wait_for("a record", lambda: consumer.poll(0.5), TIMEOUT)
    assert (msg.offset(), msg.value()) == (0, b"new")
    consumer.close()

    assert code_of(a.delete_topics(["nope"], operation_timeout=30)["nope"]) == \
        EC.UNKNOWN_TOPIC_OR_PARTITION
    wait_for("__consumer_offsets", lambda: c.metadata(1, ["__consumer_offsets"])["topics"][0][
        "error_code"] == 0)
    answer = c.raw(controller(c), ApiKey.DELETE_TOPICS, 5,
                   {"topic_names": ["__consumer_offsets"], "timeout_ms": 5000})
    assert answer["responses"][0]["error_code"] == EC.INVALID_REQUEST     # as a single node

    # A broker that is down while a topic is deleted drops it when it comes back.
    create_topic(c, "w", partitions=1, rf=3)
    wait_for("w on broker 3", lambda: dirs(c, "w")[3] == [0] and "w" in json.loads(
        (c.tmp / "b3" / "klog-metadata.json").read_text())["topics"], TIMEOUT)
    c.kill(3)
    # (If 3 was the controller, clients wait for it until its ZooKeeper session expires.)
    wait_for("a live controller", lambda: controller(c) in c.procs, TIMEOUT)
    a = admin(c)
    assert code_of(a.delete_topics(["w"], operation_timeout=30)["w"]) == 0
    c.start(3)
    wait_for("broker 3 to drop w", lambda: dirs(c, "w")[3] == [], TIMEOUT)


def elect(a, election_type, partitions):
    """ElectLeaders, again while it reached a broker that is no longer the controller (the
    client's metadata lags a controller change; Kafka answers NOT_CONTROLLER per partition)."""
    def attempt():
        done = a.elect_leaders(election_type, partitions).result(TIMEOUT)
        if any(e is not None and e.code() == EC.NOT_CONTROLLER for e in done.values()):
            return None
        return done
    return wait_for("an answer from the controller", attempt, TIMEOUT, interval=0.5)


def test_create_partitions_and_elect_leaders(make_cluster):
    """CreatePartitions spreads the new partitions over the brokers with leaders, only their
    replicas hold them, they take writes; bad counts and unknown topics get Kafka's codes.
    ElectLeaders moves leadership back to the preferred replica once it is in sync again, and
    answers ELECTION_NOT_NEEDED / UNKNOWN_TOPIC_OR_PARTITION where Kafka does."""
    c = make_cluster()
    a = admin(c)
    create_topic(c, "p", partitions=1, rf=2)
    assert code_of(a.create_partitions([NewPartitions("p", 4)])["p"]) == 0
    wait_for("leaders with full ISRs", lambda: all(
        c.partition(n, "p", q)["leader_id"] >= 0 and len(c.partition(n, "p", q)["isr_nodes"]) == 2
        for n in (1, 2, 3) for q in range(4)), TIMEOUT)
    replicas = {q: c.partition(1, "p", q)["replica_nodes"] for q in range(4)}
    assert sorted(c.partition(1, "p", q)["leader_id"] for q in range(3)) == [1, 2, 3]
    wait_for("the replicas' directories", lambda: dirs(c, "p") == {
        n: [q for q in range(4) if n in replicas[q]] for n in (1, 2, 3)}, TIMEOUT)
    p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", **QUIET})
    for q in range(4):
        p.produce("p", b"v", partition=q)
    assert p.flush(TIMEOUT) == 0

    assert code_of(a.create_partitions([NewPartitions("p", 4)])["p"]) == EC.INVALID_PARTITIONS
    assert code_of(a.create_partitions([NewPartitions("p", 2)])["p"]) == EC.INVALID_PARTITIONS
    assert code_of(a.create_partitions([NewPartitions("nope", 2)])["nope"]) == \
        EC.UNKNOWN_TOPIC_OR_PARTITION

    # Leadership of p-0 moves away from its preferred replica and comes back on request.
    preferred = replicas[0][0]
    c.kill(preferred)
    wait_for("a new leader", lambda: c.partition(next(iter(c.procs)), "p")["leader_id"] not in
             (-1, preferred), TIMEOUT)
    c.start(preferred)
    wait_for("the preferred replica in sync", lambda: preferred in c.partition(
        next(iter(c.procs)), "p")["isr_nodes"], TIMEOUT)
    tp0 = TopicPartition("p", 0)
    done = elect(a, ElectionType.PREFERRED, [tp0])
    assert done[tp0] is None
    wait_for("the preferred leader", lambda: c.partition(1, "p")["leader_id"] == preferred,
             TIMEOUT)
    done = elect(a, ElectionType.PREFERRED, [tp0, TopicPartition("p", 9)])
    assert done[tp0].code() == EC.ELECTION_NOT_NEEDED
    assert done[TopicPartition("p", 9)].code() == EC.UNKNOWN_TOPIC_OR_PARTITION
    done = elect(a, ElectionType.UNCLEAN, [tp0])
    assert done[tp0].code() == EC.ELECTION_NOT_NEEDED         # it has a live leader
    # v0 (preferred only); v2 for every partition (null) leaves out those that need none.
    answer = c.raw(controller(c), ApiKey.ELECT_LEADERS, 0, {"topic_partitions": [
        {"topic": "p", "partitions": [0]}], "timeout_ms": 5000})
    assert answer["replica_election_results"][0]["partition_result"][0]["error_code"] == \
        EC.ELECTION_NOT_NEEDED
    answer = c.raw(controller(c), ApiKey.ELECT_LEADERS, 2, {
        "election_type": 0, "topic_partitions": None, "timeout_ms": 5000})
    assert answer["error_code"] == 0
    listed = {(t["topic"], r["partition_id"]): r["error_code"]
              for t in answer["replica_election_results"] for r in t["partition_result"]}
    assert ("p", 0) not in listed            # at its preferred leader: not listed
    assert set(listed.values()) <= {0, EC.PREFERRED_LEADER_NOT_AVAILABLE}
    # A broker that is not the controller says so.
    other = next(n for n in (1, 2, 3) if n != controller(c))
    answer = c.raw(other, ApiKey.ELECT_LEADERS, 1, {"election_type": 0, "topic_partitions": [
        {"topic": "p", "partitions": [0]}], "timeout_ms": 5000})
    assert answer["replica_election_results"][0]["partition_result"][0]["error_code"] == \
        EC.NOT_CONTROLLER
    versions = {k["api_key"]: (k["min_version"], k["max_version"]) for k in c.raw(
        other, ApiKey.API_VERSIONS, 3, {"client_software_name": "t",
                                        "client_software_version": "1"})["api_keys"]}
    assert versions[ApiKey.ELECT_LEADERS] == (0, 2)


def test_topic_configs_live_in_zookeeper_and_govern_every_broker(make_cluster):
    """Configs given at CreateTopics and changed by (Incremental)AlterConfigs through any
    broker are in ZooKeeper, described by every broker (source DYNAMIC_TOPIC_CONFIG) and
    applied by every replica: min.insync.replicas of the topic decides acks=all; retention
    reaches each broker's local topic. Invalid values: INVALID_CONFIG."""
    c = make_cluster()          # the brokers' min.insync.replicas=2
    a = admin(c)
    a.create_topics([NewTopic("c", 1, 3, config={"retention.ms": "3600000"})])["c"].result(
        TIMEOUT)
    wait_for("a full ISR", lambda: all(len(c.partition(n, "c")["isr_nodes"]) == 3
                                       for n in (1, 2, 3)), TIMEOUT)
    res = ConfigResource("topic", "c")
    for n in (1, 2, 3):
        one = AdminClient({"bootstrap.servers": "%s:%d" % c.address(n), **QUIET})
        entry = one.describe_configs([res])[res].result(TIMEOUT)["retention.ms"]
        assert (entry.value, entry.source) == ("3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)

    leader = c.partition(1, "c")["leader_id"]
    follower = next(n for n in (1, 2, 3) if n != leader)
    other = next(n for n in (1, 2, 3) if n not in (leader, controller(c)))
    through = AdminClient({"bootstrap.servers": "%s:%d" % c.address(other), **QUIET})
    change = ConfigResource("topic", "c", incremental_configs=[
        ConfigEntry("min.insync.replicas", "3", incremental_operation=AlterConfigOpType.SET)])
    through.incremental_alter_configs([change])[change].result(TIMEOUT)
    wait_for("the change on every broker", lambda: all(
        json.loads((c.tmp / f"b{n}" / "klog-metadata.json").read_text())["topics"]["c"][
            "config"].get("min.insync.replicas") == 3 for n in (1, 2, 3)), TIMEOUT)
    assert all(json.loads((c.tmp / f"b{n}" / "klog-metadata.json").read_text())["topics"]["c"][
        "config"]["retention.ms"] == 3600000 for n in (1, 2, 3))
    assert produce_raw(c, leader, "c", 0) == 0                # 3 in sync: fine
    c.kill(follower)
    wait_for("the ISR to shrink", lambda: len(c.partition(leader, "c")["isr_nodes"]) == 2,
             TIMEOUT)
    assert produce_raw(c, leader, "c", 0) == EC.NOT_ENOUGH_REPLICAS
    change = ConfigResource("topic", "c", incremental_configs=[
        ConfigEntry("min.insync.replicas", None, incremental_operation=AlterConfigOpType.DELETE)])
    # librdkafka sends config changes to the controller Metadata names: if the killed
    # follower was the controller, wait until Metadata names the next one.
    wait_for("a live controller", lambda: controller(c) not in (follower, -1), TIMEOUT)
    a = admin(c)                    # without the dead broker
    a.incremental_alter_configs([change])[change].result(TIMEOUT)
    wait_for("acks=all accepted with the brokers' minimum (2)",
             lambda: produce_raw(c, leader, "c", 0) == 0, TIMEOUT)
    c.start(follower)        # it was away when the config changed: it catches up
    wait_for("the change on the restarted broker", lambda: "min.insync.replicas" not in json.loads(
        (c.tmp / f"b{follower}" / "klog-metadata.json").read_text())["topics"]["c"]["config"],
        TIMEOUT)

    bad = ConfigResource("topic", "c", incremental_configs=[
        ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)])
    assert code_of(a.incremental_alter_configs([bad])[bad]) == EC.INVALID_CONFIG
    bad = ConfigResource("topic", "nope", incremental_configs=[
        ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.SET)])
    assert code_of(a.incremental_alter_configs([bad])[bad]) == EC.UNKNOWN_TOPIC_OR_PARTITION
    f = a.create_topics([NewTopic("x", 1, 1, config={"cleanup.policy": "sometimes"})])
    assert code_of(f["x"]) == EC.INVALID_CONFIG


def test_alter_configs_forwarded_across_the_controllers_death(make_cluster):
    """A broker forwarding a topic config change waits for the next controller when the
    controller has just died (its ZooKeeper node is still there, its port refuses), as
    Kafka's forwarding does: the client (here one that sends to any broker, as Java's
    AdminClient does) gets success, not REQUEST_TIMED_OUT. (librdkafka sends config changes
    to the controller Metadata names, so it waits for that broker itself.)"""
    c = make_cluster()
    create_topic(c, "d", partitions=1, rf=3)
    dead = controller(c)
    through = next(n for n in (1, 2, 3) if n != dead)
    c.kill(dead)
    resp = c.raw(through, ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {
        "resources": [{"resource_type": 2, "resource_name": "d", "configs": [
            {"name": "retention.ms", "config_operation": 0, "value": "7200000"}]}],
        "validate_only": False})
    assert [(r["resource_name"], r["error_code"]) for r in resp["responses"]] == [("d", 0)]
    assert controller(c) not in (dead, -1)
    wait_for("the change on the live brokers", lambda: all(
        json.loads((c.tmp / f"b{n}" / "klog-metadata.json").read_text())["topics"]["d"][
            "config"].get("retention.ms") == 7200000 for n in (1, 2, 3) if n != dead), TIMEOUT)


def test_replication_factor_defaults_and_auto_rebalance(make_cluster):
    """default.replication.factor for CreateTopics with -1 and auto-created topics,
    offsets.topic.replication.factor for __consumer_offsets; and the controller moves
    leadership back to preferred replicas by itself (leader.imbalance.check.interval.seconds)."""
    c = make_cluster(("default.replication.factor=2", "offsets.topic.replication.factor=2",
                      "leader.imbalance.check.interval.seconds=1"))
    a = admin(c)
    a.create_topics([NewTopic("r", 3)])["r"].result(TIMEOUT)       # replication factor -1
    wait_for("r", lambda: c.partition(1, "r")["leader_id"] >= 0, TIMEOUT)
    assert all(len(c.partition(1, "r", q)["replica_nodes"]) == 2 for q in range(3))
    p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", **QUIET})
    p.produce("auto", b"v")                                          # auto-created
    assert p.flush(TIMEOUT) == 0
    assert len(c.partition(1, "auto")["replica_nodes"]) == 2
    commit({"bootstrap.servers": c.bootstrap, "group.id": "g", **QUIET}, TopicPartition("r", 0, 1))
    assert len(c.partition(1, "__consumer_offsets")["replica_nodes"]) == 2

    preferred = {q: c.partition(1, "r", q)["replica_nodes"][0] for q in range(3)}
    victim = preferred[0]
    c.kill(victim, signal.SIGTERM)             # controlled shutdown: leadership moves away
    survivor = next(iter(c.procs))
    wait_for("leadership moved", lambda: all(c.partition(survivor, "r", q)["leader_id"] !=
                                             victim for q in range(3)), TIMEOUT)
    c.start(victim)
    wait_for("the preferred leaders back, with no request", lambda: all(
        c.partition(survivor, "r", q)["leader_id"] == preferred[q] for q in range(3)), TIMEOUT)
