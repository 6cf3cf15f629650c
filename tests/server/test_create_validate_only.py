"""CreateTopics validate_only on a single node runs the real create's checks (Kafka's
CreateTopics contract): the partition budget (max.partitions), the '.' / '_' collision rule,
names, configs, counts; confluent-kafka's AdminClient and kafka-python as the clients."""
import pytest

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient
from kafka.admin import NewTopic as KpNewTopic
from kafka import errors as kerr

from klog.server import ServerThread

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def small_server(tmp_path):
    s = ServerThread(tmp_path / "data", {"num.partitions": 1, "max.partitions": 5}).start()
    try:
        yield s
    finally:
        s.stop()


def _create(admin, topic, validate_only):
    try:
        admin.create_topics([topic], validate_only=validate_only)[topic.topic].result(20)
    except ck.KafkaException as exc:
        return exc.args[0]
    return None


def test_validate_only_runs_the_checks_of_a_real_create(small_server):
    admin = AdminClient({"bootstrap.servers": small_server.address})
    assert _create(admin, NewTopic("first.topic", 3, 1), False) is None
    # past max.partitions (3 + 3 > 5): refused by validate_only as by the real create
    for validate_only in (True, False):
        err = _create(admin, NewTopic("second", 3, 1), validate_only)
        assert err is not None and err.code() == ck.KafkaError.INVALID_PARTITIONS, validate_only
        assert "max.partitions" in err.str()
    # a name colliding with first.topic ('.' vs '_')
    for validate_only in (True, False):
        err = _create(admin, NewTopic("first_topic", 1, 1), validate_only)
        assert err is not None and err.code() == ck.KafkaError.TOPIC_ALREADY_EXISTS, validate_only
        assert "collides" in err.str()
    # what fits passes validation and creates nothing
    assert _create(admin, NewTopic("second", 2, 1), True) is None
    assert small_server.broker.list_topics() == ["first.topic"]
    # kafka-python: the same answers
    kp = KafkaAdminClient(bootstrap_servers=small_server.address)
    try:
        with pytest.raises(kerr.InvalidPartitionsError):
            kp.create_topics([KpNewTopic("third", 3, 1)], validate_only=True)
        kp.create_topics([KpNewTopic("third", 2, 1)], validate_only=True)
    finally:
        kp.close()
    assert small_server.broker.list_topics() == ["first.topic"]
