"""The log cleaner's scheduler (Kafka's LogCleaner and LogCleanerManager): which compacted logs
get a cleaning pass (klog.storage.cleaner), when, and where each one's clean part ends.

A thread wakes every ``log.cleaner.backoff.ms`` (and goes again at once after a round that cleaned
something) and cleans, dirtiest first, each log whose cleanup.policy holds ``compact`` and where

- the **dirty ratio** is above ``min.cleanable.dirty.ratio`` (Kafka compares with ``>``): dirty
  bytes / (clean + dirty bytes) of the cleanable range. The cleanable range is the sealed
  segments up to the first one younger than ``min.compaction.lag.ms``; its clean part lies below
  the first dirty offset (the checkpoint), its dirty part above. Sizes only: nothing is read;
- or the first batch of the oldest dirty segment is older than ``max.compaction.lag.ms``. An
  active segment that old is rolled first (Kafka rolls it by ``min(segment.ms,
  max.compaction.lag.ms)``), so no record waits longer than the lag and a backoff;
- or a tombstone kept by the log's last pass has outlived ``delete.retention.ms`` (Kafka's
  KIP-534: quiet logs drop their tombstones too). Known in memory only: after a restart a log's
  old tombstones wait for its next pass.

**Cleaner checkpoint**: ``cleaner-offset-checkpoint`` in the data directory (Kafka's name and
place), text::

    0                           version
    N                           number of entries
    <topic> <partition> <offset>   N lines: that partition's first dirty offset

Written with ``write_atomic`` (temp, fsync, rename, fsync dir) after the pass that cleaned a log
committed its swaps, so a crash leaves the old or the new file, and the offsets in it are never
above what was cleaned: a crash before the write only makes the next pass treat cleaned data as
dirty again. An offset the log cannot have (below its first segment, above its active segment)
counts as no checkpoint: the whole log is dirty. A damaged file is reported (logging) and ignored,
which costs one full pass per log. A deleted topic's entries go at once (``forget``), so a topic
created again under the same name starts dirty.

Not done: ``Log.truncate_to`` (no caller yet; replication will have one) must lower the checkpoint
like Kafka's maybeTruncateCheckpoint.

Concurrency: one round at a time (``_round_lock``); the checkpoint map and file under ``_lock``,
which is held only for bookkeeping, never during a pass. ``close()`` stops a pass between
batches (its uncommitted group is discarded), so closing a broker does not wait for a whole pass.
"""
import logging
import os
import threading

from klog._native.batch import read_header
from klog.clock import SYSTEM_CLOCK, Scheduler
from klog.storage import cleaner
from klog.storage.checkpoint import CheckpointFormatError, read_rows, write_rows

CHECKPOINT_FILE = "cleaner-offset-checkpoint"

log = logging.getLogger("klog.cleaner")


class LogToClean:
    """What the scheduler knows of one log before a pass: sizes and times, no data read."""
    __slots__ = ("key", "log", "first_dirty", "clean_bytes", "dirty_bytes", "oldest_dirty_ms")

    def __init__(self, key, log_, first_dirty, clean_bytes, dirty_bytes, oldest_dirty_ms):
        self.key = key
        self.log = log_
        self.first_dirty = first_dirty
        self.clean_bytes = clean_bytes
        self.dirty_bytes = dirty_bytes
        self.oldest_dirty_ms = oldest_dirty_ms

    @property
    def dirty_ratio(self):
        total = self.clean_bytes + self.dirty_bytes
        return self.dirty_bytes / total if total else 0.0


def log_to_clean(key, log_, checkpointed, now):
    """The LogToClean of ``log_`` at ``now`` (ms), given its checkpointed first dirty offset."""
    config = log_.config
    with log_._lock:
        segments = list(log_._segments)
        first_dirty = valid_first_dirty(segments, checkpointed)
        clean_bytes = dirty_bytes = 0
        oldest = None
        for seg in segments[:-1]:
            if (config.min_compaction_lag_ms > 0
                    and now - seg.max_timestamp < config.min_compaction_lag_ms):
                break
            if seg.next_offset <= first_dirty:
                clean_bytes += seg.size
                continue
            dirty_bytes += seg.size
            if oldest is None and seg.size:
                oldest = read_header(seg.log, 0).max_timestamp
    return LogToClean(key, log_, first_dirty, clean_bytes, dirty_bytes, oldest)


def roll_if_lagging(log_, now):
    """Roll the active segment if its first batch is older than max.compaction.lag.ms (and no
    min.compaction.lag.ms keeps it); True if it rolled."""
    config = log_.config
    with log_._lock:
        active = log_._segments[-1]
        if active.is_empty:
            return False
        first_ms = read_header(active.log, 0).max_timestamp
        if (now - first_ms <= config.max_compaction_lag_ms
                or now - active.max_timestamp < config.min_compaction_lag_ms):
            return False
        log_.roll()
        return True


def valid_first_dirty(segments, checkpointed):
    """The checkpoint if the log can have it, else its first segment's base (all dirty)."""
    start = segments[0].base_offset
    if checkpointed is None or not start <= checkpointed <= segments[-1].base_offset:
        return start
    return checkpointed


def read_cleaner_checkpoint(path):
    """{(topic, partition): offset}; {} if the file does not exist. CleanerCheckpointError if
    it is malformed."""
    try:
        return {(topic, int(partition)): int(offset)
                for topic, partition, offset in read_rows(path, 3) or ()}
    except (CheckpointFormatError, ValueError) as exc:
        raise CleanerCheckpointError(f"{path}: malformed ({exc}; expected 'topic partition "
                                     "offset' lines)") from None


def write_cleaner_checkpoint(path, entries):
    write_rows(path, [(t, p, int(o)) for (t, p), o in sorted(entries.items())])


class CleanerCheckpointError(ValueError):
    """The cleaner checkpoint file cannot be read (only costs a full pass: it is ignored)."""


class LogCleaner:
    """Schedules cleaning for the logs ``logs()`` returns ([((topic, partition), Log)]).

    ``clean_once(now)`` runs one round (tests call it with their own ``now``); ``start()`` runs
    rounds on the cleaner's thread, woken every ``backoff_ms`` by a periodic task on
    ``scheduler`` (klog.clock: a FakeClock's ``advance`` wakes it too; passes take long, so
    they never run on the scheduler's own thread); ``close()`` stops it after the pass in
    progress. ``clock`` gives ``now`` for rounds of the thread.
    """

    def __init__(self, data_dir, logs, backoff_ms, clock=SYSTEM_CLOCK, scheduler=None):
        self.path = os.path.join(data_dir, CHECKPOINT_FILE)
        self._logs = logs
        self._backoff_ms = max(backoff_ms, 1)
        self._clock = clock
        self._scheduler = scheduler
        self._wake = threading.Event()
        self._trigger = None
        self._lock = threading.Lock()
        self._round_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._tombstone_expiry = {}   # key -> ms when a tombstone its last pass kept expires
        self.bytes_read = 0           # by every pass so far (the map, the clean part, recopies)
        self.passes = 0
        try:
            self._checkpoints = read_cleaner_checkpoint(self.path)
        except CleanerCheckpointError as exc:
            log.warning("%s; ignoring it: every compacted log is read once in full", exc)
            self._checkpoints = {}

    def first_dirty(self, topic, partition):
        """The checkpointed first dirty offset, or None."""
        with self._lock:
            return self._checkpoints.get((topic, partition))

    def start(self):
        if self._scheduler is None:
            self._scheduler = Scheduler(self._clock, name="klog-log-cleaner-timer")
        self._trigger = self._scheduler.schedule_periodic(self._backoff_ms, self._wake.set)
        self._thread = threading.Thread(target=self._run, name="klog-log-cleaner", daemon=True)
        self._thread.start()

    def close(self):
        self._stop.set()
        self._wake.set()
        if self._trigger is not None:
            self._trigger.cancel()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self):
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            while not self._stop.is_set() and any(r.groups for r in self.clean_once().values()):
                pass  # something was cleaned: look again before sleeping (Kafka's loop)

    def candidates(self, now):
        """The LogToClean of every compacted log that needs a pass now, dirtiest first."""
        with self._lock:
            checkpoints = dict(self._checkpoints)
        out = []
        for key, lg in self._logs():
            if lg.closed or "compact" not in lg.config.cleanup_policy:
                continue
            try:
                ltc = log_to_clean(key, lg, checkpoints.get(key), now)
            except Exception:   # closed or offline meanwhile: its own users hear about it
                continue
            config = lg.config
            if roll_if_lagging(lg, now):
                ltc = log_to_clean(key, lg, checkpoints.get(key), now)
            lagging = (ltc.oldest_dirty_ms is not None
                       and now - ltc.oldest_dirty_ms > config.max_compaction_lag_ms)
            expiring = self._tombstone_expiry.get(key, float("inf")) <= now
            if (ltc.dirty_bytes and ltc.dirty_ratio > config.min_cleanable_dirty_ratio
                    or lagging or expiring):
                out.append(ltc)
        out.sort(key=lambda ltc: ltc.dirty_ratio, reverse=True)
        return out

    def clean_once(self, now=None):
        """One round: clean every log that needs it. Returns {(topic, partition): CleanResult}
        of the logs it cleaned (a log that fails is skipped: its readers and writers see why)."""
        now = self._clock.now_ms() if now is None else now
        results = {}
        with self._round_lock:
            for ltc in self.candidates(now):
                if self._stop.is_set():
                    break
                try:
                    result = cleaner.clean(ltc.log, now, ltc.first_dirty, self._stop.is_set)
                except cleaner.CleanerStopped:
                    break
                except Exception as exc:
                    log.warning("cleaning %s-%s failed: %s", *ltc.key, exc)
                    continue
                self.passes += 1
                self.bytes_read += result.bytes_read
                results[ltc.key] = result
                if not result.aborted and result.dirty_end >= 0:
                    self._checkpoint(ltc, result)
        return results

    def _checkpoint(self, ltc, result):
        with self._lock:
            if ltc.log.closed:
                return   # deleted (or the broker closing) meanwhile: forget() had the last word
            self._tombstone_expiry[ltc.key] = result.next_tombstone_expiry
            if self._checkpoints.get(ltc.key) == result.dirty_end:
                return
            self._checkpoints[ltc.key] = result.dirty_end
            write_cleaner_checkpoint(self.path, self._checkpoints)

    def forget(self, topic, partitions=None):
        """Drop the entries of a deleted topic, or of ``partitions`` of it that left this broker,
        now: a topic or partition of that name that comes back starts dirty."""
        def gone(key):
            return key[0] == topic and (partitions is None or key[1] in partitions)
        with self._lock:
            doomed = [k for k in self._checkpoints if gone(k)]
            for k in doomed:
                del self._checkpoints[k]
            for k in [k for k in self._tombstone_expiry if gone(k)]:
                del self._tombstone_expiry[k]
            if doomed:
                write_cleaner_checkpoint(self.path, self._checkpoints)
