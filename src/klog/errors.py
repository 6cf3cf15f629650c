"""klog's exceptions, named after the condition (as Kafka's are): one error model.

An exception that has a Kafka error code carries it as the class attribute ``error_code`` (a
``klog.error_codes.ErrorCode``, the one table of codes). The wire server answers with that code;
the wire client (klog.client.wire) turns a code it receives back into the same class with
``error_for(code)``, so ``except klog.errors.X`` works on the embedded and the wire backend.
``ERRORS`` maps each code to its class: the first class that declares a code owns it (subclasses
that narrow a condition, such as InternalTopicError, do not take the code over).
"""
from klog.error_codes import ErrorCode as EC

ERRORS = {}   # Kafka error code -> the KlogError subclass that stands for it


class KlogError(Exception):
    """Base class of every error klog raises on purpose. ``error_code``: Kafka's code for the
    condition (None: klog's own condition, with no code on the wire)."""
    error_code = None
    retriable = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        code = cls.__dict__.get("error_code")
        if code is not None:
            ERRORS.setdefault(int(code), cls)

    @property
    def error_name(self):
        """Kafka's name for ``error_code`` (``UNKNOWN_TOPIC_OR_PARTITION``), or None."""
        return None if self.error_code is None else error_name(self.error_code)


class CorruptRecordError(KlogError, ValueError):
    """A record batch failed validation: framing, magic, CRC or record layout."""
    error_code = EC.CORRUPT_MESSAGE


class CorruptLogError(KlogError):
    """Data on disk below the recovery point (flushed data) is damaged; the log refuses to open."""


class CorruptIndexError(KlogError):
    """An index file is inconsistent with its segment; it is rebuilt on open."""


class OffsetOutOfRangeError(KlogError, IndexError):
    """An offset outside [log_start_offset, log_end_offset]."""
    error_code = EC.OFFSET_OUT_OF_RANGE


class RecordTooLargeError(KlogError, ValueError):
    """A batch is larger than ``max.message.bytes``."""
    error_code = EC.MESSAGE_TOO_LARGE


class ConfigError(KlogError, ValueError):
    """An unknown config name or a bad value."""
    error_code = EC.INVALID_CONFIG


class LogLockedError(KlogError):
    """Another process (or another open Log in this one) already owns the log directory."""


class LogClosedError(KlogError):
    """The log was closed."""
    error_code = EC.KAFKA_STORAGE_ERROR


class LogOfflineError(KlogError):
    """A flush (fsync/msync) failed; the log stops acknowledging writes (see reliability notes)."""
    error_code = EC.KAFKA_STORAGE_ERROR


class InvalidTopicError(KlogError, ValueError):
    """An illegal topic name (Kafka's rules: 1-249 of [a-zA-Z0-9._-], not '.' or '..')."""
    error_code = EC.INVALID_TOPIC_EXCEPTION


class TopicExistsError(KlogError):
    """The topic already exists."""
    error_code = EC.TOPIC_ALREADY_EXISTS


class UnknownTopicOrPartitionError(KlogError, KeyError):
    """No such topic, or no such partition of it."""
    error_code = EC.UNKNOWN_TOPIC_OR_PARTITION

    def __str__(self):
        return str(self.args[0]) if self.args else "unknown topic or partition"


class InvalidPartitionsError(KlogError, ValueError):
    """A bad partition count (must be >= 1; add_partitions can only grow it)."""
    error_code = EC.INVALID_PARTITIONS


class PartitionLimitError(InvalidPartitionsError):
    """Creating these partitions would pass the broker's ``max.partitions`` budget, or ran out
    of file descriptors; nothing was created. Kafka error 37 (INVALID_PARTITIONS), the code
    Redpanda answers for its per-core and file-descriptor partition limits."""


class InvalidRequestError(KlogError):
    """A well-formed request the broker will not carry out (INVALID_REQUEST)."""
    error_code = EC.INVALID_REQUEST


class InternalTopicError(InvalidRequestError):
    """An operation that would break an internal topic (``__consumer_offsets``,
    ``__transaction_state``): deleting it, growing it, or changing its cleanup policy.

    Kafka's brokers leave this to the caller (kafka-topics.sh refuses with "Topic X is a kafka
    internal topic and is not allowed to be marked for deletion"); klog refuses at the Broker
    so every entry point (CLI, wire, embedded API) is covered. Over the wire it is
    INVALID_REQUEST (42), the code Kafka uses for a well-formed request it will not carry out."""
    error_code = EC.INVALID_REQUEST


class BrokerLockedError(LogLockedError):
    """Another process owns the data directory."""


class FencedLeaderEpochError(KlogError, ValueError):
    """A leader epoch older than the partition's current one (Kafka error 74): the caller's
    metadata is stale, or an epoch would go back."""
    error_code = EC.FENCED_LEADER_EPOCH
    retriable = True


class UnknownLeaderEpochError(KlogError):
    """A leader epoch newer than the partition's current one (Kafka error 75): this broker has
    not caught up with the caller's metadata yet."""
    error_code = EC.UNKNOWN_LEADER_EPOCH
    retriable = True


class UnknownTopicIdError(KlogError, KeyError):
    """No topic has this id (Kafka error 100), e.g. it was deleted (and maybe re-created)."""
    error_code = EC.UNKNOWN_TOPIC_ID

    def __str__(self):
        return str(self.args[0]) if self.args else "unknown topic id"


class UnknownServerError(KlogError):
    """The broker failed unexpectedly (UNKNOWN_SERVER_ERROR)."""
    error_code = EC.UNKNOWN_SERVER_ERROR


class NotLeaderOrFollowerError(KlogError):
    """This broker does not lead the partition (NOT_LEADER_OR_FOLLOWER): it is a follower, or
    leadership moved; the client refreshes its metadata and retries."""
    error_code = EC.NOT_LEADER_OR_FOLLOWER
    retriable = True


class NotEnoughReplicasError(KlogError):
    """``acks=all`` with fewer in-sync replicas than ``min.insync.replicas``
    (NOT_ENOUGH_REPLICAS): refused before the append, nothing written."""
    error_code = EC.NOT_ENOUGH_REPLICAS
    retriable = True


class NotEnoughReplicasAfterAppendError(KlogError):
    """The batch was appended but the ISR shrank below ``min.insync.replicas`` before it was
    committed (NOT_ENOUGH_REPLICAS_AFTER_APPEND); a retry may duplicate it unless the producer
    is idempotent."""
    error_code = EC.NOT_ENOUGH_REPLICAS_AFTER_APPEND
    retriable = True


# -- conditions a networked client meets (the wire backend raises them; codes from Kafka) ----------
class RequestTimedOutError(KlogError, TimeoutError):
    """No answer in time: a request, a delivery (``delivery.timeout.ms``) or an admin call
    (REQUEST_TIMED_OUT)."""
    error_code = EC.REQUEST_TIMED_OUT
    retriable = True


class NetworkError(KlogError, ConnectionError):
    """The connection to a broker failed, or no broker could be reached (NETWORK_EXCEPTION)."""
    error_code = EC.NETWORK_EXCEPTION
    retriable = True


class UnsupportedVersionError(KlogError):
    """The broker does not support the request or version a client needs (UNSUPPORTED_VERSION)."""
    error_code = EC.UNSUPPORTED_VERSION


class BrokerResponseError(KlogError):
    """A Kafka error code klog has no class for; ``error_code`` and ``error_name`` say which."""

    def __init__(self, code, message=None):
        self.error_code = int(code)
        super().__init__(message or f"broker answered {error_name(code)}")


def error_name(code):
    """Kafka's name for an error code (``UNKNOWN_TOPIC_OR_PARTITION``); ``error <n>`` if unknown."""
    try:
        return EC(code).name
    except ValueError:
        return f"error {code}"


def error_for(code, message=None):
    """The exception (an instance, not raised) for a Kafka error code; None for NONE (0).
    Codes without a class give BrokerResponseError carrying the code."""
    if code == EC.NONE:
        return None
    _load_error_classes()
    cls = ERRORS.get(int(code))
    if cls is None:
        return BrokerResponseError(code, message)
    if message is None and hasattr(cls, "default_message"):
        return cls()   # the group errors word their own default
    return cls(message or error_name(code))


def code_for(exc, default=EC.UNKNOWN_SERVER_ERROR):
    """The Kafka error code an exception carries (``default`` if it has none)."""
    code = getattr(exc, "error_code", None)
    return default if code is None else code


def _load_error_classes():
    """Import the modules that define coded exceptions outside this one, so ERRORS is whole."""
    import klog.group.errors  # noqa: F401
    import klog.storage.producer_state  # noqa: F401
