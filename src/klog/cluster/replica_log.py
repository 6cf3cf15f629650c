"""``StorageReplicaLog``: the replica state machine's ``ReplicaLog`` over a ``Partition``.

The replica (klog.cluster.replica) speaks of records, epochs and offsets; this adapter maps that
onto the partition (klog.partition) and so its storage log and leader-epoch cache
(``leader-epoch-checkpoint``), which keep their own crash behaviour (see klog.storage.log and
klog.storage.leader_epoch):

- records are raw RecordBatch v2 bytes: ``read`` returns the leader's whole batches as stored
  and ``append_as_follower`` appends them byte for byte, each with the leader epoch stamped in
  its header (bytes 12..15), so the epoch cache of a follower is the leader's;
- ``append_as_leader`` appends a producer's batch stamped with the leader's epoch, through the
  idempotent path (a retry of an appended batch answers with its original offsets);
- ``truncate_to`` cuts the log at a batch boundary and the epoch entries starting at or past
  the cut even when no batch goes (the semantics the replica model assumes: tests/cluster/
  memlog.py);
- ``truncate_fully_and_start_at`` empties the log to start at the leader's log start; when that
  falls inside a batch, the first batch fetched starts below it: the log then starts over at
  that batch's base offset and keeps the leader's log start (as Kafka's follower does).
"""
from __future__ import annotations

from typing import Sequence

from klog.cluster.state import EpochEnd, UNDEFINED_EPOCH_END
from klog.errors import CorruptRecordError
from klog.partition import LOG_END

BATCH_HEADER = 61          # bytes of a v2 batch header before its records
READ_BYTES = 1 << 20       # at most this much per follower read (always at least one batch)


def last_offset_delta(batch) -> int:
    return int.from_bytes(memoryview(batch)[23:27], "big", signed=True)


def split_batches(data):
    """The batches of a concatenation of v2 batches, as memoryviews (a torn tail is an error:
    the leader sends whole batches)."""
    view = memoryview(data)
    out, pos = [], 0
    while pos < len(view):
        if len(view) - pos < 12:
            raise CorruptRecordError(f"replicated records: {len(view) - pos} bytes at byte {pos} "
                                     "are not a whole batch header")
        size = 12 + int.from_bytes(view[pos + 8:pos + 12], "big", signed=True)
        if size < BATCH_HEADER or pos + size > len(view):
            raise CorruptRecordError(f"replicated records: batch at byte {pos} claims {size} "
                                     f"bytes, {len(view) - pos} left")
        out.append(view[pos:pos + size])
        pos += size
    return out


class StorageReplicaLog:
    """A ``ReplicaLog`` over a ``klog.partition.Partition`` (its Log and leader-epoch cache).
    ``max_records`` of ``read`` is taken as a byte budget (the storage reads whole batches).

    Taking a new epoch (``assign_epoch``) makes the Partition lead in it, with a high watermark
    and ISR the replica manager sets right after (``Partition.update_high_watermark``,
    ``set_in_sync_replicas``); leader appends go through ``Partition.append_records`` (the
    idempotence checks; the replica has already checked ``min.insync.replicas``)."""

    def __init__(self, partition):
        self.partition = partition

    @property
    def log_start_offset(self) -> int:
        return self.partition.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.partition.log_end_offset

    # -- epochs ---------------------------------------------------------------------------------
    def latest_epoch(self) -> int:
        return self.partition.latest_epoch()

    def epoch_start_offset(self, epoch: int) -> int:
        return self.partition.epoch_start_offset(epoch)

    def end_offset_for_epoch(self, epoch: int) -> EpochEnd:
        # The model's rule (KIP-279): the largest epoch <= the one asked for, ending where the
        # next one starts (the log end for the latest). The cache answers an epoch above its
        # latest with "undefined"; the model with the latest epoch and the log end.
        latest = self.partition.latest_epoch()
        if latest < 0:
            return UNDEFINED_EPOCH_END
        if epoch >= latest:
            return EpochEnd(latest, self.partition.log_end_offset)
        found, end = self.partition.end_offset_for_epoch(epoch)
        return EpochEnd(found, end) if found >= 0 else UNDEFINED_EPOCH_END

    def assign_epoch(self, epoch: int, start_offset: int) -> None:
        if start_offset != self.partition.log_end_offset:
            raise ValueError(f"{self.partition!r}: a new epoch starts at the log end, "
                             f"not {start_offset}")
        # The HW stays what it was (the replica's; the manager syncs it right after): a
        # consumer reading the Partition meanwhile must not see it drop to 0.
        self.partition.become_leader(epoch, high_watermark=self.partition.high_watermark,
                                     in_sync_replicas=())

    # -- records --------------------------------------------------------------------------------
    def append_as_leader(self, values: Sequence, epoch: int) -> tuple[int, int]:
        """``values``: one producer batch (bytes) in a sequence. Returns (first, last offset)."""
        if self.partition.leader_epoch != epoch or not self.partition.is_leader:
            raise ValueError(f"{self.partition!r}: not the leader in epoch {epoch}")
        first = last = None
        for batch in values:
            info = self.partition.append_records(batch, acks=1)
            first = info.base_offset if first is None else first
            last = info.last_offset
        return first, last

    def append_as_follower(self, records) -> None:
        if not records:
            return
        part = self.partition
        start, end = part.log_start_offset, part.log_end_offset
        first = memoryview(records)
        base = int.from_bytes(first[0:8], "big", signed=True)
        if start == end and base < end <= base + last_offset_delta(first):
            # A log that just started over at the leader's log start, which falls inside this
            # batch (records deleted up to the middle of it): start at the batch and keep the
            # log start (Kafka's UnexpectedAppendOffsetException case).
            part.truncate_fully_and_start_at(base)
            part.append_as_follower(records)
            part.follow_log_start(end)
            return
        part.append_as_follower(records)

    def read(self, offset: int, max_records: int = READ_BYTES) -> bytes:
        if offset >= self.partition.log_end_offset:
            return b""
        view = self.partition.read(offset, max(1, min(max_records, READ_BYTES)), LOG_END)
        try:
            return bytes(view)   # a copy: a live view would block a later truncation
        finally:
            view.release()

    def truncate_to(self, offset: int) -> None:
        self.partition.truncate_to(offset)

    def truncate_fully_and_start_at(self, offset: int) -> None:
        self.partition.truncate_fully_and_start_at(offset)

    def advance_log_start(self, offset: int) -> None:
        self.partition.follow_log_start(offset)
