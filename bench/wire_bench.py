"""`klog serve` with real Kafka clients, side by side with librdkafka's mock cluster and Redis.

    python bench/wire_bench.py [--quick]

Every client runs in its own process (bench/wire_clients.py); 100-byte records, one partition.
- produce: confluent-kafka Producer -> `klog serve` vs -> librdkafka's mock cluster
  (`test.mock.num.brokers=1`, inside the client process) vs Redis Streams XADD with
  redis-benchmark -P 1000; and pre-built batches over the bare protocol, the server's ceiling;
- consume: confluent-kafka, kafka-python and aiokafka consumers <- `klog serve`, confluent-kafka
  <- the mock cluster, XREAD with redis-py, and bare Fetch requests; a confluent-kafka consumer
  with librdkafka's default settings (group subscribe, consume(10000)) <- both, over all the
  records and over as many as the mock cluster keeps;
- latency: produce -> consume at a fixed 50 k records/s, klog serve vs the mock cluster.
Writes the "wire" section of BENCHMARKS.md (not with --quick).
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # noqa: E402
from broker_bench import bench_redis, start_redis  # noqa: E402
from storage_bench import line, machine, replace_section  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = os.path.join(HERE, "wire_clients.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_client(*args, timeout=600):
    """One measurement in a fresh client process (bench/wire_clients.py): its JSON result."""
    out = subprocess.run([sys.executable, CLIENTS, *map(str, args)], capture_output=True,
                         text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_rate(runs, *args):
    """Records/s, the median of ``runs`` client processes, and the records of one run."""
    results = [run_client(*args) for _ in range(runs)]
    rates = sorted(r["records"] / r["seconds"] for r in results)
    return rates[len(rates) // 2], results[0]["records"]


def median_latency(runs, *args):
    results = sorted((run_client(*args) for _ in range(runs)), key=lambda r: r["p99"])
    return results[len(results) // 2]


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


def mrate(rate):
    return f"{rate / 1e6:.2f} M records/s"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller, one run each, nothing written")
    args = ap.parse_args()
    n, runs = (200_000, 1) if args.quick else (1_000_000, 3)
    tmp = tempfile.mkdtemp(prefix="klog-wire-")
    print(f"# machine: {machine()}")
    print(f"# {n} records of 100 bytes per run; median of {runs} client processes")
    port = free_port()
    import klog

    with klog.open(os.path.join(tmp, "data")) as b:
        b.create_topic("bench", 1, {"max.message.bytes": 4 << 20})
        b.create_topic("latency", 1)
    server = start_server(os.path.join(tmp, "data"), port)
    redis_proc = None
    r = {}
    try:
        boot = f"127.0.0.1:{port}"
        print("\n## produce (confluent-kafka: linger.ms=5, batch.size=1 MB, acks=1)")
        r["produce"], k = median_rate(runs, "produce", boot, n)
        line("confluent-kafka -> klog serve", k, k / r["produce"], k * 100)
        r["produce_mock"], k = median_rate(runs, "produce", "mock", n)
        line("confluent-kafka -> librdkafka mock cluster", k, k / r["produce_mock"], k * 100)
        r["produce_raw"], k = median_rate(runs, "produce-raw", boot, n)
        line("bare protocol, pre-built 10 000-record batches -> klog serve", k, k / r["produce_raw"], k * 100)
        redis_proc, sock = start_redis(tmp)
        if redis_proc is not None:
            rn, rw, rgot, rr = bench_redis(sock, n)
            r["xadd"], _ = line("redis-benchmark XADD -P 1000", rn, rw, rn * 100)
            r["xread"], _ = line("redis-py XREAD COUNT 10000", rgot, rr, rgot * 100)

        print("\n## consume (from offset 0 of the data produced above)")
        for key, what, mode, where in (
                ("consume", "confluent-kafka <- klog serve", "consume", boot),
                ("consume_mock", "confluent-kafka <- librdkafka mock cluster (the ~5 MB it keeps)",
                 "consume", "mock"),
                ("consume_drain", "confluent-kafka draining its local queue (client ceiling)",
                 "consume-drain", boot),
                ("consume_kafka_python", "kafka-python <- klog serve", "consume-kafka-python", boot),
                ("consume_aiokafka", "aiokafka <- klog serve", "consume-aiokafka", boot),
                ("consume_raw", "bare Fetch v11 requests <- klog serve", "consume-raw", boot)):
            r[key], k = median_rate(runs, mode, where, n)
            line(what, k, k / r[key], k * 100)
        # librdkafka's defaults: past its 100 000-message local queue the client's 1 s
        # fetch.queue.backoff.ms sets the pace. The mock cluster keeps fewer records than that,
        # so it is compared with klog serve over the same number of records.
        r["consume_default"], k = median_rate(runs, "consume-default", boot, n)
        line("confluent-kafka default settings <- klog serve", k, k / r["consume_default"], k * 100)
        mock_runs = [run_client("consume-default", "mock", n) for _ in range(runs)]
        rates = sorted(x["records"] / x["seconds"] for x in mock_runs)
        r["consume_default_mock"] = rates[runs // 2]
        k = mock_runs[0]["records"]
        line("confluent-kafka default settings <- librdkafka mock cluster", k,
             k / r["consume_default_mock"], k * 100)
        r["mock_kept"] = mock_runs[0]["total"]
        r["consume_default_small"], k = median_rate(runs, "consume-default", boot, r["mock_kept"])
        line(f"confluent-kafka default settings <- klog serve, first {r['mock_kept']} records", k,
             k / r["consume_default_small"], k * 100)

        print("\n## produce -> consume latency at 50k records/s (confluent-kafka, linger.ms=1)")
        lat_n = 50_000 if args.quick else 100_000   # the mock cluster keeps ~45k records
        for key, where in (("latency", boot), ("latency_mock", "mock")):
            r[key] = median_latency(runs, "latency", where, lat_n, 50_000)
            print(f"{'klog serve' if where == boot else 'mock cluster'}: p50 {r[key]['p50']:.0f} us, "
                  f"p99 {r[key]['p99']:.0f} us over {r[key]['records']} records")
    finally:
        server.terminate()
        server.wait(30)
        if redis_proc is not None:
            redis_proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.quick:
        return

    def lat(x):
        return f"p50 {x['p50'] / 1000:.2f} ms, p99 {x['p99'] / 1000:.2f} ms"

    redis_w = f"{r['xadd'] / 1e6:.2f} M/s (XADD, redis-benchmark -P 1000)" if "xadd" in r else "n/a"
    redis_r = f"{r['xread'] / 1e6:.2f} M/s (XREAD, redis-py)" if "xread" in r else "n/a"
    rows = [
        ("confluent-kafka producer", mrate(r["produce"]), mrate(r["produce_mock"]), redis_w, ">= 1.5 M/s"),
        ("bare protocol producer, pre-built batches (server ceiling)", mrate(r["produce_raw"]), "", "", ""),
        ("confluent-kafka consumer", mrate(r["consume"]), mrate(r["consume_mock"]), redis_r, ">= 2 M/s"),
        (f"confluent-kafka consumer with default settings (subscribe, consume(10000)), "
         f"{n / 1e6:g} M records: librdkafka's 1 s fetch.queue.backoff.ms paces it",
         mrate(r["consume_default"]), "", "", "report"),
        (f"the same over {r['mock_kept'] // 1000} k records, what the mock cluster keeps "
         "(its local queue never fills)", mrate(r["consume_default_small"]),
         mrate(r["consume_default_mock"]), "", "report"),
        ("confluent-kafka handing queued records to Python (client ceiling, no server)",
         mrate(r["consume_drain"]), "", "", ""),
        ("kafka-python consumer", mrate(r["consume_kafka_python"]), "", "", "report"),
        ("aiokafka consumer", mrate(r["consume_aiokafka"]), "", "", "report"),
        ("bare Fetch requests (server ceiling)", mrate(r["consume_raw"]), "", "", ""),
        ("produce -> consume latency at 50k records/s", lat(r["latency"]), lat(r["latency_mock"]), "", "report"),
    ]
    table = ["| benchmark | klog serve | librdkafka mock cluster | Redis Streams | target |",
             "|---|---|---|---|---|", *[f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]]
    replace_section("wire", [
        "## Kafka wire protocol (`python bench/wire_bench.py`)", "",
        f"Machine: {machine()}.", f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{n} records of 100 bytes; each figure the median of {runs} client processes, "
        "the client always in its own process (the mock cluster lives inside its client).", "",
        *table])
    replace_section("wire-figures", ["`klog serve` with Kafka clients, `python bench/wire_bench.py`:",
                                     "", *table], "README.md")


if __name__ == "__main__":
    main()
