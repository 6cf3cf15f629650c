"""Client side of bench/wire_bench.py: one measurement per process, its result as JSON on stdout.

    python bench/wire_clients.py MODE BOOTSTRAP N [RATE]

BOOTSTRAP "mock" means librdkafka's in-process mock cluster (test.mock.num.brokers=1).
Every record is 100 bytes; topics are "bench" (throughput) and "latency".
"""
import json
import logging
import socket
import struct
import sys
import time

VALUE = b"v" * 100
TOPIC = "bench"


def mock_cluster(config, brokers=1):
    """A producer (with ``config``) hosting librdkafka's mock cluster of ``brokers`` brokers,
    and the cluster's bootstrap address (read from the notice librdkafka logs when it starts
    the cluster)."""
    import confluent_kafka as ck

    found = []

    class Grab(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if "Mock cluster enabled" in msg:
                found.append(msg.rsplit(" ", 1)[-1])

    logger = logging.getLogger("klog-bench-mock")
    logger.addHandler(Grab())
    logger.setLevel(logging.INFO)
    p = ck.Producer({"test.mock.num.brokers": brokers, **config, "logger": logger})
    deadline = time.monotonic() + 10
    while not found and time.monotonic() < deadline:
        p.poll(0.05)
    if not found:
        raise RuntimeError("no mock cluster address logged")
    return p, found[0]


PRODUCER = {"linger.ms": 5, "batch.size": 1_000_000, "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 4_000_000, "acks": 1, "enable.idempotence": False}
# linger.ms=0 makes librdkafka send a request per few records with no limit in flight; at
# 50k records/s that is more requests than the Python server answers (~4k/s here).
LATENCY_PRODUCER = {"linger.ms": 1, "acks": 1, "enable.idempotence": False}
# librdkafka backs a partition's fetcher off for fetch.queue.backoff.ms (default 1 s) whenever
# its local queue is full, which a Python loop that builds one Message per record keeps hitting.
CONSUMER = {"enable.auto.commit": False, "fetch.queue.backoff.ms": 1}


def produce_confluent(p, n):
    t0 = time.perf_counter()
    produce, poll = p.produce, p.poll
    for _ in range(n):
        while True:
            try:
                produce(TOPIC, VALUE, partition=0)
                break
            except BufferError:   # the local queue is full: let deliveries drain it
                poll(0.001)
    left = p.flush(120)
    if left:
        raise RuntimeError(f"{left} records not delivered")
    return {"seconds": time.perf_counter() - t0, "records": n}


def timed_consume(next_chunk, n):
    """Call ``next_chunk(left)`` (records it got) until n records are in. The clock starts once
    the first chunk is in, so connecting and the first fetch aren't timed (nor counted)."""
    got, timed, t0 = 0, 0, None
    while got < n:
        k = next_chunk(n - got)
        if not k:
            raise RuntimeError(f"stalled after {got} records")
        got += k
        if t0 is None:
            t0 = time.perf_counter()
        else:
            timed += k
    return {"seconds": time.perf_counter() - t0, "records": timed, "total": got}


def consume_confluent(bootstrap, n):
    import confluent_kafka as ck

    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "wire-bench", **CONSUMER})
    low, high = c.get_watermark_offsets(ck.TopicPartition(TOPIC, 0), 10)
    c.assign([ck.TopicPartition(TOPIC, 0, low)])

    def chunk(left):
        msgs = c.consume(min(10_000, left), 10.0)
        for m in msgs:
            if m.error() is not None:
                raise RuntimeError(str(m.error()))
        return len(msgs)

    # the mock cluster keeps only the last ~5 MB of a partition
    result = timed_consume(chunk, min(n, high - low))
    c.close()
    return result


def consume_confluent_default(bootstrap, n):
    """A consumer as an application writes it: librdkafka's default settings, a group
    subscription, ``consume(10000)``. librdkafka stops fetching a partition for
    fetch.queue.backoff.ms (1 s) once its local queue holds queued.min.messages (100 000), which
    this loop empties in about a tenth of that: past 100 000 records the client sets the pace
    (``debug=fetch`` logs "Fetch backoff for 1000ms: Local: Queue full")."""
    import uuid

    import confluent_kafka as ck

    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "wire-bench-" + uuid.uuid4().hex,
                     "auto.offset.reset": "earliest"})
    low, high = c.get_watermark_offsets(ck.TopicPartition(TOPIC, 0), 10)
    c.subscribe([TOPIC])

    def chunk(left):
        msgs = c.consume(min(10_000, left), 10.0)
        for m in msgs:
            if m.error() is not None:
                raise RuntimeError(str(m.error()))
        return len(msgs)

    result = timed_consume(chunk, min(n, high - low))   # the mock cluster keeps ~5 MB
    c.close()
    return result


def drain_confluent(bootstrap, n):
    """The Python client's own ceiling: let librdkafka queue the records first, then time only
    handing them to Python (no server in the timed part)."""
    import confluent_kafka as ck

    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "wire-bench", **CONSUMER,
                     "queued.min.messages": n + 1, "queued.max.messages.kbytes": (2 << 20) - 1})
    c.assign([ck.TopicPartition(TOPIC, 0, 0)])
    first = c.consume(1, 10.0)
    deadline = time.monotonic() + 60
    while c.get_watermark_offsets(ck.TopicPartition(TOPIC, 0), 10)[1] < n:
        if time.monotonic() > deadline:
            raise RuntimeError("fewer records than asked for")
        time.sleep(0.1)
    time.sleep(max(1.0, n / 300_000))   # lets the fetcher fill the local queue
    t0 = time.perf_counter()
    got = len(first)
    while got < n:
        got += len(c.consume(min(10_000, n - got), 10.0))
    seconds = time.perf_counter() - t0
    c.close()
    return {"seconds": seconds, "records": got - len(first)}


def latency_confluent(bootstrap, n, rate, producer=None):
    """Produce at a fixed rate (a tick per ms) and consume in the same loop; each value carries
    its send time."""
    import confluent_kafka as ck

    p = producer or ck.Producer({"bootstrap.servers": bootstrap, **LATENCY_PRODUCER})
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "wire-lat",
                     "fetch.wait.max.ms": 10, "enable.auto.commit": False})
    c.assign([ck.TopicPartition("latency", 0, ck.OFFSET_END)])
    # Until the consumer has resolved its position, records would be missed: wait until a
    # warm-up record comes back.
    deadline = time.monotonic() + 30
    while not any(m.error() is None for m in c.consume(10, 0.05)):
        p.produce("latency", b"warm-up", partition=0)
        p.poll(0)
        if time.monotonic() > deadline:
            raise RuntimeError("the latency consumer never saw a record")
    lat, sent, per_tick = [], 0, max(1, rate // 1000)
    start = time.perf_counter()
    while len(lat) < n:
        if sent < n:
            for _ in range(per_tick):
                p.produce("latency", time.perf_counter_ns().to_bytes(8, "big") + b"x" * 92,
                          partition=0)
            sent += per_tick
        p.poll(0)
        for m in c.consume(1000, 0):
            if m.error() is None and len(m.value()) == 100:   # not a late warm-up record
                lat.append(time.perf_counter_ns() - int.from_bytes(m.value()[:8], "big"))
        time.sleep(max(0.0, start + sent / rate - time.perf_counter()))
        if time.perf_counter() - start > n / rate + 30:
            raise RuntimeError(f"only {len(lat)} of {n} records came back")
    c.close()
    lat.sort()
    return {"p50": lat[len(lat) // 2] / 1e3, "p99": lat[int(len(lat) * 0.99)] / 1e3,
            "records": len(lat)}


def consume_kafka_python(bootstrap, n):
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                      max_partition_fetch_bytes=4 << 20, fetch_max_bytes=16 << 20)
    tp = TopicPartition(TOPIC, 0)
    c.assign([tp])
    c.seek(tp, 0)
    result = timed_consume(lambda left: sum(
        len(v) for v in c.poll(timeout_ms=10_000, max_records=min(10_000, left)).values()), n)
    c.close()
    return result


def consume_aiokafka(bootstrap, n):
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def start():   # aiokafka objects are made inside their loop
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             max_partition_fetch_bytes=4 << 20, fetch_max_bytes=16 << 20)
        await c.start()
        tp = TopicPartition(TOPIC, 0)
        c.assign([tp])
        c.seek(tp, 0)
        return c

    loop = asyncio.new_event_loop()
    c = loop.run_until_complete(start())
    try:
        return timed_consume(lambda left: sum(len(v) for v in loop.run_until_complete(
            c.getmany(timeout_ms=10_000, max_records=min(10_000, left))).values()), n)
    finally:
        loop.run_until_complete(c.stop())
        loop.close()


# -- the server's own ceiling: pre-built batches over the bare protocol, no Kafka client ------------
def _call(sock, frame):
    sock.sendall(frame)
    size = struct.unpack(">i", _recv(sock, 4))[0]
    return _recv(sock, size)


def _recv(sock, n):
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            raise ConnectionError("server closed the connection")
        got += k
    return buf


def produce_raw(bootstrap, n, per_batch=10_000, in_flight=4):
    """Produce v7 requests, each one 10 000-record batch, `in_flight` requests pipelined."""
    from klog._native.batch import build_batch
    from klog.protocol.frames import encode_request
    from klog.protocol.messages import ApiKey

    batch = build_batch([VALUE] * per_batch)
    body = {"transactional_id": None, "acks": 1, "timeout_ms": 30_000,
            "topic_data": [{"name": TOPIC, "partition_data": [{"index": 0, "records": batch}]}]}
    frame = encode_request(ApiKey.PRODUCE, 7, 1, "raw", body).getvalue()
    host, port = bootstrap.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    requests = n // per_batch
    t0 = time.perf_counter()
    sent = answered = 0
    while answered < requests:
        while sent < requests and sent - answered < in_flight:
            sock.sendall(frame)
            sent += 1
        size = struct.unpack(">i", _recv(sock, 4))[0]
        _recv(sock, size)
        answered += 1
    seconds = time.perf_counter() - t0
    sock.close()
    return {"seconds": seconds, "records": requests * per_batch}


def consume_raw(bootstrap, n):
    """Fetch v11 requests of up to 8 MiB, walking batch headers for the next offset."""
    from klog.protocol.frames import decode_response, encode_request
    from klog.protocol.messages import ApiKey

    host, port = bootstrap.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    offset, got, nbytes = 0, 0, 0
    t0 = time.perf_counter()
    while got < n:
        body = {"replica_id": -1, "max_wait_ms": 500, "min_bytes": 1, "max_bytes": 8 << 20,
                "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                "topics": [{"topic": TOPIC, "partitions": [
                    {"partition": 0, "current_leader_epoch": -1, "fetch_offset": offset,
                     "log_start_offset": -1, "partition_max_bytes": 8 << 20}]}],
                "forgotten_topics_data": [], "rack_id": ""}
        raw = _call(sock, encode_request(ApiKey.FETCH, 11, 1, "raw", body).getvalue())
        _, resp = decode_response(ApiKey.FETCH, 11, memoryview(raw))
        records = resp["responses"][0]["partitions"][0]["records"]
        pos, start = 0, offset
        while pos + 61 <= len(records):
            base, length = struct.unpack_from(">qi", records, pos)
            if pos + 12 + length > len(records):
                break
            last_delta = struct.unpack_from(">i", records, pos + 23)[0]
            offset = base + last_delta + 1
            pos += 12 + length
        got += offset - start
        nbytes += pos
    seconds = time.perf_counter() - t0
    sock.close()
    return {"seconds": seconds, "records": got, "bytes": nbytes}


def main():
    mode, bootstrap, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "produce":
        import confluent_kafka as ck

        if bootstrap == "mock":
            p, _ = mock_cluster(PRODUCER)
        else:
            p = ck.Producer({"bootstrap.servers": bootstrap, **PRODUCER})
        result = produce_confluent(p, n)
    elif mode == "consume":
        if bootstrap == "mock":   # fill the mock cluster, then read it back
            p, bootstrap = mock_cluster(PRODUCER)
            produce_confluent(p, n)
        result = consume_confluent(bootstrap, n)
    elif mode == "latency":
        producer = None
        if bootstrap == "mock":
            producer, bootstrap = mock_cluster(LATENCY_PRODUCER)
        result = latency_confluent(bootstrap, n, int(sys.argv[4]), producer)
    elif mode == "consume-default":
        if bootstrap == "mock":
            p, bootstrap = mock_cluster(PRODUCER)
            produce_confluent(p, n)
        result = consume_confluent_default(bootstrap, n)
    elif mode == "consume-drain":
        result = drain_confluent(bootstrap, n)
    elif mode == "consume-kafka-python":
        result = consume_kafka_python(bootstrap, n)
    elif mode == "consume-aiokafka":
        result = consume_aiokafka(bootstrap, n)
    elif mode == "produce-raw":
        result = produce_raw(bootstrap, n)
    elif mode == "consume-raw":
        result = consume_raw(bootstrap, n)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
