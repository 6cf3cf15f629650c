"""The producer's record accumulator: one open batch per partition, filled one ``send`` at a time.

Native because ``send`` is the per-record hot path: a Python-level lock alone costs ~300 ns on
this machine, so the lock here is CPython's C lock, taken without a Python call, and the GIL is
dropped only to wait for it.

Concurrency: every method is thread-safe. A full batch is appended to its log while the lock is
held, so one producer's records reach each partition in ``send`` order. Delivery callbacks run
after the lock is released, so a callback may call ``send``.
"""
cimport cython
from cpython.pythread cimport (
    NOWAIT_LOCK, WAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock, PyThread_free_lock,
    PyThread_release_lock, PyThread_type_lock,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, int64_t
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec

from klog._native.partitioner cimport murmur2

from klog.errors import KlogError, LogClosedError, RecordTooLargeError, UnknownTopicOrPartitionError

cdef tuple BYTES_LIKE = (bytes, bytearray, memoryview)
cdef Py_ssize_t RECORD_OVERHEAD = 21  # varints and attributes of one record, for sizing only

cdef enum:
    MURMUR2 = 0        # keyed: Java's murmur2; unkeyed: sticky
    PYTHON = 1         # anything else: the Python Partitioner decides


cdef inline int64_t now_ms() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000 + ts.tv_nsec // 1000000


@cython.final
cdef class OpenBatch:
    """Records waiting to be appended to one partition; futures point into it."""
    cdef readonly str topic
    cdef readonly int partition
    cdef readonly list values
    cdef readonly list keys          # None until the first record with a key
    cdef readonly list timestamps    # None until the first explicit timestamp
    cdef readonly list headers       # None until the first record with headers
    cdef readonly Py_ssize_t size
    cdef readonly int64_t created
    cdef readonly int64_t base_offset
    cdef readonly object error
    cdef readonly bint done
    cdef dict callbacks              # index -> [(callback, errback)]

    def __cinit__(self, str topic, int partition, int64_t created):
        self.topic = topic
        self.partition = partition
        self.values = []
        self.created = created
        self.base_offset = -1


RecordMetadata = None  # set by klog.producer (a namedtuple) to keep one definition


@cython.freelist(256)
@cython.final
cdef class RecordFuture:
    """The outcome of one ``send``: ``get()`` returns RecordMetadata or raises the error.
    ``get`` sends the record's batch at once if it is still open (no need to wait for linger)."""
    cdef readonly OpenBatch batch
    cdef readonly Py_ssize_t index
    cdef Accumulator acc

    def get(self, timeout=None):
        cdef OpenBatch b = self.batch
        if not b.done:
            self.acc.send_now(b)
        if b.error is not None:
            raise b.error
        ts = b.timestamps[self.index] if b.timestamps is not None else b.created
        return RecordMetadata(b.topic, b.partition, b.base_offset + self.index, ts)

    def done(self):
        return self.batch.done

    def succeeded(self):
        return self.batch.done and self.batch.error is None

    def exception(self):
        return self.batch.error

    def add_callback(self, callback, errback=None):
        """``callback(metadata)`` once delivered, or ``errback(exc)``; at once if already done."""
        self.acc.lock_acquire()
        try:
            if not self.batch.done:
                if self.batch.callbacks is None:
                    self.batch.callbacks = {}
                self.batch.callbacks.setdefault(self.index, []).append((callback, errback))
                return self
        finally:
            self.acc.lock_release()
        self.fire(callback, errback)
        return self

    cdef fire(self, callback, errback):
        if self.batch.error is None:
            if callback is not None:
                callback(self.get())
        elif errback is not None:
            errback(self.batch.error)


@cython.final
cdef class TopicState:
    cdef int n                  # partition count
    cdef list batches           # partition -> OpenBatch or None
    cdef int sticky             # partition for records without a key (KIP-480)


@cython.final
cdef class Accumulator:
    cdef PyThread_type_lock lock
    cdef object sink            # partition_count(topic), append(topic, partition, ...) -> base offset
    cdef object partitioner     # klog.partitioner.Partitioner
    cdef int strategy
    cdef dict topics
    cdef Py_ssize_t batch_bytes, batch_records, max_request
    cdef object compression
    cdef object on_open         # called (outside the lock) when a batch opens: wakes the sender
    cdef list completed         # batches with callbacks to run once the lock is released
    cdef dict open_batches      # id -> OpenBatch, for drain()
    cdef readonly bint closed

    def __cinit__(self):
        self.lock = PyThread_allocate_lock()
        if self.lock == NULL:
            raise MemoryError()

    def __dealloc__(self):
        if self.lock != NULL:
            PyThread_free_lock(self.lock)

    def __init__(self, sink, partitioner, Py_ssize_t batch_bytes, Py_ssize_t batch_records,
                 Py_ssize_t max_request, compression, on_open):
        self.sink = sink
        self.partitioner = partitioner
        self.strategy = MURMUR2 if partitioner.custom is None and partitioner.name == "murmur2_random" else PYTHON
        self.topics = {}
        self.batch_bytes = batch_bytes
        self.batch_records = batch_records
        self.max_request = max_request
        self.compression = compression
        self.on_open = on_open
        self.completed = []
        self.open_batches = {}

    cdef inline void lock_acquire(self):
        if not PyThread_acquire_lock(self.lock, NOWAIT_LOCK):
            with nogil:
                PyThread_acquire_lock(self.lock, WAIT_LOCK)

    cdef inline void lock_release(self):
        PyThread_release_lock(self.lock)

    cdef TopicState topic_state(self, str topic):
        cdef TopicState st = self.topics.get(topic)
        if st is None:
            st = TopicState()
            st.n = self.sink.partition_count(topic)
            st.batches = [None] * st.n
            st.sticky = self.partitioner.sticky(topic, st.n)
            self.topics[topic] = st
        return st

    cpdef RecordFuture send(self, str topic, value, key=None, partition=None, timestamp=None,
                            headers=None):
        """Queue one record; returns its RecordFuture. Raises at once for bad input."""
        cdef TopicState st
        cdef OpenBatch b
        cdef RecordFuture f
        cdef Py_ssize_t size = RECORD_OVERHEAD, index
        cdef int p
        cdef bint opened = False
        if value is not None:
            if PyBytes_CheckExact(value):
                size += PyBytes_GET_SIZE(value)
            elif isinstance(value, BYTES_LIKE):
                if isinstance(value, memoryview) and not value.c_contiguous:
                    raise TypeError("value must be a C-contiguous memoryview")
                size += len(value)
            else:
                raise TypeError(f"value must be bytes-like or None, not {type(value).__name__}")
        if key is not None:
            if PyBytes_CheckExact(key):
                size += PyBytes_GET_SIZE(key)
            elif isinstance(key, BYTES_LIKE):
                if isinstance(key, memoryview) and not key.c_contiguous:
                    raise TypeError("key must be a C-contiguous memoryview")
                size += len(key)
            else:
                raise TypeError(f"key must be bytes-like or None, not {type(key).__name__}")
        if headers is not None and not isinstance(headers, (list, tuple)):
            try:
                headers = list(headers)  # an iterator would be used up by headers_size
            except TypeError:
                raise TypeError("headers must be a list of (str, bytes | None) pairs") from None
        if headers:
            size += headers_size(headers)
        if timestamp is not None and (isinstance(timestamp, bool) or not isinstance(timestamp, int)):
            raise TypeError(f"timestamp must be an int (ms since the epoch), not {type(timestamp).__name__}")
        if timestamp is not None and not 0 <= timestamp <= 0x7fffffffffffffff:
            raise ValueError(f"timestamp must be >= 0 and fit in int64 (ms since the epoch), not {timestamp}")
        if size > self.max_request:
            raise RecordTooLargeError(
                f"record of about {size} bytes exceeds max.request.size ({self.max_request})")
        st = self.topics.get(topic)
        if st is None:
            st = self.topic_state(topic)
        if partition is not None:
            if isinstance(partition, bool) or not isinstance(partition, int) or not 0 <= partition < st.n:
                raise UnknownTopicOrPartitionError(
                    f"topic {topic!r} has partitions 0..{st.n - 1}, not {partition!r}")
            p = partition
        elif self.strategy == MURMUR2:
            if key is None:
                p = st.sticky
            elif PyBytes_CheckExact(key):
                p = (murmur2(<const unsigned char*>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key))
                     & 0x7fffffff) % st.n
            else:
                p = self.partitioner.partition(topic, bytes(key), st.n)
        else:
            p = self.partitioner.partition(topic, key, st.n)

        self.lock_acquire()
        try:
            if self.closed:
                raise LogClosedError("producer is closed")
            b = st.batches[p]
            if b is not None and b.size + size > self.max_request:
                self.append(st, b)
                b = None
            if b is None:
                b = OpenBatch(topic, p, now_ms())
                st.batches[p] = b
                self.open_batches[id(b)] = b
                opened = True
            index = len(b.values)
            b.values.append(value)
            if key is not None or b.keys is not None:
                if b.keys is None:
                    b.keys = [None] * index
                b.keys.append(key)
            if timestamp is not None or b.timestamps is not None:
                if b.timestamps is None:
                    b.timestamps = [b.created] * index
                b.timestamps.append(b.created if timestamp is None else timestamp)
            if headers or b.headers is not None:
                if b.headers is None:
                    b.headers = [None] * index
                b.headers.append(list(headers) if headers else None)
            b.size += size
            if b.size >= self.batch_bytes or index + 1 >= self.batch_records:
                self.append(st, b)
        finally:
            self.lock_release()
        if self.completed:
            self.run_callbacks()
        if opened and self.on_open is not None:
            self.on_open()
        f = RecordFuture.__new__(RecordFuture)
        f.batch = b
        f.index = index
        f.acc = self
        return f

    cdef append(self, TopicState st, OpenBatch b):
        """Hand one batch to the sink (the partition's log). Caller holds the lock."""
        st.batches[b.partition] = None
        self.open_batches.pop(id(b), None)
        try:
            b.base_offset = self.sink.append(b.topic, b.partition, b.values, b.keys,
                                             b.timestamps if b.timestamps is not None else b.created,
                                             b.headers, self.compression)
        except Exception as exc:  # any failure resolves the batch's futures (never left pending)
            b.error = exc
        b.done = True
        if st.sticky == b.partition:
            self.partitioner.batch_sent(b.topic, b.partition, st.n)
            st.sticky = self.partitioner.sticky(b.topic, st.n)
        if b.callbacks:
            self.completed.append(b)

    cdef run_callbacks(self):
        cdef OpenBatch b
        cdef RecordFuture f
        self.lock_acquire()
        done, self.completed = self.completed, []
        self.lock_release()
        for b in done:
            for index, cbs in b.callbacks.items():
                f = RecordFuture.__new__(RecordFuture)
                f.batch = b
                f.index = index
                f.acc = self
                for callback, errback in cbs:
                    try:
                        f.fire(callback, errback)
                    except Exception:  # one user callback must not stop the others
                        pass

    def send_now(self, OpenBatch b):
        """Append ``b`` now if it is still open."""
        self.lock_acquire()
        try:
            if not b.done:
                self.append(self.topics[b.topic], b)
        finally:
            self.lock_release()
        if self.completed:
            self.run_callbacks()

    def direct(self, str topic, int partition, fn, *args):
        """Run ``fn(*args)`` (an append straight to the partition's log) holding the lock, after
        the partition's open batch, if any: records keep their send order."""
        cdef TopicState st
        self.lock_acquire()
        try:
            if self.closed:
                raise LogClosedError("producer is closed")
            st = self.topics.get(topic)
            if st is not None and partition < st.n and st.batches[partition] is not None:
                self.append(st, st.batches[partition])
            result = fn(*args)
            # a batch went to ``partition``: move the sticky partition off it (KIP-480), in the
            # Python partitioner and in this accumulator's copy alike
            st = self.topic_state(topic)
            self.partitioner.batch_sent(topic, partition, st.n)
            st.sticky = self.partitioner.sticky(topic, st.n)
            return result
        finally:
            self.lock_release()
            if self.completed:
                self.run_callbacks()

    def drain(self, int64_t opened_before=-1):
        """Append every open batch opened before ``opened_before`` (ms; -1: all of them).
        Returns the creation time of the oldest batch still open, or -1."""
        cdef OpenBatch b
        cdef int64_t oldest = -1
        self.lock_acquire()
        try:
            for b in list(self.open_batches.values()):
                if opened_before < 0 or b.created < opened_before:
                    self.append(self.topics[b.topic], b)
                elif oldest < 0 or b.created < oldest:
                    oldest = b.created
        finally:
            self.lock_release()
        if self.completed:
            self.run_callbacks()
        return oldest

    def forget_topic(self, str topic):
        """The topic's partitions changed: send its open batches, then look it up afresh."""
        cdef TopicState st
        cdef OpenBatch b
        self.lock_acquire()
        try:
            st = self.topics.pop(topic, None)
            if st is not None:
                for b in st.batches:
                    if b is not None:
                        self.append(st, b)
        finally:
            self.lock_release()
        if self.completed:
            self.run_callbacks()

    def close(self):
        self.lock_acquire()
        self.closed = True  # first, so no send can open a batch after the final drain
        self.lock_release()
        self.drain()


cdef Py_ssize_t headers_size(object headers) except -1:
    cdef Py_ssize_t size = 0
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


cdef Py_ssize_t item_size(object v, str what, Py_ssize_t i) except -1:
    """Bytes in one value or key (None: 0); TypeError naming the item otherwise."""
    if v is None:
        return 0
    if PyBytes_CheckExact(v):
        return PyBytes_GET_SIZE(v)
    if isinstance(v, (bytes, bytearray)):
        return len(v)
    if isinstance(v, memoryview):
        if not (<object>v).c_contiguous:
            raise TypeError(f"{what}[{i}] must be a C-contiguous memoryview")
        return (<object>v).nbytes
    hint = "; encode it first (e.g. .encode('utf-8'))" if isinstance(v, str) else ""
    raise TypeError(f"{what}[{i}] must be bytes-like or None, not {type(v).__name__}{hint}")


def chunk_ends(list values, list keys, Py_ssize_t limit):
    """Check every value and key (bytes-like or None) and split the records into runs of about
    ``limit`` bytes each: returns the end index of each run. One C pass, so ``send_batch`` can
    refuse bad input before it writes anything and not pay per record in Python."""
    cdef Py_ssize_t n = len(values), i, size, run = 0
    cdef list ends = []
    if keys is not None and len(keys) != n:
        raise ValueError(f"keys has {len(keys)} items for {n} values")
    for i in range(n):
        size = RECORD_OVERHEAD + item_size(values[i], "values", i)
        if keys is not None:
            size += item_size(keys[i], "keys", i)
        if size > limit:
            raise RecordTooLargeError(
                f"values[{i}]: record of about {size} bytes exceeds max.request.size ({limit})")
        if run + size > limit:
            ends.append(i)
            run = 0
        run += size
    ends.append(n)
    return ends
