"""A cluster's health at a glance, read-only: brokers, controller, and per partition leader,
replicas, ISR and high watermark, with under-replicated and offline partitions flagged.

Two sources give the same ``ClusterStatus``:

* ``from_brokers``: the Kafka protocol, as any client sees the cluster. Metadata (v9+: leader
  epoch, offline replicas, controller, cluster id) from the first bootstrap broker that answers,
  then ListOffsets(latest, read_uncommitted) to each partition's leader, whose answer is the high
  watermark. Works against ``klog serve`` (single node or cluster) and Kafka.
* ``from_zookeeper``: Kafka's (pre-KRaft) znodes alone, never written: registrations (broker
  epoch = the znode's czxid), ``/controller``, ``/controller_epoch``, ``/cluster/id``, topic
  assignments and partition states. ZooKeeper does not hold high watermarks, so they are asked
  of the leaders named there when those answer (``high_watermarks=False`` skips that).

A partition is *under-replicated* when its ISR is smaller than its replica list, and *offline*
when it has no leader or its leader is not a live broker: kafka-topics.sh's
``--under-replicated-partitions`` and ``--unavailable-partitions``. Every network wait is bounded
by one deadline; a source that does not answer within it is a ``ClusterUnreachableError``.
"""
from __future__ import annotations

import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

from klog.errors import KlogError
from klog.metadata import INTERNAL_TOPICS
from klog.protocol.errors import ErrorCode, ProtocolError
from klog.protocol import blocking
from klog.protocol.messages import ApiKey, REQUESTS

CLIENT_ID = "klog-cluster-status"
LATEST = -1                    # ListOffsets timestamp: the log end as consumers see it (the HW)
TOPIC_RESOURCE = 2             # DescribeConfigs resource type


class ClusterUnreachableError(KlogError):
    """No broker (or no ZooKeeper server) of the ones given answered in time."""


class NoClusterError(KlogError):
    """ZooKeeper answers but holds no klog/Kafka cluster under the chroot given."""


@dataclass
class BrokerStatus:
    id: int
    host: Optional[str]        # None: a replica id with no live registration
    port: Optional[int]
    alive: bool
    epoch: Optional[int] = None          # ZooKeeper only: the registration znode's czxid


@dataclass
class PartitionStatus:
    topic: str
    partition: int
    leader: int                          # -1: none
    leader_epoch: int
    replicas: list
    isr: list
    offline_replicas: list
    high_watermark: Optional[int] = None
    high_watermark_error: Optional[str] = None
    min_isr: Optional[int] = None        # the topic's min.insync.replicas, from its leader
    under_replicated: bool = False
    under_min_isr: bool = False
    offline: bool = False
    adding: list = field(default_factory=list)      # a reassignment in progress (KIP-455)
    removing: list = field(default_factory=list)


@dataclass
class ClusterStatus:
    source: str                          # "broker HOST:PORT" or "zookeeper HOSTS/chroot"
    cluster_id: Optional[str]
    controller: int                      # -1: none
    controller_epoch: Optional[int]      # ZooKeeper only
    brokers: list
    partitions: list
    notes: list = field(default_factory=list)

    @property
    def under_replicated(self) -> list:
        return [p for p in self.partitions if p.under_replicated]

    @property
    def under_min_isr(self) -> list:
        return [p for p in self.partitions if p.under_min_isr]

    @property
    def offline(self) -> list:
        return [p for p in self.partitions if p.offline]

    def summary(self) -> dict:
        return {"brokers": sum(b.alive for b in self.brokers),
                "topics": len({p.topic for p in self.partitions}),
                "partitions": len(self.partitions),
                "under_replicated": len(self.under_replicated),
                "under_min_isr": len(self.under_min_isr), "offline": len(self.offline)}

    def to_json(self, partitions=None) -> dict:
        """The document ``klog cluster status --format json`` prints; ``partitions`` (default
        all) are the ones listed, the summary always counts all."""
        return {"source": self.source, "cluster_id": self.cluster_id,
                "controller": {"id": self.controller, "epoch": self.controller_epoch},
                "brokers": [asdict(b) for b in self.brokers],
                "partitions": [asdict(p) for p in (self.partitions if partitions is None
                                                   else partitions)],
                "summary": self.summary(), "notes": list(self.notes)}


def _finish(status: ClusterStatus) -> ClusterStatus:
    live = {b.id for b in status.brokers if b.alive}
    known = {b.id for b in status.brokers}
    for p in status.partitions:
        p.under_replicated = len(p.isr) < len(p.replicas)
        p.offline = p.leader < 0 or p.leader not in live
        known.update(p.replicas)
    # Replicas on brokers that are not registered: listed as down, so the table says who is gone.
    status.brokers += [BrokerStatus(b, None, None, False) for b in sorted(known - {
        x.id for x in status.brokers})]
    if status.controller < 0 and live:
        status.notes.append("no controller: none elected yet, or the broker asked cannot reach "
                            "ZooKeeper")
    status.brokers.sort(key=lambda b: b.id)
    status.partitions.sort(key=lambda p: (p.topic, p.partition))
    return status


# -- the Kafka protocol -----------------------------------------------------------------------------
class _Connection:
    """One blocking connection for a few requests, every wait bounded by ``deadline``."""

    def __init__(self, host: str, port: int, deadline: float):
        self.address = f"{host}:{port}"
        self.deadline = deadline
        self._cid = 0
        self._versions = None
        self._sock = socket.create_connection((host, port), timeout=self._left())

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout(f"no answer from {self.address} in time")
        return left

    def close(self) -> None:
        self._sock.close()

    def call(self, api_key: int, version: int, body: dict) -> dict:
        self._cid += 1
        self._sock.settimeout(self._left())
        return blocking.call(self._sock, api_key, version, body, client_id=CLIENT_ID,
                             correlation_id=self._cid, peer=self.address,
                             before_each_read=lambda: self._sock.settimeout(self._left()))

    def version(self, api_key: int, lowest: int) -> int:
        """The highest version of ``api_key`` both sides speak (ApiVersions v0 works everywhere)."""
        if self._versions is None:
            resp = self.call(ApiKey.API_VERSIONS, 0, {})
            self._versions = {k["api_key"]: (k["min_version"], k["max_version"])
                              for k in resp["api_keys"]}
        ours = REQUESTS[api_key]
        lo, hi = self._versions.get(api_key, (0, -1))
        best = min(hi, ours.max_version)
        if best < max(lo, lowest, ours.min_version):
            raise ConnectionError(f"{self.address} does not speak {ours.name} v{lowest}+")
        return best


def _split_servers(servers: str) -> list:
    out = []
    for hp in servers.split(","):
        host, colon, port = hp.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"broker address {hp.strip()!r} is not HOST:PORT (e.g. 127.0.0.1:9092)")
        out.append((host.strip("[]"), int(port)))
    return out


def _metadata(conn: _Connection) -> dict:
    v = conn.version(ApiKey.METADATA, 1)

    def ask(names):
        return conn.call(ApiKey.METADATA, v, {
            "topics": None if names is None else [{"name": n} for n in names],
            "allow_auto_topic_creation": False, "include_cluster_authorized_operations": False,
            "include_topic_authorized_operations": False})

    md = ask(None)
    # A single klog serve leaves internal topics out of "all topics" (Kafka lists them): ask by
    # name, never creating them.
    missing = sorted(INTERNAL_TOPICS - {t["name"] for t in md["topics"]})
    if missing:
        md["topics"] += [t for t in ask(missing)["topics"] if t["error_code"] == 0]
    return md


def from_brokers(servers: str, timeout: float = 10.0) -> ClusterStatus:
    """The cluster as the first answering broker of ``servers`` (HOST:PORT[,...]) describes it."""
    deadline = time.monotonic() + timeout
    failures = []
    for host, port in _split_servers(servers):
        try:
            conn = _Connection(host, port, deadline)
            try:
                md = _metadata(conn)
                moving = _reassignments(conn)
            finally:
                conn.close()
            break
        except (OSError, ProtocolError) as exc:
            failures.append(f"{host}:{port} ({_why(exc)})")
    else:
        raise ClusterUnreachableError(f"no broker answered within {timeout:g} s: "
                                      + ", ".join(failures))
    brokers = [BrokerStatus(b["node_id"], b["host"], b["port"], True) for b in md["brokers"]]
    partitions = []
    for t in md["topics"]:
        if t["error_code"]:
            continue                         # e.g. deleted while we asked
        for p in t["partitions"]:
            partitions.append(PartitionStatus(
                t["name"], p["partition_index"], p["leader_id"], p.get("leader_epoch", -1),
                list(p["replica_nodes"]), list(p["isr_nodes"]), list(p.get("offline_replicas", [])),
                **moving.get((t["name"], p["partition_index"]), {})))
    status = _finish(ClusterStatus(f"broker {host}:{port}", md.get("cluster_id"),
                                   md.get("controller_id", -1), None, brokers, partitions))
    _high_watermarks(status, deadline)
    return _flag_min_isr(status)


def _reassignments(conn: _Connection) -> dict:
    """{(topic, partition): {"adding": [...], "removing": [...]}} of the moves in progress
    (ListPartitionReassignments); empty where the broker does not list them (a single node,
    an older Kafka, no controller just now)."""
    try:
        conn.version(ApiKey.LIST_PARTITION_REASSIGNMENTS, 0)
        resp = conn.call(ApiKey.LIST_PARTITION_REASSIGNMENTS, 0,
                         {"timeout_ms": 5000, "topics": None})
    except (OSError, ProtocolError):     # Metadata answered: the cluster's state stands
        return {}
    return {(t["name"], p["partition_index"]): {"adding": list(p["adding_replicas"]),
                                                "removing": list(p["removing_replicas"])}
            for t in resp["topics"] for p in t["partitions"]}


def _why(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _high_watermarks(status: ClusterStatus, deadline: float) -> None:
    """Ask each live leader for its partitions' latest offset (= high watermark)."""
    where = {b.id: (b.host, b.port) for b in status.brokers if b.alive}
    by_leader: dict = {}
    for p in status.partitions:
        if p.offline:
            p.high_watermark_error = "no live leader"
        else:
            by_leader.setdefault(p.leader, []).append(p)
    # One leader that does not answer (stopped, partitioned) must not eat the others' time.
    from concurrent.futures import ThreadPoolExecutor

    if by_leader:
        with ThreadPoolExecutor(min(16, len(by_leader))) as pool:
            list(pool.map(lambda item: _ask_leader(*item, where, deadline), by_leader.items()))


def _ask_leader(leader: int, parts: list, where: dict, deadline: float) -> None:
    host, port = where[leader]
    try:
        conn = _Connection(host, port, deadline)
        try:
            v = conn.version(ApiKey.LIST_OFFSETS, 1)
            topics: dict = {}
            for p in parts:
                topics.setdefault(p.topic, []).append(
                    {"partition_index": p.partition, "current_leader_epoch": -1,
                     "timestamp": LATEST})
            resp = conn.call(ApiKey.LIST_OFFSETS, v, {
                "replica_id": -1, "isolation_level": 0,
                "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]})
            min_isr = _min_isr(conn, sorted(topics))
        finally:
            conn.close()
    except (OSError, ProtocolError) as exc:
        for p in parts:
            p.high_watermark_error = f"leader {leader} at {host}:{port}: {_why(exc)}"
        return
    for p in parts:
        p.min_isr = min_isr.get(p.topic)
    got = {(t["name"], r["partition_index"]): r for t in resp["topics"] for r in t["partitions"]}
    for p in parts:
        r = got.get((p.topic, p.partition))
        if r is None:
            p.high_watermark_error = f"leader {leader} did not answer for it"
        elif r["error_code"]:
            p.high_watermark_error = f"leader {leader}: {_code_name(r['error_code'])}"
        else:
            p.high_watermark = r["offset"]


def _min_isr(conn: _Connection, topics: list) -> dict:
    """topic -> its ``min.insync.replicas`` as the leader applies it (DescribeConfigs)."""
    try:
        v = conn.version(ApiKey.DESCRIBE_CONFIGS, 1)
    except ConnectionError:
        return {}                            # not spoken there: the flag stays unknown
    resp = conn.call(ApiKey.DESCRIBE_CONFIGS, v, {
        "resources": [{"resource_type": TOPIC_RESOURCE, "resource_name": t,
                       "configuration_keys": ["min.insync.replicas"]} for t in topics],
        "include_synonyms": False, "include_documentation": False})
    out = {}
    for r in resp["results"]:
        for c in r["configs"] if not r["error_code"] else ():
            if c["name"] == "min.insync.replicas" and (c["value"] or "").isdigit():
                out[r["resource_name"]] = int(c["value"])
    return out


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error {code}"


# -- ZooKeeper --------------------------------------------------------------------------------------
def from_zookeeper(connect: str, timeout: float = 10.0,
                   high_watermarks: bool = True) -> ClusterStatus:
    """The cluster as ZooKeeper ``connect`` (HOST:PORT[,...][/chroot]) holds it, read-only."""
    import logging

    from kazoo.exceptions import ConnectionLoss, NoNodeError, SessionExpiredError

    from klog.cluster.zkstore import ClusterStore, ZooKeeperUnavailableError

    # kazoo logs every failed connection attempt; the one line we print says it better.
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)
    deadline = time.monotonic() + timeout
    # the session timeout also bounds each connection attempt (and stop() waits for one)
    store = ClusterStore(connect, session_timeout_ms=int(min(timeout, 6.0) * 1000),
                         connect_timeout_s=timeout)
    try:
        store.start_read_only()
    except ZooKeeperUnavailableError as exc:
        raise ClusterUnreachableError(str(exc)) from None
    try:
        if not store.has_cluster():
            others = store.clusters_nearby()
            hint = (" (clusters found at " + ", ".join(others) + ")") if others else ""
            raise NoClusterError(f"ZooKeeper {store.hosts} holds no klog cluster under "
                                 f"{store.chroot}{hint}: give the chroot klog serve was started "
                                 "with, as HOST:PORT/chroot")
        live = store.live_brokers()
        brokers = [BrokerStatus(b, info.get("host"), info.get("port"), True, epoch)
                   for b, (epoch, info) in sorted(live.items())]
        partitions = []
        for topic in store.topics():
            try:
                assignment = store.topic(topic)
                states = {p: store.partition_state(topic, p) for p in assignment.partitions}
            except NoNodeError:
                continue                     # deleted (or still being created) as we read
            for p, replicas in sorted(assignment.partitions.items()):
                state = states[p]
                partitions.append(PartitionStatus(
                    topic, p, state.leader, state.leader_epoch, list(replicas), list(state.isr),
                    [r for r in replicas if r not in live],
                    adding=list(assignment.adding.get(p, ())),
                    removing=list(assignment.removing.get(p, ()))))
        controller = store.controller()
        status = _finish(ClusterStatus(
            f"zookeeper {store.hosts}{store.chroot}", store.read_cluster_id(),
            -1 if controller is None else controller, store.controller_epoch(), brokers,
            partitions))
    except (ConnectionLoss, SessionExpiredError) as exc:
        raise ClusterUnreachableError(f"ZooKeeper {store.hosts} went away while reading "
                                      f"({type(exc).__name__})") from None
    finally:
        store.close()
    if high_watermarks:
        status.notes.append("ZooKeeper does not hold high watermarks: they were asked of the "
                            "leaders")
        _high_watermarks(status, max(deadline, time.monotonic() + min(timeout, 5.0)))
    else:
        status.notes.append("ZooKeeper does not hold high watermarks (not asked of the leaders)")
        for p in status.partitions:
            p.high_watermark_error = "not asked"
    return _flag_min_isr(status)


def _flag_min_isr(status: ClusterStatus) -> ClusterStatus:
    """Kafka's ``--under-min-isr-partitions``: no leader, or fewer in sync than the topic's
    ``min.insync.replicas`` (acks=all writes are refused). A partition with no live leader
    lends its topic's setting from a sibling that has one."""
    by_topic = {p.topic: p.min_isr for p in status.partitions if p.min_isr is not None}
    for p in status.partitions:
        p.min_isr = by_topic.get(p.topic)
        p.under_min_isr = p.offline or (p.min_isr is not None and len(p.isr) < p.min_isr)
    return status
