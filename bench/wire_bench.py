"""`klog serve` with a real Kafka client, side by side with librdkafka's mock cluster and Redis.

    python bench/wire_bench.py [--quick]

The client (confluent-kafka, i.e. librdkafka) runs in a separate process; 100-byte records.
- produce: confluent-kafka Producer → `klog serve` vs → librdkafka's in-process mock cluster
  (`test.mock.num.brokers=1`) vs Redis Streams XADD with redis-benchmark -P 1000;
- consume: confluent-kafka Consumer ← `klog serve`;
- latency: produce → consume at a fixed 50 k records/s.
Writes the "wire" section of BENCHMARKS.md (not with --quick).
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from broker_bench import bench_redis, start_redis  # noqa: E402
from storage_bench import line, machine, replace_section  # noqa: E402

CLIENT = r"""
import json, sys, time
import confluent_kafka as ck
mode, bootstrap, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
value = b"v" * 100
if mode == "produce":
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1000000,
            "queue.buffering.max.messages": 2000000, "acks": 1, "enable.idempotence": False}
    if bootstrap == "mock":
        conf = {k: v for k, v in conf.items() if k != "bootstrap.servers"}
        conf["test.mock.num.brokers"] = 1
    p = ck.Producer(conf)
    t0 = time.perf_counter()
    for i in range(n):
        while True:
            try:
                p.produce("bench", value)
                break
            except BufferError:
                p.poll(0.001)
    p.flush(60)
    print(json.dumps({"seconds": time.perf_counter() - t0}))
elif mode == "consume":
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "wire-bench",
                     "enable.auto.commit": False})
    c.assign([ck.TopicPartition("bench", 0, 0)])
    got, t0 = 0, None
    while got < n:
        msgs = c.consume(10000, 5.0)
        if msgs and t0 is None:
            t0 = time.perf_counter()
        got += sum(1 for m in msgs if m.error() is None)
    print(json.dumps({"seconds": time.perf_counter() - t0, "got": got}))
    c.close()
elif mode == "latency":
    rate = int(sys.argv[4])
    p = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": 1,
                     "enable.idempotence": False})
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "wire-lat",
                     "fetch.wait.max.ms": 10, "enable.auto.commit": False})
    c.assign([ck.TopicPartition("latency", 0, ck.OFFSET_END)])
    c.consume(1, 1.0)  # let the assignment settle on the log end
    lat, sent, per_tick = [], 0, max(1, rate // 1000)
    start = time.perf_counter()
    while sent < n or len(lat) < n:
        if sent < n:
            for _ in range(per_tick):
                p.produce("latency", time.perf_counter_ns().to_bytes(8, "big") + b"x" * 92)
            sent += per_tick
            p.poll(0)
        for m in c.consume(1000, 0):
            if m.error() is None:
                lat.append(time.perf_counter_ns() - int.from_bytes(m.value()[:8], "big"))
        time.sleep(max(0.0, start + sent / rate - time.perf_counter()))
        if time.perf_counter() - start > n / rate + 30:
            break
    lat.sort()
    print(json.dumps({"p50": lat[len(lat) // 2] / 1e3, "p99": lat[int(len(lat) * 0.99)] / 1e3,
                      "count": len(lat)}))
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_client(*args, timeout=600):
    import json

    out = subprocess.run([sys.executable, "-c", CLIENT, *map(str, args)], capture_output=True,
                         text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_server(data_dir, port):
    proc = subprocess.Popen([sys.executable, "-m", "klog", "--data-dir", data_dir, "serve",
                             "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("klog serve did not start")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 200_000 if args.quick else 2_000_000
    tmp = tempfile.mkdtemp(prefix="klog-wire-")
    print(f"# machine: {machine()}")
    port = free_port()
    import klog

    with klog.open(os.path.join(tmp, "data")) as b:
        b.create_topic("bench", 1, {"max.message.bytes": 4 << 20})
        b.create_topic("latency", 1)
    server = start_server(os.path.join(tmp, "data"), port)
    redis_proc = None
    try:
        boot = f"127.0.0.1:{port}"
        print("\n## produce, 100-byte records, confluent-kafka in its own process")
        r = run_client("produce", boot, n)
        k_rate, _ = line("confluent-kafka -> klog serve", n, r["seconds"], n * 100)
        r = run_client("produce", "mock", n)
        m_rate, _ = line("confluent-kafka -> librdkafka mock cluster", n, r["seconds"], n * 100)
        redis_proc, sock = start_redis(tmp)
        r_rate = None
        if redis_proc is not None:
            rn, rw, _, _ = bench_redis(sock, n)
            r_rate, _ = line("redis-benchmark XADD -P 1000", rn, rw, rn * 100)
        print("\n## consume")
        r = run_client("consume", boot, n)
        c_rate, _ = line("confluent-kafka <- klog serve", r["got"], r["seconds"], r["got"] * 100)
        print("\n## produce -> consume latency at 50k records/s")
        lat = run_client("latency", boot, 50_000 if args.quick else 250_000, 50_000)
        print(f"confluent-kafka via klog serve: p50 {lat['p50']:.0f} us, p99 {lat['p99']:.0f} us "
              f"over {lat['count']} records")
    finally:
        server.terminate()
        server.wait(30)
        if redis_proc is not None:
            redis_proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    if not args.quick:
        rows = [
            ("confluent-kafka producer -> server", f"{k_rate / 1e6:.2f} M records/s",
             f"{m_rate / 1e6:.2f} M records/s",
             "n/a" if r_rate is None else f"{r_rate / 1e6:.2f} M/s (XADD)", ">= 1.5 M/s"),
            ("confluent-kafka consumer <- server", f"{c_rate / 1e6:.2f} M records/s", "", "", ">= 2 M/s"),
            ("produce -> consume latency at 50k records/s", f"p50 {lat['p50']:.0f} us, p99 {lat['p99']:.0f} us",
             "", "", "report"),
        ]
        replace_section("wire", [
            "## Kafka wire protocol (`python bench/wire_bench.py`)", "",
            f"Machine: {machine()}.", f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
            "| benchmark | klog serve | librdkafka mock cluster | Redis Streams | target |",
            "|---|---|---|---|---|", *[f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]])


if __name__ == "__main__":
    main()
