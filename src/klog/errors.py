"""klog's exceptions, named after the condition (as Kafka's are)."""


class KlogError(Exception):
    """Base class of every error klog raises on purpose."""


class CorruptRecordError(KlogError, ValueError):
    """A record batch failed validation: framing, magic, CRC or record layout."""


class CorruptLogError(KlogError):
    """Data on disk below the recovery point (flushed data) is damaged; the log refuses to open."""


class CorruptIndexError(KlogError):
    """An index file is inconsistent with its segment; it is rebuilt on open."""


class OffsetOutOfRangeError(KlogError, IndexError):
    """An offset outside [log_start_offset, log_end_offset]."""


class RecordTooLargeError(KlogError, ValueError):
    """A batch is larger than ``max.message.bytes``."""


class ConfigError(KlogError, ValueError):
    """An unknown config name or a bad value."""


class LogLockedError(KlogError):
    """Another process (or another open Log in this one) already owns the log directory."""


class LogClosedError(KlogError):
    """The log was closed."""


class LogOfflineError(KlogError):
    """A flush (fsync/msync) failed; the log stops acknowledging writes (see reliability notes)."""


class InvalidTopicError(KlogError, ValueError):
    """An illegal topic name (Kafka's rules: 1-249 of [a-zA-Z0-9._-], not '.' or '..')."""


class TopicExistsError(KlogError):
    """The topic already exists."""


class UnknownTopicOrPartitionError(KlogError, KeyError):
    """No such topic, or no such partition of it."""

    def __str__(self):
        return str(self.args[0]) if self.args else "unknown topic or partition"


class InvalidPartitionsError(KlogError, ValueError):
    """A bad partition count (must be >= 1; add_partitions can only grow it)."""


class InternalTopicError(KlogError):
    """An operation that would break an internal topic (``__consumer_offsets``,
    ``__transaction_state``): deleting it, growing it, or changing its cleanup policy.

    Kafka's brokers leave this to the caller (kafka-topics.sh refuses with "Topic X is a kafka
    internal topic and is not allowed to be marked for deletion"); klog refuses at the Broker
    so every entry point (CLI, wire, embedded API) is covered. Over the wire it is
    INVALID_REQUEST (42), the code Kafka uses for a well-formed request it will not carry out."""
    error_code = 42


class PartitionLimitError(InvalidPartitionsError):
    """Creating these partitions would pass the broker's ``max.partitions`` budget, or ran out
    of file descriptors; nothing was created. Kafka error 37 (INVALID_PARTITIONS), the code
    Redpanda answers for its per-core and file-descriptor partition limits."""


class BrokerLockedError(LogLockedError):
    """Another process owns the data directory."""


class FencedLeaderEpochError(KlogError, ValueError):
    """A leader epoch older than the partition's current one (Kafka error 74): the caller's
    metadata is stale, or an epoch would go back."""


class UnknownLeaderEpochError(KlogError):
    """A leader epoch newer than the partition's current one (Kafka error 75): this broker has
    not caught up with the caller's metadata yet."""


class UnknownTopicIdError(KlogError, KeyError):
    """No topic has this id (Kafka error 100), e.g. it was deleted (and maybe re-created)."""

    def __str__(self):
        return str(self.args[0]) if self.args else "unknown topic id"


class NotLeaderOrFollowerError(KlogError):
    """This broker does not lead the partition (Kafka error 6, NOT_LEADER_OR_FOLLOWER): it is a
    follower, or leadership moved; the client refreshes its metadata and retries."""


class NotEnoughReplicasError(KlogError):
    """``acks=all`` with fewer in-sync replicas than ``min.insync.replicas`` (Kafka error 19):
    refused before the append, nothing written."""


class NotEnoughReplicasAfterAppendError(KlogError):
    """The batch was appended but the ISR shrank below ``min.insync.replicas`` before it was
    committed (Kafka error 20); a retry may duplicate it unless the producer is idempotent."""
