"""klog.functions throughput: a JSON-in / JSON-out function and a bytes pass-through, one
process, embedded and over ``klog serve``, with the peers side by side on the same server:
a hand-written confluent-kafka consume -> produce loop (the ceiling: at-least-once, commit after
flush) and FastStream (``faststream[kafka]``) running the same function.

    python bench/functions_bench.py            # writes BENCHMARKS.md and the README block
    python bench/functions_bench.py --quick    # smaller, prints only

Each run pre-produces ~100-byte JSON events, starts the app, and times until every input
record is processed, its output acknowledged and its offset committed.
"""
import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, os.pardir, "src"))

import logging  # noqa: E402

import klog  # noqa: E402
from klog.functions import App  # noqa: E402
from storage_bench import machine, replace_section  # noqa: E402


def event(i):
    # about 100 bytes of JSON
    return json.dumps({"id": i, "user": f"user-{i:08d}", "email": f"u{i:08d}@example.com",
                       "amount": i % 1000 / 10, "ok": True}, separators=(",", ":")).encode()


def enrich(e):
    e["score"] = e["amount"] * 2
    return e


class Failing(Exception):
    pass


def make_app(kind):
    app = App(f"bench-{kind}")
    if kind == "json":
        @app.function
        def work(e: dict) -> dict:
            return enrich(e)
    elif kind == "bytes":
        @app.function
        def work(b: bytes) -> bytes:
            return b
    else:  # 1% fail, not retryable: straight to the DLQ
        @app.function
        def work(e: dict) -> dict:
            if e["id"] % 100 == 7:
                raise Failing(f"event {e['id']} is bad")
            return enrich(e)
    return app


def fill(client, topic, n, partitions):
    client.create_topic(topic, partitions)
    p = client.producer({"linger.ms": 5})
    chunk = 10_000
    for lo in range(0, n, chunk):
        p.send_batch(topic, [event(i) for i in range(lo, min(n, lo + chunk))])
    p.flush()
    p.close()


def run_klog(client, kind, n, topic):
    app = make_app(kind)
    bindings = {"work-in-0": {"destination": topic, "max-poll-records": 2000,
                              "enable-dlq": kind == "dlq",
                              "retryable-exceptions": {"Failing": False}},
                "work-out-0": {"destination": topic + "-out"}}
    t0 = time.perf_counter()
    running = app.start(client, bindings=bindings)
    try:
        running.wait_idle(600)
        dt = time.perf_counter() - t0
        st = running.stats()["work-in-0"]
    finally:
        running.stop()
    assert st["records_in"] + st["dead_lettered"] >= n, st
    return dt, st


# -- over the wire ---------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.path.join(HERE, os.pardir, "src"))
    proc = subprocess.Popen([sys.executable, "-m", "klog", "serve", "--data-dir", data, "--listen",
                             f"127.0.0.1:{port}", "-c", "group.initial.rebalance.delay.ms=0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("klog serve did not start")
            time.sleep(0.05)


def wire_fill(addr, topic, n, partitions):
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": addr})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    p = ck.Producer({"bootstrap.servers": addr, "linger.ms": 5})
    for i in range(n):
        while True:
            try:
                p.produce(topic, event(i))
                break
            except BufferError:
                p.poll(0.01)
        if i % 10000 == 0:
            p.poll(0)
    p.flush(60)


def run_confluent_loop(addr, topic, n):
    """The ceiling: consume a batch, run the function, produce, flush, commit."""
    import confluent_kafka as ck
    c = ck.Consumer({"bootstrap.servers": addr, "group.id": "bench-ck",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
    p = ck.Producer({"bootstrap.servers": addr, "linger.ms": 1})
    c.subscribe([topic])
    out = topic + "-out"
    done = 0
    t0 = time.perf_counter()
    while done < n:
        msgs = c.consume(2000, 1.0)
        for m in msgs:
            if m.error():
                continue
            v = json.dumps(enrich(json.loads(m.value())), separators=(",", ":")).encode()
            while True:
                try:
                    p.produce(out, v, key=m.key())
                    break
                except BufferError:
                    p.poll(0.01)
            done += 1
        if msgs:
            p.flush(30)
            c.commit(asynchronous=False)
    dt = time.perf_counter() - t0
    c.close()
    return dt


def run_faststream(addr, topic, n):
    from faststream.kafka import KafkaBroker
    broker = KafkaBroker(addr)
    count = [0]
    finished = asyncio.Event()
    publisher = broker.publisher(topic + "-out")

    @broker.subscriber(topic, group_id="bench-fs", auto_offset_reset="earliest")
    @publisher
    async def handle(e: dict) -> dict:
        count[0] += 1
        if count[0] >= n:
            finished.set()
        return enrich(e)

    async def main():
        t0 = time.perf_counter()
        await broker.start()
        await asyncio.wait_for(finished.wait(), 900)
        dt = time.perf_counter() - t0
        await broker.stop()
        return dt
    return asyncio.run(main())


def rate(n, dt):
    return n / dt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-wire", action="store_true")
    args = ap.parse_args()
    q = args.quick
    logging.getLogger("klog.functions").setLevel(logging.ERROR)   # the 1% DLQ logs per record
    n_emb = 100_000 if q else 500_000
    n_wire = 50_000 if q else 200_000
    n_fs = 5_000 if q else 20_000
    parts = 3
    tmp = tempfile.mkdtemp(prefix="klog-fbench-")
    rows = []
    print(f"# machine: {machine()}", flush=True)
    try:
        client = klog.connect(os.path.join(tmp, "emb")) if hasattr(klog, "connect") else \
            klog.open(os.path.join(tmp, "emb"))
        emb = {}
        for kind in ("json", "bytes", "dlq"):
            fill(client, f"in-{kind}", n_emb, parts)
            dt, st = run_klog(client, kind, n_emb, f"in-{kind}")
            emb[kind] = (dt, st)
            print(f"embedded {kind:5s}: {n_emb} events in {dt:.2f} s: {rate(n_emb, dt):,.0f} events/s "
                  f"(out {st['records_out']}, DLQ {st['dead_lettered']})", flush=True)
        client.close()
        ok99 = emb["dlq"][1]["records_out"]
        rows += [
            ("JSON function, embedded", f"{rate(n_emb, emb['json'][0]) / 1e3:,.0f} k events/s",
             "", "", ">= 300 k/s"),
            ("bytes pass-through, embedded", f"{rate(n_emb, emb['bytes'][0]) / 1e3:,.0f} k events/s",
             "", "", ""),
            ("JSON function failing 1% into a DLQ, embedded: the other 99%",
             f"{rate(ok99, emb['dlq'][0]) / 1e3:,.0f} k events/s", "", "",
             f"{emb['dlq'][1]['dead_lettered']} dead-lettered"),
        ]
        if not args.skip_wire and hasattr(klog, "connect"):
            server, addr = start_server(os.path.join(tmp, "srv"))
            try:
                wire = {}
                for kind in ("json", "bytes", "dlq"):
                    wire_fill(addr, f"w-{kind}", n_wire, parts)
                    c = klog.connect(f"kafka://{addr}")
                    dt, st = run_klog(c, kind, n_wire, f"w-{kind}")
                    c.close()
                    wire[kind] = (dt, st)
                    print(f"klog serve {kind:5s}: {n_wire} events in {dt:.2f} s: "
                          f"{rate(n_wire, dt):,.0f} events/s", flush=True)
                wire_fill(addr, "w-ck", n_wire, parts)
                ck_dt = run_confluent_loop(addr, "w-ck", n_wire)
                print(f"confluent-kafka loop: {n_wire} events in {ck_dt:.2f} s: "
                      f"{rate(n_wire, ck_dt):,.0f} events/s", flush=True)
                try:
                    wire_fill(addr, "w-fs", n_fs, parts)
                    fs_dt = run_faststream(addr, "w-fs", n_fs)
                    fs_rate = rate(n_fs, fs_dt)
                    print(f"faststream: {n_fs} events in {fs_dt:.2f} s: {fs_rate:,.0f} events/s",
                          flush=True)
                except ImportError:
                    fs_rate = None
                    print("faststream not installed: pip install 'faststream[kafka]'")
                j = rate(n_wire, wire["json"][0])
                ckr = rate(n_wire, ck_dt)
                fs_cell = f"{fs_rate / 1e3:,.1f} k events/s" if fs_rate else "n/a"
                rows += [
                    ("JSON function over klog serve", f"{j / 1e3:,.0f} k events/s",
                     f"{ckr / 1e3:,.0f} k events/s ({j / ckr:.2f}x)",
                     f"{fs_cell}" + (f" ({j / fs_rate:.0f}x)" if fs_rate else ""),
                     ">= 0.5x confluent-kafka, >= 10x FastStream"),
                    ("bytes pass-through over klog serve",
                     f"{rate(n_wire, wire['bytes'][0]) / 1e3:,.0f} k events/s", "", "", ""),
                    ("JSON function failing 1% into a DLQ over klog serve: the other 99%",
                     f"{rate(wire['dlq'][1]['records_out'], wire['dlq'][0]) / 1e3:,.0f} k events/s",
                     "", "", ""),
                ]
            finally:
                server.terminate()
                server.wait(30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    table = ["| benchmark | klog.functions | confluent-kafka loop (ceiling) | FastStream | aim |",
             "|---|---|---|---|---|"] + [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    print("\n".join(table))
    if not q:
        sizes = (f"{n_emb:,} events embedded, {n_wire:,} over klog serve, {n_fs:,} for FastStream; "
                 f"{parts} partitions, ~100-byte JSON events")
        replace_section("functions", [
            "## Functions (`python bench/functions_bench.py`)", "",
            f"Machine: {machine()}.", f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
            f"Sizes: {sizes}. One process each; over the wire every peer uses the same "
            "`klog serve` (its own process). Times run from start to every record processed, "
            "its output acknowledged and its offset committed.", "", *table])
        replace_section("functions-figures", [
            "Functions, `python bench/functions_bench.py`:", "", *table], "README.md")


if __name__ == "__main__":
    main()
