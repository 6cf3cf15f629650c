"""Log: one partition's durable, ordered log of RecordBatch v2 batches, as segments on disk.

Directory layout (one Log per directory)::

    00000000000000000000.log  .index  .timeindex     segments, named by base offset
    log.checkpoint                                    recovery point + log start offset
    leader-epoch-checkpoint                           (epoch, start offset) pairs, see
                                                      klog.storage.leader_epoch
    .clean-shutdown                                   present only after a clean close
    .lock                                             flock()ed by the owning process

Durability: appends land in the page cache (pwrite into space reserved with posix_fallocate;
readers see them through read-only mappings); ``flush.messages`` / ``flush.ms`` (default: never,
as Kafka) decide when they are fsynced. After each flush the recovery
point (every offset below it is on disk) is checkpointed. Opening without the clean-shutdown
marker revalidates every segment from the recovery point on: a torn or garbage tail is cut off,
later segments are deleted; damage below the recovery point is data we promised to keep, so the
open fails with CorruptLogError naming file, byte and offsets. Every walk over batches checks
a length before stepping over it (see klog.storage.framing), and the checkpoint is held against
the segments (a log start past the data is refused, a recovery point past intact data is not
trusted).

Concurrency: every method is thread-safe. Appends, truncation, retention and rolls hold
``_lock``; flushes hold ``_flush_lock`` and fsync outside ``_lock`` so appends continue meanwhile.
"""
import bisect
import errno
import fcntl
import logging
import os
import threading

from klog._native.batch import RecordReader, build_batch, check_records, validate_batch
from klog._native.batch import decode_records, read_header, set_log_append_time
from klog.clock import SYSTEM_CLOCK, Scheduler
from klog.codec import NONE, codec_id, compressor, decompress
from klog.config import LONG_MAX, LogConfig
from klog.errors import (
    CorruptLogError, LogClosedError, LogLockedError, LogOfflineError, OffsetOutOfRangeError,
    CorruptRecordError, RecordTooLargeError, FencedLeaderEpochError,
)
from klog.storage.checkpoint import read_checkpoint, write_checkpoint
from klog.storage.files import (
    CHECKPOINT, CLEAN_SHUTDOWN, INDEX_SUFFIX, LOCK, LOG_SUFFIX, TIME_INDEX_SUFFIX,
    base_offset_of, fsync_dir, makedirs_durably, remove_durably,
)
from klog.storage import cleaner
from klog.storage.framing import walk_headers
from klog.storage.leader_epoch import LeaderEpochCache
from klog.storage.producer_state import ProducerState, remove_snapshot
from klog.storage.segment import LogSegment


_logger = logging.getLogger("klog.storage")


class Log:
    """A partition's log. Open with ``Log.open(path, config)``; use as a context manager."""

    def __init__(self, path, config, lock_fd, clock=None, scheduler=None):
        self.path = path
        self.config = config
        self._lock_fd = lock_fd
        self._clock = clock or scheduler and scheduler.clock or SYSTEM_CLOCK
        self._scheduler = scheduler   # None: the process-wide one (see _background)
        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._segments = []          # oldest first; the last one is active
        self._bases = []             # their base offsets, for bisect
        self._log_start = 0
        self._end = 0                # log end offset (next offset to assign)
        self._recovery_point = 0
        self._unflushed = 0
        self._last_flush_ms = self._clock.now_ms()
        self._closed = False
        self._offline = None
        self._compress = {}
        self._listeners = ()         # called after each append, outside the lock
        self._flusher = None         # the periodic flush.ms Task
        self._roll_flush_pending = False   # a rolled-segment flush is scheduled (under _lock)
        self._roll_flush_upto = 0
        self._producers = ProducerState()   # idempotent de-duplication, under _lock
        self._epochs = None          # LeaderEpochCache, under _lock
        self._leader_epoch = 0       # stamped into every appended batch

    # -- opening and closing -----------------------------------------------------------------
    @classmethod
    def open(cls, path, config=None, *, clock=None, scheduler=None):
        """Open (creating if needed) the log in directory ``path``.

        ``config`` is a dict of Kafka topic-config names (``segment.bytes``, ``retention.ms``...).
        ``clock`` (klog.clock; default: the scheduler's, else the system clock) gives record
        times, segment ages and flush times; ``scheduler`` runs the background flushes (of
        rolled segments, and every ``flush.ms``); default: one process-wide scheduler thread.
        Raises ConfigError for unknown names or bad values, LogLockedError if another process
        has the log open, CorruptLogError if flushed data is damaged.
        """
        config = LogConfig.from_dict(config)
        path = os.fspath(path)
        makedirs_durably(path)   # a new partition directory must survive a power loss
        lock_fd = _lock_directory(path)
        log = cls(path, config, lock_fd, clock, scheduler)
        try:
            log._load()
        except BaseException:
            log._release()
            raise
        if config.flush_ms < LONG_MAX:
            log._start_flusher()
        return log

    def _load(self):
        marker = os.path.join(self.path, CLEAN_SHUTDOWN)
        clean = os.path.exists(marker)
        if clean:
            # From here on a crash must trigger recovery again.
            remove_durably(marker)
        checkpoint_path = os.path.join(self.path, CHECKPOINT)
        checkpoint = read_checkpoint(checkpoint_path)
        self._recovery_point = checkpoint.get("recovery-point", 0)
        log_start = checkpoint.get("log-start-offset", 0)
        if self._recovery_point < 0 or log_start < 0:
            raise CorruptLogError(
                f"{checkpoint_path}: negative offsets (recovery-point {self._recovery_point}, "
                f"log-start-offset {log_start}); the checkpoint is damaged: refusing to open")
        bases = self._scan_directory()
        if not bases:
            self._segments = [LogSegment.create(self.path, log_start, self.config)]
        else:
            self._segments = [LogSegment(self.path, b, self.config, active=(b == bases[-1]))
                              for b in bases]
            clean = self._check_checkpoint(checkpoint_path) and clean
            if not (clean and self._load_clean()):
                self._recover()
        self._bases = [s.base_offset for s in self._segments]
        active = self._segments[-1]
        self._end = active.next_offset
        if log_start > self._end:
            # Every record below the log start was deleted (DeleteRecords, retention); a start
            # past the end would leave an empty log over data that was never deleted, or is a
            # damaged checkpoint. Either way an operator decides, not the open.
            raise CorruptLogError(
                f"{checkpoint_path}: log-start-offset {log_start} is past the end of the data "
                f"(offset {self._end}, the end of {active.path(LOG_SUFFIX)}): refusing to open. "
                "If segment files were removed, put them back; if the checkpoint is wrong, "
                "delete it (the log then starts at its first segment)")
        self._log_start = max(log_start, self._segments[0].base_offset)
        self._recovery_point = min(self._recovery_point, self._end)
        if checkpoint != {"recovery-point": self._recovery_point, "log-start-offset": self._log_start}:
            self._checkpoint()  # only when it changed: opening many clean logs stays cheap
        try:
            self._producers.load(self.path, self._segments, self._end, self._walk_is_complete())
        except CorruptRecordError as exc:   # a reader's walk (position_of) met damaged framing
            raise CorruptLogError(f"{exc}; found rebuilding the idempotent-producer state of a "
                                  "segment that was not revalidated: refusing to open") from None
        self._load_epochs()

    def _load_epochs(self):
        """Load (or rebuild from the batch headers) the leader-epoch cache and fit it to the
        log: entries past the end (a torn tail, an interrupted truncation) or below the start
        go. An entry starting exactly at the end stays: its epoch began there, with no data yet."""
        self._epochs, _ = LeaderEpochCache.load(self.path, self._batch_epochs)
        self._epochs.truncate_from_end(self._end + 1)
        self._epochs.truncate_from_start(self._log_start)
        self._leader_epoch = max(self._leader_epoch, self._epochs.latest_epoch)

    def _batch_epochs(self):
        """(leader epoch, base offset) of each batch where the epoch changes, oldest first."""
        last = None
        for seg in self._segments:
            for _, h in walk_headers(seg.log, seg.path(LOG_SUFFIX), 0, seg.size,
                                     "rebuilding the leader-epoch cache"):
                if h.leader_epoch != last:
                    last = h.leader_epoch
                    yield last, h.base_offset

    def _check_checkpoint(self, checkpoint_path):
        """Hold the recovery point against the segments before trusting it. When the last
        segment is whole batches to its end, its headers tell where the log ends; a recovery
        point past that cannot be true (a crash inside truncate_to, between the cut and the
        checkpoint, leaves one): recovery then starts from the last segment's base (a safe
        rebuild, logged), and the log is revalidated rather than loaded as clean. Returns False
        then. Zeros or damage after the data are left to recovery, which refuses to open when
        the recovery point says they were flushed."""
        last = self._segments[-1]
        if self._recovery_point <= last.base_offset:
            return True
        end = last.framed_end()
        if end is None or self._recovery_point <= end:
            return True
        _logger.warning(
            "%s: recovery-point %d is past the end of the data (offset %d, the end of %s); "
            "not trusting it: revalidating from offset %d", checkpoint_path,
            self._recovery_point, end, last.path(LOG_SUFFIX), last.base_offset)
        self._recovery_point = last.base_offset
        return False

    def _scan_directory(self):
        """Base offsets of the segments on disk; index files without a .log are removed. An
        interrupted cleaning is first finished or undone (see klog.storage.cleaner)."""
        cleaner.complete_swaps(self.path)
        names = os.listdir(self.path)
        bases = sorted(b for b in (base_offset_of(n, LOG_SUFFIX) for n in names) if b is not None)
        known = set(bases)
        for n in names:
            for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
                b = base_offset_of(n, suffix)
                if b is not None and b not in known:
                    os.unlink(os.path.join(self.path, n))
            if n.endswith(".tmp"):
                os.unlink(os.path.join(self.path, n))
        return bases

    def _load_clean(self):
        """Trust a cleanly closed log: no revalidation, only index sanity checks."""
        for i, seg in enumerate(self._segments):
            if not seg.load_clean():
                return False
            if i + 1 < len(self._segments) and seg.next_offset > self._segments[i + 1].base_offset:
                return False
        return True

    def _recover(self):
        """Revalidate from the segment holding the recovery point; cut the log at the first bad
        byte if it lies above the recovery point, refuse to open if below."""
        segments = self._segments
        expected = segments[0].base_offset
        for i, seg in enumerate(segments):
            next_base = segments[i + 1].base_offset if i + 1 < len(segments) else None
            trusted = next_base is not None and next_base <= self._recovery_point
            if trusted and seg.load_clean() and seg.next_offset <= next_base:
                expected = next_base
                continue
            problem = seg.recover(max(expected, seg.base_offset))
            if (problem is not None and problem[1] == "zeros" and next_base is not None
                    and problem[2] == next_base):
                # A rolled segment whose trim of the reserved tail was not durable yet at a
                # power loss: its batches end exactly where the next segment begins. Cut the zeros.
                seg.log.truncate(problem[0])
                seg.log.flush()
                problem = None
            if problem is None:
                if next_base is not None and seg.next_offset > next_base:
                    problem = (seg.size, "offsets", seg.next_offset, next_base)
            if problem is not None:
                pos, reason, next_offset, found = problem
                # A damaged baseOffset (outside the CRC) can inflate the expected offset past the
                # recovery point; valid data found below it was still flushed, so fail closed.
                if next_offset < self._recovery_point or (
                        found is not None and found < self._recovery_point):
                    raise CorruptLogError(
                        f"{seg.path(LOG_SUFFIX)}: {_REASONS.get(reason, reason)} at byte {pos} "
                        f"(expected offset {next_offset}"
                        + (f", found offset {found}" if found is not None else "")
                        + f"); the log was flushed up to offset "
                        f"{self._recovery_point} (recovery-point in {CHECKPOINT}), so this is "
                        "lost data, not a torn write: refusing to open")
                seg.log.truncate(pos)
                seg.log.flush()
                for later in segments[i + 1:]:
                    later.delete()
                del segments[i + 1:]
                fsync_dir(self.path)
                break
            if next_base is not None:
                seg.seal()
            expected = seg.next_offset
        active = segments[-1]
        if not active.active:
            active.make_active()

    def close(self):
        """Flush, checkpoint, mark the shutdown clean and release the directory."""
        with self._flush_lock, self._lock:
            if self._closed:
                return
            if self._flusher is not None:
                self._flusher.cancel()
            try:
                if self._offline is None:
                    for seg in self._segments:
                        seg.flush()
                    self._recovery_point = self._end
                    self._checkpoint()
                    try:
                        self._producers.write_snapshot(self.path, self._end)
                    except OSError:
                        pass   # optional: the next open walks the batch headers instead
                    active = self._segments[-1]
                    active.seal()
                    active.flush()
                    for seg in self._segments:
                        seg.close()
                    with open(os.path.join(self.path, CLEAN_SHUTDOWN), "wb") as f:
                        os.fsync(f.fileno())
                    fsync_dir(self.path)
                else:
                    for seg in self._segments:
                        seg.close()
            finally:
                self._closed = True
                self._release()

    def _release(self):
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_lock_fd", None) is not None and not self._closed:
            try:
                self.close()
            except Exception:
                pass

    # -- state ---------------------------------------------------------------------------------
    @property
    def log_start_offset(self):
        return self._log_start

    @property
    def fsyncs_on_append(self):
        """True when an append may fsync before returning (flush.messages or flush.ms set)."""
        return self.config.flush_messages < LONG_MAX or self.config.flush_ms < LONG_MAX

    @property
    def log_end_offset(self):
        return self._end

    @property
    def recovery_point(self):
        return self._recovery_point

    # -- leader epochs (KIP-101) -----------------------------------------------------------------
    @property
    def leader_epoch(self):
        """The epoch stamped into appended batches: the partition's current leader epoch."""
        return self._leader_epoch

    @property
    def leader_epochs(self):
        """[(epoch, start_offset)] of the leader-epoch cache, oldest first."""
        with self._lock:
            return self._epochs.entries

    def become_leader(self, epoch):
        """Append as leader ``epoch`` from now on (Kafka's Partition.makeLeader): the epoch
        starts at the log end offset. Epochs never go back: one below the latest epoch in the
        log raises FencedLeaderEpochError. Returns True if the epoch cache changed (and was
        written)."""
        with self._lock:
            self._check_writable()
            if epoch < self._epochs.latest_epoch or epoch < 0:
                raise FencedLeaderEpochError(
                    f"{self.path}: leader epoch {epoch} is below the log's latest "
                    f"epoch {self._epochs.latest_epoch}; epochs never go back")
            self._leader_epoch = epoch
            return self._epochs.assign(epoch, self._end)

    def end_offset_for_epoch(self, epoch):
        """``(epoch', end_offset)`` for OffsetForLeaderEpoch; see LeaderEpochCache.end_offset_for."""
        with self._lock:
            return self._epochs.end_offset_for(epoch, self._end)

    def epoch_for_offset(self, offset):
        """The leader epoch that wrote ``offset`` (-1 if unknown)."""
        with self._lock:
            return self._epochs.epoch_for(offset)

    @property
    def size(self):
        return sum(s.size for s in self._segments)

    @property
    def segments(self):
        """Base offsets of the segments, oldest first."""
        with self._lock:
            return list(self._bases)

    @property
    def closed(self):
        return self._closed

    def _check_writable(self):
        if self._closed:
            raise LogClosedError(f"{self.path}: log is closed")
        if self._offline is not None:
            raise LogOfflineError(f"{self.path}: log is offline after a failed flush: {self._offline}")

    def _checkpoint(self):
        write_checkpoint(os.path.join(self.path, CHECKPOINT), {
            "recovery-point": self._recovery_point,
            "log-start-offset": self._log_start,
        })

    # -- appending -------------------------------------------------------------------------------
    def append(self, values, keys=None, timestamps=None, headers=None, compression=None):
        """Append one batch built from ``values`` (bytes or None each); returns its base offset.

        ``keys``: bytes/None per record; ``timestamps``: ms since the epoch, one int or one per
        record (default now); ``headers``: per record a list of (str, bytes | None);
        ``compression``: 'lz4', 'gzip', 'snappy', 'zstd' or None (topic's compression.type).
        """
        if "compact" in self.config.cleanup_policy:
            keys = _require_keys(self.path, keys)
        codec = self._codec(compression)
        if timestamps is None or self.config.message_timestamp_type == "LogAppendTime":
            timestamps = self._clock.now_ms()   # the log's clock, not the native default
        batch = build_batch(values, keys, timestamps, headers, 0, codec,
                            self._compressor(codec) if codec else None)
        return self._append(batch)

    def append_batch(self, batch):
        """Append a RecordBatch v2 as a Kafka client sends it; returns the assigned base offset.

        The batch is validated (length, magic, CRC, record framing and offsets, decompressing a
        compressed batch to check it, as Kafka's broker does) and stored byte for byte but for
        its base offset. Invalid input raises CorruptRecordError and writes nothing.
        An idempotent producer's retry of an appended batch returns the original base offset
        and appends nothing (see append_idempotent).
        """
        return self.append_idempotent(batch)[0]

    def append_idempotent(self, batch):
        """As append_batch, but returns ``(base_offset, duplicate)``. A batch with a producer id
        is checked against that producer's state under the log's lock: a retry of one of its
        last 5 batches gives ``(original base offset, True)``; a sequence gap raises
        OutOfOrderSequenceError, an older epoch InvalidProducerEpochError (klog.storage.
        producer_state)."""
        validate_batch(batch, True, True)
        check_records(batch, decompress)
        if "compact" in self.config.cleanup_policy and not read_header(batch).is_control:
            _require_keys(self.path, (r.key for r in decode_records(batch, -1, decompress)))
        if self.config.message_timestamp_type == "LogAppendTime":
            batch = set_log_append_time(batch, self._clock.now_ms())
        header = read_header(batch)
        if header.producer_id < 0:
            return self._append(batch), False
        dup = []
        base = self._append(batch, header, dup)
        return base, bool(dup)

    def append_as_follower(self, batch):
        """Append one batch exactly as a partition leader stored it (a follower's append, Kafka's
        appendAsFollower): its base offset must be this log's end offset and its leader epoch is
        kept, not stamped; the epoch cache follows the batch's epoch. The batch is validated
        (CRC, framing) as a client's would be. Returns the new log end offset. Raises
        CorruptRecordError for a batch that does not start at the log end."""
        validate_batch(batch, True, True)
        header = read_header(batch)
        with self._lock:
            if header.base_offset != self._end:
                raise CorruptRecordError(
                    f"{self.path}: a follower's batch starts at offset {header.base_offset}, "
                    f"not at the log end {self._end}; fetch from the log end or truncate first")
            if header.leader_epoch < self._epochs.latest_epoch:
                raise FencedLeaderEpochError(
                    f"{self.path}: batch at offset {header.base_offset} has leader epoch "
                    f"{header.leader_epoch}, below the log's latest epoch "
                    f"{self._epochs.latest_epoch}")
            self._append(batch, header, None, follower=True)
            return self._end

    def _append(self, batch, header=None, dup=None, follower=False):
        size = len(batch) if not isinstance(batch, memoryview) else batch.nbytes
        if size > self.config.max_message_bytes:
            raise RecordTooLargeError(
                f"record batch of {size} bytes exceeds max.message.bytes "
                f"({self.config.max_message_bytes})")
        last_delta = _last_offset_delta(batch)
        with self._lock:
            self._check_writable()
            if header is not None and not follower:
                original = self._producers.check(header)
                if original is not None:
                    dup.append(True)
                    return original
            base = self._end
            now = self._clock.now_ms()
            active = self._segments[-1]
            if active.should_roll(size, base + last_delta, now):
                active = self._roll(base)
            epoch = header.leader_epoch if follower else self._leader_epoch
            if epoch > self._epochs.latest_epoch:
                # Before the batch: the checkpoint file never lacks an epoch the log holds.
                self._epochs.assign(epoch, base)
            active.append(batch, base, now, None if follower else epoch)
            if header is not None and header.producer_id >= 0:
                self._producers.update(header, base)
            self._end = base + last_delta + 1
            self._unflushed += last_delta + 1
            flush_due = (self._unflushed >= self.config.flush_messages
                         or now - self._last_flush_ms >= self.config.flush_ms)
        if flush_due:
            self.flush()
        for listener in self._listeners:
            listener(self)
        return base

    def add_listener(self, fn):
        """Call ``fn(log)`` after every append (e.g. to wake waiting consumers)."""
        with self._lock:
            self._listeners = self._listeners + (fn,)

    def remove_listener(self, fn):
        with self._lock:
            # ``!=``, not ``is not``: a bound method is a new object at each access
            self._listeners = tuple(f for f in self._listeners if f != fn)

    def _codec(self, compression):
        if compression is None:
            ctype = self.config.compression_type
            return NONE if ctype in ("producer", "uncompressed") else codec_id(ctype)
        return codec_id(compression)

    def _compressor(self, codec):
        fn = self._compress.get(codec)
        if fn is None:
            fn = self._compress[codec] = compressor(codec)
        return fn

    def _roll(self, base):
        """Seal the active segment and start a new one at ``base``. Caller holds _lock."""
        active = self._segments[-1]
        if active.is_empty:
            # Nothing to keep: just rename by recreating at the new base.
            active.delete()
            self._segments.pop()
            self._bases.pop()
        else:
            active.seal()
        seg = LogSegment.create(self.path, base, self.config)
        self._segments.append(seg)
        self._bases.append(base)
        fsync_dir(self.path)
        if not active.is_empty:
            # As Kafka: a rolled segment is flushed in the background and the recovery point
            # moves past it, so recovery after a crash revalidates only the newest segments.
            # One pending task per log covers every roll before it runs (no queue of fsyncs).
            self._roll_flush_upto = max(self._roll_flush_upto, base)
            if not self._roll_flush_pending:
                self._roll_flush_pending = True
                self._background().schedule(0, self._flush_rolled)
        return seg

    def _flush_rolled(self):
        with self._lock:
            self._roll_flush_pending = False
            upto = self._roll_flush_upto
        try:
            self.flush(upto)
        except (LogClosedError, LogOfflineError):
            pass

    def active_producers(self):
        """[(producer id, epoch, last sequence, last timestamp)] of the idempotent producers
        this partition remembers."""
        with self._lock:
            return self._producers.active()

    def update_config(self, config):
        """Use a new LogConfig from now on: new segments get its sizes, retention and flush
        policy apply at once."""
        config = LogConfig.from_dict(config)
        with self._lock:
            self.config = config
            for seg in self._segments:
                seg.config = config

    def roll(self):
        """Start a new segment now (no-op if the active one is empty)."""
        with self._lock:
            self._check_writable()
            if not self._segments[-1].is_empty:
                self._roll(self._end)

    # -- durability --------------------------------------------------------------------------------
    def flush(self, upto=None):
        """fsync everything appended so far (or every segment below offset ``upto``), then
        checkpoint the recovery point."""
        with self._flush_lock:
            with self._lock:
                self._check_writable()
                end = self._end if upto is None else min(upto, self._end)
                if end <= self._recovery_point:
                    return
                first = max(0, bisect.bisect_right(self._bases, self._recovery_point) - 1)
                segments = [s for s in self._segments[first:] if s.base_offset < end]
                if upto is None:
                    self._unflushed = 0
                    self._last_flush_ms = self._clock.now_ms()
            try:
                for seg in segments:
                    seg.flush()
            except OSError as exc:
                # After a failed fsync the page cache may say "clean" while the disk lost the
                # data; acknowledging anything more would be a lie. Stop here.
                self._offline = exc
                raise LogOfflineError(f"{self.path}: flush failed, log taken offline: {exc}") from exc
            with self._lock:
                self._recovery_point = max(self._recovery_point, min(end, self._end))
                # Rolled segments are now durable: read-only from here on, so a partition
                # holds file descriptors for its active segment only.
                live = set(map(id, self._segments[:-1])) if not self._closed else ()
                for seg in segments:
                    if id(seg) in live and not seg.active:
                        seg.release_write()
                try:
                    self._checkpoint()
                except OSError:
                    # The data is durable; only the recovery point on disk stays behind, which
                    # is safe (recovery revalidates a bit more; the next flush rewrites it).
                    # Raising would report durable, visible appends as failed (ENOSPC writing
                    # the checkpoint on a full disk): a retrying producer makes duplicates.
                    pass

    def _background(self):
        """The scheduler of this log's background flushes."""
        if self._scheduler is None:
            self._scheduler = _process_scheduler()
        return self._scheduler

    def _start_flusher(self):
        self._flusher = self._background().schedule_periodic(
            max(self.config.flush_ms, 1), self._flush_by_time)

    def _flush_by_time(self):
        """flush.ms: fsync what is not yet durable (the periodic task; stops with the log)."""
        try:
            if self._end != self._recovery_point:
                self.flush()
        except (LogClosedError, LogOfflineError):
            if self._flusher is not None:
                self._flusher.cancel()

    # -- reading -------------------------------------------------------------------------------------
    def _check_range(self, offset):
        if self._closed:
            raise LogClosedError(f"{self.path}: log is closed")
        if not self._log_start <= offset <= self._end:
            raise OffsetOutOfRangeError(
                f"offset {offset} is outside the log [{self._log_start}, {self._end}]")

    def read(self, offset, max_bytes=1048576, max_offset=None):
        """Whole raw batches starting with the one that holds ``offset``, as a zero-copy
        read-only memoryview of at most ``max_bytes`` (but always at least one batch).
        Empty at the log end. The view keeps its segment mapped until released.
        ``max_offset`` (a batch boundary: the high watermark): only batches below it; an
        offset at or past it reads nothing (OffsetOutOfRangeError only past the log end)."""
        with self._lock:
            self._check_range(offset)
            if max_offset is None or max_offset >= self._end:
                max_offset = None
            elif offset >= max_offset:
                return memoryview(b"")
            if offset == self._end:
                return memoryview(b"")  # a new one: a caller may release it
            i = bisect.bisect_right(self._bases, offset) - 1
            while i < len(self._segments):
                if max_offset is not None and self._segments[i].base_offset >= max_offset:
                    break
                view = self._segments[i].read(offset, max_bytes, max_offset)
                if view.nbytes:
                    return view
                i += 1  # offset fell in a gap at a segment's end (compaction); go on
                if i < len(self._segments):
                    offset = max(offset, self._segments[i].base_offset)
            return memoryview(b"")

    def records(self, offset=None):
        """An iterator of ``Record``s from ``offset`` (default: log start) to the log end,
        including records appended while iterating. Raises OffsetOutOfRangeError at once."""
        if offset is None:
            offset = self._log_start
        with self._lock:
            self._check_range(offset)
        return RecordReader(self._chunk_for_reader, offset, decompress)

    def _chunk_for_reader(self, offset):
        if offset >= self._end:
            return None
        return self.read(max(offset, self._log_start))

    def offset_for_time(self, timestamp_ms):
        """The first offset whose record timestamp >= ``timestamp_ms``, or None."""
        found = self.record_for_time(timestamp_ms)
        return None if found is None else found[0]

    def record_for_time(self, timestamp_ms):
        """``(offset, timestamp)`` of the first record whose timestamp >= ``timestamp_ms``
        (ListOffsets by time answers with that record's own timestamp), or None."""
        with self._lock:
            if self._closed:
                raise LogClosedError(f"{self.path}: log is closed")
            segments = list(self._segments)
            start = self._log_start
        for seg in segments:
            if seg.max_timestamp >= timestamp_ms and seg.next_offset > start:
                found = seg.record_for_time(timestamp_ms, start)
                if found is not None:
                    return found
        return None

    def max_timestamp_record(self):
        """``(offset, timestamp)`` of the first record (from the log start) with the largest
        timestamp in the log, or None if the log holds no record (ListOffsets MAX_TIMESTAMP).
        Each segment keeps its largest timestamp, so this decodes one batch, or walks the batch
        headers of the first segment when the log start cut into it."""
        with self._lock:
            if self._closed:
                raise LogClosedError(f"{self.path}: log is closed")
            segments = list(self._segments)
            start = self._log_start
        best_ts, best_seg, best = None, None, None
        for seg in segments:
            if seg.is_empty or seg.next_offset <= start:
                continue
            if seg.base_offset < start:   # the log start cuts into it: its own records decide
                found = seg.max_timestamp_record(start)
                if found is not None and (best_ts is None or found[1] > best_ts):
                    best_ts, best_seg, best = found[1], None, found
            elif best_ts is None or seg.max_timestamp > best_ts:   # ties: the earliest wins
                best_ts, best_seg, best = seg.max_timestamp, seg, None
        if best_seg is not None:
            best = best_seg.max_timestamp_record(start)
        return best

    # -- removing data ---------------------------------------------------------------------------------
    def truncate_to(self, offset):
        """Remove the batches holding offsets >= ``offset``; returns the new log end offset (the
        start of the batch holding ``offset``: batches are never split). Leader-epoch entries
        starting at or after ``offset`` go even when no batch does (as Kafka: a follower may hold
        an epoch that began at its log end, which the leader never had)."""
        with self._flush_lock, self._lock:
            self._check_writable()
            if offset >= self._end:
                self._epochs.truncate_from_end(offset)
                return self._end
            if offset < 0:
                raise OffsetOutOfRangeError(f"cannot truncate to negative offset {offset}")
            if offset <= self._log_start:
                return self._reset_at(offset)
            target = self._segments[bisect.bisect_right(self._bases, offset) - 1]
            pos = target.position_of(offset)
            if pos < target.size and read_header(target.log, pos).base_offset < self._log_start:
                # The batch holding ``offset`` also holds the log start: nothing visible is left,
                # and the end must not fall below the start.
                return self._reset_at(self._log_start)
            if target.base_offset < offset and target.log_views:
                # Checked before anything is deleted, so a refused truncation changes nothing.
                raise BufferError(f"{target.path(LOG_SUFFIX)}: {target.log_views} views of this "
                                  "segment are still alive; release them before truncating")
            while self._segments[-1].base_offset >= offset:
                seg = self._segments.pop()
                self._bases.pop()
                seg.delete()
            self._end = self._segments[-1].truncate_to(offset)
            fsync_dir(self.path)
            self._recovery_point = min(self._recovery_point, self._end)
            self._checkpoint()
            self._epochs.truncate_from_end(self._end)
            self._rebuild_producers()
            return self._end

    def truncate_fully_and_start_at(self, offset):
        """Drop every segment and start empty at ``offset`` (which may be past the log end: a
        follower whose log ends below the leader's log start). Returns ``offset``."""
        if offset < 0:
            raise OffsetOutOfRangeError(f"cannot start the log at negative offset {offset}")
        with self._flush_lock, self._lock:
            self._check_writable()
            return self._reset_at(offset)

    def _rebuild_producers(self):
        """After a truncation: forget the snapshot, replay the remaining batch headers."""
        if remove_snapshot(self.path):
            fsync_dir(self.path)   # a stale snapshot must not come back after a crash
        self._producers = ProducerState()
        self._producers.load(self.path, self._segments, self._end, self._walk_is_complete())

    def _walk_is_complete(self):
        """Whether the segments hold every batch appended since their first base offset: not
        after compaction, which removes whole batches (klog.storage.producer_state)."""
        return "compact" not in self.config.cleanup_policy

    def _reset_at(self, offset):
        """Drop every segment and start empty at ``offset``."""
        for seg in self._segments:
            seg.delete()
        self._segments = [LogSegment.create(self.path, offset, self.config)]
        self._bases = [offset]
        fsync_dir(self.path)
        self._log_start = self._end = self._recovery_point = offset
        self._checkpoint()
        self._epochs.truncate_from_end(offset)
        self._epochs.truncate_from_start(offset)
        self._rebuild_producers()
        return offset

    def delete_before(self, offset):
        """Advance the log start offset to ``offset`` (Kafka's DeleteRecords); whole segments
        below it are deleted. Returns the new log start offset."""
        with self._flush_lock, self._lock:
            self._check_writable()
            if offset > self._end or offset < 0:
                raise OffsetOutOfRangeError(
                    f"cannot delete before {offset}: log is [{self._log_start}, {self._end}]")
            if offset <= self._log_start:
                return self._log_start
            self._log_start = offset
            self._checkpoint()
            self._delete_segments(lambda seg, nxt: nxt is not None and nxt <= offset)
            self._epochs.truncate_from_start(self._log_start)
            return self._log_start

    def enforce_retention(self, now=None):
        """Delete whole old segments past ``retention.ms`` or ``retention.bytes``, oldest first.
        Returns how many segments were deleted."""
        cfg = self.config
        now = self._clock.now_ms() if now is None else now
        with self._flush_lock, self._lock:
            self._check_writable()
            total = [self.size]

            def expired(seg, _next):
                if seg.is_empty:
                    # Only compaction leaves a sealed segment empty: it holds nothing to keep.
                    return _next is not None
                if cfg.retention_ms >= 0 and now - seg.max_timestamp > cfg.retention_ms:
                    total[0] -= seg.size
                    return True
                if cfg.retention_bytes >= 0 and total[0] - seg.size >= cfg.retention_bytes:
                    total[0] -= seg.size
                    return True
                return False

            return self._delete_segments(expired, include_active=True)

    def clean(self, now=None):
        """Compact once (cleanup.policy=compact): keep the latest record per key in the sealed
        segments, drop expired tombstones; see klog.storage.cleaner. Returns a CleanResult."""
        return cleaner.clean(self, self._clock.now_ms() if now is None else now)

    def _delete_segments(self, predicate, include_active=False):
        """Delete the oldest segments while ``predicate(segment, next_base)`` holds. The active
        segment is first rolled if it must go too. Caller holds both locks."""
        doomed = 0
        for i, seg in enumerate(self._segments):
            nxt = self._segments[i + 1].base_offset if i + 1 < len(self._segments) else None
            if nxt is None and not include_active:
                break
            if not predicate(seg, nxt):
                break
            doomed += 1
        if not doomed:
            return 0
        if doomed == len(self._segments):
            self._roll(self._end)
        for seg in self._segments[:doomed]:
            seg.delete()
        del self._segments[:doomed]
        del self._bases[:doomed]
        fsync_dir(self.path)
        if self._segments[0].base_offset > self._log_start:
            self._log_start = self._segments[0].base_offset
        self._checkpoint()
        self._epochs.truncate_from_start(self._log_start)
        return doomed

    def __repr__(self):
        return (f"<Log {self.path!r} [{self._log_start}, {self._end}) "
                f"segments={len(self._segments)}>")


_REASONS = {
    "truncated": "a batch runs past the end of the file",
    "zeros": "the data ends early (zeros where batches should be)",
    "length": "a batch has an impossible length",
    "magic": "a batch has an unknown magic byte",
    "crc": "CRC mismatch",
    "offsets": "batch offsets go backwards or overlap the next segment",
}


def _require_keys(path, keys):
    """Compacted topics reject records without a key, as Kafka's LogValidator does: compaction
    keeps the latest record per key, so a keyless record has no place in it."""
    keys = [] if keys is None else keys if isinstance(keys, (list, tuple)) else list(keys)
    if not keys or any(k is None for k in keys):
        raise CorruptRecordError(
            f"{path}: a compacted topic (cleanup.policy=compact) cannot accept a record without a "
            "key")
    return keys


def _last_offset_delta(batch):
    b = memoryview(batch)
    return int.from_bytes(b[23:27], "big", signed=True)


def _lock_directory(path):
    """flock() the directory's lock file so a second writer gets a clear error."""
    lock_path = os.path.join(path, LOCK)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        owner = ""
        try:
            owner = os.pread(fd, 32, 0).decode().strip()
        except (OSError, UnicodeDecodeError):
            pass
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise LogLockedError(
                f"{path} is already open for writing"
                + (f" by process {owner}" if owner else "")
                + "; a log has one owner at a time") from None
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


_PROCESS_SCHEDULER = (None, None)   # (pid, Scheduler): a forked child starts its own
_PROCESS_SCHEDULER_LOCK = threading.Lock()


def _process_scheduler():
    """The scheduler of logs opened without one (``klog.Log.open`` on its own): one daemon
    thread for the whole process, started on first use."""
    global _PROCESS_SCHEDULER
    with _PROCESS_SCHEDULER_LOCK:
        pid, scheduler = _PROCESS_SCHEDULER
        if pid != os.getpid():
            scheduler = Scheduler(SYSTEM_CLOCK, name="klog-log-scheduler")
            _PROCESS_SCHEDULER = (os.getpid(), scheduler)
        return scheduler
