"""Why klog appends with pwrite: ways to put 110 KB batches into a segment file, measured.

    python bench/append_path.py [--mib 1024] [--runs 5] [--batch-kb 110] [--dir DIR] [--write]

1. memcpy into a shared writable mapping of space reserved with posix_fallocate (the textbook
   mmap design; the whole file is reserved before the clock starts);
2. posix_fallocate reservations (8 MiB at a time), then pwrite per batch: klog's real path
   (a pwritev of the batch's rewritten 8-byte base offset and the rest);
3. plain pwrite, one call per batch, every call extending the file (reads in klog go through a
   read-only mapping either way);
4. as 2., with 8 batches per pwritev call (coalesced appends: 8x fewer calls, same bytes);
5. pwrite of 1 MiB per call from one buffer (the ceiling of fewer, larger writes).
Batches are 16 distinct buffers in turn, not one hot buffer. Each case writes a fresh file; the
runs are interleaved so drift on the machine hits every mode alike; min / median / max printed.
The copy into the page cache (and the page allocation behind it) is the same work in every
mode: what changes is only the number of system calls and where the page faults happen.
"""
import argparse
import mmap
import os
import statistics
import sys
import tempfile
import time

BATCHES = []   # 16 distinct batches of --batch-kb KB
BIG = os.urandom(1 << 20)
STEP = 8 << 20
MODES = ("mmap", "fallocate+pwrite", "pwrite", "fallocate+pwritev x8", "pwrite 1 MiB")


def run(path, total, mode):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        m = None
        if mode == "mmap":  # Python's mmap cannot map past EOF: reserve it all first
            os.posix_fallocate(fd, 0, total)
            m = mmap.mmap(fd, total, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        pos = reserved = i = 0
        n = len(BATCHES[0])
        t0 = time.perf_counter()
        if mode == "fallocate+pwritev x8":
            while pos + 8 * n <= total:
                if pos + 8 * n > reserved:
                    os.posix_fallocate(fd, reserved, STEP)
                    reserved += STEP
                os.pwritev(fd, [BATCHES[(i + j) & 15] for j in range(8)], pos)
                pos += 8 * n
                i += 8
        elif mode == "pwrite 1 MiB":
            while pos + len(BIG) <= total:
                os.pwrite(fd, BIG, pos)
                pos += len(BIG)
        while pos + n <= total:
            batch = BATCHES[i & 15]
            i += 1
            if mode == "fallocate+pwrite" and pos + n > reserved:
                os.posix_fallocate(fd, reserved, STEP)
                reserved += STEP
            if mode == "mmap":
                m[pos:pos + n] = batch
            else:
                os.pwrite(fd, batch, pos)
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
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batch-kb", type=int, default=110,
                    help="bytes per batch, KB (110: 1 000 records of 100 B; 600: 5 000)")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--write", action="store_true", help="record the runs in BENCHMARKS.md")
    args = ap.parse_args()
    BATCHES[:] = [os.urandom(args.batch_kb * 1000) for _ in range(16)]
    d = args.dir or tempfile.gettempdir()
    path = os.path.join(d, "klog-append-path.bin")
    runs = {mode: [] for mode in MODES}
    for r in range(args.runs):  # interleaved, the order rotating, so drift hits every mode alike
        for mode in MODES[r % len(MODES):] + MODES[:r % len(MODES)]:
            runs[mode].append(run(path, args.mib << 20, mode))
    rows = []
    for mode, gbs in runs.items():
        text = f"{min(gbs):.2f} / {statistics.median(gbs):.2f} / {max(gbs):.2f}"
        print(f"{mode:>20}: min / median / max {text} GB/s ({args.mib} MiB per run of "
              f"{args.batch_kb} KB batches, {args.runs} runs)", flush=True)
        rows.append(f"| {mode} | {text} |")
    if args.write:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from storage_bench import machine, replace_section

        replace_section("append-path", [
            f"## Append path (`python bench/append_path.py --write --batch-kb {args.batch_kb}`, "
            f"{args.mib} MiB per run)", "",
            f"Machine: {machine()}.", f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
            f"| way of appending | GB/s, min / median / max of {args.runs} runs |", "|---|---|", *rows])


if __name__ == "__main__":
    main()
