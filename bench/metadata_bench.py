"""The single-node Metadata handler's cost per request: the registered METADATA handler called
directly on a Server's event loop (no socket, no encoding), for one topic, every topic and no
topic.

    PYTHONPATH=src python bench/metadata_bench.py [--topics 10] [--partitions 8] [--n 3000]

Prints microseconds per request, best of five runs of ``--n`` requests. Run it once against a
tree from before a change (PYTHONPATH=<old tree>/src) to compare.
"""
import argparse
import asyncio
import shutil
import tempfile
import time
from types import SimpleNamespace

import klog
from klog.protocol.messages import ApiKey
from klog.server import handlers
from klog.server.server import Server, serve_config


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topics", type=int, default=10)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--n", type=int, default=3000)
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="klog-md-bench-")
    broker = klog.open(data, serve_config({"num.partitions": 1}))
    try:
        for i in range(args.topics):
            broker.create_topic(f"t{i}", args.partitions)
        server = Server(broker, "127.0.0.1", 0)
        server.advertised = ("127.0.0.1", 9092)
        no_ops = {"include_cluster_authorized_operations": False,
                  "include_topic_authorized_operations": False}
        cases = [
            (f"one topic ({args.partitions} partitions), v12", 12,
             {"topics": [{"name": "t0", "topic_id": None}], "allow_auto_topic_creation": True,
              **no_ops}),
            (f"all topics ({args.topics} x {args.partitions}), v12", 12,
             {"topics": None, "allow_auto_topic_creation": False, **no_ops}),
            ("no topics, v9", 9, {"topics": [], "allow_auto_topic_creation": True, **no_ops}),
        ]
        asyncio.run(_measure(server, cases, args.n))
    finally:
        broker.close()
        shutil.rmtree(data, ignore_errors=True)


async def _measure(server, cases, n):
    handler = server.handlers[ApiKey.METADATA]
    for label, version, body in cases:
        ctx = handlers.Context(server, SimpleNamespace(api_version=version, client_id="bench"),
                               None)
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(n):
                await handler(ctx, body)
            best = min(best, (time.perf_counter() - start) / n * 1e6)
        print(f"{label}: {best:.1f} us/request")


if __name__ == "__main__":
    main()
