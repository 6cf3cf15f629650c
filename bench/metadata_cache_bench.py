"""A cluster member's Metadata view: read from ZooKeeper per request (``read_view``, before)
against answered from the MetadataCache (after), on a real ZooKeeper; also the cache's load
(a full sync) and how long leader changes take to reach it (write to answer).

    PYTHONPATH=src python bench/metadata_cache_bench.py [--topics 4] [--partitions 1000]

Run from the repository root (it uses the tests' ZooKeeper helper). Prints milliseconds.
"""
import argparse
import sys
import time

sys.path.insert(0, ".")
from tests.cluster.zookeeper import ZooKeeperServer  # noqa: E402

from klog.cluster.metadata_cache import MetadataCache  # noqa: E402
from klog.cluster.metadata_view import read_view  # noqa: E402
from klog.cluster.state import LeaderAndIsr  # noqa: E402
from klog.cluster.zkstore import ClusterStore  # noqa: E402


def best(fn, runs):
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out) * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topics", type=int, default=4)
    ap.add_argument("--partitions", type=int, default=1000)
    args = ap.parse_args()
    shape = f"{args.topics} topics x {args.partitions} partitions"
    zk = ZooKeeperServer().start()
    try:
        with ClusterStore(f"{zk.address}/mcb") as s, ClusterStore(f"{zk.address}/mcb") as own:
            fence = s.elect_controller(1)
            s.register_broker(1, "127.0.0.1", 9092)
            n = args.partitions
            for t in range(args.topics):
                s.create_topic(f"t{t}", {p: (1,) for p in range(n)},
                               {p: LeaderAndIsr(1, 0, (1,), fence.epoch) for p in range(n)}, fence)
            before = best(lambda: read_view(s, None), 3)
            print(f"read_view (before), {shape}, all topics: {before:.1f} ms")
            t0 = time.perf_counter()
            cache = MetadataCache(own, 1).start()
            while not cache.loaded:
                time.sleep(0.001)
            print(f"cache load (one full sync, watches armed): "
                  f"{(time.perf_counter() - t0) * 1000:.0f} ms")
            after = best(lambda: cache.view(None), 20)
            one = best(lambda: cache.view(["t0"]), 50)
            print(f"cache (after), {shape}, all topics: {after:.1f} ms; one topic: {one:.2f} ms "
                  f"({before / after:.0f}x)")
            lags = []
            for i in range(20):
                held = s.partition_state("t1", i)
                t0 = time.perf_counter()
                s.write_state_as_controller("t1", i, held.with_leader(1, (1,), fence.epoch),
                                            fence)
                while cache.view(["t1"]).topics[0]["partitions"][i]["leader_epoch"] != 1:
                    time.sleep(0.0002)
                lags.append((time.perf_counter() - t0) * 1000)
            lags.sort()
            print(f"leader change written -> in the cache's answer: median "
                  f"{lags[len(lags) // 2]:.1f} ms, max {lags[-1]:.1f} ms (20 changes; the write "
                  "itself included)")
            # A controller's decision for a whole topic (a broker died): every partition's
            # state written (pipelined), then until the cache answers all of them.
            held = s.partition_states([("t2", p) for p in range(n)])
            t0 = time.perf_counter()
            s.write_states_as_controller(
                {k: st.with_leader(1, (1,), fence.epoch) for k, st in held.items()}, fence)
            written = time.perf_counter() - t0
            while any(p["leader_epoch"] != 1 for p in cache.view(["t2"]).topics[0]["partitions"]):
                time.sleep(0.001)
            print(f"{n} leader changes written in {written * 1000:.0f} ms -> all in the cache's "
                  f"answer after {(time.perf_counter() - t0) * 1000:.0f} ms")
            cache.stop()
    finally:
        zk.stop()


if __name__ == "__main__":
    main()
