"""``ReplicaManager``: one broker's replicas, driven by ZooKeeper and served over the wire
(Kafka's ReplicaManager + ReplicaFetcherManager, ZooKeeper era).

- **Decisions.** The transport of the controller's LeaderAndIsr decisions is ZooKeeper itself:
  each broker watches ``/brokers/topics`` and the state znode of every partition it holds a
  replica of, and applies what it reads (``Replica.apply``: an older leader epoch is ignored).
  A broker that was down, paused or cut off reads the current state as soon as its session
  works again, and nothing depends on a message that may be lost or delayed; the znode's
  version and the leader epoch order the decisions. (Kafka sends LeaderAndIsr (API 4) with broker
  epochs instead; the controller's ``send`` is kept for that and is a no-op here.)
- **Leader side.** Follower fetches (replica id >= 0) go to ``Replica.handle_fetch`` (through
  the server's Fetch handler); ISR changes the leader proposes are written by compare-and-set
  (``ClusterStore.write_isr_as_leader``) from this manager's thread, one at a time per partition.
- **Follower side.** One fetcher thread per leader broker sends Fetch v15 (topic ids; replica
  id and broker epoch in ``replica_state``; ``current_leader_epoch``, ``last_fetched_epoch``)
  for all partitions it follows there and hands each answer to ``Replica.handle_fetch_response``;
  records are appended byte for byte. OFFSET_OUT_OF_RANGE (the leader deleted records below our
  end while we were away) is answered as Kafka does: ListOffsets with our replica id for the
  leader's log start and end, then ``Replica.handle_out_of_range`` (truncate fully, start at
  the leader's log start).
- **Broker epochs.** The registrations' epochs are watched (``/brokers/ids``): a follower fetch
  whose broker epoch is not its broker's registration (an earlier life of that broker id, or a
  broker that is no longer registered) is answered STALE_BROKER_EPOCH and counts for nothing
  (ISR, high watermark). While this broker's view lags a registration, that broker's fetches are
  refused and retried.
- **High watermarks** are checkpointed to ``replication-offset-checkpoint`` every
  ``CHECKPOINT_S`` and on stop, and read back when a replica is created.
- **Topics.** A broker holds (creates a directory for) only the partitions it is a replica of.
  It watches ``/brokers/topics`` and each topic's znode, so it picks up new partitions
  (CreatePartitions) and notices a topic that is gone (deleted) or came back under a new topic
  id (deleted and re-created, maybe while this broker was away): the old incarnation's local
  replicas, logs, saved high watermarks and group offsets go. Topic config changes
  (``/config/changes``) are applied through ``submit`` (klog.cluster.topic_configs).

Locking: each hosted partition has a lock that serialises every call into its ``Replica`` (the
server's event loop, the fetcher threads and this manager's thread all call in). ZooKeeper and
network I/O never happen under it.
"""
from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from kazoo.exceptions import NoNodeError
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

from klog.cluster.hw_checkpoint import HighWatermarkCheckpoint
from klog.cluster.replica import FetchRequest, FetchResponse, Replica, Role
from klog.cluster.replica_log import StorageReplicaLog
from klog.cluster.state import EpochEnd
from klog.cluster.topic_configs import apply_topic_config, offsets_topic_config
from klog.cluster.zkstore import ClusterStore
from klog.errors import TopicExistsError
from klog.protocol.errors import ErrorCode
from klog.group.offsets import OFFSETS_TOPIC
from klog.metadata import is_internal
from klog.protocol import blocking
from klog.protocol.messages import ApiKey

log = logging.getLogger("klog.cluster.replica_manager")

TICK_S = 0.1                  # ISR checks
CHECKPOINT_S = 5.0            # Kafka's replica.high-watermark.checkpoint.interval.ms
FETCH_VERSION = 15
LIST_OFFSETS_VERSION = 4      # the first with current_leader_epoch
FETCH_MAX_WAIT_MS = 500
FETCH_MAX_BYTES = 8 << 20
PARTITION_MAX_BYTES = 1 << 20
RETRY_S = 0.2


@dataclass
class HostedPartition:
    topic: str
    partition: int
    replicas: tuple
    replica: Replica
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def part(self):
        """The klog.partition.Partition under the replica."""
        return self.replica.log.partition

    def sync(self) -> None:
        """Carry the replica's role, epoch, ISR and high watermark to the Partition, which the
        rest of the broker reads (consumers' read bound, HW waiters). Caller holds ``lock``."""
        r, part = self.replica, self.part
        if r.role is Role.LEADER:
            if not part.is_leader or part.leader_epoch != r.leader_epoch:
                part.become_leader(r.leader_epoch, high_watermark=r.high_watermark,
                                   in_sync_replicas=r.isr)
                return
            if part.in_sync_replicas != frozenset(r.isr):
                part.set_in_sync_replicas(r.isr)
        elif part.is_leader or part.leader_epoch != r.leader_epoch:
            part.become_follower(r.leader_epoch, high_watermark=r.high_watermark)
            return
        if part.high_watermark != r.high_watermark:
            part.update_high_watermark(r.high_watermark)


class ReplicaManager:
    def __init__(self, broker, store: ClusterStore, node_id: int, *,
                 replica_lag_time_max_ms: int = 30_000,
                 on_change: Callable[[], None] = lambda: None,
                 on_high_watermark: Optional[Callable[[], None]] = None,
                 on_partition_change: Optional[Callable[[object], None]] = None):
        self.broker = broker
        self.store = store
        self.node_id = node_id
        self.lag_ms = replica_lag_time_max_ms
        self.on_change = on_change          # a high watermark or a role changed: wake waiters
        # A follower's fetch moved only the high watermark: wakes no follower fetch (Changes).
        self.on_high_watermark = on_high_watermark or on_change
        # Each hosted Partition's listener (appends, high watermark moves): follower fetches
        # parked on it wake when its log end moves (klog.cluster.node.Changes).
        self.on_partition_change = on_partition_change
        self.clock = broker.clock           # the replicas' time (lag, catch-up) is the broker's
        self.partitions: dict[tuple, HostedPartition] = {}
        self.topic_ids: dict = {}           # topic name -> uuid (ZooKeeper's)
        self.partition_counts: dict = {}    # topic name -> partitions (ZooKeeper's)
        self._watched: set = set()          # topics added (by name; ``topic_ids`` has the id)
        self._topic_watches: set = set()    # topics with a DataWatch on their znode
        self._state_watches: set = set()    # (topic, partition) with a DataWatch on its state
        self._listed = False                # /brokers/topics was listed once
        self._checkpoint = HighWatermarkCheckpoint(broker.data_dir)
        self._saved_hw = self._checkpoint.read()
        self._events: "queue.Queue" = queue.Queue()
        self._stopped = threading.Event()
        self._fetchers: dict[int, "FollowerFetcher"] = {}
        self._fetching = True
        self.broker_epoch = -1              # this broker's registration (ClusterNode sets it)
        self.broker_epochs: dict[int, int] = {}   # registered brokers -> epochs, as watched
        self._thread = threading.Thread(target=self._run, name=f"klog-replicas-{node_id}",
                                        daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> "ReplicaManager":
        self._thread.start()
        ChildrenWatch(self.store.client, self.store._path("brokers", "topics"), self._topics_changed)
        ChildrenWatch(self.store.client, self.store._path("brokers", "ids"), self._brokers_changed)
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._events.put(None)
        if self._thread.ident is not None:
            self._thread.join(10)
        for f in list(self._fetchers.values()):
            f.stop()
        self.checkpoint_high_watermarks()

    def stop_fetching(self) -> None:
        """A broker shutting down follows no more (Kafka's StopReplica): a leader would otherwise
        take it back into the ISR, and acks=all would wait for it after it is gone."""
        self._fetching = False
        for f in list(self._fetchers.values()):
            f.stop()

    def get(self, topic: str, partition: int) -> Optional[HostedPartition]:
        return self.partitions.get((topic, partition))

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def submit(self, fn, *args) -> None:
        """Run ``fn(*args)`` on the manager thread, in order with the topic and state changes
        (retried after a failure, as they are)."""
        self._events.put((fn, args))

    # -- ZooKeeper watches (kazoo's thread): only enqueue -------------------------------------------
    def _topics_changed(self, children):
        if self._stopped.is_set():
            return False
        # New names, and names gone; a name deleted and created again is seen by its DataWatch.
        for name in set(children) ^ self._watched:
            self._events.put((self._sync_topic, (name,)))
        if not self._listed:         # the first listing: after its topics, what is left here
            self._listed = True
            self._events.put((self._drop_unknown_topics, ()))

    def _topic_changed(self, name):
        def callback(data, stat, *_):
            if self._stopped.is_set():
                return False
            self._events.put((self._sync_topic, (name,)))
        return callback

    def _brokers_changed(self, _children):
        if self._stopped.is_set():
            return False
        self._events.put((self._read_broker_epochs, ()))

    def _read_broker_epochs(self):
        self.broker_epochs = {b: epoch for b, (epoch, _) in self.store.live_brokers().items()}

    def _state_changed(self, topic, partition):
        def callback(data, stat, *_):
            if self._stopped.is_set():
                return False
            if data is not None:
                self._events.put((self._apply_state, (topic, partition, data, stat)))
        return callback

    # -- the manager thread --------------------------------------------------------------------
    def _run(self):
        next_checkpoint = time.monotonic() + CHECKPOINT_S
        while not self._stopped.is_set():
            try:
                item = self._events.get(timeout=TICK_S)
            except queue.Empty:
                item = ()
            if item is None:
                return
            try:
                if item:
                    fn, args = item
                    fn(*args)
                self._maybe_change_isrs()
                if time.monotonic() >= next_checkpoint:
                    self.checkpoint_high_watermarks()
                    next_checkpoint = time.monotonic() + CHECKPOINT_S
            except Exception:      # a ZooKeeper hiccup must not end replication: retry
                log.exception("broker %d: replica manager step failed", self.node_id)
                if item:
                    t = threading.Timer(RETRY_S, self._events.put, (item,))
                    t.daemon = True
                    t.start()

    def _sync_topic(self, name: str):
        """Bring this broker's replicas of ``name`` in line with ZooKeeper: add the topic or its
        new partitions; drop it when it is gone or has another topic id (re-created)."""
        try:
            assignment = self.store.topic(name)
        except NoNodeError:
            assignment = None
        if name in self._watched and (assignment is None
                                      or assignment.topic_id != self.topic_ids.get(name)):
            self._drop_topic(name)
        if assignment is None:
            if not is_internal(name):
                self._delete_local(name)      # (also: deleted while this broker was away)
            return
        if name not in self._watched:
            self.topic_ids[name] = assignment.topic_id
            apply_topic_config(self, name)      # it may have changed while this broker was away
        if name not in self._topic_watches:
            self._topic_watches.add(name)
            DataWatch(self.store.client, self.store._path("brokers", "topics", name),
                      self._topic_changed(name))
        self._add_partitions(name, assignment)
        self._follow_reassignments(name, assignment)

    def _follow_reassignments(self, name: str, assignment):
        """Replica sets that changed (a reassignment started, completed or was cancelled): the
        replicas still here learn the new set; those no longer assigned here go."""
        for (topic, p), hosted in list(self.partitions.items()):
            if topic != name:
                continue
            replicas = assignment.partitions.get(p)
            if replicas is None or self.node_id not in replicas:
                self._release_partition(hosted)
            elif tuple(replicas) != hosted.replicas:
                self._events.put((self._apply_state, (name, p)))
        # Moved away while this broker was down: its local data of them goes now.
        local = self.broker.local_partitions(name) if self.broker.has_topic(name) else None
        gone = [p for p in local or () if (name, p) not in self.partitions
                and self.node_id not in assignment.partitions.get(p, ())]
        if gone and str(assignment.topic_id) == self.broker.describe_topic(name).topic_id:
            for p in gone:
                self._saved_hw.pop((name, p), None)
            if name == OFFSETS_TOPIC:
                for p in gone:
                    self.broker.group_coordinator.unload_partition(p)
            self.broker.release_partitions(name, gone)
            log.info("broker %d: %s partitions %s moved away while it was down; their local "
                     "replicas are deleted", self.node_id, name, gone)

    def _release_partition(self, hosted: HostedPartition):
        """Kafka's StopReplica with delete: this broker is no longer a replica of the partition
        (moved away). Waiting acks=all produces answer NOT_LEADER_OR_FOLLOWER; the directory
        and the saved high watermark go."""
        key = (hosted.topic, hosted.partition)
        if self.partitions.get(key) is not hosted:
            return
        del self.partitions[key]
        for f in list(self._fetchers.values()):
            f.remove(key)
        self._saved_hw.pop(key, None)
        with hosted.lock:       # no fetch or produce is inside it while it stops
            hosted.replica.stop()
        if hosted.topic == OFFSETS_TOPIC:
            self.broker.group_coordinator.unload_partition(hosted.partition)
        self.broker.release_partitions(hosted.topic, [hosted.partition])
        self.checkpoint_high_watermarks()
        log.info("broker %d: %s-%d moved away; its local replica is deleted", self.node_id,
                 hosted.topic, hosted.partition)
        self.on_change()

    def _add_partitions(self, name: str, assignment):
        """Create the local replicas of the partitions of ``assignment`` this broker holds and
        does not have yet (all of them for a new topic)."""
        self.topic_ids[name] = assignment.topic_id
        self.partition_counts[name] = total = len(assignment.partitions)
        self._watched.add(name)
        mine = {p: r for p, r in assignment.partitions.items()
                if self.node_id in r and (name, p) not in self.partitions}
        if mine and not self._create_local(name, assignment, total, sorted(mine)):
            return
        if mine:
            for p, replicas in sorted(mine.items()):
                part = self.broker.partition(name, p)
                replica = Replica(self.node_id, StorageReplicaLog(part),
                                  high_watermark=self._saved_hw.get((name, p), 0),
                                  min_insync_replicas=part.config.min_insync_replicas,
                                  replica_lag_time_max_ms=self.lag_ms)
                # No client appends until ZooKeeper's state for it has been applied.
                part.become_follower(-1, high_watermark=replica.high_watermark)
                if self.on_partition_change is not None:
                    part.add_append_listener(self.on_partition_change)
                self.partitions[(name, p)] = HostedPartition(name, p, tuple(replicas), replica)
        for p in sorted(mine):
            if (name, p) in self._state_watches:
                self._events.put((self._apply_state, (name, p)))   # a watch from before
                continue
            self._state_watches.add((name, p))
            DataWatch(self.store.client,
                      self.store._path("brokers", "topics", name, "partitions", p, "state"),
                      self._state_changed(name, p))

    def _create_local(self, name: str, assignment, total: int, mine: list) -> bool:
        """The local topic, holding (a directory for) the partitions in ``mine`` only. False
        (logged) when a topic of that name is here from before this broker was in a cluster:
        its data is never deleted to make room."""
        topic_id = str(assignment.topic_id)
        if self.broker.has_topic(name) and self.broker.describe_topic(name).topic_id != topic_id:
            if self.broker.local_partitions(name) is None:
                log.error("broker %d: topic %s of the cluster (id %s) has a local namesake that "
                          "is not the cluster's (id %s, from before this data directory joined "
                          "the cluster): not replicating it here; move that topic away",
                          self.node_id, name, topic_id, self.broker.describe_topic(name).topic_id)
                return False
            self._delete_local(name)          # an older incarnation, deleted while away
        if not self.broker.has_topic(name):
            config, _ = self.store.topic_config(name)
            if name == OFFSETS_TOPIC:     # as the offsets store creates it
                config = {**offsets_topic_config(self.broker), **config}
            try:
                self.broker.create_topic(name, total, config, topic_id=topic_id, local=mine)
                return True
            except TopicExistsError:
                pass
        if self.broker.partition_count(name) < total:
            self.broker.add_partitions(name, total, local=mine)
        else:       # partitions moved here (reassignment), or held before this broker left
            missing = [p for p in mine if not self.broker.hosts_partition(name, p)]
            if missing:
                self.broker.hold_partitions(name, missing)
        return True

    def _drop_topic(self, name: str):
        """The topic is gone from ZooKeeper (or is another incarnation now): stop its
        replicas and delete its local data."""
        known_id = self.topic_ids.get(name)
        dropped = [h for k, h in list(self.partitions.items()) if k[0] == name]
        for hosted in dropped:
            del self.partitions[(hosted.topic, hosted.partition)]
            for f in list(self._fetchers.values()):
                f.remove((hosted.topic, hosted.partition))
            self._saved_hw.pop((hosted.topic, hosted.partition), None)
        self._watched.discard(name)
        self.topic_ids.pop(name, None)
        self.partition_counts.pop(name, None)
        if not is_internal(name):
            for hosted in dropped:
                with hosted.lock:       # no fetch or produce is using it while it goes
                    pass
            self._delete_local(name, known_id)
        self.checkpoint_high_watermarks()
        log.info("broker %d: topic %s is gone; dropped its %d local replica(s)", self.node_id,
                 name, len(dropped))
        self.on_change()

    def _delete_local(self, name: str, known_id=None):
        """Delete the local topic (its logs, and the groups' offsets for it). A broker that
        holds none of it may still coordinate groups with offsets for it: they go too (only
        the coordinator, the leader of the group's offsets partition, can write that). A local
        topic the cluster did not create (a single node's, from before this data directory
        joined; it holds all partitions and has another id) is left alone."""
        for key in [k for k in self._saved_hw if k[0] == name]:
            del self._saved_hw[key]
        if not self.broker.has_topic(name):
            self.broker.group_coordinator.topic_deleted(name)
        elif self.broker.local_partitions(name) is not None \
                or self.broker.describe_topic(name).topic_id == str(known_id):
            self.broker.delete_topic(name)

    def _drop_unknown_topics(self):
        """At start: local topics ZooKeeper no longer has were deleted while this broker was
        away (the data directory belongs to this cluster: ``meta.properties``)."""
        known = set(self.store.topics())
        for name in self.broker.list_topics():
            # Only topics a cluster created (a single node's topics, from before this data
            # directory joined, are not the cluster's to delete).
            if name not in known and name not in self._watched \
                    and self.broker.local_partitions(name) is not None:
                log.info("broker %d: topic %s was deleted while this broker was away",
                         self.node_id, name)
                self._delete_local(name)

    def _apply_state(self, topic: str, partition: int, data=None, stat=None):
        """Apply the partition's state (as the watch delivered it: ``data`` and ``stat``; read
        when not given) with the replica set the assignment holds now; the topic's id is
        checked on every change."""
        hosted = self.partitions.get((topic, partition))
        if hosted is None:
            return                      # dropped (topic deleted) since the watch fired
        path = self.store.state_path(topic, partition)
        try:
            # The state first: the assignment read after it is at least as new (a reassignment
            # step writes both in one multi-op), so a new epoch comes with its replica set, and
            # its topic id tells a state of another incarnation. The state as the watch
            # delivered it: a change's many partitions are applied with one read each, not two.
            if data is None:
                data, stat = self.store.client.get(path)
            state = self.store.parse_state(path, data, stat)
            assignment = self.store.topic(topic)
            current = assignment.topic_id
        except NoNodeError:
            current = None
        if current != self.topic_ids.get(topic):
            # The state of another incarnation (deleted, maybe re-created): drop this one first.
            self._events.put((self._sync_topic, (topic,)))
            return
        replicas = assignment.partitions.get(partition)
        if replicas is None or self.node_id not in replicas:
            self._release_partition(hosted)          # moved away (reassignment completed)
            return
        with hosted.lock:
            hosted.replicas = tuple(replicas)
            before = (hosted.replica.role, hosted.replica.leader_epoch)
            hosted.replica.apply(state, hosted.replicas, self.clock.monotonic_ms())
            hosted.sync()
            role, leader = hosted.replica.role, hosted.replica.leader_id
            after = (role, hosted.replica.leader_epoch)
        if before != after:
            log.info("broker %d: %s-%d is %s in epoch %d (leader %d, isr %s)", self.node_id,
                     topic, partition, role.value, after[1], leader, list(state.isr))
            if topic == OFFSETS_TOPIC and role is Role.LEADER:
                # The group coordinator of this partition's groups is here now: their state is
                # what the log holds (the previous coordinator's writes, replicated). Not when
                # it simply stays leader (the next epoch, e.g. the controller shrank the ISR):
                # no other coordinator wrote in between, and reloading would drop the members.
                if not stays_leader(before, after):
                    self.broker.group_coordinator.load_partition(partition)
            elif topic == OFFSETS_TOPIC:
                # Not (or no longer) its coordinator: the groups replayed from this partition at
                # start, or led here before, are the leader's (Kafka's onResignation).
                self.broker.group_coordinator.unload_partition(partition)
        self._place_in_fetchers(hosted, leader if role is Role.FOLLOWER else None)
        self.on_change()

    def _place_in_fetchers(self, hosted: HostedPartition, leader: Optional[int]):
        key = (hosted.topic, hosted.partition)
        for b, f in list(self._fetchers.items()):
            if b != leader:
                f.remove(key)
        if leader is not None and self._fetching:
            f = self._fetchers.get(leader)
            if f is None:
                f = self._fetchers[leader] = FollowerFetcher(self, leader)
                f.start()
            f.add(key)

    def _maybe_change_isrs(self):
        for hosted in list(self.partitions.values()):
            if not self._events.empty():
                # The controller's decisions first (they may make these changes moot, and a
                # refused change would only be proposed again): each write is a round trip,
                # and a change of many partitions would otherwise wait behind all of them.
                return
            with hosted.lock:
                proposal = hosted.replica.isr_change(self.clock.monotonic_ms())
            if proposal is None:
                continue
            try:
                written = self.store.write_isr_as_leader(hosted.topic, hosted.partition, proposal)
            except Exception:
                with hosted.lock:
                    hosted.replica.isr_change_written(None)
                    hosted.sync()
                raise
            with hosted.lock:
                hosted.replica.isr_change_written(written)
                hosted.sync()
            log.info("broker %d: %s-%d ISR %s -> %s", self.node_id, hosted.topic,
                     hosted.partition, list(proposal.isr), "written" if written else "refused")
            self.on_change()

    def checkpoint_high_watermarks(self):
        hws = dict(self._saved_hw)
        for key, hosted in list(self.partitions.items()):
            hws[key] = hosted.replica.high_watermark
        if hws:
            self._checkpoint.write(hws)

    # -- leader side (the server's Fetch handler) ----------------------------------------------------
    def handle_follower_fetch(self, hosted: HostedPartition, req: FetchRequest) -> FetchResponse:
        if req.replica_epoch >= 0 and self.broker_epochs.get(req.replica_id) != req.replica_epoch:
            return FetchResponse(ErrorCode.STALE_BROKER_EPOCH)
        with hosted.lock:
            before = hosted.replica.high_watermark
            resp = hosted.replica.handle_fetch(req, self.clock.monotonic_ms())
            moved = hosted.replica.high_watermark != before
            if moved:
                hosted.sync()
        if moved:
            self.on_high_watermark()
        return resp

    def broker_address(self, broker_id: int):
        info = self.store.live_brokers().get(broker_id)
        if info is None:
            return None
        return info[1]["host"], info[1]["port"]


def stays_leader(before: tuple, after: tuple) -> bool:
    """(role, leader epoch) before and after a state change: this broker led and leads in the
    very next epoch, so no other broker led in between (a jump of more than one may hide one)."""
    return before[0] is Role.LEADER and after[0] is Role.LEADER and after[1] == before[1] + 1


class FollowerFetcher:
    """Fetches, for every partition this broker follows on one leader broker, in one request."""

    def __init__(self, manager: ReplicaManager, leader: int):
        self.manager = manager
        self.leader = leader
        self._keys: set = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._sock: Optional[socket.socket] = None
        self._cid = 0
        self._thread = threading.Thread(
            target=self._run, name=f"klog-fetcher-{manager.node_id}-from-{leader}", daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stopped.set()
        self._wake.set()
        self._close()
        self._thread.join(5)

    def add(self, key):
        with self._lock:
            self._keys.add(key)
        self._wake.set()

    def remove(self, key):
        with self._lock:
            self._keys.discard(key)

    def _close(self):
        s, self._sock = self._sock, None
        if s is not None:
            try:
                # close() alone does not wake a recv() blocked in the fetcher thread: it would
                # wait for the leader's answer (up to FETCH_MAX_WAIT_MS) or the socket timeout.
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def _run(self):
        m = self.manager
        while not self._stopped.is_set():
            with self._lock:
                keys = sorted(self._keys)
            requests = {}
            for key in keys:
                hosted = m.partitions.get(key)
                if hosted is None:
                    continue
                with hosted.lock:
                    req = hosted.replica.fetch_request(PARTITION_MAX_BYTES)
                if req is not None and hosted.replica.leader_id == self.leader:
                    requests[key] = (hosted, req)
            if not requests:
                self._wake.wait(RETRY_S)
                self._wake.clear()
                continue
            try:
                answers = self._fetch(requests)
            except Exception as e:   # noqa: BLE001 - network or ZooKeeper trouble: retry
                if not self._stopped.is_set():
                    log.debug("broker %d: fetch from %d failed: %s", m.node_id, self.leader, e)
                self._close()
                self._stopped.wait(RETRY_S)
                continue
            errors = False
            out_of_range = {}
            for key, (hosted, req) in requests.items():
                resp = answers.get(key)
                if resp is None:
                    continue
                errors |= resp.error != 0
                if resp.error == ErrorCode.OFFSET_OUT_OF_RANGE:
                    out_of_range[key] = (hosted, req)
                    continue
                try:
                    with hosted.lock:
                        hosted.replica.handle_fetch_response(req, resp)
                        hosted.sync()
                except Exception:
                    log.exception("broker %d: applying the fetch of %s-%d from %d failed",
                                  m.node_id, key[0], key[1], self.leader)
                    errors = True
            if out_of_range:
                try:
                    if self._reset_out_of_range(out_of_range):
                        errors = False          # fetch again at once, from the new position
                except Exception as e:   # noqa: BLE001 - network trouble: fetch (and ask) again
                    log.debug("broker %d: offsets from %d failed: %s", m.node_id, self.leader, e)
                    self._close()
            if errors:     # fenced / not leader: wait for the controller's word, not a busy loop
                self._stopped.wait(RETRY_S)

    def _reset_out_of_range(self, requests: dict) -> bool:
        """Kafka's handleOutOfRangeError: the leader's log start and end, then truncate.
        True if any partition was handled (else the caller waits before fetching again)."""
        m = self.manager
        starts = self._list_offsets(requests, -2)
        ends = self._list_offsets(requests, -1)
        handled = False
        for key, (hosted, req) in requests.items():
            if key not in starts or key not in ends:
                continue
            with hosted.lock:
                before = hosted.replica.log.log_start_offset, hosted.replica.log.log_end_offset
                handled |= hosted.replica.handle_out_of_range(req, starts[key], ends[key])
                hosted.sync()
                after = hosted.replica.log.log_start_offset, hosted.replica.log.log_end_offset
            if before != after:
                log.warning("broker %d: %s-%d was out of range on leader %d (its log [%d, %d)); "
                            "log [%d, %d) -> [%d, %d)", m.node_id, key[0], key[1], self.leader,
                            starts[key], ends[key], *before, *after)
        return handled

    def _list_offsets(self, requests: dict, timestamp: int) -> dict:
        """ListOffsets as a replica (-1 latest: the log end; -2 earliest: the log start)."""
        topics: dict = {}
        for (topic, p), (_, req) in requests.items():
            topics.setdefault(topic, []).append({
                "partition_index": p, "current_leader_epoch": req.current_leader_epoch,
                "timestamp": timestamp})
        body = {"replica_id": self.manager.node_id, "isolation_level": 0,
                "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]}
        resp = self._call(ApiKey.LIST_OFFSETS, LIST_OFFSETS_VERSION, body)
        return {(t["name"], p["partition_index"]): p["offset"] for t in resp["topics"]
                for p in t["partitions"] if p["error_code"] == 0 and p["offset"] >= 0}

    def _call(self, api_key: int, version: int, body: dict) -> dict:
        if self._sock is None:
            self._connect()
        self._cid = (self._cid + 1) & 0x7FFFFFFF
        return blocking.call(self._sock, api_key, version, body,
                             client_id=f"klog-replica-{self.manager.node_id}",
                             correlation_id=self._cid, peer=f"broker {self.leader}")

    def _connect(self):
        address = self.manager.broker_address(self.leader)
        if address is None:
            raise ConnectionError(f"broker {self.leader} is not registered")
        s = socket.create_connection(address, timeout=5)
        s.settimeout(FETCH_MAX_WAIT_MS / 1000 + 10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = s

    def _fetch(self, requests: dict) -> dict:
        m = self.manager
        topics: dict = {}
        for (topic, p), (_, req) in requests.items():
            topics.setdefault(topic, []).append({
                "partition": p, "current_leader_epoch": req.current_leader_epoch,
                "fetch_offset": req.fetch_offset, "last_fetched_epoch": req.last_fetched_epoch,
                "log_start_offset": -1, "partition_max_bytes": PARTITION_MAX_BYTES})
        body = {"replica_state": {"replica_id": m.node_id, "replica_epoch": m.broker_epoch},
                "max_wait_ms": FETCH_MAX_WAIT_MS, "min_bytes": 1, "max_bytes": FETCH_MAX_BYTES,
                "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                "topics": [{"topic_id": m.topic_ids[t], "partitions": ps}
                           for t, ps in topics.items()],
                "forgotten_topics_data": [], "rack_id": ""}
        resp = self._call(ApiKey.FETCH, FETCH_VERSION, body)
        names = {m.topic_ids[t]: t for t in topics}
        out = {}
        for t in resp["responses"]:
            name = names.get(t["topic_id"])
            for p in t["partitions"]:
                div = p.get("diverging_epoch") or {}
                diverging = None
                if div.get("epoch", -1) >= 0 or div.get("end_offset", -1) >= 0:
                    diverging = EpochEnd(div["epoch"], div["end_offset"])
                records = p.get("records")
                out[(name, p["partition_index"])] = FetchResponse(
                    p["error_code"], p["high_watermark"], p["log_start_offset"],
                    bytes(records) if records else b"", diverging)
        return out
