"""Idempotent-producer state of one partition (Kafka's ProducerStateManager, no transactions).

Per producer id: its epoch and the last ``RETAINED`` batches it appended, as
(first sequence, last sequence, base offset). A batch whose (epoch, first, last) equals one of
them is a retry of an acknowledged batch: the log answers with the original base offset and
appends nothing. Otherwise the first sequence must follow the last one (int32 wrap-around), the
epoch must not go back, and a new epoch must start at sequence 0.

A producer with no state here may start at sequence 0 only, while the state is ``complete``
(it has seen every batch ever appended to the partition, so "unknown" means "never stored a
batch here"): a later first sequence means earlier batches of that producer were not stored
(refused, lost in flight, cut by a leader change), and accepting it would acknowledge the gap:
librdkafka and the Java client take a success past unacknowledged batches as their implicit
acknowledgement. Such a batch gets OUT_OF_ORDER_SEQUENCE_NUMBER, which those clients retry (after
an epoch bump) when earlier batches are outstanding. Only when the state may have lost producers
(rebuilt from segments that no longer start at offset 0, or from a compacted log, or from an old
snapshot that does not say) is any first sequence accepted, as Kafka >= 2.5 does (KIP-360): a
producer whose batches were all deleted must be able to go on.

Persistence: the state is rebuilt on open by walking the batch headers (no record decoding);
``producer.snapshot`` (written atomically at close, JSON) holds the state up to an offset so
only the batches after it are walked. A snapshot beyond the log end (truncated log) is ignored.
The snapshot also records ``complete``; one without it is read as incomplete.
"""
import json
import logging
import os

from klog.error_codes import ErrorCode as EC
from klog.errors import KlogError
from klog.storage.files import fsync_dir

_logger = logging.getLogger("klog.storage")

RETAINED = 5
INT32_MAX = 2**31 - 1
SNAPSHOT = "producer.snapshot"


class OutOfOrderSequenceError(KlogError):
    """A batch's sequence does not follow the producer's last one (Kafka error 45)."""
    error_code = EC.OUT_OF_ORDER_SEQUENCE_NUMBER


class UnknownProducerSequenceError(OutOfOrderSequenceError):
    """A producer this partition never stored a batch from starts past sequence 0: its earlier
    batches are missing (Kafka error 45, so that clients retry them rather than skip them)."""


class InvalidProducerEpochError(KlogError):
    """A batch from an older epoch of its producer id (Kafka error 47)."""
    error_code = EC.INVALID_PRODUCER_EPOCH


def increment_sequence(seq, n):
    """``seq + n`` wrapping past INT32_MAX to 0, as Kafka's DefaultRecordBatch.incrementSequence."""
    if seq > INT32_MAX - n:
        return n - (INT32_MAX - seq) - 1
    return seq + n


class ProducerState:
    """Mutable per-partition state; the owning Log serialises access under its lock."""

    def __init__(self):
        self.producers = {}   # pid -> [epoch, [(first_seq, last_seq, base_offset), ...]]
        self.timestamps = {}  # pid -> max timestamp of its last batch (not in the snapshot)
        # True while every batch ever appended here went through update(): an unknown producer
        # then never stored anything here (see the module docstring).
        self.complete = True

    def check(self, header):
        """For an idempotent batch header: the original base offset if it is a duplicate, None
        if it may be appended; raises OutOfOrderSequenceError / InvalidProducerEpochError."""
        pid, epoch, first = header.producer_id, header.producer_epoch, header.base_sequence
        if pid < 0 or first < 0 or header.is_control:
            return None
        entry = self.producers.get(pid)
        if entry is None:
            if first != 0 and self.complete:
                exc = UnknownProducerSequenceError(
                    f"producer {pid} epoch {epoch} has stored no batch in this partition: its "
                    f"first batch must start at sequence 0, not {first} (the batches before it "
                    "were not stored; the producer must send them first)")
                # Rare (a client race or lost batches) and followed by the client's epoch bump:
                # worth a line when reading a fault soak's broker logs.
                _logger.info("refused: %s", exc)
                raise exc
            return None   # may be a producer whose batches were all deleted (KIP-360)
        cur_epoch, batches = entry
        if epoch < cur_epoch:
            raise InvalidProducerEpochError(
                f"producer {pid}: epoch {epoch} is older than the current epoch {cur_epoch}")
        if epoch > cur_epoch:
            if first != 0:
                raise OutOfOrderSequenceError(
                    f"producer {pid}: new epoch {epoch} must start at sequence 0, not {first}")
            return None
        last = increment_sequence(first, header.last_offset_delta)
        for f, l, base in batches:
            if f == first and l == last:
                return base
        if batches and first != increment_sequence(batches[-1][1], 1):
            raise OutOfOrderSequenceError(
                f"producer {pid} epoch {epoch}: sequence {first}, expected "
                f"{increment_sequence(batches[-1][1], 1)}")
        return None

    def update(self, header, base_offset):
        """Record an appended batch (``header`` as sent; ``base_offset`` as assigned)."""
        pid, first = header.producer_id, header.base_sequence
        if pid < 0 or first < 0 or header.is_control:
            return
        epoch = header.producer_epoch
        last = increment_sequence(first, header.last_offset_delta)
        entry = self.producers.get(pid)
        if entry is None or entry[0] != epoch:
            entry = self.producers[pid] = [epoch, []]
        entry[1].append((first, last, base_offset))
        self.timestamps[pid] = header.max_timestamp
        if len(entry[1]) > RETAINED:
            del entry[1][0]

    def active(self):
        """[(producer id, epoch, last sequence, last timestamp)] of every producer with state
        here (DescribeProducers); the timestamp is -1 for batches known only from a snapshot."""
        return [(pid, e[0], e[1][-1][1] if e[1] else -1, self.timestamps.get(pid, -1))
                for pid, e in self.producers.items()]

    # -- rebuilding and persisting -----------------------------------------------------------
    def scan_segment(self, segment, from_offset):
        """Replay the headers of ``segment``'s batches whose last offset >= ``from_offset``."""
        from klog.storage.files import LOG_SUFFIX
        from klog.storage.framing import walk_headers
        buf = segment.log
        pos, size = 0, segment.size
        if from_offset > segment.base_offset:
            pos = segment.position_of(from_offset)
        # Every length is checked before the step (a damaged one would loop or walk backwards).
        for _, h in walk_headers(buf, segment.path(LOG_SUFFIX), pos, size,
                                 "found rebuilding the idempotent-producer state from a segment"
                                 " that was not revalidated (below the recovery point or after a"
                                 " clean shutdown): refusing to open; `klog check` shows the damage"):
            if h.last_offset >= from_offset:
                self.update(h, h.base_offset)

    def load(self, directory, segments, log_end, complete_walk=True):
        """Rebuild from the snapshot in ``directory`` (if usable) and the segments after it.
        ``complete_walk``: the segments hold every batch ever appended at or after their first
        base offset (false for a compacted log); with a first base offset of 0 a walk without
        snapshot then sees every producer."""
        start = segments[0].base_offset if segments else 0
        complete_walk = complete_walk or all(seg.is_empty for seg in segments)
        self.complete = complete_walk and start == 0
        path = os.path.join(directory, SNAPSHOT)
        try:
            with open(path, "rb") as f:
                snap = json.loads(f.read())
            offset = int(snap["offset"])
            if offset <= log_end:
                self.producers = {int(pid): [e[0], [tuple(b) for b in e[1]]]
                                  for pid, e in snap["producers"].items()}
                # Complete only if the walk from the snapshot misses nothing either.
                self.complete = (snap.get("complete") is True and complete_walk
                                 and (not segments or segments[0].base_offset <= offset))
                start = offset
            else:
                # The log was cut below the snapshot: it describes batches that are gone.
                if remove_snapshot(directory):
                    fsync_dir(directory)
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            self.producers = {}
            self.complete = complete_walk and start == 0
        for seg in segments:
            if seg.next_offset > start and not seg.is_empty:
                self.scan_segment(seg, start)

    def write_snapshot(self, directory, offset):
        """Atomically write the state as of log end ``offset`` (tmp file, fsync, rename)."""
        path = os.path.join(directory, SNAPSHOT)
        tmp = path + ".tmp"
        data = json.dumps({"offset": offset, "complete": self.complete, "producers": {
            str(pid): [e[0], [list(b) for b in e[1]]] for pid, e in self.producers.items()}})
        with open(tmp, "w") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def remove_snapshot(directory):
    """Delete the snapshot; True if there was one."""
    try:
        os.unlink(os.path.join(directory, SNAPSHOT))
        return True
    except FileNotFoundError:
        return False
