"""Producer for the embedded broker: Kafka's producer model in-process.

``send`` adds a record to an open batch for its partition and returns a future; a batch goes
to the partition's log when it reaches ``batch.size`` bytes (or ``batch.num.messages``), when
``linger.ms`` has passed since it opened (a sender thread), on ``flush()``, or when someone calls
``.get()`` on one of its futures. ``send_batch`` is the fast path: one native partitioning call
and one batch per partition.

Ordering: records of one producer to one partition are appended in ``send`` order, because
batches are handed to the log under the producer's lock. Thread-safe.
"""
import threading
import time
from collections import namedtuple

from klog.clientconfig import PRODUCER, parse
from klog.errors import (
    KlogError, LogClosedError, RecordTooLargeError, UnknownTopicOrPartitionError,
)
from klog.partitioner import Partitioner

RecordMetadata = namedtuple("RecordMetadata", "topic partition offset timestamp")
BatchMetadata = namedtuple("BatchMetadata", "topic partition base_offset count")
RECORD_OVERHEAD = 21  # varints and attributes of one record, roughly; for batch sizing only
BYTES_LIKE = (bytes, bytearray, memoryview)


class _Batch:
    """Records waiting to be appended to one partition; futures point into it."""
    __slots__ = ("topic", "partition", "values", "keys", "timestamps", "headers", "size",
                 "created", "base_offset", "error", "done", "callbacks")

    def __init__(self, topic, partition, now_ms):
        self.topic = topic
        self.partition = partition
        self.values = []
        self.keys = None          # made a list at the first non-None key
        self.timestamps = None    # made a list at the first explicit timestamp
        self.headers = None       # made a list at the first record with headers
        self.size = 0
        self.created = now_ms
        self.base_offset = -1
        self.error = None
        self.done = threading.Event()
        self.callbacks = None     # index -> [(callback, errback)]


class RecordFuture:
    """The outcome of one ``send``: ``get()`` returns RecordMetadata or raises the error."""
    __slots__ = ("_producer", "_batch", "_index")

    def __init__(self, producer, batch, index):
        self._producer = producer
        self._batch = batch
        self._index = index

    def get(self, timeout=None):
        batch = self._batch
        if not batch.done.is_set():
            self._producer._send_now(batch)
            if not batch.done.wait(timeout):
                raise TimeoutError(f"record not delivered within {timeout} s")
        if batch.error is not None:
            raise batch.error
        ts = batch.timestamps[self._index] if batch.timestamps is not None else batch.created
        return RecordMetadata(batch.topic, batch.partition, batch.base_offset + self._index, ts)

    def done(self):
        return self._batch.done.is_set()

    def succeeded(self):
        return self.done() and self._batch.error is None

    def add_callback(self, callback, errback=None):
        """``callback(metadata)`` once delivered (or ``errback(exc)``); at once if already done."""
        with self._producer._lock:
            if not self._batch.done.is_set():
                cbs = self._batch.callbacks
                if cbs is None:
                    cbs = self._batch.callbacks = {}
                cbs.setdefault(self._index, []).append((callback, errback))
                return self
        self._fire(callback, errback)
        return self

    def _fire(self, callback, errback):
        if self._batch.error is None:
            if callback is not None:
                callback(self.get())
        elif errback is not None:
            errback(self._batch.error)


class Producer:
    """Create with ``broker.producer(config)``; Kafka producer config names apply."""

    def __init__(self, broker, config=None):
        self._broker = broker
        self.config = parse(config, PRODUCER, "producer")
        self._partitioner = Partitioner(self.config["partitioner"])
        codec = self.config["compression.type"]
        self._compression = None if codec == "none" else codec
        self._batch_bytes = self.config["batch.size"]
        self._batch_records = self.config["batch.num.messages"]
        self._max_request = self.config["max.request.size"]
        self._linger_ms = self.config["linger.ms"]
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._batches = {}        # (topic, partition) -> _Batch
        self._counts = {}         # topic -> partition count (refreshed on a miss)
        self._closed = False
        self._sender = threading.Thread(target=self._run_sender, name="klog-producer-sender",
                                        daemon=True)
        self._sender.start()
        broker.register_service(self)

    # -- sending -------------------------------------------------------------------------------
    def send(self, topic, value, key=None, partition=None, timestamp=None, headers=None):
        """Queue one record; returns a RecordFuture. Raises at once for bad input."""
        if value is not None and not isinstance(value, BYTES_LIKE):
            raise TypeError(f"value must be bytes-like or None, not {type(value).__name__}")
        if key is not None and not isinstance(key, BYTES_LIKE):
            raise TypeError(f"key must be bytes-like or None, not {type(key).__name__}")
        n = self._counts.get(topic) or self._partition_count(topic)
        if partition is None:
            partition = self._partitioner.partition(topic, key, n)
        elif isinstance(partition, bool) or not isinstance(partition, int) or not 0 <= partition < n:
            raise UnknownTopicOrPartitionError(
                f"topic {topic!r} has partitions 0..{n - 1}, not {partition!r}")
        size = RECORD_OVERHEAD + (len(value) if value is not None else 0) + (len(key) if key is not None else 0)
        if headers:
            size += _headers_size(headers)
        if size > self._max_request:
            raise RecordTooLargeError(
                f"record of about {size} bytes exceeds max.request.size ({self._max_request})")
        if timestamp is not None and (isinstance(timestamp, bool) or not isinstance(timestamp, int)):
            raise TypeError(f"timestamp must be an int (ms since the epoch), not {type(timestamp).__name__}")
        with self._lock:
            if self._closed:
                raise LogClosedError("producer is closed")
            key_tp = (topic, partition)
            batch = self._batches.get(key_tp)
            if batch is not None and batch.size + size > self._max_request:
                self._append(self._batches.pop(key_tp))
                batch = None
            if batch is None:
                batch = self._batches[key_tp] = _Batch(topic, partition, _now_ms())
                self._wake.notify()
            index = len(batch.values)
            batch.values.append(value)
            if key is not None or batch.keys is not None:
                if batch.keys is None:
                    batch.keys = [None] * index
                batch.keys.append(key)
            if timestamp is not None or batch.timestamps is not None:
                if batch.timestamps is None:
                    batch.timestamps = [batch.created] * index
                batch.timestamps.append(batch.created if timestamp is None else timestamp)
            if headers or batch.headers is not None:
                if batch.headers is None:
                    batch.headers = [None] * index
                batch.headers.append(list(headers) if headers else None)
            batch.size += size
            if batch.size >= self._batch_bytes or index + 1 >= self._batch_records:
                self._append(self._batches.pop(key_tp))
        return RecordFuture(self, batch, index)

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
        n = self._counts.get(topic) or self._partition_count(topic)
        with self._lock:
            if self._closed:
                raise LogClosedError("producer is closed")
            if partition is not None:
                if isinstance(partition, bool) or not isinstance(partition, int) or not 0 <= partition < n:
                    raise UnknownTopicOrPartitionError(
                        f"topic {topic!r} has partitions 0..{n - 1}, not {partition!r}")
                groups = {partition: (values, keys, timestamps)}
            elif keys is None and self._partitioner.custom is None and \
                    self._partitioner.name not in ("round_robin", "random"):
                p = self._partitioner.sticky(topic, n)
                groups = {p: (values, None, timestamps)}
            else:
                parts = self._partitioner.partitions(topic, keys if keys is not None else [None] * len(values), n)
                groups = _group(parts, values, keys, timestamps)
            out = []
            for p, (vals, ks, ts) in groups.items():
                pending = self._batches.pop((topic, p), None)
                if pending is not None:
                    self._append(pending)  # keep send order within the partition
                log = self._broker.log(topic, p)
                for lo, hi in _chunks(vals, ks, self._max_request):
                    base = log.append(vals[lo:hi], ks[lo:hi] if ks is not None else None,
                                      ts[lo:hi] if isinstance(ts, list) else ts,
                                      compression=self._compression)
                    out.append(BatchMetadata(topic, p, base, hi - lo))
                self._partitioner.batch_sent(topic, p, n)
            return out

    def flush(self, timeout=None):
        """Append every queued record now."""
        with self._lock:
            batches = list(self._batches.values())
            self._batches.clear()
            for batch in batches:
                self._append(batch)

    def close(self, timeout=None):
        """Flush, stop the sender thread. Further sends raise."""
        with self._lock:
            if self._closed:
                return
            self.flush()
            self._closed = True
            self._wake.notify_all()
        if self._sender is not threading.current_thread():
            self._sender.join(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def partitions_for(self, topic):
        return list(range(self._partition_count(topic)))

    # -- internals -------------------------------------------------------------------------------
    def _partition_count(self, topic):
        n = self._broker.ensure_topic(topic)
        self._counts[topic] = n
        return n

    def _send_now(self, batch):
        with self._lock:
            if self._batches.get((batch.topic, batch.partition)) is batch:
                self._append(self._batches.pop((batch.topic, batch.partition)))

    def _append(self, batch):
        """Hand one batch to its log and resolve its futures. Caller holds _lock."""
        try:
            log = self._broker.log(batch.topic, batch.partition)
            batch.base_offset = log.append(batch.values, batch.keys, batch.timestamps or batch.created,
                                           batch.headers, compression=self._compression)
        except (KlogError, OSError, TypeError, ValueError) as exc:
            batch.error = exc
        batch.done.set()
        self._partitioner.batch_sent(batch.topic, batch.partition,
                                     self._counts.get(batch.topic, 1))
        if batch.callbacks:
            for index, cbs in batch.callbacks.items():
                future = RecordFuture(self, batch, index)
                for callback, errback in cbs:
                    try:
                        future._fire(callback, errback)
                    except Exception:  # a user callback must not break delivery of the rest
                        pass

    def _run_sender(self):
        """Append batches ``linger.ms`` after they opened."""
        linger = self._linger_ms
        with self._lock:
            while not self._closed:
                if not self._batches:
                    self._wake.wait()
                    continue
                now = _now_ms()
                oldest = min(b.created for b in self._batches.values())
                if now - oldest < linger:
                    self._wake.wait((linger - (now - oldest)) / 1000.0)
                    continue
                for key, batch in list(self._batches.items()):
                    if now - batch.created >= linger:
                        del self._batches[key]
                        self._append(batch)


def _now_ms():
    return time.time_ns() // 1_000_000


def _headers_size(headers):
    size = 0
    try:
        for k, v in headers:
            if not isinstance(k, str):
                raise TypeError(f"header keys must be str, not {type(k).__name__}")
            if v is not None and not isinstance(v, bytes):
                raise TypeError(f"header values must be bytes or None, not {type(v).__name__}")
            size += len(k) + (len(v) if v is not None else 0) + 2
    except (TypeError, ValueError) as exc:
        if isinstance(exc, TypeError) and "header" in str(exc):
            raise
        raise TypeError("headers must be a list of (str, bytes | None) pairs") from None
    return size


def _group(parts, values, keys, timestamps):
    groups = {}
    for i, p in enumerate(parts):
        g = groups.get(p)
        if g is None:
            g = groups[p] = ([], [] if keys is not None else None,
                             [] if isinstance(timestamps, list) else timestamps)
        g[0].append(values[i])
        if keys is not None:
            g[1].append(keys[i])
        if isinstance(timestamps, list):
            g[2].append(timestamps[i])
    return groups


def _chunks(values, keys, limit):
    """[lo, hi) ranges whose records fit in about ``limit`` bytes each."""
    lo, size = 0, 0
    for i, v in enumerate(values):
        s = RECORD_OVERHEAD + (len(v) if v is not None else 0)
        if keys is not None and keys[i] is not None:
            s += len(keys[i])
        if size + s > limit and i > lo:
            yield lo, i
            lo, size = i, 0
        size += s
    yield lo, len(values)
