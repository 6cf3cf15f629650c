"""Cluster-mode answers that must match Kafka's exactly: three ``klog serve --zookeeper``
processes and a real ZooKeeper, driven by raw requests and
confluent-kafka's AdminClient."""
import os
import signal
import socket
import time

from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, NewTopic, ResourceType)

from klog.group.offsets import partition_for
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey

from .brokers import QUIET, Cluster, call, live_brokers, wait_for
from .test_serve_cluster_admin import produce_raw
from .zookeeper import ZooKeeperServer

TIMEOUT = 60


def raw(c, n, api_key, version, body):
    with socket.create_connection(c.address(n), timeout=30) as s:
        return call(s, api_key, version, body)


def coordinator_of(c, group):
    """The group's coordinator, once ``__consumer_offsets`` exists and has a leader."""
    def ask():
        try:
            answer = raw(c, min(c.procs), ApiKey.FIND_COORDINATOR, 1,
                         {"key": group, "key_type": 0})
        except OSError:
            return None
        return answer["error_code"] == 0 and answer["node_id"]
    return wait_for("a coordinator", ask, TIMEOUT)


def test_join_and_sync_group_not_coordinator_is_encodable_at_every_version(make_cluster):
    """A broker that is not the group's coordinator answers JoinGroup v0-v7 and SyncGroup
    v0-v5 NOT_COORDINATOR, with JoinGroup's protocol_name "" below v7 (not nullable there in
    Kafka's JoinGroupResponse) and null from v7: the connection stays open (kafka-python
    after a coordinator failover used to see it closed)."""
    c = make_cluster(["min.insync.replicas=2", "offsets.topic.num.partitions=1"])
    coordinator = coordinator_of(c, "grp")
    assert partition_for("grp", 1) == 0
    other = next(n for n in (1, 2, 3) if n != coordinator)
    with socket.create_connection(c.address(other), timeout=30) as s:
        for v in range(8):
            body = {"group_id": "grp", "session_timeout_ms": 10000, "rebalance_timeout_ms": 10000,
                    "member_id": "", "group_instance_id": None, "protocol_type": "consumer",
                    "protocols": [{"name": "range", "metadata": b""}], "reason": None}
            answer = call(s, ApiKey.JOIN_GROUP, v, body, cid=v + 1)
            assert answer["error_code"] == EC.NOT_COORDINATOR, v
            assert answer["protocol_name"] == ("" if v < 7 else None), v
        for v in range(6):
            answer = call(s, ApiKey.SYNC_GROUP, v, {
                "group_id": "grp", "generation_id": 1, "member_id": "m",
                "group_instance_id": None, "protocol_type": "consumer", "protocol_name": "range",
                "assignments": []}, cid=100 + v)
            assert answer["error_code"] == EC.NOT_COORDINATOR, v


def admin(c, *nodes):
    servers = ",".join("%s:%d" % c.address(n) for n in (nodes or sorted(c.procs)))
    return AdminClient({"bootstrap.servers": servers, **QUIET})


def broker_configs(a, n):
    res = ConfigResource(ResourceType.BROKER, str(n))
    return a.describe_configs([res])[res].result(TIMEOUT)


def test_describe_cluster_and_broker_configs_name_the_node_id(make_cluster):
    """Each broker's broker.id is its node id: DescribeCluster (raw v0-v2, and confluent-kafka's
    describe_cluster) asked of any broker lists the three live brokers and Metadata's controller; DescribeConfigs, IncrementalAlterConfigs and
    AlterConfigs on BROKER "<node id>" answer for that broker with its cluster-mode settings
    (zookeeper.connect, replica.lag.time.max.ms, ... read-only)."""
    c = make_cluster()          # min.insync.replicas=2 on every broker
    controller = c.metadata(1)["controller_id"]
    assert controller in (1, 2, 3)
    for n in (1, 2, 3):
        one = admin(c, n)
        d = one.describe_cluster(request_timeout=TIMEOUT).result(TIMEOUT)
        assert sorted(node.id for node in d.nodes) == [1, 2, 3], n
        assert {node.id: (node.host, node.port) for node in d.nodes} == \
            {m: c.address(m) for m in (1, 2, 3)}
        assert d.controller.id == controller, n
        for v in range(3):        # librdkafka's describe_cluster asks Metadata: DescribeCluster raw
            answer = raw(c, n, ApiKey.DESCRIBE_CLUSTER, v, {
                "include_cluster_authorized_operations": False, "endpoint_type": 1,
                "include_fenced_brokers": False})
            assert answer["error_code"] == 0
            assert answer["controller_id"] == controller, (n, v)
            assert {b["broker_id"]: (b["host"], b["port"]) for b in answer["brokers"]} == \
                {m: c.address(m) for m in (1, 2, 3)}, (n, v)
    a = admin(c)
    for n in (1, 2, 3):
        entries = broker_configs(a, n)
        assert entries["broker.id"].value == str(n)
        assert (entries["min.insync.replicas"].value, entries["min.insync.replicas"].source) == \
            ("2", ConfigSource.STATIC_BROKER_CONFIG.value)
        zk = entries["zookeeper.connect"]                     # the cluster settings, read-only
        assert (zk.value, zk.is_read_only) == (c.zk, True)
        assert entries["replica.lag.time.max.ms"].value == "30000"

    res = ConfigResource(ResourceType.BROKER, "2", incremental_configs=[
        ConfigEntry("log.retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(TIMEOUT)
    entry = broker_configs(a, 2)["log.retention.ms"]
    assert (entry.value, entry.source) == ("7200000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    assert broker_configs(a, 1)["log.retention.ms"].source != \
        ConfigSource.DYNAMIC_BROKER_CONFIG.value                  # broker 2's own
    res = ConfigResource(ResourceType.BROKER, "2", set_config={"log.retention.ms": "3600000"})
    a.alter_configs([res])[res].result(TIMEOUT)
    entry = broker_configs(a, 2)["log.retention.ms"]
    assert (entry.value, entry.source) == ("3600000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)


def set_broker_config(a, n, key, value):
    res = ConfigResource(ResourceType.BROKER, str(n), incremental_configs=[
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(TIMEOUT)


def test_broker_level_min_insync_replicas_reaches_the_replicas(make_cluster):
    """A dynamic broker-level min.insync.replicas (IncrementalAlterConfigs on BROKER "<leader>")
    decides acks=all on the leader's partitions whose topic sets none, as in Kafka; a topic
    override still wins. rf 3, one follower stopped: 3 -> NOT_ENOUGH_REPLICAS, 2 -> accepted."""
    c = make_cluster()          # min.insync.replicas=2 on every broker (static)
    a = admin(c)
    fs = a.create_topics([NewTopic("plain", 1, -1, replica_assignment=[[1, 2, 3]]),
                          NewTopic("own", 1, -1, replica_assignment=[[1, 3, 2]],
                                   config={"min.insync.replicas": "1"})])
    for f in fs.values():
        f.result(TIMEOUT)
    leader, follower = 1, 2                 # the preferred leader of both
    wait_for("full ISRs", lambda: all(
        len(c.partition(n, t)["isr_nodes"]) == 3 and c.partition(n, t)["leader_id"] == leader
        for n in (1, 2, 3) for t in ("plain", "own")), TIMEOUT)
    c.kill(follower)
    wait_for("the ISRs to shrink", lambda: all(
        len(c.partition(leader, t)["isr_nodes"]) == 2 for t in ("plain", "own")), TIMEOUT)
    assert produce_raw(c, leader, "plain", 0) == 0                     # 2 in sync, minimum 2

    a = admin(c, leader)
    set_broker_config(a, leader, "min.insync.replicas", "3")
    assert produce_raw(c, leader, "plain", 0) == EC.NOT_ENOUGH_REPLICAS
    assert produce_raw(c, leader, "own", 0) == 0                       # its override: 1
    entry = broker_configs(a, leader)["min.insync.replicas"]
    assert (entry.value, entry.source) == ("3", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    set_broker_config(a, leader, "min.insync.replicas", "2")
    assert produce_raw(c, leader, "plain", 0) == 0


# -- while ZooKeeper is away ---------------------------------------------------------------------
ZOOKEEPER_AWAY_ANSWER_S = 10.0     # kazoo waits for its reconnection (or the session's expiry)


def timed(c, n, api_key, version, body):
    start = time.monotonic()
    answer = raw(c, n, api_key, version, body)
    return answer, time.monotonic() - start


def test_find_coordinator_create_topics_and_groups_answer_promptly_without_zookeeper(tmp_path):
    """ZooKeeper stops: FindCoordinator answers COORDINATOR_NOT_AVAILABLE, CreateTopics on the
    controller and DescribeConfigs / IncrementalAlterConfigs of a topic REQUEST_TIMED_OUT (all
    retriable; a BROKER resource is described as ever), and the group requests are answered by the
    coordinator (NOT_COORDINATOR elsewhere), each promptly instead of waiting on kazoo's
    reconnection; once ZooKeeper is back, FindCoordinator names the coordinator again."""
    zk = ZooKeeperServer().start()
    c = Cluster(zk, tmp_path, ["min.insync.replicas=2", "offsets.topic.num.partitions=1"])
    try:
        for n in (1, 2, 3):
            c.start(n)
        wait_for("three registered brokers", lambda: live_brokers(c) == [1, 2, 3], 60)
        coordinator = coordinator_of(c, "grp")
        controller = c.metadata(1)["controller_id"]
        join = {"group_id": "grp", "session_timeout_ms": 30000, "rebalance_timeout_ms": 30000,
                "member_id": "", "group_instance_id": None, "protocol_type": "consumer",
                "protocols": [{"name": "range", "metadata": b""}], "reason": None}
        wait_for("the coordinator leading the group's partition", lambda: raw(
            c, coordinator, ApiKey.JOIN_GROUP, 5, join)["error_code"] == EC.MEMBER_ID_REQUIRED,
            TIMEOUT)
        os.killpg(zk.proc.pid, signal.SIGTERM)        # its data stays for the restart
        zk.proc.wait(30)
        for n in (1, 2, 3):
            log = c.tmp / f"b{n}.out"
            wait_for(f"broker {n} seeing ZooKeeper gone", lambda: (
                c.metadata(n) and b"Metadata without ZooKeeper" in log.read_bytes()), 60)
        for n in (1, 2, 3):
            answer, took = timed(c, n, ApiKey.FIND_COORDINATOR, 3, {"key": "grp", "key_type": 0})
            assert answer["error_code"] == EC.COORDINATOR_NOT_AVAILABLE, (n, answer)
            assert took < ZOOKEEPER_AWAY_ANSWER_S, (n, took)
        answer, took = timed(c, controller, ApiKey.CREATE_TOPICS, 4, {
            "topics": [{"name": "new", "num_partitions": 1, "replication_factor": 3,
                        "assignments": [], "configs": []}],
            "timeout_ms": 30000, "validate_only": False})
        assert answer["topics"][0]["error_code"] == EC.REQUEST_TIMED_OUT, answer
        assert "ZooKeeper" in answer["topics"][0]["error_message"]
        assert took < ZOOKEEPER_AWAY_ANSWER_S, took
        for n in (1, 2, 3):
            answer, took = timed(c, n, ApiKey.DESCRIBE_CONFIGS, 1, {"resources": [
                {"resource_type": 2, "resource_name": "__consumer_offsets",
                 "configuration_keys": None},
                {"resource_type": 4, "resource_name": str(n), "configuration_keys": None}],
                "include_synonyms": False})
            topic, broker = answer["results"]
            assert topic["error_code"] == EC.REQUEST_TIMED_OUT, (n, topic)
            assert broker["error_code"] == 0 and broker["configs"], (n, broker)
            assert took < ZOOKEEPER_AWAY_ANSWER_S, (n, took)
            answer, took = timed(c, n, ApiKey.INCREMENTAL_ALTER_CONFIGS, 0, {"resources": [
                {"resource_type": 2, "resource_name": "__consumer_offsets", "configs": [
                    {"name": "retention.ms", "config_operation": 0, "value": "1000"}]}],
                "validate_only": False})
            assert answer["responses"][0]["error_code"] == EC.REQUEST_TIMED_OUT, (n, answer)
            assert took < ZOOKEEPER_AWAY_ANSWER_S, (n, took)
        for n in (1, 2, 3):
            answer, took = timed(c, n, ApiKey.JOIN_GROUP, 5, join)
            assert answer["error_code"] == (EC.MEMBER_ID_REQUIRED if n == coordinator
                                            else EC.NOT_COORDINATOR), (n, answer)
            assert took < ZOOKEEPER_AWAY_ANSWER_S, (n, took)

        zk.start()
        assert coordinator_of(c, "grp") == coordinator
    finally:
        c.stop()
        zk.stop()
