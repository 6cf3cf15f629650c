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
