"""Produce throughput to a 3-broker klog cluster (three ``klog serve --zookeeper`` processes on
127.0.0.1/2/3 and a ZooKeeper from Debian's package), replication factor 3, with
confluent-kafka, for acks=1 and acks=all (idempotent).

    PYTHONPATH=src python bench/cluster_produce.py [--messages 50000] [--size 100]
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from cluster.zookeeper import ZooKeeperServer, free_port  # noqa: E402

QUIET = {"log_level": 0, "logger": lambda *a: None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--size", type=int, default=100)
    args = ap.parse_args()
    zk = ZooKeeperServer().start()
    base = tempfile.mkdtemp(prefix="klog-cluster-bench-")
    procs, addrs = [], []
    try:
        for n in (1, 2, 3):
            addr = f"127.0.0.{n}:{free_port()}"
            addrs.append(addr)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "klog", "serve", "--node-id", str(n), "--zookeeper",
                 zk.address, "--data-dir", f"{base}/b{n}", "--listen", addr,
                 "-c", "min.insync.replicas=2"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        boot = ",".join(addrs)
        admin = AdminClient({"bootstrap.servers": boot, **QUIET})
        deadline = time.monotonic() + 60
        while len(admin.list_topics(timeout=10).brokers) < 3:
            assert time.monotonic() < deadline, "brokers did not register"
            time.sleep(0.2)
        value = b"x" * args.size
        for acks in ("1", "all"):
            topic = f"bench-acks-{acks}"
            admin.create_topics([NewTopic(topic, 1, 3)])[topic].result(30)
            p = Producer({"bootstrap.servers": boot, "acks": acks, "linger.ms": 5,
                          "enable.idempotence": acks == "all", **QUIET})
            p.produce(topic, value)           # metadata and leader known before timing
            p.flush(30)
            t0 = time.perf_counter()
            for _ in range(args.messages):
                while True:
                    try:
                        p.produce(topic, value)
                        break
                    except BufferError:
                        p.poll(0.01)
            assert p.flush(120) == 0
            dt = time.perf_counter() - t0
            print(f"acks={acks:>3}: {args.messages / dt:,.0f} msg/s "
                  f"({args.messages * args.size / dt / 1e6:.1f} MB/s), {args.messages} x "
                  f"{args.size} B, rf=3")
    finally:
        for pr in procs:
            pr.send_signal(signal.SIGTERM)
        for pr in procs:
            try:
                pr.wait(30)
            except subprocess.TimeoutExpired:
                pr.kill()
        zk.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
