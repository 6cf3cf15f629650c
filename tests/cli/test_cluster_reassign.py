"""``klog cluster reassign`` with bad input: usage errors (exit 2) before anything is sent, a
single ``klog serve`` (no reassignment there) and a broker that is not there are one line each,
never a traceback. The moves themselves: tests/cluster/test_serve_cluster_reassign.py."""
import pytest

from klog.server import ServerThread

from .conftest import failed, ok, run
from .test_cluster_status import closed, unreachable  # noqa: F401 - fixture


@pytest.fixture
def server(tmp_path):
    s = ServerThread(tmp_path / "served").start()
    try:
        yield s
    finally:
        s.stop()


MOVE = ("--topic", "t", "--partition", "0")


@pytest.mark.parametrize("args, match", [
    ((), "give -b HOST:PORT"),
    (("-b", "127.0.0.1:1", *MOVE), "give --replicas"),
    (("-b", "127.0.0.1:1", *MOVE, "--replicas", "2,3", "--cancel"), "not both"),
    (("-b", "127.0.0.1:1", "--topic", "t", "--replicas", "2,3"), "--topic TOPIC --partition N"),
    (("-b", "127.0.0.1:1", "--partition", "0", "--cancel"), "--topic TOPIC --partition N"),
    (("-b", "127.0.0.1:1", *MOVE, "--replicas", "2,x"), "--replicas '2,x': expected broker ids"),
    (("-b", "127.0.0.1:1", *MOVE, "--replicas", ""), "expected broker ids like 2,3,4"),
    (("-b", "127.0.0.1:1", *MOVE, "--replicas", "2,-3"), "expected broker ids"),
    (("-b", "127.0.0.1:1", *MOVE, "--replicas", "2,3,2"), "broker 2 is named twice"),
    (("-b", "127.0.0.1:1", "--topic", "t", "--partition", "-1", "--cancel"), "-1"),
    (("-b", "127.0.0.1:1", "--list", "--cancel"), "--list goes alone"),
])
def test_usage_errors(args, match):
    failed(run("cluster", "reassign", *args), code=2, match=match)


def test_a_broker_that_is_not_there_is_exit_2(closed):  # noqa: F811 - fixture
    unreachable(run("cluster", "reassign", "-b", closed, *MOVE, "--replicas", "1,2"),
                f"{closed} (Connection refused)")
    unreachable(run("cluster", "reassign", "-b", closed, "--list"), "Connection refused")
    failed(run("cluster", "reassign", "-b", "nowhere", "--list"),
           match="'nowhere' is not HOST:PORT")


def test_a_single_klog_serve_cannot_move_replicas(server):
    ok(run("-b", server.address, "topic", "create", "t"))
    for args in ((*MOVE, "--replicas", "1"), ("--list",)):
        message = failed(run("cluster", "reassign", "-b", server.address, *args),
                         match="does not speak")
        assert "klog serve --zookeeper" in message
