"""``klog serve --config FILE``: a Kafka ``server.properties`` mapped onto klog's settings.

- ``listeners`` (its PLAINTEXT listener) and ``advertised.listeners`` give the bind and the
  advertised address; ``log.dirs`` / ``log.dir`` the data directory (one: klog has no JBOD).
- Broker settings klog implements (``num.partitions``, ``log.retention.hours``, ...) pass
  through and are validated as ``-c KEY=VALUE`` values are.
- Kafka settings klog has no use for (threads, socket buffers, replication, KRaft/ZooKeeper
  quorum, TLS/SASL, ...) are a warning naming file and line, so a stock Kafka file works.
- Cluster mode: ``zookeeper.connect`` with ``broker.id`` / ``node.id`` (and the cluster
  settings of ``CLUSTER_SETTINGS``: ``replica.lag.time.max.ms``, ``controlled.shutdown.*``,
  ``zookeeper.*.timeout.ms``) make ``klog serve`` a cluster member, as ``--zookeeper`` and
  ``--node-id`` do. Without ``zookeeper.connect`` a node id is ignored with a warning, as
  before (a stock KRaft file names one).
- Anything else is an error naming file and line (with a "did you mean"): a typo in a setting
  must not silently leave the default in force.
"""
import difflib
from dataclasses import dataclass, field

from klog import properties
from klog.config import BROKER_SETTINGS, BROKER_TO_TOPIC, SETTINGS
from klog.errors import KlogError

# Kafka broker settings that have no meaning for klog (one process, one replica, PLAINTEXT).
IGNORED = frozenset("""
process.roles controller.quorum.voters controller.quorum.bootstrap.servers
controller.listener.names inter.broker.listener.name listener.security.protocol.map
num.network.threads num.io.threads num.replica.fetchers num.recovery.threads.per.data.dir
socket.send.buffer.bytes socket.receive.buffer.bytes socket.request.max.bytes
transaction.state.log.replication.factor
transaction.state.log.min.isr delete.topic.enable
log.cleaner.threads log.cleaner.dedupe.buffer.size log.cleaner.io.buffer.size
log.flush.scheduler.interval.ms log.flush.offset.checkpoint.interval.ms
queued.max.requests background.threads metadata.log.dir broker.rack
""".split())
IGNORED_PREFIXES = ("zookeeper.", "ssl.", "sasl.", "replica.", "controller.", "transaction.",
                    "metric.", "metrics.", "authorizer.", "super.users", "security.", "confluent.",
                    "quota.", "group.coordinator.", "share.")
# Cluster-mode settings (integers, ms unless named otherwise) -> klog.cluster.node.ClusterNode's
# keyword arguments; ``klog serve -c KEY=VALUE`` takes them too.
CLUSTER_SETTINGS = {
    "replica.lag.time.max.ms": "replica_lag_time_max_ms",
    "controlled.shutdown.max.retries": "controlled_shutdown_max_retries",
    "controlled.shutdown.retry.backoff.ms": "controlled_shutdown_retry_backoff_ms",
    "zookeeper.connection.timeout.ms": "connection_timeout_ms",
    "zookeeper.session.timeout.ms": "session_timeout_ms",
}
MAPPED = ("listeners", "advertised.listeners", "log.dirs", "log.dir", "broker.id", "node.id",
          "zookeeper.connect", *CLUSTER_SETTINGS)


class ServerPropertiesError(KlogError, ValueError):
    """A server.properties setting klog cannot honour; the message names file and line."""


@dataclass
class ServerProperties:
    listen: str = None            # HOST:PORT from listeners
    advertised: str = None        # HOST:PORT from advertised.listeners
    data_dir: str = None          # from log.dirs / log.dir
    node_id: int = None           # from broker.id / node.id (cluster mode)
    zookeeper: str = None         # from zookeeper.connect (cluster mode)
    replica_lag_time_max_ms: int = None   # from replica.lag.time.max.ms (cluster mode)
    cluster_settings: dict = field(default_factory=dict)   # CLUSTER_SETTINGS' keyword arguments
    settings: dict = field(default_factory=dict)   # broker settings, Kafka's names
    warnings: list = field(default_factory=list)   # "FILE:LINE: ..." lines for stderr


def load(path):
    result = ServerProperties()
    cluster_warnings = []
    known = list(BROKER_SETTINGS) + list(BROKER_TO_TOPIC)
    for prop in properties.load(path):
        where = f"{path}:{prop.line}"
        key, value = prop.key, prop.value.strip()
        if key in ("listeners", "advertised.listeners"):
            address = _plaintext_address(value, key, where)
            if key == "listeners":
                result.listen = address
            else:
                result.advertised = address
        elif key in ("log.dirs", "log.dir"):
            dirs = [d.strip() for d in value.split(",") if d.strip()]
            if len(dirs) != 1:
                raise ServerPropertiesError(
                    f"{where}: {key}={value!r}: klog stores everything in one data directory; "
                    "give exactly one")
            result.data_dir = dirs[0]
        elif key in ("broker.id", "node.id") or key in CLUSTER_SETTINGS:
            # Cluster settings: used with zookeeper.connect, else ignored as before (a stock
            # KRaft file names a node.id too); the warning goes if zookeeper.connect comes.
            cluster_warnings.append(len(result.warnings))
            result.warnings.append(f"{where}: ignoring {key!r}: a Kafka setting klog does not use")
            if not value.lstrip("-").isdigit() or int(value) < 0:
                raise ServerPropertiesError(f"{where}: {key}={value!r} is not a non-negative integer")
            if key in CLUSTER_SETTINGS:
                result.cluster_settings[CLUSTER_SETTINGS[key]] = int(value)
                if key == "replica.lag.time.max.ms":
                    result.replica_lag_time_max_ms = int(value)
            elif result.node_id is not None and result.node_id != int(value):
                raise ServerPropertiesError(f"{where}: {key}={value} disagrees with the node id "
                                            f"{result.node_id} given before")
            else:
                result.node_id = int(value)
        elif key == "zookeeper.connect":
            result.zookeeper = value
        elif key in BROKER_SETTINGS or key in BROKER_TO_TOPIC:
            setting = BROKER_SETTINGS.get(key) or SETTINGS[BROKER_TO_TOPIC.get(key)]
            try:
                setting.parse(value)
            except (KlogError, ValueError, TypeError) as exc:
                raise ServerPropertiesError(f"{where}: {exc}") from None
            result.settings[key] = value
        elif key in IGNORED or key.startswith(IGNORED_PREFIXES):
            result.warnings.append(f"{where}: ignoring {key!r}: a Kafka setting klog does not use")
        else:
            close = difflib.get_close_matches(key, known + list(MAPPED) + sorted(IGNORED), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ServerPropertiesError(f"{where}: unknown broker setting {key!r}{hint}")
    if result.zookeeper is None:
        result.node_id = result.replica_lag_time_max_ms = None
        result.cluster_settings = {}
    else:
        for i in reversed(cluster_warnings):
            del result.warnings[i]
    return result


def _plaintext_address(value, key, where):
    """HOST:PORT of the PLAINTEXT entry of a Kafka listener list (``PLAINTEXT://host:port,...``).
    An empty host means every interface, as in Kafka."""
    entries = [e.strip() for e in value.split(",") if e.strip()]
    for entry in entries:
        name, sep, rest = entry.partition("://")
        if not sep:
            raise ServerPropertiesError(f"{where}: {key}: {entry!r} is not NAME://HOST:PORT")
        if name.upper() == "PLAINTEXT":
            host, colon, port = rest.rpartition(":")
            if not colon or not port.isdigit():
                raise ServerPropertiesError(f"{where}: {key}: {entry!r} has no port")
            if key == "listeners" and host == "":
                host = "0.0.0.0"
            return f"{host}:{port}"
    raise ServerPropertiesError(f"{where}: {key}={value!r} has no PLAINTEXT listener "
                                "(klog serves PLAINTEXT only)")
