"""Storage-core benchmarks: klog's Log against SQLite (WAL, executemany), measured in one run.

    python bench/storage_bench.py            # full run, rewrites the storage section of BENCHMARKS.md
    python bench/storage_bench.py --quick    # smaller sizes, prints only

Prints kafka-producer-perf-test-style lines; 100-byte values unless said otherwise.

Honesty rules: every appended batch is a new list of distinct values built before its append (a
producer never re-sends one hot list), and only the appends are timed; each figure is min /
median / max over several runs, and CRC-32C implementations are measured interleaved, round by
round. Appends land in the page cache: nothing is fsynced unless a row says so, and the volumes
here stay below the kernel's dirty-page limits (printed), so the disk is not what is measured
(the "+ fsync" row is). The kernel's copy into the page cache is most of an append's time; see
bench/append_path.py for the ways of writing it.
"""
import argparse
import functools
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import klog
from klog._native import crc32c as native_crc

VALUE_SIZE = 100
RESULTS = []


def line(what, records, seconds, nbytes, peer=None):
    rate = records / seconds
    mb = nbytes / seconds / 1e6
    print(f"{what}: {records} records, {rate:,.1f} records/sec ({mb:,.2f} MB/sec)"
          + (f"  [{peer}]" if peer else ""), flush=True)
    return rate, mb


def spread(samples):
    """(min, median, max)."""
    return min(samples), statistics.median(samples), max(samples)


def fmt_spread(samples, scale=1e6, unit="M records/s", digits=2):
    lo, med, hi = spread(samples)
    return f"{lo / scale:.{digits}f} / {med / scale:.{digits}f} / {hi / scale:.{digits}f} {unit}".rstrip()


def page_cache_note():
    """What the page cache does to an append benchmark here: the kernel's dirty limits."""
    def read(name):
        try:
            with open(f"/proc/sys/vm/{name}") as f:
                return f.read().strip()
        except OSError:
            return "?"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return (f"{mem / 2**30:.0f} GiB RAM, vm.dirty_background_ratio {read('dirty_background_ratio')}%, "
            f"vm.dirty_ratio {read('dirty_ratio')}%: appends below those limits are memory copies "
            "into the page cache; writeback to the disk happens later, on other cores")


class DistinctValues:
    """Lists of distinct ``VALUE_SIZE``-byte values, each list built fresh (new bytes objects
    sliced from a random pool big enough that no value repeats in a run)."""

    def __init__(self, total):
        self.pool = os.urandom(total * VALUE_SIZE)
        self.pos = 0

    def batch(self, n):
        p, pool = self.pos, self.pool
        if p + n * VALUE_SIZE > len(pool):
            p = 0
        self.pos = p + n * VALUE_SIZE
        return [pool[i:i + VALUE_SIZE] for i in range(p, p + n * VALUE_SIZE, VALUE_SIZE)]


def best_of(fn, repeat):
    best = None
    for _ in range(repeat):
        t = fn()
        best = t if best is None or t < best else best
    return best


def bench_append(tmp, total, batch, source, fsync=False):
    """Append ``total`` records in batches of ``batch`` distinct values; only appends (and the
    final fsync when asked) are timed. Returns (records, seconds)."""
    path = os.path.join(tmp, f"append-{batch}")
    shutil.rmtree(path, ignore_errors=True)
    with klog.Log.open(path, {"segment.bytes": 1 << 30, "retention.ms": -1, "max.message.bytes": 8 << 20}) as log:
        n = max(1, total // batch)
        dt = 0.0
        for _ in range(n):
            values = source.batch(batch)
            t0 = time.perf_counter()
            log.append(values)
            dt += time.perf_counter() - t0
        if fsync:
            t0 = time.perf_counter()
            log.flush()
            dt += time.perf_counter() - t0
    shutil.rmtree(path)
    return n * batch, dt


def bench_sqlite_append(tmp, total, batch, source=None):
    """The peer, with the same distinct values per batch; only the inserts are timed."""
    path = os.path.join(tmp, f"sqlite-{batch}.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE log (offset INTEGER PRIMARY KEY, ts INTEGER, key BLOB, value BLOB)")
    source = source or DistinctValues(total)
    n = max(1, total // batch)
    offset = 0
    dt = 0.0
    for _ in range(n):
        values = source.batch(batch)
        t0 = time.perf_counter()
        ts = time.time_ns() // 1_000_000
        rows = [(offset + i, ts, None, v) for i, v in enumerate(values)]
        db.execute("BEGIN")
        db.executemany("INSERT INTO log VALUES (?, ?, ?, ?)", rows)
        db.execute("COMMIT")
        dt += time.perf_counter() - t0
        offset += batch
    db.close()
    return n * batch, dt, path


def build_log(tmp, name, total, batch=10000, compression=None):
    path = os.path.join(tmp, name)
    shutil.rmtree(path, ignore_errors=True)
    source = DistinctValues(total)
    log = klog.Log.open(path, {"segment.bytes": 1 << 30, "retention.ms": -1, "max.message.bytes": 8 << 20})
    for _ in range(total // batch):
        log.append(source.batch(batch), compression=compression)
    return log


def json_events(n, seed=7):
    rnd = random.Random(seed)
    kinds = ["account-created", "email-sent", "sms-sent", "login", "purchase"]
    out = []
    for i in range(n):
        out.append(json.dumps({
            "id": i, "type": rnd.choice(kinds), "account": f"acct-{rnd.randrange(100000):06d}",
            "email": f"user{rnd.randrange(100000)}@example.com", "amount": round(rnd.random() * 500, 2),
            "ts": 1700000000000 + i, "tags": rnd.sample(["new", "vip", "eu", "us", "mobile", "web"], 2),
        }).encode())
    return out


@functools.lru_cache(maxsize=None)   # one description per run: the load when it started
def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    cpu = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
            f"CRC-32C hardware path: {native_crc.HARDWARE}, "
            f"load average {os.getloadavg()[0]:.1f} when the run started")


WRITER = r"""
import os, sys, klog
path, total = sys.argv[1], int(sys.argv[2])
values = [os.urandom(100) for _ in range(10000)]
log = klog.Log.open(path, {"segment.bytes": 1 << 30, "retention.ms": -1, "max.message.bytes": 8 << 20})
written = 0
while written < total:
    log.append(values)
    written += 10000 * 100
print(log.log_end_offset, flush=True)
sys.stdin.read()
"""


def bench_reopen_after_kill(tmp, nbytes):
    path = os.path.join(tmp, "kill9")
    shutil.rmtree(path, ignore_errors=True)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, path, str(nbytes)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    end = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path) if f.endswith(".log"))
    t0 = time.perf_counter()
    log = klog.Log.open(path)
    dt = time.perf_counter() - t0
    ok = log.log_end_offset == end
    log.close()
    shutil.rmtree(path)
    return dt, size, end, ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes; do not write BENCHMARKS.md")
    ap.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    args = ap.parse_args()
    q = args.quick
    tmp = tempfile.mkdtemp(prefix="klog-bench-", dir=args.dir)
    rows = []
    print(f"# machine: {machine()}")
    try:
        # 1. Append curve.
        print("\n## batch append, distinct 100-byte values built per batch "
              "(klog vs SQLite WAL executemany, one transaction per batch)")
        print(f"# page cache: {page_cache_note()}")
        curve = []
        runs = 3 if q else 5
        big = 200_000 if q else 2_000_000
        source = DistinctValues(big)
        for batch in (1, 10, 100, 1000, 5000, 10000):
            total = big if batch >= 100 else big // 10
            rates = []
            for _ in range(runs):
                n, dt = bench_append(tmp, total, batch, source)
                rates.append(n / dt)
            print(f"klog   batch={batch:>5}: {n} records x {runs} runs, min / median / max "
                  f"{fmt_spread(rates)}", flush=True)
            sn, sdt, dbpath = bench_sqlite_append(tmp, total if batch > 1 else total // 4, batch, source)
            s_rate, s_mb = line(f"sqlite batch={batch:>5}", sn, sdt, sn * VALUE_SIZE)
            os.unlink(dbpath)
            curve.append((batch, rates, s_rate))
        for batch, rates, s_rate in curve[-2:]:
            rows.append((f"batch append, {batch:,} distinct x 100 B per batch (min / median / max)".replace(
                         f"{batch:,}", f"{batch:,}".replace(",", " ")),
                         fmt_spread(rates), f"{s_rate / 1e6:.2f} M records/s", ">= 10 M records/s"))
        synced = []
        for _ in range(runs):
            n, dt = bench_append(tmp, big, 10000, source, fsync=True)
            synced.append(n / dt)
        print(f"klog   batch=10000 + fsync at the end: min / median / max {fmt_spread(synced)}")
        rows.append((f"same, 10 000 a batch, + one fsync of the {big * VALUE_SIZE >> 20} MiB at the end",
                     fmt_spread(synced), "", ""))

        # 2. Reading records as Python objects.
        print("\n## reading records as Python objects")
        total = 500_000 if q else 5_000_000
        log = build_log(tmp, "read", total)
        def read_all():
            t0 = time.perf_counter()
            n = 0
            for _ in log.records(0):
                n += 1
            assert n == total
            return time.perf_counter() - t0
        read_rates = [total / read_all() for _ in range(runs)]
        print(f"klog   records(): {total} records x {runs} runs, min / median / max "
              f"{fmt_spread(read_rates)}", flush=True)

        sn, _, dbpath = bench_sqlite_append(tmp, total, 10000)
        db = sqlite3.connect(dbpath)
        def sqlite_read():
            t0 = time.perf_counter()
            n = 0
            for _ in db.execute("SELECT offset, ts, key, value FROM log ORDER BY offset"):
                n += 1
            assert n == sn
            return time.perf_counter() - t0
        sdt = best_of(sqlite_read, 3)
        s_rate, _ = line("sqlite SELECT", sn, sdt, sn * VALUE_SIZE)
        db.close()
        rows.append(("read records as Python objects", fmt_spread(read_rates),
                     f"{s_rate / 1e6:.2f} M records/s", ">= 5 M records/s"))

        # 3. Raw reads: zero-copy views of whole batches, 1 MiB per call, and a CRC-32C over every
        # byte so each byte is really read (timing read() alone times making views, not reading).
        print("\n## raw read(offset, 1 MiB) + CRC-32C of every byte")
        def raw_read_crc():
            t0 = time.perf_counter()
            off, nbytes, end = 0, 0, log.log_end_offset
            while off < end:
                view = log.read(off, 1 << 20)
                native_crc.crc32c(view)
                nbytes += view.nbytes
                off = klog.read_header(view, view.nbytes - _last_batch_size(view)).last_offset + 1
                view.release()
            return time.perf_counter() - t0, nbytes
        reads = [nb / t / 1e9 for t, nb in (raw_read_crc() for _ in range(runs))]
        print(f"klog   read() + CRC-32C over every byte: min / median / max "
              f"{fmt_spread(reads, 1, 'GB/s')}")
        rows.append(("raw read(offset, 1 MiB) + CRC-32C of every byte", fmt_spread(reads, 1, "GB/s", 1),
                     "n/a", ">= 5 GB/s"))
        log.close()

        # 4. lz4 append of JSON-like events.
        print("\n## lz4-compressed append, distinct JSON-like events, 1000 per batch")
        n_batches = 200 if q else 2000
        all_events = json_events(n_batches * 1000)
        batches = [all_events[i:i + 1000] for i in range(0, len(all_events), 1000)]
        events = batches[0]   # for the SQLite peer
        in_bytes = sum(map(len, events))
        total_in = sum(map(len, all_events))
        path = os.path.join(tmp, "lz4")
        def lz4_append():
            shutil.rmtree(path, ignore_errors=True)
            with klog.Log.open(path, {"segment.bytes": 1 << 30, "retention.ms": -1, "max.message.bytes": 8 << 20}) as lg:
                t0 = time.perf_counter()
                for batch in batches:
                    lg.append(batch, compression="lz4")
                dt = time.perf_counter() - t0
                ratio = lg.size / total_in
            return dt, ratio
        lz = [lz4_append() for _ in range(runs)]
        ratio = lz[0][1]
        lz_mbs = [total_in / dt for dt, _ in lz]
        print(f"klog   lz4 append (avg event {total_in // len(all_events)} B, ratio {ratio:.2f}): "
              f"min / median / max {fmt_spread(lz_mbs, 1e6, 'MB/s of input', 0)}", flush=True)
        del all_events
        db = sqlite3.connect(os.path.join(tmp, "json.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE log (offset INTEGER PRIMARY KEY, value BLOB)")
        t0 = time.perf_counter()
        for b in range(n_batches // 4):
            db.execute("BEGIN")
            db.executemany("INSERT INTO log VALUES (?, ?)", [(b * 1000 + i, e) for i, e in enumerate(batches[b])])
            db.execute("COMMIT")
        sdt = time.perf_counter() - t0
        s_rate, s_mb = line("sqlite JSON events (uncompressed)", n_batches // 4 * 1000, sdt, n_batches // 4 * in_bytes)
        db.close()
        del batches
        rows.append(("lz4 append of distinct JSON-like events", fmt_spread(lz_mbs, 1e6, "MB/s of input", 0),
                     f"{s_mb:.0f} MB/s (uncompressed)",
                     ">= 300 MB/s"))

        # 5. CRC-32C.
        print("\n## CRC-32C, 1 MiB buffers, klog and the crc32c package interleaved round by round")
        klog_crc, pkg_crc = crc_rounds(rounds=5 if q else 11)
        print(f"{'klog':>15}: min / median / max {fmt_spread(klog_crc, 1, 'GB/s')}")
        print(f"{'crc32c package':>15}: min / median / max {fmt_spread(pkg_crc, 1, 'GB/s')}")
        rows.append(("CRC-32C, 1 MiB buffers (min / median / max, interleaved)",
                     fmt_spread(klog_crc, 1, "GB/s", 1),
                     fmt_spread(pkg_crc, 1, "GB/s", 1) + " (crc32c package)", ">= 10 GB/s"))

        # 6. Reopen after kill -9.
        nbytes = (64 << 20) if q else (1 << 30)
        print(f"\n## reopen after kill -9 of a writer ({nbytes >> 20} MiB in one never-flushed segment: all revalidated)")
        dt, size, end, ok = bench_reopen_after_kill(tmp, nbytes)
        print(f"klog   reopen: {dt * 1000:.0f} ms for {size / 2**20:.0f} MiB, {end} records, end offset intact: {ok}")
        rows.append((f"reopen {size / 2**30:.2f} GiB log after kill -9 (recovery point 0)", f"{dt * 1000:.0f} ms",
                     "n/a", "< 1 s"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if not q:
        write_markdown(rows, curve)


def crc_rounds(rounds, reps=500, size=1 << 20):
    """GB/s of klog's CRC-32C and the crc32c package's, one measurement of each per round, the
    order alternating, so drift on a shared machine hits both alike."""
    import crc32c as crc_pkg
    bufs = [os.urandom(size) for _ in range(4)]
    fns = {"klog": native_crc.crc32c, "pkg": crc_pkg.crc32c}
    assert fns["klog"](bufs[0]) == fns["pkg"](bufs[0])
    out = {"klog": [], "pkg": []}

    def run(fn):
        t0 = time.perf_counter()
        for i in range(reps):
            fn(bufs[i & 3])
        return reps * size / (time.perf_counter() - t0) / 1e9

    for r in range(rounds):
        for name in (("klog", "pkg") if r % 2 == 0 else ("pkg", "klog")):
            out[name].append(run(fns[name]))
    return out["klog"], out["pkg"]


def _last_batch_size(view):
    # Whole batches back to back: walk headers to the last one.
    pos, n = 0, view.nbytes
    while True:
        size = int.from_bytes(view[pos + 8:pos + 12], "big") + 12
        if pos + size >= n:
            return size
        pos += size


def replace_section(name, lines, filename="BENCHMARKS.md"):
    """Rewrite the ``<!-- name:begin -->`` .. ``<!-- name:end -->`` block of a project file."""
    path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                         filename))
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    block = "\n".join([begin, *lines, end])
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)
    print(f"\nwrote {path}")


def write_markdown(rows, curve):
    out = ["## Storage core (`python bench/storage_bench.py`)", "",
           f"Machine: {machine()}.", f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
           "| benchmark | klog | SQLite / peer | target |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    out += ["", f"Page cache: {page_cache_note()}.", "",
            "Append curve (distinct 100-byte values built per batch; klog min / median / max "
            "over runs, M records/s):", "",
            "| records per batch | klog | SQLite (WAL, executemany, 1 transaction per batch) |",
            "|---|---|---|"]
    out += [f"| {b} | {fmt_spread(k, 1e6, '')} | {s / 1e6:.3f} |" for b, k, s in curve]
    replace_section("storage", out)
    replace_section("storage-figures", [
        "Storage core, `python bench/storage_bench.py` (min / median / max over runs; "
        f"{machine()}; {time.strftime('%Y-%m-%d', time.gmtime())}):", "",
        "| benchmark | klog | SQLite / peer | target |", "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]], "README.md")


if __name__ == "__main__":
    main()
