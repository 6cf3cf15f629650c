"""Fixtures for producer tests: a real broker in a temp dir, and helpers that read back what a
producer wrote (records, raw batches, log end offsets) straight from the partition logs."""
import time

import pytest

import klog

NEVER = 600_000  # a linger.ms that never expires during a test: only size, flush or get() send


@pytest.fixture
def broker(tmp_path):
    b = klog.open(tmp_path / "data", {"num.partitions": 3, "auto.create.topics.enable": False})
    yield b
    b.close()


@pytest.fixture
def auto_broker(tmp_path):
    b = klog.open(tmp_path / "auto", {"num.partitions": 4, "auto.create.topics.enable": True})
    yield b
    b.close()


@pytest.fixture
def producers(broker):
    """make(config) -> Producer, closed after the test."""
    made = []

    def make(config=None):
        p = broker.producer(config)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def records(broker, topic, partition):
    """Every record of one partition, read back through the log."""
    return list(broker.log(topic, partition).records())


def values(broker, topic, partition):
    return [r.value for r in records(broker, topic, partition)]


def end_offsets(broker, topic):
    return [broker.log(topic, p).log_end_offset for p in range(broker.partition_count(topic))]


def batches(broker, topic, partition):
    """The BatchHeaders of one partition's stored batches, in order."""
    log = broker.log(topic, partition)
    view = log.read(log.log_start_offset, 1 << 30)
    out, pos = [], 0
    try:
        while pos < view.nbytes:
            h = klog.read_header(view, pos)
            out.append(h)
            pos += h.length + 12
    finally:
        view.release()
    return out


def wait_until(predicate, timeout=5.0, interval=0.002):
    """Poll ``predicate`` until true; returns the seconds it took, or None on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    return None
