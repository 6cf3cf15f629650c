"""Producer send() over the wire backend against a bare confluent-kafka loop (the ceiling).

Both send N 100-byte records to a ``klog serve`` (ServerThread) started here, linger.ms=5, and
wait for every delivery report; the confluent loop uses a no-op on_delivery callback, since a
klog future needs the report. Run: ``PYTHONPATH=src python bench/wire_send.py [N]``.
"""
import sys
import tempfile
import time

import confluent_kafka as ck

import klog
from klog.server import ServerThread


def main(n=200_000):
    value = b"x" * 100
    server = ServerThread(tempfile.mkdtemp(), {"num.partitions": 1}).start()
    try:
        client = klog.connect(f"kafka://{server.address}")
        client.create_topic("raw", 1)
        client.create_topic("klog", 1)
        raw = ck.Producer({"bootstrap.servers": server.address, "linger.ms": 5})
        noop = lambda err, msg: None  # noqa: E731
        t = time.perf_counter()
        for _ in range(n):
            while True:
                try:
                    raw.produce("raw", value, on_delivery=noop)
                    break
                except BufferError:
                    raw.poll(0.01)
        raw.flush()
        raw_rate = n / (time.perf_counter() - t)
        producer = client.producer({"linger.ms": 5})
        t = time.perf_counter()
        for _ in range(n):
            producer.send("klog", value)
        producer.flush()
        ours = n / (time.perf_counter() - t)
        producer.close()
        print(f"confluent-kafka produce+callback: {raw_rate:,.0f} rec/s   "
              f"klog wire send: {ours:,.0f} rec/s   ratio {ours / raw_rate:.2f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
