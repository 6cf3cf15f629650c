"""Bad input gives a clear error at once and writes nothing (and does not spoil the records
already queued); oversize batches fail their futures; bad configs; close()."""
import pytest

from klog.errors import (
    ConfigError, LogClosedError, RecordTooLargeError, UnknownTopicOrPartitionError,
)

from .conftest import NEVER, end_offsets, values


@pytest.fixture
def topic(broker):
    broker.create_topic("t", 3)
    return "t"


def assert_good_batch_survives(broker, p, good):
    """The records queued before the bad call still go out intact."""
    p.flush()
    assert all(f.succeeded() for f in good)
    assert [f.get().offset for f in good] == list(range(len(good)))
    assert values(broker, "t", 0) == [b"good%d" % i for i in range(len(good))]
    assert end_offsets(broker, "t") == [len(good), 0, 0]


BAD_SENDS = [
    ("str value", dict(value="text"), TypeError, "value"),
    ("int value", dict(value=5), TypeError, "value"),
    ("list value", dict(value=[b"a"]), TypeError, "value"),
    ("str key", dict(key="text"), TypeError, "key"),
    ("int key", dict(key=7), TypeError, "key"),
    ("strided memoryview value", dict(value=memoryview(b"abcdef")[::2]), TypeError, "contiguous"),
    ("strided memoryview key", dict(key=memoryview(b"abcdef")[::2]), TypeError, "contiguous"),
    ("float timestamp", dict(timestamp=1.5), TypeError, "timestamp"),
    ("str timestamp", dict(timestamp="1"), TypeError, "timestamp"),
    ("bool timestamp", dict(timestamp=True), TypeError, "timestamp"),
    ("negative timestamp", dict(timestamp=-1), ValueError, "timestamp"),
    ("int64 overflow timestamp", dict(timestamp=2**63), ValueError, "timestamp"),
    ("huge timestamp", dict(timestamp=2**70), ValueError, "timestamp"),
    ("headers not pairs", dict(headers=[b"ab"]), TypeError, "header"),
    ("header key bytes", dict(headers=[(b"k", b"v")]), TypeError, "header"),
    ("header value str", dict(headers=[("k", "v")]), TypeError, "header"),
    ("header value int", dict(headers=[("k", 1)]), TypeError, "header"),
    ("headers int", dict(headers=5), TypeError, "header"),
    ("headers triple", dict(headers=[("k", b"v", b"w")]), TypeError, "header"),
    ("partition -1", dict(partition=-1), UnknownTopicOrPartitionError, "partition"),
    ("partition n", dict(partition=3), UnknownTopicOrPartitionError, "partition"),
    ("partition bool", dict(partition=True), UnknownTopicOrPartitionError, "partition"),
    ("partition str", dict(partition="0"), UnknownTopicOrPartitionError, "partition"),
    ("oversize record", dict(value=b"x" * (1 << 20)), RecordTooLargeError, "max.request.size"),
]


@pytest.mark.parametrize("name,kwargs,error,match", BAD_SENDS, ids=[c[0] for c in BAD_SENDS])
def test_bad_send_raises_writes_nothing_and_spoils_nothing(broker, producers, topic, name, kwargs,
                                                          error, match):
    p = producers({"linger.ms": NEVER})
    good = [p.send("t", b"good0", partition=0)]  # an open batch the bad record must not touch
    args = {"value": b"v", "partition": 0}
    args.update(kwargs)
    value = args.pop("value")
    with pytest.raises(error, match=match):
        p.send("t", value, **args)
    good.append(p.send("t", b"good1", partition=0))
    assert_good_batch_survives(broker, p, good)


def test_bad_topic_type_and_unknown_topic_without_auto_create(broker, producers):
    p = producers({"linger.ms": 0})
    with pytest.raises(UnknownTopicOrPartitionError, match="nope"):
        p.send("nope", b"v")
    with pytest.raises(UnknownTopicOrPartitionError, match="nope"):
        p.send_batch("nope", [b"v"])
    with pytest.raises(UnknownTopicOrPartitionError):
        p.partitions_for("nope")
    with pytest.raises(TypeError):
        p.send(b"bytes-topic", b"v")
    assert broker.list_topics() == []


def _bad_batches():
    keys = [b"k%d" % i for i in range(30)]  # spread over all 3 partitions
    vals = [b"v%d" % i for i in range(30)]
    late = list(vals)
    late[-1] = 123  # the bad item is in a later partition's group
    return [
        ("int value late", dict(values=late, keys=keys), TypeError, r"values\[29\]"),
        ("str value", dict(values=[b"a", "b"]), TypeError, r"values\[1\].*str"),
        ("single bytes", dict(values=b"abc"), TypeError, "sequence"),
        ("str key", dict(values=vals, keys=keys[:-1] + ["k"]), TypeError, r"keys\[29\]"),
        ("int key explicit partition", dict(values=[b"a", b"b"], keys=[b"a", 1], partition=0),
         TypeError, r"keys\[1\]"),
        ("strided memoryview", dict(values=[b"a", memoryview(b"abcd")[::2]]), TypeError, "contiguous"),
        ("keys length", dict(values=vals, keys=keys[:-1]), ValueError, "keys"),
        ("timestamps length", dict(values=vals, keys=keys, timestamps=[1] * 29), ValueError, "timestamps"),
        ("timestamp str", dict(values=vals, keys=keys, timestamps=[1] * 29 + ["x"]), TypeError, "timestamps"),
        ("timestamp negative", dict(values=vals, timestamps=-1), ValueError, "timestamps"),
        ("timestamp overflow", dict(values=vals, keys=keys, timestamps=[1] * 29 + [2**64]), ValueError, "timestamps"),
        ("timestamp float", dict(values=vals, timestamps=1.0), TypeError, "timestamps"),
        ("oversize record late", dict(values=[b"a"] * 5 + [b"x" * (1 << 20)], partition=0),
         RecordTooLargeError, "max.request.size"),
        ("partition out of range", dict(values=vals, partition=3), UnknownTopicOrPartitionError, "partition"),
    ]


@pytest.mark.parametrize("name,kwargs,error,match", _bad_batches(), ids=[c[0] for c in _bad_batches()])
def test_bad_send_batch_raises_and_writes_nothing(broker, producers, topic, name, kwargs, error,
                                                  match):
    p = producers({"linger.ms": NEVER, "max.request.size": 1 << 20})
    good = [p.send("t", b"good0", partition=0)]
    with pytest.raises(error, match=match):
        p.send_batch("t", **kwargs)
    assert_good_batch_survives(broker, p, good)


def test_topic_max_message_bytes_smaller_than_batch_fails_futures_writes_nothing(broker, producers):
    broker.create_topic("small", 2, {"max.message.bytes": 500})
    p = producers({"linger.ms": NEVER})
    fs = [p.send("small", b"x" * 100, partition=0) for _ in range(10)]
    ok = p.send("small", b"fine", partition=1)
    p.flush()
    for f in fs:
        assert f.done() and not f.succeeded()
        assert isinstance(f.exception(), RecordTooLargeError)
        with pytest.raises(RecordTooLargeError, match="max.message.bytes"):
            f.get()
    assert ok.succeeded() and ok.get().offset == 0
    assert end_offsets(broker, "small") == [0, 1]
    # the producer carries on: later records that fit are written from offset 0
    assert p.send("small", b"y", partition=0).get().offset == 0
    # send_batch: the same limit, raised directly, nothing written
    with pytest.raises(RecordTooLargeError):
        p.send_batch("small", [b"z" * 100] * 10, partition=0)
    assert end_offsets(broker, "small") == [1, 1]


@pytest.mark.parametrize("config,match", [
    ({"linger.msx": 5}, "linger.ms"),
    ({"batch_size": 5}, "batch.size"),
    ({"compresion.type": "lz4"}, "compression.type"),
    ({"partitoner": "random"}, "partitioner"),
    ({"zzzz": 1}, "zzzz"),
])
def test_unknown_config_name_raises_with_suggestion(broker, config, match):
    with pytest.raises(ConfigError, match=match) as info:
        broker.producer(config)
    name = next(iter(config))
    assert "unknown" in str(info.value) and repr(name) in str(info.value)
    if name != "zzzz":
        assert "did you mean" in str(info.value)


@pytest.mark.parametrize("config", [
    {"linger.ms": -1}, {"linger.ms": "abc"}, {"linger.ms": 1.5}, {"linger.ms": None},
    {"linger.ms": True}, {"batch.size": 0}, {"batch.num.messages": 0},
    {"max.request.size": 0}, {"compression.type": "brotli"}, {"compression.type": None},
    {"partitioner": "murmur3"}, {"partitioner": 5}, {"acks": 2}, {"acks": "2"},
    {"acks": True}, {"acks": "everyone"}, {"acks": 1.0}, {"enable.idempotence": "yes"},
    {"linger.ms": 2**31},
])
def test_bad_config_values_raise_config_error(broker, config):
    with pytest.raises(ConfigError, match=next(iter(config)).replace(".", r"\.")):
        broker.producer(config)


def test_config_must_be_a_dict(broker):
    with pytest.raises(ConfigError):
        broker.producer([("linger.ms", 5)])


@pytest.mark.parametrize("acks,stored", [(0, "0"), (1, "1"), (-1, "-1"), ("all", "all"),
                                         ("0", "0"), ("1", "1"), ("-1", "-1")])
def test_acks_accepts_kafka_values_as_int_or_str(broker, producers, acks, stored):
    broker.create_topic("t", 1)
    p = producers({"acks": acks, "linger.ms": 0})
    assert p.config["acks"] == stored
    # acks=0: Kafka's producer does not learn the offset (test_config.py has the details)
    assert p.send("t", b"v").get().offset == (-1 if stored == "0" else 0)
    assert broker.log("t", 0).log_end_offset == 1


def test_kafka_style_string_values_and_network_only_names_accepted(broker, producers):
    p = producers({"linger.ms": "500", "batch.size": "2048", "enable.idempotence": "false",
                   "bootstrap.servers": "localhost:9092", "retries": 5, "client.id": "me"})
    assert p.config["linger.ms"] == 500 and p.config["batch.size"] == 2048
    assert p.config["enable.idempotence"] is False and "bootstrap.servers" not in p.config
    assert producers().config["linger.ms"] == 5 and producers(None).config["acks"] == "all"


def test_close_flushes_then_send_raises(broker):
    broker.create_topic("t", 2)
    p = broker.producer({"linger.ms": NEVER})
    fs = [p.send("t", b"%d" % i, partition=i % 2) for i in range(10)]
    p.close()
    assert all(f.done() and f.succeeded() for f in fs)
    assert end_offsets(broker, "t") == [5, 5]
    with pytest.raises(LogClosedError):
        p.send("t", b"late")
    with pytest.raises(LogClosedError):
        p.send_batch("t", [b"late"])
    p.close()  # idempotent
    p.flush()  # nothing queued: harmless
    assert end_offsets(broker, "t") == [5, 5]


def test_context_manager_closes(broker):
    broker.create_topic("t", 1)
    with broker.producer({"linger.ms": NEVER}) as p:
        f = p.send("t", b"v")
    assert f.succeeded() and end_offsets(broker, "t") == [1]
    with pytest.raises(LogClosedError):
        p.send("t", b"v")


def test_close_stops_the_sender_thread(broker):
    p = broker.producer({"linger.ms": 50})
    p.close()
    p._sender.join(5)
    assert not p._sender.is_alive()


def test_compacted_topic_rejects_null_key_batch_writes_nothing(broker, producers):
    broker.create_topic("c", 1, {"cleanup.policy": "compact"})
    p = producers({"linger.ms": NEVER})
    f = p.send("c", b"v")  # no key on a compacted topic
    p.flush()
    assert f.done() and f.exception() is not None
    with pytest.raises(Exception):
        f.get()
    assert end_offsets(broker, "c") == [0]
    with pytest.raises(Exception):
        p.send_batch("c", [b"v"])
    assert end_offsets(broker, "c") == [0]
    assert p.send("c", b"v", key=b"k").get().offset == 0


def test_unexpected_append_failure_resolves_futures_with_the_error(broker, producers, monkeypatch):
    """Whatever the partition raises, the batch's futures complete with it (never stay pending)."""
    broker.create_topic("t", 1)
    p = producers({"linger.ms": NEVER})
    fs = [p.send("t", b"%d" % i) for i in range(3)]
    errs = []
    fs[0].add_callback(None, errs.append)

    class Exploding:
        def append(self, *args, **kwargs):
            raise RuntimeError("disk on fire")

    real_partition = broker.partition   # the producer's sink appends through the Partition
    monkeypatch.setattr(broker, "partition", lambda topic, partition: Exploding())
    p.flush()
    monkeypatch.setattr(broker, "partition", real_partition)
    for f in fs:
        assert f.done() and not f.succeeded()
        with pytest.raises(RuntimeError, match="disk on fire"):
            f.get()
    assert len(errs) == 1 and isinstance(errs[0], RuntimeError)
    assert end_offsets(broker, "t") == [0]
    assert p.send("t", b"after").get().offset == 0  # the producer is still usable
