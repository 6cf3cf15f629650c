"""Topic admin on both backends: same results, same exceptions (with Kafka's error codes)."""
import pytest

from klog import errors
from klog.client import PartitionDescription, TopicDescription


def test_create_describe_list_delete(client):
    desc = client.create_topic("orders", 3, {"retention.ms": 3_600_000})
    assert isinstance(desc, TopicDescription)
    assert desc.name == "orders" and not desc.internal and len(desc.topic_id) == 36
    assert [p.partition for p in desc.partitions] == [0, 1, 2]
    assert all(isinstance(p, PartitionDescription) and p.log_end_offset == 0
               for p in desc.partitions)
    assert desc.config["retention.ms"] == 3_600_000
    assert desc.config["cleanup.policy"] == "delete"
    client.create_topic("defaults")
    assert len(client.describe_topic("defaults").partitions) == 1   # the broker's num.partitions
    assert client.list_topics() == ["defaults", "orders"]
    with client.producer() as p:
        p.send("orders", b"x", partition=2).get(30)
    assert client.describe_topic("orders").partitions[2].log_end_offset == 1
    client.delete_topic("orders")
    assert client.list_topics() == ["defaults"]


def test_alter_config_and_add_partitions(client):
    client.create_topic("t", 1)
    client.alter_topic_config("t", {"retention.ms": 5000, "cleanup.policy": "compact"})
    config = client.describe_topic("t").config
    assert (config["retention.ms"], config["cleanup.policy"]) == (5000, "compact")
    client.alter_topic_config("t", {"retention.ms": None})   # back to the default
    assert client.describe_topic("t").config["retention.ms"] == 7 * 24 * 3600 * 1000
    client.alter_topic_config("t", {"retention.ms": 1}, validate_only=True)
    assert client.describe_topic("t").config["retention.ms"] == 7 * 24 * 3600 * 1000
    client.add_partitions("t", 3)
    assert len(client.describe_topic("t").partitions) == 3
    client.add_partitions("t", 5, validate_only=True)
    assert len(client.describe_topic("t").partitions) == 3


@pytest.mark.parametrize("call, exc, code", [
    (lambda c: (c.create_topic("dup", 1), c.create_topic("dup", 1)), errors.TopicExistsError, 36),
    (lambda c: c.describe_topic("missing"), errors.UnknownTopicOrPartitionError, 3),
    (lambda c: c.delete_topic("missing"), errors.UnknownTopicOrPartitionError, 3),
    (lambda c: c.create_topic("bad/name", 1), errors.InvalidTopicError, 17),
    (lambda c: (c.create_topic("p", 2), c.add_partitions("p", 1)), errors.InvalidPartitionsError, 37),
    (lambda c: (c.create_topic("cfg", 1), c.alter_topic_config("cfg", {"retention.ms": "x"})),
     errors.ConfigError, 40),
    (lambda c: c.create_topic("cfg2", 1, {"no.such.config": "1"}), errors.ConfigError, 40),
], ids=["exists", "describe-unknown", "delete-unknown", "bad-name", "shrink", "bad-value",
        "unknown-config"])
def test_admin_errors_are_the_same_classes_with_kafka_codes(client, call, exc, code):
    with pytest.raises(exc) as info:
        call(client)
    assert info.value.error_code == code


def test_describe_topic_does_not_create_it(client):
    with pytest.raises(errors.UnknownTopicOrPartitionError):
        client.describe_topic("ghost")
    assert "ghost" not in client.list_topics()


def test_internal_topics_are_hidden_and_protected(client):
    with client.consumer("g", {"auto.offset.reset": "earliest"}) as c:   # creates the offsets topic
        client.create_topic("t", 1)
        c.assign([("t", 0)])
        c.commit({("t", 0): 0})
    assert "__consumer_offsets" not in client.list_topics()
    with pytest.raises(errors.InvalidRequestError):
        client.delete_topic("__consumer_offsets")


def test_topic_overrides_are_only_what_was_set(client):
    client.create_topic("t", 1, {"retention.ms": 60000})
    assert client.topic_overrides("t") == {"retention.ms": 60000}
    client.alter_topic_config("t", {"cleanup.policy": "compact"})
    assert client.topic_overrides("t") == {"retention.ms": 60000, "cleanup.policy": "compact"}
