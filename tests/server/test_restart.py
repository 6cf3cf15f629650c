"""A server restart in the middle of a stream, with a group consumer and an idempotent producer
of confluent-kafka connected: both reconnect on their own; the consumer resumes at its committed
offsets; every acknowledged record is in the log exactly once."""
import time

import pytest

import confluent_kafka as ck

from klog.server import ServerThread

pytestmark = pytest.mark.timeout(120)

TOPIC = "restart"
PARTITIONS = 2
CONFIG = {"num.partitions": PARTITIONS, "group.initial.rebalance.delay.ms": 0}
RECONNECT = {"reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 300}


def _poll_into(consumer, seen, done, timeout):
    """Poll into ``seen`` until ``done()`` and the consumer's positions are committed. While the
    server restarts, commits fail (no coordinator, then the assignment is lost until the member
    rejoins): keep polling, which rejoins, and commit again (a later commit covers the records
    of a failed one)."""
    deadline = time.monotonic() + timeout
    owed = False
    while not done() or owed:
        assert time.monotonic() < deadline, f"{len(seen)} records, commit owed: {owed}"
        msgs = consumer.consume(100, 0.2)
        good = [m for m in msgs if m.error() is None]
        seen.extend((m.partition(), m.offset(), m.value()) for m in good)
        if good or owed:
            try:
                consumer.commit(asynchronous=False)
                owed = False
            except ck.KafkaException:
                owed = True


def test_group_consumer_and_idempotent_producer_across_restart(tmp_path):
    data = tmp_path / "data"
    srv = ServerThread(data, CONFIG).start()
    port = srv.port
    address = srv.address
    acked, failed = [], []

    def on_delivery(err, msg):
        (failed if err is not None else acked).append(msg.value())

    producer = ck.Producer({"bootstrap.servers": address, "enable.idempotence": True,
                            "linger.ms": 2, "message.timeout.ms": 60000, **RECONNECT})
    consumer = ck.Consumer({"bootstrap.servers": address, "group.id": "restart-g",
                            "auto.offset.reset": "earliest", "enable.auto.commit": False,
                            "session.timeout.ms": 10000, **RECONNECT})
    before_restart = []
    after_restart = []
    try:
        for i in range(200):
            producer.produce(TOPIC, key=b"k%d" % (i % 7), value=b"v%04d" % i,
                             on_delivery=on_delivery)
        assert producer.flush(20) == 0
        consumer.subscribe([TOPIC])
        _poll_into(consumer, before_restart, lambda: len(before_restart) >= 120, 30)
        assert len(before_restart) >= 120
        committed = {tp.partition: tp.offset for tp in consumer.committed(
            [ck.TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=10)}

        srv.stop()
        # Records produced while the server is down wait in the client and go out after.
        for i in range(200, 300):
            producer.produce(TOPIC, key=b"k%d" % (i % 7), value=b"v%04d" % i,
                             on_delivery=on_delivery)
        producer.poll(0.5)
        srv = ServerThread(data, CONFIG, port=port).start()
        for i in range(300, 400):
            producer.produce(TOPIC, key=b"k%d" % (i % 7), value=b"v%04d" % i,
                             on_delivery=on_delivery)
        assert producer.flush(60) == 0

        _poll_into(consumer, after_restart, lambda: len(
            {(p, off) for p, off, _ in before_restart + after_restart}) == 400, 60)
        # After the restart every partition resumes at its committed offset, never earlier:
        # records are delivered again only if their commit was lost in the restart.
        firsts = {}
        for p, off, _ in after_restart:
            firsts.setdefault(p, off)
        for p, off in firsts.items():
            assert off >= committed.get(p, 0), (p, off, committed)
        final = {tp.partition: tp.offset for tp in consumer.committed(
            [ck.TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=10)}
    finally:
        consumer.close()
        srv.stop()

    assert not failed, failed[:5]
    assert sorted(acked) == [b"v%04d" % i for i in range(400)]   # every record acknowledged
    srv = ServerThread(data, CONFIG).start()
    try:
        logs = [srv.broker.log(TOPIC, p) for p in range(PARTITIONS)]
        stored = [r.value for log in logs for r in log.records()]
        ends = {p: log.log_end_offset for p, log in enumerate(logs)}
    finally:
        srv.stop()
    assert sorted(stored) == sorted(acked), "an acknowledged record lost or stored twice"
    consumed = before_restart + after_restart
    assert {v for _, _, v in consumed} == set(acked), "a record never reached the consumer"
    assert final == ends   # the group's commits reached the end of every partition
