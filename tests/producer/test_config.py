"""No silent no-ops: every producer setting the embedded producer accepts either does what Kafka's
does, is refused with ConfigError, or has its embedded meaning written down."""
import pytest

from klog import ConfigError
from klog.clientconfig import NETWORK_ONLY, PRODUCER
from klog.producer import UnacknowledgedFuture

from .conftest import NEVER


def test_every_accepted_setting_has_a_documented_meaning():
    # the ones that do exactly what Kafka's do need no note; all others must say what they mean
    plain = {"linger.ms", "batch.size", "batch.num.messages", "compression.type", "partitioner",
             "max.request.size"}
    undocumented = [name for name, s in PRODUCER.items() if name not in plain and not s.doc]
    assert undocumented == []
    assert all(isinstance(why, str) and why for why in NETWORK_ONLY.values())
    for name in ("retries", "request.timeout.ms", "max.in.flight.requests.per.connection",
                 "bootstrap.servers", "security.protocol"):
        assert name in NETWORK_ONLY


def test_transactional_id_is_refused(broker):
    with pytest.raises(ConfigError, match="transactional.id.*transactions are not supported"):
        broker.producer({"transactional.id": "orders-tx"})
    broker.producer({"transactional.id": ""}).close()   # the default: no transactions


def test_acks_zero_gives_offset_minus_one_like_kafka(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"acks": 0, "linger.ms": NEVER})
    f = p.send("t", b"a", key=b"k")
    assert isinstance(f, UnacknowledgedFuture) and not f.done()
    seen = []
    f.add_callback(seen.append)
    md = f.get()
    assert (md.topic, md.partition, md.offset) == ("t", 0, -1)
    assert f.done() and f.succeeded() and f.exception() is None
    assert [m.offset for m in seen] == [-1]
    assert [m.base_offset for m in p.send_batch("t", [b"b", b"c"])] == [-1]
    assert [r.value for r in broker.log("t", 0).records()] == [b"a", b"b", b"c"]   # all there
    acked = producers({"acks": "all", "linger.ms": NEVER})
    assert acked.send("t", b"d").get().offset == 3


def test_acks_zero_still_reports_errors_it_knows(broker, producers):
    broker.create_topic("t", 1, {"max.message.bytes": 100})
    p = producers({"acks": 0, "linger.ms": NEVER})
    f = p.send("t", b"x" * 500)
    with pytest.raises(Exception, match="(?i)large|max.message.bytes"):
        f.get()
    assert not f.succeeded()


@pytest.mark.parametrize("config,match", [
    ({"enable.idempotence": True, "acks": 1}, "acks=all"),
    ({"enable.idempotence": "true", "acks": "0"}, "acks=all"),
    ({"enable.idempotence": True, "retries": 0}, "retries"),
    ({"enable.idempotence": True, "max.in.flight.requests.per.connection": 6}, "max.in.flight"),
    ({"delivery.timeout.ms": 1_000}, r"delivery\.timeout\.ms \(1000\) must be at least"),
    ({"delivery.timeout.ms": 1_000, "linger.ms": 600, "request.timeout.ms": 500}, "linger.ms"),
    ({"retries": -1}, "retries"),
    ({"request.timeout.ms": "soon"}, "request.timeout.ms"),
])
def test_kafka_cross_checks_raise_config_error(broker, config, match):
    with pytest.raises(ConfigError, match=match):
        broker.producer(config)


def test_what_kafka_accepts_is_accepted(broker, producers):
    # idempotence left at its default gives way to acks=1, as in Kafka 3.x
    assert producers({"acks": 1}).config["enable.idempotence"] is True
    assert producers({"enable.idempotence": False, "acks": 1, "retries": 0})
    ok = producers({"delivery.timeout.ms": 1_000, "linger.ms": 100, "request.timeout.ms": 900})
    assert ok.config["delivery.timeout.ms"] == 1_000
    # unset, delivery.timeout.ms is raised to linger.ms + request.timeout.ms (Kafka does so)
    assert producers({"linger.ms": NEVER}).config["delivery.timeout.ms"] == NEVER + 30_000


def test_flush_and_get_timeouts_return_at_once_with_everything_appended(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"linger.ms": NEVER})
    futures = [p.send("t", b"v%d" % i) for i in range(10)]
    assert not any(f.done() for f in futures)
    assert p.flush(timeout=0) == 0          # confluent-kafka's: records still queued
    assert all(f.succeeded() for f in futures)
    late = p.send("t", b"late")
    assert late.get(timeout=0).offset == 10
    assert broker.log("t", 0).log_end_offset == 11
