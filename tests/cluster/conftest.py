import pytest

from .zookeeper import ZooKeeperServer


@pytest.fixture(scope="session")
def zookeeper():
    server = ZooKeeperServer().start()
    try:
        yield server
    finally:
        server.stop()


def pytest_collection_modifyitems(items):
    # Tests that start the real ZooKeeper are left out where it cannot run (wheel containers).
    for item in items:
        if "zookeeper" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.needs_zookeeper)
