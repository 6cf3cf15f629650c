"""``klog serve --zookeeper`` brokers 1..3 as processes on 127.0.0.1/2/3 for the cluster tests
(the ``make_cluster`` / ``cluster`` fixtures in conftest.py start them), with raw requests and
polling helpers."""
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

from confluent_kafka.admin import AdminClient, NewTopic

from klog.protocol.frames import decode_response, encode_request
from klog.protocol.messages import ApiKey

from .zookeeper import free_port


def call(s, api_key, version, body, cid=1):
    """One raw request on socket ``s``; the decoded response body."""
    s.sendall(encode_request(api_key, version, cid, "test", body).getvalue())
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "big"):
        chunk = s.recv(1 << 16)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    got, resp = decode_response(api_key, version, memoryview(buf[4:]))
    assert got == cid
    return resp

QUIET = {"log_level": 0, "logger": lambda *a: None}


def wait_for(what, check, timeout=30.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


class Cluster:
    """Brokers 1..3 as processes; ``kill``, ``start``; everything stopped by ``stop``."""

    def __init__(self, zookeeper, tmp_path, settings=()):
        self.zk = f"{zookeeper.address}/t{uuid.uuid4().hex[:8]}"
        self.tmp = tmp_path
        self.settings = list(settings)
        self.ports = {n: free_port() for n in (1, 2, 3)}
        self.procs = {}

    def address(self, n):
        return (f"127.0.0.{n}", self.ports[n])

    @property
    def bootstrap(self):
        return ",".join(f"{h}:{p}" for h, p in map(self.address, sorted(self.procs)))

    def start(self, n):
        self.ports.setdefault(n, free_port())      # a broker beyond 1..3 (a machine added)
        cmd = [sys.executable, "-m", "klog", "serve", "--node-id", str(n), "--zookeeper", self.zk,
               "--data-dir", str(self.tmp / f"b{n}"), "--listen", "%s:%d" % self.address(n)]
        for s in self.settings:
            cmd += ["-c", s]
        out = open(self.tmp / f"b{n}.out", "ab")
        self.procs[n] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        out.close()

    def kill(self, n, sig=signal.SIGKILL):
        proc = self.procs.pop(n)
        proc.send_signal(sig)
        return proc.wait(60)

    def stop(self):
        for proc in self.procs.values():
            proc.kill()
        for proc in self.procs.values():
            proc.wait(30)
        self.procs.clear()

    def raw(self, n, api_key, version, body):
        with socket.create_connection(self.address(n), timeout=30) as s:
            return call(s, api_key, version, body)

    def metadata(self, n, topics=None):
        return self.raw(n, ApiKey.METADATA, 9, {
            "topics": None if topics is None else [{"name": t} for t in topics],
            "allow_auto_topic_creation": False, "include_cluster_authorized_operations": False,
            "include_topic_authorized_operations": False})

    def partition(self, n, topic, p=0):
        md = self.metadata(n, [topic])
        # No partitions: the broker could not read ZooKeeper just now (e.g. reconnecting).
        return next((x for x in md["topics"][0]["partitions"] if x["partition_index"] == p),
                    {"leader_id": -1, "leader_epoch": -1, "isr_nodes": [], "replica_nodes": [],
                     "offline_replicas": []})

    def log_output(self):
        return "\n".join(f"--- broker {n}\n" + (self.tmp / f"b{n}.out").read_text()[-3000:]
                         for n in sorted(self.ports) if (self.tmp / f"b{n}.out").exists())


def live_brokers(c):
    try:
        return sorted(b["node_id"] for b in c.metadata(1)["brokers"])
    except OSError:
        return None


def create_topic(c, name, partitions=1, rf=3):
    admin = AdminClient({"bootstrap.servers": c.bootstrap, **QUIET})
    admin.create_topics([NewTopic(name, partitions, rf)])[name].result(30)
    wait_for("a leader with a full ISR", lambda: all(
        len(c.partition(n, name)["isr_nodes"]) == rf and c.partition(n, name)["leader_id"] >= 0
        for n in c.procs))


def klog_cli(*args, timeout=90, env=None):
    """``python -m klog ARGS`` as the brokers run it (``env``: extra variables); a
    CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "klog", *map(str, args)], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})
