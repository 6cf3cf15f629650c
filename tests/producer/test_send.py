"""send(): futures and their RecordMetadata, offsets read back from the logs, headers,
timestamps, every compression codec, explicit partitions, auto-created topics."""
import time

import pytest

import klog
from klog.codec import codec_id
from klog.producer import BatchMetadata, RecordMetadata

from .conftest import NEVER, batches, end_offsets, records, values


def test_future_get_gives_record_metadata_matching_the_log(broker, producers):
    broker.create_topic("t", 3)
    p = producers({"linger.ms": NEVER})
    futures = [p.send("t", b"v%d" % i, partition=i % 3) for i in range(30)]
    p.flush()
    for i, f in enumerate(futures):
        md = f.get()
        assert isinstance(md, RecordMetadata)
        assert md == (md.topic, md.partition, md.offset, md.timestamp)
        assert md.topic == "t" and md.partition == i % 3 and md.offset == i // 3
        r = records(broker, "t", md.partition)[md.offset]
        assert r.offset == md.offset and r.value == b"v%d" % i and r.timestamp == md.timestamp
    assert end_offsets(broker, "t") == [10, 10, 10]


def test_offsets_continue_across_batches_and_producers(broker, producers):
    broker.create_topic("t", 1)
    a = producers({"linger.ms": NEVER})
    b = producers({"linger.ms": 0})
    offsets = []
    for i in range(5):
        offsets.append(a.send("t", b"a%d" % i).get().offset)
        offsets.append(b.send("t", b"b%d" % i).get().offset)
    assert offsets == list(range(10))
    assert values(broker, "t", 0) == [b"%s%d" % (w, i) for i in range(5) for w in (b"a", b"b")]


def test_future_state_before_and_after_delivery(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"linger.ms": NEVER})
    f = p.send("t", b"x")
    assert not f.done() and not f.succeeded() and f.exception() is None
    assert end_offsets(broker, "t") == [0]
    p.flush()
    assert f.done() and f.succeeded() and f.exception() is None
    assert f.get() == f.get()  # idempotent


def test_get_on_open_batch_delivers_it_at_once(broker, producers):
    broker.create_topic("t", 2)
    p = producers({"linger.ms": NEVER, "batch.size": 1 << 30})
    fs = [p.send("t", b"%d" % i, partition=0) for i in range(5)]
    other = p.send("t", b"other", partition=1)
    start = time.monotonic()
    md = fs[2].get()
    assert time.monotonic() - start < 1.0  # not the 600 s linger
    assert md.offset == 2
    assert end_offsets(broker, "t") == [5, 0]  # the whole batch went, the other partition's not
    assert all(f.done() for f in fs) and not other.done()
    assert len(batches(broker, "t", 0)) == 1


def test_null_values_and_keys_round_trip(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"linger.ms": NEVER})
    p.send("t", None, key=b"tomb")
    p.send("t", b"v", key=None)
    p.send("t", b"", key=b"")
    p.flush()
    assert [(r.key, r.value) for r in records(broker, "t", 0)] == [
        (b"tomb", None), (None, b"v"), (b"", b"")]


def test_bytes_like_values_are_stored_as_bytes(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"linger.ms": NEVER})
    p.send("t", bytearray(b"ba"), key=bytearray(b"k1"))
    p.send("t", memoryview(b"mv"), key=memoryview(b"k2"))
    p.flush()
    assert [(r.key, r.value) for r in records(broker, "t", 0)] == [(b"k1", b"ba"), (b"k2", b"mv")]


def test_headers_preserved_in_order_with_none_and_duplicates(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"linger.ms": NEVER})
    hdrs = [("trace", b"abc"), ("empty", b""), ("none", None), ("trace", b"dup"), ("ünï", b"\x00\xff")]
    p.send("t", b"a", headers=hdrs)
    p.send("t", b"b")  # no headers in the same batch
    p.send("t", b"c", headers=tuple(hdrs[:1]))
    p.send("t", b"d", headers=iter(hdrs[1:3]))  # any iterable of pairs
    p.send("t", b"e", headers=[])
    p.flush()
    got = [(r.value, r.headers) for r in records(broker, "t", 0)]
    assert got == [(b"a", tuple(hdrs)), (b"b", ()), (b"c", tuple(hdrs[:1])),
                   (b"d", tuple(hdrs[1:3])), (b"e", ())]


def test_explicit_timestamps_preserved_and_reported(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"linger.ms": NEVER})
    stamps = [0, 1, 1_000_000_000_000, 1_700_000_000_123, 2**63 - 1]
    fs = [p.send("t", b"%d" % i, timestamp=ts) for i, ts in enumerate(stamps)]
    p.flush()
    assert [f.get().timestamp for f in fs] == stamps
    assert [r.timestamp for r in records(broker, "t", 0)] == stamps


def test_default_timestamp_is_send_time_and_reported(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"linger.ms": NEVER})
    before = time.time_ns() // 1_000_000
    f_default = p.send("t", b"now")
    f_explicit = p.send("t", b"then", timestamp=12345)  # mixed in one batch
    f_default2 = p.send("t", b"now2")
    after = time.time_ns() // 1_000_000
    p.flush()
    stored = records(broker, "t", 0)
    assert before <= f_default.get().timestamp <= after
    assert [r.timestamp for r in stored] == [f_default.get().timestamp, 12345,
                                              f_default2.get().timestamp]
    assert f_default2.get().timestamp >= before


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compression_codecs_round_trip_send_and_send_batch(broker, producers, codec):
    broker.create_topic("t", 2)
    p = producers({"compression.type": codec, "linger.ms": NEVER})
    vals = [(b"value-%d-" % i) * 20 for i in range(50)]
    hdrs = [("h", b"header")]
    fs = [p.send("t", v, key=b"k%d" % i, headers=hdrs, timestamp=1000 + i, partition=0)
          for i, v in enumerate(vals)]
    p.flush()
    meta = p.send_batch("t", vals, keys=[b"k%d" % i for i in range(50)], partition=1)
    assert [f.get().offset for f in fs] == list(range(50))
    assert meta == [BatchMetadata("t", 1, 0, 50)]
    stored = records(broker, "t", 0)
    assert [(r.key, r.value, r.headers, r.timestamp) for r in stored] == [
        (b"k%d" % i, v, tuple(hdrs), 1000 + i) for i, v in enumerate(vals)]
    assert [(r.key, r.value) for r in records(broker, "t", 1)] == [
        (b"k%d" % i, v) for i, v in enumerate(vals)]
    expected = codec_id(None if codec == "none" else codec)
    for part in (0, 1):
        hs = batches(broker, "t", part)
        assert hs and all(h.attributes & 0x7 == expected for h in hs)
    if codec != "none":  # really compressed: the repetitive values shrink
        assert sum(h.length for h in batches(broker, "t", 0)) < sum(map(len, vals))


def test_send_batch_returns_batch_metadata_and_offsets(broker, producers):
    broker.create_topic("t", 1)
    p = producers()
    m1 = p.send_batch("t", [b"a", b"b", b"c"], timestamps=[5, 6, 7])
    m2 = p.send_batch("t", (v for v in [b"d", b"e"]), keys=[b"k", None], timestamps=9)
    assert m1 == [BatchMetadata("t", 0, 0, 3)] and m2 == [BatchMetadata("t", 0, 3, 2)]
    assert p.send_batch("t", []) == []
    got = [(r.offset, r.key, r.value, r.timestamp) for r in records(broker, "t", 0)]
    assert got == [(0, None, b"a", 5), (1, None, b"b", 6), (2, None, b"c", 7),
                   (3, b"k", b"d", 9), (4, None, b"e", 9)]


def test_auto_create_topic_on_first_send(auto_broker):
    with auto_broker.producer({"linger.ms": 0}) as p:
        assert p.send("fresh", b"v", key=b"k").get().topic == "fresh"
        assert auto_broker.partition_count("fresh") == 4  # num.partitions
        assert p.partitions_for("fresh") == [0, 1, 2, 3]
        meta = p.send_batch("fresh2", [b"x"])
        assert auto_broker.partition_count("fresh2") == 4 and meta[0].count == 1
        assert p.partitions_for("fresh3") == [0, 1, 2, 3]


def test_partitions_for_existing_topic(broker, producers):
    broker.create_topic("t", 7)
    assert producers().partitions_for("t") == list(range(7))


def test_broker_close_flushes_open_producer(tmp_path):
    b = klog.open(tmp_path / "d", {"auto.create.topics.enable": False})
    b.create_topic("t", 1)
    p = b.producer({"linger.ms": NEVER})
    fs = [p.send("t", b"%d" % i) for i in range(10)]
    b.close()  # closes its producers first, which flushes them
    assert all(f.done() and f.succeeded() for f in fs)
    with klog.open(tmp_path / "d") as b2:
        assert [r.value for r in b2.log("t", 0).records()] == [b"%d" % i for i in range(10)]


def test_send_sees_partitions_added_after_it_started(tmp_path):
    import klog
    from klog._native.partitioner import partition_for_key

    with klog.open(tmp_path / "d", {"auto.create.topics.enable": "false"}) as broker:
        broker.create_topic("grow", 2)
        producer = broker.producer()
        keys = [b"key-%d" % i for i in range(200)]
        for k in keys:
            producer.send("grow", b"v", key=k)
        broker.add_partitions("grow", 7)
        got = [producer.send("grow", b"v", key=k).get().partition for k in keys]
        assert got == [partition_for_key(k, 7) for k in keys]   # hashed over 7, not the old 2
        assert sum(broker.log("grow", p).log_end_offset for p in range(7)) == 400
        producer.close()
