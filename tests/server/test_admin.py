"""Admin APIs and config resources of ``klog serve`` against confluent-kafka, kafka-python and
raw requests: config sources and synonyms, APPEND/SUBTRACT, dynamic broker configs, unsupported
resource types, CreatePartitions, AlterConfigs, OffsetDelete, DescribeCluster, DescribeLogDirs,
DescribeProducers, authorized operations, replica assignments, internal-topic protection."""
import json
import os
import socket
import time
import uuid

import pytest

import confluent_kafka as ck
import confluent_kafka.admin  # noqa: F401  (ck.admin)
from kafka import KafkaAdminClient, TopicPartition
from kafka import errors as kerr

from klog.protocol.messages import ApiKey
from klog.server import ServerThread

from .rawclient import call

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.filterwarnings("ignore:alter_configs has been deprecated:DeprecationWarning")]

A = ck.admin
TOPIC_OPS = {A.AclOperation.READ, A.AclOperation.WRITE, A.AclOperation.CREATE,
             A.AclOperation.DELETE, A.AclOperation.ALTER, A.AclOperation.DESCRIBE,
             A.AclOperation.DESCRIBE_CONFIGS, A.AclOperation.ALTER_CONFIGS}
CLUSTER_OPS = {A.AclOperation.CREATE, A.AclOperation.CLUSTER_ACTION, A.AclOperation.DESCRIBE_CONFIGS,
               A.AclOperation.ALTER_CONFIGS, A.AclOperation.IDEMPOTENT_WRITE, A.AclOperation.ALTER,
               A.AclOperation.DESCRIBE}
INVALID_REQUEST, INVALID_CONFIG, UNKNOWN_TOPIC = 42, 40, 3


def _admin(server):
    return A.AdminClient({"bootstrap.servers": server.address})


def _raw(server, api_key, version, body):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        return call(s, api_key, version, body)


def _error(future):
    with pytest.raises(ck.KafkaException) as exc:
        future.result(10)
    return exc.value.args[0]


def _incremental(admin, kind, name, *entries):
    res = A.ConfigResource(kind, name, incremental_configs=[
        A.ConfigEntry(k, v, incremental_operation=op) for k, v, op in entries])
    return admin.incremental_alter_configs([res])[res]


def _describe(admin, kind, name):
    res = A.ConfigResource(kind, name)
    return admin.describe_configs([res])[res].result(10)


def _create(admin, *topics):
    fs = admin.create_topics(list(topics))
    for f in fs.values():
        f.result(10)


# -- 1. config resources ---------------------------------------------------------------------------
def test_append_and_subtract_list_valued_topic_config(server):
    admin = _admin(server)
    _create(admin, A.NewTopic("cfg-list", 1, 1))
    Op = A.AlterConfigOpType
    _incremental(admin, A.ResourceType.TOPIC, "cfg-list", ("cleanup.policy", "compact", Op.APPEND)).result(10)
    assert _describe(admin, A.ResourceType.TOPIC, "cfg-list")["cleanup.policy"].value == "delete,compact"
    assert "compact" in server.broker.log("cfg-list", 0).config.cleanup_policy
    # appending what is there changes nothing; subtracting removes it
    _incremental(admin, A.ResourceType.TOPIC, "cfg-list", ("cleanup.policy", "compact", Op.APPEND)).result(10)
    _incremental(admin, A.ResourceType.TOPIC, "cfg-list", ("cleanup.policy", "delete", Op.SUBTRACT)).result(10)
    entry = _describe(admin, A.ResourceType.TOPIC, "cfg-list")["cleanup.policy"]
    assert entry.value == "compact" and entry.source == A.ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    # Kafka: APPEND / SUBTRACT on a config that is not a list is INVALID_REQUEST, with this text
    for op, verb in ((Op.APPEND, "append"), (Op.SUBTRACT, "subtract")):
        err = _error(_incremental(admin, A.ResourceType.TOPIC, "cfg-list", ("retention.ms", "5", op)))
        assert err.code() == ck.KafkaError.INVALID_REQUEST, err
        assert f"Config value {verb} is not allowed for config key: retention.ms" in err.str()
    assert _describe(admin, A.ResourceType.TOPIC, "cfg-list")["retention.ms"].is_default


def test_describe_configs_sources_synonyms_types_documentation(tmp_path):
    with ServerThread(tmp_path / "d", {"log.retention.hours": 1}) as srv:
        srv.broker.create_topic("syn", 1, {"segment.bytes": 4096})
        r = _raw(srv, ApiKey.DESCRIBE_CONFIGS, 4, {
            "include_synonyms": True, "include_documentation": True, "resources": [
                {"resource_type": 2, "resource_name": "syn", "configuration_keys": None},
                {"resource_type": 4, "resource_name": "0",
                 "configuration_keys": ["log.retention.ms", "num.partitions", "log.cleanup.policy"]}]})
        topic, brokr = ({c["name"]: c for c in res["configs"]} for res in r["results"])
        # not set on the topic: the broker's static log.retention.hours, then Kafka's default
        ret = topic["retention.ms"]
        assert ret["value"] == "3600000" and ret["config_source"] == 4 and not ret["read_only"]
        assert [(s["name"], s["value"], s["source"]) for s in ret["synonyms"]] == [
            ("log.retention.hours", "1", 4), ("log.retention.hours", "168", 5)]
        assert ret["config_type"] == 5 and ret["documentation"]          # LONG
        seg = topic["segment.bytes"]
        assert seg["config_source"] == 1 and seg["value"] == "4096"      # DYNAMIC_TOPIC_CONFIG
        assert [(s["name"], s["source"]) for s in seg["synonyms"]] == [
            ("segment.bytes", 1), ("log.segment.bytes", 5)]
        assert seg["config_type"] == 3                                   # INT
        pol = topic["cleanup.policy"]
        assert pol["config_source"] == 5 and pol["config_type"] == 7     # DEFAULT_CONFIG, LIST
        assert set(brokr) == {"log.retention.ms", "num.partitions", "log.cleanup.policy"}
        assert brokr["num.partitions"]["read_only"] and brokr["num.partitions"]["config_source"] == 5
        assert not brokr["log.retention.ms"]["read_only"]
        assert brokr["log.retention.ms"]["config_source"] == 4
        # without include_synonyms / include_documentation: none
        r = _raw(srv, ApiKey.DESCRIBE_CONFIGS, 4, {"resources": [
            {"resource_type": 2, "resource_name": "syn", "configuration_keys": ["retention.ms"]}]})
        (only,) = r["results"][0]["configs"]
        assert only["synonyms"] == [] and only["documentation"] is None
        # confluent-kafka reads the same sources and synonyms
        admin = _admin(srv)
        ret = _describe(admin, A.ResourceType.TOPIC, "syn")["retention.ms"]
        assert ret.source == A.ConfigSource.STATIC_BROKER_CONFIG.value and not ret.is_default
        assert "log.retention.hours" in ret.synonyms


def test_dynamic_broker_config_applies_persists_and_refuses_read_only(tmp_path):
    data = tmp_path / "d"
    with ServerThread(data, {"num.partitions": 1}) as srv:
        admin = _admin(srv)
        _create(admin, A.NewTopic("dyn", 1, 1), A.NewTopic("own", 1, 1, config={"retention.ms": "1000"}))
        Op = A.AlterConfigOpType
        _incremental(admin, A.ResourceType.BROKER, "0", ("log.retention.ms", "7200000", Op.SET)).result(10)
        # applied to the running broker: a topic without its own retention.ms takes it at once
        assert srv.broker.log("dyn", 0).config.retention_ms == 7200000
        assert srv.broker.log("own", 0).config.retention_ms == 1000
        entry = _describe(admin, A.ResourceType.TOPIC, "dyn")["retention.ms"]
        assert entry.value == "7200000" and entry.source == A.ConfigSource.DYNAMIC_BROKER_CONFIG.value
        b = _describe(admin, A.ResourceType.BROKER, "0")
        assert b["log.retention.ms"].source == A.ConfigSource.DYNAMIC_BROKER_CONFIG.value
        # the cluster-wide default ("") is a layer of its own, below the per-broker one
        # (confluent-kafka refuses an empty resource name: a raw request)
        r = _raw(srv, ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {"validate_only": False, "resources": [
            {"resource_type": 4, "resource_name": "", "configs": [
                {"name": "log.segment.bytes", "config_operation": 0, "value": "2097152"}]}]})
        assert r["responses"][0]["error_code"] == 0
        assert srv.broker.log("dyn", 0).config.segment_bytes == 2097152
        b = _describe(admin, A.ResourceType.BROKER, "0")
        assert b["log.segment.bytes"].source == A.ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
        # read-only configs are refused with Kafka's INVALID_REQUEST, naming the key; nothing changes
        err = _error(_incremental(admin, A.ResourceType.BROKER, "0",
                                  ("num.partitions", "3", Op.SET), ("log.retention.ms", "1", Op.SET)))
        assert err.code() == ck.KafkaError.INVALID_REQUEST and "num.partitions" in err.str(), err
        err = _error(_incremental(admin, A.ResourceType.BROKER, "0", ("log.retention.ms", "soon", Op.SET)))
        assert err.code() == ck.KafkaError.INVALID_REQUEST and "soon" in err.str(), err
        assert srv.broker.config["num.partitions"] == 1
        assert srv.broker.log("dyn", 0).config.retention_ms == 7200000
    doc = json.loads((data / "klog-broker-config.json").read_text())
    assert doc["broker"] == {"log.retention.ms": "7200000"}
    assert doc["default"] == {"log.segment.bytes": "2097152"}
    assert not os.path.exists(data / "klog-broker-config.json.tmp")
    # survives a restart, and DELETE goes back to the static / default value
    with ServerThread(data, {"num.partitions": 1}) as srv:
        assert srv.broker.log("dyn", 0).config.retention_ms == 7200000
        admin = _admin(srv)
        _incremental(admin, A.ResourceType.BROKER, "0",
                     ("log.retention.ms", None, A.AlterConfigOpType.DELETE)).result(10)
        assert srv.broker.log("dyn", 0).config.retention_ms == 7 * 24 * 3600 * 1000
        assert _describe(admin, A.ResourceType.TOPIC, "dyn")["retention.ms"].is_default


def test_damaged_broker_config_file_fails_the_open(tmp_path):
    data = tmp_path / "d"
    ServerThread(data).start().stop()
    (data / "klog-broker-config.json").write_text('{"version": 1, "broker": {"log.retention.ms": "x"}, '
                                                  '"default": {}}')
    from klog.errors import CorruptLogError
    with pytest.raises(CorruptLogError, match="klog-broker-config.json"):
        ServerThread(data)


@pytest.mark.parametrize("kind", [3, 8])   # GROUP, BROKER_LOGGER
def test_unsupported_resource_types_answer_invalid_request(server, kind):
    r = _raw(server, ApiKey.DESCRIBE_CONFIGS, 4, {"resources": [
        {"resource_type": kind, "resource_name": "g", "configuration_keys": None}]})
    assert r["results"][0]["error_code"] == INVALID_REQUEST
    r = _raw(server, ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {"validate_only": False, "resources": [
        {"resource_type": kind, "resource_name": "g", "configs": [
            {"name": "consumer.session.timeout.ms", "config_operation": 0, "value": "45000"}]}]})
    assert r["responses"][0]["error_code"] == INVALID_REQUEST
    r = _raw(server, ApiKey.ALTER_CONFIGS, 2, {"validate_only": False, "resources": [
        {"resource_type": kind, "resource_name": "g", "configs": [
            {"name": "consumer.session.timeout.ms", "value": "45000"}]}]})
    assert r["responses"][0]["error_code"] == INVALID_REQUEST


def test_describe_configs_of_another_broker_is_invalid_request(server):
    r = _raw(server, ApiKey.DESCRIBE_CONFIGS, 1, {"include_synonyms": False, "resources": [
        {"resource_type": 4, "resource_name": "7", "configuration_keys": None}]})
    assert r["results"][0]["error_code"] == INVALID_REQUEST


def test_legacy_alter_configs_replaces_the_overrides(server):
    admin = _admin(server)
    _create(admin, A.NewTopic("legacy", 1, 1, config={"retention.ms": "5000", "segment.bytes": "4096"}))
    res = A.ConfigResource(A.ResourceType.TOPIC, "legacy", set_config={"retention.ms": "9000"})
    admin.alter_configs([res])[res].result(10)
    configs = _describe(admin, A.ResourceType.TOPIC, "legacy")
    assert configs["retention.ms"].value == "9000"
    assert configs["segment.bytes"].is_default          # not named: back to the default
    assert server.broker.topic_overrides("legacy") == {"retention.ms": 9000}
    bad = A.ConfigResource(A.ResourceType.TOPIC, "legacy", set_config={"retention.ms": "later"})
    assert _error(admin.alter_configs([bad])[bad]).code() == ck.KafkaError.INVALID_CONFIG
    # kafka-python's legacy path too
    k = KafkaAdminClient(bootstrap_servers=server.address)
    try:
        from kafka.admin import ConfigResource, ConfigResourceType
        k.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "legacy",
                                        configs={"segment.bytes": "8192"})], incremental=False)
        # (kafka-python resends the configs set now, so nothing is reset by accident)
        assert server.broker.topic_overrides("legacy") == {"retention.ms": 9000, "segment.bytes": 8192}
    finally:
        k.close()


# -- 2. admin APIs ---------------------------------------------------------------------------------
def test_create_partitions(server):
    admin = _admin(server)
    _create(admin, A.NewTopic("grow", 1, 1))
    admin.create_partitions([A.NewPartitions("grow", 3)])["grow"].result(10)
    assert server.broker.partition_count("grow") == 3
    deadline = time.monotonic() + 10
    while len(admin.list_topics(timeout=10).topics["grow"].partitions) != 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(admin.list_topics(timeout=10).topics["grow"].partitions) == 3
    err = _error(admin.create_partitions([A.NewPartitions("grow", 2)])["grow"])
    assert err.code() == ck.KafkaError.INVALID_PARTITIONS
    err = _error(admin.create_partitions([A.NewPartitions("grow", 4, replica_assignment=[[5]])])["grow"])
    assert err.code() == ck.KafkaError.INVALID_REPLICA_ASSIGNMENT
    admin.create_partitions([A.NewPartitions("grow", 4, replica_assignment=[[0]])])["grow"].result(10)
    assert server.broker.partition_count("grow") == 4
    admin.create_partitions([A.NewPartitions("grow", 6)], validate_only=True)["grow"].result(10)
    assert server.broker.partition_count("grow") == 4
    err = _error(admin.create_partitions([A.NewPartitions("never", 2)])["never"])
    assert err.code() == ck.KafkaError.UNKNOWN_TOPIC_OR_PART
    # kafka-python
    from kafka.admin import NewPartitions
    k = KafkaAdminClient(bootstrap_servers=server.address)
    try:
        k.create_partitions({"grow": NewPartitions(5)})
        assert server.broker.partition_count("grow") == 5
    finally:
        k.close()


def test_create_topics_with_replica_assignment(server):
    admin = _admin(server)
    admin.create_topics([A.NewTopic("assigned", num_partitions=2, replication_factor=-1,
                                    replica_assignment=[[0], [0]])])["assigned"].result(10)
    assert server.broker.partition_count("assigned") == 2
    err = _error(admin.create_topics([A.NewTopic("elsewhere", num_partitions=1, replication_factor=-1,
                                                 replica_assignment=[[3]])])["elsewhere"])
    assert err.code() == ck.KafkaError.INVALID_REPLICA_ASSIGNMENT
    err = _error(admin.create_topics([A.NewTopic("twice", num_partitions=1, replication_factor=-1,
                                                 replica_assignment=[[0, 0]])])["twice"])
    assert err.code() == ck.KafkaError.INVALID_REPLICA_ASSIGNMENT
    assert not server.broker.has_topic("elsewhere") and not server.broker.has_topic("twice")
    # Kafka: with an assignment, replication_factor (and num_partitions) must be -1
    r = _raw(server, ApiKey.CREATE_TOPICS, 5, {"timeout_ms": 1000, "validate_only": False, "topics": [
        {"name": "rf1", "num_partitions": -1, "replication_factor": 1, "configs": [],
         "assignments": [{"partition_index": 0, "broker_ids": [0]}]}]})
    assert r["topics"][0]["error_code"] == INVALID_REQUEST
    assert not server.broker.has_topic("rf1")


def test_offset_delete(server):
    admin = _admin(server)
    _create(admin, A.NewTopic("od-sub", 1, 1), A.NewTopic("od-other", 1, 1))
    p = ck.Producer({"bootstrap.servers": server.address})
    for t in ("od-sub", "od-other"):
        for i in range(5):
            p.produce(t, b"x%d" % i)
    assert p.flush(15) == 0
    k = KafkaAdminClient(bootstrap_servers=server.address)
    try:
        # an Empty group (manual commits): offsets are deleted
        gc = server.broker.group_coordinator
        from kafka.structs import OffsetAndMetadata
        k.alter_group_offsets("od-empty", {TopicPartition("od-sub", 0): OffsetAndMetadata(3, "", -1)})
        assert k.delete_group_offsets("od-empty", [TopicPartition("od-sub", 0)]) == {
            TopicPartition("od-sub", 0): kerr.NoError}
        assert gc.fetch_offsets("od-empty").offsets == {}
        with pytest.raises(kerr.GroupIdNotFoundError):
            k.delete_group_offsets("od-never", [TopicPartition("od-sub", 0)])
        assert k.delete_group_offsets("od-empty", [TopicPartition("od-none", 0)]) == {
            TopicPartition("od-none", 0): kerr.UnknownTopicOrPartitionError}

        # a live consumer group: the subscribed topic's offsets stay, the others go
        group = "od-live-" + uuid.uuid4().hex[:6]
        c = ck.Consumer({"bootstrap.servers": server.address, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe(["od-sub"])
        deadline = time.monotonic() + 30
        while not c.assignment() and time.monotonic() < deadline:
            c.poll(0.2)
        assert c.assignment()
        c.commit(offsets=[ck.TopicPartition("od-sub", 0, 2), ck.TopicPartition("od-other", 0, 4)],
                 asynchronous=False)
        res = k.delete_group_offsets(group, [TopicPartition("od-sub", 0), TopicPartition("od-other", 0)])
        assert res == {TopicPartition("od-sub", 0): kerr.GroupSubscribedToTopicError,
                       TopicPartition("od-other", 0): kerr.NoError}
        offsets = gc.fetch_offsets(group).offsets
        assert [(tp.topic, o.offset) for tp, o in offsets.items()] == [("od-sub", 2)]
        c.close()
    finally:
        k.close()


def test_offset_delete_non_consumer_group_with_members_is_non_empty(server):
    server.broker.create_topic("od-conn", 1)
    gc = server.broker.group_coordinator
    fut = gc.join_group("od-connect", "", "connect", [("default", b"")], 10000, 10000,
                        require_known_member_id=False)
    assert fut.result(10).error == 0
    r = _raw(server, ApiKey.OFFSET_DELETE, 0, {"group_id": "od-connect", "topics": [
        {"name": "od-conn", "partitions": [{"partition_index": 0}]}]})
    assert r["error_code"] == 68   # NON_EMPTY_GROUP


def test_describe_cluster_and_authorized_operations(server):
    admin = _admin(server)
    d = admin.describe_cluster(include_authorized_operations=True).result(10)
    assert d.cluster_id == server.server.cluster_id
    assert [(n.id, n.port) for n in d.nodes] == [(0, server.port)]
    assert d.controller.id == 0
    assert set(d.authorized_operations) == CLUSTER_OPS
    d = admin.describe_cluster().result(10)
    assert d.authorized_operations is None   # not asked: INT32_MIN, "not provided"
    _create(admin, A.NewTopic("ops", 2, 1))
    t = admin.describe_topics(ck.TopicCollection(["ops"]), include_authorized_operations=True)["ops"].result(10)
    assert set(t.authorized_operations) == TOPIC_OPS
    # kafka-python's describe_cluster asks for them too
    k = KafkaAdminClient(bootstrap_servers=server.address)
    try:
        info = k.describe_cluster()
        assert info["cluster_id"] == server.server.cluster_id
        assert [b["broker_id"] for b in info["brokers"]] == [0]
    finally:
        k.close()
    r = _raw(server, ApiKey.METADATA, 10, {"topics": [{"name": "ops"}],
                                           "allow_auto_topic_creation": False,
                                           "include_cluster_authorized_operations": True,
                                           "include_topic_authorized_operations": True})
    assert r["cluster_authorized_operations"] == sum(1 << int(op.value) for op in CLUSTER_OPS)
    assert r["topics"][0]["topic_authorized_operations"] == sum(1 << int(op.value) for op in TOPIC_OPS)
    r = _raw(server, ApiKey.METADATA, 10, {"topics": [{"name": "ops"}], "allow_auto_topic_creation": False})
    assert r["topics"][0]["topic_authorized_operations"] == -(1 << 31)


def test_describe_log_dirs(server):
    admin = _admin(server)
    _create(admin, A.NewTopic("dirs", 2, 1))
    p = ck.Producer({"bootstrap.servers": server.address})
    for i in range(20):
        p.produce("dirs", b"v" * 100, partition=0)
    assert p.flush(15) == 0
    size = server.broker.log("dirs", 0).size
    assert size > 2000
    k = KafkaAdminClient(bootstrap_servers=server.address)
    try:
        (out,) = k.describe_log_dirs()
        (d,) = out["log_dirs"]
        assert d["error_code"] == 0 and d["log_dir"] == server.broker.data_dir
        topics = {t["name"]: t for t in d["topics"]}
        parts = {p["partition_index"]: p for p in topics["dirs"]["partitions"]}
        assert parts[0]["partition_size"] == size and parts[0]["offset_lag"] == 0
        assert parts[1]["partition_size"] == 0
        assert d["total_bytes"] > 0 and 0 <= d["usable_bytes"] <= d["total_bytes"]
        (out,) = k.describe_log_dirs({"dirs": [1]})
        assert [(t["name"], [p["partition_index"] for p in t["partitions"]])
                for t in out["log_dirs"][0]["topics"]] == [("dirs", [1])]
    finally:
        k.close()


def test_describe_producers(server):
    admin = _admin(server)
    _create(admin, A.NewTopic("prod", 1, 1))
    p = ck.Producer({"bootstrap.servers": server.address, "enable.idempotence": True})
    for i in range(7):
        p.produce("prod", b"m%d" % i, partition=0, timestamp=1_700_000_000_000 + i)
    assert p.flush(15) == 0
    k = KafkaAdminClient(bootstrap_servers=server.address)
    try:
        tp = TopicPartition("prod", 0)
        state = k.describe_producers([tp])[tp]
        (ps,) = state.active_producers
        assert ps.producer_id >= 0 and ps.producer_epoch == 0 and ps.last_sequence == 6
        assert ps.last_timestamp == 1_700_000_000_006
        with pytest.raises(kerr.UnknownTopicOrPartitionError):
            k.describe_producers([TopicPartition("prod", 5)], broker_id=0)
    finally:
        k.close()


def test_api_versions_advertises_the_admin_apis(server):
    r = _raw(server, ApiKey.API_VERSIONS, 3, {"client_software_name": "t", "client_software_version": "1"})
    got = {k["api_key"]: (k["min_version"], k["max_version"]) for k in r["api_keys"]}
    assert got[33] == (0, 2) and got[35] == (1, 4) and got[37] == (0, 3)
    assert got[47] == (0, 0) and got[60] == (0, 2) and got[61] == (0, 0)


# -- 3. internal topics ----------------------------------------------------------------------------
def _with_offsets_topic(server):
    c = ck.Consumer({"bootstrap.servers": server.address, "group.id": "keeper",
                     "enable.auto.commit": False})
    server.broker.create_topic("kept", 1)
    c.commit(offsets=[ck.TopicPartition("kept", 0, 0)], asynchronous=False)
    c.close()
    assert server.broker.has_topic("__consumer_offsets")


def test_internal_topic_cannot_be_deleted_grown_or_recleaned_over_the_wire(server):
    _with_offsets_topic(server)
    admin = _admin(server)
    name = "__consumer_offsets"
    err = _error(admin.delete_topics([name])[name])
    assert err.code() == ck.KafkaError.INVALID_REQUEST
    err = _error(admin.create_partitions([A.NewPartitions(name, 60)])[name])
    assert err.code() == ck.KafkaError.INVALID_REQUEST and "internal" in err.str()
    err = _error(admin.create_partitions([A.NewPartitions(name, 60)], validate_only=True)[name])
    assert err.code() == ck.KafkaError.INVALID_REQUEST
    Op = A.AlterConfigOpType
    for entry in [("cleanup.policy", "delete", Op.SET), ("cleanup.policy", None, Op.DELETE),
                  ("cleanup.policy", "delete", Op.APPEND)]:
        err = _error(_incremental(admin, A.ResourceType.TOPIC, name, entry))
        assert err.code() == ck.KafkaError.INVALID_REQUEST and "cleanup.policy" in err.str(), entry
    res = A.ConfigResource(A.ResourceType.TOPIC, name, incremental_configs=[
        A.ConfigEntry("cleanup.policy", "delete", incremental_operation=Op.SET)])
    err = _error(admin.incremental_alter_configs([res], validate_only=True)[res])
    assert err.code() == ck.KafkaError.INVALID_REQUEST
    # subtracting its only policy leaves an empty one: not a valid value in the first place
    err = _error(_incremental(admin, A.ResourceType.TOPIC, name, ("cleanup.policy", "compact", Op.SUBTRACT)))
    assert err.code() == ck.KafkaError.INVALID_CONFIG
    res = A.ConfigResource(A.ResourceType.TOPIC, name, set_config={"retention.ms": "1000"})
    assert _error(admin.alter_configs([res])[res]).code() == ck.KafkaError.INVALID_REQUEST
    # other configs of it may change
    _incremental(admin, A.ResourceType.TOPIC, name, ("segment.ms", "3600000", Op.SET)).result(10)
    assert server.broker.has_topic(name)
    assert server.broker.partition_count(name) == 50
    assert server.broker.describe_topic(name).config["cleanup.policy"] == "compact"
    assert server.broker.group_coordinator.fetch_offsets("keeper").offsets


def test_internal_topic_protection_in_the_broker(tmp_path):
    import klog
    from klog.errors import InternalTopicError
    from klog.metadata import INTERNAL_TOPICS, is_internal
    assert INTERNAL_TOPICS == {"__consumer_offsets", "__transaction_state"}
    assert is_internal("__transaction_state") and not is_internal("__other")
    with klog.open(tmp_path / "d") as broker:
        broker.create_topic("t", 1)
        broker.group_coordinator.commit_offsets("g", "", -1, {("t", 0): 1})
        with pytest.raises(InternalTopicError) as exc:
            broker.delete_topic("__consumer_offsets")
        assert exc.value.error_code == 42
        with pytest.raises(InternalTopicError):
            broker.add_partitions("__consumer_offsets", 51)
        with pytest.raises(InternalTopicError):
            broker.alter_topic_config("__consumer_offsets", {"cleanup.policy": "delete"})
        broker.alter_topic_config("__consumer_offsets", {"cleanup.policy": "compact"})   # no change
        assert broker.has_topic("__consumer_offsets")
