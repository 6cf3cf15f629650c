"""Storage-core benchmarks: klog's Log against SQLite (WAL, executemany), measured in one run.

    python bench/storage_bench.py            # full run, rewrites the storage section of BENCHMARKS.md
    python bench/storage_bench.py --quick    # smaller sizes, prints only

Prints kafka-producer-perf-test-style lines; 100-byte values unless said otherwise.
"""
import argparse
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
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


def best_of(fn, repeat):
    best = None
    for _ in range(repeat):
        t = fn()
        best = t if best is None or t < best else best
    return best


def bench_append(tmp, total, batch):
    values = [os.urandom(VALUE_SIZE) for _ in range(batch)]
    path = os.path.join(tmp, f"append-{batch}")
    shutil.rmtree(path, ignore_errors=True)
    with klog.Log.open(path, {"segment.bytes": 1 << 30, "retention.ms": -1, "max.message.bytes": 8 << 20}) as log:
        n = max(1, total // batch)
        t0 = time.perf_counter()
        for _ in range(n):
            log.append(values)
        dt = time.perf_counter() - t0
    shutil.rmtree(path)
    return n * batch, dt


def bench_sqlite_append(tmp, total, batch):
    path = os.path.join(tmp, f"sqlite-{batch}.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE log (offset INTEGER PRIMARY KEY, ts INTEGER, key BLOB, value BLOB)")
    values = [os.urandom(VALUE_SIZE) for _ in range(batch)]
    n = max(1, total // batch)
    offset = 0
    t0 = time.perf_counter()
    for _ in range(n):
        ts = time.time_ns() // 1_000_000
        rows = [(offset + i, ts, None, v) for i, v in enumerate(values)]
        db.execute("BEGIN")
        db.executemany("INSERT INTO log VALUES (?, ?, ?, ?)", rows)
        db.execute("COMMIT")
        offset += batch
    dt = time.perf_counter() - t0
    db.close()
    return n * batch, dt, path


def build_log(tmp, name, total, batch=10000, compression=None, values=None):
    path = os.path.join(tmp, name)
    shutil.rmtree(path, ignore_errors=True)
    values = values or [os.urandom(VALUE_SIZE) for _ in range(batch)]
    log = klog.Log.open(path, {"segment.bytes": 1 << 30, "retention.ms": -1, "max.message.bytes": 8 << 20})
    for _ in range(total // len(values)):
        log.append(values, compression=compression)
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
            f"CRC-32C hardware path: {native_crc.HARDWARE}")


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
        print("\n## batch append, 100-byte values (klog vs SQLite WAL executemany, one transaction per batch)")
        curve = []
        for batch in (1, 10, 100, 1000, 10000):
            total = (200_000 if q else 2_000_000) if batch >= 100 else (20_000 if q else 200_000)
            n, dt = min((bench_append(tmp, total, batch) for _ in range(3)), key=lambda r: r[1] / r[0])
            k_rate, k_mb = line(f"klog   batch={batch:>5}", n, dt, n * VALUE_SIZE)
            sn, sdt, dbpath = bench_sqlite_append(tmp, total if batch > 1 else total // 4, batch)
            s_rate, s_mb = line(f"sqlite batch={batch:>5}", sn, sdt, sn * VALUE_SIZE)
            os.unlink(dbpath)
            curve.append((batch, k_rate, s_rate))
        rows.append(("batch append, 10 000 x 100 B per batch", f"{curve[-1][1] / 1e6:.2f} M records/s",
                     f"{curve[-1][2] / 1e6:.2f} M records/s", ">= 10 M records/s"))

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
        dt = best_of(read_all, 3)
        r_rate, _ = line("klog   records()", total, dt, total * VALUE_SIZE)

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
        rows.append(("read records as Python objects", f"{r_rate / 1e6:.2f} M records/s",
                     f"{s_rate / 1e6:.2f} M records/s", ">= 5 M records/s"))

        # 3. Raw reads: zero-copy views of whole batches, 1 MiB per call.
        print("\n## raw read(offset, 1 MiB): zero-copy views of whole batches")
        def raw_read():
            t0 = time.perf_counter()
            off, nbytes, end = 0, 0, log.log_end_offset
            while off < end:
                view = log.read(off, 1 << 20)
                nbytes += view.nbytes
                last = klog.read_header(view, view.nbytes - _last_batch_size(view))
                off = last.last_offset + 1
                view.release()
            return time.perf_counter() - t0, nbytes
        best = min((raw_read() for _ in range(5)), key=lambda r: r[0])
        gbs = best[1] / best[0] / 1e9
        print(f"klog   read(): {best[1]} bytes in {best[0]:.4f} s, {gbs:,.2f} GB/sec")
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
        best2 = min((raw_read_crc() for _ in range(3)), key=lambda r: r[0])
        gbs2 = best2[1] / best2[0] / 1e9
        print(f"klog   read() + CRC-32C over every byte: {gbs2:,.2f} GB/sec")
        rows.append(("raw read(offset, 1 MiB), zero-copy", f"{gbs:.1f} GB/s", "n/a", ">= 5 GB/s"))
        rows.append(("raw read + CRC-32C of every byte", f"{gbs2:.1f} GB/s", "n/a", ""))
        log.close()

        # 4. lz4 append of JSON-like events.
        print("\n## lz4-compressed append, JSON-like events, 1000 per batch")
        events = json_events(1000)
        in_bytes = sum(map(len, events))
        n_batches = 200 if q else 2000
        path = os.path.join(tmp, "lz4")
        def lz4_append():
            shutil.rmtree(path, ignore_errors=True)
            with klog.Log.open(path, {"segment.bytes": 1 << 30, "retention.ms": -1, "max.message.bytes": 8 << 20}) as lg:
                t0 = time.perf_counter()
                for _ in range(n_batches):
                    lg.append(events, compression="lz4")
                dt = time.perf_counter() - t0
                ratio = lg.size / (in_bytes * n_batches)
            return dt, ratio
        dt, ratio = min((lz4_append() for _ in range(3)), key=lambda r: r[0])
        lz_rate, lz_mb = line(f"klog   lz4 append (avg event {in_bytes // 1000} B, ratio {ratio:.2f})",
                              n_batches * 1000, dt, n_batches * in_bytes)
        db = sqlite3.connect(os.path.join(tmp, "json.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE log (offset INTEGER PRIMARY KEY, value BLOB)")
        t0 = time.perf_counter()
        for b in range(n_batches // 4):
            db.execute("BEGIN")
            db.executemany("INSERT INTO log VALUES (?, ?)", [(b * 1000 + i, e) for i, e in enumerate(events)])
            db.execute("COMMIT")
        sdt = time.perf_counter() - t0
        s_rate, s_mb = line("sqlite JSON events (uncompressed)", n_batches // 4 * 1000, sdt, n_batches // 4 * in_bytes)
        db.close()
        rows.append(("lz4 append of JSON-like events", f"{lz_mb:.0f} MB/s of input", f"{s_mb:.0f} MB/s (uncompressed)",
                     ">= 300 MB/s"))

        # 5. CRC-32C.
        print("\n## CRC-32C")
        import crc32c as crc_pkg
        buf = os.urandom(1 << 20)
        for name, fn in (("klog", native_crc.crc32c), ("crc32c package", crc_pkg.crc32c)):
            reps = 2000
            def run():
                t0 = time.perf_counter()
                for _ in range(reps):
                    fn(buf)
                return time.perf_counter() - t0
            dt = best_of(run, 3)
            g = reps * len(buf) / dt / 1e9
            print(f"{name:>15}: {g:,.2f} GB/sec over 1 MiB buffers")
            if name == "klog":
                klog_crc = g
            else:
                pkg_crc = g
        rows.append(("CRC-32C, 1 MiB buffers", f"{klog_crc:.1f} GB/s", f"{pkg_crc:.1f} GB/s (crc32c package)",
                     ">= 10 GB/s"))

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
    out += ["", "Append curve (100-byte values, records/s):", "",
            "| records per batch | klog | SQLite (WAL, executemany, 1 transaction per batch) |",
            "|---|---|---|"]
    out += [f"| {b} | {k:,.0f} | {s:,.0f} |" for b, k, s in curve]
    replace_section("storage", out)
    replace_section("storage-figures", [
        "Storage core, `python bench/storage_bench.py`:", "",
        "| benchmark | klog | SQLite / peer | target |", "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]], "README.md")


if __name__ == "__main__":
    main()
