"""Metadata, CreateTopics validate_only, cluster-wide broker defaults and admin timeouts of a
cluster: three ``klog serve --zookeeper`` processes and a real ZooKeeper, driven by raw requests,
confluent-kafka's AdminClient / Producer and kafka-python."""
import json
import socket
import threading
import time
import uuid

from confluent_kafka.admin import AdminClient, NewTopic
from kafka.admin import KafkaAdminClient
from kazoo.client import KazooClient

from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey

from .brokers import QUIET, Cluster, call, create_topic, live_brokers, wait_for
from .test_serve_cluster_admin import produce_raw
from .zookeeper import ZooKeeperServer

TIMEOUT = 60


def raw(c, n, api_key, version, body, timeout=30):
    with socket.create_connection(c.address(n), timeout=timeout) as s:
        return call(s, api_key, version, body)


def metadata(c, n, topics, version=12, auto=False):
    return raw(c, n, ApiKey.METADATA, version, {
        "topics": topics, "allow_auto_topic_creation": auto,
        "include_cluster_authorized_operations": False,
        "include_topic_authorized_operations": True})


def create_raw(c, n, name, partitions=1, rf=3, validate_only=False, timeout_ms=30000):
    return raw(c, n, ApiKey.CREATE_TOPICS, 5, {
        "topics": [{"name": name, "num_partitions": partitions, "replication_factor": rf,
                    "assignments": [], "configs": []}],
        "timeout_ms": timeout_ms, "validate_only": validate_only})["topics"][0]


def test_metadata_answers_as_kafka_on_every_broker(cluster):
    """One Metadata handler: topic ids (v12) known and unknown (UNKNOWN_TOPIC_ID), illegal
    names (INVALID_TOPIC_EXCEPTION, whether or not auto-creation is allowed),
    allow_auto_topic_creation honoured, internal topics listed; and CreateTopics validate_only
    refusing what the real create refuses ('.' / '_' collisions)."""
    c = cluster
    create_topic(c, "known.topic", 2)
    controller = c.metadata(1)["controller_id"]
    tid = metadata(c, 1, [{"name": "known.topic"}])["topics"][0]["topic_id"]
    missing = uuid.uuid4()
    for n in (1, 2, 3):
        md = metadata(c, n, [{"name": None, "topic_id": tid}, {"name": None, "topic_id": missing},
                             {"name": "no spaces"}, {"name": "not-created"}])
        assert sorted(b["node_id"] for b in md["brokers"]) == [1, 2, 3]
        assert md["controller_id"] == controller
        known, unknown, bad, absent = md["topics"]
        assert (known["error_code"], known["name"], known["topic_id"]) == (0, "known.topic", tid)
        assert len(known["partitions"]) == 2 and known["topic_authorized_operations"] > 0
        assert all(sorted(p["replica_nodes"]) == [1, 2, 3] for p in known["partitions"])
        assert (unknown["error_code"], unknown["name"]) == (EC.UNKNOWN_TOPIC_ID, None), n
        assert bad["error_code"] == EC.INVALID_TOPIC_EXCEPTION, n
        assert absent["error_code"] == EC.UNKNOWN_TOPIC_OR_PARTITION, n
    md = metadata(c, 2, [{"name": "also bad"}], auto=True)
    assert md["topics"][0]["error_code"] == EC.INVALID_TOPIC_EXCEPTION
    assert "not-created" not in {t["name"] for t in metadata(c, 1, None)["topics"]}
    # auto-creation allowed: LEADER_NOT_AVAILABLE (Kafka's answer) until the controller made it
    md = metadata(c, 2, [{"name": "auto-made"}], auto=True)
    assert md["topics"][0]["error_code"] in (EC.LEADER_NOT_AVAILABLE, 0)
    wait_for("the auto-created topic", lambda: metadata(c, 3, [{"name": "auto-made"}])[
        "topics"][0]["error_code"] == 0, TIMEOUT)
    # internal topics in all-topics answers, once FindCoordinator made __consumer_offsets
    wait_for("a coordinator", lambda: raw(c, 1, ApiKey.FIND_COORDINATOR, 1, {
        "key": "g", "key_type": 0})["error_code"] == 0, TIMEOUT)
    listed = {t["name"]: t["is_internal"] for t in metadata(c, 3, None)["topics"]}
    assert listed["__consumer_offsets"] is True and listed["known.topic"] is False
    kp = KafkaAdminClient(bootstrap_servers=c.bootstrap)
    try:
        assert {"__consumer_offsets", "known.topic", "auto-made"} <= set(kp.list_topics())
    finally:
        kp.close()
    # validate_only runs the real create's checks: a name colliding with known.topic
    for validate_only in (True, False):
        answer = create_raw(c, controller, "known_topic", validate_only=validate_only)
        assert answer["error_code"] == EC.TOPIC_ALREADY_EXISTS, (validate_only, answer)
        assert "collides" in answer["error_message"]
    assert create_raw(c, controller, "fine", validate_only=True)["error_code"] == 0
    assert metadata(c, 1, [{"name": "fine"}])["topics"][0]["error_code"] == \
        EC.UNKNOWN_TOPIC_OR_PARTITION


# -- cluster-wide broker defaults ----------------------------------------------------------------
def alter_default(c, n, key, value, incremental=True):
    if incremental:
        answer = raw(c, n, ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {"validate_only": False,
                     "resources": [{"resource_type": 4, "resource_name": "", "configs": [
                         {"name": key, "config_operation": 0 if value is not None else 1,
                          "value": value}]}]})
    else:
        answer = raw(c, n, ApiKey.ALTER_CONFIGS, 1, {"validate_only": False, "resources": [
            {"resource_type": 4, "resource_name": "", "configs": [
                {"name": key, "value": value}]}]})
    return answer["responses"][0]


def describe(c, n, resource_type, name):
    answer = raw(c, n, ApiKey.DESCRIBE_CONFIGS, 1, {"resources": [
        {"resource_type": resource_type, "resource_name": name, "configuration_keys": None}],
        "include_synonyms": False})["results"][0]
    assert answer["error_code"] == 0, answer
    return {e["name"]: (e["value"], e["config_source"]) for e in answer["configs"]}


DYNAMIC_DEFAULT, DYNAMIC_BROKER = 3, 2


def answering(fn, *args):
    """``fn(*args)``, or None while the broker does not take connections yet."""
    try:
        return fn(*args)
    except OSError:
        return None


def test_cluster_wide_broker_defaults_live_in_zookeeper_and_govern_every_broker(make_cluster):
    c = make_cluster(())           # no static min.insync.replicas
    create_topic(c, "plain", 1, rf=3)
    a = AdminClient({"bootstrap.servers": c.bootstrap, **QUIET})
    a.create_topics([NewTopic("two", 1, -1, replica_assignment=[[1, 2]])])["two"].result(TIMEOUT)
    wait_for("two's ISR", lambda: len(c.partition(1, "two")["isr_nodes"]) == 2, TIMEOUT)

    assert alter_default(c, 2, "log.retention.ms", "3600000")["error_code"] == 0
    assert alter_default(c, 3, "min.insync.replicas", "3")["error_code"] == 0
    zk = KazooClient(hosts=c.zk)
    zk.start(30)
    try:
        raw_default, _ = zk.get("/config/brokers/<default>")
        changes = [json.loads(zk.get(f"/config/changes/{child}")[0])
                   for child in zk.get_children("/config/changes")]
    finally:
        zk.stop()
        zk.close()
    assert json.loads(raw_default)["config"] == {"log.retention.ms": "3600000",
                                                 "min.insync.replicas": "3"}
    assert {"version": 2, "entity_path": "brokers/<default>"} in changes
    for n in (1, 2, 3):       # every broker runs with them (the topic sets neither)
        wait_for(f"broker {n} applying the defaults", lambda: describe(c, n, 2, "plain").get(
            "retention.ms") == ("3600000", DYNAMIC_DEFAULT), TIMEOUT)
        assert describe(c, n, 4, "") == {"log.retention.ms": ("3600000", DYNAMIC_DEFAULT),
                                         "min.insync.replicas": ("3", DYNAMIC_DEFAULT)}
    # min.insync.replicas 3 > two's 2 in-sync replicas: acks=all refused on its leader
    leader = c.partition(1, "two")["leader_id"]
    wait_for("the default min.insync.replicas on the leader", lambda: produce_raw(
        c, leader, "two", 0) == EC.NOT_ENOUGH_REPLICAS, TIMEOUT)
    # a per-broker setting overrides the default
    a = AdminClient({"bootstrap.servers": "%s:%d" % c.address(leader), **QUIET})
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
    res = ConfigResource(ResourceType.BROKER, str(leader), incremental_configs=[
        ConfigEntry("min.insync.replicas", "2", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(TIMEOUT)
    assert produce_raw(c, leader, "two", 0) == 0
    assert describe(c, leader, 4, str(leader))["min.insync.replicas"] == ("2", DYNAMIC_BROKER)

    # a broker that was away takes the defaults changed meanwhile, and they survive restarts
    away = 3 if leader != 3 else 2
    c.kill(away)
    assert alter_default(c, 1, "log.retention.ms", "7200000", incremental=False)["error_code"] == 0
    c.start(away)
    for n in (1, 2, 3):
        wait_for(f"broker {n} with the new defaults", lambda: answering(describe, c, n, 4, "") == {
            "log.retention.ms": ("7200000", DYNAMIC_DEFAULT)}, TIMEOUT)
    # bad values are refused (INVALID_REQUEST, as for any broker config) and change nothing
    answer = alter_default(c, 1, "log.retention.ms", "soon")
    assert answer["error_code"] == EC.INVALID_REQUEST and "soon" in answer["error_message"]
    answer = alter_default(c, 1, "num.partitions", "4")
    assert answer["error_code"] == EC.INVALID_REQUEST and "num.partitions" in answer["error_message"]
    assert describe(c, 2, 4, "") == {"log.retention.ms": ("7200000", DYNAMIC_DEFAULT)}


# -- while ZooKeeper does not answer -------------------------------------------------------------
ADMIN_TIMEOUT_MS = 2000
SLACK_S = 3.0          # a loaded 2-core machine: the answer after the deadline, not long after


def test_controller_admin_requests_answer_within_timeout_ms_while_zookeeper_stalls(tmp_path):
    """ZooKeeper stopped (SIGSTOP): DeleteTopics, CreatePartitions, ElectLeaders and CreateTopics
    sent to the controller answer REQUEST_TIMED_OUT within their timeout_ms instead of
    waiting for ZooKeeper without bound; once it is back the controller answers them again."""
    zk = ZooKeeperServer().start()
    c = Cluster(zk, tmp_path, ["min.insync.replicas=1"])
    try:
        for n in (1, 2, 3):
            c.start(n)
        wait_for("three registered brokers", lambda: live_brokers(c) == [1, 2, 3], TIMEOUT)
        create_topic(c, "t", 1)
        controller = c.metadata(1)["controller_id"]
        requests = {
            "DeleteTopics": (ApiKey.DELETE_TOPICS, 4, {"topic_names": ["t"],
                                                       "timeout_ms": ADMIN_TIMEOUT_MS}),
            "CreatePartitions": (ApiKey.CREATE_PARTITIONS, 1, {
                "topics": [{"name": "t", "count": 2, "assignments": None}],
                "timeout_ms": ADMIN_TIMEOUT_MS, "validate_only": False}),
            "ElectLeaders": (ApiKey.ELECT_LEADERS, 1, {
                "election_type": 0, "topic_partitions": [{"topic": "t", "partitions": [0]}],
                "timeout_ms": ADMIN_TIMEOUT_MS}),
            "CreateTopics": (ApiKey.CREATE_TOPICS, 5, {
                "topics": [{"name": "new", "num_partitions": 1, "replication_factor": 3,
                            "assignments": [], "configs": []}],
                "timeout_ms": ADMIN_TIMEOUT_MS, "validate_only": False}),
        }
        answers = {}

        def send(what, api_key, version, body):
            start = time.monotonic()
            try:
                answers[what] = (raw(c, controller, api_key, version, body, timeout=60),
                                 time.monotonic() - start)
            except OSError as exc:
                answers[what] = (exc, time.monotonic() - start)

        zk.pause()
        try:
            threads = [threading.Thread(target=send, args=(what, *req))
                       for what, req in requests.items()]
            for t in threads:
                t.start()
            for t in threads:
                t.join(90)
        finally:
            zk.resume()
        codes = {}
        print({what: round(took, 2) for what, (_, took) in answers.items()})   # seconds
        for what, (answer, took) in answers.items():
            assert isinstance(answer, dict), (what, answer)
            assert took < ADMIN_TIMEOUT_MS / 1000 + SLACK_S, (what, took)
            if what == "DeleteTopics":
                codes[what] = answer["responses"][0]["error_code"]
            elif what == "CreatePartitions":
                codes[what] = answer["results"][0]["error_code"]
            elif what == "ElectLeaders":
                codes[what] = answer["replica_election_results"][0]["partition_result"][0][
                    "error_code"]
            else:
                codes[what] = answer["topics"][0]["error_code"]
        assert codes == {what: EC.REQUEST_TIMED_OUT for what in requests}, answers
        # ZooKeeper back: the controller (perhaps another one) carries out admin requests again
        def created():
            try:
                ctl = c.metadata(1)["controller_id"]
                return ctl > 0 and create_raw(c, ctl, "after", timeout_ms=10000)[
                    "error_code"] in (0, EC.TOPIC_ALREADY_EXISTS)
            except OSError:
                return False
        wait_for("admin requests answered again", created, TIMEOUT)
    finally:
        c.stop()
        zk.stop()
