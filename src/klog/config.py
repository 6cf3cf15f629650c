"""Topic/log configuration under Kafka's names (LogConfig.java, TopicConfig.java).

``LogConfig.from_dict`` accepts a dict of Kafka topic-config names; values may be Python values or
the strings Kafka tools pass ("1048576", "true"). Unknown names and bad values raise ConfigError
naming the key, the value and what was expected.
"""
import difflib
from dataclasses import dataclass, field, fields

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
                if v != v:  # NaN compares false with both bounds, so it would pass the range
                    raise ValueError
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

    @property
    def list_valued(self):
        """A comma-separated list (Kafka's ConfigDef.Type.LIST): APPEND/SUBTRACT apply."""
        return self.name in LIST_CONFIGS

    @property
    def config_type(self):
        """Kafka's DescribeConfigs ConfigType: BOOLEAN 1, STRING 2, INT 3, LONG 5, DOUBLE 6,
        LIST 7."""
        if self.list_valued:
            return 7
        if self.kind is bool:
            return 1
        if self.kind is float:
            return 6
        if self.kind is int:
            return 5 if self.maximum == LONG_MAX else 3
        return 2

    def expected(self):
        if self.choices:
            return "one of " + ", ".join(self.choices)
        what = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[self.kind]
        if self.minimum is not None and self.maximum is not None:
            return f"{what} in [{self.minimum}, {self.maximum}]"
        if self.minimum is not None:
            return f"{what} >= {self.minimum}"
        return what


def config_mapping(config, what="config"):
    """``config`` as a dict (None: empty); ConfigError for anything else."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ConfigError(f"{what} must be a dict of Kafka config names, not {type(config).__name__}")
    return config


def unknown_config(key, known, what="config"):
    """The ConfigError for a name we do not know, with the closest known name as a hint."""
    hint = difflib.get_close_matches(str(key), list(known), n=1)
    return ConfigError(f"unknown {what} {key!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))


DAY_MS = 24 * 3600 * 1000
LIST_CONFIGS = frozenset({"cleanup.policy", "log.cleanup.policy"})
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
        if isinstance(config, LogConfig):
            return config
        values = {name: s.default for name, s in SETTINGS.items()}
        for key, value in config_mapping(config).items():
            if key not in SETTINGS:
                raise unknown_config(key, SETTINGS)
            values[key] = SETTINGS[key].parse(value)
        return cls(**{k.replace(".", "_"): v for k, v in values.items()})

    def to_dict(self):
        """Kafka names → values, every setting."""
        return {f.name.replace("_", "."): getattr(self, f.name) for f in fields(self)}

    def updated(self, changes):
        merged = self.to_dict()
        merged.update(changes)
        return LogConfig.from_dict(merged)


# Broker settings (Kafka's server.properties names). ``log.*`` names give the defaults of the
# topic configs they map to; a topic's own config overrides them.
BROKER_TO_TOPIC = {
    "log.segment.bytes": "segment.bytes",
    "log.roll.ms": "segment.ms",
    "log.roll.jitter.ms": "segment.jitter.ms",
    "log.index.size.max.bytes": "segment.index.bytes",
    "log.index.interval.bytes": "index.interval.bytes",
    "log.flush.interval.messages": "flush.messages",
    "log.flush.interval.ms": "flush.ms",
    "log.retention.ms": "retention.ms",
    "log.retention.bytes": "retention.bytes",
    "message.max.bytes": "max.message.bytes",
    "log.message.timestamp.type": "message.timestamp.type",
    "log.cleanup.policy": "cleanup.policy",
    "compression.type": "compression.type",
    "log.cleaner.delete.retention.ms": "delete.retention.ms",
    "log.cleaner.min.compaction.lag.ms": "min.compaction.lag.ms",
    "log.cleaner.max.compaction.lag.ms": "max.compaction.lag.ms",
    "log.cleaner.min.cleanable.ratio": "min.cleanable.dirty.ratio",
    "log.segment.delete.delay.ms": "file.delete.delay.ms",
    "log.preallocate": "preallocate",
    "min.insync.replicas": "min.insync.replicas",
    "unclean.leader.election.enable": "unclean.leader.election.enable",
}

# A topic config's broker synonyms, most specific first (Kafka's ServerTopicConfigSynonyms), and
# the broker name that carries Kafka's default value when no synonym is set anywhere.
TOPIC_SYNONYMS = {t: [b] for b, t in BROKER_TO_TOPIC.items()}
TOPIC_SYNONYMS["retention.ms"] = ["log.retention.ms", "log.retention.minutes", "log.retention.hours"]
DEFAULT_SYNONYM = {t: (names[-1] if t != "retention.ms" else "log.retention.hours")
                   for t, names in TOPIC_SYNONYMS.items()}

# Broker configs that Kafka lets DescribeConfigs/IncrementalAlterConfigs change on a running
# broker (DynamicLogConfig's reconfigurable topic-default synonyms); the rest are read-only.
DYNAMIC_BROKER_CONFIGS = frozenset(BROKER_TO_TOPIC)

BROKER_SETTINGS = {s.name: s for s in [
    Setting("num.partitions", int, 1, 1, 1_000_000),
    Setting("auto.create.topics.enable", bool, True),
    Setting("log.retention.check.interval.ms", int, 300_000, 1, LONG_MAX),
    Setting("log.cleaner.enable", bool, True),
    Setting("log.cleaner.backoff.ms", int, 15_000, 0, LONG_MAX),
    Setting("offsets.topic.num.partitions", int, 50, 1, 1_000_000),
    Setting("offsets.retention.minutes", int, 7 * 24 * 60, 1, INT_MAX),
    Setting("offsets.topic.segment.bytes", int, 100 << 20, 1024, INT_MAX),
    # Cluster mode (klog serve --zookeeper); a single node has one replica of everything.
    Setting("offsets.topic.replication.factor", int, 3, 1, 32767,
            doc="replicas of __consumer_offsets, capped by the live brokers when it is created"),
    Setting("default.replication.factor", int, 1, 1, 32767,
            doc="replicas of a topic created with replication factor -1 or auto-created"),
    Setting("auto.leader.rebalance.enable", bool, True,
            doc="the controller moves leadership back to preferred replicas periodically"),
    Setting("leader.imbalance.check.interval.seconds", int, 300, 1, LONG_MAX),
    Setting("leader.imbalance.per.broker.percentage", int, 10, 0, 100,
            doc="rebalance a broker's partitions when more than this share of those it is "
                "preferred leader of are led elsewhere"),
    # Kafka's default is 3000, and `klog serve` (and ServerThread) use it: klog.server's
    # SERVE_DEFAULTS. Embedded apps start and stop groups often, so the embedded broker waits 0.
    Setting("group.initial.rebalance.delay.ms", int, 0, 0, INT_MAX,
            doc="the first rebalance of an empty group waits this long for more members, again "
                "for each member that joins meanwhile, up to the rebalance timeout (Kafka: "
                "3000; klog serve: 3000; embedded broker: 0)"),
    Setting("group.min.session.timeout.ms", int, 6000, 0, INT_MAX),
    Setting("group.max.session.timeout.ms", int, 1_800_000, 0, INT_MAX),
    Setting("broker.id", int, 0, 0, INT_MAX),
    # Connection limits of `klog serve` (klog.server.limits); the embedded broker ignores them.
    Setting("max.connections", int, INT_MAX, 0, INT_MAX,
            doc="connections open at once; one more is closed right after accept (Kafka "
                "instead stops accepting until one closes)"),
    Setting("max.connections.per.ip", int, INT_MAX, 0, INT_MAX,
            doc="connections open at once from one IP address; more are closed after accept"),
    Setting("max.connections.per.ip.overrides", str, "",
            doc="per-IP exceptions to max.connections.per.ip: 'IP:COUNT,IP:COUNT'"),
    Setting("connections.max.idle.ms", int, 600_000, 1, LONG_MAX,
            doc="close a connection that neither sent nor received for this long; one waiting "
                "for its answer (a long-poll Fetch, a rebalance) is not idle"),
    Setting("queued.max.request.bytes", int, 256 << 20, -1, LONG_MAX,
            doc="bytes of requests being received, over all connections; at the cap the "
                "server stops reading from sockets with incomplete frames until memory is "
                "released; -1: no cap (Kafka's default, klog's is 256 MiB)"),
    Setting("log.retention.hours", int, 168, -1, INT_MAX),
    Setting("log.retention.minutes", int, None, -1, INT_MAX),
    # klog's own: the most partitions (all topics, internal ones included) this broker holds;
    # creations past it fail with INVALID_PARTITIONS. Default: what the open-file limit allows
    # (klog.fdlimit), so a data directory never holds more partitions than it can reopen.
    Setting("max.partitions", int, None, 1, INT_MAX),
]}


@dataclass(frozen=True)
class BrokerConfig:
    """Validated broker settings plus the topic-config defaults that ``log.*`` names set."""
    settings: dict
    topic_defaults: dict
    given: dict = field(default_factory=dict)   # the names and values as passed in

    @classmethod
    def from_dict(cls, config=None):
        if isinstance(config, BrokerConfig):
            return config
        config = config_mapping(config)
        settings = {name: s.default for name, s in BROKER_SETTINGS.items()}
        defaults = {}
        for key, value in config.items():
            if key in BROKER_SETTINGS:
                settings[key] = BROKER_SETTINGS[key].parse(value)
            elif key in BROKER_TO_TOPIC:
                topic_key = BROKER_TO_TOPIC[key]
                defaults[topic_key] = SETTINGS[topic_key].parse(value)
            else:
                raise unknown_config(key, list(BROKER_SETTINGS) + list(BROKER_TO_TOPIC), "broker config")
        if "retention.ms" not in defaults:
            if settings["log.retention.minutes"] is not None:
                defaults["retention.ms"] = settings["log.retention.minutes"] * 60_000
            elif "log.retention.hours" in config:
                hours = settings["log.retention.hours"]
                defaults["retention.ms"] = -1 if hours < 0 else hours * 3_600_000
        return cls(settings, defaults, dict(config))

    def __getitem__(self, name):
        return self.settings[name]

    def setting(self, name):
        """The Setting that validates broker config ``name``."""
        if name in BROKER_SETTINGS:
            return BROKER_SETTINGS[name]
        return SETTINGS[BROKER_TO_TOPIC[name]]

    def value(self, name):
        """The effective value of broker config ``name`` (a ``log.*`` name: the topic default)."""
        if name in BROKER_SETTINGS:
            return self.settings[name]
        topic_name = BROKER_TO_TOPIC[name]
        return self.topic_defaults.get(topic_name, SETTINGS[topic_name].default)

    def describe(self):
        """Kafka names → (value, set here rather than defaulted), for DescribeConfigs."""
        out = {name: (value, value != BROKER_SETTINGS[name].default)
               for name, value in self.settings.items() if value is not None}
        for broker_name, topic_name in BROKER_TO_TOPIC.items():
            if topic_name in self.topic_defaults:
                out[broker_name] = (self.topic_defaults[topic_name], True)
            else:
                out[broker_name] = (SETTINGS[topic_name].default, False)
        return out

    def topic_config(self, overrides=None):
        """A topic's LogConfig: Kafka's defaults, then the broker's ``log.*`` defaults, then the
        topic's own overrides."""
        merged = dict(self.topic_defaults)
        merged.update(overrides or {})
        return LogConfig.from_dict(merged)
