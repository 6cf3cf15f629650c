"""A confluent-kafka consumer positioned below the log start resets as ``auto.offset.reset`` says
and keeps consuming.

The server answers such a fetch OFFSET_OUT_OF_RANGE; librdkafka 2.x drops a whole Fetch v12
response whose errored partition carries a null record set ("invalid MessageSetSize -1"), so the
error never reached the reset logic and the consumer sat still.
"""
import socket
import time

import pytest

import confluent_kafka as ck

from klog.protocol.messages import ApiKey

from .rawclient import call

pytestmark = pytest.mark.timeout(90)

RECORDS = 100   # offsets 0..99, ten batches of ten


def value(i):
    return b"r%03d" % i + b"." * 40


def _fill(server, topic, config=None):
    server.broker.create_topic(topic, 1, config or {})
    log = server.broker.log(topic, 0)
    for b in range(RECORDS // 10):
        log.append([value(b * 10 + i) for i in range(10)])
    return log


def _delete_records(server, topic, before):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        r = call(s, ApiKey.DELETE_RECORDS, 2, {"topics": [{"name": topic, "partitions": [
            {"partition_index": 0, "offset": before}]}], "timeout_ms": 5000})
    part = r["topics"][0]["partitions"][0]
    assert (part["error_code"], part["low_watermark"]) == (0, before)


def _move_log_start(server, topic, how):
    """Advance the log start past offset 10 by DeleteRecords or by size retention; returns it."""
    if how == "delete-records":
        _fill(server, topic)
        _delete_records(server, topic, 50)
        return 50
    # ~1 KiB segments of two batches; keep about the newest 2 KiB
    log = _fill(server, topic, {"segment.bytes": 1024, "retention.bytes": 2048})
    assert server.broker.enforce_retention() > 0
    assert log.log_start_offset > 10
    return log.log_start_offset


def _consumer(server, reset):
    return ck.Consumer({"bootstrap.servers": server.address, "group.id": "reset-" + reset,
                        "auto.offset.reset": reset, "enable.auto.commit": False,
                        "fetch.wait.max.ms": 50})


def _poll_until(consumer, want, deadline, produce_tick=None):
    got = []
    while len(got) < want:
        assert time.monotonic() < deadline, f"only {[m.offset() for m in got]} arrived"
        if produce_tick:
            produce_tick()
        m = consumer.poll(0.1)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append(m)
    return got


@pytest.mark.parametrize("how", ["delete-records", "retention"])
def test_consumer_below_log_start_resets_to_earliest(server, how):
    topic = "reset-early-" + how
    start = _move_log_start(server, topic, how)
    c = _consumer(server, "earliest")
    try:
        c.assign([ck.TopicPartition(topic, 0, 10)])   # below the log start now
        got = _poll_until(c, RECORDS - start, time.monotonic() + 30)
        assert [m.offset() for m in got] == list(range(start, RECORDS))
        assert [m.value() for m in got] == [value(i) for i in range(start, RECORDS)]
        # and it keeps consuming what comes next
        server.broker.log(topic, 0).append([b"later0", b"later1"])
        more = _poll_until(c, 2, time.monotonic() + 20)
        assert [(m.offset(), m.value()) for m in more] == [(RECORDS, b"later0"),
                                                          (RECORDS + 1, b"later1")]
    finally:
        c.close()


@pytest.mark.parametrize("how", ["delete-records", "retention"])
def test_consumer_below_log_start_resets_to_latest(server, how):
    topic = "reset-late-" + how
    _move_log_start(server, topic, how)
    log = server.broker.log(topic, 0)
    c = _consumer(server, "latest")
    last = [time.monotonic()]

    def tick():
        # Records keep coming; those before the reset are skipped (latest), later ones arrive.
        if time.monotonic() - last[0] > 0.2:
            log.append([b"tick"])
            last[0] = time.monotonic()

    try:
        c.assign([ck.TopicPartition(topic, 0, 10)])
        got = _poll_until(c, 3, time.monotonic() + 30, tick)
        offsets = [m.offset() for m in got]
        assert offsets[0] >= RECORDS and all(m.value() == b"tick" for m in got)
        assert offsets == list(range(offsets[0], offsets[0] + 3))
    finally:
        c.close()
