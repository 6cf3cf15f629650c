"""klog.connect: which backend a target selects."""
import pytest

import klog
from klog import errors
from klog.server import ServerThread


def test_path_and_file_url_open_the_embedded_broker(tmp_path):
    with klog.connect(tmp_path / "a") as c:
        assert c.backend == "embedded"
        c.create_topic("t", 1)
    with klog.connect(f"file://{tmp_path / 'a'}") as c:
        assert c.backend == "embedded" and c.list_topics() == ["t"]


def test_an_open_broker_is_wrapped_not_owned(tmp_path):
    with klog.open(tmp_path / "b") as broker:
        with klog.connect(broker) as c:
            c.create_topic("t", 1)
        assert not broker.closed and broker.list_topics() == ["t"]


def test_kafka_url_and_bootstrap_servers_connect_over_the_wire(tmp_path):
    server = ServerThread(tmp_path / "d", {"num.partitions": 1}).start()
    try:
        with klog.connect(f"kafka://{server.address}") as c:
            assert c.backend == "wire"
            c.create_topic("t", 1)
        with klog.connect(None, {"bootstrap.servers": server.address}) as c:
            assert c.backend == "wire" and c.list_topics() == ["t"]
    finally:
        server.stop()


def test_a_data_directory_owned_by_a_server_says_to_connect_to_it(tmp_path):
    server = ServerThread(tmp_path / "d", {}).start()
    try:
        with pytest.raises(errors.LogLockedError):
            klog.connect(tmp_path / "d")
    finally:
        server.stop()


@pytest.mark.parametrize("target", ["http://x:1", "kafka://"])
def test_bad_targets_are_config_errors(target):
    with pytest.raises(errors.ConfigError):
        klog.connect(target)


def test_nothing_to_connect_to_is_a_config_error():
    with pytest.raises(errors.ConfigError):
        klog.connect(None, {})
