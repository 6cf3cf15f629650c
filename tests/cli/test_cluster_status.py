"""``klog cluster status`` without a cluster: a single ``klog serve`` answers ``-b`` as a
one-broker cluster (replication factor 1), and a broker or ZooKeeper that is not there, or does
not answer, is one line and exit status 2 within ``--timeout``."""
import json
import socket
import time

import pytest

from klog.server import ServerThread

from .conftest import failed, ok, run, table


@pytest.fixture
def server(tmp_path):
    s = ServerThread(tmp_path / "served", {"num.partitions": 2}).start()
    try:
        yield s
    finally:
        s.stop()


def unreachable(proc, match):
    """Exit 2, nothing on stdout, one 'error:' line on stderr matching ``match``."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert match in lines[0], lines[0]


@pytest.fixture
def silent():
    """A port that accepts connections (the kernel's backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    try:
        yield "127.0.0.1:%d" % s.getsockname()[1]
    finally:
        s.close()


@pytest.fixture
def closed():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    address = "127.0.0.1:%d" % s.getsockname()[1]
    s.close()
    return address


def test_a_single_klog_serve_is_a_one_broker_cluster(server):
    ok(run("-b", server.address, "topic", "create", "orders"))
    ok(run("-b", server.address, "produce", "orders", "-p", "1", input="a\nb\nc\n"))
    doc = json.loads(ok(run("cluster", "status", "-b", server.address, "--format", "json")))
    host, port = server.address.rsplit(":", 1)
    assert doc["brokers"] == [{"id": 0, "host": host, "port": int(port), "alive": True,
                               "epoch": None}]
    assert doc["controller"] == {"id": 0, "epoch": None}
    assert [(p["topic"], p["partition"], p["leader"], p["replicas"], p["isr"],
             p["high_watermark"], p["under_replicated"], p["offline"])
            for p in doc["partitions"]] == [("orders", 0, 0, [0], [0], 0, False, False),
                                            ("orders", 1, 0, [0], [0], 3, False, False)]
    assert doc["summary"] == {"brokers": 1, "topics": 1, "partitions": 2,
                              "under_replicated": 0, "under_min_isr": 0, "offline": 0}
    assert [p["min_isr"] for p in doc["partitions"]] == [1, 1]        # the broker's default
    # the global -b (or KLOG_BROKERS) works too; the table has the same rows
    text = ok(run("-b", server.address, "cluster", "status"))
    header, rows = table(text, "TOPIC")
    assert header == ["TOPIC", "PARTITION", "LEADER", "LEADER-EPOCH", "REPLICAS", "ISR", "HW",
                      "STATE"]
    assert rows == [["orders", "0", "0", "0", "0", "0", "0", "ok"],
                    ["orders", "1", "0", "0", "0", "0", "3", "ok"]]
    assert text.splitlines()[-1] == ("1 broker(s) up; 1 topic(s), 2 partition(s): "
                                     "0 under-replicated, 0 under min ISR, 0 offline")
    assert ok(run("cluster", "status", "--under-replicated", "--format", "json",
                  env={"KLOG_BROKERS": server.address})).count('"topic"') == 0


def test_internal_topics_are_counted_and_listed_on_request(server):
    ok(run("-b", server.address, "topic", "create", "orders"))
    ok(run("-b", server.address, "produce", "orders", input="a\n"))
    ok(run("-b", server.address, "consume", "orders", "-e", "-g", "readers"))   # commits
    assert server.broker.has_topic("__consumer_offsets")
    offsets = server.broker.partition_count("__consumer_offsets")
    doc = json.loads(ok(run("cluster", "status", "-b", server.address, "--format", "json")))
    assert {p["topic"] for p in doc["partitions"]} == {"orders"}
    assert doc["summary"]["partitions"] == 2 + offsets and doc["summary"]["topics"] == 2
    assert doc["notes"] == ["internal topics counted, not listed (--internal): __consumer_offsets"]
    doc = json.loads(ok(run("cluster", "status", "-b", server.address, "--internal",
                            "--format", "json")))
    assert len(doc["partitions"]) == 2 + offsets and doc["notes"] == []
    named = json.loads(ok(run("cluster", "status", "-b", server.address,
                              "--topic", "__consumer_offsets", "--format", "json")))
    assert len(named["partitions"]) == named["summary"]["partitions"] == offsets


def test_topic_create_replication_factor_needs_a_cluster(server, tmp_path):
    failed(run("topic", "create", "t", "-r", "2", data_dir=tmp_path / "d"),
           match="a data directory is one broker")
    failed(run("-b", server.address, "topic", "create", "t", "-r", "3"),
           match="replication factor must be 1")
    ok(run("-b", server.address, "topic", "create", "t", "-r", "1"))


def timed(*args):
    start = time.monotonic()
    proc = run(*args)
    return proc, time.monotonic() - start


def test_no_broker_answers_exit_2_in_one_line(closed, silent):
    proc, refused_s = timed("cluster", "status", "-b", closed)
    unreachable(proc, f"{closed} (Connection refused)")
    proc, silent_s = timed("cluster", "status", "-b", f"{closed},{silent}", "--timeout", "1")
    unreachable(proc, f"no broker answered within 1 s: {closed} (Connection refused), {silent} "
                "(timed out)")
    # --timeout bounds the wait (beyond what starting the interpreter costs: the refused run)
    assert silent_s - refused_s < 1 + 2, (silent_s, refused_s)


def test_no_zookeeper_answers_exit_2_in_one_line(closed, silent):
    proc, refused_s = timed("cluster", "status", "--zookeeper", closed, "--timeout", "1")
    unreachable(proc, f"ZooKeeper at {closed} did not answer within 1 s")
    proc, silent_s = timed("cluster", "status", "--zookeeper", silent, "--timeout", "1")
    unreachable(proc, f"ZooKeeper at {silent} did not answer within 1 s")
    # (kazoo's connection attempt lasted its 6 s session timeout, whatever --timeout said)
    assert silent_s - refused_s < 1 + 2, (silent_s, refused_s)


def test_where_is_the_cluster_usage_errors():
    failed(run("cluster", "status"), code=2, match="give -b HOST:PORT")
    failed(run("cluster", "status", "-b", "127.0.0.1:1", "--zookeeper", "127.0.0.1:2"), code=2,
           match="not both")
    failed(run("cluster", "status", "-b", "127.0.0.1:1", "--no-high-watermark"), code=2,
           match="goes with --zookeeper")
    failed(run("cluster", "status", "--zookeeper", "localhost"), match="is not host:port")
    failed(run("cluster", "status", "-b", "nowhere"), match="'nowhere' is not HOST:PORT")
