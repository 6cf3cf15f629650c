"""One test body, two backends (as uvloop runs one body against two loops): the ``client``
fixture is the embedded broker on a fresh data directory (``embedded``) or a ``klog serve``
started by the test on a fresh data directory, reached through confluent-kafka (``wire``)."""
import time

import pytest

import klog
from klog.server import ServerThread

BROKER_CONFIG = {"num.partitions": 1}


@pytest.fixture(params=["embedded", "wire"])
def client(request, tmp_path):
    if request.param == "embedded":
        c = klog.connect(tmp_path / "data", BROKER_CONFIG)
        try:
            yield c
        finally:
            c.close()
    else:
        server = ServerThread(tmp_path / "data", BROKER_CONFIG).start()
        c = klog.connect(f"kafka://{server.address}")
        try:
            yield c
        finally:
            c.close()
            server.stop()


def poll_until(consumer, n, timeout_s=30.0):
    """Poll until ``n`` records came back (or fail after ``timeout_s``)."""
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n:
        assert time.monotonic() < deadline, f"got {len(out)} of {n} records: {out[-3:]}"
        out += consumer.poll(200)
    return out


def wait_for(predicate, timeout_s=30.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
