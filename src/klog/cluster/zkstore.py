"""klog's cluster state in ZooKeeper, in Kafka's (pre-KRaft) layout and JSON, through kazoo.

ZooKeeper is the one consensus engine: every decision is a znode write that either lands on the
version it was based on or fails. Paths, under a chroot (default ``/klog``):

    /cluster/id                              {"version":"1","id":"<cluster id>"}
    /controller                              ephemeral {"version":1,"brokerid":N,"timestamp":"ms"}
    /controller_epoch                        "<epoch>"; its znode version fences controller writes
    /brokers/ids/<id>                        ephemeral registration; broker epoch = its czxid
    /brokers/topics/<topic>                  {"version":3,"topic_id":"<b64>","partitions":{"0":[1,2]}}
    /brokers/topics/<topic>/partitions/<p>/state
                                             {"controller_epoch":C,"leader":L,"version":1,
                                              "leader_epoch":E,"isr":[...]}
    /admin/delete_topics/<topic>             empty: the topic is being deleted (Kafka's marker)
    /admin/leader_epoch_floor                klog's: {"version":1,"floor":F}; partitions of a
                                             topic created later start at leader epoch F, so a
                                             re-created name never goes back in epochs
    /config/topics/<topic>                   {"version":1,"config":{"k":"v",...}}: overrides
    /config/changes/config_change_NNNNNNNNNN sequential {"version":2,"entity_path":"topics/<t>"}:
                                             brokers re-read what it names (Kafka's notification)

Writes by the controller are multi-ops that also check the ``/controller_epoch`` version, so a
controller that lost its place (its session expired, another was elected) changes nothing
(KAFKA-6082). A leader's own ISR change is a compare-and-set on the state znode; if its answer was
lost and it retries, it re-reads and accepts a state equal to what it wrote (as Kafka does).

Everything read from ZooKeeper is checked: a znode that does not parse is a
``CorruptClusterStateError`` naming the path, never a crash or a silent default.
"""
from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Optional

from kazoo.client import KazooClient
from kazoo.exceptions import (BadVersionError, KazooException, NodeExistsError, NoNodeError,
                              RolledBackError)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

from klog.cluster.state import LeaderAndIsr
from klog.errors import KlogError

DEFAULT_CHROOT = "/klog"


class ClusterStoreError(KlogError):
    """Base of the errors about cluster state in ZooKeeper."""


class ZooKeeperUnavailableError(ClusterStoreError):
    """ZooKeeper could not be reached (down, wrong address, or too slow)."""


class CorruptClusterStateError(ClusterStoreError):
    """A znode holds something that is not what klog (or Kafka) writes there."""


class NodeIdTakenError(ClusterStoreError):
    """Another live broker is registered with this node id."""


class NotControllerError(ClusterStoreError):
    """A controller write was fenced: another controller has been elected since."""


@dataclass(frozen=True)
class ControllerEpoch:
    """The epoch this broker controls in, and the ``/controller_epoch`` znode version that
    fences its writes."""

    epoch: int
    zk_version: int


@dataclass(frozen=True)
class TopicAssignment:
    topic_id: uuid.UUID
    partitions: dict          # partition -> tuple of broker ids, the first preferred
    version: int = -1         # of the topic znode: CreatePartitions writes by compare-and-set
    # A reassignment in progress (KIP-455): partition -> replicas being added / removed.
    adding: dict = field(default_factory=dict)
    removing: dict = field(default_factory=dict)


CONFIG_CHANGE_PREFIX = "config_change_"
DELETE_BATCH = 1000           # znodes deleted per multi-op (ZooKeeper's 1 MB request limit)
CREATE_BATCH = 500            # partitions (two znodes each) created per multi-op
# Kafka's changeExpirationMs: older notifications are deleted by the next config write (a broker
# that was away longer re-reads every topic's config when it comes back).
CONFIG_CHANGE_EXPIRY_MS = 15 * 60 * 1000


def parse_connect(connect: str) -> tuple[str, str]:
    """``host:port[,host:port...][/chroot]`` -> (hosts, chroot); the chroot defaults to /klog."""
    if not connect or connect.strip() != connect:
        raise ValueError(f"zookeeper.connect {connect!r}: expected host:port[,host:port...][/chroot]")
    hosts, slash, chroot = connect.partition("/")
    chroot = "/" + chroot.rstrip("/") if slash else DEFAULT_CHROOT
    for hp in hosts.split(","):
        host, colon, port = hp.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"zookeeper.connect {connect!r}: {hp!r} is not host:port")
    if chroot == "/" or "//" in chroot:
        raise ValueError(f"zookeeper.connect {connect!r}: bad chroot {chroot!r}")
    return hosts, chroot


def _topic_id_text(topic_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(topic_id.bytes).decode().rstrip("=")


def _topic_id_parse(text: str) -> uuid.UUID:
    return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def _config_json(config: dict) -> bytes:
    return json.dumps({"version": 1, "config": {k: str(v) for k, v in sorted(config.items())}}
                      ).encode()


def _state_json(state: LeaderAndIsr) -> bytes:
    return json.dumps({"controller_epoch": state.controller_epoch, "leader": state.leader,
                       "version": 1, "leader_epoch": state.leader_epoch,
                       "isr": list(state.isr)}).encode()


class ClusterStore:
    """A broker's view of the cluster in ZooKeeper. Thread-safe as kazoo is; no caching."""

    def __init__(self, connect: str, *, session_timeout_ms: int = 6000,
                 connect_timeout_s: float = 10.0):
        self.hosts, self.chroot = parse_connect(connect)
        self.connect = connect
        # Reconnection attempts at most a second apart (kazoo's default backs off to a minute):
        # a ZooKeeper that comes up late is joined as soon as it answers, within the timeout.
        self._zk = KazooClient(hosts=self.hosts, timeout=session_timeout_ms / 1000,
                               connection_retry=KazooRetry(max_tries=-1, delay=0.1, backoff=2,
                                                           max_delay=1.0))
        self._connect_timeout_s = connect_timeout_s

    # -- session -------------------------------------------------------------------------------

    def start(self) -> "ClusterStore":
        self._connect(" (zookeeper.connection.timeout.ms)")
        try:
            for path in ("", "/brokers/ids", "/brokers/topics"):
                self._zk.ensure_path(self.chroot + path)
        except (KazooException, KazooTimeoutError) as e:
            self.close()
            raise ZooKeeperUnavailableError(
                f"ZooKeeper at {self.hosts}: could not create {self.chroot}: "
                f"{type(e).__name__} {e}".rstrip()) from None
        return self

    def start_read_only(self) -> "ClusterStore":
        """Connect without creating anything (``klog cluster status``): the chroot may not exist."""
        self._connect("")
        return self

    def _connect(self, which_setting: str) -> None:
        """Open the session, or ZooKeeperUnavailableError naming the wait (and ``which_setting``
        set it, for a broker)."""
        try:
            self._zk.start(timeout=self._connect_timeout_s)
        except KazooTimeoutError:
            self._zk.stop()
            self._zk.close()
            raise ZooKeeperUnavailableError(
                f"ZooKeeper at {self.hosts} did not answer within {self._connect_timeout_s:g} s"
                f"{which_setting}") from None

    def has_cluster(self) -> bool:
        """Whether brokers ever registered under the chroot (``/brokers/ids`` exists)."""
        return self._zk.exists(self._path("brokers", "ids")) is not None

    def clusters_nearby(self) -> list[str]:
        """Top-level chroots that hold a cluster: a hint when the chroot given holds none."""
        return [f"/{c}" for c in sorted(self._zk.get_children("/"))
                if self._zk.exists(f"/{c}/brokers/ids") is not None]

    def close(self) -> None:
        self._zk.stop()
        self._zk.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    @property
    def client(self) -> KazooClient:
        return self._zk

    def _path(self, *parts) -> str:
        return "/".join((self.chroot, *map(str, parts)))

    def _read_json(self, path: str):
        data, stat = self._zk.get(path)
        return self._parse_json(path, data), stat

    @staticmethod
    def _parse_json(path: str, data: bytes):
        try:
            return json.loads(data.decode())
        except (UnicodeDecodeError, ValueError, AttributeError) as e:
            raise CorruptClusterStateError(f"ZooKeeper node {path}: not JSON ({e})") from None

    # -- cluster id ----------------------------------------------------------------------------

    def cluster_id(self) -> str:
        """The cluster's id, created by the first broker that asks."""
        path = self._path("cluster", "id")
        new = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        try:
            self._zk.create(path, json.dumps({"version": "1", "id": new}).encode(), makepath=True)
        except NodeExistsError:
            pass
        value, _ = self._read_json(path)
        if not isinstance(value, dict) or not isinstance(value.get("id"), str) or not value["id"]:
            raise CorruptClusterStateError(f"ZooKeeper node {path}: no cluster id in {value!r}")
        return value["id"]

    def read_cluster_id(self) -> Optional[str]:
        """The cluster's id, or None before the first broker created it (never writes)."""
        path = self._path("cluster", "id")
        try:
            value, _ = self._read_json(path)
        except NoNodeError:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("id"), str):
            raise CorruptClusterStateError(f"ZooKeeper node {path}: no cluster id in {value!r}")
        return value["id"]

    # -- brokers -------------------------------------------------------------------------------

    def register_broker(self, broker_id: int, host: str, port: int) -> int:
        """Register this broker (ephemeral, gone with the session); returns its broker epoch."""
        path = self._path("brokers", "ids", broker_id)
        info = {"version": 5, "host": host, "port": port, "jmx_port": -1,
                "endpoints": [f"PLAINTEXT://{host}:{port}"], "rack": None,
                "timestamp": str(int(time.time() * 1000))}
        try:
            self._zk.create(path, json.dumps(info).encode(), ephemeral=True)
        except NodeExistsError:
            raise NodeIdTakenError(
                f"node id {broker_id} is already registered in ZooKeeper {self.connect} by a live "
                "broker; give each broker its own --node-id") from None
        return self._zk.exists(path).czxid

    def live_brokers(self) -> dict[int, tuple[int, dict]]:
        """Registered brokers: id -> (broker epoch, registration)."""
        out, pending = {}, {}
        for child in self._zk.get_children(self._path("brokers", "ids")):
            path = self._path("brokers", "ids", child)
            if not child.isdigit():
                raise CorruptClusterStateError(f"ZooKeeper node {path}: not a broker id")
            pending[child] = (path, self._zk.get_async(path))     # pipelined
        for child, (path, result) in pending.items():
            try:
                data, stat = result.get()
            except NoNodeError:
                continue              # its session ended while we listed
            info = self._parse_json(path, data)
            if not isinstance(info, dict) or not isinstance(info.get("port"), int):
                raise CorruptClusterStateError(f"ZooKeeper node {path}: bad registration {info!r}")
            out[int(child)] = (stat.czxid, info)
        return out

    # -- controller ----------------------------------------------------------------------------

    def controller(self) -> Optional[int]:
        path = self._path("controller")
        try:
            value, _ = self._read_json(path)
        except NoNodeError:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("brokerid"), int):
            raise CorruptClusterStateError(f"ZooKeeper node {path}: bad controller {value!r}")
        return value["brokerid"]

    def controller_epoch(self) -> Optional[int]:
        """The epoch of the latest controller election; None before the first."""
        path = self._path("controller_epoch")
        try:
            data, _ = self._zk.get(path)
        except NoNodeError:
            return None
        text = data.decode(errors="replace")
        if not text:
            return None
        if not text.isdigit():
            raise CorruptClusterStateError(f"ZooKeeper node {path}: {text!r} is not an epoch")
        return int(text)

    def elect_controller(self, broker_id: int) -> Optional[ControllerEpoch]:
        """Try to become the controller: create ``/controller`` and bump ``/controller_epoch`` in
        one multi-op. None when another broker holds it."""
        epoch_path = self._path("controller_epoch")
        self._zk.ensure_path(epoch_path)
        while True:
            data, stat = self._zk.get(epoch_path)
            text = data.decode(errors="replace") or "0"
            if not text.isdigit():
                raise CorruptClusterStateError(f"ZooKeeper node {epoch_path}: {text!r} is not an epoch")
            epoch = int(text) + 1
            t = self._zk.transaction()
            t.create(self._path("controller"), json.dumps(
                {"version": 1, "brokerid": broker_id,
                 "timestamp": str(int(time.time() * 1000))}).encode(), ephemeral=True)
            t.set_data(epoch_path, str(epoch).encode(), version=stat.version)
            created, bumped = t.commit()
            if not isinstance(created, Exception) and not isinstance(bumped, Exception):
                return ControllerEpoch(epoch, stat.version + 1)
            if isinstance(created, NodeExistsError):
                return None
            if not isinstance(bumped, BadVersionError):
                raise next(r for r in (created, bumped)
                           if isinstance(r, Exception) and not isinstance(r, RolledBackError))
            # Another controller came and went between our read and our write: read again.

    def release_controller(self) -> None:
        """Delete ``/controller`` if this session created it."""
        path = self._path("controller")
        try:
            _, stat = self._zk.get(path)
            if stat.ephemeralOwner == self._zk.client_id[0]:
                self._zk.delete(path, version=stat.version)
        except (NoNodeError, BadVersionError):
            pass

    def resign_controller(self, fence: ControllerEpoch) -> None:
        """Delete ``/controller`` if this controller still holds it (controlled shutdown)."""
        t = self._zk.transaction()
        t.check(self._path("controller_epoch"), fence.zk_version)
        t.delete(self._path("controller"))
        t.commit()

    # -- topics and partition state ---------------------------------------------------------------

    def create_topic(self, name: str, assignment: dict, states: dict,
                     fence: ControllerEpoch, topic_id: Optional[uuid.UUID] = None,
                     config: Optional[dict] = None) -> uuid.UUID:
        """Create a topic with its config overrides, assignment and the first state of each
        partition, fenced by the controller epoch: one multi-op with the first ``CREATE_BATCH``
        partitions, then the rest (``create_partition_states``). Raises NodeExistsError if it
        exists (or is still being deleted: its config node is there until the end)."""
        topic_id = topic_id or uuid.uuid4()
        self.ensure_admin_paths()
        topic = {"version": 3, "topic_id": _topic_id_text(topic_id),
                 "partitions": {str(p): list(r) for p, r in sorted(assignment.items())},
                 "adding_replicas": {}, "removing_replicas": {}}
        t = self._zk.transaction()
        t.check(self._path("controller_epoch"), fence.zk_version)
        # Kafka writes the config before the assignment: a broker that sees the topic finds it.
        t.create(self._path("config", "topics", name), _config_json(config or {}))
        t.create(self._path("brokers", "topics", name), json.dumps(topic).encode())
        t.create(self._path("brokers", "topics", name, "partitions"))
        ordered = sorted(assignment)
        for p in ordered[:CREATE_BATCH]:
            t.create(self._path("brokers", "topics", name, "partitions", p))
            t.create(self._path("brokers", "topics", name, "partitions", p, "state"),
                     _state_json(states[p]))
        self._commit(t, f"create topic {name}")
        self.create_partition_states(name, {p: states[p] for p in ordered[CREATE_BATCH:]}, fence)
        return topic_id

    def create_partition_states(self, name: str, states: dict, fence: ControllerEpoch) -> None:
        """Create the znodes of partitions whose assignment is written but whose state is not,
        in fenced multi-ops of at most ``CREATE_BATCH`` partitions: the rest of a large topic
        (ZooKeeper refuses a request over 1 MB and drops the connection), or what a controller
        that failed midway left (its successor finishes it). Partitions already there are
        skipped."""
        base = self._path("brokers", "topics", name, "partitions")
        todo = [p for p in sorted(states) if not self._zk.exists(f"{base}/{p}")]
        for start in range(0, len(todo), CREATE_BATCH):
            t = self._zk.transaction()
            t.check(self._path("controller_epoch"), fence.zk_version)
            for p in todo[start:start + CREATE_BATCH]:
                t.create(f"{base}/{p}")
                t.create(f"{base}/{p}/state", _state_json(states[p]))
            self._commit(t, f"create partitions of topic {name}")

    def topics(self) -> list[str]:
        return sorted(self._zk.get_children(self._path("brokers", "topics")))

    def topic(self, name: str) -> TopicAssignment:
        path = self._path("brokers", "topics", name)
        data, stat = self._zk.get(path)
        return self._parse_topic(path, data, stat)

    def topics_async(self, names) -> dict:
        """{name: TopicAssignment, or None if it is gone}: the reads pipelined (one round trip
        for all, not one each)."""
        return self._read_pipelined({n: self._path("brokers", "topics", n) for n in names},
                                    self._parse_topic)

    def _read_pipelined(self, paths: dict, parse, watch=None) -> dict:
        """{key: parse(path, data, stat), or None if that znode is missing} for ``paths``
        {key: path}: every read sent before the first answer is awaited (each arming
        ``watch`` when given)."""
        pending = {key: (path, self._zk.get_async(path, watch=watch))
                   for key, path in paths.items()}
        out = {}
        for key, (path, result) in pending.items():
            try:
                data, stat = result.get()
            except NoNodeError:
                out[key] = None
                continue
            out[key] = parse(path, data, stat)
        return out

    def _parse_topic(self, path: str, data: bytes, stat) -> TopicAssignment:
        value = self._parse_json(path, data)
        try:
            topic_id = _topic_id_parse(value["topic_id"])
            parts = {int(p): tuple(int(r) for r in replicas)
                     for p, replicas in value["partitions"].items()}
            moving = [{int(p): tuple(int(r) for r in replicas)
                       for p, replicas in (value.get(key) or {}).items() if replicas}
                      for key in ("adding_replicas", "removing_replicas")]
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CorruptClusterStateError(f"ZooKeeper node {path}: bad topic assignment "
                                           f"({type(e).__name__}: {e})") from None
        if not parts or any(not r for r in parts.values()):
            raise CorruptClusterStateError(f"ZooKeeper node {path}: a partition with no replicas")
        return TopicAssignment(topic_id, parts, stat.version, *moving)

    def add_partitions(self, name: str, current: TopicAssignment, added: dict, states: dict,
                       fence: ControllerEpoch) -> None:
        """Grow a topic by the partitions in ``added`` (partition -> replicas) with their first
        states: the assignment (with the first ``CREATE_BATCH`` new partitions) is rewritten by
        compare-and-set on ``current.version``, fenced; BadVersionError if the topic changed
        since it was read. The other partitions follow (``create_partition_states``)."""
        path = self._path("brokers", "topics", name)
        value, _ = self._read_json(path)
        value["partitions"] = {str(p): list(r) for p, r in
                               sorted({**current.partitions, **added}.items())}
        t = self._zk.transaction()
        t.check(self._path("controller_epoch"), fence.zk_version)
        t.set_data(path, json.dumps(value).encode(), version=current.version)
        ordered = sorted(added)
        for p in ordered[:CREATE_BATCH]:
            t.create(self._path("brokers", "topics", name, "partitions", p))
            t.create(self._path("brokers", "topics", name, "partitions", p, "state"),
                     _state_json(states[p]))
        self._commit(t, f"add partitions to topic {name}")
        self.create_partition_states(name, {p: states[p] for p in ordered[CREATE_BATCH:]}, fence)

    def ensure_admin_paths(self) -> None:
        """The parents of deletion markers, topic configs and change notifications (a cluster
        made by an older klog lacks them)."""
        for path in ("/admin/delete_topics", "/config/topics", "/config/changes"):
            self._zk.ensure_path(self.chroot + path)

    # -- topic deletion --------------------------------------------------------------------------

    def mark_topic_for_deletion(self, name: str, fence: ControllerEpoch) -> None:
        """Kafka's ``/admin/delete_topics/<topic>`` marker, fenced; a marker already there is
        fine (a retried request)."""
        t = self._zk.transaction()
        t.check(self._path("controller_epoch"), fence.zk_version)
        t.create(self._path("admin", "delete_topics", name))
        try:
            self._commit(t, f"mark topic {name} for deletion")
        except NodeExistsError:
            pass

    def topics_marked_for_deletion(self) -> list[str]:
        return sorted(self._zk.get_children(self._path("admin", "delete_topics")))

    def leader_epoch_floor(self) -> tuple[int, int]:
        """(floor, znode version); (0, -1) when no topic was ever deleted."""
        path = self._path("admin", "leader_epoch_floor")
        try:
            value, stat = self._read_json(path)
        except NoNodeError:
            return 0, -1
        floor = value.get("floor") if isinstance(value, dict) else None
        if not isinstance(floor, int) or floor < 0:
            raise CorruptClusterStateError(f"ZooKeeper node {path}: bad floor {value!r}")
        return floor, stat.version

    def delete_topic(self, name: str, fence: ControllerEpoch, retired_epoch: int) -> None:
        """Remove the topic, fenced at every step: first raise the leader-epoch floor above
        ``retired_epoch`` (the highest epoch its partitions reached; compare-and-set,
        BadVersionError if it moved), then delete the partitions' znodes in multi-ops of at
        most ``DELETE_BATCH`` (a large topic does not fit ZooKeeper's request limit in one), then
        the assignment, config and deletion marker together. A controller that fails in
        between leaves the marker, and the next one goes on from what is left."""
        floor, floor_version = self.leader_epoch_floor()
        new_floor = json.dumps({"version": 1, "floor": max(floor, retired_epoch + 1)}).encode()
        t = self._zk.transaction()
        t.check(self._path("controller_epoch"), fence.zk_version)
        if floor_version < 0:
            t.create(self._path("admin", "leader_epoch_floor"), new_floor)
        else:
            t.set_data(self._path("admin", "leader_epoch_floor"), new_floor, version=floor_version)
        self._commit(t, f"delete topic {name}")
        partitions = self._path("brokers", "topics", name, "partitions")
        doomed = []
        for p in self._zk.get_children(partitions):
            for child in self._zk.get_children(f"{partitions}/{p}"):
                doomed.append(f"{partitions}/{p}/{child}")
            doomed.append(f"{partitions}/{p}")
        for start in range(0, len(doomed), DELETE_BATCH):
            t = self._zk.transaction()
            t.check(self._path("controller_epoch"), fence.zk_version)
            for path in doomed[start:start + DELETE_BATCH]:
                t.delete(path)
            self._commit(t, f"delete topic {name}")
        t = self._zk.transaction()
        t.check(self._path("controller_epoch"), fence.zk_version)
        t.delete(partitions)
        t.delete(self._path("brokers", "topics", name))
        for path in (self._path("config", "topics", name),
                     self._path("admin", "delete_topics", name)):
            if self._zk.exists(path):
                t.delete(path)
        self._commit(t, f"delete topic {name}")

    def delete_topic_leftovers(self, name: str, fence: ControllerEpoch) -> None:
        """The config and marker of a topic whose assignment is already gone, fenced."""
        t = self._zk.transaction()
        t.check(self._path("controller_epoch"), fence.zk_version)
        for path in (self._path("config", "topics", name),
                     self._path("admin", "delete_topics", name)):
            if self._zk.exists(path):
                t.delete(path)
        self._commit(t, f"finish deleting topic {name}")

    # -- topic configs ---------------------------------------------------------------------------

    def topic_config(self, name: str) -> tuple[dict, int]:
        """(overrides, znode version) of ``/config/topics/<name>``; ({}, -1) if absent."""
        path = self._path("config", "topics", name)
        try:
            value, stat = self._read_json(path)
        except NoNodeError:
            return {}, -1
        config = value.get("config") if isinstance(value, dict) else None
        if not isinstance(config, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in config.items()):
            raise CorruptClusterStateError(f"ZooKeeper node {path}: bad topic config {value!r}")
        return dict(config), stat.version

    def set_topic_config(self, name: str, config: dict, version: int,
                         fence: ControllerEpoch) -> None:
        """Replace the topic's overrides by compare-and-set on ``version`` (-1: the node is
        new) and announce it with a ``/config/changes`` sequential node, in one fenced multi-op.
        BadVersionError if the config changed since it was read."""
        path = self._path("config", "topics", name)
        t = self._zk.transaction()
        t.check(self._path("controller_epoch"), fence.zk_version)
        t.check(self._path("brokers", "topics", name), -1)      # the topic still exists
        if version < 0:
            t.create(path, _config_json(config))
        else:
            t.set_data(path, _config_json(config), version=version)
        t.create(self._path("config", "changes", CONFIG_CHANGE_PREFIX),
                 json.dumps({"version": 2, "entity_path": f"topics/{name}"}).encode(),
                 sequence=True)
        now_ms = time.time() * 1000
        for child in self._zk.get_children(self._path("config", "changes")):
            stat = self._zk.exists(self._path("config", "changes", child))
            if stat is not None and now_ms - stat.ctime > CONFIG_CHANGE_EXPIRY_MS:
                t.delete(self._path("config", "changes", child), version=stat.version)
        self._commit(t, f"change the config of topic {name}")

    def config_changes(self) -> list[tuple[int, str]]:
        """[(sequence number, topic)] of the change notifications present, oldest first."""
        out = []
        for child in self._zk.get_children(self._path("config", "changes")):
            seq = child[len(CONFIG_CHANGE_PREFIX):]
            if not child.startswith(CONFIG_CHANGE_PREFIX) or not seq.isdigit():
                continue
            try:
                value, _ = self._read_json(self._path("config", "changes", child))
            except NoNodeError:
                continue          # purged meanwhile
            entity = value.get("entity_path", "") if isinstance(value, dict) else ""
            if isinstance(entity, str) and entity.startswith("topics/"):
                out.append((int(seq), entity[len("topics/"):]))
        return sorted(out)

    def state_path(self, topic: str, partition: int) -> str:
        return self._path("brokers", "topics", topic, "partitions", partition, "state")

    def partition_state(self, topic: str, partition: int) -> LeaderAndIsr:
        path = self.state_path(topic, partition)
        data, stat = self._zk.get(path)
        return self.parse_state(path, data, stat)

    def partition_states(self, keys) -> dict:
        """{(topic, partition): LeaderAndIsr, or None if its znode is missing}: the reads
        pipelined (one round trip for all)."""
        return self._read_pipelined({k: self.state_path(*k) for k in keys}, self.parse_state)

    def parse_state(self, path: str, data: bytes, stat) -> LeaderAndIsr:
        """A state znode's content (and version, from ``stat``), checked."""
        value = self._parse_json(path, data)
        try:
            state = LeaderAndIsr(int(value["leader"]), int(value["leader_epoch"]),
                                 tuple(int(r) for r in value["isr"]),
                                 int(value["controller_epoch"]), stat.version)
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptClusterStateError(f"ZooKeeper node {path}: bad partition state "
                                           f"({type(e).__name__}: {e})") from None
        if state.leader_epoch < 0 or not state.isr:
            raise CorruptClusterStateError(f"ZooKeeper node {path}: bad partition state {value!r}")
        return state

    def write_state_as_controller(self, topic: str, partition: int, new: LeaderAndIsr,
                                  fence: ControllerEpoch) -> Optional[LeaderAndIsr]:
        """A controller decision, written only if the state is still at ``new.version`` and this
        controller still holds its epoch. None if the state moved on; NotControllerError if
        fenced."""
        path = self._path("brokers", "topics", topic, "partitions", partition, "state")
        t = self._zk.transaction()
        t.check(self._path("controller_epoch"), fence.zk_version)
        t.set_data(path, _state_json(new), version=new.version)
        results = t.commit()
        if isinstance(results[0], BadVersionError):
            raise NotControllerError(f"controller epoch {fence.epoch} was fenced: another "
                                     "controller has been elected")
        if isinstance(results[1], BadVersionError):
            return None
        if any(isinstance(r, Exception) for r in results):
            raise next(r for r in results if not isinstance(r, RolledBackError))
        return replace(new, version=results[1].version)

    def write_states_as_controller(self, states: dict, fence: ControllerEpoch) -> dict:
        """Controller decisions for many partitions ({(topic, partition): new state}), each
        written as ``write_state_as_controller`` does (a multi-op: the ``/controller_epoch``
        check and a compare-and-set on the state's version), all sent before any answer is read
        (one round trip; ZooKeeper applies them in this order). Each partition lands or fails
        on its own: {key: the written state, or None if its state moved on (read it again)}.
        NotControllerError if this controller was fenced (the other writes were fenced too)."""
        pending = {}
        for (topic, p), new in states.items():
            t = self._zk.transaction()
            t.check(self._path("controller_epoch"), fence.zk_version)
            t.set_data(self.state_path(topic, p), _state_json(new), version=new.version)
            pending[(topic, p)] = (new, t.commit_async())
        out, fenced, error = {}, False, None
        for key, (new, result) in pending.items():
            try:
                results = result.get()
            except Exception as e:          # noqa: BLE001 - the connection; raised below
                error = error or e
                continue
            if isinstance(results[0], BadVersionError):
                fenced = True
            elif isinstance(results[1], BadVersionError):
                out[key] = None
            elif any(isinstance(r, Exception) for r in results):
                error = error or next(r for r in results if not isinstance(r, RolledBackError))
            else:
                out[key] = replace(new, version=results[1].version)
        if fenced:
            raise NotControllerError(f"controller epoch {fence.epoch} was fenced: another "
                                     "controller has been elected")
        if error is not None:
            raise error
        return out

    def write_isr_as_leader(self, topic: str, partition: int,
                            new: LeaderAndIsr) -> Optional[LeaderAndIsr]:
        """A leader's ISR change by compare-and-set; None if the state moved on."""
        path = self._path("brokers", "topics", topic, "partitions", partition, "state")
        try:
            stat = self._zk.set(path, _state_json(new), version=new.version)
        except BadVersionError:
            current = self.partition_state(topic, partition)
            # A retry of a write that landed: same content, one version on.
            if replace(current, version=new.version) == new:
                return current
            return None
        return replace(new, version=stat.version)

    def _commit(self, t, what: str) -> None:
        results = t.commit()
        errors = [r for r in results if isinstance(r, Exception) and not isinstance(r, RolledBackError)]
        if errors:
            if isinstance(results[0], BadVersionError):
                raise NotControllerError(f"{what}: fenced, another controller has been elected")
            raise errors[0]
