"""Cluster fault soak: the Jepsen-style workload against a three-broker klog cluster (ZooKeeper
and each broker in its own network namespace, a delaying proxy per broker) under at least
--faults faults aimed by role (tests/jepsen/cluster_nemesis.py), checked after each round
(C1-C9 on the history, C10 on the three data directories); prints counts.

    sudo PYTHONPATH=src python bench/cluster_soak.py --faults 100

Each round is one workload run on a fresh topic (replication factor 3, min.insync.replicas=2,
unclean election off) while the nemesis applies --per-round faults, the kinds in a seeded random
order, each held, undone and followed by a wait for the cluster to be whole (every partition
led, full ISR); then heal, a final read, the checker and the replica comparison. Rounds repeat
on the same cluster until --faults faults were injected. Exit status 1 if any violation was
found (the work directory is then kept and named).
"""
import argparse
import os
import random
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "src"), os.path.join(ROOT, "tests")]

from jepsen import runner  # noqa: E402
from jepsen.checker import CHECKS  # noqa: E402
from jepsen.cluster import ClusterTarget  # noqa: E402
from jepsen.cluster_nemesis import CLUSTER_FAULTS  # noqa: E402


def add(into: dict, d: dict):
    for k, v in d.items():
        into[k] = into.get(k, 0) + v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faults", type=int, default=100, help="at least this many faults")
    ap.add_argument("--per-round", type=int, default=12, help="faults per workload round")
    ap.add_argument("--kinds", default=",".join(CLUSTER_FAULTS),
                    help="comma-separated cluster fault kinds")
    ap.add_argument("--rate", type=float, default=50.0, help="sends/s per producer")
    ap.add_argument("--delay", type=float, default=0.05, help="proxy delay (s each way) "
                                                                "during the delay fault")
    ap.add_argument("--send-timeout-ms", type=int, default=120000,
                    help="producers' delivery timeout (Kafka's default 120 s); a shorter one "
                         "makes librdkafka bump producer epochs during long faults")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    kinds = a.kinds.split(",")
    rng = random.Random(a.seed)
    work = tempfile.mkdtemp(prefix="klog-cluster-soak-")
    totals = dict.fromkeys(CHECKS, 0)
    ops, faults = {}, {}
    c10 = {"compared": 0, "diverged": 0, "short": 0}
    started = time.monotonic()
    n_faults = rounds = unsettled = 0
    bad_rounds = []
    try:
        with ClusterTarget(work, delay=a.delay, jitter=a.delay) as t:
            while n_faults < a.faults:
                order = [rng.choice(kinds) for _ in range(a.per_round)]
                t0 = time.monotonic()
                out = runner.run_cluster(
                    t, order, duration=1800, seed=a.seed * 1000 + rounds, topic=f"soak{rounds}",
                    workload_args=["--max-sends", "100000000", "--rate", str(a.rate),
                                   "--send-timeout-ms", str(a.send_timeout_ms)],
                    nemesis_args={"interval": 0.5, "max_faults": a.per_round})
                rounds += 1
                n_faults += out.faults
                unsettled += out.unsettled
                r = out.report
                add(totals, r.violations)
                add(ops, r.ops)
                add(faults, r.faults)
                for rep in out.replicas.values():
                    c10["compared"] += rep.compared
                    c10["diverged"] += len(rep.diverged)
                    c10["short"] += len(rep.short)
                bad = r.total + out.replica_violations
                print(f"round {rounds} ({time.monotonic() - t0:.0f} s): faults {out.faults} "
                      f"(total {n_faults}) {','.join(order)}; sends ok "
                      f"{r.ops['send_ok']}/{r.ops['send']}, violations {r.total}, C10 "
                      f"{out.replica_violations}, unsettled {out.unsettled}, workload rc "
                      f"{out.workload_rc}, final rc {out.final_rc}", flush=True)
                if bad or out.workload_rc or out.final_rc:
                    bad_rounds.append(rounds)
                    print(out.describe(), flush=True)
    finally:
        if bad_rounds or a.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - started
    print(f"\ncluster soak: {rounds} rounds, {elapsed:.0f} s, 3 brokers + ZooKeeper in "
          f"namespaces, proxy delay {a.delay:.3f} s (+ up to {a.delay:.3f} s jitter) when on")
    print("faults:", " ".join(f"{k}={v}" for k, v in sorted(faults.items())),
          f"(injected {n_faults}; failovers are counted, not injected)")
    print("ops:", " ".join(f"{k}={v}" for k, v in sorted(ops.items())))
    print("violations:", " ".join(f"{k}={v}" for k, v in totals.items()),
          f"(total {sum(totals.values())})")
    print("C10 replicas:", " ".join(f"{k}={v}" for k, v in c10.items()),
          f"; faults after which the cluster was not whole within 60 s: {unsettled}")
    print("rounds with a violation or a failed run:", bad_rounds or "none")
    return 1 if bad_rounds else 0


if __name__ == "__main__":
    sys.exit(main())
