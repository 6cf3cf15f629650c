"""The jepsen3 finding with raw requests against three real ``klog serve --zookeeper``
processes (127 acknowledged writes lost in bench/cluster_soak.py): an idempotent producer's
batch with sequences 0-4 is refused by a broker that does not lead the partition, and its next
batch (5-9) reaches the leader, which never stored anything from that producer. Acknowledging
it would let librdkafka count 0-4 as stored; the leader must answer
OUT_OF_ORDER_SEQUENCE_NUMBER, and a follower that replicates the leader's log must agree."""
import pytest

from klog._native.batch import build_batch
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey

from .brokers import Cluster, create_topic, live_brokers, wait_for

pytestmark = pytest.mark.needs_zookeeper


@pytest.fixture
def cluster(zookeeper, tmp_path):
    c = Cluster(zookeeper, tmp_path, ("min.insync.replicas=2",))
    try:
        for n in (1, 2, 3):
            c.start(n)
        wait_for("three registered brokers", lambda: live_brokers(c) == [1, 2, 3], 60)
        yield c
    finally:
        c.stop()


def test_batch_past_one_a_follower_refused_is_not_acknowledged(cluster):
    c = cluster
    create_topic(c, "gap")
    leader = c.partition(1, "gap")["leader_id"]
    follower = next(n for n in (1, 2, 3) if n != leader)
    r = c.raw(leader, ApiKey.INIT_PRODUCER_ID, 2, {"transactional_id": None,
                                                   "transaction_timeout_ms": -1})
    pid, epoch = r["producer_id"], r["producer_epoch"]

    def produce(n, seq, values):
        b = build_batch(values, producer_id=pid, producer_epoch=epoch, base_sequence=seq)
        p = c.raw(n, ApiKey.PRODUCE, 8, {"transactional_id": None, "acks": -1,
                                         "timeout_ms": 10000, "topic_data": [{"name": "gap",
                                         "partition_data": [{"index": 0, "records": b}]}]})
        p = p["responses"][0]["partition_responses"][0]
        return p["error_code"], p["base_offset"]

    first = [b"v%d" % i for i in range(5)]
    second = [b"v%d" % i for i in range(5, 10)]
    assert produce(follower, 0, first)[0] == EC.NOT_LEADER_OR_FOLLOWER
    assert produce(leader, 5, second)[0] == EC.OUT_OF_ORDER_SEQUENCE_NUMBER
    # In order, both are stored (and replicated: acks=all with min.insync.replicas=2).
    assert produce(leader, 0, first) == (EC.NONE, 0)
    assert produce(leader, 5, second) == (EC.NONE, 5)
