"""Fault soak: the Jepsen-style workload against klog under at least --faults injected faults,
checked after each round; prints counts (operations, faults by kind, violations by check).

    sudo PYTHONPATH=src python bench/fault_soak.py --faults 100            # namespaces (root)
    PYTHONPATH=src python bench/fault_soak.py --faults 100 --no-netns      # loopback: process faults only

Each round is one workload run (a fresh topic) of --round seconds on the same server(s) while
the nemesis cycles through --kinds, then heal, a final read and the checker (tests/jepsen). Rounds
repeat until --faults faults were injected. Exit status 1 if any violation was found.
The target is a single ``klog serve``; the three-broker cluster's soak is bench/cluster_soak.py.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "src"), os.path.join(ROOT, "tests")]

from jepsen import runner  # noqa: E402
from jepsen.checker import CHECKS  # noqa: E402
from jepsen.target import Target  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faults", type=int, default=100, help="at least this many faults")
    ap.add_argument("--round", type=float, default=60.0, help="seconds of workload per round")
    ap.add_argument("--kinds", default=None,
                    help="comma-separated fault kinds (default: all that the mode allows)")
    ap.add_argument("--no-netns", dest="netns", action="store_false")
    ap.add_argument("--proxy-delay", type=float, default=None,
                    help="put a delaying proxy (seconds each way) in front of each node")
    ap.add_argument("--rate", type=float, default=100.0, help="sends/s per producer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    kinds = a.kinds.split(",") if a.kinds else (
        ["kill9", "pause", "isolate", "loss", "partition"] if a.netns else ["kill9", "pause"])
    proxy = {"delay": a.proxy_delay, "jitter": a.proxy_delay / 2} if a.proxy_delay else None
    work = tempfile.mkdtemp(prefix="klog-soak-")
    totals = dict.fromkeys(CHECKS, 0)
    ops, faults = {}, {}
    started = time.monotonic()
    n_faults = rounds = 0
    try:
        with Target(work, netns=a.netns, proxy=proxy) as t:
            while n_faults < a.faults:
                out = runner.run(t, kinds, duration=a.round, seed=a.seed + rounds,
                                 topic=f"soak{rounds}",
                                 workload_args=["--max-sends", "10000000", "--rate", str(a.rate)],
                                 nemesis_args={"interval": 0.5, "pause": 3.5, "hold": 2.0,
                                               "down": 0.5})
                rounds += 1
                n_faults += out.faults
                r = out.report
                for k, v in r.violations.items():
                    totals[k] += v
                for k, v in r.ops.items():
                    ops[k] = ops.get(k, 0) + v
                for k, v in r.faults.items():
                    faults[k] = faults.get(k, 0) + v
                print(f"round {rounds}: faults {out.faults} (total {n_faults}), sends ok "
                      f"{r.ops['send_ok']}/{r.ops['send']}, violations {r.total}, "
                      f"workload rc {out.workload_rc}, final rc {out.final_rc}", flush=True)
                if r.total:
                    print(r.format(), flush=True)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - started
    print(f"\nsoak: {rounds} rounds, {elapsed:.0f} s, target: 1 node, "
          f"{'namespaces' if a.netns else 'loopback'}"
          f"{', delay proxy %.3f s' % a.proxy_delay if a.proxy_delay else ''}")
    print("faults:", " ".join(f"{k}={v}" for k, v in sorted(faults.items())),
          f"(total {sum(faults.values())})")
    print("ops:", " ".join(f"{k}={v}" for k, v in sorted(ops.items())))
    print("violations:", " ".join(f"{k}={v}" for k, v in totals.items()),
          f"(total {sum(totals.values())})")
    return 1 if sum(totals.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
