"""Sealed segments are mapped on demand through a bounded LRU (klog.storage.segment.
OPEN_SEGMENTS): evicted ones are unmapped and mapped again when read. Views handed out before
an eviction stay valid and still block a truncation of their segment; readers on other threads
never see a mapping pulled from under them."""
import random
import threading

import pytest

import klog
from klog.storage import segment as segment_module

CFG = {"segment.bytes": 2048, "index.interval.bytes": 128}


@pytest.fixture
def small_cache():
    cache = segment_module.OPEN_SEGMENTS
    old = cache.capacity
    cache.resize(3)
    yield cache
    cache.resize(old)


def fill(d, n=300):
    log = klog.Log.open(d, CFG)
    for i in range(n):
        log.append([b"value-%04d-" % i + bytes([i % 251]) * (i % 30)])
    log.flush()
    return log


def mapped_segments(d):
    """Segment files of ``d`` mapped in this process right now."""
    with open("/proc/self/maps") as f:
        return {line.split()[-1] for line in f if d in line and line.rstrip().endswith(".log")}


def test_mappings_are_bounded_and_reads_map_again(tmp_path, small_cache):
    d = str(tmp_path / "log")
    log = fill(d)
    want = [(r.offset, r.value) for r in log.records()]
    log.close()
    with klog.Log.open(d, CFG) as log:
        assert len(log.segments) >= 12
        assert len(mapped_segments(d)) <= 3 + 1   # the cache, and the active segment
        assert [(r.offset, r.value) for r in log.records()] == want
        assert len(mapped_segments(d)) <= 3 + 1
        for o in range(0, log.log_end_offset, 7):   # random access maps segments again
            v = log.read(o, 1)
            assert klog.decode_batch(v)[0].offset <= o
            v.release()
        assert len(mapped_segments(d)) <= 3 + 1
        assert log.offset_for_time(0) == 0


def test_views_survive_eviction_and_block_truncation(tmp_path, small_cache):
    d = str(tmp_path / "log")
    log = fill(d)
    bases = log.segments
    views = {b: log.read(b, 1) for b in bases[:6]}
    want = {b: bytes(v) for b, v in views.items()}
    for r in log.records():   # maps every segment in turn: the first ones are evicted
        pass
    assert log._segments[0]._files is None, "the oldest segment was not evicted"
    for b, v in views.items():
        assert bytes(v) == want[b]
    with pytest.raises(BufferError):
        log.truncate_to(bases[1] + 1)
    for v in views.values():
        v.release()
    assert log.truncate_to(bases[1] + 1) <= bases[1] + 1
    log.close()


def test_concurrent_readers_with_a_tiny_cache(tmp_path, small_cache):
    small_cache.resize(1)
    d = str(tmp_path / "log")
    log = fill(d)
    expected = {}
    for r in log.records():
        expected[r.offset] = r.value
    end = log.log_end_offset
    errors = []

    def reader(seed):
        rng = random.Random(seed)
        try:
            for _ in range(400):
                o = rng.randrange(end)
                v = log.read(o, 300)
                recs = [r for r in klog.decode_batch(v) if r.offset == o]
                assert recs and recs[0].value == expected[o], o
                v.release()
        except Exception as exc:   # reported below, with the thread's offset
            errors.append(repr(exc))

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for _ in range(50):
        assert log.offset_for_time(0) == 0
    for t in threads:
        t.join()
    assert errors == []
    log.close()
