"""Metadata on a single node, answered by the one handler a cluster member uses too
(klog.server.topic_metadata): internal topics in all-topics answers, Kafka's errors for bad
names and unknown ids, allow_auto_topic_creation; confluent-kafka and kafka-python as the
clients that list topics, and kcat -L."""
import re
import socket
import uuid

import pytest

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient

from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey

from .rawclient import call
from .test_kcat import kcat

pytestmark = pytest.mark.timeout(120)


def _metadata(server, topics, version=9, auto=False):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        body = {"topics": topics, "allow_auto_topic_creation": auto,
                "include_cluster_authorized_operations": False,
                "include_topic_authorized_operations": False}
        return call(s, ApiKey.METADATA, version, body)


def _commit_offset(server, group, topic):
    c = ck.Consumer({"bootstrap.servers": server.address, "group.id": group,
                     "enable.auto.commit": False})
    try:
        c.commit(offsets=[ck.TopicPartition(topic, 0, 1)], asynchronous=False)
    finally:
        c.close()


def test_all_topics_lists_internal_topics_once_they_exist(server):
    """Kafka lists ``__consumer_offsets`` (is_internal=true) in an all-topics answer; a single
    node answered without it."""
    server.broker.create_topic("plain", 1)
    names = {t["name"]: t["is_internal"] for t in _metadata(server, None)["topics"]}
    assert names == {"plain": False}
    _commit_offset(server, "g", "plain")
    for version in (1, 9, 12):
        names = {t["name"]: t["is_internal"] for t in _metadata(server, None, version)["topics"]}
        assert names == {"plain": False, "__consumer_offsets": True}, version
    [t] = _metadata(server, [{"name": "__consumer_offsets"}])["topics"]
    assert (t["error_code"], t["is_internal"]) == (0, True)
    assert len(t["partitions"]) == server.broker.config["offsets.topic.num.partitions"]
    listed = AdminClient({"bootstrap.servers": server.address}).list_topics(timeout=10).topics
    assert "__consumer_offsets" in listed and "plain" in listed
    out, _ = kcat(server, "-L")     # librdkafka's CLI lists it like any topic
    assert re.findall(r'topic "([^"]+)" with', out) and \
        set(re.findall(r'topic "([^"]+)" with', out)) == {"plain", "__consumer_offsets"}, out
    from kafka.admin import KafkaAdminClient
    kp = KafkaAdminClient(bootstrap_servers=server.address)
    try:
        assert set(kp.list_topics()) == {"plain", "__consumer_offsets"}
    finally:
        kp.close()


def test_invalid_topic_names_answer_invalid_topic_exception(server):
    """Kafka: a name that is not a legal topic name is INVALID_TOPIC_EXCEPTION whether or not
    it may be auto-created (it was UNKNOWN_TOPIC_OR_PARTITION without auto-creation)."""
    for auto in (False, True):
        topics = _metadata(server, [{"name": "no spaces"}, {"name": "x" * 250}], auto=auto)
        assert [t["error_code"] for t in topics["topics"]] == \
            [EC.INVALID_TOPIC_EXCEPTION] * 2, auto
    assert server.broker.list_topics() == []


def test_allow_auto_topic_creation_is_honoured(server):
    """v4+ allow_auto_topic_creation=false: unknown and nothing created; true (and before v4,
    where the field does not exist) creates it; a topic asked by id is never created, and an
    internal one never by Metadata."""
    [t] = _metadata(server, [{"name": "not-yet"}], auto=False)["topics"]
    assert t["error_code"] == EC.UNKNOWN_TOPIC_OR_PARTITION
    assert not server.broker.has_topic("not-yet")
    [t] = _metadata(server, [{"name": "not-yet"}], auto=True)["topics"]
    assert t["error_code"] == 0 and len(t["partitions"]) == 1
    [t] = _metadata(server, [{"name": "old-client"}], version=3)["topics"]
    assert t["error_code"] == 0 and server.broker.has_topic("old-client")
    missing = uuid.uuid4()
    [t] = _metadata(server, [{"name": None, "topic_id": missing}], version=12, auto=True)["topics"]
    assert (t["error_code"], t["name"], t["topic_id"]) == (EC.UNKNOWN_TOPIC_ID, None, missing)
    [t] = _metadata(server, [{"name": "__consumer_offsets"}], auto=True)["topics"]
    assert t["error_code"] == EC.UNKNOWN_TOPIC_OR_PARTITION


def test_a_mixed_request_answers_each_topic_in_order(server):
    """Names and ids in one request (v12): each answered at its place."""
    server.broker.create_topic("a", 2)
    tid = uuid.UUID(server.broker.describe_topic("a").topic_id)
    missing = uuid.uuid4()
    topics = _metadata(server, [{"name": "unknown-name"}, {"name": None, "topic_id": missing},
                                {"name": None, "topic_id": tid}, {"name": "a"}],
                       version=12)["topics"]
    assert [(t["error_code"], t["name"]) for t in topics] == [
        (EC.UNKNOWN_TOPIC_OR_PARTITION, "unknown-name"), (EC.UNKNOWN_TOPIC_ID, None),
        (0, "a"), (0, "a")]
    assert topics[2]["topic_id"] == tid and len(topics[2]["partitions"]) == 2
