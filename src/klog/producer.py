"""Producer for the embedded broker: Kafka's producer model in-process.

``send`` adds a record to an open batch for its partition (klog._native.accumulator) and
returns a future; a batch goes to the partition's log when it reaches ``batch.size`` bytes (or
``batch.num.messages``), when ``linger.ms`` has passed since it opened (a sender thread), on
``flush()``, or when someone calls ``.get()`` on one of its futures. ``send_batch`` is the fast
path: one native partitioning call and one batch per partition.

Ordering: records of one producer to one partition are appended in ``send`` order, because
batches are handed to the log under the accumulator's lock. Thread-safe.

Every accepted setting has a meaning here (klog.clientconfig documents each): ``acks`` 1 and all
are met by the one local replica, ``acks=0`` gives offsets of -1 as Kafka's producer does,
``enable.idempotence`` holds by construction (each batch is appended exactly once, in order),
``transactional.id`` raises ConfigError (no transactions yet).

Timeouts: ``future.get(timeout)`` and ``flush(timeout)`` never wait for a network or a broker:
they append the open batch (or all of them) in the calling thread, which succeeds or fails in the
time a local append takes (longer only while another thread's append of the same producer holds
its lock). The timeout cannot cut an append in half, so it bounds nothing further; ``flush``
returns the number of records still queued (0), as confluent-kafka's does.
"""
import threading
from collections import namedtuple

from klog._native import accumulator
from klog._native.accumulator import Accumulator, RecordFuture, chunk_ends
from klog.clock import SYSTEM_CLOCK
from klog.clientconfig import PRODUCER, check_producer, parse
from klog.config import LONG_MAX
from klog.errors import UnknownTopicOrPartitionError
from klog.partitioner import Partitioner

RecordMetadata = namedtuple("RecordMetadata", "topic partition offset timestamp")
BatchMetadata = namedtuple("BatchMetadata", "topic partition base_offset count")
accumulator.RecordMetadata = RecordMetadata
__all__ = ["Producer", "RecordFuture", "UnacknowledgedFuture", "RecordMetadata", "BatchMetadata"]
BYTES_LIKE = (bytes, bytearray, memoryview)


class Producer:
    """Create with ``broker.producer(config)``; Kafka producer config names apply.

    ``send(topic, value, key=None, partition=None, timestamp=None, headers=None)`` queues one
    record and returns a RecordFuture (``get()``, ``done()``, ``add_callback``).
    """

    def __init__(self, broker, config=None):
        self._broker = broker
        self.config = check_producer(config or {}, parse(config, PRODUCER, "producer"))
        self._acked = self.config["acks"] != "0"
        self._partitioner = Partitioner(self.config["partitioner"])
        codec = self.config["compression.type"]
        self._compression = None if codec == "none" else codec
        self._max_request = self.config["max.request.size"]
        self._linger_ms = self.config["linger.ms"]
        self._opened = threading.Event()
        self._stop = threading.Event()
        self._acc = Accumulator(BrokerSink(broker), self._partitioner, self.config["batch.size"],
                                self.config["batch.num.messages"], self._max_request,
                                self._compression, self._opened.set)
        self.send = self._acc.send  # the hot path, straight into native code
        if not self._acked:
            self.send = self._send_unacknowledged
        self._sender = threading.Thread(target=self._run_sender, name="klog-producer-sender",
                                        daemon=True)
        self._sender.start()
        broker.register_service(self)

    def send_batch(self, topic, values, keys=None, partition=None, timestamps=None):
        """Append many records at once: one native partitioning call, then one batch per
        partition (split at ``max.request.size``). Returns a list of BatchMetadata."""
        if isinstance(values, BYTES_LIKE + (str,)):
            raise TypeError("values must be a sequence of bytes-like values, not a single value")
        values = values if isinstance(values, list) else list(values)
        if keys is not None:
            keys = keys if isinstance(keys, list) else list(keys)
            if len(keys) != len(values):
                raise ValueError(f"keys has {len(keys)} items for {len(values)} values")
        if not values:
            return []
        ends = chunk_ends(values, keys, self._max_request)  # checks types and sizes
        timestamps = _check_timestamps(values, timestamps)
        n = self._broker.ensure_topic(topic)
        if partition is not None:
            if isinstance(partition, bool) or not isinstance(partition, int) or not 0 <= partition < n:
                raise UnknownTopicOrPartitionError(
                    f"topic {topic!r} has partitions 0..{n - 1}, not {partition!r}")
            groups = {partition: (values, keys, timestamps, ends)}
        elif keys is None and self._partitioner.custom is None and \
                self._partitioner.name not in ("round_robin", "random", "consistent"):
            groups = {self._partitioner.sticky(topic, n): (values, None, timestamps, ends)}
        else:
            parts = self._partitioner.partitions(topic, keys if keys is not None else [None] * len(values), n)
            groups = _group(parts, values, keys, timestamps)
        out = []
        for p, group in groups.items():
            self._acc.direct(topic, p, self._append_direct, topic, p, group, out)
        if not self._acked:
            out = [m._replace(base_offset=-1) for m in out]
        return out

    def _send_unacknowledged(self, *args, **kwargs):
        return UnacknowledgedFuture(self._acc.send(*args, **kwargs))

    def _append_direct(self, topic, p, group, out):
        vals, ks, ts, ends = group
        if ends is None:  # a partition's share of a keyed batch: plan its own runs
            ends = chunk_ends(vals, ks, self._max_request)
        part = self._broker.partition(topic, p)
        lo = 0
        for hi in ends:
            whole = lo == 0 and hi == len(vals)
            base = part.append(vals if whole else vals[lo:hi],
                              ks if whole or ks is None else ks[lo:hi],
                              ts[lo:hi] if isinstance(ts, list) else ts,
                              compression=self._compression)
            out.append(BatchMetadata(topic, p, base, hi - lo))
            lo = hi

    def topic_changed(self, topic):
        """Called by the broker when a topic gains partitions or is deleted."""
        self._acc.forget_topic(topic)

    def flush(self, timeout=None):
        """Append every queued record now; returns how many are still queued: 0 (see the
        module doc on timeouts)."""
        self._acc.drain()
        return 0

    def close(self, timeout=None):
        """Flush and stop the sender thread. Further sends raise."""
        if self._acc.closed:
            return
        self._acc.close()
        self._stop.set()
        self._opened.set()
        if self._sender is not threading.current_thread():
            self._sender.join(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def partitions_for(self, topic):
        return list(range(self._broker.ensure_topic(topic)))

    def _run_sender(self):
        """Append each batch ``linger.ms`` after it opened."""
        linger = self._linger_ms
        while not self._stop.is_set():
            self._opened.wait()
            self._opened.clear()
            while not self._stop.is_set():
                oldest = self._acc.drain(_now_ms() - linger + 1)
                if oldest < 0:
                    break
                self._stop.wait(max(0.0, (oldest + linger - _now_ms()) / 1000.0))


class BrokerSink:
    """Where the accumulator hands its batches: the broker's partitions. The native
    accumulator knows only this interface (``partition_count``, ``append``), not the Broker."""
    __slots__ = ("broker",)

    def __init__(self, broker):
        self.broker = broker

    def partition_count(self, topic):
        """The topic's partition count, creating it if the broker auto-creates topics."""
        return self.broker.ensure_topic(topic)

    def append(self, topic, partition, values, keys, timestamps, headers, compression):
        """Append one batch; returns its base offset (raises on failure)."""
        return self.broker.partition(topic, partition).append(values, keys, timestamps, headers,
                                                              compression=compression)


class UnacknowledgedFuture:
    """A RecordFuture of an ``acks=0`` producer: as with Kafka's, the metadata carries offset -1
    (the producer does not wait for the broker to say where the record went). Errors the
    embedded append reports at once are still raised."""
    __slots__ = ("_future",)

    def __init__(self, future):
        self._future = future

    def get(self, timeout=None):
        return self._future.get(timeout)._replace(offset=-1)

    def done(self):
        return self._future.done()

    def succeeded(self):
        return self._future.succeeded()

    def exception(self):
        return self._future.exception()

    def add_callback(self, callback, errback=None):
        """``callback(metadata)`` once delivered, or ``errback(exc)``; at once if already done."""
        self._future.add_callback(
            None if callback is None else (lambda md: callback(md._replace(offset=-1))), errback)
        return self


# The producer is a client: its linger clock is the one the native accumulator stamps batches
# with (CLOCK_REALTIME), not the broker's.
_now_ms = SYSTEM_CLOCK.now_ms


def _check_timestamps(values, timestamps):
    """Validate send_batch's timestamps before anything is written. Returns None, an int or a
    list."""
    if timestamps is None:
        return None
    if not isinstance(timestamps, int) or isinstance(timestamps, bool):
        if isinstance(timestamps, (str, bytes)) or not hasattr(timestamps, "__iter__"):
            raise TypeError("timestamps must be an int or a sequence of ints, one per value, "
                            f"not {type(timestamps).__name__}")
        timestamps = list(timestamps)
        if len(timestamps) != len(values):
            raise ValueError(f"timestamps has {len(timestamps)} items for {len(values)} values")
    for i, ts in enumerate(timestamps if isinstance(timestamps, list) else [timestamps]):
        if isinstance(ts, bool) or not isinstance(ts, int):
            raise TypeError(f"timestamps[{i}] must be an int (ms since the epoch), "
                            f"not {type(ts).__name__}")
        if not 0 <= ts <= LONG_MAX:
            raise ValueError(f"timestamps[{i}] must be >= 0 and fit in int64, not {ts}")
    return timestamps


def _group(parts, values, keys, timestamps):
    groups = {}
    for i, p in enumerate(parts):
        g = groups.get(p)
        if g is None:
            g = groups[p] = ([], [] if keys is not None else None,
                             [] if isinstance(timestamps, list) else timestamps, None)
        g[0].append(values[i])
        if keys is not None:
            g[1].append(keys[i])
        if isinstance(timestamps, list):
            g[2].append(timestamps[i])
    return groups


