"""One broker's replica of one partition, as a state machine without I/O.

Kafka's replication protocol of the ZooKeeper era, with leader epochs (KIP-101, KIP-279, KIP-320):

- The controller names a leader and an in-sync replica set (ISR) in ZooKeeper and tells the
  replicas (LeaderAndIsr). Every such decision carries a new leader epoch. A replica ignores a
  decision older than the epoch it knows, so a delayed message cannot undo a newer one.
- A new leader records ``(epoch, its log end offset)`` in its epoch cache and stamps the epoch into
  every batch it appends. Followers fetch from it with their log end offset, the epoch of their
  last entry and the leader epoch they believe in. The leader answers FENCED_LEADER_EPOCH /
  UNKNOWN_LEADER_EPOCH when the epochs disagree, and a *diverging epoch* when the follower's
  last epoch ends earlier on the leader than where the follower stands; the follower truncates
  there and fetches on. Nothing is truncated to the high watermark (the bug KIP-101 fixed).
- The high watermark (HW) is the lowest log end offset among the ISR; a record below it is
  committed: on every ISR member, so on any leader elected cleanly later.
- The leader shrinks the ISR when a follower has not caught up within
  ``replica.lag.time.max.ms`` (a follower at the leader's end is never out of sync), and adds a
  follower back when it has reached the HW and the current epoch's start. ISR changes are written
  to ZooKeeper by compare-and-set against the version the leader read: a leader that lost a race
  with the controller fails to write and learns it is stale. Until a change is written, the HW is
  computed over the larger of the old and the proposed ISR, so it can never run ahead of what
  ZooKeeper (and so the next election) knows.
- ``acks=all``: refused with NOT_ENOUGH_REPLICAS when the ISR is smaller than
  ``min.insync.replicas`` before the append, answered once the HW passes the batch, with
  NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below the minimum meanwhile.

The caller owns time (``now_ms`` arguments), the network (it carries FetchRequest and
FetchResponse values) and ZooKeeper (it writes what ``isr_change`` proposes and reports back).
The log is anything with the ``ReplicaLog`` methods: the storage layer on a broker, an in-memory
list in the simulation tests.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Optional, Protocol, Sequence

from klog.cluster.state import EpochEnd, LeaderAndIsr, NO_LEADER
from klog.protocol.errors import ErrorCode


class ReplicaLog(Protocol):
    """What a replica needs of its log and leader-epoch cache."""

    log_start_offset: int
    log_end_offset: int

    def latest_epoch(self) -> int:
        """The newest epoch in the cache, -1 when empty."""

    def epoch_start_offset(self, epoch: int) -> int:
        """Where ``epoch`` starts, -1 when the cache does not hold it."""

    def end_offset_for_epoch(self, epoch: int) -> EpochEnd:
        """KIP-279: the largest cached epoch <= ``epoch`` and where it ends; undefined if none."""

    def assign_epoch(self, epoch: int, start_offset: int) -> None:
        """Record that ``epoch`` starts at ``start_offset`` (a new leader's first act)."""

    def append_as_leader(self, values: Sequence[Any], epoch: int) -> tuple[int, int]:
        """Append stamped with ``epoch``; returns (first offset, last offset)."""

    def append_as_follower(self, records: Any) -> None:
        """Append what the leader sent, epochs as stamped; the epoch cache follows them."""

    def read(self, offset: int, max_records: int) -> Any:
        """Records from ``offset`` on, as ``append_as_follower`` takes them."""

    def truncate_to(self, offset: int) -> None:
        """Drop everything from ``offset`` on, and the cache entries starting there or later
        (even when no record is dropped: an epoch may start at the end of the log)."""

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop everything and start empty at ``offset`` (log start = log end = ``offset``):
        a follower whose log ends below the leader's log start."""

    def advance_log_start(self, offset: int) -> None:
        """Records below ``offset`` are gone (a follower following the leader's DeleteRecords or
        retention; ``offset`` is at most the high watermark)."""


class Role(enum.Enum):
    NONE = "none"          # not yet told, or the partition went offline here
    LEADER = "leader"
    FOLLOWER = "follower"


@dataclass(frozen=True)
class FetchRequest:
    replica_id: int
    fetch_offset: int
    last_fetched_epoch: int
    current_leader_epoch: int
    max_records: int = 1 << 30
    replica_epoch: int = -1        # the follower's broker epoch (Fetch v15+), -1 if not sent


@dataclass(frozen=True)
class FetchResponse:
    error: int
    high_watermark: int = -1
    log_start_offset: int = -1
    records: Any = ()
    diverging_epoch: Optional[EpochEnd] = None


@dataclass(frozen=True)
class AppendResult:
    error: int
    leader_epoch: int = -1
    first_offset: int = -1
    last_offset: int = -1


@dataclass
class _FollowerState:
    """What the leader knows of one follower, from its fetches (Kafka's ``Replica``)."""

    log_end_offset: int = -1           # unknown until its first valid fetch in this epoch
    last_caught_up_ms: int = 0
    last_fetch_ms: int = 0
    last_fetch_leader_end: int = -1    # the leader's log end at that fetch


class Replica:
    """One partition's replica on one broker: leader or follower (see the module docstring).

    Not thread-safe: the caller serialises calls (one event loop, or one simulation step).
    """

    def __init__(self, broker_id: int, log: ReplicaLog, *, high_watermark: int = 0,
                 min_insync_replicas: int = 1, replica_lag_time_max_ms: int = 30_000):
        self.broker_id = broker_id
        self.log = log
        self.min_insync_replicas = min_insync_replicas
        self.replica_lag_time_max_ms = replica_lag_time_max_ms
        self.role = Role.NONE
        self.state: Optional[LeaderAndIsr] = None    # the newest decision applied
        self.assigned: tuple[int, ...] = ()
        # The HW comes from a checkpoint on restart; never above what the log holds.
        self.high_watermark = min(high_watermark, log.log_end_offset)
        self.pending_isr: Optional[LeaderAndIsr] = None
        self._followers: dict[int, _FollowerState] = {}

    # -- what the controller decides -------------------------------------------------------------

    @property
    def leader_epoch(self) -> int:
        return self.state.leader_epoch if self.state else -1

    @property
    def leader_id(self) -> int:
        return self.state.leader if self.state else NO_LEADER

    def apply(self, state: LeaderAndIsr, assigned: Sequence[int], now_ms: int) -> bool:
        """Apply a LeaderAndIsr decision; False (and no change) when it is older than ours.

        The same epoch again (a controller re-sending, or the leader's own ISR write coming back)
        only refreshes the ISR and version.
        """
        if self.state is not None and state.leader_epoch < self.state.leader_epoch:
            return False
        new_epoch = self.state is None or state.leader_epoch > self.state.leader_epoch
        self.assigned = tuple(assigned)
        if self.role is Role.LEADER and not new_epoch:
            # The replica set changed within the epoch (its new epoch was applied before the
            # assignment was read): follow the new replicas, forget the ones that left.
            for r in self.assigned:
                if r != self.broker_id:
                    self._followers.setdefault(r, _FollowerState())
            for r in [r for r in self._followers if r not in self.assigned]:
                del self._followers[r]
        if not new_epoch:
            if state.version > self.state.version:
                self.state = state
                if self.pending_isr is not None and state.isr == self.pending_isr.isr:
                    self.pending_isr = None
            return True
        self.state = state
        self.pending_isr = None
        if state.leader == self.broker_id:
            self._become_leader(now_ms)
        elif state.leader == NO_LEADER:
            self.role = Role.NONE
        else:
            self.role = Role.FOLLOWER
        return True

    def stop(self) -> None:
        """No longer a replica here (moved away: Kafka's StopReplica). Leads and follows
        nothing from now on; a waiting acks=all answers NOT_LEADER_OR_FOLLOWER."""
        self.role = Role.NONE
        self.pending_isr = None

    def _become_leader(self, now_ms: int) -> None:
        self.role = Role.LEADER
        epoch = self.state.leader_epoch
        if self.log.latest_epoch() < epoch:
            self.log.assign_epoch(epoch, self.log.log_end_offset)
        # ISR members get a fresh lag clock: they were in sync as far as anyone knows.
        self._followers = {r: _FollowerState(last_caught_up_ms=now_ms if r in self.state.isr else 0)
                           for r in self.assigned if r != self.broker_id}
        self._maybe_advance_high_watermark()

    # -- leader: appends and acknowledgements -----------------------------------------------------

    @property
    def isr(self) -> tuple[int, ...]:
        return self.state.isr if self.state else ()

    def append(self, values: Sequence[Any], *, acks: int) -> AppendResult:
        """Append as leader. ``acks`` is Kafka's: 0, 1 or -1 (all)."""
        if self.role is not Role.LEADER:
            return AppendResult(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        if acks == -1 and len(self.isr) < self.min_insync_replicas:
            return AppendResult(ErrorCode.NOT_ENOUGH_REPLICAS)
        first, last = self.log.append_as_leader(values, self.leader_epoch)
        self._maybe_advance_high_watermark()
        return AppendResult(ErrorCode.NONE, self.leader_epoch, first, last)

    def acks_all_outcome(self, appended: AppendResult) -> Optional[int]:
        """For an ``acks=all`` append: None while waiting, else the error code to answer with.

        Leadership lost since the append answers NOT_LEADER_OR_FOLLOWER: the record may or may
        not survive, and the client retries (idempotence de-duplicates). A new epoch in which
        this broker still leads, with the batch still in its log (a controller shrinking the
        ISR bumps the epoch), keeps waiting as Kafka does: clients read NOT_LEADER_OR_FOLLOWER
        as "not stored", and librdkafka re-sends such a batch under a new producer epoch when
        it bumps one, storing it twice.
        """
        if self.role is not Role.LEADER:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        if self.leader_epoch != appended.leader_epoch and not self._holds(appended):
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        if self.high_watermark <= appended.last_offset:
            return None
        if len(self.isr) < self.min_insync_replicas:
            return ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
        return ErrorCode.NONE

    def _holds(self, appended: AppendResult) -> bool:
        """The batch this broker appended as leader of ``appended.leader_epoch`` is still in its
        log: that epoch (only its leader writes it) still ends past the batch."""
        end = self.log.end_offset_for_epoch(appended.leader_epoch)
        return end.epoch == appended.leader_epoch and end.end_offset > appended.last_offset

    # -- leader: follower fetches -----------------------------------------------------------------

    def handle_fetch(self, req: FetchRequest, now_ms: int) -> FetchResponse:
        """Answer a follower's fetch; records its progress, may move the HW."""
        if self.role is not Role.LEADER:
            return FetchResponse(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        if req.current_leader_epoch >= 0:
            if req.current_leader_epoch < self.leader_epoch:
                return FetchResponse(ErrorCode.FENCED_LEADER_EPOCH)
            if req.current_leader_epoch > self.leader_epoch:
                return FetchResponse(ErrorCode.UNKNOWN_LEADER_EPOCH)
        follower = self._followers.get(req.replica_id)
        if follower is None:
            # Not a replica of this partition (Kafka's followerReplicaOrThrow): with a leader
            # epoch that matched ours, "(replica, epoch) not known here"; without, no better word.
            return FetchResponse(ErrorCode.UNKNOWN_LEADER_EPOCH if req.current_leader_epoch >= 0
                                 else ErrorCode.NOT_LEADER_OR_FOLLOWER)
        log = self.log
        if req.fetch_offset < log.log_start_offset:
            # Below our log start (DeleteRecords, retention) whatever the epochs say: the
            # follower starts again from our log start (``handle_out_of_range``).
            return FetchResponse(ErrorCode.OFFSET_OUT_OF_RANGE, self.high_watermark,
                                 log.log_start_offset)
        if req.last_fetched_epoch >= 0:
            ends = log.end_offset_for_epoch(req.last_fetched_epoch)
            if ends.epoch < req.last_fetched_epoch or ends.end_offset < req.fetch_offset:
                # The follower's tail is not ours: its position proves nothing, record nothing.
                return FetchResponse(ErrorCode.NONE, self.high_watermark, log.log_start_offset,
                                     diverging_epoch=ends)
        if not log.log_start_offset <= req.fetch_offset <= log.log_end_offset:
            return FetchResponse(ErrorCode.OFFSET_OUT_OF_RANGE, self.high_watermark,
                                 log.log_start_offset)
        self._record_follower_fetch(follower, req.fetch_offset, now_ms)
        self._maybe_advance_high_watermark()
        return FetchResponse(ErrorCode.NONE, self.high_watermark, log.log_start_offset,
                             log.read(req.fetch_offset, req.max_records))

    def _record_follower_fetch(self, f: _FollowerState, fetch_offset: int, now_ms: int) -> None:
        # Kafka's Replica.updateFetchState: caught up now if at our end; caught up as of the
        # previous fetch if it has reached what our end was then.
        leader_end = self.log.log_end_offset
        if fetch_offset >= leader_end:
            f.last_caught_up_ms = now_ms
        elif fetch_offset >= f.last_fetch_leader_end:
            f.last_caught_up_ms = max(f.last_caught_up_ms, f.last_fetch_ms)
        f.log_end_offset = fetch_offset
        f.last_fetch_leader_end = leader_end
        f.last_fetch_ms = now_ms

    def _maximal_isr(self) -> set[int]:
        isr = set(self.isr)
        if self.pending_isr is not None:
            isr |= set(self.pending_isr.isr)
        return isr

    def _maybe_advance_high_watermark(self) -> None:
        end = self.log.log_end_offset
        for r in self._maximal_isr():
            if r == self.broker_id:
                continue
            f = self._followers.get(r)
            if f is None or f.log_end_offset < 0:
                return              # an ISR member we have not heard from in this epoch
            end = min(end, f.log_end_offset)
        if end > self.high_watermark:
            self.high_watermark = end

    def isr_change(self, now_ms: int) -> Optional[LeaderAndIsr]:
        """The ISR this leader wants written to ZooKeeper (shrink and expand), or None.

        One change in flight at a time: the caller writes it by compare-and-set against
        ``state.version`` and calls ``isr_change_written`` with the outcome.
        """
        if self.role is not Role.LEADER or self.pending_isr is not None:
            return None
        leader_end = self.log.log_end_offset
        epoch_start = self.log.epoch_start_offset(self.leader_epoch)
        new_isr = [self.broker_id]
        for r in self.assigned:
            if r == self.broker_id:
                continue
            f = self._followers[r]
            if r in self.isr:
                in_sync = (f.log_end_offset == leader_end
                           or now_ms - f.last_caught_up_ms <= self.replica_lag_time_max_ms)
            else:
                in_sync = (f.log_end_offset >= self.high_watermark
                           and f.log_end_offset >= epoch_start >= 0)
            if in_sync:
                new_isr.append(r)
        if set(new_isr) == set(self.isr):
            return None
        ordered = tuple(r for r in self.assigned if r in new_isr)
        self.pending_isr = self.state.with_isr(ordered)
        return self.pending_isr

    def isr_change_written(self, written: Optional[LeaderAndIsr]) -> None:
        """Outcome of the compare-and-set: the state as written (new version), or None if it
        failed (someone else changed the partition: a newer decision is on its way to us)."""
        proposed, self.pending_isr = self.pending_isr, None
        if written is None or proposed is None or self.role is not Role.LEADER:
            return
        if written.leader_epoch == self.leader_epoch and written.version > self.state.version:
            self.state = written
            self._maybe_advance_high_watermark()

    # -- follower ---------------------------------------------------------------------------------

    def fetch_request(self, max_records: int = 1 << 30) -> Optional[FetchRequest]:
        """The next fetch to send to the leader, or None when not a follower."""
        if self.role is not Role.FOLLOWER:
            return None
        return FetchRequest(self.broker_id, self.log.log_end_offset, self.log.latest_epoch(),
                            self.leader_epoch, max_records)

    def handle_fetch_response(self, req: FetchRequest, resp: FetchResponse) -> None:
        """Apply the leader's answer to ``req``: truncate on divergence, else append and learn
        the HW. Answers to an older epoch or position than ours now are dropped; errors wait for
        the controller's next word (fenced: we are behind; unknown epoch: the leader is)."""
        log = self.log
        if (self.role is not Role.FOLLOWER or req.current_leader_epoch != self.leader_epoch
                or req.fetch_offset != log.log_end_offset or resp.error != ErrorCode.NONE):
            return
        if resp.diverging_epoch is not None:
            self._truncate_to_divergence(resp.diverging_epoch)
            return
        log.append_as_follower(resp.records)
        learned = min(resp.high_watermark, log.log_end_offset)
        if learned > self.high_watermark:
            self.high_watermark = learned
        # The leader's log start moved (DeleteRecords, retention): so does ours, as far as we
        # hold committed records (Kafka's follower: maybeIncrementLogStartOffset), so a later
        # leader here does not bring deleted records back.
        start = min(resp.log_start_offset, self.high_watermark)
        if start > log.log_start_offset:
            log.advance_log_start(start)

    def handle_out_of_range(self, req: FetchRequest, leader_start: int, leader_end: int) -> bool:
        """The leader answered ``req`` with OFFSET_OUT_OF_RANGE and, asked (ListOffsets with our
        replica id), gave its log start and end (Kafka's ``handleOutOfRangeError``). Past its end
        (possible only after an unclean election): truncate to it. Below its start (records
        deleted there while we were away): truncate fully and start at it; everything below it
        is committed. False when the answer is stale (our epoch or position moved since)."""
        log = self.log
        if (self.role is not Role.FOLLOWER or req.current_leader_epoch != self.leader_epoch
                or req.fetch_offset != log.log_end_offset):
            return False
        if leader_end < log.log_end_offset:
            log.truncate_to(leader_end)
            self.high_watermark = min(self.high_watermark, log.log_end_offset)
        elif leader_start > log.log_end_offset:
            log.truncate_fully_and_start_at(leader_start)
            self.high_watermark = leader_start
        return True

    def _truncate_to_divergence(self, theirs: EpochEnd) -> None:
        # Kafka's AbstractFetcherThread: cut to where the leader's epoch ends, or where ours ends
        # if we hold an older epoch there; another round follows if still not in agreement.
        log = self.log
        if theirs.undefined:
            target = self.high_watermark          # the leader knows none of our epochs
        else:
            ours = log.end_offset_for_epoch(theirs.epoch)
            target = (log.log_start_offset if ours.undefined
                      else min(theirs.end_offset, ours.end_offset))
        target = min(target, log.log_end_offset)
        log.truncate_to(target)
        # Only an unclean election can take a follower below its HW.
        self.high_watermark = min(self.high_watermark, log.log_end_offset)
