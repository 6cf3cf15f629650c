"""The member side of Kafka's classic group protocol, for embedded clients: what Java's
``AbstractCoordinator`` and its heartbeat thread do, talking to the in-process GroupCoordinator
through the same requests a wire client sends (JoinGroup v4+ with MEMBER_ID_REQUIRED, SyncGroup,
Heartbeat, LeaveGroup).

What is done for the member is decided by a protocol object (the consumer's lives in
klog.consumer), with these hooks, all called on the owner's thread:

- ``protocol_type``: e.g. ``"consumer"``;
- ``metadata()``: [(protocol name, metadata bytes)] in preference order;
- ``on_join_prepare(generation, member_id)``: before (re)joining. ``generation == -1`` means the
  membership was lost (expired, fenced, left after a poll timeout): whatever was owned is lost;
  otherwise a consumer commits and revokes here;
- ``perform_assignment(leader_id, protocol, members)``: leader only; members are JoinGroupMembers;
  returns {member_id: assignment bytes};
- ``on_join_complete(generation, member_id, protocol, assignment)``.

Liveness (as Java): the heartbeat thread heartbeats every ``heartbeat.interval.ms`` once the
member has a generation; a REBALANCE_IN_PROGRESS answer makes the next ``poll`` rejoin. If
``poll`` was not called for ``max.poll.interval.ms`` the thread sends LeaveGroup, so the group
gives the partitions to live members; the next ``poll`` finds the membership lost and rejoins.
If the whole process stalls, heartbeats stop and the coordinator expires the member after
``session.timeout.ms``.

Concurrency: one owner thread calls ``poll``/``generation_for_commit``/``close``; the heartbeat
thread shares member id, generation and state with it under ``_lock``. Hooks run, and futures
are waited on, without holding ``_lock``, so heartbeats go on during a long callback.
"""
import logging
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout

from klog.group import errors as E

log = logging.getLogger("klog.group")

UNJOINED = "unjoined"       # no generation: must join
PREPARING = "preparing"     # JoinGroup sent, waiting for its answer
COMPLETING = "completing"   # SyncGroup sent, waiting for the assignment
STABLE = "stable"

RETRY_BACKOFF_S = 0.1       # retry.backoff.ms: after COORDINATOR_NOT_AVAILABLE and fatal errors
FATAL = {E.INCONSISTENT_GROUP_PROTOCOL, E.INVALID_SESSION_TIMEOUT, E.INVALID_GROUP_ID,
         E.GROUP_MAX_SIZE_REACHED, E.FENCED_INSTANCE_ID, E.UNKNOWN_SERVER_ERROR}
RETRY_LATER = {E.COORDINATOR_NOT_AVAILABLE, E.NOT_COORDINATOR, E.COORDINATOR_LOAD_IN_PROGRESS}


class GroupMember:
    """One member of one group. ``poll``, ``generation_for_commit``, ``request_rejoin`` and
    ``close`` are for the owner's thread; the heartbeat thread is internal (see above)."""

    def __init__(self, coordinator, group_id, protocol, *, session_timeout_ms,
                 rebalance_timeout_ms, heartbeat_interval_ms, max_poll_interval_ms,
                 client_id, client_host="embedded", group_instance_id=None):
        self.coordinator = coordinator
        self.group_id = group_id
        self.protocol = protocol
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.heartbeat_interval_s = heartbeat_interval_ms / 1000.0
        self.max_poll_interval_s = max_poll_interval_ms / 1000.0
        self.client_id = client_id
        self.client_host = client_host
        self.group_instance_id = group_instance_id
        self._lock = threading.Lock()
        self.member_id = ""
        self.generation = -1
        self.protocol_name = None
        self.leader_id = None
        self.state = UNJOINED
        self._rejoin = "initial join"   # why a (re)join is needed; None when not
        self._prepared = False           # on_join_prepare already ran for the coming join
        self._future = None              # the JoinGroup or SyncGroup answer we wait for
        self._retry_at = 0.0
        self._last_poll = time.monotonic()
        self.poll_timeout_expired = False
        self._stop = threading.Event()
        self._heartbeats = None
        self._closed = False
        self._fenced = None              # set by a FENCED_INSTANCE_ID heartbeat answer: fatal

    # -- the owner's thread ----------------------------------------------------------------------
    def poll(self, deadline):
        """Join (or rejoin) until the member is Stable or the monotonic ``deadline`` passes.
        Returns True when Stable. A join still in flight at the deadline carries on at the
        coordinator and is picked up by the next call. Raises the GroupError of a fatal answer
        (e.g. InconsistentGroupProtocolError) and whatever a hook raises."""
        self._start_heartbeats()
        while True:
            # The owner is in poll() (perhaps waiting for a slow rebalance): it is not stuck.
            self._last_poll = time.monotonic()
            with self._lock:
                if self._closed:
                    raise E.IllegalStateError(f"member of group {self.group_id!r} is closed")
                if self._fenced is not None:
                    # As Java: fatal. Rejoining would fence the member that fenced this one.
                    raise E.FencedInstanceIdError(self._fenced)
                if self.state == STABLE and self._rejoin is None:
                    return True
                future = self._future
                prepared = self._prepared
                generation, member_id = self.generation, self.member_id
            if future is None:
                wait = self._retry_at - time.monotonic()
                if wait > 0:
                    if time.monotonic() + wait > deadline:
                        return False
                    time.sleep(wait)
                if not prepared:
                    with self._lock:
                        self._prepared = True
                    self.protocol.on_join_prepare(generation, member_id)
                    continue
                with self._lock:
                    if self._future is not None or self._closed:
                        continue
                    future = self._send_join()
            if not future.done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    future.result(timeout=remaining)
                except FutureTimeout:
                    return False
            self._handle(future)

    def _send_join(self):
        """Caller holds _lock."""
        self.state = PREPARING
        self._rejoin = None
        self._future = self.coordinator.join_group(
            self.group_id, self.member_id, self.protocol.protocol_type, self.protocol.metadata(),
            self.session_timeout_ms, self.rebalance_timeout_ms, client_id=self.client_id,
            client_host=self.client_host, group_instance_id=self.group_instance_id,
            require_known_member_id=True)
        return self._future

    def _handle(self, future):
        assign = complete = None
        with self._lock:
            if future is not self._future:
                return   # the heartbeat thread reset the membership meanwhile; answer is stale
            self._future = None
            result = future.result()
            if self.state == PREPARING:
                assign = self._on_join_answer(result)
            elif self.state == COMPLETING:
                complete = self._on_sync_answer(result)
        if assign is not None:
            generation, members = assign
            assignments = self.protocol.perform_assignment(self.member_id, self.protocol_name, members)
            with self._lock:
                if self.state == COMPLETING and self.generation == generation and self._future is None:
                    self._future = self.coordinator.sync_group(
                        self.group_id, generation, self.member_id, assignments,
                        self.protocol.protocol_type, self.protocol_name, self.group_instance_id)
        if complete is not None:
            self.protocol.on_join_complete(*complete)

    def _on_join_answer(self, r):
        """Caller holds _lock. Returns (generation, members) when we lead and must assign."""
        if r.error == E.NONE:
            self.member_id = r.member_id
            self.generation = r.generation_id
            self.protocol_name = r.protocol_name
            self.leader_id = r.leader_id
            self.state = COMPLETING
            if r.leader_id == r.member_id:
                return (r.generation_id, r.members)
            self._future = self.coordinator.sync_group(
                self.group_id, r.generation_id, r.member_id, None, self.protocol.protocol_type,
                r.protocol_name, self.group_instance_id)
            return None
        if r.error == E.MEMBER_ID_REQUIRED:
            self.member_id = r.member_id
            self._send_join()
            return None
        if r.error == E.REBALANCE_IN_PROGRESS:
            self._send_join()
            return None
        self._on_error(r.error, "JoinGroup")
        return None

    def _on_sync_answer(self, r):
        """Caller holds _lock. Returns the on_join_complete arguments on success."""
        if r.error == E.NONE:
            self.state = STABLE
            self._prepared = False
            self.poll_timeout_expired = False
            return (self.generation, self.member_id, self.protocol_name, r.assignment)
        if r.error == E.REBALANCE_IN_PROGRESS:
            self.state = UNJOINED
            self._rejoin = self._rejoin or "the group rebalanced during SyncGroup"
            return None
        self._on_error(r.error, "SyncGroup")
        return None

    def _on_error(self, code, request):
        """Caller holds _lock."""
        if code in (E.UNKNOWN_MEMBER_ID, E.ILLEGAL_GENERATION):
            self._reset(f"{request}: {E.error_name(code)}", keep_member_id=code == E.ILLEGAL_GENERATION)
            return
        self.state = UNJOINED
        self._rejoin = self._rejoin or f"{request}: {E.error_name(code)}"
        self._retry_at = time.monotonic() + RETRY_BACKOFF_S
        if code not in RETRY_LATER:
            raise E.error_for(code, f"group {self.group_id!r}: {request} failed with "
                                    f"{E.error_name(code)}: {E.ERRORS.get(code, E.GroupError).default_message()}")

    def _reset(self, reason, keep_member_id=False):
        """Forget the generation (and member id): what we owned is lost. Caller holds _lock."""
        self.generation = -1
        if not keep_member_id:
            self.member_id = ""
        self.state = UNJOINED
        self._future = None
        self._prepared = False
        self._rejoin = reason

    def request_rejoin(self, reason):
        with self._lock:
            if self._rejoin is None:
                self._rejoin = reason

    def generation_for_commit(self):
        """(generation, member_id) to commit with. RebalanceInProgressError while a rebalance
        is under way; CommitFailedError when this member has no generation (it was removed)."""
        with self._lock:
            if self.state == STABLE and self.generation >= 0:
                return self.generation, self.member_id
            if self.state in (PREPARING, COMPLETING):
                raise E.RebalanceInProgressError(
                    f"group {self.group_id!r} is rebalancing; the commit can be retried once "
                    "poll() has completed the rebalance")
            if self.poll_timeout_expired:
                raise E.CommitFailedError(
                    f"commit cannot be completed: this consumer left group {self.group_id!r} "
                    f"because poll() was not called for max.poll.interval.ms "
                    f"({self.max_poll_interval_s * 1000:.0f} ms), and its partitions went to "
                    "other members. Poll more often or lower max.poll.records.")
            raise E.CommitFailedError(
                f"commit cannot be completed: this consumer is not an active member of group "
                f"{self.group_id!r} (it was removed or has not joined yet)")

    @property
    def is_leader(self):
        return self.member_id != "" and self.member_id == self.leader_id

    @property
    def rebalancing(self):
        return self.state in (PREPARING, COMPLETING) or self._rejoin is not None

    def close(self):
        """Leave the group (LeaveGroup; not for a static member) and stop heartbeating."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._leave("the consumer is closing")
        self._stop.set()
        if self._heartbeats is not None and self._heartbeats is not threading.current_thread():
            self._heartbeats.join()

    def _leave(self, reason):
        """Caller holds _lock. A static member (``group.instance.id``) does not send LeaveGroup,
        as Java's and librdkafka's: its partitions wait for it until its session times out, so
        a restart within ``session.timeout.ms`` gets them back without a rebalance (KIP-345)."""
        if self.member_id and self.group_instance_id is None:
            self.coordinator.leave_group(self.group_id, [(self.member_id, self.group_instance_id)],
                                         reason=reason)
        self._reset(reason)

    # -- the heartbeat thread --------------------------------------------------------------------
    def _start_heartbeats(self):
        if self._heartbeats is None:
            self._heartbeats = threading.Thread(
                target=self._run_heartbeats, daemon=True,
                name=f"klog-heartbeat:{self.group_id}:{self.client_id}")
            self._heartbeats.start()

    def stop_heartbeats(self):
        """Stop heartbeating without leaving: the member looks dead to the coordinator (tests;
        also what happens when the process stalls)."""
        self._stop.set()
        if self._heartbeats is not None and self._heartbeats is not threading.current_thread():
            self._heartbeats.join()

    def _run_heartbeats(self):
        while not self._stop.wait(self.heartbeat_interval_s):
            with self._lock:
                if self._closed:
                    return
                if self.state not in (STABLE, COMPLETING) or self.generation < 0:
                    continue
                if time.monotonic() - self._last_poll > self.max_poll_interval_s:
                    log.warning(
                        "group %s: member %s leaves the group: poll() was not called for "
                        "max.poll.interval.ms (%d ms)", self.group_id, self.member_id,
                        self.max_poll_interval_s * 1000)
                    self.poll_timeout_expired = True
                    self._leave("consumer poll timeout has expired")
                    continue
                code = self.coordinator.heartbeat(self.group_id, self.generation, self.member_id,
                                                  self.group_instance_id)
                if code == E.NONE:
                    continue
                if code == E.REBALANCE_IN_PROGRESS:
                    if self.state == STABLE and self._rejoin is None:
                        self._rejoin = "the group is rebalancing"
                elif code in (E.UNKNOWN_MEMBER_ID, E.ILLEGAL_GENERATION, E.FENCED_INSTANCE_ID):
                    if code == E.FENCED_INSTANCE_ID:
                        self._fenced = (
                            f"group {self.group_id!r}: another member joined with "
                            f"group.instance.id {self.group_instance_id!r}; this one is fenced")
                    log.info("group %s: member %s lost its membership: heartbeat got %s",
                             self.group_id, self.member_id, E.error_name(code))
                    self._reset(f"heartbeat: {E.error_name(code)}",
                                keep_member_id=code == E.ILLEGAL_GENERATION)
                else:
                    self._rejoin = self._rejoin or f"heartbeat: {E.error_name(code)}"
