"""How long a partition reassignment (KIP-455) takes to copy a partition onto a new broker:
brokers 1..3 (``klog serve --zookeeper`` processes, Debian's ZooKeeper), one partition on
[1, 2, 3] filled with MB megabytes (1000-byte records, acks=all), then broker 4 starts and the
partition moves to [2, 3, 4]; the figure is the time from AlterPartitionReassignments to the
move's completion (ListPartitionReassignments empty: broker 4 caught up and joined the ISR, the
controller shrank the replicas). Each run is a fresh cluster.

    PYTHONPATH=src python bench/reassign_move.py [MB ...]      (default: 50 200)
"""
import os
import pathlib
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from confluent_kafka import Producer  # noqa: E402

from tests.cluster.brokers import QUIET, Cluster, live_brokers, wait_for  # noqa: E402
from tests.cluster.test_serve_cluster_reassign import alter_raw, create, list_raw  # noqa: E402
from tests.cluster.zookeeper import ZooKeeperServer  # noqa: E402


def move(zk, mb: int) -> str:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="klog-reassign-bench-"))
    c = Cluster(zk, tmp, ["min.insync.replicas=2"])
    try:
        for n in (1, 2, 3):
            c.start(n)
        wait_for("three brokers", lambda: live_brokers(c) == [1, 2, 3], 60)
        create(c, "big", [[1, 2, 3]])
        producer = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "linger.ms": 20,
                             "batch.size": 1 << 20, **QUIET})
        value = b"x" * 1000
        for _ in range(mb * 1000):
            while True:
                try:
                    producer.produce("big", value)
                    break
                except BufferError:
                    producer.poll(0.05)
        assert producer.flush(120) == 0
        c.start(4)
        wait_for("broker 4", lambda: live_brokers(c) == [1, 2, 3, 4], 60)
        start = time.monotonic()
        alter_raw(c, 2, {"big": {0: [2, 3, 4]}})
        wait_for("the move", lambda: not list_raw(c, 2)["topics"], 600, 0.02)
        took = time.monotonic() - start
        held = sum(f.stat().st_size for f in (tmp / "b4" / "big-0").glob("*.log")) / 1e6
        return (f"{mb} MB ({mb * 1000} records of 1000 B) moved onto broker 4 in {took:.2f} s "
                f"({held:.1f} MB of segments there)")
    finally:
        c.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [50, 200]
    zk = ZooKeeperServer().start()
    try:
        for mb in sizes:
            print(move(zk, mb), flush=True)
    finally:
        zk.stop()


if __name__ == "__main__":
    main()
