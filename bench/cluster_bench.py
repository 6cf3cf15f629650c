"""A 3-broker klog cluster (three ``klog serve --zookeeper`` processes on 127.0.0.1/2/3, Debian's
ZooKeeper), measured with confluent-kafka, side by side in one run:

- throughput: a producer into replication factor 1 (acks=1), factor 3 acks=1 and factor 3
  acks=all, on the same cluster, rounds interleaved; each figure min / median / max over runs,
  every run a fresh client process; distinct 100-byte values built per produce() call; and one
  record per request (flush each), factor 1 acks=1 vs factor 3 acks=all: what replication adds
  to a request's round trip;
- failover: an idempotent acks=all producer writes continuously while the partition's leader is
  SIGKILLed (then restarted and back in the ISR before the next round), and then SIGTERMed
  (controlled shutdown); the unavailability of a round is the longest gap between two
  acknowledgements around the signal;
- latency: produce -> consume at a fixed 50 k records/s, factor 3 acks=all vs factor 1 (the
  consumer reads up to the high watermark, so factor 3 includes replication);
- peer: librdkafka's mock cluster (``test.mock.num.brokers=3``, in the client process) with the
  same clients; its topics list 3 replicas but it does not replicate and ignores acks.

    PYTHONPATH=src python bench/cluster_bench.py [--throughput] [--failover] [--latency] [--mock]
        [--quick] [--json FILE] [--write] [--keep]

No section flag runs them all. --write rewrites the "cluster" section of BENCHMARKS.md and the
"cluster-figures" block of README.md (only for a full run without --quick); after --failover
alone it replaces the two failover rows there and names the run they come from. --keep keeps
the brokers' logs (each round's signal time is in the --json file) to see where a round's time
went.
"""
import argparse
import json
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from cluster.brokers import Cluster as TestCluster, call as call_on  # noqa: E402

VALUE_SIZE = 100
QUIET = {"log_level": 0, "logger": lambda *a: None}
# max.in.flight=5 as Kafka's Java producer, and what a broker lets in behind an acks=all answer
# still waiting for the followers (klog.server.deferred.MAX_PENDING_ANSWERS): with librdkafka's
# default (1 000 000) a client keeps sending small requests that queue behind each other, where
# 5 in flight lets the next batches grow while it waits.
MAX_IN_FLIGHT = int(os.environ.get("KLOG_BENCH_MAX_IN_FLIGHT", 5))
PRODUCER = {"linger.ms": 5, "batch.size": 1_000_000, "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 4_000_000, "enable.idempotence": False,
            "max.in.flight": MAX_IN_FLIGHT}
# See bench/wire_clients.py: linger.ms=1 keeps the request rate within what a broker answers.
LATENCY_PRODUCER = {"linger.ms": 1, "enable.idempotence": False, "max.in.flight": MAX_IN_FLIGHT}
FAILOVER_RATE = 2000           # records/s of the failover producer (1 ms ticks)
SESSION_TIMEOUT_MS = 6000      # klog.cluster.node.ClusterNode's default (Kafka's before 2.5)
SETTINGS = ("min.insync.replicas=2", f"zookeeper.session.timeout.ms={SESSION_TIMEOUT_MS}")
# ZooKeeper expires sessions on tick boundaries: a dead broker's session ends 0-1 tick after the
# timeout. 2000 ms is the tickTime of Debian's /etc/zookeeper/conf/zoo.cfg (and ZooKeeper's
# sample configuration); ZooKeeperServerMain's own default, 3000 ms, is what tests use.
ZK_TICK_MS = 2000


# ---------------------------------------------------------------------------------------------
# client side: one measurement per process, its result as JSON on stdout
# ---------------------------------------------------------------------------------------------
def values(n):
    """Yield ``n`` distinct VALUE_SIZE-byte values, each a new bytes object built at the call (a
    counter in the first 8 bytes of a slice of random bytes)."""
    pool = os.urandom(1 << 20)
    span = len(pool) - VALUE_SIZE
    tail = VALUE_SIZE - 8
    for i in range(n):
        o = (i * 97) % span
        yield i.to_bytes(8, "big") + pool[o:o + tail]


def mock_producer(config):
    """A producer hosting librdkafka's mock cluster of 3 brokers, and its bootstrap address."""
    from wire_clients import mock_cluster
    return mock_cluster({k: v for k, v in config.items() if k not in QUIET}, brokers=3)


def mock_replicas(boot, topic):
    """The replica count the mock cluster's Metadata gives ``topic``'s partition 0. (The mock
    has no controller, so CreateTopics fails; topics are auto-created with one replica per
    mock broker.)"""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": boot, **QUIET})
    return len(admin.list_topics(topic, timeout=10).topics[topic].partitions[0].replicas)


def client_produce(boot, topic, acks, n):
    from confluent_kafka import Producer

    config = {**PRODUCER, "acks": acks, **QUIET}
    ends = {}

    def done(err, msg):
        if err is not None:
            raise RuntimeError(str(err))
        p_ = msg.partition()
        if msg.offset() >= ends.get(p_, 0):
            ends[p_] = msg.offset() + 1

    replicas, partition = None, -1          # -1: the partitioner's choice
    if boot == "mock":
        p, mboot = mock_producer(config)
        partition = 0
    else:
        p = Producer({"bootstrap.servers": boot, **config})
    p.produce(topic, b"w" * VALUE_SIZE, partition=partition, callback=done)   # leader known first
    p.flush(30)
    if boot == "mock":
        replicas = mock_replicas(mboot, topic)
    produce, poll = p.produce, p.poll
    t0 = time.perf_counter()
    for v in values(n):
        while True:
            try:
                produce(topic, v, partition=partition, callback=done)
                break
            except BufferError:       # the local queue is full: let deliveries drain it
                poll(0.001)
    left = p.flush(300)
    seconds = time.perf_counter() - t0
    if left:
        raise RuntimeError(f"{left} records not delivered")
    return {"seconds": seconds, "records": n, "ends": {str(k): v for k, v in ends.items()},
            "replicas": replicas}


def client_latency(boot, topic, acks, n, rate):
    """Produce at a fixed rate (a tick per ms) and consume in the same loop; each value carries
    its send time; the consumer reads from the leader up to the high watermark."""
    import confluent_kafka as ck

    config = {**LATENCY_PRODUCER, "acks": acks, **QUIET}
    if boot == "mock":
        p, boot = mock_producer(config)
    else:
        p = ck.Producer({"bootstrap.servers": boot, **config})
    c = ck.Consumer({"bootstrap.servers": boot, "group.id": "cluster-lat", "fetch.wait.max.ms": 10,
                     "enable.auto.commit": False, **QUIET})
    c.assign([ck.TopicPartition(topic, 0, ck.OFFSET_END)])
    deadline = time.monotonic() + 30
    while not any(m.error() is None for m in c.consume(10, 0.05)):
        p.produce(topic, b"warm-up", partition=0)
        p.poll(0)
        if time.monotonic() > deadline:
            raise RuntimeError("the latency consumer never saw a record")
    pad = os.urandom(1 << 16)
    lat, sent, per_tick = [], 0, max(1, rate // 1000)
    start = time.perf_counter()
    while len(lat) < n:
        if sent < n:
            for i in range(per_tick):
                o = (sent + i) * 89 % ((1 << 16) - 92)
                p.produce(topic, time.perf_counter_ns().to_bytes(8, "big") + pad[o:o + 92],
                          partition=0)
            sent += per_tick
        p.poll(0)
        for m in c.consume(1000, 0):
            if m.error() is None and len(m.value()) == VALUE_SIZE:   # not a late warm-up
                lat.append(time.perf_counter_ns() - int.from_bytes(m.value()[:8], "big"))
        time.sleep(max(0.0, start + sent / rate - time.perf_counter()))
        if time.perf_counter() - start > n / rate + 60:
            raise RuntimeError(f"only {len(lat)} of {n} records came back")
    c.close()
    p.flush(10)
    lat.sort()
    return {"p50": lat[len(lat) // 2] / 1e3, "p99": lat[int(len(lat) * 0.99)] / 1e3,
            "records": len(lat)}


def client_roundtrip(boot, topic, acks, n):
    """One record at a time, each waited for (flush): the time of a produce request's round
    trip, which with acks=all includes the followers fetching the record."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": boot, "acks": acks, "linger.ms": 0,
                  "enable.idempotence": False, **QUIET})
    p.produce(topic, b"w" * VALUE_SIZE, partition=0)
    p.flush(30)
    lat = []
    for v in values(n):
        t0 = time.perf_counter()
        p.produce(topic, v, partition=0)
        if p.flush(30):
            raise RuntimeError("a record was not delivered")
        lat.append(time.perf_counter() - t0)
    lat.sort()
    return {"p50": lat[len(lat) // 2] * 1e6, "p99": lat[int(len(lat) * 0.99)] * 1e6,
            "records": n}


def run_client(*args, timeout=900):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--client", *map(str, args)],
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"client {args} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# the cluster
# ---------------------------------------------------------------------------------------------
def call(address, api_key, version, body, timeout=5.0):
    """One raw request to ``address``: the decoded response body."""
    with socket.create_connection(address, timeout=timeout) as s:
        return call_on(s, api_key, version, body)


class Cluster(TestCluster):
    """ZooKeeper (a chroot of ``zk``) and brokers 1..3 as ``klog serve`` processes, started as
    the cluster tests start them (tests/cluster/brokers.py); here they stop gracefully, every
    broker (up or not) is in the bootstrap list, and ``metadata`` / ``partition`` ask whichever
    broker answers."""

    def __init__(self, zk, base, settings=SETTINGS):
        super().__init__(zk, pathlib.Path(base), settings)

    @property
    def bootstrap(self):
        return ",".join("%s:%d" % self.address(n) for n in (1, 2, 3))

    def signal(self, n, sig):
        proc = self.procs.pop(n)
        proc.send_signal(sig)
        return proc

    def stop(self):
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    def metadata(self, topics=None):
        """Metadata from the first broker that answers (None if none does)."""
        from klog.protocol.messages import ApiKey

        for n in sorted(self.procs):
            try:
                return call(self.address(n), ApiKey.METADATA, 9, {
                    "topics": None if topics is None else [{"name": t} for t in topics],
                    "allow_auto_topic_creation": False,
                    "include_cluster_authorized_operations": False,
                    "include_topic_authorized_operations": False})
            except OSError:
                continue
        return None

    def brokers(self):
        md = self.metadata([])
        return sorted(b["node_id"] for b in md["brokers"]) if md else []

    def partition(self, topic, p=0):
        md = self.metadata([topic])
        if md is None:
            return None
        return next((x for x in md["topics"][0]["partitions"] if x["partition_index"] == p), None)

    def high_watermark(self, topic, p=0):
        from klog.protocol.messages import ApiKey

        part = self.partition(topic, p)
        if part is None or part["leader_id"] not in self.procs:
            return -1
        ans = call(self.address(part["leader_id"]), ApiKey.LIST_OFFSETS, 1, {
            "replica_id": -1, "topics": [{"name": topic, "partitions": [
                {"partition_index": p, "timestamp": -1}]}]})
        return ans["topics"][0]["partitions"][0]["offset"]

    def create_topic(self, name, partitions, rf):
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap, **QUIET})
        admin.create_topics([NewTopic(name, partitions, rf)])[name].result(30)
        for p in range(partitions):
            self.wait_isr(name, rf, p)

    def wait_isr(self, topic, size, p=0, timeout=120):
        def full():
            part = self.partition(topic, p)
            return (part is not None and part["leader_id"] in self.procs
                    and len(part["isr_nodes"]) == size)
        wait_for(f"{topic}-{p}: a leader and an ISR of {size}", full, timeout)

    def wait_replicated(self, topic, ends, timeout=120):
        """Until the high watermark of each partition reached ``ends`` (partition -> end)."""
        for p, end in ends.items():
            wait_for(f"{topic}-{p} replicated to {end}",
                     lambda: self.high_watermark(topic, int(p)) >= end, timeout)


def wait_for(what, check, timeout=60.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)


def start_cluster(zk, base):
    c = Cluster(zk, base)
    for n in (1, 2, 3):
        c.start(n)
    wait_for("three registered brokers", lambda: c.brokers() == [1, 2, 3], 90)
    return c


# ---------------------------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------------------------
THROUGHPUT_CASES = (("rf1", 1, "1"), ("rf3_acks1", 3, "1"), ("rf3_all", 3, "all"))


def bench_throughput(c, n, runs, partitions, with_mock):
    print(f"\n## produce throughput: {n} distinct {VALUE_SIZE}-byte records a run, "
          f"{partitions} partition(s), {runs} runs per case, rounds interleaved", flush=True)
    for key, rf, _ in THROUGHPUT_CASES:
        c.create_topic(f"tp-{key}", partitions, rf)
    rates = {key: [] for key, _, _ in THROUGHPUT_CASES}
    if with_mock:
        rates.update({"mock_rf3_acks1": [], "mock_rf3_all": []})
    for r in range(runs):
        for key, rf, acks in THROUGHPUT_CASES:
            res = run_client("produce", c.bootstrap, f"tp-{key}", acks, n)
            rates[key].append(res["records"] / res["seconds"])
            # acks=1 leaves the followers behind: let them finish before the next case runs
            c.wait_replicated(f"tp-{key}", res["ends"])
            print(f"  round {r + 1} {key:>10}: {rates[key][-1] / 1e6:.3f} M records/s", flush=True)
        if with_mock:
            for key, acks in (("mock_rf3_acks1", "1"), ("mock_rf3_all", "all")):
                res = run_client("produce", "mock", "tp", acks, n)
                rates["mock_replicas"] = res["replicas"]
                rates[key].append(res["records"] / res["seconds"])
                print(f"  round {r + 1} {key:>10}: {rates[key][-1] / 1e6:.3f} M records/s",
                      flush=True)
    # one request at a time: what replication adds to a request's round trip
    for key, rf, acks in (("rf1", 1, "1"), ("rf3_all", 3, "all")):
        rt = rates.setdefault("roundtrip_" + key, [])
        for r in range(runs):
            res = run_client("roundtrip", c.bootstrap, f"tp-{key}", acks, 1000)
            rt.append(res)
            print(f"  one record per request, {key:>7}: p50 {res['p50']:.0f} us, "
                  f"p99 {res['p99']:.0f} us", flush=True)
    return rates


def bench_latency(c, n, rate, runs, with_mock):
    print(f"\n## produce -> consume latency at {rate} records/s, {n} records a run, {runs} runs",
          flush=True)
    c.create_topic("lat-rf1", 1, 1)
    c.create_topic("lat-rf3", 1, 3)
    cases = [("rf1", c.bootstrap, "lat-rf1", "1"), ("rf3_all", c.bootstrap, "lat-rf3", "all")]
    if with_mock:
        cases += [("mock_rf3_all", "mock", "lat", "all")]
    out = {key: [] for key, *_ in cases}
    for r in range(runs):
        for key, boot, topic, acks in cases:
            res = run_client("latency", boot, topic, acks, n, rate)
            out[key].append(res)
            print(f"  round {r + 1} {key:>12}: p50 {res['p50'] / 1e3:.2f} ms, "
                  f"p99 {res['p99'] / 1e3:.2f} ms", flush=True)
    return out


class AckRecorder:
    """A producer thread at a fixed rate (idempotent, acks=all); the time of every ack."""

    def __init__(self, boot, topic, rate, extra=None):
        from confluent_kafka import Producer

        self.topic = topic
        self.rate = rate
        self.acks = []          # time.monotonic() of each successful delivery, in order
        self.errors = []
        self.p = Producer({"bootstrap.servers": boot, "acks": "all", "enable.idempotence": True,
                           "linger.ms": 0, "message.timeout.ms": 300_000, **QUIET,
                           **(extra or {})})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _done(self, err, msg):
        if err is None:
            self.acks.append(time.monotonic())
        else:
            self.errors.append(str(err))

    def _run(self):
        per_tick = max(1, self.rate // 1000)
        sent, start = 0, time.perf_counter()
        gen = values(1 << 40)
        while not self._stop.is_set():
            for _ in range(per_tick):
                self.p.produce(self.topic, next(gen), partition=0, callback=self._done)
            sent += per_tick
            self.p.poll(0)
            time.sleep(max(0.0, start + sent / self.rate - time.perf_counter()))

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(10)
        self.p.flush(60)

    def acked_after(self, t):
        return self.acks and self.acks[-1] > t

    def gap_around(self, t_signal, t_settled):
        """The longest time without an ack, over consecutive acks the second of which came
        after the signal and the first before ``t_settled``."""
        acks = list(self.acks)
        best = 0.0
        for a, b in zip(acks, acks[1:]):
            if b > t_signal and a < t_settled:
                best = max(best, b - a)
        return best


def ensure_offsets_topic(c):
    """Have the cluster create ``__consumer_offsets`` (50 partitions, factor 3) as a full run's
    latency section does with its first FindCoordinator, and wait for all of them to have a
    leader and a full ISR: the controller handles a broker's death with these partitions there,
    whether or not ``--failover`` runs alone."""
    from klog.protocol.messages import ApiKey

    def found():
        ans = call(c.address(1), ApiKey.FIND_COORDINATOR, 1, {"key": "cluster-bench",
                                                             "key_type": 0})
        return ans["error_code"] == 0
    wait_for("a group coordinator (__consumer_offsets created)", found, 120, 0.2)

    def full():
        md = c.metadata(["__consumer_offsets"])
        parts = md["topics"][0]["partitions"] if md else []
        return len(parts) == 50 and all(p["leader_id"] in c.procs and len(p["isr_nodes"]) == 3
                                        for p in parts)
    wait_for("__consumer_offsets: every partition with a leader and an ISR of 3", full, 120, 0.2)


def failover_round(c, rec, topic, sig):
    """One round: signal the leader; the ack gap, the time until Metadata named a new leader,
    and whether the leader was also the controller. The old leader is back in the ISR after."""
    md = c.metadata([topic])
    leader = md["topics"][0]["partitions"][0]["leader_id"]
    was_controller = md["controller_id"] == leader
    # acks flowing steadily before the signal
    t0 = time.monotonic()
    wait_for("acks before the signal", lambda: rec.acked_after(t0 + 1.0), 30, 0.01)
    t_signal, t_signal_wall = time.monotonic(), time.time()
    proc = c.signal(leader, sig)

    def new_leader():
        p = c.partition(topic)
        return p is not None and p["leader_id"] not in (-1, leader) and p["leader_id"]
    wait_for("a new leader", new_leader, 60, 0.02)
    elected = time.monotonic() - t_signal
    proc.wait(60)
    t_moved = time.monotonic()
    # acks flowing on the new leader for a while: the gap is over
    wait_for("acks after the new leader", lambda: rec.acked_after(t_moved + 0.5), 60, 0.01)
    gap = rec.gap_around(t_signal, t_moved + 0.5)
    c.start(leader)
    wait_for(f"broker {leader} registered again", lambda: leader in c.brokers(), 90, 0.1)
    c.wait_isr(topic, 3)
    return {"leader": leader, "controller": was_controller, "gap": gap, "elected": elected,
            "signal_at": t_signal_wall,
            "last_ack_before": max((a for a in rec.acks if a <= t_signal), default=t_signal)
            - t_signal}


def bench_failover(c, kills, shutdowns, producer=None):
    print(f"\n## failover: an idempotent acks=all producer at {FAILOVER_RATE} records/s; "
          f"ZooKeeper session timeout {SESSION_TIMEOUT_MS} ms", flush=True)
    topic = "failover"
    ensure_offsets_topic(c)
    c.create_topic(topic, 1, 3)
    out = {"sigkill": [], "sigterm": [], "rounds": [], "errors": [], "acked": 0}
    for what, sig, rounds in (("sigkill", signal.SIGKILL, kills),
                              ("sigterm", signal.SIGTERM, shutdowns)):
        for i in range(rounds):
            # A new producer every round: librdkafka keeps a growing reconnect backoff (up to
            # reconnect.backoff.max.ms, 10 s) for a broker it saw go down in an earlier round
            # and has not needed since; if that broker is the next leader, the backoff, not
            # the cluster, would set the figure.
            rec = AckRecorder(c.bootstrap, topic, FAILOVER_RATE, producer).start()
            try:
                res = failover_round(c, rec, topic, sig)
            finally:
                rec.stop()
            out["errors"] += rec.errors[:10]
            out["acked"] += len(rec.acks)
            out[what].append(res["gap"])
            out["rounds"].append({"signal": what, **res})
            print(f"  {what} {i + 1}: leader {res['leader']}"
                  f"{' (the controller)' if res['controller'] else ''}: no ack for "
                  f"{res['gap'] * 1000:.0f} ms; Metadata named a new leader after "
                  f"{res['elected'] * 1000:.0f} ms", flush=True)
    return out


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def spread(xs, scale=1e6, digits=2):
    return " / ".join(f"{x / scale:.{digits}f}" for x in (min(xs), statistics.median(xs), max(xs)))


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def table(r, args):
    rows = []
    t = r.get("throughput")
    if t:
        mock = "mock_rf3_all" in t
        rf1 = statistics.median(t["rf1"])
        for key, what in (("rf1", "factor 1, acks=1"), ("rf3_acks1", "factor 3, acks=1"),
                          ("rf3_all", "factor 3, acks=all (min.insync.replicas=2)")):
            ratio = statistics.median(t[key]) / rf1
            peer = ""
            if mock and key == "rf3_acks1":
                peer = spread(t["mock_rf3_acks1"]) + " M/s"
            elif mock and key == "rf3_all":
                peer = spread(t["mock_rf3_all"]) + " M/s"
            rows.append((f"confluent-kafka producer, {what} (min / median / max)",
                         f"{spread(t[key])} M records/s" + ("" if key == "rf1" else
                                                            f" ({ratio:.2f}x factor 1)"),
                         peer, ">= 0.5x factor 1 (Kafka 2014: 0.42 M/s)" if key == "rf3_all" else
                         ("Kafka 2014: 0.82 M/s" if key == "rf1" else "Kafka 2014: 0.79 M/s")))
    if t and "roundtrip_rf1" in t:
        def rt(runs):
            mid = sorted(runs, key=lambda x: x["p50"])[len(runs) // 2]
            return f"p50 {mid['p50'] / 1e3:.2f} ms, p99 {mid['p99'] / 1e3:.2f} ms"
        rows.append(("one record per produce request, one in flight (flush each): factor 1 "
                     "acks=1 / factor 3 acks=all", f"{rt(t['roundtrip_rf1'])} / "
                     f"{rt(t['roundtrip_rf3_all'])}", "", "report"))
    f = r.get("failover")
    if f:
        limit = SESSION_TIMEOUT_MS / 1000 + 2
        for key, what, target in (
                ("sigkill", "SIGKILL of the leader", f"<= {limit:g} s (session {SESSION_TIMEOUT_MS / 1000:g} s + 2 s)"),
                ("sigterm", "SIGTERM of the leader (controlled shutdown)", "<= 1 s")):
            xs = f[key]
            el = [x["elected"] for x in f["rounds"] if x["signal"] == key]
            if xs:
                tuned = "".join(f", {k}={v}" for k, v in (r.get("failover_producer") or {}).items())
                rows.append((f"unavailability after {what}, {len(xs)} rounds{tuned} (p50 / max)",
                             f"{statistics.median(xs) * 1000:.0f} / {max(xs) * 1000:.0f} ms "
                             f"(Metadata, polled, named a new leader after {statistics.median(el) * 1000:.0f}"
                             f" / {max(el) * 1000:.0f} ms)", "", target))
    lat = r.get("latency")
    if lat:
        def show(runs):
            mid = sorted(runs, key=lambda x: x["p99"])[len(runs) // 2]
            return f"p50 {mid['p50'] / 1e3:.2f} ms, p99 {mid['p99'] / 1e3:.2f} ms"
        rows.append(("produce -> consume latency at 50k records/s, factor 1, acks=1",
                     show(lat["rf1"]), "", "report"))
        rows.append(("produce -> consume latency at 50k records/s, factor 3, acks=all",
                     show(lat["rf3_all"]), show(lat["mock_rf3_all"]) if "mock_rf3_all" in lat
                     else "", "report"))
    return ["| benchmark | klog cluster (3 processes) | librdkafka mock cluster (3 brokers) | target |",
            "|---|---|---|---|", *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--client", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--throughput", action="store_true")
    ap.add_argument("--failover", action="store_true")
    ap.add_argument("--latency", action="store_true")
    ap.add_argument("--mock", action="store_true", help="librdkafka's mock cluster side by side")
    ap.add_argument("--quick", action="store_true", help="smaller, fewer rounds, nothing written")
    ap.add_argument("--records", type=int, help="records per throughput run")
    ap.add_argument("--runs", type=int, help="runs per throughput / latency case")
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--kills", type=int, help="SIGKILL rounds (default 10)")
    ap.add_argument("--shutdowns", type=int, help="SIGTERM rounds (default 10)")
    ap.add_argument("--zk-tick-ms", type=int, default=ZK_TICK_MS, help="ZooKeeper's tickTime")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--failover-producer", metavar="KEY=VALUE", action="append", default=[],
                    help="a librdkafka setting for the failover producer (the targets are judged "
                         "with its defaults: nothing is written with this)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the brokers' and ZooKeeper's logs (their directory is printed)")
    ap.add_argument("--write", action="store_true",
                    help="rewrite the cluster sections of BENCHMARKS.md and README.md")
    args = ap.parse_args()
    if args.client:
        mode, *rest = args.client
        if mode == "produce":
            res = client_produce(rest[0], rest[1], rest[2], int(rest[3]))
        elif mode == "roundtrip":
            res = client_roundtrip(rest[0], rest[1], rest[2], int(rest[3]))
        else:
            res = client_latency(rest[0], rest[1], rest[2], int(rest[3]), int(rest[4]))
        print(json.dumps(res))
        return
    everything = not (args.throughput or args.failover or args.latency)
    with_mock = args.mock or everything
    n = args.records or (200_000 if args.quick else 1_000_000)
    runs = args.runs or (1 if args.quick else 3)
    kills = args.kills if args.kills is not None else (2 if args.quick else 10)
    shutdowns = args.shutdowns if args.shutdowns is not None else (2 if args.quick else 10)

    from cluster.zookeeper import ZooKeeperServer
    from storage_bench import machine

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"# machine: {machine()}\n# {uptime}", flush=True)
    r = {"machine": machine(), "started": started, "uptime_at_start": uptime,
         "command": "PYTHONPATH=src python bench/" + " ".join(
             [os.path.basename(sys.argv[0]), *sys.argv[1:]]),
         "commit": subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip(),
         "session_timeout_ms": SESSION_TIMEOUT_MS, "zk_tick_ms": args.zk_tick_ms, "records": n, "runs": runs,
         "partitions": args.partitions, "settings": list(SETTINGS), "max_in_flight": MAX_IN_FLIGHT,
         "failover_producer": dict(kv.split("=", 1) for kv in args.failover_producer)}
    zk = ZooKeeperServer(tick_time_ms=args.zk_tick_ms).start()
    base = tempfile.mkdtemp(prefix="klog-cluster-bench-")
    c = None
    try:
        c = start_cluster(zk, base)
        if everything or args.throughput:
            r["throughput"] = bench_throughput(c, n, runs, args.partitions, with_mock)
        if everything or args.latency:
            r["latency"] = bench_latency(c, 50_000 if args.quick else 100_000, 50_000, runs,
                                         with_mock)
        if everything or args.failover:
            r["failover"] = bench_failover(c, kills, shutdowns, r["failover_producer"])
    except BaseException:
        if c is not None:
            for n_ in (1, 2, 3):
                path = os.path.join(base, f"b{n_}.out")
                if os.path.exists(path):
                    print(f"--- broker {n_}\n" + open(path).read()[-3000:], file=sys.stderr)
        raise
    finally:
        if c is not None:
            c.stop()
        if args.keep:
            shutil.copy(os.path.join(zk.dir, "zookeeper.log"), base)
            print(f"# logs kept in {base}", flush=True)
        zk.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    r["uptime_at_end"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    lines = table(r, args)
    print("\n" + "\n".join(lines))
    print(f"# {r['uptime_at_end']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(r, fh, indent=1)
    if args.write and r["failover_producer"]:
        print("not written: the failover producer does not run with librdkafka's defaults")
    elif args.write and everything and not args.quick:
        write_docs(r, lines)
    elif args.write and args.failover and not (args.throughput or args.latency or args.quick):
        write_failover_rows(r, lines)


def failover_note(r):
    return (
        f"- Failover: an idempotent acks=all producer at {FAILOVER_RATE} records/s (linger.ms=0, "
        "librdkafka's other defaults; a new producer every round, since librdkafka keeps a "
        "reconnect backoff of up to 10 s for a broker it saw die in an earlier round), every "
        "ack timestamped; the figure of a round is the longest time between two consecutive "
        "acks around the signal (last ack before to first ack after). After every round the old "
        "leader is started again and the next round waits for the ISR to be 3 again "
        "(Metadata). The cluster holds `__consumer_offsets` (50 partitions, factor 3; "
        "`--failover` alone creates it first), so a broker's death or shutdown concerns 51 "
        "partitions. Where the time goes (the brokers' logs, `--keep`): after a SIGKILL the "
        "controller learns of the death when the broker's ZooKeeper session expires, which "
        f"ZooKeeper (tickTime {r['zk_tick_ms']} ms, as Debian's zoo.cfg) does on the first tick "
        f"boundary past the {r['session_timeout_ms']} ms timeout counted from the broker's last "
        "request or ping: 6 to 8 s after the kill for a broker that had just talked to "
        "ZooKeeper, 4 to 8 s in general. The controller then decides from its cached view "
        "(`ControllerContext`) and sends the 51 decisions together (one fenced compare-and-set "
        "each, one round trip), the partitions the dead broker led first and user topics before "
        "`__consumer_offsets`; the new leader serves within about 0.1 s of the expiry. The "
        "rest is librdkafka's, 1 to 2 s: while a partition's leader is down it asks for "
        "metadata once a second (its 1 s topic scan; Metadata names the dead leader until the "
        "expiry), so it learns of the new leader 0 to 1 s after it is there; and as that "
        "answer also leaves out the dead broker (Kafka's does too), librdkafka (2.16) "
        "decommissions that broker's handle in the same pass, which puts the partition, just "
        "moved to the new leader, back on no leader until its next 1 s scan (`debug=topic`: "
        "\"Reverting from preferred replica N to leader -1\", then \"broker is internal: "
        "re-query\"). A SIGTERM moves leadership first "
        "(ControlledShutdown, the same batched writes); the old leader answers "
        "NOT_LEADER_OR_FOLLOWER once it has stepped down, and the client asks for metadata at "
        "once. In brackets: when Metadata, polled every 20 ms from the outside (under load a "
        "little late), named a new leader.")


FAILOVER_ROWS = ("| unavailability after SIGKILL", "| unavailability after SIGTERM")


def write_failover_rows(r, lines):
    """A ``--failover`` run alone: its two rows replace those of the last full run in the
    cluster blocks of BENCHMARKS.md and README.md, with a line naming the run they come from;
    the failover note is rewritten. The other rows stay as the full run measured them."""
    from storage_bench import replace_section

    rows = [line for line in lines if line.startswith(FAILOVER_ROWS)]
    source = (f"Failover rows: `{r['command']}`, {r['started']}, klog at {r.get('commit', '?')}, "
              f"load average {r['uptime_at_start'].split('load average:')[-1].strip()} at the "
              f"start, {r['uptime_at_end'].split('load average:')[-1].strip()} at the end.")
    for name, filename in (("cluster", "BENCHMARKS.md"), ("cluster-figures", "README.md")):
        path = os.path.join(HERE, os.pardir, filename)
        text = open(path).read()
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        if begin not in text or end not in text:
            raise RuntimeError(f"{filename}: no {name} block (run a full --write first)")
        block = text[text.index(begin) + len(begin):text.index(end)].strip("\n").split("\n")
        out, replaced = [], 0
        for line in block:
            if line.startswith("Failover rows: "):
                continue
            if line.startswith(FAILOVER_ROWS):
                line = next(x for x in rows if x.startswith(line[:len(FAILOVER_ROWS[0])]))
                replaced += 1
            elif line.startswith("- Failover:"):
                line = failover_note(r)
            out.append(line)
        if replaced != len(rows):
            raise RuntimeError(f"{filename}: the {name} block lacks the failover rows")
        last_row = max(i for i, line in enumerate(out) if line.startswith("|"))
        out[last_row + 1:last_row + 1] = ["", source]
        out = [line for i, line in enumerate(out) if line or i == 0 or out[i - 1]]
        replace_section(name, out, filename)


def write_docs(r, lines):
    from storage_bench import replace_section

    t = r["throughput"]
    notes = [
        "## Cluster (`python bench/cluster_bench.py`)", "",
        f"Command: `{r.get('command', 'python bench/cluster_bench.py --write')}`.",
        f"Machine: {r['machine']}.",
        f"Run: {r['started']}, klog at {r.get('commit', '?')}; `uptime` at start: `{r['uptime_at_start']}`, at end: "
        f"`{r['uptime_at_end']}`. Everything on one machine: ZooKeeper (Debian's package), "
        "three `klog serve --zookeeper` processes on 127.0.0.1/2/3 "
        f"(`{' '.join('-c ' + x for x in r['settings'])}`), and the client process.", "",
        *lines, "",
        f"- Throughput: {r['records']} distinct 100-byte records a run (a counter and a slice of "
        "random bytes built at every produce() call), one partition, confluent-kafka with "
        "linger.ms=5, batch.size=1 MB, no idempotence; each case a fresh client process, "
        f"{r['runs']} rounds with the cases interleaved, the followers caught up (high "
        "watermark at the log end) before the next case. Factor 1 uses acks=1: with one "
        "replica acks=all means the same, and the cluster's min.insync.replicas=2 would refuse "
        "it. Kafka's 2014 figures (3 machines, 6 partitions): 0.82 M/s without replication, "
        "0.79 M/s factor 3 acks=1, 0.42 M/s factor 3 acks=all (single producer thread).",
        failover_note(r),
        "- One record per request: a producer that waits for each record (flush) before the "
        "next, 1000 records: the round trip of one request, with acks=all the followers' fetch "
        "of it included.",
        "- Latency: a producer at 50 k records/s (1 ms ticks, linger.ms=1) and a consumer "
        "(fetch.wait.max.ms=10) in one client process; the consumer reads from the leader, never "
        "past the high watermark, so factor 3 includes replication to both followers.",
        "- Producers use max.in.flight=5 (the Java producer's default; librdkafka's is 1 000 000 "
        "without idempotence): while an acks=all answer waits for the followers, the broker "
        "appends the connection's next Produce requests (up to 5 waiting answers a connection; "
        "Kafka's broker handles one request of a connection at a time) and answers them in "
        "order; the followers fetch them together.",
        "- Latency rows: the run with the median p99 of the rounds.",
        "- librdkafka's mock cluster (`test.mock.num.brokers=3`, in the client process): the "
        f"topic is auto-created with {t.get('mock_replicas', 3)} replicas in Metadata (the mock "
        "has no controller, so CreateTopics fails), but the mock keeps one log per partition, "
        "answers Produce right after appending whatever `acks` says, and has no followers: its "
        "high watermark is the leader's log end. It models the client and the wire, not "
        "replication: its acks=1 and acks=all rows are the same thing.",
    ]
    replace_section("cluster", notes)
    replace_section("cluster-figures", [
        "A 3-broker cluster (three processes and ZooKeeper) on this 2-core machine, "
        f"`python bench/cluster_bench.py` ({r['started']}, load average "
        f"{r['uptime_at_start'].split('load average:')[-1].strip()} at the start; the notes and "
        "the settings are in [BENCHMARKS.md](BENCHMARKS.md)):", "",
        *lines], "README.md")


if __name__ == "__main__":
    main()
