"""Partition: one partition as every layer above storage sees it (Kafka's ``Partition``, between
``ReplicaManager`` and ``UnifiedLog``).

The Broker hands out Partitions (``broker.partition(topic, p)``); server handlers, consumers, the
offsets store, the CLI and the embedded producer's sink go through them and never hold a storage
``Log`` (tests/test_architecture.py checks that). A Partition adds to its Log what a replica
knows: its role and leader epoch, the high watermark, and which reads and appends a caller may
make:

- **Appends** from clients (``append_records``: a Kafka client's batch, with the idempotence
  checks; ``append``: the embedded producer's values) are a leader's: a follower refuses them
  with NotLeaderOrFollowerError. ``acks=-1`` (all) is refused with NotEnoughReplicasError when
  the ISR is known (replication set it) and smaller than ``min.insync.replicas``.
- **Reads** are bounded for an isolation level: consumers never read past the high watermark
  (``READ_UNCOMMITTED``; ``READ_COMMITTED`` is bounded by the last stable offset, which equals the
  high watermark until transactions exist); followers read to the log end (``LOG_END``).
- **High watermark.** A leader whose ISR is itself alone (a single node, and the default) has its
  HW at the log end offset, always: an append is committed when it is written, as before. When
  replication calls ``become_leader(epoch, high_watermark=...)`` or ``become_follower`` the HW is
  the value it maintains with ``update_high_watermark`` (at most the log end offset). The HW
  lives in memory only: a restarted replica starts from what the leader tells it (Kafka
  checkpoints it; replication may add that).
- **Waiting for the HW**: ``high_watermark_future(offset)`` gives a Future that completes when the
  HW reaches ``offset`` (a Produce with acks=all waits for ``last offset + 1``), or fails with
  NotLeaderOrFollowerError when this replica stops leading.

Concurrency: thread-safe. Role, ISR and HW change under ``_lock`` (never held across a Log
call that does I/O); HW waiters are completed outside it.
"""
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from klog._native.batch import RecordReader, read_header
from klog.codec import decompress
from klog.errors import NotEnoughReplicasError, NotLeaderOrFollowerError, OffsetOutOfRangeError
from klog.storage.log import Log

# Isolation levels (Kafka's FetchIsolation): how far a read may go.
LOG_END = "log_end"                       # followers: everything appended
READ_UNCOMMITTED = "read_uncommitted"     # consumers: up to the high watermark
READ_COMMITTED = "read_committed"         # consumers: up to the last stable offset

ISOLATION_LEVELS = (LOG_END, READ_UNCOMMITTED, READ_COMMITTED)
WIRE_ISOLATION = {0: READ_UNCOMMITTED, 1: READ_COMMITTED}   # Fetch / ListOffsets isolation_level

LEADER = "leader"
FOLLOWER = "follower"


@dataclass(frozen=True)
class AppendInfo:
    """What an append did (Kafka's LogAppendInfo, the part callers use)."""
    base_offset: int
    last_offset: int        # the batch's last offset (the base offset of a duplicate's original)
    duplicate: bool         # an idempotent retry of a batch already appended: nothing written
    log_start_offset: int


@dataclass(frozen=True)
class PartitionState:
    """A snapshot of one partition (``describe()``)."""
    topic: str
    partition: int
    role: str
    leader_epoch: int
    log_start_offset: int
    log_end_offset: int
    high_watermark: int
    last_stable_offset: int
    size: int


class Partition:
    """One partition of a topic: its Log plus leader state (see the module docstring)."""

    def __init__(self, topic, partition, log):
        self.topic = topic
        self.partition = partition
        self._log = log
        self._lock = threading.Lock()
        self._role = LEADER
        self._hw = None           # None: the ISR is this replica alone, so HW = log end offset
        self._isr = None          # broker ids when replication manages this partition
        self._waiters = []        # [(offset, Future)] waiting for the HW to reach offset
        self._follower_epoch = -1  # the leader's epoch, as a follower knows it
        self._listeners = ()      # fn(partition) after each append and HW move
        log.add_listener(self._on_append)

    @classmethod
    def open(cls, topic, partition, path, config, *, leader_epoch=0, clock=None, scheduler=None):
        """Open (creating if needed) the partition's log in directory ``path`` (``config``: a
        LogConfig or Kafka topic-config names; ``clock`` and ``scheduler`` as ``klog.Log.open``)
        and lead it in ``leader_epoch``, or in a later epoch the log already holds (a single
        broker leads every partition; stable across restarts). Raises what ``Log.open``
        raises."""
        log = Log.open(path, config, clock=clock, scheduler=scheduler)
        try:
            log.become_leader(max(leader_epoch, log.leader_epoch))
            return cls(topic, partition, log)
        except BaseException:
            log.close()
            raise

    # -- storage, for storage services and tests only ----------------------------------------
    @property
    def log(self):
        """The storage Log underneath. For storage-level services (log cleaner, retention) and
        tests; the layers above the Partition never use it (tests/test_architecture.py)."""
        return self._log

    # -- state -------------------------------------------------------------------------------
    @property
    def config(self):
        """The partition's LogConfig (Kafka's topic configs, defaults filled in)."""
        return self._log.config

    @property
    def closed(self):
        return self._log.closed

    @property
    def fsyncs_on_append(self):
        """True when an append may fsync before returning (flush.messages or flush.ms set)."""
        return self._log.fsyncs_on_append

    @property
    def log_start_offset(self):
        return self._log.log_start_offset

    @property
    def log_end_offset(self):
        return self._log.log_end_offset

    @property
    def high_watermark(self):
        """Every offset below it is committed (on every in-sync replica); consumers read up to
        here. The log end offset when this replica is its own ISR."""
        hw = self._hw
        return self._log.log_end_offset if hw is None else hw

    @property
    def last_stable_offset(self):
        """Where read_committed consumers stop: the high watermark until transactions exist."""
        return self.high_watermark

    @property
    def leader_epoch(self):
        """The partition's current leader epoch (a leader's is stamped into its appends)."""
        return self._log.leader_epoch if self._role == LEADER else self._follower_epoch

    @property
    def role(self):
        return self._role

    @property
    def is_leader(self):
        return self._role == LEADER

    @property
    def in_sync_replicas(self):
        """The ISR as replication last set it (``set_in_sync_replicas``), or None when this
        replica is alone (a single node)."""
        return self._isr

    @property
    def size(self):
        return self._log.size

    def describe(self):
        log = self._log
        hw = self.high_watermark
        return PartitionState(self.topic, self.partition, self._role, log.leader_epoch,
                              log.log_start_offset, log.log_end_offset, hw, hw, log.size)

    def offset_limit(self, isolation):
        """The first offset a read with ``isolation`` may not return."""
        if isolation == READ_UNCOMMITTED:
            return self.high_watermark
        if isolation == READ_COMMITTED:
            return self.last_stable_offset
        if isolation == LOG_END:
            return self._log.log_end_offset
        raise ValueError(f"isolation must be one of {ISOLATION_LEVELS}, not {isolation!r}")

    # -- appends (leader) ----------------------------------------------------------------------
    def _check_leader(self, acks=1):
        if self._role != LEADER:
            raise NotLeaderOrFollowerError(
                f"{self.topic}-{self.partition}: this broker is a follower (leader epoch "
                f"{self.leader_epoch}); produce to the leader")
        if acks == -1 and self._isr is not None:
            need = self._log.config.min_insync_replicas
            if len(self._isr) < need:
                raise NotEnoughReplicasError(
                    f"{self.topic}-{self.partition}: {len(self._isr)} in-sync replicas "
                    f"{sorted(self._isr)}, min.insync.replicas is {need}; nothing was appended")

    def append_records(self, batch, *, acks=1):
        """Append one RecordBatch v2 as a Kafka client sent it (validated, stored byte for byte
        but for its base offset and leader epoch), with the idempotent producer's checks: a
        retry of one of its last 5 batches appends nothing and answers the original offset.
        ``acks`` is the Produce request's (0, 1 or -1); with -1 the caller then waits on
        ``high_watermark_future(info.last_offset + 1)``. Returns an AppendInfo."""
        self._check_leader(acks)
        base, duplicate = self._log.append_idempotent(batch)
        last = base + read_header(batch).last_offset_delta   # validated by the append
        return AppendInfo(base, last, duplicate, self._log.log_start_offset)

    def append(self, values, keys=None, timestamps=None, headers=None, compression=None):
        """Build one batch natively from ``values`` and append it as leader (the embedded
        producer's path; arguments as ``klog.Log.append``). Returns its base offset."""
        self._check_leader()
        return self._log.append(values, keys, timestamps, headers, compression)

    # -- reads ---------------------------------------------------------------------------------
    def read(self, offset, max_bytes=1048576, isolation=READ_UNCOMMITTED):
        """Whole raw batches from the one holding ``offset``, at most ``max_bytes`` (at least one
        batch), never past the limit of ``isolation`` (an empty view at or past it), as a
        zero-copy read-only memoryview; release it when done. OffsetOutOfRangeError outside
        [log start, log end]."""
        limit = self.offset_limit(isolation)
        return self._log.read(offset, max_bytes, limit)

    def records(self, offset=None, isolation=READ_UNCOMMITTED):
        """An iterator of ``Record``s from ``offset`` (default: log start) up to the limit of
        ``isolation``, following it as it moves (records appended while iterating come too)."""
        log = self._log
        if offset is None:
            offset = log.log_start_offset
        self._check_range(offset)

        def chunk(at):
            limit = self.offset_limit(isolation)
            if at >= limit:
                return None
            return log.read(max(at, log.log_start_offset), 1048576, limit)

        return RecordReader(chunk, offset, decompress)

    def _check_range(self, offset):
        start, end = self._log.log_start_offset, self._log.log_end_offset
        if not start <= offset <= end:
            raise OffsetOutOfRangeError(
                f"{self.topic}-{self.partition}: offset {offset} is outside the log "
                f"[{start}, {end}]")

    def offset_for_time(self, timestamp_ms):
        """The first offset whose record timestamp >= ``timestamp_ms``, or None."""
        found = self.record_for_time(timestamp_ms)
        return None if found is None else found[0]

    def record_for_time(self, timestamp_ms):
        """``(offset, timestamp)`` of the first record with timestamp >= ``timestamp_ms`` below
        the high watermark, or None (ListOffsets by time)."""
        found = self._log.record_for_time(timestamp_ms)
        if found is not None and found[0] >= self.high_watermark:
            return None
        return found

    def max_timestamp_record(self):
        """``(offset, timestamp)`` of the first record with the largest timestamp, or None
        (ListOffsets MAX_TIMESTAMP)."""
        found = self._log.max_timestamp_record()
        if found is not None and found[0] >= self.high_watermark:
            return None
        return found

    def active_producers(self):
        """[(producer id, epoch, last sequence, last timestamp)] (DescribeProducers)."""
        return self._log.active_producers()

    # -- leader epochs (KIP-101) -----------------------------------------------------------------
    def end_offset_for_epoch(self, epoch):
        """``(epoch', end offset)`` for OffsetForLeaderEpoch (LeaderEpochCache.end_offset_for)."""
        return self._log.end_offset_for_epoch(epoch)

    def epoch_for_offset(self, offset):
        """The leader epoch that wrote ``offset`` (-1 if unknown)."""
        return self._log.epoch_for_offset(offset)

    def latest_epoch(self):
        """The newest epoch in the leader-epoch cache, -1 when empty."""
        entries = self._log.leader_epochs
        return entries[-1][0] if entries else -1

    def epoch_start_offset(self, epoch):
        """Where ``epoch`` starts in the cache, -1 when the cache does not hold it."""
        for e, start in self._log.leader_epochs:
            if e == epoch:
                return start
        return -1

    # -- removing data ---------------------------------------------------------------------------
    def delete_records(self, offset):
        """Kafka's DeleteRecords: move the log start offset to ``offset`` (-1: the high
        watermark); never past the high watermark. Returns the new log start offset."""
        if self._role != LEADER:
            raise NotLeaderOrFollowerError(
                f"{self.topic}-{self.partition}: this broker is a follower (leader epoch "
                f"{self.leader_epoch}); delete records on the leader")
        hw = self.high_watermark
        if offset == -1:
            offset = hw
        elif offset > hw:
            raise OffsetOutOfRangeError(
                f"{self.topic}-{self.partition}: cannot delete records before {offset}: past the "
                f"high watermark {hw} (log [{self.log_start_offset}, {self.log_end_offset}])")
        return self._log.delete_before(offset)

    # -- replication: roles, follower appends, truncation, HW ------------------------------------
    def become_leader(self, epoch, *, high_watermark=None, in_sync_replicas=None):
        """Lead in ``epoch`` from now on (Kafka's Partition.makeLeader): the epoch starts at the
        log end offset and is stamped into every appended batch; epochs never go back
        (FencedLeaderEpochError). ``high_watermark`` None: this replica is its own ISR, the HW
        follows the log end (a single node). Else the HW starts there (capped at the log end)
        and replication raises it with ``update_high_watermark``; ``in_sync_replicas`` is the
        ISR for ``min.insync.replicas`` checks (``set_in_sync_replicas`` changes it)."""
        self._log.become_leader(epoch)
        with self._lock:
            self._role = LEADER
            self._isr = None if in_sync_replicas is None else frozenset(in_sync_replicas)
            self._hw = None if high_watermark is None else \
                min(high_watermark, self._log.log_end_offset)
        self._complete_waiters()

    def become_follower(self, epoch, *, high_watermark=0):
        """Follow the leader of ``epoch`` (Kafka's makeFollower): client appends are refused
        (NotLeaderOrFollowerError), as are HW waiters still pending from the leadership; the log
        is left as it is (truncation is the fetcher's decision: ``truncate_to``). The HW starts
        at ``high_watermark`` (capped at the log end) and follows ``update_high_watermark``."""
        with self._lock:
            self._role = FOLLOWER
            self._follower_epoch = epoch
            self._isr = None
            self._hw = min(high_watermark, self._log.log_end_offset)
            waiters, self._waiters = self._waiters, []
        for _, fut in waiters:
            _fail(fut, NotLeaderOrFollowerError(
                f"{self.topic}-{self.partition}: leadership moved (epoch {epoch}) before the "
                "high watermark reached the batch"))

    def set_in_sync_replicas(self, replicas):
        """The leader's ISR (broker ids), for ``acks=-1`` / ``min.insync.replicas``."""
        with self._lock:
            self._isr = frozenset(replicas)

    def append_as_follower(self, batch):
        """Append one batch (bytes of one or more RecordBatch v2, as fetched from the leader)
        keeping its base offset and leader epoch (Kafka's appendRecordsToFollowerOrFutureReplica);
        the epoch cache follows the batches' epochs. Each must start at the log end offset
        (CorruptRecordError otherwise: truncate or fetch from the log end). Returns the new log
        end offset."""
        view = memoryview(batch)
        pos, end = 0, view.nbytes
        while pos < end:
            size = read_header(view, pos).size
            self._log.append_as_follower(view[pos:pos + size])
            pos += size
        return self._log.log_end_offset

    def truncate_to(self, offset):
        """Remove every batch holding offsets >= ``offset`` (whole batches) and the leader-epoch
        entries starting there or later (KIP-101 truncation). The HW drops with the log end if
        it was above. Returns the new log end offset."""
        end = self._log.truncate_to(offset)
        with self._lock:
            if self._hw is not None and self._hw > end:
                self._hw = end
        return end

    def truncate_fully_and_start_at(self, offset):
        """Drop everything and start empty at ``offset`` (a follower whose log end is below the
        leader's log start). Returns ``offset``."""
        end = self._log.truncate_fully_and_start_at(offset)
        with self._lock:
            if self._hw is not None:
                self._hw = end
        return end

    def follow_log_start(self, offset):
        """A follower takes the leader's log start (Kafka's maybeIncrementLogStartOffset on a
        follower): the records below ``offset`` (at most the log end) go. The caller keeps
        ``offset`` at or below the high watermark it learned. Returns the log start offset."""
        return self._log.delete_before(min(offset, self._log.log_end_offset))

    def update_high_watermark(self, offset):
        """Set the HW (a leader: the lowest log end offset of its ISR; a follower: what the
        leader said, capped at its own log end). Never above the log end offset. A leader's HW
        never goes back; a follower's follows the leader. Completes the HW waiters it passes.
        Returns the HW."""
        with self._lock:
            offset = min(offset, self._log.log_end_offset)
            if self._role == LEADER and self._hw is not None:
                offset = max(offset, self._hw)
            self._hw = offset
        self._complete_waiters()
        for fn in self._listeners:
            fn(self)
        return self.high_watermark

    def high_watermark_future(self, offset):
        """A Future done (result: the HW) once the high watermark reaches ``offset`` (a Produce
        with acks=all waits for its batch's last offset + 1). Already done when it has; failed
        with NotLeaderOrFollowerError if this replica stops leading first. Callbacks
        (``add_done_callback``) run in the thread that moves the HW."""
        fut = Future()
        fut.set_running_or_notify_cancel()
        with self._lock:
            hw = self.high_watermark
            if hw < offset:
                self._waiters.append((offset, fut))
                return fut
        fut.set_result(hw)
        return fut

    def add_append_listener(self, fn):
        """Call ``fn(partition)`` after every append (leader or follower) and every move of the
        high watermark, in the thread that made it (to wake waiting consumers and fetches)."""
        with self._lock:
            self._listeners = self._listeners + (fn,)

    def _on_append(self, _log):
        if self._hw is None and self._waiters:
            self._complete_waiters()
        for fn in self._listeners:
            fn(self)

    def _complete_waiters(self):
        with self._lock:
            if not self._waiters:
                return
            hw = self.high_watermark
            done = [(o, f) for o, f in self._waiters if o <= hw]
            if not done:
                return
            self._waiters = [(o, f) for o, f in self._waiters if o > hw]
        for _, fut in done:
            if not fut.done():
                fut.set_result(hw)

    # -- lifecycle and storage policy ----------------------------------------------------------
    def update_config(self, config):
        """Use a new LogConfig from now on (new segments get its sizes; retention and flush
        policy apply at once)."""
        self._log.update_config(config)

    def enforce_retention(self, now=None):
        """Delete whole old segments past ``retention.ms`` / ``retention.bytes`` when the
        topic's cleanup.policy holds ``delete``; returns how many went."""
        log = self._log
        if log.closed or "delete" not in log.config.cleanup_policy:
            return 0
        return log.enforce_retention(now)

    def close(self):
        """Close the log cleanly; HW waiters still pending fail with NotLeaderOrFollowerError."""
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for _, fut in waiters:
            _fail(fut, NotLeaderOrFollowerError(
                f"{self.topic}-{self.partition}: the partition was closed before the high "
                "watermark reached the batch"))
        # No cycle Log -> listener -> Partition -> Log: a closed log is freed (and its segments
        # unmapped) as soon as nothing else holds it, not at the next garbage collection.
        self._log.remove_listener(self._on_append)
        self._log.close()

    def __repr__(self):
        return (f"<Partition {self.topic}-{self.partition} {self._role} epoch={self.leader_epoch} "
                f"[{self.log_start_offset}, hw={self.high_watermark}, {self.log_end_offset}]>")


def _fail(fut, exc):
    if not fut.done():
        fut.set_exception(exc)
