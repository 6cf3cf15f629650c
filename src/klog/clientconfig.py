"""Producer and consumer configs under Kafka's client names (ProducerConfig, ConsumerConfig).

Names that only matter to a networked client (``bootstrap.servers``, ``security.protocol``, ...)
are accepted and ignored, so one config dict works against klog embedded, ``klog serve`` and a
Kafka cluster. Unknown names and bad values raise ConfigError.
"""

from klog.config import INT_MAX, LONG_MAX, Setting, config_mapping, unknown_config

NETWORK_ONLY = frozenset("""
bootstrap.servers security.protocol sasl.mechanism sasl.mechanisms sasl.username sasl.password
sasl.jaas.config ssl.ca.location ssl.certificate.location ssl.key.location ssl.truststore.location
ssl.truststore.password ssl.keystore.location ssl.keystore.password ssl.endpoint.identification.algorithm
request.timeout.ms retries retry.backoff.ms reconnect.backoff.ms reconnect.backoff.max.ms
socket.timeout.ms metadata.max.age.ms connections.max.idle.ms max.in.flight.requests.per.connection
send.buffer.bytes receive.buffer.bytes api.version.request client.rack fetch.max.wait.ms
fetch.min.bytes check.crcs statistics.interval.ms debug
""".split())

PRODUCER = {s.name: s for s in [
    Setting("client.id", str, "klog-producer"),
    Setting("acks", str, "all", choices=("0", "1", "-1", "all")),
    Setting("linger.ms", int, 5, 0, INT_MAX),
    Setting("batch.size", int, 16384, 1, INT_MAX),
    Setting("batch.num.messages", int, 10000, 1, INT_MAX),
    Setting("compression.type", str, "none", choices=("none", "gzip", "snappy", "lz4", "zstd")),
    Setting("partitioner", str, "murmur2_random",
            choices=("murmur2_random", "murmur2", "default", "round_robin", "consistent_random",
                     "consistent", "random")),
    Setting("max.request.size", int, 1048576, 1, INT_MAX),
    Setting("buffer.memory", int, 32 << 20, 1, LONG_MAX),
    Setting("enable.idempotence", bool, True),
    Setting("delivery.timeout.ms", int, 120_000, 0, INT_MAX),
    Setting("transactional.id", str, ""),
]}

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
