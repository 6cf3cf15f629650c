"""``klog serve --zookeeper`` given bad input at start: ZooKeeper down or late, a node id a live
broker holds, a data directory of another cluster, a malformed connect string. Each is one clear
line and a nonzero exit (or, for a late ZooKeeper, a broker that waits and joins)."""
import json
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from klog.protocol.messages import ApiKey

from .test_serve_cluster import call, wait_for
from .zookeeper import ZooKeeperServer, free_port


def serve(tmp_path, node_id, zookeeper, port, *settings, data="d"):
    cmd = [sys.executable, "-m", "klog", "serve", "--node-id", str(node_id), "--zookeeper",
           zookeeper, "--data-dir", str(tmp_path / data), "--listen", f"127.0.0.1:{port}"]
    for s in settings:
        cmd += ["-c", s]
    return cmd


def metadata(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            return call(s, ApiKey.METADATA, 9, {
                "topics": None, "allow_auto_topic_creation": False,
                "include_cluster_authorized_operations": False,
                "include_topic_authorized_operations": False})
    except OSError:
        return None


def error_lines(stderr):
    assert "Traceback" not in stderr, stderr[-3000:]
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_zookeeper_down_at_start_is_one_line_after_the_connection_timeout(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    r = subprocess.run(serve(tmp_path, 1, address, free_port(),
                             "zookeeper.connection.timeout.ms=1500"),
                       capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    assert r.returncode != 0
    assert error_lines(r.stderr) == [
        f"error: ZooKeeper at {address} did not answer within 1.5 s "
        "(zookeeper.connection.timeout.ms)"], r.stderr[-3000:]
    assert took >= 1.5


def test_zookeeper_that_starts_late_is_waited_for(tmp_path):
    """The broker starts first (ZooKeeper refuses connections), ZooKeeper a moment later: the
    broker joins within zookeeper.connection.timeout.ms and serves as the cluster's controller."""
    zk = ZooKeeperServer()          # its port is chosen; the server is not running yet
    port = free_port()
    out = open(tmp_path / "broker.out", "wb")
    proc = subprocess.Popen(serve(tmp_path, 1, f"{zk.address}/late", port,
                                  "zookeeper.connection.timeout.ms=60000"),
                            stdout=out, stderr=subprocess.STDOUT)
    out.close()
    try:
        wait_for("the broker trying ZooKeeper", lambda: b"Connection refused" in
                 (tmp_path / "broker.out").read_bytes(), 60)
        assert proc.poll() is None
        zk.start()
        md = wait_for("the broker registered", lambda: (m := metadata(port)) and
                      m["controller_id"] == 1 and m, 60)
        assert [b["node_id"] for b in md["brokers"]] == [1]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        zk.stop()


def test_node_id_held_by_a_live_broker_is_refused_naming_it(zookeeper, tmp_path):
    chroot = f"{zookeeper.address}/taken{uuid.uuid4().hex[:8]}"
    first_port = free_port()
    first = subprocess.Popen(serve(tmp_path, 1, chroot, first_port, data="a"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("the first broker registered", lambda: (m := metadata(first_port)) and
                 m["controller_id"] == 1, 60)
        started = time.monotonic()
        r = subprocess.run(serve(tmp_path, 1, chroot, free_port(), data="b"),
                           capture_output=True, text=True, timeout=120)
        assert r.returncode != 0
        assert error_lines(r.stderr) == [
            f"error: node id 1 is already registered in ZooKeeper {chroot} by a live broker at "
            f"127.0.0.1:{first_port} (broker epoch {_epoch(zookeeper, chroot, 1)}); give each "
            "broker its own --node-id"], r.stderr[-3000:]
        assert time.monotonic() - started < 30       # refused, not waited out
        assert first.poll() is None and [b["node_id"] for b in metadata(first_port)[
            "brokers"]] == [1]
    finally:
        first.terminate()
        first.wait(60)


def _epoch(zookeeper, chroot, node):
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=zookeeper.address)
    zk.start(30)
    try:
        return zk.exists(f"/{chroot.partition('/')[2]}/brokers/ids/{node}").czxid
    finally:
        zk.stop()
        zk.close()


def _cluster_id(zookeeper, chroot):
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=zookeeper.address)
    zk.start(30)
    try:
        return json.loads(zk.get(f"/{chroot.partition('/')[2]}/cluster/id")[0])["id"]
    finally:
        zk.stop()
        zk.close()


def test_data_directory_of_another_cluster_is_refused_naming_both(zookeeper, tmp_path):
    """A data directory that served cluster A (meta.properties records its id), started
    against cluster B (another chroot: another cluster id): refused, naming both ids, and the
    directory's meta.properties is left as it was."""
    a = f"{zookeeper.address}/ca{uuid.uuid4().hex[:8]}"
    b = f"{zookeeper.address}/cb{uuid.uuid4().hex[:8]}"
    port = free_port()
    proc = subprocess.Popen(serve(tmp_path, 1, a, port), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for("the broker in cluster A", lambda: (m := metadata(port)) and
                 m["controller_id"] == 1, 60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    meta = (tmp_path / "d" / "meta.properties").read_text()
    id_a = _cluster_id(zookeeper, a)
    assert f"cluster.id={id_a}" in meta
    # Cluster B exists (another broker created its id), then our directory is pointed at it.
    other = free_port()
    proc = subprocess.Popen(serve(tmp_path, 2, b, other, data="other"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("cluster B", lambda: (m := metadata(other)) and m["controller_id"] == 2, 60)
        id_b = _cluster_id(zookeeper, b)
        r = subprocess.run(serve(tmp_path, 1, b, port), capture_output=True, text=True,
                           timeout=120)
    finally:
        proc.terminate()
        proc.wait(60)
    assert id_a != id_b
    assert r.returncode != 0
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and f"belongs to cluster {id_a}, but ZooKeeper's cluster is {id_b}" \
        in lines[0], r.stderr[-3000:]
    assert (tmp_path / "d" / "meta.properties").read_text() == meta


@pytest.mark.parametrize("connect,why", [
    ("127.0.0.1:2181/", "bad chroot '/'"),
    ("127.0.0.1:2181//klog", "bad chroot"),
    ("127.0.0.1:70000", "'127.0.0.1:70000' is not host:port"),
    ("127.0.0.1:0", "'127.0.0.1:0' is not host:port"),
    ("127.0.0.1:2181,", "'' is not host:port"),
    ("127.0.0.1", "'127.0.0.1' is not host:port"),
    (":2181/klog", "':2181' is not host:port"),
])
def test_malformed_zookeeper_connect_string(tmp_path, connect, why):
    r = subprocess.run(serve(tmp_path, 1, connect, free_port()), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and f"zookeeper.connect {connect!r}" in lines[0] and why in lines[0], \
        r.stderr
    assert not (tmp_path / "d").exists()       # refused before anything was created


def test_cluster_settings_from_server_properties(tmp_path):
    """The cluster settings klog uses (controlled shutdown retries and back-off, ZooKeeper
    timeouts, replica lag) come from server.properties with zookeeper.connect; without it they
    are ignored with a warning, as the node id is."""
    from klog import server_properties

    conf = tmp_path / "server.properties"
    conf.write_text("broker.id=3\nzookeeper.connect=127.0.0.1:2181/k\n"
                    "controlled.shutdown.max.retries=2\ncontrolled.shutdown.retry.backoff.ms=100\n"
                    "zookeeper.connection.timeout.ms=5000\nzookeeper.session.timeout.ms=9000\n"
                    "replica.lag.time.max.ms=4000\n")
    got = server_properties.load(conf)
    assert got.cluster_settings == {
        "controlled_shutdown_max_retries": 2, "controlled_shutdown_retry_backoff_ms": 100,
        "connection_timeout_ms": 5000, "session_timeout_ms": 9000,
        "replica_lag_time_max_ms": 4000}
    assert got.warnings == []
    conf.write_text("controlled.shutdown.max.retries=2\n")
    single = server_properties.load(conf)
    assert single.cluster_settings == {}
    assert "ignoring 'controlled.shutdown.max.retries'" in single.warnings[0]
    conf.write_text("zookeeper.connect=a:1\ncontrolled.shutdown.retry.backoff.ms=soon\n")
    with pytest.raises(server_properties.ServerPropertiesError,
                       match="controlled.shutdown.retry.backoff.ms='soon' is not a non-negative"):
        server_properties.load(conf)
    r = subprocess.run(serve(tmp_path, 1, "127.0.0.1:1", free_port(),
                             "controlled.shutdown.max.retries=many"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and error_lines(r.stderr) == [
        "error: controlled.shutdown.max.retries='many': expected a non-negative integer"], r.stderr
