"""When batches go to the log: linger.ms (sender thread), batch.size, batch.num.messages,
max.request.size, flush(), and send_batch's ordering and splitting."""
import time

from klog.producer import BatchMetadata

from .conftest import NEVER, batches, end_offsets, records, values, wait_until


def test_large_linger_holds_records_until_flush(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"linger.ms": NEVER})
    f = p.send("t", b"held")
    # Watched for a while (the sender thread gets many chances to run): with a linger that
    # cannot expire during the test, however this thread is scheduled, nothing may go out.
    assert wait_until(lambda: end_offsets(broker, "t") != [0] or f.done(), timeout=0.3) is None
    assert end_offsets(broker, "t") == [0] and not f.done()
    p.flush()
    assert end_offsets(broker, "t") == [1] and f.done() and f.get().offset == 0


def test_linger_sends_without_flush_after_linger_and_within_a_bound(broker, producers):
    broker.create_topic("t", 2)
    p = producers({"linger.ms": 200})
    start = time.monotonic()
    fs = [p.send("t", b"%d" % i, partition=i % 2) for i in range(6)]
    assert end_offsets(broker, "t") == [0, 0]  # not instantly
    took = wait_until(lambda: end_offsets(broker, "t") == [3, 3], timeout=5.0)
    assert took is not None, "linger.ms=200 records never appeared without flush"
    elapsed = time.monotonic() - start
    assert 0.19 <= elapsed < 3.0
    assert all(f.done() and f.succeeded() for f in fs)
    assert [len(batches(broker, "t", part)) for part in (0, 1)] == [1, 1]


def test_linger_each_batch_lingers_from_its_own_open_time(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"linger.ms": 150})
    p.send("t", b"first")
    assert wait_until(lambda: end_offsets(broker, "t") == [1], timeout=5.0) is not None
    start = time.monotonic()
    p.send("t", b"second")  # a new batch: its own 150 ms, though the sender is already awake
    assert end_offsets(broker, "t") == [1]
    assert wait_until(lambda: end_offsets(broker, "t") == [2], timeout=5.0) is not None
    assert time.monotonic() - start >= 0.14


def test_linger_zero_sends_promptly_without_flush(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"linger.ms": 0})
    fs = [p.send("t", b"%d" % i) for i in range(20)]
    assert wait_until(lambda: end_offsets(broker, "t") == [20], timeout=2.0) is not None
    assert [f.get().offset for f in fs] == list(range(20))


def test_batch_num_messages_triggers_append(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"linger.ms": NEVER, "batch.num.messages": 5})
    for round_ in range(3):
        for i in range(4):
            p.send("t", b"v")
            assert end_offsets(broker, "t") == [5 * round_]
        p.send("t", b"v")  # the 5th fills the batch: appended now, by send itself
        assert end_offsets(broker, "t") == [5 * (round_ + 1)]
    assert [h.record_count for h in batches(broker, "t", 0)] == [5, 5, 5]


def test_batch_size_triggers_append(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"linger.ms": NEVER, "batch.size": 2000})
    value = b"x" * 100
    sent = 0
    while end_offsets(broker, "t") == [0]:
        p.send("t", value)
        sent += 1
        assert sent <= 2000 // 100 + 1, "batch.size never triggered an append"
    assert sent >= 2000 // (100 + 64)  # not before the batch is about batch.size bytes
    assert end_offsets(broker, "t") == [sent]
    (h,) = batches(broker, "t", 0)
    assert h.record_count == sent
    # and the next records start a new batch, held again
    p.send("t", value)
    assert end_offsets(broker, "t") == [sent]
    p.flush()
    assert [h.record_count for h in batches(broker, "t", 0)] == [sent, 1]


def test_batch_size_is_per_partition(broker, producers):
    broker.create_topic("t", 2)
    p = producers({"linger.ms": NEVER, "batch.num.messages": 3})
    p.send("t", b"a", partition=0)
    p.send("t", b"b", partition=1)
    p.send("t", b"c", partition=0)
    p.send("t", b"d", partition=1)
    assert end_offsets(broker, "t") == [0, 0]
    p.send("t", b"e", partition=0)
    assert end_offsets(broker, "t") == [3, 0]


def test_sends_split_at_max_request_size(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"linger.ms": NEVER, "batch.size": 1 << 20, "max.request.size": 1000})
    fs = [p.send("t", b"%03d" % i + b"x" * 97) for i in range(50)]
    p.flush()
    assert [f.get().offset for f in fs] == list(range(50))
    hs = batches(broker, "t", 0)
    assert len(hs) >= 5 and sum(h.record_count for h in hs) == 50
    assert all(h.record_count * 100 <= 1000 for h in hs)
    assert values(broker, "t", 0) == [b"%03d" % i + b"x" * 97 for i in range(50)]


def test_send_batch_splits_at_max_request_size(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"max.request.size": 1000})
    vals = [b"%03d" % i + b"y" * 97 for i in range(50)]
    meta = p.send_batch("t", vals)
    assert len(meta) >= 5 and sum(m.count for m in meta) == 50
    assert all(isinstance(m, BatchMetadata) and m.partition == 0 for m in meta)
    assert all(m.count * 100 <= 1000 for m in meta)
    base = 0
    for m in meta:  # contiguous chunks, in order
        assert m.base_offset == base
        base += m.count
    assert [h.record_count for h in batches(broker, "t", 0)] == [m.count for m in meta]
    assert values(broker, "t", 0) == vals


def test_send_batch_after_queued_sends_keeps_order(broker, producers):
    broker.create_topic("t", 2)
    p = producers({"linger.ms": NEVER})
    fs = [p.send("t", b"s%d" % i, partition=0) for i in range(3)]
    other = p.send("t", b"other", partition=1)
    meta = p.send_batch("t", [b"b0", b"b1"], partition=0)
    assert [f.get().offset for f in fs] == [0, 1, 2]  # the queued sends went first
    assert meta == [BatchMetadata("t", 0, 3, 2)]
    assert values(broker, "t", 0) == [b"s0", b"s1", b"s2", b"b0", b"b1"]
    assert not other.done()  # another partition's open batch is left alone
    p.send("t", b"s3", partition=0)
    p.flush()
    assert values(broker, "t", 0)[-1] == b"s3"


def test_keyed_send_batch_after_queued_keyed_sends_keeps_order(broker, producers):
    broker.create_topic("t", 3)
    p = producers({"linger.ms": NEVER})
    keys = [b"k%d" % i for i in range(30)]
    fs = [p.send("t", b"s-" + k, key=k) for k in keys]
    meta = p.send_batch("t", [b"b-" + k for k in keys], keys=keys)
    parts = {f.get().partition for f in fs}
    assert {m.partition for m in meta} == parts
    for part in range(3):
        stored = [r.value for r in records(broker, "t", part)]
        mine = [k for k, f in zip(keys, fs) if f.get().partition == part]
        assert stored == [b"s-" + k for k in mine] + [b"b-" + k for k in mine]


def test_flush_appends_every_partition_and_is_idempotent(broker, producers):
    broker.create_topic("t", 3)
    p = producers({"linger.ms": NEVER})
    for i in range(30):
        p.send("t", b"%d" % i, key=b"%d" % i)
    assert end_offsets(broker, "t") == [0, 0, 0]
    p.flush()
    total = sum(end_offsets(broker, "t"))
    p.flush()
    p.flush()
    assert total == 30 and sum(end_offsets(broker, "t")) == 30
    assert sum(len(batches(broker, "t", part)) for part in range(3)) <= 3
