"""Consumer without groups: assign, poll, seek, waiting, replay by offset and by time, fetch
limits and fairness, lag, and clear errors for bad input."""
import struct
import threading
import time

import pytest

from klog import (
    ConfigError, IllegalStateError, InvalidGroupIdError, OffsetAndTimestamp, OffsetOutOfRangeError,
    TopicPartition,
)
from klog._native.batch import build_batch
from klog._native.crc32c import crc32c
from klog.errors import UnknownTopicOrPartitionError

T0 = TopicPartition("t", 0)
T1 = TopicPartition("t", 1)


@pytest.fixture
def topic(broker, produce):
    broker.create_topic("t", 2)
    produce("t", 0, [f"a{i}" for i in range(5)])
    produce("t", 0, [f"a{i}" for i in range(5, 10)])
    produce("t", 1, [f"b{i}" for i in range(3)])
    return "t"


@pytest.fixture
def consumer(broker):
    c = broker.consumer(config={"auto.offset.reset": "earliest"})
    yield c
    c.close()


def test_assign_poll_returns_each_partition_in_order(consumer, topic):
    consumer.assign([T0, ("t", 1)])
    assert consumer.assignment() == {T0, T1}
    records = consumer.poll(1000)
    assert [(r.topic, r.partition, r.offset, r.value) for r in records if r.partition == 0] == \
        [("t", 0, i, f"a{i}".encode()) for i in range(10)]
    assert [r.value for r in records if r.partition == 1] == [b"b0", b"b1", b"b2"]
    assert consumer.position(T0) == 10 and consumer.position(T1) == 3
    assert consumer.poll(0) == []


def test_seek_replays_from_any_offset_even_mid_batch(consumer, topic):
    consumer.assign([T0])
    consumer.poll(1000)
    consumer.seek(T0, 7)                       # inside the second batch (offsets 5..9)
    assert [r.offset for r in consumer.poll(1000)] == [7, 8, 9]
    consumer.seek(T0, 2)
    assert [r.offset for r in consumer.poll(1000, max_records=3)] == [2, 3, 4]
    assert consumer.position(T0) == 5


def test_seek_to_beginning_and_end_are_lazy(broker, consumer, topic, produce):
    consumer.assign([T0, T1])
    consumer.poll(1000)
    consumer.seek_to_beginning([T1])
    assert consumer.position(T1) == 0
    consumer.seek_to_end()
    produce("t", 0, ["late"])                  # before the end is evaluated: skipped
    assert consumer.position(T0) == 11
    assert consumer.poll(0) == []
    produce("t", 0, ["new"])
    assert [r.value for r in consumer.poll(1000)] == [b"new"]


def test_poll_waits_for_data_then_wakes_on_append(broker, consumer, topic, produce):
    consumer.assign([T1])
    consumer.poll(1000)
    timer = threading.Timer(0.2, produce, args=("t", 1, ["wake"]))
    t0 = time.monotonic()
    timer.start()
    records = consumer.poll(10_000)
    elapsed = time.monotonic() - t0
    timer.join()
    assert [r.value for r in records] == [b"wake"]
    assert 0.15 <= elapsed < 2.0


def test_poll_times_out_without_busy_looping(consumer, topic):
    consumer.assign([T1])
    consumer.poll(1000)
    cpu0, t0 = time.thread_time(), time.monotonic()
    assert consumer.poll(300) == []
    elapsed, cpu = time.monotonic() - t0, time.thread_time() - cpu0
    assert 0.28 <= elapsed < 1.5
    assert cpu < 0.05, f"poll burned {cpu:.3f} s of CPU while waiting {elapsed:.3f} s"


def test_records_are_shared_fairly_across_partitions(broker, produce):
    broker.create_topic("f", 3)
    for p in range(3):
        for _ in range(10):
            produce("f", p, [f"{p}-{i}" for i in range(100)])
    c = broker.consumer(config={"auto.offset.reset": "earliest", "max.poll.records": 150})
    c.assign([("f", p) for p in range(3)])
    batches = [c.poll(1000) for _ in range(6)]
    # No partition starves: in every three polls each partition contributes.
    for window in (batches[:3], batches[3:]):
        assert {r.partition for b in window for r in b} == {0, 1, 2}
    while sum(map(len, batches)) < 3000:
        batches.append(c.poll(1000))
    per_partition = {p: [r.offset for b in batches for r in b if r.partition == p] for p in range(3)}
    assert all(offsets == list(range(1000)) for offsets in per_partition.values())
    c.close()


def test_max_partition_fetch_bytes_limits_each_poll_to_one_chunk(broker, produce):
    broker.create_topic("s", 1)
    for b in range(4):
        produce("s", 0, [b"x" * 50] * 10)
    c = broker.consumer(config={"auto.offset.reset": "earliest", "max.partition.fetch.bytes": 1})
    c.assign([("s", 0)])
    # A batch bigger than the limit still comes back whole (Kafka's rule), but only one per poll.
    assert [len(c.poll(1000)) for _ in range(4)] == [10, 10, 10, 10]
    c.close()


def control_batch():
    """A transaction marker: a RecordBatch with the control bit (0x20) set, CRC redone."""
    b = bytearray(build_batch([None], [b"\x00\x00\x00\x00"], producer_id=7, producer_epoch=0,
                              base_sequence=0, transactional=True))
    struct.pack_into(">h", b, 21, struct.unpack_from(">h", b, 21)[0] | 0x20)
    struct.pack_into(">I", b, 17, crc32c(bytes(b[21:])))
    return bytes(b)


def test_position_moves_past_control_batches(broker, consumer, produce):
    broker.create_topic("tx", 1)
    produce("tx", 0, ["a", "b"])
    broker.log("tx", 0).append_batch(control_batch())          # offset 2, never returned
    consumer.assign([("tx", 0)])
    assert [r.value for r in consumer.poll(1000)] == [b"a", b"b"]
    assert consumer.poll(0) == []
    assert consumer.position(("tx", 0)) == 3 and consumer.lag(("tx", 0)) == 0


def test_max_records(consumer, topic):
    consumer.assign([T0])
    assert len(consumer.poll(1000, max_records=4)) == 4
    assert [r.offset for r in consumer.poll(1000, max_records=100)] == list(range(4, 10))


def test_replay_from_timestamp(broker, consumer, produce):
    broker.create_topic("ts", 1)
    produce("ts", 0, ["a", "b", "c"], timestamps=[1000, 2000, 3000])
    produce("ts", 0, ["d", "e"], timestamps=[4000, 5000])
    tp = TopicPartition("ts", 0)
    found = consumer.offsets_for_times({tp: 2500, ("ts", 0): 2500})
    assert found == {tp: OffsetAndTimestamp(2, 3000)}
    assert consumer.offsets_for_times({tp: 4000}) == {tp: OffsetAndTimestamp(3, 4000)}
    assert consumer.offsets_for_times({tp: 9999}) == {tp: None}
    consumer.assign([tp])
    consumer.seek(tp, consumer.offsets_for_times({tp: 2500})[tp].offset)
    assert [r.value for r in consumer.poll(1000)] == [b"c", b"d", b"e"]


def test_beginning_end_offsets_and_lag(broker, consumer, topic):
    assert consumer.beginning_offsets([T0, T1]) == {T0: 0, T1: 0}
    assert consumer.end_offsets([T0, T1]) == {T0: 10, T1: 3}
    consumer.assign([T0, T1])
    assert consumer.lag() == {T0: 10, T1: 3}
    consumer.poll(1000, max_records=4)
    assert consumer.lag(T0) + consumer.lag(T1) == 9
    consumer.poll(1000)
    assert consumer.lag() == {T0: 0, T1: 0}


def test_pause_and_resume(consumer, topic):
    consumer.assign([T0, T1])
    consumer.pause([T0])
    assert consumer.paused() == {T0}
    assert {r.partition for r in consumer.poll(1000)} == {1}
    consumer.resume([T0])
    assert {r.partition for r in consumer.poll(1000)} == {0}


def test_compressed_batches_are_decoded(broker, consumer, produce):
    broker.create_topic("z", 1)
    produce("z", 0, ["g1", "g2"], compression="gzip")
    produce("z", 0, ["l1"], compression="lz4")
    consumer.assign([("z", 0)])
    assert [r.value for r in consumer.poll(1000)] == [b"g1", b"g2", b"l1"]


def test_position_out_of_range_is_reset_or_raised(broker, topic):
    c = broker.consumer(config={"auto.offset.reset": "earliest"})
    c.assign([T0])
    c.seek(T0, 1000)                               # past the end
    t0 = time.monotonic()
    assert [r.offset for r in c.poll(5000)][:1] == [0]
    assert time.monotonic() - t0 < 1.0             # read from the reset position at once
    strict = broker.consumer(config={"auto.offset.reset": "none"})
    strict.assign([T0])
    strict.seek(T0, 1000)
    with pytest.raises(OffsetOutOfRangeError, match=r"t-0: position 1000 is outside the log \[0, 10\]"):
        strict.poll(100)
    latest = broker.consumer(config={"auto.offset.reset": "latest"})
    latest.assign([T0])
    latest.seek(T0, 1000)
    assert latest.poll(50) == [] and latest.position(T0) == 10
    for x in (c, strict, latest):
        x.close()


def test_position_below_log_start_after_retention_is_reset(broker, produce):
    broker.create_topic("r", 1, {"segment.bytes": 1024})
    for i in range(20):
        produce("r", 0, [b"y" * 100])
    c = broker.consumer(config={"auto.offset.reset": "earliest"})
    c.assign([("r", 0)])
    assert c.position(("r", 0)) == 0
    log = broker.log("r", 0)
    log.delete_before(10)
    start = log.log_start_offset
    assert start > 0
    t0 = time.monotonic()
    assert c.poll(5000)[0].offset == start
    assert time.monotonic() - t0 < 1.0
    c.close()


def test_bad_input_gives_clear_errors(broker, consumer, topic):
    with pytest.raises(UnknownTopicOrPartitionError, match="unknown topic 'nope'"):
        consumer.assign([("nope", 0)])
    with pytest.raises(UnknownTopicOrPartitionError, match=r"partitions 0\.\.1, not 5"):
        consumer.assign([("t", 5)])
    with pytest.raises(TypeError, match="TopicPartition"):
        consumer.assign(["t"])
    with pytest.raises(TypeError, match="list of TopicPartition"):
        consumer.assign("t")
    with pytest.raises(IllegalStateError, match="not subscribed to any topics or assigned"):
        consumer.poll(0)
    consumer.assign([T0])
    with pytest.raises(ValueError, match="must not be negative, got -1 for t-0"):
        consumer.seek(T0, -1)
    with pytest.raises(TypeError, match="offset must be an int"):
        consumer.seek(T0, "3")
    with pytest.raises(IllegalStateError, match="t-1 is not assigned"):
        consumer.seek(T1, 0)
    with pytest.raises(IllegalStateError, match="t-1 is not assigned"):
        consumer.position(T1)
    with pytest.raises(InvalidGroupIdError, match="commit\\(\\) needs a consumer group"):
        consumer.commit()
    with pytest.raises(InvalidGroupIdError, match="needs a consumer group"):
        consumer.committed(T0)
    with pytest.raises(InvalidGroupIdError, match="subscribe\\(\\) needs a consumer group"):
        consumer.subscribe(["t"])
    with pytest.raises(ValueError, match="timeout_ms must be a number >= 0"):
        consumer.poll(-1)
    with pytest.raises(ValueError, match="max_records must be an integer >= 1"):
        consumer.poll(0, max_records=0)
    with pytest.raises(ValueError, match="target time for t-0 must be an int >= 0"):
        consumer.offsets_for_times({T0: -5})
    consumer.close()
    with pytest.raises(IllegalStateError, match="closed"):
        consumer.poll(0)


def test_subscribe_and_assign_are_mutually_exclusive(broker, topic):
    c = broker.consumer("grp")
    c.assign([T0])
    with pytest.raises(IllegalStateError, match="mutually exclusive"):
        c.subscribe(["t"])
    c.unsubscribe()
    c.subscribe(["t"])
    with pytest.raises(IllegalStateError, match="mutually exclusive"):
        c.assign([T0])
    c.close()


@pytest.mark.parametrize("config, message", [
    ({"auto.offset.reset": "smallest"}, "auto.offset.reset: expected one of earliest, latest, none"),
    ({"max.poll.records": 0}, "max.poll.records: expected an integer"),
    ({"max.poll.recrods": 5}, "did you mean 'max.poll.records'"),
    ({"heartbeat.interval.ms": 5000, "session.timeout.ms": 4000}, "must be lower than session"),
    ({"partition.assignment.strategy": "fair"}, "unknown assignor 'fair'"),
    ({"enable.auto.commit": True}, "cannot be true without a group.id"),
])
def test_bad_config(broker, config, message):
    with pytest.raises(ConfigError, match=message):
        broker.consumer(config=config)
