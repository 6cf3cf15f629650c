"""Embedded-broker benchmarks: producer and consumer against SQLite and Redis Streams, one run.

    python bench/broker_bench.py            # full run, rewrites the broker section of BENCHMARKS.md
    python bench/broker_bench.py --quick    # smaller sizes, prints only

Redis is Debian's redis-server started by this script on a Unix socket (no persistence, as a
page-cache log): XADD driven by redis-benchmark (pipelined, 1000 per round trip), XREAD COUNT
10000 through redis-py (with hiredis). 100-byte values.

Honesty rules (as in storage_bench): klog and SQLite get distinct values, built in chunks of
10 000 before they are sent, and only the sending is timed (the producer's linger.ms is long, so
every append happens inside a timed send, send_batch or flush); figures are min / median / max
over runs. redis-benchmark sends one value (it cannot do otherwise).
"""
import argparse
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import klog

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from storage_bench import DistinctValues, fmt_spread, line, machine, replace_section  # noqa: E402

VALUE = 100


def fresh_broker(tmp, name, partitions=1):
    path = os.path.join(tmp, name)
    shutil.rmtree(path, ignore_errors=True)
    b = klog.open(path, {"log.segment.bytes": 1 << 30, "log.retention.ms": -1,
                         "message.max.bytes": 8 << 20})
    b.create_topic("bench", partitions)
    return b


CHUNK = 10_000


def bench_send(tmp, n, source):
    b = fresh_broker(tmp, "send")
    # linger.ms long: batches are appended when full (inside send) or by the timed flush, never
    # by the sender thread while the next chunk of values is being built off the clock
    p = b.producer({"linger.ms": 600_000, "batch.size": 1 << 20})
    send = p.send
    dt = 0.0
    for _ in range(n // CHUNK):
        values = source.batch(CHUNK)
        t0 = time.perf_counter()
        for v in values:
            send("bench", v)
        dt += time.perf_counter() - t0
    t0 = time.perf_counter()
    p.flush()
    dt += time.perf_counter() - t0
    b.close()
    return n // CHUNK * CHUNK, dt


def bench_send_batch(tmp, n, source, batch=CHUNK):
    b = fresh_broker(tmp, "send_batch")
    p = b.producer()
    dt = 0.0
    for _ in range(n // batch):
        values = source.batch(batch)
        t0 = time.perf_counter()
        p.send_batch("bench", values)
        dt += time.perf_counter() - t0
    b.close()
    return n // batch * batch, dt


def bench_poll(tmp, n, source):
    b = fresh_broker(tmp, "poll")
    p = b.producer()
    for _ in range(n // CHUNK):
        p.send_batch("bench", source.batch(CHUNK))
    rates = []
    for _ in range(3):
        # Kafka's default max.poll.records (500): polls of 10 000 measured 2x slower here, as
        # each poll's 2 MB of fresh objects comes from new (slow, on this VM) pages.
        c = b.consumer(None, {"auto.offset.reset": "earliest"})
        c.assign([klog.TopicPartition("bench", 0)])
        got = 0
        t0 = time.perf_counter()
        while got < n:
            got += len(c.poll(0))
        dt = time.perf_counter() - t0
        c.close()
        rates.append(n / dt)
    b.close()
    return rates


def bench_latency(tmp, rate, seconds):
    """Producer thread at a fixed rate → consumer thread; latency from send() to poll()."""
    b = fresh_broker(tmp, "latency")
    p = b.producer({"linger.ms": 0})
    c = b.consumer(None, {"auto.offset.reset": "earliest", "max.poll.records": 10_000})
    c.assign([klog.TopicPartition("bench", 0)])
    total = int(rate * seconds)
    lat = []
    done = threading.Event()

    def consume():
        got = 0
        while got < total:
            for r in c.poll(100, 10_000):
                lat.append(time.perf_counter_ns() - int.from_bytes(r.value[:8], "big"))
                got += 1
        done.set()

    t = threading.Thread(target=consume)
    t.start()
    pad = b"x" * (VALUE - 8)
    # Paced in 1 ms ticks (rate/1000 records, then sleep to the next tick): a busy-wait would
    # hold the GIL and measure Python's 5 ms thread switch interval instead of klog.
    per_tick = max(1, rate // 1000)
    start = time.perf_counter()
    sent = 0
    while sent < total:
        for _ in range(min(per_tick, total - sent)):
            p.send("bench", time.perf_counter_ns().to_bytes(8, "big") + pad)
        sent += per_tick
        # Sleep even when behind (sleep(0)): a thread that never yields keeps the GIL from the
        # producer's sender thread for up to Python's 5 ms switch interval.
        time.sleep(max(0.0, start + sent / rate - time.perf_counter()))
    done.wait(30)
    t.join(5)
    c.close()
    p.close()
    b.close()
    lat.sort()
    return (lat[len(lat) // 2] / 1000, lat[int(len(lat) * 0.99)] / 1000, lat[-1] / 1000, len(lat),
            total / (time.perf_counter() - start))


def bench_sqlite(tmp, n, source, batch=10_000):
    path = os.path.join(tmp, "peer.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE log (offset INTEGER PRIMARY KEY, ts INTEGER, key BLOB, value BLOB)")
    w = 0.0
    for j in range(n // batch):
        values = source.batch(batch)
        t0 = time.perf_counter()
        ts = time.time_ns() // 1_000_000
        db.execute("BEGIN")
        db.executemany("INSERT INTO log VALUES (?, ?, NULL, ?)", [(j * batch + i, ts, v) for i, v in enumerate(values)])
        db.execute("COMMIT")
        w += time.perf_counter() - t0
    t0 = time.perf_counter()
    got = sum(1 for _ in db.execute("SELECT offset, ts, key, value FROM log ORDER BY offset"))
    r = time.perf_counter() - t0
    db.close()
    os.unlink(path)
    return n // batch * batch, w, got, r


def start_redis(tmp):
    exe = shutil.which("redis-server")
    if exe is None:
        return None, None
    sock = os.path.join(tmp, "redis.sock")
    proc = subprocess.Popen([exe, "--port", "0", "--unixsocket", sock, "--save", "",
                             "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
    for _ in range(100):
        if os.path.exists(sock):
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(sock)
                s.close()
                return proc, sock
            except OSError:
                pass
        time.sleep(0.05)
    proc.kill()
    return None, None


def bench_redis(sock, n, pipeline=1000):
    """XADD with redis-benchmark (C client, pipelined: Redis at its best); XREAD with redis-py."""
    import redis

    r = redis.Redis(unix_socket_path=sock)
    r.delete("bench")
    value = "v" * VALUE
    t0 = time.perf_counter()
    subprocess.run(["redis-benchmark", "-s", sock, "-n", str(n), "-P", str(pipeline), "-q",
                    "XADD", "bench", "*", "v", value], check=True, stdout=subprocess.DEVNULL)
    w = time.perf_counter() - t0
    t0 = time.perf_counter()
    last, got = "0-0", 0
    while got < n // pipeline * pipeline:
        resp = r.xread({"bench": last}, count=10_000)
        if not resp:
            break
        entries = resp[0][1]
        got += len(entries)
        last = entries[-1][0]
    rd = time.perf_counter() - t0
    return n // pipeline * pipeline, w, got, rd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    q = args.quick
    n = 300_000 if q else 3_000_000
    tmp = tempfile.mkdtemp(prefix="klog-bbench-")
    rows = []
    print(f"# machine: {machine()}")
    redis_proc = None
    try:
        print("\n## produce, distinct 100-byte values")
        source = DistinctValues(n)
        runs = 3 if q else 5
        s_rates = [c / t for c, t in (bench_send(tmp, n, source) for _ in range(runs))]
        print(f"klog   producer.send (one record per call): {n} records x {runs} runs, "
              f"min / median / max {fmt_spread(s_rates)}", flush=True)
        sb_rates = [c / t for c, t in (bench_send_batch(tmp, n, source) for _ in range(runs))]
        print(f"klog   producer.send_batch (10 000 per call): {n} records x {runs} runs, "
              f"min / median / max {fmt_spread(sb_rates)}", flush=True)
        sq_n, sq_w, sq_got, sq_r = bench_sqlite(tmp, n, source)
        sq_wr, _ = line("sqlite executemany (10 000 per transaction)", sq_n, sq_w, sq_n * VALUE)
        redis_proc, sock = start_redis(tmp)
        if redis_proc is not None:
            rd_n, rd_w, rd_got, rd_r = bench_redis(sock, n)
            rd_wr, _ = line("redis  XADD via redis-benchmark -P 1000", rd_n, rd_w, rd_n * VALUE)
        else:
            print("redis  (redis-server not installed: apt-get install redis-server)")
            rd_wr = rd_rr = None

        print("\n## consume")
        p_rates = bench_poll(tmp, n, source)
        print(f"klog   consumer.poll (max.poll.records 500): {n} records x 3 runs, "
              f"min / median / max {fmt_spread(p_rates)}", flush=True)
        sq_rr, _ = line("sqlite SELECT", sq_got, sq_r, sq_got * VALUE)
        if redis_proc is not None:
            rd_rr, _ = line("redis  XREAD COUNT 10000", rd_got, rd_r, rd_got * VALUE)

        print("\n## producer thread -> consumer thread latency at a fixed rate")
        rate = 100_000
        lats = [bench_latency(tmp, rate, 1 if q else 5) for _ in range(3)]
        for p50, p99, pmax, cnt, achieved in lats:
            print(f"klog   latency at {achieved:,.0f} records/s: p50 {p50:.0f} us, p99 {p99:.0f} us, "
                  f"max {pmax:.0f} us over {cnt} records")
        p50s = sorted(l[0] for l in lats)
        p99s = sorted(l[1] for l in lats)

        peer = lambda v: "n/a" if v is None else f"{v / 1e6:.2f} M/s"  # noqa: E731
        rows = [
            ("producer.send, one record per call (min / median / max)", fmt_spread(s_rates),
             f"{sq_wr / 1e6:.2f} M/s", peer(rd_wr), ">= 3 M/s"),
            ("producer.send_batch, 10 000 per call (min / median / max)", fmt_spread(sb_rates),
             f"{sq_wr / 1e6:.2f} M/s", peer(rd_wr), ">= 10 M/s"),
            ("consumer.poll (min / median / max)", fmt_spread(p_rates), f"{sq_rr / 1e6:.2f} M/s",
             peer(rd_rr), ">= 5 M/s"),
            (f"latency at {rate // 1000}k records/s, producer thread -> consumer thread",
             "p50 " + " / ".join(f"{v:.0f}" for v in p50s) + " us, p99 "
             + " / ".join(f"{v:.0f}" for v in p99s) + " us (3 runs, sorted)", "", "", "p99 < 1 ms"),
        ]
    finally:
        if redis_proc is not None:
            redis_proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    if not q:
        write_markdown(rows)


def write_markdown(rows):
    out = ["## Embedded broker (`python bench/broker_bench.py`)", "",
           f"Machine: {machine()}.", f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
           "| benchmark | klog | SQLite (WAL) | Redis Streams | target |", "|---|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    replace_section("broker", out)
    replace_section("broker-figures", [
        "Embedded broker, `python bench/broker_bench.py` (min / median / max over runs; "
        f"{machine()}; {time.strftime('%Y-%m-%d', time.gmtime())}):", "",
        "| benchmark | klog | SQLite (WAL) | Redis Streams | target |", "|---|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]], "README.md")


if __name__ == "__main__":
    main()
