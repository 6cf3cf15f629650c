"""One client API, three backends: ``klog.connect(target, config=None)``.

The contract (code above the client API — klog.functions, the CLI's ``-b``, ``klog mirror`` —
uses only these names; both backends honour them, and tests/client/ runs one test body per
behaviour against each):

``client = klog.connect(target, config=None)``
    ``target``: a data directory (str / PathLike, or a ``file:`` URL) opens the **embedded**
    broker in this process, as ``klog.open`` does (``config``: broker configs such as
    ``num.partitions``); a ``Broker`` already open is wrapped without taking ownership;
    ``kafka://host:9092,host2:9092`` (or ``target=None`` with ``bootstrap.servers`` in
    ``config``) connects over the **wire** through confluent-kafka to ``klog serve``, Kafka or
    Redpanda (``config``: client configs shared by every producer / consumer / admin call, such
    as ``security.protocol`` or ``client.id``). ``client.backend`` is ``"embedded"`` or
    ``"wire"``. A context manager; ``close()`` closes what ``connect`` opened.

``client.producer(config=None)`` -> Producer (Kafka producer config names: ``acks``,
``linger.ms``, ``batch.size``, ``compression.type``, ``enable.idempotence``, ...)
    ``send(topic, value, key=None, partition=None, timestamp=None, headers=None)`` -> future:
    queues one record and returns at once. value/key: bytes-like or None; headers: a list of
    ``(str, bytes | None)``; timestamp: ms since the epoch (default: now).
    future: ``get(timeout=None)`` -> ``RecordMetadata(topic, partition, offset, timestamp)`` or
    raises the delivery error; ``done()``; ``add_callback(callback, errback=None)``:
    ``callback(metadata)`` / ``errback(exc)``, at once if already done, else on a client thread.
    ``send_batch(topic, values, keys=None, partition=None, timestamps=None)`` -> list of
    ``BatchMetadata(topic, partition, base_offset, count)``, delivered when it returns.
    ``flush(timeout=None)``: every queued record acknowledged or failed. ``partitions_for(topic)``
    -> [int]. ``close(timeout=None)``: flush and release. Records of one producer to one
    partition keep their send order.

``client.consumer(group_id=None, config=None)`` -> Consumer (Kafka consumer config names:
``auto.offset.reset`` (default ``latest``), ``enable.auto.commit`` (default true),
``max.poll.records``, ``session.timeout.ms``, ``isolation.level``, ...)
    ``subscribe(topics, on_assign=None, on_revoke=None)``: a list of names or a regex (full
    match); callbacks get a list of TopicPartition and run inside ``poll``.
    ``assign(partitions)``, ``unsubscribe()``, ``assignment()`` -> set of TopicPartition.
    ``poll(timeout_ms=0, max_records=None)`` -> list of ``ConsumerRecord`` (``topic``,
    ``partition``, ``offset``, ``timestamp``, ``key``, ``value``, ``headers`` as a tuple of
    pairs); returns as soon as records are there, [] on timeout.
    ``seek(tp, offset)``, ``seek_to_beginning(tps=None)``, ``seek_to_end(tps=None)``,
    ``position(tp)`` -> next offset, ``pause(tps)`` / ``resume(tps)``.
    ``commit(offsets=None)``: synchronous; ``offsets`` maps a partition to the *next* offset to
    read (int or OffsetAndMetadata); default: current positions. CommitFailedError when the
    group rebalanced the partitions away. With auto-commit, what ``poll`` returned is committed
    every ``auto.commit.interval.ms`` and on close (at-least-once).
    ``committed(tp or [tps], metadata=False)`` -> int | None (or a dict),
    ``beginning_offsets(tps)`` / ``end_offsets(tps)`` -> {tp: int},
    ``offsets_for_times({tp: ms})`` -> {tp: OffsetAndTimestamp | None},
    ``lag(tp=None)`` -> int (or {tp: int}), ``partitions_for(topic)`` -> [TopicPartition],
    ``close()``: commits (auto-commit), leaves the group.
    A partition is a ``TopicPartition(topic, partition)`` or a plain ``(topic, partition)`` tuple.

Topic admin on the client:
    ``create_topic(name, partitions=None, config=None)`` -> TopicDescription (TopicExistsError);
    ``delete_topic(name)``; ``list_topics(internal=False)`` -> sorted [str];
    ``describe_topic(name)`` -> ``TopicDescription(name, topic_id, partitions, config,
    internal)`` with ``PartitionDescription(partition, log_start_offset, log_end_offset, size)``
    (``size`` is -1 over the wire); ``topic_overrides(name)`` -> {config: value} set on the
    topic itself (not defaults); ``alter_topic_config(name, {config: value or None},
    validate_only=False)`` (None: back to the default); ``add_partitions(name, total,
    validate_only=False)``.
Group admin: ``list_groups()`` -> [GroupListing(group_id, state, protocol_type)];
    ``describe_group(id)`` -> GroupDescription(group_id, state, protocol_type, protocol,
    members=(MemberDescription(member_id, client_id, host, group_instance_id, assignment),));
    ``list_group_offsets(id)`` -> {tp: OffsetAndMetadata}; ``alter_group_offsets(id, {tp:
    offset})`` (the group must have no members); ``delete_group(id)``.

Errors: ``klog.errors`` classes on both backends, each with Kafka's ``error_code`` — e.g.
UnknownTopicOrPartitionError, TopicExistsError, InvalidTopicError, InvalidPartitionsError,
ConfigError, RecordTooLargeError, OffsetOutOfRangeError, CommitFailedError,
RebalanceInProgressError, NoOffsetForPartitionError, RequestTimedOutError, NetworkError. A code
with no class of its own is BrokerResponseError (``error_code``, ``error_name``).

Record and value types live in klog.client.api (re-exported here).

Known differences between the backends (everything else is tested to match, tests/client/):
``PartitionDescription.size`` is -1 over the wire; ``list_topics(internal=True)`` over the wire
lists what the cluster's Metadata shows (internal topics once they exist, as Kafka); a
``partitioner`` callable and ``round_robin`` are refused over the wire (librdkafka cannot call
Python to partition); callbacks run on the sending/flushing thread embedded, on the producer's
delivery thread over the wire.
"""
import os
from urllib.parse import unquote, urlparse

from klog.client.api import (
    BatchMetadata, Client, Consumer, ConsumerRecord, GroupDescription, GroupListing,
    MemberDescription, OffsetAndMetadata, OffsetAndTimestamp, PartitionDescription, Producer,
    RecordFuture, RecordMetadata, TopicDescription, TopicPartition,
)
from klog.errors import ConfigError

__all__ = [
    "connect", "Client", "Producer", "Consumer", "RecordFuture", "ConsumerRecord",
    "RecordMetadata", "BatchMetadata", "TopicPartition", "OffsetAndMetadata",
    "OffsetAndTimestamp", "TopicDescription", "PartitionDescription", "GroupListing",
    "GroupDescription", "MemberDescription",
]

WIRE_SCHEMES = ("kafka", "klog")


def connect(target=None, config=None):
    """A Client for ``target``: a data directory or ``file:`` URL (embedded), a Broker (wrapped,
    not owned), or ``kafka://host:port[,host:port]`` (wire; also ``bootstrap.servers`` in
    ``config`` with no target). See this module's docstring for the contract."""
    from klog.broker import Broker

    if isinstance(target, Broker):
        from klog.client.embedded import EmbeddedClient
        return EmbeddedClient(target, owns_broker=False)
    config = dict(config or {})
    if target is None:
        if not config.get("bootstrap.servers"):
            raise ConfigError("connect(): give a data directory, a kafka://host:port address, "
                              "or bootstrap.servers in the config")
        return _wire_client(config.pop("bootstrap.servers"), config)
    if not isinstance(target, (str, os.PathLike)):
        raise TypeError(f"connect(): target must be a path, a URL or a Broker, not "
                        f"{type(target).__name__}")
    text = os.fspath(target)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in WIRE_SCHEMES:
        servers = text.split("://", 1)[1].strip("/")
        if not servers:
            raise ConfigError(f"connect(): {text!r} names no broker (kafka://host:port)")
        return _wire_client(servers, config)
    if text.lower().startswith("file:"):
        text = unquote(urlparse(text).path)
    elif scheme:
        raise ConfigError(f"connect(): unknown scheme {scheme!r} in {text!r} (use a path, "
                          "file:PATH or kafka://host:port)")
    from klog.client.embedded import EmbeddedClient
    return EmbeddedClient.open(text, config or None)


def _wire_client(servers, config):
    try:
        from klog.client.wire import WireClient
    except ImportError as exc:
        if "confluent_kafka" not in str(exc):
            raise
        raise ConfigError(f"connecting to {servers} needs confluent-kafka (the wire backend): "
                          "pip install 'klog[kafka]'") from None
    return WireClient(servers, config)
