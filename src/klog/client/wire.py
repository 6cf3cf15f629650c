"""The wire backend: the client API over the Kafka protocol, through confluent-kafka (librdkafka).

Works against ``klog serve``, Kafka and Redpanda. The producer, consumer and admin calls keep the
embedded backend's method names, arguments, record types and exceptions (klog.client.api);
what differs underneath:

* Config: Kafka's client names pass through to librdkafka; only the names librdkafka spells
  differently are translated (``max.request.size`` -> ``message.max.bytes``, ``buffer.memory``
  -> ``queue.buffering.max.kbytes``, ``auto.offset.reset=none`` -> ``error``), and klog-only
  names are handled here (``max.poll.records``). Values of names klog knows are checked with
  klog's own rules first, so a bad value raises the same ConfigError on both backends; any other
  name goes to librdkafka, which refuses what it does not know (ConfigError too).
* Errors: confluent-kafka's ``KafkaError`` codes are Kafka's for broker answers (mapped through
  klog.errors.ERRORS, the one table) and negative for librdkafka's local conditions (mapped in
  LOCAL_ERRORS below).
* Futures: a producer thread serves librdkafka's delivery reports; futures complete there.
* Positions are tracked here (what ``poll`` returned, what ``seek`` set), because librdkafka only
  knows a position once it has fetched.

Concurrency: as the embedded clients — a producer is thread-safe, a consumer is used by one
thread at a time (its rebalance callbacks run inside ``poll``).
"""
import logging
import re
import threading
import time

import confluent_kafka as ck
from confluent_kafka import admin as cka

from klog._native.batch import ConsumerRecord
from klog.broker import PartitionDescription, TopicDescription
from klog.client.api import GroupDescription, GroupListing, MemberDescription
from klog.clientconfig import CONSUMER, NETWORK_ONLY, PRODUCER
from klog.config import SETTINGS as TOPIC_SETTINGS
from klog.error_codes import ErrorCode
from klog.errors import (
    ConfigError, KlogError, NetworkError, RequestTimedOutError,
    UnknownTopicOrPartitionError, error_for,
)
from klog.group.errors import (
    CommitFailedError, GroupIdNotFoundError, IllegalStateError, InvalidGroupIdError,
    NoOffsetForPartitionError,
)
from klog.metadata import is_internal, validate_topic_name
from klog.producer import BatchMetadata, RecordMetadata
from klog.structs import OffsetAndMetadata, OffsetAndTimestamp, TopicPartition, as_topic_partition

LOG = logging.getLogger("klog.client.wire")
KE = ck.KafkaError
BYTES_LIKE = (bytes, bytearray, memoryview)
REQUEST_TIMEOUT_S = 30.0   # admin calls and metadata: a broker that does not answer in 30 s is down

# librdkafka's local conditions (negative codes) -> klog's classes. Kafka's own codes (>= -1) map
# through klog.errors.ERRORS.
LOCAL_ERRORS = {
    KE._UNKNOWN_TOPIC: UnknownTopicOrPartitionError,
    KE._UNKNOWN_PARTITION: UnknownTopicOrPartitionError,
    KE._MSG_TIMED_OUT: RequestTimedOutError,
    KE._TIMED_OUT: RequestTimedOutError,
    KE._TIMED_OUT_QUEUE: RequestTimedOutError,
    KE._TRANSPORT: NetworkError,
    KE._ALL_BROKERS_DOWN: NetworkError,
    KE._RESOLVE: NetworkError,
    KE._INVALID_ARG: ConfigError,
    KE._STATE: IllegalStateError,
    KE._UNKNOWN_GROUP: GroupIdNotFoundError,
}


def map_error(kerr, context=None):
    """The klog exception (not raised) for a confluent-kafka KafkaError or KafkaException."""
    if isinstance(kerr, ck.KafkaException):
        kerr = kerr.args[0] if kerr.args and isinstance(kerr.args[0], KE) else None
        if kerr is None:
            return KlogError(context or "Kafka client error")
    code = kerr.code()
    text = kerr.str()
    message = f"{context}: {text}" if context else text
    if code >= -1:
        return error_for(code, message)
    cls = LOCAL_ERRORS.get(code)
    return cls(message) if cls is not None else KlogError(message)


# What describing a topic just created may answer until every broker's metadata has caught up.
_CATCHING_UP = frozenset({ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.LEADER_NOT_AVAILABLE,
                          ErrorCode.NOT_LEADER_OR_FOLLOWER})


def _raise_from(exc, context):
    raise map_error(exc, context) from None


def _tp(tp):
    return TopicPartition(tp.topic, tp.partition)


def _ck_tp(tp, offset=None, metadata=None):
    tp = as_topic_partition(tp)
    if offset is None:
        return ck.TopicPartition(tp.topic, tp.partition)
    if metadata:
        return ck.TopicPartition(tp.topic, tp.partition, offset, metadata)
    return ck.TopicPartition(tp.topic, tp.partition, offset)


# -- config --------------------------------------------------------------------------------------------
def _translate(config, settings, what, renames, drop=()):
    """librdkafka's config for a klog/Kafka client config: known names checked by klog's rules
    and renamed where librdkafka differs; other names passed through."""
    out = {}
    for key, value in (config or {}).items():
        if not isinstance(key, str):
            raise ConfigError(f"{what} config names must be strings, not {key!r}")
        if key in settings:
            value = settings[key].parse(str(value).lower() if isinstance(value, bool) else value) \
                if not (key == "partitioner" and callable(value)) else value
        if key in drop:
            continue
        if key == "partitioner":
            if callable(value):
                raise ConfigError("partitioner: a Python callable cannot run inside librdkafka; "
                                  "over the wire choose murmur2_random, murmur2, consistent_random, "
                                  "consistent or random, or give send() a partition")
            if value == "default":
                value = "murmur2_random"
            if value == "round_robin":
                raise ConfigError("partitioner: librdkafka has no round_robin; use random, or "
                                  "give send() a partition")
        if key in ("transactional.id", "group.instance.id") and value == "":
            continue
        name, fn = renames.get(key, (key, None))
        if fn is not None:
            value = fn(value)
        out[name] = str(value).lower() if isinstance(value, bool) else value
    return out


PRODUCER_RENAMES = {
    "max.request.size": ("message.max.bytes", None),
    "buffer.memory": ("queue.buffering.max.kbytes", lambda v: max(1, v // 1024)),
}
CONSUMER_RENAMES = {
    "auto.offset.reset": ("auto.offset.reset", lambda v: "error" if v == "none" else v),
}
# Handled by this module, or meaningless to librdkafka (which never lists internal topics to a
# regex subscription).
CONSUMER_ONLY_HERE = ("max.poll.records", "exclude.internal.topics")


def _native(client, make, config, what):
    try:
        return make(config)
    except ck.KafkaException as exc:
        _raise_from(exc, f"{what} config")
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} config: {exc}") from None


# -- producer ----------------------------------------------------------------------------------------------
class WireFuture:
    """The outcome of one ``send`` over the wire. librdkafka calls it with the delivery report
    (``future(err, msg)``, on the producer's delivery thread). Cheap to make: no Event per
    record; waiters share their producer's Condition and are only woken when someone waits."""
    __slots__ = ("_producer", "_metadata", "_error", "_callbacks", "_done")

    def __init__(self, producer):
        self._producer = producer
        self._metadata = self._error = self._callbacks = None
        self._done = False

    def __call__(self, err, msg):
        if err is None:
            self._metadata = RecordMetadata(msg.topic(), msg.partition(), msg.offset(),
                                            msg.timestamp()[1])
        else:
            self._error = map_error(err, f"delivery to {msg.topic()!r}")
        prod = self._producer
        with prod._cb_lock:   # against add_callback registering as the record completes
            self._done = True
            callbacks = self._callbacks
        if prod._waiters:
            with prod._done_cond:
                prod._done_cond.notify_all()
        if callbacks:
            for cb, eb in callbacks:
                try:
                    self._fire(cb, eb)
                except Exception:   # one user callback must not stop the delivery thread
                    LOG.exception("send callback failed")

    def _fire(self, callback, errback):
        if self._error is None:
            if callback is not None:
                callback(self._metadata)
        elif errback is not None:
            errback(self._error)

    def get(self, timeout=None):
        if not self._done and not self._producer._wait(self, timeout):
            raise RequestTimedOutError(f"no delivery report within {timeout} s")
        if self._error is not None:
            raise self._error
        return self._metadata

    def done(self):
        return self._done

    def succeeded(self):
        return self._done and self._error is None

    def exception(self):
        return self._error

    def add_callback(self, callback, errback=None):
        with self._producer._cb_lock:
            if not self._done:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append((callback, errback))
                return self
        self._fire(callback, errback)
        return self


class WireProducer:
    """``client.producer(config)`` over the wire: confluent_kafka.Producer with the embedded
    Producer's methods. A thread serves delivery reports (so futures complete without the
    caller polling); ``flush`` and ``close`` wait for every queued record. Thread-safe."""

    def __init__(self, client, config=None):
        self._client = client
        conf = dict(client.common)
        # klog's default (Java's): keyed records land where Java clients put them, on both
        # backends; librdkafka's own default is consistent_random (CRC32)
        conf["partitioner"] = "murmur2_random"
        conf.update(_translate(config, PRODUCER, "producer", PRODUCER_RENAMES))
        self.config = conf
        self._p = _native(client, ck.Producer, conf, "producer")
        self._produce_native = self._p.produce
        self._cb_lock = threading.Lock()
        self._done_cond = threading.Condition(threading.Lock())
        self._waiters = 0
        self._closed = False
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._serve, name="klog-wire-producer",
                                        daemon=True)
        self._poller.start()

    def _serve(self):
        while not self._stop.is_set():
            self._p.poll(0.1)

    def _wait(self, future, timeout):
        """Block until ``future`` is done (or ``timeout`` s pass); True if it is done."""
        with self._done_cond:
            self._waiters += 1
            try:
                return self._done_cond.wait_for(lambda: future._done, timeout)
            finally:
                self._waiters -= 1

    def send(self, topic, value, key=None, partition=None, timestamp=None, headers=None):
        """Queue one record; returns a future (see klog.client)."""
        if self._closed:
            raise IllegalStateError("this producer is closed")
        if value is not None and value.__class__ is not bytes:
            _check_bytes(value, "value")
        if key is not None and key.__class__ is not bytes:
            _check_bytes(key, "key")
        if partition is None:
            partition = -1   # librdkafka's "use the partitioner"
        elif isinstance(partition, bool) or not isinstance(partition, int) or partition < 0:
            raise UnknownTopicOrPartitionError(f"topic {topic!r} has no partition {partition!r}")
        fut = WireFuture(self)
        try:
            if headers:
                self._produce_native(topic, value, key, partition, on_delivery=fut,
                                     timestamp=timestamp or 0,
                                     headers=list(headers.items()) if isinstance(headers, dict)
                                     else list(headers))
            else:
                self._produce_native(topic, value, key, partition, on_delivery=fut,
                                     timestamp=timestamp or 0)
        except BufferError:
            self._produce_full(topic, value, key, partition, fut, timestamp or 0, headers)
        except ck.KafkaException as exc:
            _raise_from(exc, f"send to {topic!r}")
        return fut

    def _produce_full(self, topic, value, key, partition, fut, timestamp, headers):
        """librdkafka's queue is full: let deliveries drain it, then queue the record."""
        headers = (list(headers.items()) if isinstance(headers, dict) else list(headers)) \
            if headers else None
        while True:
            self._p.poll(0.05)
            try:
                if headers:
                    self._produce_native(topic, value, key, partition, on_delivery=fut,
                                         timestamp=timestamp, headers=headers)
                else:
                    self._produce_native(topic, value, key, partition, on_delivery=fut,
                                         timestamp=timestamp)
                return
            except BufferError:
                continue
            except ck.KafkaException as exc:
                _raise_from(exc, f"send to {topic!r}")

    def send_batch(self, topic, values, keys=None, partition=None, timestamps=None):
        """Send many records and wait for them: [BatchMetadata], one per run of consecutive
        offsets in one partition."""
        if isinstance(values, BYTES_LIKE + (str,)):
            raise TypeError("values must be a sequence of bytes-like values, not a single value")
        values = list(values)
        if keys is not None:
            keys = list(keys)
            if len(keys) != len(values):
                raise ValueError(f"keys has {len(keys)} items for {len(values)} values")
        if timestamps is not None and not isinstance(timestamps, int):
            timestamps = list(timestamps)
            if len(timestamps) != len(values):
                raise ValueError(f"timestamps has {len(timestamps)} items for {len(values)} values")
        futures = []
        for i, v in enumerate(values):
            ts = timestamps if timestamps is None or isinstance(timestamps, int) else timestamps[i]
            futures.append(self.send(topic, v, None if keys is None else keys[i], partition, ts))
        self._p.flush()
        runs = []
        for f in futures:
            md = f.get()
            last = runs[-1] if runs else None
            if last is not None and last[0] == md.partition and last[1] + last[2] == md.offset:
                last[2] += 1
            else:
                runs.append([md.partition, md.offset, 1])
        return [BatchMetadata(topic, p, base, n) for p, base, n in runs]

    def flush(self, timeout=None):
        left = self._p.flush(-1 if timeout is None else timeout)
        if left:
            raise RequestTimedOutError(f"flush: {left} records still queued after {timeout} s")

    def partitions_for(self, topic):
        try:
            md = self._p.list_topics(topic, timeout=REQUEST_TIMEOUT_S)
        except ck.KafkaException as exc:
            _raise_from(exc, f"metadata of {topic!r}")
        t = md.topics.get(topic)
        if t is None or t.error is not None and not t.partitions:
            raise map_error(t.error, f"topic {topic!r}") if t is not None and t.error else \
                UnknownTopicOrPartitionError(f"unknown topic {topic!r}")
        return sorted(t.partitions)

    def close(self, timeout=None):
        if self._closed:
            return
        self._closed = True
        try:
            self._p.flush(-1 if timeout is None else timeout)
        finally:
            self._stop.set()
            if self._poller is not threading.current_thread():
                self._poller.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_bytes(v, what):
    if v is not None and not isinstance(v, BYTES_LIKE):
        raise TypeError(f"{what} must be bytes-like or None, not {type(v).__name__}")


# -- consumer ------------------------------------------------------------------------------------------------
class WireConsumer:
    """``client.consumer(group_id, config)`` over the wire: confluent_kafka.Consumer with the
    embedded Consumer's methods and semantics (see klog.client)."""

    def __init__(self, client, group_id=None, config=None):
        config = dict(config or {})
        if group_id is not None:
            config["group.id"] = group_id
        self.group_id = config.get("group.id") or None
        if self.group_id is None and config.get("enable.auto.commit") in (True, "true", "True"):
            raise ConfigError("enable.auto.commit: cannot be true without a group.id "
                              "(offsets are committed to a consumer group)")
        conf = dict(client.common)
        conf.update(_translate(config, CONSUMER, "consumer", CONSUMER_RENAMES, CONSUMER_ONLY_HERE))
        self._max_poll_records = CONSUMER["max.poll.records"].parse(
            config.get("max.poll.records", CONSUMER["max.poll.records"].default))
        self._reset = CONSUMER["auto.offset.reset"].parse(
            config.get("auto.offset.reset", "latest"))
        if self.group_id is None:
            # librdkafka wants a group.id even to read assigned partitions; this one is never
            # committed to (commit() refuses without a group, as the embedded consumer does).
            conf["group.id"] = f"klog-nogroup-{id(self):x}"
            conf["enable.auto.commit"] = "false"
        conf.setdefault("enable.auto.offset.store", "true")
        self._client = client
        self._c = _native(client, ck.Consumer, conf, "consumer")
        self._mode = None
        self._subscription = frozenset()
        self._positions = {}        # TopicPartition -> next offset to return
        self._pending_seeks = {}    # seeks librdkafka refused before the partition was fetching
        self._paused = set()
        self._assigning = None      # inside on_assign: {tp: confluent TopicPartition} to assign
        self._on_assign = self._on_revoke = None
        self._closed = False

    # -- subscribing -------------------------------------------------------------------------------
    def subscribe(self, topics, on_assign=None, on_revoke=None):
        self._check_open()
        if self.group_id is None:
            raise InvalidGroupIdError("subscribe() needs a consumer group: give consumer() a "
                                      "group_id (or set group.id in its config)")
        if self._mode == "assign":
            raise IllegalStateError("subscribe() after assign(): subscribing to topics and "
                                    "assigning partitions are mutually exclusive; unsubscribe() first")
        for name, cb in (("on_assign", on_assign), ("on_revoke", on_revoke)):
            if cb is not None and not callable(cb):
                raise TypeError(f"{name} must be callable, not {type(cb).__name__}")
        if isinstance(topics, (str, re.Pattern)):
            pattern = topics if isinstance(topics, str) else topics.pattern
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"subscribe(): {pattern!r} is not a valid regular expression: "
                                 f"{exc}") from None
            names = [f"^({pattern})$"]   # librdkafka: a leading ^ makes it a regex
            wanted = frozenset(names)
        else:
            if topics is None or isinstance(topics, (bytes, dict)):
                raise TypeError("subscribe() takes a list of topic names or a pattern")
            names = list(topics)
            if not names:
                self.unsubscribe()
                return
            for name in names:
                validate_topic_name(name)
            wanted = frozenset(names)
        self._on_assign, self._on_revoke = on_assign, on_revoke
        try:
            self._c.subscribe(names, on_assign=self._assigned_cb, on_revoke=self._revoked_cb,
                              on_lost=self._revoked_cb)
        except ck.KafkaException as exc:
            _raise_from(exc, "subscribe()")
        self._subscription = wanted
        self._mode = "subscribe"

    def _assigned_cb(self, _consumer, partitions):
        # As the embedded consumer: the partitions are assigned *before* on_assign runs, so it
        # may seek() or ask position(); librdkafka gets them (with those offsets) afterwards.
        assigning = self._assigning = {_tp(p): p for p in partitions}
        for tp in list(self._pending_seeks):
            if tp in assigning:
                assigning[tp].offset = self._pending_seeks.pop(tp)
        try:
            if self._on_assign is not None:
                self._on_assign(list(assigning))
        finally:
            self._assigning = None
            self._c.assign(list(assigning.values()))

    def _revoked_cb(self, _consumer, partitions):
        tps = [_tp(p) for p in partitions]
        try:
            if self._on_revoke is not None:
                self._on_revoke(tps)
        finally:
            for tp in tps:
                self._positions.pop(tp, None)
                self._paused.discard(tp)

    def assign(self, partitions):
        self._check_open()
        if self._mode == "subscribe":
            raise IllegalStateError("assign() after subscribe(): subscribing to topics and "
                                    "assigning partitions are mutually exclusive; unsubscribe() first")
        if isinstance(partitions, (str, bytes)) or not hasattr(partitions, "__iter__"):
            raise TypeError("assign() takes a list of TopicPartition or (topic, partition) pairs")
        tps = [as_topic_partition(tp) for tp in partitions]
        if not tps:
            self.unsubscribe()
            return
        counts = {}
        for tp in tps:   # UnknownTopicOrPartitionError now, as the embedded consumer
            if tp.topic not in counts:
                counts[tp.topic] = len(self._client._partitions(tp.topic))
            if not 0 <= tp.partition < counts[tp.topic]:
                raise UnknownTopicOrPartitionError(
                    f"topic {tp.topic!r} has partitions 0..{counts[tp.topic] - 1}, "
                    f"not {tp.partition!r}")
        self._positions = {tp: o for tp, o in self._positions.items() if tp in set(tps)}
        try:
            self._c.assign([_ck_tp(tp, self._positions.get(tp, ck.OFFSET_INVALID))
                            for tp in sorted(set(tps))])
        except ck.KafkaException as exc:
            _raise_from(exc, "assign()")
        self._mode = "assign"

    def unsubscribe(self):
        self._check_open()
        try:
            if self._mode == "subscribe":
                self._c.unsubscribe()
            elif self._mode == "assign":
                self._c.unassign()
        except ck.KafkaException as exc:
            _raise_from(exc, "unsubscribe()")
        self._mode = None
        self._subscription = frozenset()
        self._positions.clear()
        self._pending_seeks.clear()

    def assignment(self):
        self._check_open()
        out = {_tp(p) for p in self._c.assignment()}
        if self._assigning is not None:
            out.update(self._assigning)
        return out

    def subscription(self):
        return set(self._subscription)

    # -- polling -------------------------------------------------------------------------------------
    def poll(self, timeout_ms=0, max_records=None):
        self._check_open()
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float)) or \
                not timeout_ms >= 0:
            raise ValueError(f"poll(): timeout_ms must be a number >= 0, not {timeout_ms!r}")
        if max_records is None:
            max_records = self._max_poll_records
        elif isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1:
            raise ValueError(f"poll(): max_records must be an integer >= 1, not {max_records!r}")
        if self._pending_seeks:
            self._retry_seeks()
        deadline = time.monotonic() + timeout_ms / 1000.0
        out = []
        while True:
            left = max(0.0, deadline - time.monotonic())
            msg = self._c.poll(left)
            if msg is not None:
                self._take(msg, out)
                if out and len(out) < max_records:
                    for m in self._c.consume(max_records - len(out), 0):
                        self._take(m, out)
            if out or time.monotonic() >= deadline:
                return out

    def _take(self, msg, out):
        err = msg.error()
        if err is not None:
            if err.code() == KE._PARTITION_EOF:
                return
            if err.code() == KE._AUTO_OFFSET_RESET:
                tp = TopicPartition(msg.topic(), msg.partition())
                # librdkafka: "no previously committed offset available: ..." (the other case is
                # an offset outside the log)
                if "committed offset" in err.str().lower():
                    raise NoOffsetForPartitionError([tp])
                raise error_for(1, f"{tp.topic}-{tp.partition}: {err.str()}")
            raise map_error(err, f"poll() {msg.topic()}-{msg.partition()}")
        tp = TopicPartition(msg.topic(), msg.partition())
        if tp in self._pending_seeks:
            return   # read before a seek took effect
        headers = msg.headers()
        out.append(ConsumerRecord(tp.topic, tp.partition, msg.offset(), msg.timestamp()[1],
                                  msg.key(), msg.value(), tuple(headers) if headers else ()))
        self._positions[tp] = msg.offset() + 1

    # -- positions ----------------------------------------------------------------------------------
    def _assigned(self, partition, what):
        tp = as_topic_partition(partition)
        if tp not in self.assignment():
            raise IllegalStateError(f"{what}: partition {tp.topic}-{tp.partition} is not "
                                    f"assigned to this consumer")
        return tp

    def seek(self, partition, offset):
        self._check_open()
        tp = self._assigned(partition, "seek()")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"seek(): offset must be an integer >= 0, not {offset!r}")
        self._positions[tp] = offset
        if self._assigning is not None and tp in self._assigning:
            self._assigning[tp].offset = offset   # assigned with it when on_assign returns
            return
        try:
            self._c.seek(_ck_tp(tp, offset))
            self._pending_seeks.pop(tp, None)
        except ck.KafkaException:
            # Not fetching yet (just assigned): librdkafka refuses; apply it at the next poll.
            self._pending_seeks[tp] = offset

    def _retry_seeks(self):
        for tp, offset in list(self._pending_seeks.items()):
            if tp not in self.assignment():
                continue
            try:
                self._c.seek(_ck_tp(tp, offset))
                del self._pending_seeks[tp]
            except ck.KafkaException:
                if self._mode == "assign":   # restart the partition's fetcher at the offset
                    parts = [_ck_tp(t, self._positions.get(t, ck.OFFSET_INVALID))
                             for t in sorted(self.assignment())]
                    self._c.assign(parts)
                    self._pending_seeks.clear()
                    return

    def seek_to_beginning(self, partitions=None):
        self._seek_to(partitions, 0, "seek_to_beginning()")

    def seek_to_end(self, partitions=None):
        self._seek_to(partitions, 1, "seek_to_end()")

    def _seek_to(self, partitions, which, what):
        self._check_open()
        tps = sorted(self.assignment()) if partitions is None else \
            [self._assigned(tp, what) for tp in partitions]
        for tp in tps:
            self.seek(tp, self._watermarks(tp)[which])

    def position(self, partition):
        self._check_open()
        tp = self._assigned(partition, "position()")
        pos = self._positions.get(tp)
        if pos is None:
            # Resolved now, as the embedded consumer does; librdkafka is told to start there,
            # or a "latest" it resolves later would skip what was appended in between.
            pos = self._initial_position(tp)
            self.seek(tp, pos)
        return pos

    def _initial_position(self, tp):
        if self._mode == "subscribe" or self.group_id is not None:
            committed = self.committed(tp) if self.group_id is not None else None
            if committed is not None:
                return committed
        if self._reset == "none":
            raise NoOffsetForPartitionError([tp])
        return self._watermarks(tp)[0 if self._reset == "earliest" else 1]

    def _watermarks(self, tp):
        try:
            return self._c.get_watermark_offsets(_ck_tp(tp), timeout=REQUEST_TIMEOUT_S)
        except ck.KafkaException as exc:
            _raise_from(exc, f"offsets of {tp.topic}-{tp.partition}")

    def pause(self, partitions):
        self._check_open()
        tps = [self._assigned(tp, "pause()") for tp in partitions]
        self._c.pause([_ck_tp(tp) for tp in tps])
        self._paused.update(tps)

    def resume(self, partitions):
        self._check_open()
        tps = [self._assigned(tp, "resume()") for tp in partitions]
        self._c.resume([_ck_tp(tp) for tp in tps])
        self._paused.difference_update(tps)

    def paused(self):
        return set(self._paused)

    # -- offsets --------------------------------------------------------------------------------------
    def commit(self, offsets=None):
        self._check_open()
        self._require_group("commit()")
        if offsets is None:
            assigned = self.assignment()
            offsets = {tp: OffsetAndMetadata(o) for tp, o in self._positions.items()
                       if tp in assigned}
        else:
            from klog.consumer import _normalize_offsets
            offsets = _normalize_offsets(offsets)
        if not offsets:
            return
        parts = [_ck_tp(tp, om.offset, om.metadata or None) for tp, om in sorted(offsets.items())]
        try:
            result = self._c.commit(offsets=parts, asynchronous=False)
        except ck.KafkaException as exc:
            raise self._commit_error(exc.args[0] if exc.args else None, offsets) from None
        for p in result or ():
            if p.error is not None:
                raise self._commit_error(p.error, offsets)

    def _commit_error(self, kerr, offsets):
        names = ", ".join(f"{tp.topic}-{tp.partition}" for tp in sorted(offsets))
        code = kerr.code() if isinstance(kerr, KE) else None
        if code in (KE.UNKNOWN_MEMBER_ID, KE.ILLEGAL_GENERATION, KE.FENCED_INSTANCE_ID):
            return CommitFailedError(
                f"commit of {names} failed: group {self.group_id!r} has rebalanced since they "
                f"were assigned ({kerr.name()}); they may now belong to another member")
        if kerr is None:
            return KlogError(f"commit of {names} failed")
        return map_error(kerr, f"commit of {names} to group {self.group_id!r}")

    def committed(self, partitions, metadata=False):
        self._check_open()
        self._require_group("committed()")
        single = isinstance(partitions, tuple) and len(partitions) == 2 and \
            isinstance(partitions[0], str)
        tps = [as_topic_partition(partitions)] if single else \
            [as_topic_partition(tp) for tp in partitions]
        try:
            got = self._c.committed([_ck_tp(tp) for tp in tps], timeout=REQUEST_TIMEOUT_S)
        except ck.KafkaException as exc:
            _raise_from(exc, f"committed offsets of group {self.group_id!r}")
        out = {}
        for p in got:
            tp = _tp(p)
            if p.error is not None:
                raise map_error(p.error, f"committed offset of {tp.topic}-{tp.partition}")
            if p.offset < 0:
                out[tp] = None
            elif metadata:
                out[tp] = OffsetAndMetadata(p.offset, p.metadata or "",
                                            getattr(p, "leader_epoch", None) or -1)
            else:
                out[tp] = p.offset
        return out[tps[0]] if single else out

    def beginning_offsets(self, partitions):
        self._check_open()
        return {tp: self._watermarks(tp)[0] for tp in map(as_topic_partition, partitions)}

    def end_offsets(self, partitions):
        self._check_open()
        return {tp: self._watermarks(tp)[1] for tp in map(as_topic_partition, partitions)}

    def offsets_for_times(self, timestamps):
        self._check_open()
        for tp, ts in timestamps.items():
            tp = as_topic_partition(tp)
            if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
                raise ValueError(f"offsets_for_times(): the target time for {tp.topic}-"
                                 f"{tp.partition} must be an int >= 0 (ms), not {ts!r}")
        return self._client._offsets_for_times(
            {as_topic_partition(tp): ts for tp, ts in timestamps.items()})

    def lag(self, partition=None):
        self._check_open()
        if partition is not None:
            tp = as_topic_partition(partition)
            return self._watermarks(tp)[1] - self.position(tp)
        return {tp: self._watermarks(tp)[1] - self.position(tp) for tp in sorted(self.assignment())}

    def partitions_for(self, topic):
        return [TopicPartition(topic, p) for p in self._client._partitions(topic)]

    def list_topics(self):
        return self._client.list_topics()

    def _require_group(self, what):
        if self.group_id is None:
            raise InvalidGroupIdError(f"{what} needs a consumer group: give consumer() a "
                                      "group_id (or set group.id in its config)")
        return self.group_id

    # -- lifecycle --------------------------------------------------------------------------------------
    def close(self):
        if self._closed:
            return
        self._closed = True
        try:
            self._c.close()
        except (ck.KafkaException, RuntimeError):
            pass

    @property
    def closed(self):
        return self._closed

    def _check_open(self):
        if self._closed:
            raise IllegalStateError("this consumer is closed")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<WireConsumer group={self.group_id!r} mode={self._mode}>"


# -- the client (admin) ----------------------------------------------------------------------------------
GROUP_STATES = {"UNKNOWN": "Unknown", "PREPARING_REBALANCING": "PreparingRebalance",
                "PREPARING_REBALANCE": "PreparingRebalance",
                "COMPLETING_REBALANCING": "CompletingRebalance",
                "COMPLETING_REBALANCE": "CompletingRebalance", "STABLE": "Stable",
                "DEAD": "Dead", "EMPTY": "Empty"}


class WireClient:
    """``klog.connect("kafka://host:port,...")``: the client API through confluent-kafka.
    ``common``: the librdkafka config every producer, consumer and admin call starts from."""

    backend = "wire"

    def __init__(self, servers, config=None):
        config = dict(config or {})
        for key in config:
            if not isinstance(key, str):
                raise ConfigError(f"client config names must be strings, not {key!r}")
        self.target = f"kafka://{servers}"
        self.common = {"bootstrap.servers": servers}
        self.common.update({k: str(v).lower() if isinstance(v, bool) else v
                            for k, v in config.items()})
        # librdkafka's log lines go to Python logging, not straight to stderr
        self.common.setdefault("logger", LOG)
        admin_conf = {k: v for k, v in self.common.items()
                      if k in NETWORK_ONLY or k in ("bootstrap.servers", "client.id", "logger")}
        # describing a topic must never create it (librdkafka's admin handle is a producer,
        # which asks for auto-creation by default)
        admin_conf["allow.auto.create.topics"] = "false"
        self._admin = _native(self, cka.AdminClient, admin_conf, "client")
        self._closed = False

    # -- clients --------------------------------------------------------------------------------------
    def producer(self, config=None):
        return WireProducer(self, config)

    def consumer(self, group_id=None, config=None):
        return WireConsumer(self, group_id, config)

    # -- helpers ----------------------------------------------------------------------------------------
    def _wait(self, future, context):
        try:
            return future.result(timeout=REQUEST_TIMEOUT_S)
        except ck.KafkaException as exc:
            _raise_from(exc, context)
        except TimeoutError:
            raise RequestTimedOutError(f"{context}: no answer in {REQUEST_TIMEOUT_S} s") from None

    def _metadata(self, topic=None):
        try:
            return self._admin.list_topics(topic, timeout=REQUEST_TIMEOUT_S)
        except ck.KafkaException as exc:
            _raise_from(exc, "metadata")

    def _partitions(self, topic):
        t = self._metadata(topic).topics.get(topic)
        if t is None or t.error is not None:
            if t is not None and t.error is not None and \
                    t.error.code() not in (KE.UNKNOWN_TOPIC_OR_PART, KE._UNKNOWN_TOPIC):
                raise map_error(t.error, f"topic {topic!r}")
            raise UnknownTopicOrPartitionError(f"unknown topic {topic!r}")
        return sorted(t.partitions)

    def _list_offsets(self, specs, context):
        """{TopicPartition: ListOffsetsResultInfo} for {TopicPartition: OffsetSpec}."""
        if not specs:
            return {}
        futures = self._admin.list_offsets({_ck_tp(tp): spec for tp, spec in specs.items()},
                                           request_timeout=REQUEST_TIMEOUT_S)
        return {_tp(p): self._wait(f, context) for p, f in futures.items()}

    def _offsets_for_times(self, timestamps):
        got = self._list_offsets({tp: cka.OffsetSpec.for_timestamp(ts)
                                  for tp, ts in timestamps.items()}, "offsets_for_times()")
        return {tp: None if r.offset < 0 else OffsetAndTimestamp(r.offset, r.timestamp)
                for tp, r in got.items()}

    # -- topics ---------------------------------------------------------------------------------------
    def create_topic(self, name, partitions=None, config=None, replication_factor=None):
        validate_topic_name(name)
        if partitions is not None and (isinstance(partitions, bool) or
                                       not isinstance(partitions, int) or partitions < 1):
            from klog.errors import InvalidPartitionsError
            raise InvalidPartitionsError(f"partition count must be an integer >= 1, not "
                                         f"{partitions!r}")
        conf = {k: _config_text(v) for k, v in (config or {}).items()}
        topic = cka.NewTopic(name, -1 if partitions is None else partitions,
                             -1 if replication_factor is None else replication_factor, config=conf)
        fs = self._admin.create_topics([topic], request_timeout=REQUEST_TIMEOUT_S)
        self._wait(fs[name], f"create topic {name!r}")
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        # Metadata catches up with the creation (in a cluster, each broker's metadata learns
        # the topic and then its leaders a moment later): until every partition has a leader.
        while not self._led(name) and time.monotonic() < deadline:
            time.sleep(0.05)
        while True:
            try:
                return self.describe_topic(name)
            except KlogError as exc:
                if getattr(exc, "error_code", None) not in _CATCHING_UP or \
                        time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _led(self, name):
        """Whether Metadata names a leader for every partition of ``name``."""
        t = self._metadata(name).topics.get(name)
        return t is not None and t.error is None and bool(t.partitions) and all(
            p.leader >= 0 and p.error is None for p in t.partitions.values())

    def delete_topic(self, name):
        fs = self._admin.delete_topics([name], request_timeout=REQUEST_TIMEOUT_S)
        self._wait(fs[name], f"delete topic {name!r}")

    def list_topics(self, internal=False):
        return sorted(t for t in self._metadata().topics
                      if internal or not (is_internal(t) or t.startswith("__")))

    def describe_topic(self, name):
        desc = self._wait(self._admin.describe_topics(
            ck.TopicCollection([name]), request_timeout=REQUEST_TIMEOUT_S)[name],
            f"describe topic {name!r}")
        parts = sorted(p.id for p in desc.partitions)
        internal = bool(desc.is_internal) or is_internal(name)
        topic_id = _uuid(desc.topic_id)
        tps = [TopicPartition(name, p) for p in parts]
        starts = self._list_offsets({tp: cka.OffsetSpec.earliest() for tp in tps},
                                    f"offsets of {name!r}")
        ends = self._list_offsets({tp: cka.OffsetSpec.latest() for tp in tps},
                                  f"offsets of {name!r}")
        resource = cka.ConfigResource(cka.ResourceType.TOPIC, name)
        entries = self._wait(self._admin.describe_configs(
            [resource], request_timeout=REQUEST_TIMEOUT_S)[resource], f"configs of {name!r}")
        config = {k: _config_value(k, e.value) for k, e in entries.items()}
        return TopicDescription(name, topic_id, [
            PartitionDescription(tp.partition, starts[tp].offset, ends[tp].offset, -1)
            for tp in tps], config, internal)

    def topic_overrides(self, name):
        """The configs set on the topic itself (not defaults), as the broker reports them."""
        resource = cka.ConfigResource(cka.ResourceType.TOPIC, name)
        entries = self._wait(self._admin.describe_configs(
            [resource], request_timeout=REQUEST_TIMEOUT_S)[resource], f"configs of {name!r}")
        return {k: _config_value(k, e.value) for k, e in entries.items()
                if e.source == cka.ConfigSource.DYNAMIC_TOPIC_CONFIG.value}

    def alter_topic_config(self, name, changes, validate_only=False):
        if not isinstance(changes, dict):
            raise TypeError("changes must be a dict of Kafka topic-config names")
        entries = []
        for key, value in changes.items():
            if value is None:
                entries.append(cka.ConfigEntry(key, None, incremental_operation=
                                               cka.AlterConfigOpType.DELETE))
            else:
                entries.append(cka.ConfigEntry(key, _config_text(value), incremental_operation=
                                               cka.AlterConfigOpType.SET))
        resource = cka.ConfigResource(cka.ResourceType.TOPIC, name, incremental_configs=entries)
        fs = self._admin.incremental_alter_configs([resource], validate_only=validate_only,
                                                   request_timeout=REQUEST_TIMEOUT_S)
        self._wait(fs[resource], f"alter configs of topic {name!r}")

    def add_partitions(self, name, total, validate_only=False):
        fs = self._admin.create_partitions([cka.NewPartitions(name, total)],
                                           validate_only=validate_only,
                                           request_timeout=REQUEST_TIMEOUT_S)
        self._wait(fs[name], f"add partitions to {name!r}")

    # -- groups ------------------------------------------------------------------------------------------
    def list_groups(self):
        result = self._wait(self._admin.list_consumer_groups(request_timeout=REQUEST_TIMEOUT_S),
                            "list groups")
        return sorted((GroupListing(g.group_id, _state(g.state),
                                    "" if g.is_simple_consumer_group else "consumer")
                       for g in result.valid), key=lambda g: g.group_id)

    def describe_group(self, group_id):
        fs = self._admin.describe_consumer_groups([group_id], request_timeout=REQUEST_TIMEOUT_S)
        d = self._wait(fs[group_id], f"describe group {group_id!r}")
        members = tuple(MemberDescription(
            m.member_id, m.client_id, m.host, m.group_instance_id or None,
            tuple(sorted(_tp(p) for p in (m.assignment.topic_partitions if m.assignment else ()))))
            for m in d.members)
        state = _state(d.state)
        ptype = "" if d.is_simple_consumer_group else "consumer"
        if state == "Dead":
            ptype = ""
        return GroupDescription(group_id, state, ptype, d.partition_assignor or "", members)

    def delete_group(self, group_id):
        fs = self._admin.delete_consumer_groups([group_id], request_timeout=REQUEST_TIMEOUT_S)
        self._wait(fs[group_id], f"delete group {group_id!r}")

    def list_group_offsets(self, group_id):
        fs = self._admin.list_consumer_group_offsets(
            [ck.ConsumerGroupTopicPartitions(group_id)], request_timeout=REQUEST_TIMEOUT_S)
        r = self._wait(fs[group_id], f"offsets of group {group_id!r}")
        return {_tp(p): OffsetAndMetadata(p.offset, p.metadata or "",
                                          getattr(p, "leader_epoch", None) or -1)
                for p in sorted(r.topic_partitions, key=lambda p: (p.topic, p.partition))
                if p.offset >= 0}

    def alter_group_offsets(self, group_id, offsets):
        parts = []
        for tp, value in offsets.items():
            om = value if isinstance(value, OffsetAndMetadata) else OffsetAndMetadata(value)
            parts.append(_ck_tp(tp, om.offset, om.metadata or None))
        fs = self._admin.alter_consumer_group_offsets(
            [ck.ConsumerGroupTopicPartitions(group_id, parts)], request_timeout=REQUEST_TIMEOUT_S)
        r = self._wait(fs[group_id], f"set offsets of group {group_id!r}")
        for p in r.topic_partitions:
            if p.error is not None:
                raise map_error(p.error, f"set offsets of group {group_id!r} "
                                         f"({p.topic}-{p.partition})")

    # -- lifecycle ----------------------------------------------------------------------------------------
    def close(self):
        self._closed = True   # librdkafka handles are released when garbage-collected

    @property
    def closed(self):
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<WireClient {self.target!r}>"


def _state(state):
    name = getattr(state, "name", str(state))
    return GROUP_STATES.get(name, name.title())


def _config_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _config_value(name, text):
    """A described config value typed as the embedded backend gives it (klog's topic settings);
    names klog does not know stay strings."""
    setting = TOPIC_SETTINGS.get(name)
    if setting is None or text is None:
        return text
    try:
        return setting.parse(text)
    except (ConfigError, ValueError, TypeError):
        return text


def _uuid(topic_id):
    """confluent-kafka's Uuid as the embedded backend writes topic ids (uuid.UUID's str)."""
    if topic_id is None:
        return ""
    import uuid
    msb = topic_id.get_most_significant_bits() & (2**64 - 1)
    lsb = topic_id.get_least_significant_bits() & (2**64 - 1)
    return str(uuid.UUID(int=(msb << 64) | lsb))
