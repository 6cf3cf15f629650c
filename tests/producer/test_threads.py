"""One producer shared by threads: every future resolves, offsets per partition are unique and
contiguous, and each thread's records to one partition keep that thread's send order."""
import random
import threading
from collections import defaultdict

import pytest

from klog.errors import LogClosedError

from .conftest import end_offsets, records

THREADS = 4
PER_THREAD = 10000


def _check_log_against_futures(broker, topic, n, results):
    """results: [(thread, seq, RecordMetadata)] -> the logs hold exactly these records."""
    by_partition = defaultdict(dict)
    for tid, seq, md in results:
        assert md.topic == topic and 0 <= md.partition < n
        assert md.offset not in by_partition[md.partition], "two futures got the same offset"
        by_partition[md.partition][md.offset] = (tid, seq)
    ends = end_offsets(broker, topic)
    for part in range(n):
        offsets = sorted(by_partition[part])
        assert offsets == list(range(ends[part])), "offsets not contiguous from 0"
        stored = records(broker, topic, part)
        assert [r.offset for r in stored] == offsets
        last_seq = {}
        for r in stored:
            tid, seq = map(int, r.value.split(b":"))
            assert by_partition[part][r.offset] == (tid, seq)
            assert seq > last_seq.get(tid, -1), "a thread's records out of send order"
            last_seq[tid] = seq
    assert sum(ends) == len(results)


@pytest.mark.parametrize("config", [
    {"linger.ms": 1, "batch.num.messages": 50},
    {"linger.ms": 0, "batch.size": 512},
    {"linger.ms": 600_000, "batch.size": 4096, "partitioner": "consistent_random"},
    {"linger.ms": 2, "partitioner": "round_robin"},
], ids=["murmur2-small-batches", "linger0", "crc-size-only", "round-robin"])
def test_four_threads_share_a_producer(broker, producers, config):
    broker.create_topic("t", 3)
    p = producers(config)
    barrier = threading.Barrier(THREADS)
    futures = [[] for _ in range(THREADS)]
    errors = []

    def worker(tid):
        rng = random.Random(tid)
        try:
            barrier.wait()
            for seq in range(PER_THREAD):
                r = rng.random()
                key = None if r < 0.3 else b"key-%d" % rng.randrange(40)
                part = rng.randrange(3) if 0.3 <= r < 0.4 else None
                futures[tid].append((seq, p.send("t", b"%d:%d" % (tid, seq), key=key, partition=part)))
                if r > 0.998:
                    p.flush()
                elif r > 0.996:
                    futures[tid][rng.randrange(len(futures[tid]))][1].get()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive()
    assert errors == []
    p.flush()
    results = []
    for tid in range(THREADS):
        assert len(futures[tid]) == PER_THREAD
        for seq, f in futures[tid]:
            assert f.done() and f.succeeded()
            results.append((tid, seq, f.get()))
    _check_log_against_futures(broker, "t", 3, results)


def test_threads_mixing_send_and_send_batch(broker, producers):
    broker.create_topic("t", 3)
    p = producers({"linger.ms": 1, "batch.num.messages": 20})
    errors, results = [], []
    lock = threading.Lock()

    def worker(tid):
        rng = random.Random(100 + tid)
        seq = 0
        mine = []
        try:
            for _ in range(150):
                part = rng.randrange(3)
                if rng.random() < 0.2:
                    vals = [b"%d:%d" % (tid, seq + i) for i in range(rng.randrange(1, 30))]
                    (meta,) = p.send_batch("t", vals, partition=part)
                    mine += [(tid, seq + i, (meta.partition, meta.base_offset + i))
                             for i in range(len(vals))]
                    seq += len(vals)
                else:
                    mine.append((tid, seq, p.send("t", b"%d:%d" % (tid, seq), partition=part)))
                    seq += 1
        except BaseException as exc:
            errors.append(exc)
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    p.flush()

    class MD:  # the (partition, offset) of a send_batch record, shaped like RecordMetadata
        def __init__(self, part, off):
            self.topic, self.partition, self.offset = "t", part, off

    resolved = [(tid, seq, x.get() if hasattr(x, "get") else MD(*x)) for tid, seq, x in results]
    _check_log_against_futures(broker, "t", 3, resolved)


def test_close_while_threads_send_loses_no_accepted_record(broker):
    """Every send() that returned a future before close() must be delivered by close()."""
    broker.create_topic("t", 3)
    for _ in range(5):
        p = broker.producer({"linger.ms": 600_000})
        accepted = [[] for _ in range(THREADS)]
        started = threading.Barrier(THREADS + 1)

        def worker(tid):
            started.wait()
            i = 0
            while True:
                try:
                    accepted[tid].append(p.send("t", b"%d:%d" % (tid, i)))
                except LogClosedError:
                    return
                i += 1

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        started.wait()
        p.close()
        for t in threads:
            t.join(10)
        pending = [f for fs in accepted for f in fs if not f.done()]
        assert pending == [], f"{len(pending)} accepted records were never sent by close()"


def test_send_from_a_callback_run_by_close_is_delivered_or_refused(broker):
    """close() runs the callbacks of the batches it flushes; a send made from one of them must
    either raise LogClosedError or be delivered, never be left queued with the sender gone."""
    broker.create_topic("t", 1)
    p = broker.producer({"linger.ms": 600_000})
    outcome = []

    def callback(md):
        try:
            outcome.append(p.send("t", b"from-callback"))
        except LogClosedError as exc:
            outcome.append(exc)

    p.send("t", b"first").add_callback(callback)
    p.close()
    assert len(outcome) == 1
    if not isinstance(outcome[0], LogClosedError):
        assert outcome[0].done(), "a record accepted during close() was never sent"
