import pytest

from .zookeeper import ZooKeeperServer


@pytest.fixture(scope="session")
def zookeeper():
    server = ZooKeeperServer().start()
    try:
        yield server
    finally:
        server.stop()
