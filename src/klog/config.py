"""Topic/log configuration under Kafka's names (LogConfig.java, TopicConfig.java).

``LogConfig.from_dict`` accepts a dict of Kafka topic-config names; values may be Python values or
the strings Kafka tools pass ("1048576", "true"). Unknown names and bad values raise ConfigError
naming the key, the value and what was expected.
"""
import difflib
from dataclasses import dataclass, fields

from klog.errors import ConfigError

LONG_MAX = (1 << 63) - 1
INT_MAX = (1 << 31) - 1


@dataclass(frozen=True)
class Setting:
    name: str
    kind: type          # int, float, bool or str
    default: object
    minimum: float = None
    maximum: float = None
    choices: tuple = None
    doc: str = ""

    def parse(self, value):
        v = value
        try:
            if self.kind is bool:
                if isinstance(v, str) and v.lower() in ("true", "false"):
                    v = v.lower() == "true"
                elif not isinstance(v, bool):
                    raise TypeError
            elif self.kind is int:
                if isinstance(v, bool) or isinstance(v, float) and not v.is_integer():
                    raise TypeError
                v = int(v.strip()) if isinstance(v, str) else int(v)
            elif self.kind is float:
                if isinstance(v, bool):
                    raise TypeError
                v = float(v)
            elif self.kind is str:
                if not isinstance(v, str):
                    raise TypeError
        except (TypeError, ValueError):
            raise ConfigError(
                f"{self.name}: expected {self.expected()}, got {value!r}") from None
        if self.minimum is not None and v < self.minimum or (
                self.maximum is not None and v > self.maximum):
            raise ConfigError(f"{self.name}: expected {self.expected()}, got {value!r}")
        if self.choices is not None:
            parts = [p.strip() for p in v.split(",")] if self.name == "cleanup.policy" else [v]
            if not all(p in self.choices for p in parts) or not parts:
                raise ConfigError(f"{self.name}: expected {self.expected()}, got {value!r}")
            v = ",".join(parts)
        return v

    def expected(self):
        if self.choices:
            return "one of " + ", ".join(self.choices)
        what = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[self.kind]
        if self.minimum is not None and self.maximum is not None:
            return f"{what} in [{self.minimum}, {self.maximum}]"
        if self.minimum is not None:
            return f"{what} >= {self.minimum}"
        return what


DAY_MS = 24 * 3600 * 1000
SETTINGS = {s.name: s for s in [
    Setting("segment.bytes", int, 1 << 30, 1024, INT_MAX, doc="roll a new segment past this size"),
    Setting("segment.ms", int, 7 * DAY_MS, 1, LONG_MAX, doc="roll a segment this old"),
    Setting("segment.jitter.ms", int, 0, 0, LONG_MAX),
    Setting("segment.index.bytes", int, 10 << 20, 12, INT_MAX, doc="max size of each index file"),
    Setting("index.interval.bytes", int, 4096, 0, INT_MAX, doc="log bytes between index entries"),
    Setting("flush.messages", int, LONG_MAX, 1, LONG_MAX, doc="fsync after this many messages"),
    Setting("flush.ms", int, LONG_MAX, 0, LONG_MAX, doc="fsync when the oldest unflushed data is this old"),
    Setting("retention.ms", int, 7 * DAY_MS, -1, LONG_MAX, doc="-1: keep forever"),
    Setting("retention.bytes", int, -1, -1, LONG_MAX, doc="-1: no size limit"),
    Setting("max.message.bytes", int, 1048588, 0, INT_MAX, doc="largest batch accepted"),
    Setting("message.timestamp.type", str, "CreateTime", choices=("CreateTime", "LogAppendTime")),
    Setting("cleanup.policy", str, "delete", choices=("delete", "compact")),
    Setting("compression.type", str, "producer",
            choices=("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")),
    Setting("delete.retention.ms", int, DAY_MS, 0, LONG_MAX),
    Setting("min.compaction.lag.ms", int, 0, 0, LONG_MAX),
    Setting("max.compaction.lag.ms", int, LONG_MAX, 1, LONG_MAX),
    Setting("min.cleanable.dirty.ratio", float, 0.5, 0, 1),
    Setting("file.delete.delay.ms", int, 60000, 0, LONG_MAX),
    Setting("preallocate", bool, False),
    Setting("min.insync.replicas", int, 1, 1, INT_MAX),
    Setting("unclean.leader.election.enable", bool, False),
    Setting("message.timestamp.before.max.ms", int, LONG_MAX, 0, LONG_MAX),
    Setting("message.timestamp.after.max.ms", int, LONG_MAX, 0, LONG_MAX),
]}


@dataclass(frozen=True)
class LogConfig:
    """A validated set of topic configs; attributes use underscores (``segment_bytes``)."""
    segment_bytes: int
    segment_ms: int
    segment_jitter_ms: int
    segment_index_bytes: int
    index_interval_bytes: int
    flush_messages: int
    flush_ms: int
    retention_ms: int
    retention_bytes: int
    max_message_bytes: int
    message_timestamp_type: str
    cleanup_policy: str
    compression_type: str
    delete_retention_ms: int
    min_compaction_lag_ms: int
    max_compaction_lag_ms: int
    min_cleanable_dirty_ratio: float
    file_delete_delay_ms: int
    preallocate: bool
    min_insync_replicas: int
    unclean_leader_election_enable: bool
    message_timestamp_before_max_ms: int
    message_timestamp_after_max_ms: int

    @classmethod
    def from_dict(cls, config=None):
        if config is None:
            config = {}
        if isinstance(config, LogConfig):
            return config
        if not isinstance(config, dict):
            raise ConfigError(f"config must be a dict of Kafka config names, not {type(config).__name__}")
        values = {name: s.default for name, s in SETTINGS.items()}
        for key, value in config.items():
            if key not in SETTINGS:
                hint = difflib.get_close_matches(str(key), SETTINGS, n=1)
                raise ConfigError(f"unknown config {key!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))
            values[key] = SETTINGS[key].parse(value)
        return cls(**{k.replace(".", "_"): v for k, v in values.items()})

    def to_dict(self):
        """Kafka names → values, every setting."""
        return {f.name.replace("_", "."): getattr(self, f.name) for f in fields(self)}

    def updated(self, changes):
        merged = self.to_dict()
        merged.update(changes)
        return LogConfig.from_dict(merged)
