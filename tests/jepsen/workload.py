"""The workload: Kafka clients against a klog server (or cluster), recording a history.

``python -m jepsen.workload run --bootstrap H:P --topic T --out FILE [...]`` runs, for at most
``--duration`` seconds and ``--max-sends`` values (or until ``--stop-file`` exists):
  cp0..cpN  confluent-kafka producers (acks=all and idempotent by default), each writing unique
            values ``<proc>:<p>:<seq>`` round-robin over the partitions, each outcome recorded:
            ok with its offset, fail (an error that guarantees nothing was written), unknown
            (a timeout, a retriable error, or no answer when the run ended);
  kp0       a kafka-python producer doing the same (the second client in the rotation);
  ca0       a confluent-kafka consumer in assign mode from the log start, recording every record
            and, now and then, a seek back to an earlier offset;
  ka0       a kafka-python consumer in assign mode from the log start;
  cs0       a confluent-kafka consumer in subscribe mode (a group), committing synchronously
            and recording each acknowledged commit and each assignment's committed offset;
            closed and re-created halfway (a restart that must resume at the commit).
then stops by itself. ``final`` reads every partition from the log start to its end offset
(retrying until ``--timeout``) and records ``final`` and ``end`` operations.
Exit status 0 when the run ended by itself; the history is complete either way.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .history import HistoryWriter, value

# confluent-kafka errors after which the record is certainly not in the log.
_DEFINITE = {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE,
             KafkaError.NOT_ENOUGH_REPLICAS, KafkaError.TOPIC_AUTHORIZATION_FAILED,
             KafkaError.INVALID_REQUIRED_ACKS, KafkaError._UNKNOWN_PARTITION,
             KafkaError._UNKNOWN_TOPIC, KafkaError._INVALID_ARG}


def _quiet(_err):          # librdkafka's "broker down" errors are expected under faults
    pass


QUIET = {"error_cb": _quiet, "log_level": 2}   # keep the run's log readable under faults


def create_topic(bootstrap: str, topic: str, partitions: int, replication: int, timeout: float):
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    deadline = time.monotonic() + timeout
    while True:
        fut = admin.create_topics([NewTopic(topic, partitions, replication)],
                                  operation_timeout=5, request_timeout=5)[topic]
        try:
            fut.result()
            return
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return
            if time.monotonic() > deadline:
                raise


class Run:
    def __init__(self, a, hist: HistoryWriter):
        self.a, self.h = a, hist
        self.stop = threading.Event()
        self.sent = 0
        self.lock = threading.Lock()
        self.rng = random.Random(a.seed)

    def take(self) -> bool:
        """Reserve one send within --max-sends."""
        with self.lock:
            if self.sent >= self.a.max_sends:
                self.stop.set()
                return False
            self.sent += 1
            return True

    def pace(self):
        time.sleep(1.0 / self.a.rate)

    # -- producers -----------------------------------------------------------------------------
    def confluent_producer(self, name: str):
        a = self.a
        conf = {"bootstrap.servers": a.bootstrap, "acks": a.acks, "linger.ms": 5,
                "message.timeout.ms": a.send_timeout_ms, "request.timeout.ms": 3000,
                "reconnect.backoff.max.ms": 500, **QUIET}
        if a.acks == "all":
            conf["enable.idempotence"] = True
        if os.environ.get("JEPSEN_RDKAFKA_DEBUG"):     # e.g. "eos,msg": librdkafka's own log
            conf.update({"debug": os.environ["JEPSEN_RDKAFKA_DEBUG"], "log_level": 7})
            conf.pop("error_cb", None)
        prod = Producer(conf)
        pending: set[str] = set()

        def report(err, msg, v, p):
            pending.discard(v)
            if err is None:
                off = msg.offset()
                self.h.write("send", name, p=p, v=v, status="ok",
                             offset=off if off is not None and off >= 0 else -1)
            else:
                status = "fail" if err.code() in _DEFINITE else "unknown"
                self.h.write("send", name, p=p, v=v, status=status, error=err.name())

        seq = 0
        while not self.stop.is_set() and self.take():
            p = seq % a.partitions
            v = value(name, p, seq)
            pending.add(v)
            while True:
                try:
                    prod.produce(a.topic, v.encode(), partition=p,
                                 on_delivery=lambda err, msg, v=v, p=p: report(err, msg, v, p))
                    break
                except BufferError:
                    prod.poll(0.1)
                except KafkaException as exc:     # refused before it left: certainly not stored
                    pending.discard(v)
                    self.h.write("send", name, p=p, v=v, status="fail",
                                 error=exc.args[0].name())
                    break
            prod.poll(0)
            seq += 1
            self.pace()
        prod.flush(a.flush_timeout)
        for v in list(pending):       # no answer before the run ended: may or may not be stored
            _, p, _ = v.rsplit(":", 2)
            self.h.write("send", name, p=int(p), v=v, status="unknown", error="no answer")

    def kafka_python_producer(self, name: str):
        from kafka import KafkaProducer
        from kafka.errors import KafkaError as KPError

        a = self.a
        acks = "all" if a.acks == "all" else int(a.acks)
        prod = KafkaProducer(bootstrap_servers=a.bootstrap, acks=acks,
                             enable_idempotence=(a.acks == "all"), linger_ms=5,
                             request_timeout_ms=3000, delivery_timeout_ms=a.send_timeout_ms,
                             max_block_ms=2000, reconnect_backoff_max_ms=500)
        pending: set[str] = set()
        lock = threading.Lock()

        def ok(v, p, md):      # kafka-python calls f(*args, result)
            with lock:
                pending.discard(v)
            off = md.offset if md.offset is not None and md.offset >= 0 else -1
            self.h.write("send", name, p=p, v=v, status="ok", offset=off)

        def bad(v, p, exc):
            with lock:
                pending.discard(v)
            definite = isinstance(exc, KPError) and type(exc).__name__ in (
                "MessageSizeTooLargeError", "NotEnoughReplicasError",
                "TopicAuthorizationFailedError", "InvalidRequiredAcksError")
            self.h.write("send", name, p=p, v=v, status="fail" if definite else "unknown",
                         error=type(exc).__name__)

        seq = 0
        while not self.stop.is_set() and self.take():
            p = seq % a.partitions
            v = value(name, p, seq)
            with lock:
                pending.add(v)
            try:
                fut = prod.send(a.topic, v.encode(), partition=p)
                fut.add_callback(ok, v, p)
                fut.add_errback(bad, v, p)
            except Exception as exc:          # buffer full / metadata timeout: never handed over
                with lock:
                    pending.discard(v)
                self.h.write("send", name, p=p, v=v, status="fail", error=type(exc).__name__)
            seq += 1
            self.pace()
        try:
            prod.flush(timeout=a.flush_timeout)
        except Exception:
            pass
        try:
            prod.close(timeout=1)
        except Exception:     # KafkaTimeoutError: batches still unanswered, recorded below
            pass
        with lock:
            left = list(pending)
        for v in left:
            _, p, _ = v.rsplit(":", 2)
            self.h.write("send", name, p=int(p), v=v, status="unknown", error="no answer")

    # -- consumers -----------------------------------------------------------------------------
    def _record(self, name, mode, msgs):
        for m in msgs:
            if m.error() is None:
                self.h.write("poll", name, mode=mode, p=m.partition(), offset=m.offset(),
                             v=m.value().decode(errors="replace"))

    def confluent_assign(self, name: str):
        a = self.a
        c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": f"{name}-unused",
                      "enable.auto.commit": False, **QUIET,
                      "reconnect.backoff.max.ms": 500})
        c.assign([TopicPartition(a.topic, p, 0) for p in range(a.partitions)])
        for p in range(a.partitions):
            self.h.write("seek", name, p=p, offset=0)
        last: dict[int, int] = {}
        next_seek = time.monotonic() + 2.0
        while not self.stop.is_set():
            msgs = c.consume(200, 0.2)
            self._record(name, "assign", msgs)
            for m in msgs:
                if m.error() is None:
                    last[m.partition()] = m.offset()
            if time.monotonic() > next_seek and last:
                p = self.rng.choice(sorted(last))
                off = self.rng.randint(0, last[p])
                try:
                    c.seek(TopicPartition(a.topic, p, off))
                    self.h.write("seek", name, p=p, offset=off)
                except KafkaException:
                    pass
                next_seek = time.monotonic() + 2.0
        c.close()

    def kafka_python_assign(self, name: str):
        from kafka import KafkaConsumer, TopicPartition as KTP

        a = self.a
        c = KafkaConsumer(bootstrap_servers=a.bootstrap, enable_auto_commit=False,
                          group_id=None, request_timeout_ms=5000,
                          reconnect_backoff_max_ms=500)
        tps = [KTP(a.topic, p) for p in range(a.partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        for p in range(a.partitions):
            self.h.write("seek", name, p=p, offset=0)
        while not self.stop.is_set():
            try:
                batch = c.poll(timeout_ms=200)
            except Exception:
                continue
            for tp, recs in batch.items():
                for rec in recs:
                    self.h.write("poll", name, mode="assign", p=tp.partition, offset=rec.offset,
                                 v=rec.value.decode(errors="replace"))
        c.close()

    def confluent_subscribe(self, name: str):
        a = self.a
        half = time.monotonic() + a.duration / 2
        restarted = False
        while not self.stop.is_set():
            c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": a.group,
                          "enable.auto.commit": False, "auto.offset.reset": "earliest",
                          "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
                          **QUIET, "reconnect.backoff.max.ms": 500})

            def on_assign(consumer, parts):
                try:
                    committed = consumer.committed(parts, timeout=5)
                except KafkaException:
                    committed = [TopicPartition(tp.topic, tp.partition, -1) for tp in parts]
                for tp in committed:
                    self.h.write("assign", name, p=tp.partition,
                                 offset=tp.offset if tp.offset >= 0 else -1)

            c.subscribe([a.topic], on_assign=on_assign)
            n = 0
            while not self.stop.is_set() and (restarted or time.monotonic() < half):
                msgs = c.consume(200, 0.2)
                self._record(name, "subscribe", msgs)
                n += sum(1 for m in msgs if m.error() is None)
                if n >= 50:
                    n = 0
                    try:
                        for tp in c.commit(asynchronous=False) or []:
                            if tp.error is None and tp.offset >= 0:
                                self.h.write("commit", name, group=a.group, p=tp.partition,
                                             offset=tp.offset)
                    except KafkaException:
                        pass          # not acknowledged: not recorded
            c.close()
            if not restarted:
                self.h.write("restart", name)
            restarted = True


def run(a) -> int:
    with HistoryWriter(a.out) as h:
        create_topic(a.bootstrap, a.topic, a.partitions, a.replication, 30)
        r = Run(a, h)
        clients = [(f"cp{i}", r.confluent_producer) for i in range(a.producers)]
        if a.kafka_python:
            clients += [("kp0", r.kafka_python_producer), ("ka0", r.kafka_python_assign)]
        clients += [("ca0", r.confluent_assign), ("cs0", r.confluent_subscribe)]
        crashed = []
        default_hook = threading.excepthook

        def hook(args):                 # a client that dies makes the run fail, loudly
            crashed.append(args.thread.name if args.thread else "?")
            default_hook(args)
        threading.excepthook = hook
        threads = [threading.Thread(target=fn, args=(name,), name=name, daemon=True)
                   for name, fn in clients]
        for t in threads:
            t.start()
        deadline = time.monotonic() + a.duration
        while not r.stop.wait(0.2) and time.monotonic() < deadline:
            if a.stop_file and os.path.exists(a.stop_file):    # the runner says: enough
                break
        r.stop.set()
        for t in threads:
            t.join(a.flush_timeout + 30)
        stuck = [t.name for t in threads if t.is_alive()]
        print(json.dumps({"sent": r.sent, "stuck": stuck, "crashed": crashed}), flush=True)
        return 1 if stuck or crashed else 0


def final_read(a) -> int:
    """Every record of every partition from the log start to the end offset, retried until
    --timeout (the cluster may still be recovering)."""
    with HistoryWriter(a.out) as h:
        deadline = time.monotonic() + a.timeout
        c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "final-read",
                      "enable.auto.commit": False, **QUIET})
        ends, missing = {}, {}
        for p in range(a.partitions):
            while p not in ends and p not in missing:
                try:
                    ends[p] = c.get_watermark_offsets(TopicPartition(a.topic, p), timeout=5)[1]
                except KafkaException as exc:
                    if time.monotonic() > deadline:
                        missing[p] = exc.args[0].name()     # nothing to read: the run says so
        c.assign([TopicPartition(a.topic, p, 0) for p in ends])
        pos = dict.fromkeys(ends, 0)
        while any(pos[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            for m in c.consume(500, 0.5):
                if m.error() is None:
                    h.write("final", "final", p=m.partition(), offset=m.offset(),
                            v=m.value().decode(errors="replace"))
                    pos[m.partition()] = max(pos[m.partition()], m.offset() + 1)
        for p, end in ends.items():
            h.write("end", "final", p=p, offset=end)
        c.close()
        short = {p: (pos[p], ends[p]) for p in ends if pos[p] < ends[p]}
        print(json.dumps({"ends": ends, "short": short, "missing": missing}), flush=True)
        return 1 if short or missing else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jepsen.workload")
    ap.add_argument("mode", choices=["run", "final"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--out", required=True, help="history file (appended to)")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--replication", type=int, default=1)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--stop-file", default=None, help="run: stop early once this file exists")
    ap.add_argument("--max-sends", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=100.0, help="sends/s per producer")
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--acks", default="all", choices=["all", "1", "0"])
    ap.add_argument("--send-timeout-ms", type=int, default=30000)
    ap.add_argument("--flush-timeout", type=float, default=30.0)
    ap.add_argument("--no-kafka-python", dest="kafka_python", action="store_false")
    ap.add_argument("--group", default="jepsen")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0, help="final read: give up after")
    a = ap.parse_args(argv)
    return run(a) if a.mode == "run" else final_read(a)


if __name__ == "__main__":
    sys.exit(main())
