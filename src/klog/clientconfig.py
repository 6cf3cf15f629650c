"""Producer and consumer configs under Kafka's client names (ProducerConfig, ConsumerConfig).

Nothing is accepted and silently ignored: every accepted name either does what Kafka's does, or
has its embedded meaning written down here (``Setting.doc`` and ``NETWORK_ONLY``), or raises
ConfigError saying it is not supported. Names that only matter to a networked client
(``bootstrap.servers``, ``security.protocol``, ...) are accepted, so one config dict works against
klog embedded, ``klog serve`` and a Kafka cluster: the embedded clients have no connection, so
there is nothing for them to configure. Unknown names and bad values raise ConfigError.
"""

from klog.config import INT_MAX, LONG_MAX, Setting, config_mapping, unknown_config
from klog.errors import ConfigError

_CONNECTION = "no connection: the embedded client calls the broker in-process"
_SECURITY = "no connection to secure: the embedded client calls the broker in-process"
# name -> why the embedded clients accept it and do nothing with it
NETWORK_ONLY = {
    "bootstrap.servers": "no brokers to contact: the embedded client is given its broker",
    **{name: _SECURITY for name in """security.protocol sasl.mechanism sasl.mechanisms
        sasl.username sasl.password sasl.jaas.config ssl.ca.location ssl.certificate.location
        ssl.key.location ssl.truststore.location ssl.truststore.password ssl.keystore.location
        ssl.keystore.password ssl.endpoint.identification.algorithm""".split()},
    **{name: _CONNECTION for name in """reconnect.backoff.ms reconnect.backoff.max.ms
        socket.timeout.ms connections.max.idle.ms send.buffer.bytes receive.buffer.bytes
        api.version.request client.rack""".split()},
    "request.timeout.ms": "no requests: an embedded append or fetch is a local call",
    "retries": "no request can be lost on the way: an embedded append succeeds or fails once",
    "retry.backoff.ms": "no retries (see retries)",
    "max.in.flight.requests.per.connection": "no requests in flight: batches of one producer "
                                             "are appended in order under one lock",
    "metadata.max.age.ms": "partition counts come from the broker itself, and producers are "
                           "told at once when a topic grows",
    "fetch.max.wait.ms": "the embedded consumer's poll(timeout) waits for appends instead",
    "fetch.min.bytes": "the embedded consumer's poll returns what is there",
    "check.crcs": "batches are CRC-checked when appended, and read from the local log",
    "statistics.interval.ms": "librdkafka's statistics callback: the embedded clients have "
                              "none (the broker's metrics describe the logs)",
    "debug": "librdkafka's debug log contexts: the embedded clients log with the logging module",
}

_ACKS_DOC = ("0, 1, -1 or all. The embedded broker is the one replica, so 1 and all mean the same: "
             "a record is acknowledged once it is in the partition's log (in the page cache; "
             "fsynced as flush.messages / flush.ms say). With 0, as with Kafka's, the producer "
             "does not wait for the broker's answer: RecordMetadata offsets are -1.")
PRODUCER = {s.name: s for s in [
    Setting("client.id", str, "klog-producer", doc="a name for logs; the embedded broker has no "
            "per-client quotas or request logs to put it in"),
    Setting("acks", str, "all", choices=("0", "1", "-1", "all"), doc=_ACKS_DOC),
    Setting("linger.ms", int, 5, 0, INT_MAX),
    Setting("batch.size", int, 16384, 1, INT_MAX),
    Setting("batch.num.messages", int, 10000, 1, INT_MAX),
    Setting("compression.type", str, "none", choices=("none", "gzip", "snappy", "lz4", "zstd")),
    Setting("partitioner", str, "murmur2_random",
            choices=("murmur2_random", "murmur2", "default", "round_robin", "consistent_random",
                     "consistent", "random")),
    Setting("max.request.size", int, 1048576, 1, INT_MAX),
    Setting("buffer.memory", int, 32 << 20, 1, LONG_MAX, doc="a bound the embedded producer "
            "cannot exceed anyway: it holds at most one open batch per partition (batch.size "
            "bytes) and appends a full one at once, so send never waits for buffer space"),
    Setting("enable.idempotence", bool, True, doc="met by construction: the embedded producer "
            "appends each batch exactly once, in send order, with no network to lose an answer "
            "and no retry to write a batch twice. Set true explicitly, it needs acks=all, "
            "retries > 0 and max.in.flight.requests.per.connection <= 5, as Kafka's does"),
    Setting("delivery.timeout.ms", int, 120_000, 0, INT_MAX, doc="a record is appended "
            "linger.ms after its batch opens (or on flush / get), and the append succeeds or "
            "fails at once: nothing waits long enough for this bound to fire. Checked as "
            "Kafka's: set, it must be >= linger.ms + request.timeout.ms; unset, it is raised to "
            "that"),
    Setting("transactional.id", str, "", doc="transactions are not supported yet: a non-empty "
            "value raises ConfigError"),
    # Network settings the producer also validates, for Kafka's cross-checks above.
    Setting("request.timeout.ms", int, 30_000, 0, INT_MAX, doc=NETWORK_ONLY["request.timeout.ms"]),
    Setting("retries", int, INT_MAX, 0, INT_MAX, doc=NETWORK_ONLY["retries"]),
    Setting("max.in.flight.requests.per.connection", int, 5, 1, INT_MAX,
            doc=NETWORK_ONLY["max.in.flight.requests.per.connection"]),
]}


def check_producer(given, config):
    """Kafka's cross-checks of producer settings (ProducerConfig), and what is not supported.
    ``given`` is the user's dict, ``config`` the parsed one."""
    if config["transactional.id"]:
        raise ConfigError(
            f"transactional.id={config['transactional.id']!r}: transactions are not supported yet "
            "by the embedded producer")
    floor = min(config["linger.ms"] + config["request.timeout.ms"], INT_MAX)
    if config["delivery.timeout.ms"] < floor:
        if "delivery.timeout.ms" in given:
            raise ConfigError(
                f"delivery.timeout.ms ({config['delivery.timeout.ms']}) must be at least "
                f"linger.ms ({config['linger.ms']}) + request.timeout.ms "
                f"({config['request.timeout.ms']})")
        config["delivery.timeout.ms"] = floor   # Kafka raises the default the same way
    if "enable.idempotence" in given and config["enable.idempotence"]:
        if config["acks"] not in ("all", "-1"):
            raise ConfigError(f"enable.idempotence=true needs acks=all, not {config['acks']!r}")
        if config["retries"] == 0:
            raise ConfigError("enable.idempotence=true needs retries > 0")
        if config["max.in.flight.requests.per.connection"] > 5:
            raise ConfigError("enable.idempotence=true needs max.in.flight.requests.per.connection"
                              f" <= 5, not {config['max.in.flight.requests.per.connection']}")
    return config


CONSUMER = {s.name: s for s in [
    Setting("client.id", str, "klog-consumer"),
    Setting("group.id", str, ""),
    Setting("group.instance.id", str, ""),
    Setting("enable.auto.commit", bool, True),
    Setting("auto.commit.interval.ms", int, 5000, 0, INT_MAX),
    Setting("auto.offset.reset", str, "latest", choices=("earliest", "latest", "none")),
    Setting("max.poll.records", int, 500, 1, INT_MAX),
    Setting("max.poll.interval.ms", int, 300_000, 1, INT_MAX),
    Setting("session.timeout.ms", int, 45_000, 1, INT_MAX),
    Setting("heartbeat.interval.ms", int, 3000, 1, INT_MAX),
    Setting("max.partition.fetch.bytes", int, 1048576, 1, INT_MAX),
    Setting("fetch.max.bytes", int, 52428800, 1, INT_MAX),
    Setting("partition.assignment.strategy", str, "range,roundrobin"),
    Setting("isolation.level", str, "read_uncommitted", choices=("read_uncommitted", "read_committed")),
    Setting("exclude.internal.topics", bool, True),
    Setting("allow.auto.create.topics", bool, True),
]}


def parse(config, settings, what):
    """{name: value} with defaults filled in; ConfigError for unknown names or bad values."""
    out = {name: s.default for name, s in settings.items()}
    for key, value in config_mapping(config, f"{what} config").items():
        if key == "partitioner" and key in settings and callable(value):
            out[key] = value
        elif key in settings:
            if key == "acks" and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            out[key] = settings[key].parse(value)
        elif key in NETWORK_ONLY:
            continue
        else:
            raise unknown_config(key, settings, f"{what} config")
    return out
