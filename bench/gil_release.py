"""Do appends and flushes of different logs overlap? N threads, each appending 4 KiB batches to
its own Log and flushing (fdatasync) after every append.

    PYTHONPATH=src python bench/gil_release.py [--threads 1 4] [--ops 200] [--dir DIR] [--file]

With the GIL held across pwrite/fdatasync the threads run one at a time: N threads take about N
times as long as one. Released, the waits on the disk overlap. Prints, per thread count, the
wall time of ``ops`` append+flush rounds in every thread (best of ``--repeat``) and the rate.
Run it once against a build from before the change (PYTHONPATH=<old tree>/src) to compare.
``--file`` measures the native calls alone (MappedFile.append + flush: pwrite + fdatasync), without
the log's checkpoint writes, whose Python-level fsyncs always released the GIL.
"""
import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

import klog

VALUE = os.urandom(4096)


class _File:
    """A bare segment file: what Log.append + flush come down to in native code."""

    def __init__(self, path):
        from klog._native.mmapfile import MappedFile
        self.path = path
        os.makedirs(path)
        self.f = MappedFile(os.path.join(path, "f"), True, 64 << 20)

    def append(self, values):
        self.f.append(values[0])

    def flush(self):
        self.f.flush()

    def close(self):
        self.f.close()


def one_round(root, threads, ops, bare):
    opener = _File if bare else klog.Log.open
    logs = [opener(os.path.join(root, f"t{threads}-{i}")) for i in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def work(log):
        barrier.wait()
        for _ in range(ops):
            log.append([VALUE])
            log.flush()

    workers = [threading.Thread(target=work, args=(log,)) for log in logs]
    for w in workers:
        w.start()
    barrier.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    for log in logs:
        log.close()
        shutil.rmtree(log.path)
    return elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--ops", type=int, default=200, help="append+flush rounds per thread")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where the logs go (default: a temp dir)")
    ap.add_argument("--file", action="store_true", help="bare MappedFile append + flush")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="klog-gil-", dir=args.dir)
    try:
        print(f"klog from {os.path.dirname(klog.__file__)}; {'bare files' if args.file else 'logs'}"
              f" in {root}; python {sys.version.split()[0]}")
        for n in args.threads:
            best = min(one_round(root, n, args.ops, args.file) for _ in range(args.repeat))
            total = n * args.ops
            print(f"{n} thread(s) x {args.ops} append+flush of 4 KiB: {best * 1000:8.1f} ms "
                  f"({total / best:8.0f} flushed appends/s, {best / args.ops * 1e6:7.0f} us per round)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
