"""klog: a Kafka-style commit log for Python with a Cython core.

``klog.open(data_dir)`` gives an embedded broker (topics, producers, consumers and consumer
groups); ``klog.Log`` is one partition's durable log of Kafka RecordBatch v2 batches;
``encode_batch`` / ``decode_batch`` build and read that format; ``klog serve`` speaks the Kafka
wire protocol.
"""
from klog import errors
from klog._native.batch import (
    BatchHeader, ConsumerRecord, Record, build_batch, decode_records, read_header,
)
from klog.broker import Broker, PartitionDescription, TopicDescription
from klog.codec import codec_id, compressor, decompress
from klog.config import LogConfig
from klog.consumer import Consumer
from klog.errors import (
    ConfigError, CorruptIndexError, CorruptLogError, CorruptRecordError, KlogError,
    LogClosedError, LogLockedError, LogOfflineError, OffsetOutOfRangeError, RecordTooLargeError,
)
from klog.group.errors import (
    CommitFailedError, GroupError, IllegalStateError, InvalidGroupIdError,
    NoOffsetForPartitionError, RebalanceInProgressError,
)
from klog.producer import BatchMetadata, Producer, RecordMetadata
from klog.storage.log import Log
from klog.structs import OffsetAndMetadata, OffsetAndTimestamp, TopicPartition

__version__ = "0.1.0.dev0"

__all__ = [
    "open", "Broker", "TopicDescription", "PartitionDescription", "Producer", "RecordMetadata",
    "BatchMetadata", "Log", "LogConfig", "Record", "BatchHeader", "encode_batch", "decode_batch",
    "read_header",
    "errors", "KlogError", "CorruptRecordError", "CorruptLogError", "CorruptIndexError",
    "OffsetOutOfRangeError", "RecordTooLargeError", "ConfigError", "LogLockedError",
    "LogClosedError", "LogOfflineError",
    "Consumer", "ConsumerRecord", "TopicPartition", "OffsetAndMetadata", "OffsetAndTimestamp",
    "GroupError", "CommitFailedError", "IllegalStateError", "InvalidGroupIdError",
    "NoOffsetForPartitionError", "RebalanceInProgressError", "connect",
]


def open(data_dir, config=None, clock=None):
    """Open (creating if needed) a broker data directory; ``config`` uses Kafka's broker names
    (``num.partitions``, ``auto.create.topics.enable``, ``log.retention.ms``, ...). ``clock``
    (klog.clock: ``FakeClock`` in tests) drives record times and the background work."""
    return Broker(data_dir, config, clock)


def connect(target=None, config=None):
    """The client API for ``target``: a data directory (embedded broker) or
    ``kafka://host:port,...`` (klog serve, Kafka or Redpanda through confluent-kafka). Same
    producer / consumer / admin methods, record types and errors on both; see klog.client."""
    from klog.client import connect as _connect
    return _connect(target, config)


def encode_batch(values, keys=None, timestamps=None, headers=None, base_offset=0, compression=None):
    """Build one RecordBatch v2 (bytes) from ``values``; see ``Log.append`` for the arguments."""
    codec = codec_id(compression)
    return build_batch(values, keys, timestamps, headers, base_offset, codec,
                       compressor(codec) if codec else None)


def decode_batch(buf):
    """Validate and decode every batch in ``buf`` into a list of ``Record``."""
    return decode_records(buf, -1, decompress)
