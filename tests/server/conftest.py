import pytest

from klog.server import ServerThread


@pytest.fixture
def server(tmp_path):
    s = ServerThread(tmp_path / "data", {"num.partitions": 1}).start()
    try:
        yield s
    finally:
        s.stop()
