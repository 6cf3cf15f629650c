"""An acks=all batch waiting at a leader when the controller gives the partition a new leader
epoch with the SAME leader (dead followers taken out of the ISR), with raw requests against
three real ``klog serve --zookeeper`` processes. The batch is in the leader's log and stays:
the answer must be Kafka's (by the high watermark and min.insync.replicas), never
NOT_LEADER_OR_FOLLOWER, which librdkafka reads as "not stored" (MsgNotPersisted) and, at its next
producer-epoch bump, re-sends under the new epoch: stored twice. Found by the cluster fault
soak (bench/cluster_soak.py: duplicates after kill2 with the leader surviving).

replica.lag.time.max.ms is long here so that the controller (followers' sessions expiring after
6 s), not the leader's own ISR shrink, changes the ISR: that change bumps the leader epoch."""
import pytest

from klog._native.batch import build_batch
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey

from .brokers import create_topic, wait_for

pytestmark = pytest.mark.needs_zookeeper


@pytest.fixture
def cluster(make_cluster):
    return make_cluster(("min.insync.replicas=2", "replica.lag.time.max.ms=30000"))


def produce(c, n, topic, batch, timeout_ms=30000):
    r = c.raw(n, ApiKey.PRODUCE, 8, {
        "transactional_id": None, "acks": -1, "timeout_ms": timeout_ms, "topic_data": [
            {"name": topic, "partition_data": [{"index": 0, "records": batch}]}]})
    p = r["responses"][0]["partition_responses"][0]
    return p["error_code"], p["base_offset"]


def state(c, topic):
    """Partition 0 as the live brokers see it (the one with the highest leader epoch)."""
    seen = []
    for n in sorted(c.procs):
        try:
            seen.append(c.partition(n, topic))
        except OSError:           # not listening yet
            pass
    return max(seen, key=lambda p: p["leader_epoch"], default=None)


def init_pid(c, n):
    r = c.raw(n, ApiKey.INIT_PRODUCER_ID, 2, {"transactional_id": None,
                                               "transaction_timeout_ms": -1})
    assert r["error_code"] == 0, r
    return r["producer_id"], r["producer_epoch"]


def test_acks_all_pending_through_a_leader_epoch_change_is_not_answered_not_leader(cluster):
    """The followers die while an acks=all batch waits at the leader; their sessions expire and
    the controller takes them out of the ISR with a new leader epoch, the SAME leader. The batch
    is in the leader's log and stays there: the answer must not be NOT_LEADER_OR_FOLLOWER
    (clients read it as "not stored"), but Kafka's: once the HW passes the batch, NONE or,
    with the ISR below min.insync.replicas, NOT_ENOUGH_REPLICAS_AFTER_APPEND."""
    c = cluster
    create_topic(c, "idem")
    leader = c.partition(1, "idem")["leader_id"]
    followers = [n for n in (1, 2, 3) if n != leader]
    pid, pepoch = init_pid(c, leader)
    first = build_batch([b"a"], producer_id=pid, producer_epoch=pepoch, base_sequence=0)
    wait_for("the first batch stored", lambda: produce(c, leader, "idem", first) == (0, 0))
    for f in followers:
        c.kill(f)
    code, base = produce(c, leader, "idem", build_batch(
        [b"b"], producer_id=pid, producer_epoch=pepoch, base_sequence=1), timeout_ms=25000)
    now = state(c, "idem")
    assert now["leader_id"] == leader and now["leader_epoch"] >= 1, now   # the epoch changed
    assert code in (EC.NONE, EC.NOT_ENOUGH_REPLICAS_AFTER_APPEND, EC.REQUEST_TIMED_OUT), \
        (code, base, c.log_output())
