"""The group coordinator: Kafka's classic consumer-group protocol, for embedded consumers and the
wire-protocol server alike.

Handles JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, ListGroups,
DescribeGroups and DeleteGroups with Kafka's semantics and error codes (the Scala
``GroupCoordinator`` of Kafka 2.x/3.x and ``ClassicGroup*.java``). Group states::

                  join                all members rejoined, or rebalance timeout
       Empty ──────────────▶ PreparingRebalance ──────────────▶ CompletingRebalance
         ▲                     ▲      │ no member rejoined               │ leader's SyncGroup
         │                     │      ▼                                  ▼
         └─────────────────────│─── (Empty, generation + 1)            Stable
                               └── leave, session expiry, leader rejoin, new metadata ──┘
       Dead: deleted (DeleteGroups on an Empty group, or offsets expired); terminal.

- Every completed join starts a new generation (it also grows when the group falls Empty).
- The first rebalance of an Empty group waits ``group.initial.rebalance.delay.ms`` and again
  while new members keep arriving, up to the rebalance timeout (Kafka's InitialDelayedJoin).
- A rebalance waits for every known member to rejoin until the largest member rebalance timeout;
  members that did not rejoin are removed. Members that do not SyncGroup within the rebalance
  timeout after the join completed are removed too (KIP-814's pending-sync check).
- A member is expired when no heartbeat (or join, sync, commit) came within its session timeout,
  unless it is blocked in a join or sync, which is the coordinator's doing, not the member's.

Member metadata and assignments are opaque bytes (for ``"consumer"`` groups, ConsumerProtocol
encodings: klog.group.protocol), so wire clients and embedded consumers share groups.

Concurrency: every method is thread-safe and none blocks waiting for other members. ``join_group``
and ``sync_group`` return a ``concurrent.futures.Future`` that completes when the group moves on
(the asyncio server wraps it with ``asyncio.wrap_future``); the other requests answer at once.
Each group has its own lock; futures are completed after that lock is released, so their
callbacks may call back in. Timers (session expiry, rebalance and sync timeouts, the initial
delay, offset expiry) run on one thread with a heap of deadlines and take the group's lock.
Lock order: the coordinator's ``_lock`` (the group table) before any group's lock, never after.

Restart: offsets and each group's last generation and protocol type are replayed from
``__consumer_offsets``; members are not restored, so a group comes back Empty and members that
were in it get UNKNOWN_MEMBER_ID and join again.

Static membership (``group.instance.id``, KIP-345): a static member joins without
MEMBER_ID_REQUIRED. When one joins again with no member id (a restarted process) while its
instance id is still in the group, it takes over the old member's place under a new member id:
a Stable group keeps its generation and assignment (no rebalance) unless the group's protocol
would change; the answer names the current leader, so a restarted leader does not reassign.
The old member id is fenced: its requests get FENCED_INSTANCE_ID. Static members are not
removed for missing a rebalance, only by session expiry or LeaveGroup (which names them by
instance id), and either starts a rebalance.
"""
import logging
import threading
import uuid
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

from klog.clock import SYSTEM_CLOCK
from klog.errors import KlogError
from klog.group import errors as E
from klog.group.offsets import (
    CommittedOffset, GroupRecord, MemberRecord, OffsetStore, encode_group_key, encode_group_value,
    encode_offset_key, encode_offset_value,
)
from klog.structs import as_topic_partition

log = logging.getLogger("klog.group")

EMPTY = "Empty"
PREPARING_REBALANCE = "PreparingRebalance"
COMPLETING_REBALANCE = "CompletingRebalance"
STABLE = "Stable"
DEAD = "Dead"
STATES = (EMPTY, PREPARING_REBALANCE, COMPLETING_REBALANCE, STABLE, DEAD)

# ClassicGroupState.java: the states each state may be entered from.
VALID_PREVIOUS = {
    PREPARING_REBALANCE: {STABLE, COMPLETING_REBALANCE, EMPTY},
    COMPLETING_REBALANCE: {PREPARING_REBALANCE},
    STABLE: {COMPLETING_REBALANCE},
    EMPTY: {PREPARING_REBALANCE},
    DEAD: {STABLE, PREPARING_REBALANCE, COMPLETING_REBALANCE, EMPTY, DEAD},
}

NEW_MEMBER_JOIN_TIMEOUT_S = 300.0          # Kafka's GroupCoordinator.NewMemberJoinTimeoutMs
OFFSET_METADATA_MAX_BYTES = 4096           # offset.metadata.max.bytes
OFFSETS_RETENTION_CHECK_INTERVAL_S = 600.0  # offsets.retention.check.interval.ms
NO_OFFSET = CommittedOffset(-1, -1, "", -1)


_now_ms = SYSTEM_CLOCK.now_ms   # a group's state timestamps (the coordinator's own: its clock)


# -- results (what the wire server puts in responses) ---------------------------------------------
@dataclass(frozen=True)
class JoinGroupMember:
    member_id: str
    group_instance_id: str
    metadata: bytes


@dataclass(frozen=True)
class JoinGroupResult:
    error: int
    generation_id: int = -1
    protocol_type: str = None
    protocol_name: str = None
    leader_id: str = ""
    member_id: str = ""
    members: tuple = ()          # JoinGroupMembers, for the leader only


@dataclass(frozen=True)
class SyncGroupResult:
    error: int
    protocol_type: str = None
    protocol_name: str = None
    assignment: bytes = b""


@dataclass(frozen=True)
class LeaveGroupResult:
    error: int
    members: tuple = ()          # (member_id, group_instance_id, error) per member asked to leave


@dataclass(frozen=True)
class OffsetFetchResult:
    error: int
    offsets: dict                # TopicPartition -> CommittedOffset (offset -1: none committed)


@dataclass(frozen=True)
class GroupOverview:
    group_id: str
    protocol_type: str
    state: str


@dataclass(frozen=True)
class MemberDescription:
    member_id: str
    group_instance_id: str
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True)
class GroupDescription:
    error: int
    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: tuple


# -- group state ---------------------------------------------------------------------------------
class _Member:
    __slots__ = ("member_id", "group_instance_id", "client_id", "client_host",
                 "rebalance_timeout_ms", "session_timeout_ms", "protocol_type", "protocols",
                 "assignment", "join_future", "sync_future", "deadline", "expiry", "is_new",
                 "joined_at")

    def __init__(self, member_id, group_instance_id, client_id, client_host, rebalance_timeout_ms,
                 session_timeout_ms, protocol_type, protocols):
        self.member_id = member_id
        self.group_instance_id = group_instance_id
        self.client_id = client_id
        self.client_host = client_host
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.session_timeout_ms = session_timeout_ms
        self.protocol_type = protocol_type
        self.protocols = protocols        # ((name, metadata bytes), ...) in preference order
        self.assignment = b""
        self.join_future = None           # set while the member awaits a JoinGroup answer
        self.sync_future = None           # set while it awaits a SyncGroup answer
        self.deadline = 0.0               # monotonic session deadline
        self.expiry = None                # its session-expiry Task (klog.clock)
        self.is_new = True
        self.joined_at = 0.0              # monotonic s; set by the coordinator

    def metadata(self, protocol):
        for name, meta in self.protocols:
            if name == protocol:
                return meta
        return b""

    def vote(self, candidates):
        for name, _ in self.protocols:
            if name in candidates:
                return name
        return None

    def matches(self, protocols):
        return self.protocols == protocols


class _Group:
    """One group's state; every field is guarded by ``lock``."""

    def __init__(self, group_id):
        self.group_id = group_id
        self.lock = threading.RLock()
        self.outbox = []                 # (future, result) to complete once the lock is released
        self.state = EMPTY
        self.state_timestamp = _now_ms()
        self.generation = 0
        self.protocol_type = None
        self.protocol_name = None
        self.leader_id = None
        self.members = {}                # member_id -> _Member, in join order
        self.static_members = {}         # group_instance_id -> member_id (KIP-345)
        self.pending_members = {}        # member_id -> Task (klog.clock): got MEMBER_ID_REQUIRED, not back yet
        self.pending_sync = set()        # members that have not sent SyncGroup this generation
        self.offsets = {}                # TopicPartition -> CommittedOffset
        self.join_timer = None           # the running DelayedJoin / InitialDelayedJoin
        self.join_epoch = 0              # bumped whenever join_timer changes; stale timers see it
        self.initial_delay = False       # that timer is an InitialDelayedJoin
        self.new_member_added = False
        self.initial_remaining_ms = 0
        self.sync_timer = None

    def transition(self, state):
        if self.state not in VALID_PREVIOUS[state]:
            raise RuntimeError(f"group {self.group_id!r}: illegal transition {self.state} -> {state}")
        self.state = state
        self.state_timestamp = _now_ms()

    def reply(self, future, result):
        if future is not None:
            self.outbox.append((future, result))

    def add(self, member):
        if not self.members:
            self.protocol_type = member.protocol_type
        self.members[member.member_id] = member
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        if self.leader_id is None:
            self.leader_id = member.member_id

    def remove(self, member_id):
        m = self.members.pop(member_id, None)
        if m is not None and self.static_members.get(m.group_instance_id) == member_id:
            del self.static_members[m.group_instance_id]
        self.pending_sync.discard(member_id)
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)

    def replace_static_member(self, instance_id, old_id, new_id):
        """The static member ``instance_id`` continues as ``new_id``, in the same place; what
        the old id still waits for is answered FENCED_INSTANCE_ID."""
        member = self.members[old_id]
        self.reply(member.join_future, JoinGroupResult(E.FENCED_INSTANCE_ID, member_id=old_id))
        self.reply(member.sync_future, SyncGroupResult(E.FENCED_INSTANCE_ID))
        member.join_future = member.sync_future = None
        member.member_id = new_id
        self.members = {(new_id if k == old_id else k): v for k, v in self.members.items()}
        self.static_members[instance_id] = new_id
        if old_id in self.pending_sync:
            self.pending_sync.discard(old_id)
            self.pending_sync.add(new_id)
        if self.leader_id == old_id:
            self.leader_id = new_id
        return member

    def validate_member(self, member_id, instance_id):
        """Kafka's validateCurrentMember: an error code, or None when ``member_id`` (and
        ``instance_id``, if given) name a current member."""
        if instance_id is not None:
            current = self.static_members.get(instance_id)
            if current is None:
                return E.UNKNOWN_MEMBER_ID
            return E.FENCED_INSTANCE_ID if current != member_id else None
        return None if member_id in self.members else E.UNKNOWN_MEMBER_ID

    def all_joined(self):
        return not self.pending_members and all(
            m.join_future is not None for m in self.members.values())

    def rebalance_timeout_ms(self):
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def supports(self, protocol_type, protocols):
        if self.state == EMPTY or not self.members:
            return bool(protocol_type) and bool(protocols)
        if protocol_type != self.protocol_type:
            return False
        n = len(self.members)
        return any(sum(1 for m in self.members.values() if any(p == name for p, _ in m.protocols)) == n
                   for name, _ in protocols)

    def select_protocol(self):
        """ClassicGroup.selectProtocol: among the protocols every member supports, each member
        votes for its first choice; most votes wins. Kafka leaves ties to hash order; we break
        them by the leader's preference, so the result is deterministic."""
        members = list(self.members.values())
        candidates = set(name for name, _ in members[0].protocols)
        for m in members[1:]:
            candidates &= {name for name, _ in m.protocols}
        votes = {}
        for m in members:
            choice = m.vote(candidates)
            votes[choice] = votes.get(choice, 0) + 1
        leader = self.members.get(self.leader_id, members[0])
        order = {name: i for i, (name, _) in enumerate(leader.protocols)}
        return max(votes, key=lambda name: (votes[name], -order.get(name, len(order))))


class _Locked:
    """``with _Locked(group):`` holds the group's lock and, on the way out, completes the futures
    queued in its outbox after releasing it."""
    __slots__ = ("group",)

    def __init__(self, group):
        self.group = group

    def __enter__(self):
        self.group.lock.acquire()
        return self.group

    def __exit__(self, *exc):
        g = self.group
        outbox, g.outbox = g.outbox, []
        g.lock.release()
        for future, result in outbox:
            _resolve(future, result)


def _resolve(future, result):
    try:
        future.set_result(result)
    except InvalidStateError:  # the requester cancelled (e.g. its connection closed)
        pass


def _done(result):
    f = Future()
    f.set_result(result)
    return f


# -- the coordinator -----------------------------------------------------------------------------
class GroupCoordinator:
    """Coordinates every group of one broker; get it with ``broker.group_coordinator``.

    Concurrency: all methods thread-safe and non-blocking (see the module comment); join and
    sync answer through Futures, completed outside the group's lock."""

    def __init__(self, broker):
        self._broker = broker
        self._config = broker.config
        self._store = OffsetStore(broker)
        self._lock = threading.Lock()
        self._groups = {}
        self._closed = False
        self._clock = broker.clock
        # How many partitions a topic has (OffsetCommit and OffsetDelete check the partitions
        # named): the broker's own topics; a cluster member sets ZooKeeper's view (a topic with
        # no replica on the coordinator's broker is still a topic).
        self.topic_partitions = broker.partition_count
        self._load()
        # Session, join and sync timers run on the broker's scheduler (klog.clock), one at a
        # time, so they must not block; close() cancels only these.
        self._timer = broker.scheduler.tasks()
        self._timer.schedule(OFFSETS_RETENTION_CHECK_INTERVAL_S * 1000, self._periodic_expiry)

    # -- lifecycle -----------------------------------------------------------------------------
    def _load(self):
        loaded = self._store.load()
        now = self._clock.now_ms()
        for group_id, record in loaded.groups.items():
            g = self._groups[group_id] = _Group(group_id)
            g.generation = record.generation
            g.protocol_type = record.protocol_type or None
            g.state_timestamp = record.current_state_timestamp if record.current_state_timestamp >= 0 else now
        for group_id, offsets in loaded.offsets.items():
            g = self._groups.get(group_id) or self._groups.setdefault(group_id, _Group(group_id))
            g.offsets = dict(offsets)

    def load_partition(self, partition):
        """This broker now leads ``__consumer_offsets`` partition ``partition`` (cluster mode):
        the groups stored there are replaced by what its log holds (another coordinator wrote
        them); their members rejoin."""
        loaded = self._store.load([partition])
        now = self._clock.now_ms()
        with self._lock:
            for group_id in [g for g in self._groups
                             if self._store.partition_for(g) == partition]:
                del self._groups[group_id]
            for group_id, record in loaded.groups.items():
                g = self._groups[group_id] = _Group(group_id)
                g.generation = record.generation
                g.protocol_type = record.protocol_type or None
                g.state_timestamp = record.current_state_timestamp \
                    if record.current_state_timestamp >= 0 else now
            for group_id, offsets in loaded.offsets.items():
                g = self._groups.get(group_id) or self._groups.setdefault(group_id,
                                                                          _Group(group_id))
                g.offsets = dict(offsets)

    def unload_partition(self, partition):
        """This broker no longer leads ``__consumer_offsets`` partition ``partition`` (cluster
        mode; Kafka's removeGroupsForPartition): its groups are another coordinator's now. They
        go Dead here, their timers stop (nothing more is written for them), and every waiting
        join and sync is answered NOT_COORDINATOR, so the members find the new coordinator.
        Returns how many groups went."""
        with self._lock:
            gone = [self._groups.pop(g) for g in list(self._groups)
                    if self._store.partition_for(g) == partition]
        for g in gone:
            with _Locked(g):
                self._set_join_timer(g, 0, None)
                if g.sync_timer is not None:
                    g.sync_timer.cancel()
                    g.sync_timer = None
                for t in g.pending_members.values():
                    t.cancel()
                g.pending_members.clear()
                for m in g.members.values():
                    g.reply(m.join_future, JoinGroupResult(E.NOT_COORDINATOR,
                                                           member_id=m.member_id))
                    g.reply(m.sync_future, SyncGroupResult(E.NOT_COORDINATOR))
                    m.join_future = m.sync_future = None
                    if m.expiry is not None:
                        m.expiry.cancel()
                        m.expiry = None
                g.transition(DEAD)
        return len(gone)

    def _monotonic(self):
        """Seconds on the broker's monotonic clock (session deadlines)."""
        return self._clock.monotonic_ms() / 1000.0

    def close(self):
        """Stop the timers and answer every waiting join and sync with COORDINATOR_NOT_AVAILABLE."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            groups = list(self._groups.values())
        self._timer.close()
        for g in groups:
            with _Locked(g):
                for m in g.members.values():
                    g.reply(m.join_future, JoinGroupResult(E.COORDINATOR_NOT_AVAILABLE,
                                                           member_id=m.member_id))
                    g.reply(m.sync_future, SyncGroupResult(E.COORDINATOR_NOT_AVAILABLE))
                    m.join_future = m.sync_future = None

    @property
    def closed(self):
        return self._closed

    def partition_for(self, group_id):
        """The ``__consumer_offsets`` partition holding the group (for FindCoordinator)."""
        return self._store.partition_for(group_id)

    def _group(self, group_id, create=False):
        with self._lock:
            g = self._groups.get(group_id)
            if (g is None or g.state == DEAD) and create:
                g = self._groups[group_id] = _Group(group_id)
            return g

    # -- JoinGroup -----------------------------------------------------------------------------
    def join_group(self, group_id, member_id, protocol_type, protocols, session_timeout_ms,
                   rebalance_timeout_ms=-1, client_id="", client_host="", group_instance_id=None,
                   require_known_member_id=False, reason=None):
        """JoinGroup. ``protocols``: [(name, metadata bytes)] in preference order;
        ``rebalance_timeout_ms`` -1 means the session timeout (JoinGroup v0);
        ``require_known_member_id`` is JoinGroup v4+: a new member first gets
        MEMBER_ID_REQUIRED with its generated id and must join again with it.
        Returns a Future of JoinGroupResult."""
        protocols = tuple((str(name), bytes(meta)) for name, meta in protocols)
        if rebalance_timeout_ms is None or rebalance_timeout_ms < 0:
            rebalance_timeout_ms = session_timeout_ms
        member_id = member_id or ""
        if not group_id:
            return _done(JoinGroupResult(E.INVALID_GROUP_ID, member_id=member_id))
        if self._closed:
            return _done(JoinGroupResult(E.COORDINATOR_NOT_AVAILABLE, member_id=member_id))
        if not (self._config["group.min.session.timeout.ms"] <= session_timeout_ms
                <= self._config["group.max.session.timeout.ms"]):
            return _done(JoinGroupResult(E.INVALID_SESSION_TIMEOUT, member_id=member_id))
        group = self._group(group_id, create=(member_id == ""))
        if group is None:
            return _done(JoinGroupResult(E.UNKNOWN_MEMBER_ID, member_id=member_id))
        future = Future()
        args = (group_instance_id, client_id, client_host, rebalance_timeout_ms,
                session_timeout_ms, protocol_type, protocols)
        with _Locked(group):
            if group.state == DEAD:
                # Deleted meanwhile; the client looks the coordinator up again and retries.
                group.reply(future, JoinGroupResult(E.COORDINATOR_NOT_AVAILABLE, member_id=member_id))
            elif not group.supports(protocol_type, protocols):
                group.reply(future, JoinGroupResult(E.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id))
            elif member_id == "":
                new_id = f"{group_instance_id or client_id}-{uuid.uuid4()}"
                if group_instance_id is not None and group_instance_id in group.static_members:
                    self._update_static_member_and_rebalance(group, new_id, future, args, reason)
                elif require_known_member_id and group_instance_id is None:
                    # Static members skip MEMBER_ID_REQUIRED: their instance id is the identity.
                    group.pending_members[new_id] = self._timer.schedule(
                        session_timeout_ms, self._expire_pending, group, new_id)
                    group.reply(future, JoinGroupResult(E.MEMBER_ID_REQUIRED, member_id=new_id))
                else:
                    self._add_member_and_rebalance(group, new_id, future, args, reason)
            elif member_id in group.pending_members:
                self._add_member_and_rebalance(group, member_id, future, args, reason)
            else:
                error = group.validate_member(member_id, group_instance_id)
                if error is not None:
                    group.reply(future, JoinGroupResult(error, member_id=member_id))
                else:
                    self._join_current_member(group, group.members[member_id], future, args, reason)
        return future

    def _update_static_member_and_rebalance(self, group, new_id, future, args, reason):
        """A known static member joined with no member id (it restarted): it continues under
        ``new_id`` (KIP-345, Kafka's updateStaticMemberAndRebalance)."""
        instance_id, client_id, client_host, rebalance_ms, session_ms, _, protocols = args
        old_id = group.static_members[instance_id]
        current_leader = group.leader_id
        member = group.replace_static_member(instance_id, old_id, new_id)
        old_protocols = member.protocols
        member.protocols = protocols
        member.rebalance_timeout_ms = rebalance_ms
        member.session_timeout_ms = session_ms
        member.client_id, member.client_host = client_id, client_host
        self._touch(group, member)
        log.info("group %s: static member %s rejoined as %s (was %s)", group.group_id,
                 instance_id, new_id, old_id)
        if group.state == STABLE and group.select_protocol() == group.protocol_name:
            try:
                self._store_group(group, raise_errors=True)
            except (KlogError, OSError) as exc:
                log.warning("group %s: could not store static member %s: %s", group.group_id,
                            instance_id, exc)
                group.replace_static_member(instance_id, new_id, old_id)
                member.protocols = old_protocols
                group.reply(future, JoinGroupResult(E.COORDINATOR_NOT_AVAILABLE, member_id=new_id))
                return
            # The old leader id, so that a restarted leader does not assign again: a Stable
            # group would not pass a new assignment on.
            group.reply(future, JoinGroupResult(E.NONE, group.generation, group.protocol_type,
                                                group.protocol_name, current_leader, new_id, ()))
            return
        member.join_future = future
        if group.state == STABLE:
            self._prepare_rebalance(group, f"static member {instance_id} rejoined with other "
                                           "protocols: the group's protocol changes")
        elif group.state == COMPLETING_REBALANCE:
            # The leader may be assigning to the old member id: start over.
            self._prepare_rebalance(group, f"static member {instance_id} rejoined during "
                                           "CompletingRebalance")
        else:
            self._check_join_complete(group)

    def _join_current_member(self, group, member, future, args, reason):
        protocols = args[-1]
        state = group.state
        if state == PREPARING_REBALANCE:
            self._update_member_and_rebalance(group, member, future, args, reason or "member rejoined")
        elif state == COMPLETING_REBALANCE:
            if member.matches(protocols):
                # It lost the first answer; give it the current generation again.
                group.reply(future, self._join_result(group, member))
            else:
                self._update_member_and_rebalance(group, member, future, args, "member metadata changed")
        elif state == STABLE:
            if member.member_id == group.leader_id:
                # A leader rejoining asks for a rebalance (e.g. topic metadata changed).
                self._update_member_and_rebalance(group, member, future, args, reason or "leader rejoined")
            elif not member.matches(protocols):
                self._update_member_and_rebalance(group, member, future, args, "member metadata changed")
            else:
                group.reply(future, self._join_result(group, member, with_members=False))
        else:
            group.reply(future, JoinGroupResult(E.UNKNOWN_MEMBER_ID, member_id=member.member_id))

    def _add_member_and_rebalance(self, group, member_id, future, args, reason):
        instance_id, client_id, client_host, rebalance_ms, session_ms, ptype, protocols = args
        member = _Member(member_id, instance_id, client_id, client_host, rebalance_ms, session_ms,
                         ptype, protocols)
        member.joined_at = self._monotonic()
        member.join_future = future
        pending = group.pending_members.pop(member_id, None)
        if pending is not None:
            pending.cancel()
        if group.state == PREPARING_REBALANCE and group.initial_delay:
            group.new_member_added = True   # the initial delay waits a little longer for more
        group.add(member)
        self._touch(group, member)
        self._maybe_prepare_rebalance(group, reason or f"new member {member_id} joined")
        self._check_join_complete(group)

    def _update_member_and_rebalance(self, group, member, future, args, reason):
        _, _, _, rebalance_ms, session_ms, _, protocols = args
        if member.join_future is not None and member.join_future is not future:
            # A newer JoinGroup supersedes one still waiting; the waiter retries.
            group.reply(member.join_future, JoinGroupResult(E.REBALANCE_IN_PROGRESS,
                                                            member_id=member.member_id))
        member.protocols = protocols
        member.rebalance_timeout_ms = rebalance_ms
        member.session_timeout_ms = session_ms
        member.join_future = future
        self._touch(group, member)
        self._maybe_prepare_rebalance(group, reason)
        self._check_join_complete(group)

    def _join_result(self, group, member, with_members=True):
        leader = member.member_id == group.leader_id
        members = ()
        if leader and with_members:
            members = tuple(JoinGroupMember(m.member_id, m.group_instance_id,
                                            m.metadata(group.protocol_name))
                            for m in group.members.values())
        return JoinGroupResult(E.NONE, group.generation, group.protocol_type, group.protocol_name,
                               group.leader_id, member.member_id, members)

    # -- rebalancing -------------------------------------------------------------------------------
    def _maybe_prepare_rebalance(self, group, reason):
        if group.state in (STABLE, COMPLETING_REBALANCE, EMPTY):
            self._prepare_rebalance(group, reason)

    def _prepare_rebalance(self, group, reason):
        if group.state == COMPLETING_REBALANCE:
            self._reset_and_propagate_assignment_error(group, E.REBALANCE_IN_PROGRESS)
        if group.sync_timer is not None:
            group.sync_timer.cancel()
            group.sync_timer = None
        group.pending_sync.clear()
        if group.state == EMPTY:
            delay = self._config["group.initial.rebalance.delay.ms"]
            group.initial_delay = True
            group.new_member_added = False
            group.initial_remaining_ms = max(group.rebalance_timeout_ms() - delay, 0)
            self._set_join_timer(group, delay, self._initial_delay_expired)
        else:
            group.initial_delay = False
            self._set_join_timer(group, group.rebalance_timeout_ms(), self._join_timeout)
        log.info("group %s: preparing to rebalance (generation %d): %s",
                 group.group_id, group.generation, reason)
        group.transition(PREPARING_REBALANCE)
        self._check_join_complete(group)   # tryCompleteElseWatch: e.g. the last member just left

    def _set_join_timer(self, group, delay_ms, fn):
        """Replace the group's join timer. A timer the timer thread already popped can still
        run after being replaced, so callbacks compare the epoch they were scheduled in."""
        if group.join_timer is not None:
            group.join_timer.cancel()
        group.join_epoch += 1
        group.join_timer = None if fn is None else self._timer.schedule(
            delay_ms, fn, group, group.join_epoch)

    def _check_join_complete(self, group):
        """DelayedJoin.tryComplete: done once every known member has rejoined."""
        if group.state == PREPARING_REBALANCE and not group.initial_delay and group.all_joined():
            self._complete_join(group)

    def _initial_delay_expired(self, group, epoch):
        with _Locked(group):
            if epoch != group.join_epoch or group.state != PREPARING_REBALANCE:
                return
            if group.new_member_added and group.initial_remaining_ms > 0:
                group.new_member_added = False
                delay = min(self._config["group.initial.rebalance.delay.ms"], group.initial_remaining_ms)
                group.initial_remaining_ms = max(group.initial_remaining_ms - delay, 0)
                self._set_join_timer(group, delay, self._initial_delay_expired)
            else:
                self._complete_join(group)

    def _join_timeout(self, group, epoch):
        with _Locked(group):
            if epoch == group.join_epoch and group.state == PREPARING_REBALANCE:
                self._complete_join(group)

    def _complete_join(self, group):
        """onCompleteJoin: drop members that did not rejoin, start the next generation, answer
        every waiting join (the leader gets the member list)."""
        self._set_join_timer(group, 0, None)
        group.initial_delay = False
        # Static members stay, without rejoining: only session expiry or LeaveGroup removes them.
        for m in [m for m in group.members.values()
                  if m.join_future is None and m.group_instance_id is None]:
            log.info("group %s: removing member %s, which did not rejoin within the rebalance "
                     "timeout", group.group_id, m.member_id)
            self._forget(group, m)
        if group.state == DEAD:
            return
        if not group.members:
            group.generation += 1
            group.protocol_name = None
            group.transition(EMPTY)
            self._store_group(group)
            log.info("group %s: empty at generation %d", group.group_id, group.generation)
            return
        if group.leader_id not in group.members:
            group.leader_id = next(iter(group.members))
        group.generation += 1
        group.protocol_name = group.select_protocol()
        group.transition(COMPLETING_REBALANCE)
        log.info("group %s: generation %d with %d members, protocol %s, leader %s",
                 group.group_id, group.generation, len(group.members), group.protocol_name,
                 group.leader_id)
        for m in group.members.values():
            group.reply(m.join_future, self._join_result(group, m))
            m.join_future = None
            m.is_new = False
            self._touch(group, m)
            group.pending_sync.add(m.member_id)
        group.sync_timer = self._timer.schedule(group.rebalance_timeout_ms(),
                                                self._sync_timeout, group, group.generation)

    def _sync_timeout(self, group, generation):
        with _Locked(group):
            if group.sync_timer is None or generation != group.generation:
                return
            group.sync_timer = None
            if group.state not in (COMPLETING_REBALANCE, STABLE) or not group.pending_sync:
                return
            late = sorted(group.pending_sync)
            log.info("group %s: removing members %s, which did not sync within the rebalance "
                     "timeout", group.group_id, late)
            for member_id in late:
                m = group.members.get(member_id)
                if m is not None:
                    self._forget(group, m)
            self._prepare_rebalance(group, f"members {late} did not sync in time")

    def _reset_and_propagate_assignment_error(self, group, error):
        for m in group.members.values():
            m.assignment = b""
            if m.sync_future is not None:
                group.reply(m.sync_future, SyncGroupResult(error))
                m.sync_future = None

    # -- membership and sessions -----------------------------------------------------------------
    def _touch(self, group, member):
        """completeAndScheduleNextHeartbeatExpiration: push the member's session deadline out."""
        member.deadline = self._monotonic() + member.session_timeout_ms / 1000.0
        if member.expiry is None:
            member.expiry = self._timer.schedule(member.session_timeout_ms,
                                                 self._session_expired, group, member)

    def _session_expired(self, group, member):
        with _Locked(group):
            if group.members.get(member.member_id) is not member:
                return
            now = self._monotonic()
            waiting = member.join_future is not None or member.sync_future is not None
            if waiting and not (member.is_new and member.join_future is not None and
                                now - member.joined_at > NEW_MEMBER_JOIN_TIMEOUT_S):
                # Blocked in a join or sync: the wait is ours, not a sign the member died.
                member.deadline = now + member.session_timeout_ms / 1000.0
            if now < member.deadline:
                member.expiry = self._timer.schedule((member.deadline - now) * 1000,
                                                     self._session_expired, group, member)
                return
            member.expiry = None
            log.info("group %s: member %s expired (no heartbeat within session.timeout.ms=%d)",
                     group.group_id, member.member_id, member.session_timeout_ms)
            self._remove_member_and_update_group(group, member, "session timeout")

    def _expire_pending(self, group, member_id):
        with _Locked(group):
            t = group.pending_members.pop(member_id, None)
            if t is not None:
                self._check_join_complete(group)

    def _forget(self, group, member):
        """Remove a member, answering whatever it still waits for with UNKNOWN_MEMBER_ID."""
        group.reply(member.join_future, JoinGroupResult(E.UNKNOWN_MEMBER_ID, member_id=member.member_id))
        group.reply(member.sync_future, SyncGroupResult(E.UNKNOWN_MEMBER_ID))
        member.join_future = member.sync_future = None
        if member.expiry is not None:
            member.expiry.cancel()
            member.expiry = None
        group.remove(member.member_id)

    def _remove_member_and_update_group(self, group, member, reason):
        self._forget(group, member)
        if group.state in (STABLE, COMPLETING_REBALANCE):
            self._maybe_prepare_rebalance(group, f"member {member.member_id} left: {reason}")
        elif group.state == PREPARING_REBALANCE:
            self._check_join_complete(group)

    # -- SyncGroup ---------------------------------------------------------------------------------
    def sync_group(self, group_id, generation_id, member_id, assignments=None, protocol_type=None,
                   protocol_name=None, group_instance_id=None):
        """SyncGroup. The leader passes ``assignments`` {member_id: bytes}; followers pass None
        and their Future completes when the leader's SyncGroup arrives. Returns a Future of
        SyncGroupResult."""
        if not group_id:
            return _done(SyncGroupResult(E.INVALID_GROUP_ID))
        if self._closed:
            return _done(SyncGroupResult(E.COORDINATOR_NOT_AVAILABLE))
        group = self._group(group_id)
        if group is None:
            return _done(SyncGroupResult(E.UNKNOWN_MEMBER_ID))
        future = Future()
        with _Locked(group):
            member = group.members.get(member_id)
            invalid = group.validate_member(member_id, group_instance_id)
            if group.state == DEAD:
                group.reply(future, SyncGroupResult(E.COORDINATOR_NOT_AVAILABLE))
            elif invalid is not None:
                group.reply(future, SyncGroupResult(invalid))
            elif generation_id != group.generation:
                group.reply(future, SyncGroupResult(E.ILLEGAL_GENERATION))
            elif (protocol_type is not None and protocol_type != group.protocol_type) or \
                    (protocol_name is not None and protocol_name != group.protocol_name):
                group.reply(future, SyncGroupResult(E.INCONSISTENT_GROUP_PROTOCOL))
            else:
                group.pending_sync.discard(member_id)
                if group.state == PREPARING_REBALANCE:
                    group.reply(future, SyncGroupResult(E.REBALANCE_IN_PROGRESS))
                elif group.state == COMPLETING_REBALANCE:
                    self._sync_completing(group, member, future, assignments)
                elif group.state == STABLE:
                    self._touch(group, member)
                    group.reply(future, SyncGroupResult(E.NONE, group.protocol_type,
                                                        group.protocol_name, member.assignment))
                else:
                    group.reply(future, SyncGroupResult(E.UNKNOWN_MEMBER_ID))
                if not group.pending_sync and group.sync_timer is not None:
                    group.sync_timer.cancel()
                    group.sync_timer = None
        return future

    def _sync_completing(self, group, member, future, assignments):
        if member.sync_future is not None and member.sync_future is not future:
            group.reply(member.sync_future, SyncGroupResult(E.REBALANCE_IN_PROGRESS))
        member.sync_future = future
        self._touch(group, member)
        if member.member_id != group.leader_id:
            return   # followers wait for the leader
        assignments = assignments or {}
        for m in group.members.values():
            m.assignment = bytes(assignments.get(m.member_id, b""))
        try:
            self._store_group(group, raise_errors=True)
        except (KlogError, OSError) as exc:
            log.warning("group %s: could not store the assignment of generation %d: %s",
                        group.group_id, group.generation, exc)
            self._reset_and_propagate_assignment_error(group, E.COORDINATOR_NOT_AVAILABLE)
            self._prepare_rebalance(group, "storing the group failed")
            return
        for m in group.members.values():
            if m.sync_future is not None:
                group.reply(m.sync_future, SyncGroupResult(E.NONE, group.protocol_type,
                                                           group.protocol_name, m.assignment))
                m.sync_future = None
                self._touch(group, m)
        group.transition(STABLE)

    # -- Heartbeat, LeaveGroup ---------------------------------------------------------------------
    def heartbeat(self, group_id, generation_id, member_id, group_instance_id=None):
        """Heartbeat: returns an error code (NONE, REBALANCE_IN_PROGRESS: rejoin, ...)."""
        if not group_id:
            return E.INVALID_GROUP_ID
        if self._closed:
            return E.COORDINATOR_NOT_AVAILABLE
        group = self._group(group_id)
        if group is None:
            return E.UNKNOWN_MEMBER_ID
        with _Locked(group):
            if group.state == DEAD:
                return E.COORDINATOR_NOT_AVAILABLE
            member = group.members.get(member_id)
            invalid = group.validate_member(member_id, group_instance_id)
            if invalid is not None:
                return invalid
            if group.state == EMPTY:
                return E.UNKNOWN_MEMBER_ID
            if generation_id != group.generation:
                return E.ILLEGAL_GENERATION
            self._touch(group, member)
            if group.state == PREPARING_REBALANCE:
                return E.REBALANCE_IN_PROGRESS
            return E.NONE

    def leave_group(self, group_id, members, reason=None):
        """LeaveGroup for ``members``: member ids, or (member_id, group_instance_id) pairs (an
        empty member id with an instance id names the static member). LeaveGroupResult."""
        pairs = [(m, None) if isinstance(m, str) else (m[0] or "", m[1]) for m in members]
        if not group_id:
            return LeaveGroupResult(E.INVALID_GROUP_ID)
        if self._closed:
            return LeaveGroupResult(E.COORDINATOR_NOT_AVAILABLE)
        group = self._group(group_id)
        if group is None:
            return LeaveGroupResult(E.NONE, tuple((m, i, E.UNKNOWN_MEMBER_ID) for m, i in pairs))
        out = []
        with _Locked(group):
            if group.state == DEAD:
                return LeaveGroupResult(E.COORDINATOR_NOT_AVAILABLE)
            for member_id, instance_id in pairs:
                if not member_id and instance_id is not None:
                    member_id = next((m.member_id for m in group.members.values()
                                      if m.group_instance_id == instance_id), "")
                pending = group.pending_members.pop(member_id, None)
                if pending is not None:
                    pending.cancel()
                    self._check_join_complete(group)
                    out.append((member_id, instance_id, E.NONE))
                    continue
                invalid = group.validate_member(member_id, instance_id)
                if invalid is not None:
                    out.append((member_id, instance_id, invalid))
                    continue
                member = group.members[member_id]
                log.info("group %s: member %s leaves%s", group.group_id, member_id,
                         f" ({reason})" if reason else "")
                self._remove_member_and_update_group(group, member, reason or "left the group")
                out.append((member_id, instance_id, E.NONE))
        return LeaveGroupResult(E.NONE, tuple(out))

    # -- offsets -------------------------------------------------------------------------------------
    def commit_offsets(self, group_id, member_id, generation_id, offsets, group_instance_id=None):
        """OffsetCommit. ``offsets``: {TopicPartition: offset | OffsetAndMetadata |
        CommittedOffset}. A member commits with its id and generation; a consumer outside group
        management (manual assignment) with member "" and generation -1, which only an Empty
        group accepts. Returns {TopicPartition: error code}."""
        now = self._clock.now_ms()
        entries = {}
        for tp, value in offsets.items():
            tp = as_topic_partition(tp)
            if isinstance(value, int):
                entries[tp] = CommittedOffset(value, -1, "", now)
            elif isinstance(value, CommittedOffset):
                entries[tp] = CommittedOffset(value.offset, value.leader_epoch, value.metadata or "", now)
            else:   # OffsetAndMetadata or an (offset, metadata[, leader_epoch]) tuple
                entries[tp] = CommittedOffset(value[0], value[2] if len(value) > 2 else -1,
                                              value[1] or "", now)
        if group_id is None:
            return {tp: E.INVALID_GROUP_ID for tp in entries}
        if self._closed:
            return {tp: E.COORDINATOR_NOT_AVAILABLE for tp in entries}
        member_id = member_id or ""
        group = self._group(group_id)
        if group is None:
            if generation_id >= 0:
                # A member of a generation this coordinator does not know: reject.
                return {tp: E.ILLEGAL_GENERATION for tp in entries}
            group = self._group(group_id, create=True)
        with _Locked(group):
            if group.state == DEAD:
                error = E.COORDINATOR_NOT_AVAILABLE
            elif generation_id < 0 and group.state == EMPTY:
                error = E.NONE
            elif group_instance_id is not None and \
                    group.validate_member(member_id, group_instance_id) is not None:
                error = group.validate_member(member_id, group_instance_id)   # fenced or gone
            elif group.state == COMPLETING_REBALANCE:
                error = E.REBALANCE_IN_PROGRESS
            elif member_id not in group.members:
                error = E.UNKNOWN_MEMBER_ID
            elif generation_id != group.generation:
                error = E.ILLEGAL_GENERATION
            else:
                error = E.NONE
                self._touch(group, group.members[member_id])
            if error != E.NONE:
                return {tp: error for tp in entries}
            return self._store_offsets(group, entries)

    def _store_offsets(self, group, entries):
        result, records, accepted = {}, [], {}
        for tp, c in entries.items():
            if not self._topic_has(tp):
                result[tp] = E.UNKNOWN_TOPIC_OR_PARTITION
            elif len(c.metadata.encode("utf-8")) > OFFSET_METADATA_MAX_BYTES:
                result[tp] = E.OFFSET_METADATA_TOO_LARGE
            else:
                records.append((encode_offset_key(group.group_id, tp.topic, tp.partition),
                                encode_offset_value(c)))
                accepted[tp] = c
        if records:
            try:
                self._store.append(group.group_id, records)
            except (KlogError, OSError) as exc:
                log.warning("group %s: offset commit not stored: %s", group.group_id, exc)
                for tp in accepted:
                    result[tp] = E.COORDINATOR_NOT_AVAILABLE
                return result
            group.offsets.update(accepted)
            for tp in accepted:
                result[tp] = E.NONE
        return result

    def _topic_has(self, tp):
        try:
            return 0 <= tp.partition < self.topic_partitions(tp.topic)
        except KlogError:
            return False

    def fetch_offsets(self, group_id, partitions=None):
        """OffsetFetch: the group's committed offsets (all of them, or for ``partitions``, with
        offset -1 where none is committed). Returns OffsetFetchResult."""
        if group_id is None:
            return OffsetFetchResult(E.INVALID_GROUP_ID, {})
        if self._closed:
            return OffsetFetchResult(E.COORDINATOR_NOT_AVAILABLE, {})
        wanted = None if partitions is None else [as_topic_partition(tp) for tp in partitions]
        group = self._group(group_id)
        if group is None:
            return OffsetFetchResult(E.NONE, {} if wanted is None else {tp: NO_OFFSET for tp in wanted})
        with _Locked(group):
            if wanted is None:
                return OffsetFetchResult(E.NONE, dict(group.offsets))
            return OffsetFetchResult(E.NONE, {tp: group.offsets.get(tp, NO_OFFSET) for tp in wanted})

    # -- administration ----------------------------------------------------------------------------
    def list_groups(self, states=None):
        """ListGroups: [GroupOverview] of every live group, optionally only in ``states``
        (Kafka's state names, any case)."""
        wanted = None if not states else {s.lower() for s in states}
        with self._lock:
            groups = list(self._groups.values())
        out = []
        for g in groups:
            with _Locked(g):
                if g.state != DEAD and (wanted is None or g.state.lower() in wanted):
                    out.append(GroupOverview(g.group_id, g.protocol_type or "", g.state))
        return sorted(out, key=lambda o: o.group_id)

    def describe_groups(self, group_ids):
        """DescribeGroups: [GroupDescription]; an unknown group is described as Dead. Member
        metadata and assignments are only filled in when the group is Stable (as Kafka)."""
        out = []
        for group_id in group_ids:
            if group_id is None:
                out.append(GroupDescription(E.INVALID_GROUP_ID, group_id, DEAD, "", "", ()))
                continue
            if self._closed:
                out.append(GroupDescription(E.COORDINATOR_NOT_AVAILABLE, group_id, DEAD, "", "", ()))
                continue
            g = self._group(group_id)
            if g is None:
                out.append(GroupDescription(E.NONE, group_id, DEAD, "", "", ()))
                continue
            with _Locked(g):
                stable = g.state == STABLE
                members = tuple(MemberDescription(
                    m.member_id, m.group_instance_id, m.client_id, m.client_host,
                    m.metadata(g.protocol_name) if stable else b"",
                    m.assignment if stable else b"") for m in g.members.values())
                out.append(GroupDescription(E.NONE, group_id, g.state, g.protocol_type or "",
                                            (g.protocol_name or "") if stable else "", members))
        return out

    def delete_groups(self, group_ids):
        """DeleteGroups: {group_id: error}. Only an Empty group can be deleted (NON_EMPTY_GROUP
        otherwise); its offsets and metadata get tombstones."""
        out = {}
        for group_id in group_ids:
            if group_id is None:
                out[group_id] = E.INVALID_GROUP_ID
                continue
            if self._closed:
                out[group_id] = E.COORDINATOR_NOT_AVAILABLE
                continue
            with self._lock:
                g = self._groups.get(group_id)
                if g is None:
                    out[group_id] = E.GROUP_ID_NOT_FOUND
                    continue
                with _Locked(g):
                    if g.state == DEAD:
                        out[group_id] = E.GROUP_ID_NOT_FOUND
                    elif g.state != EMPTY:
                        out[group_id] = E.NON_EMPTY_GROUP
                    else:
                        out[group_id] = self._kill(g, list(g.offsets))
                if g.state == DEAD:
                    del self._groups[group_id]
        return out

    def delete_offsets(self, group_id, partitions):
        """OffsetDelete: remove the committed offsets of ``partitions`` (TopicPartitions).
        Returns (group error, {TopicPartition: error}). Kafka's rules: an Empty group loses
        them; a consumer group with members keeps those of topics it is subscribed to
        (GROUP_SUBSCRIBED_TO_TOPIC) and loses the rest; any other group with members answers
        NON_EMPTY_GROUP; an unknown or dead group GROUP_ID_NOT_FOUND."""
        wanted = [as_topic_partition(tp) for tp in partitions]
        if not group_id:
            return E.INVALID_GROUP_ID, {}
        if self._closed:
            return E.COORDINATOR_NOT_AVAILABLE, {}
        with self._lock:
            g = self._groups.get(group_id)
            if g is None:
                return E.GROUP_ID_NOT_FOUND, {}
            with _Locked(g):
                if g.state == DEAD:
                    return E.GROUP_ID_NOT_FOUND, {}
                result = {tp: E.NONE for tp in wanted}
                if g.state != EMPTY:
                    if g.protocol_type != "consumer":
                        return E.NON_EMPTY_GROUP, {}
                    subscribed = self._subscribed_topics(g)
                    for tp in wanted:
                        if subscribed is None or tp.topic in subscribed:
                            result[tp] = E.GROUP_SUBSCRIBED_TO_TOPIC
                doomed = [tp for tp, err in result.items() if err == E.NONE and tp in g.offsets]
                if not doomed:
                    return E.NONE, result
                records = [(encode_offset_key(g.group_id, tp.topic, tp.partition), None)
                           for tp in doomed]
                try:
                    self._store.append(g.group_id, records)
                except (KlogError, OSError) as exc:
                    log.warning("group %s: could not delete offsets: %s", g.group_id, exc)
                    return E.COORDINATOR_NOT_AVAILABLE, {}
                for tp in doomed:
                    g.offsets.pop(tp, None)
                return E.NONE, result

    def topic_deleted(self, topic):
        """A topic was deleted: every group's committed offsets for it get tombstones, as Kafka
        does, so a group does not resume a re-created topic at an offset of the old one."""
        if self._closed:
            return
        with self._lock:
            groups = list(self._groups.values())
        for g in groups:
            with _Locked(g):
                doomed = [tp for tp in g.offsets if tp.topic == topic]
                if not doomed:
                    continue
                records = [(encode_offset_key(g.group_id, tp.topic, tp.partition), None)
                           for tp in doomed]
                try:
                    self._store.append(g.group_id, records)
                except (KlogError, OSError) as exc:
                    log.warning("group %s: could not delete offsets of deleted topic %s: %s",
                                g.group_id, topic, exc)
                    continue
                for tp in doomed:
                    g.offsets.pop(tp, None)

    @staticmethod
    def _subscribed_topics(group):
        """The topics the members of a consumer group subscribe to; None if a member's
        subscription cannot be read (then every topic counts as subscribed, as in Kafka)."""
        from klog.group.protocol import decode_subscription

        topics = set()
        for m in group.members.values():
            try:
                topics.update(decode_subscription(m.metadata(group.protocol_name)).topics)
            except (KlogError, ValueError, TypeError):
                return None
        return topics

    def _kill(self, group, expired):
        """Tombstone ``expired`` offsets and, if none are left, the group itself (→ Dead)."""
        records = [(encode_offset_key(group.group_id, tp.topic, tp.partition), None)
                   for tp in expired]
        dead = len(expired) == len(group.offsets)
        if dead:
            records.append((encode_group_key(group.group_id), None))
        try:
            self._store.append(group.group_id, records)
        except (KlogError, OSError) as exc:
            log.warning("group %s: could not write tombstones: %s", group.group_id, exc)
            return E.COORDINATOR_NOT_AVAILABLE
        for tp in expired:
            group.offsets.pop(tp, None)
        if dead:
            group.transition(DEAD)
        return E.NONE

    def expire_offsets(self, now_ms=None):
        """Drop committed offsets older than ``offsets.retention.minutes`` (Kafka 2.1+ rules:
        for a group that used group management, counted from when it became Empty; for a
        standalone group, from each commit) and delete Empty groups left without offsets.
        Runs every 10 minutes on its own; returns the number of offsets removed."""
        now = self._clock.now_ms() if now_ms is None else now_ms
        retention = self._config["offsets.retention.minutes"] * 60_000
        removed = 0
        with self._lock:
            groups = list(self._groups.values())
        for g in groups:
            with self._lock:
                if self._groups.get(g.group_id) is not g:
                    continue
                with _Locked(g):
                    if g.state != EMPTY:
                        continue
                    expired = []
                    for tp, c in g.offsets.items():
                        if c.expire_timestamp >= 0:
                            if now >= c.expire_timestamp:
                                expired.append(tp)
                            continue
                        base = g.state_timestamp if g.protocol_type else c.commit_timestamp
                        if now - base >= retention:
                            expired.append(tp)
                    if expired or not g.offsets:
                        if self._kill(g, expired) == E.NONE:
                            removed += len(expired)
                if g.state == DEAD:
                    del self._groups[g.group_id]
        return removed

    def _periodic_expiry(self):
        try:
            self.expire_offsets()
        finally:
            if not self._closed:
                self._timer.schedule(OFFSETS_RETENTION_CHECK_INTERVAL_S, self._periodic_expiry)

    def _store_group(self, group, raise_errors=False):
        members = tuple(MemberRecord(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                                     m.rebalance_timeout_ms, m.session_timeout_ms,
                                     m.metadata(group.protocol_name), m.assignment)
                        for m in group.members.values())
        record = GroupRecord(group.protocol_type or "", group.generation, group.protocol_name,
                             group.leader_id if group.members else None, group.state_timestamp,
                             members)
        try:
            self._store.append(group.group_id, [(encode_group_key(group.group_id),
                                                 encode_group_value(record))])
        except (KlogError, OSError) as exc:
            if raise_errors:
                raise
            log.warning("group %s: could not store group metadata: %s", group.group_id, exc)

    # -- introspection (tests, tools) ----------------------------------------------------------------
    def group_state(self, group_id):
        """(state, generation, leader_id, member ids) of a group; ("Dead", -1, None, ()) if unknown."""
        g = self._group(group_id)
        if g is None:
            return (DEAD, -1, None, ())
        with _Locked(g):
            return (g.state, g.generation, g.leader_id, tuple(g.members))

    def __repr__(self):
        return f"<GroupCoordinator groups={len(self._groups)}>"


__all__ = [
    "GroupCoordinator", "JoinGroupResult", "JoinGroupMember", "SyncGroupResult",
    "LeaveGroupResult", "OffsetFetchResult", "GroupOverview", "GroupDescription",
    "MemberDescription", "EMPTY", "PREPARING_REBALANCE", "COMPLETING_REBALANCE", "STABLE", "DEAD",
]
