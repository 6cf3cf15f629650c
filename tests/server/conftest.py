import pytest

from klog.server import ServerThread


@pytest.fixture
def server(tmp_path):
    # No initial rebalance delay (klog serve's default is Kafka's 3 s): tests of it set their own.
    s = ServerThread(tmp_path / "data", {"num.partitions": 1,
                                         "group.initial.rebalance.delay.ms": 0}).start()
    try:
        yield s
    finally:
        s.stop()
