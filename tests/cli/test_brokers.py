"""``klog -b HOST:PORT``: topic, produce, consume and group commands through a running server
(the client API's wire backend), and a data directory a server owns points to ``-b``."""
import pytest

from klog.server import ServerThread

from .conftest import failed, ok, run


@pytest.fixture
def server(tmp_path):
    s = ServerThread(tmp_path / "served", {"num.partitions": 1}).start()
    try:
        yield s
    finally:
        s.stop()


def test_topics_produce_consume_groups_through_a_server(server):
    b = ["-b", server.address]
    ok(run(*b, "topic", "create", "orders", "-p", "2", "-c", "retention.ms=60000"))
    assert "orders" in ok(run(*b, "topic", "list"))
    described = ok(run(*b, "topic", "describe", "orders"))
    assert "retention.ms" in described and "60000" in described
    ok(run(*b, "produce", "orders", "-p", "1", "-K", ":", input="k1:one\nk2:two\n"))
    assert ok(run(*b, "consume", "orders", "-e", "-f", "%p %o %k %s\n")).splitlines() == \
        ["1 0 k1 one", "1 1 k2 two"]
    assert ok(run(*b, "consume", "orders", "-e", "-g", "readers", "-f", "%s\n")).split() == \
        ["one", "two"]
    assert "readers" in ok(run(*b, "group", "list"))
    assert "orders" in ok(run(*b, "group", "describe", "readers"))
    ok(run(*b, "topic", "alter", "orders", "-p", "3"))
    assert server.broker.partition_count("orders") == 3
    ok(run(*b, "topic", "delete", "orders"))
    assert server.broker.list_topics() == []


def test_a_data_directory_owned_by_a_server_points_to_b(server, tmp_path):
    message = failed(run("topic", "list", data_dir=tmp_path / "served"))
    assert "-b HOST:PORT" in message


def test_unknown_topic_through_a_server_is_one_clear_line(server):
    message = failed(run("-b", server.address, "topic", "describe", "missing"))
    assert "missing" in message


def test_group_reset_offsets_through_a_server(server):
    b = ["-b", server.address]
    ok(run(*b, "topic", "create", "t", "-p", "1"))
    ok(run(*b, "produce", "t", input="a\nb\nc\n"))
    assert ok(run(*b, "consume", "t", "-e", "-g", "g", "-f", "%s\n")).split() == ["a", "b", "c"]
    ok(run(*b, "group", "reset-offsets", "g", "--topic", "t", "--to-offset", "1"))
    assert ok(run(*b, "consume", "t", "-e", "-g", "g", "-f", "%s\n")).split() == ["b", "c"]
