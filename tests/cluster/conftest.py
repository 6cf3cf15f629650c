import pytest

from .brokers import Cluster, live_brokers, wait_for
from .zookeeper import ZooKeeperServer


@pytest.fixture(scope="session")
def zookeeper():
    server = ZooKeeperServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_cluster(zookeeper, tmp_path):
    started = []

    def make(settings=("min.insync.replicas=2",)):
        c = Cluster(zookeeper, tmp_path, settings)
        started.append(c)
        for n in (1, 2, 3):
            c.start(n)
        wait_for("three registered brokers", lambda: live_brokers(c) == [1, 2, 3], 60)
        # The controller may be elected after the last registration: tests that ask for it
        # (or send admin requests to it) start once every broker's Metadata names one.
        wait_for("a controller", lambda: all(
            c.metadata(n)["controller_id"] in (1, 2, 3) for n in (1, 2, 3)), 60)
        return c

    try:
        yield make
    finally:
        for c in started:
            c.stop()


@pytest.fixture
def cluster(make_cluster):
    return make_cluster()


def pytest_collection_modifyitems(items):
    # Tests that start the real ZooKeeper are left out where it cannot run (wheel containers).
    for item in items:
        if "zookeeper" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.needs_zookeeper)
