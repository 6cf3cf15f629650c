"""Testing klog applications: a pytest plugin and an in-process app harness.

Enable the plugin with ``pytest_plugins = ["klog.testing"]`` in a conftest (it is also
registered as the ``klog`` pytest11 entry point when klog is installed). Fixtures:

- ``klog_broker``: a client on a temporary embedded broker (a fresh data directory per test);
- ``klog_server``: a ``klog serve`` (``klog.server.ServerThread``) on a free port in a temporary
  data directory, no initial rebalance delay; ``.address`` is ``host:port``;
- ``klog_wire``: a client connected to ``klog_server`` over the Kafka protocol;
- ``klog_client``: parametrised over both (embedded and wire), for one test body per backend.

``AppHarness(app, client, **start_kwargs)`` (a context manager) starts the app on the client,
``send``s input records, ``wait_idle()``s until every input binding has processed and committed
everything (events, no sleeps), and ``read``s a topic from the beginning up to its end.
"""
import os
import tempfile

import pytest

from klog.functions import codec
from klog.functions.replay import read_topic  # noqa: F401 (re-exported)


def _connect(target):
    import klog
    if hasattr(klog, "connect"):
        return klog.connect(target)
    return klog.open(target)


class AppHarness:
    """Run an app in this process against ``client`` and drive it deterministically."""

    def __init__(self, app, client, **start_kwargs):
        self.app = app
        self.client = client
        self.start_kwargs = start_kwargs
        self.running = None
        self._producer = None

    def __enter__(self):
        self.running = self.app.start(self.client, **self.start_kwargs)
        self._producer = self.client.producer({"linger.ms": 0})
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.running is not None:
            self.running.stop()
        if self._producer is not None:
            self._producer.close()
            self._producer = None

    def send(self, topic, value, key=None, headers=None, partition=None):
        """Produce one input record (dicts / lists / models as JSON, str as UTF-8) and wait
        for its acknowledgement."""
        if isinstance(key, str):
            key = key.encode()
        if isinstance(headers, dict):
            from klog.functions.message import header_pairs
            headers = header_pairs(headers)
        return self._producer.send(topic, codec.encode(value), key=key, partition=partition,
                                   headers=headers).get(10)

    def wait_idle(self, timeout=20.0):
        self.running.wait_idle(timeout)
        return self

    def read(self, topic, timeout=10.0):
        return read_topic(self.client, topic, timeout)

    def values(self, topic, decode=codec._json_decode):
        return [decode(r.value) if r.value is not None else None for r in self.read(topic)]


@pytest.fixture
def klog_broker():
    with tempfile.TemporaryDirectory(prefix="klog-test-") as d:
        client = _connect(os.path.join(d, "data"))
        try:
            yield client
        finally:
            client.close()


@pytest.fixture
def klog_server():
    from klog.server import ServerThread
    with tempfile.TemporaryDirectory(prefix="klog-serve-") as d:
        server = ServerThread(os.path.join(d, "data"), {"num.partitions": 1,
                                                        "group.initial.rebalance.delay.ms": 0})
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def klog_wire(klog_server):
    import klog
    if not hasattr(klog, "connect"):
        pytest.fail("klog.connect (the wire client) is not available in this klog")
    client = klog.connect(f"kafka://{klog_server.address}")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(params=["embedded", "wire"])
def klog_client(request):
    return request.getfixturevalue("klog_broker" if request.param == "embedded" else "klog_wire")
