"""Why klog appends with pwrite: three ways to put 110 KB batches into a segment file, measured.

    python bench/append_path.py [--mib 1024] [--dir DIR] [--write]

1. memcpy into a shared writable mapping of space reserved with posix_fallocate (the textbook
   mmap design; the whole file is reserved before the clock starts);
2. posix_fallocate reservations, then pwrite;
3. plain pwrite (what klog's MappedFile does; reads still go through a read-only mapping).
Each case writes a fresh file; three interleaved runs of each are printed.
"""
import argparse
import mmap
import os
import sys
import tempfile
import time

BATCH = os.urandom(110_000)
STEP = 8 << 20


def run(path, total, mode):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        m = None
        if mode == "mmap":  # Python's mmap cannot map past EOF: reserve it all first
            os.posix_fallocate(fd, 0, total)
            m = mmap.mmap(fd, total, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        pos = reserved = 0
        n = len(BATCH)
        t0 = time.perf_counter()
        while pos + n <= total:
            if mode == "fallocate+pwrite" and pos + n > reserved:
                os.posix_fallocate(fd, reserved, STEP)
                reserved += STEP
            if mode == "mmap":
                m[pos:pos + n] = BATCH
            else:
                os.pwrite(fd, BATCH, pos)
            pos += n
        dt = time.perf_counter() - t0
        if m is not None:
            m.close()
        return pos / dt / 1e9
    finally:
        os.close(fd)
        os.unlink(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=1024, help="bytes per run, MiB")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--write", action="store_true", help="record the runs in BENCHMARKS.md")
    args = ap.parse_args()
    d = args.dir or tempfile.gettempdir()
    path = os.path.join(d, "klog-append-path.bin")
    runs = {mode: [] for mode in ("mmap", "fallocate+pwrite", "pwrite")}
    for _ in range(3):  # interleaved, so drift on the machine hits every mode alike
        for mode in runs:
            runs[mode].append(run(path, args.mib << 20, mode))
    rows = []
    for mode, gbs in runs.items():
        text = ", ".join(f"{g:.2f}" for g in gbs)
        print(f"{mode:>17}: {text} GB/s ({args.mib} MiB of 110 KB appends, 3 runs)", flush=True)
        rows.append(f"| {mode} | {text} |")
    if args.write:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from storage_bench import machine, replace_section

        replace_section("append-path", [
            f"## Append path (`python bench/append_path.py --write`, {args.mib} MiB per run)", "",
            f"Machine: {machine()}.", f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
            "| way of appending | GB/s, three runs |", "|---|---|", *rows])


if __name__ == "__main__":
    main()
