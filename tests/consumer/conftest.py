"""Fixtures for consumer tests: a real broker with short group timeouts, a way to append records,
and consumers running in their own threads (as group members do in an application)."""
import threading
import time

import pytest

import klog

BROKER = {
    "group.min.session.timeout.ms": 10,
    "offsets.topic.num.partitions": 3,
    "num.partitions": 1,
}
# Short group timings so rebalances take tens of milliseconds, not seconds.
FAST = {
    "heartbeat.interval.ms": 20,
    "session.timeout.ms": 500,
    "max.poll.interval.ms": 10_000,
    "auto.offset.reset": "earliest",
}


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def broker(data_dir):
    b = klog.open(data_dir, BROKER)
    yield b
    b.close()


@pytest.fixture
def produce(broker):
    """produce(topic, partition, values, timestamps=None, keys=None) -> base offset."""
    def produce(topic, partition, values, timestamps=None, keys=None, compression=None):
        values = [v.encode() if isinstance(v, str) else v for v in values]
        return broker.log(topic, partition).append(values, keys, timestamps, compression=compression)
    return produce


def wait_until(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Worker:
    """A subscribed consumer polling in its own thread. ``stall()`` stops its polling (the app is
    busy); ``die()`` also stops its heartbeats (the process hung); ``close()`` closes it."""

    def __init__(self, broker, group, topics, **config):
        self.consumer = broker.consumer(group, {**FAST, **config})
        self.records = []
        self.assigned, self.revoked = [], []
        self.consumer.subscribe(topics, on_assign=self.assigned.append, on_revoke=self.revoked.append)
        self._stop = threading.Event()
        self._polling = threading.Event()
        self._polling.set()
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                if self._polling.wait(0.01):
                    self.records.extend(self.consumer.poll(30))
        except BaseException as exc:   # surfaced by the test through .error
            self.error = exc

    def assignment(self):
        return self.consumer.assignment()

    def values(self):
        return [r.value for r in self.records]

    def stall(self):
        self._polling.clear()

    def resume(self):
        self._polling.set()

    def die(self):
        self.stall()
        self.consumer._member.stop_heartbeats()

    def halt(self):
        self._stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()

    def close(self):
        self.halt()
        self.consumer.close()


@pytest.fixture
def workers(broker):
    started = []

    def start(group, topics, **config):
        w = Worker(broker, group, topics, **config)
        started.append(w)
        return w

    yield start
    for w in started:
        w.halt()
        try:
            w.consumer.close()
        except Exception:
            pass
        assert w.error is None, f"worker failed: {w.error!r}"


@pytest.fixture
def until():
    return wait_until


@pytest.fixture
def fast():
    """Consumer config with short group timings."""
    return dict(FAST)


@pytest.fixture
def reopen(data_dir):
    """Open the broker's data directory again (after closing it)."""
    return lambda: klog.open(data_dir, BROKER)
