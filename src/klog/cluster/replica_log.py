"""``StorageReplicaLog``: the replica state machine's ``ReplicaLog`` over a storage ``Log``.

The replica (klog.cluster.replica) speaks of records, epochs and offsets; this adapter maps that
onto the storage log and its leader-epoch cache (``leader-epoch-checkpoint``), which keep
their own crash behaviour (see klog.storage.log and klog.storage.leader_epoch):

- records are raw RecordBatch v2 bytes: ``read`` returns the leader's whole batches as stored
  and ``append_as_follower`` appends them byte for byte, each with the leader epoch stamped in
  its header (bytes 12..15), so the epoch cache of a follower is the leader's;
- ``append_as_leader`` appends a producer's batch stamped with the leader's epoch, through the
  idempotent path (a retry of an appended batch answers with its original offsets);
- ``truncate_to`` cuts the log at a batch boundary and the epoch entries starting at or past
  the cut even when no batch goes (the semantics the replica model assumes: tests/cluster/
  memlog.py).
"""
from __future__ import annotations

from typing import Sequence

from klog._native.batch import read_header
from klog.cluster.state import EpochEnd, UNDEFINED_EPOCH_END
from klog.errors import CorruptRecordError

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
    """A ``ReplicaLog`` over ``klog.storage.log.Log``. ``max_records`` of ``read`` is taken as a
    byte budget (the storage reads whole batches)."""

    def __init__(self, log):
        self.log = log

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    # -- epochs ---------------------------------------------------------------------------------
    def latest_epoch(self) -> int:
        entries = self.log.leader_epochs
        return entries[-1][0] if entries else -1

    def epoch_start_offset(self, epoch: int) -> int:
        for e, start in self.log.leader_epochs:
            if e == epoch:
                return start
        return -1

    def end_offset_for_epoch(self, epoch: int) -> EpochEnd:
        # The model's rule (KIP-279): the largest epoch <= the one asked for, ending where the
        # next one starts (the log end for the latest).
        entries = self.log.leader_epochs
        found = None
        for i, (e, _) in enumerate(entries):
            if e <= epoch:
                found = i
        if found is None:
            return UNDEFINED_EPOCH_END
        end = entries[found + 1][1] if found + 1 < len(entries) else self.log.log_end_offset
        return EpochEnd(entries[found][0], end)

    def assign_epoch(self, epoch: int, start_offset: int) -> None:
        if start_offset != self.log.log_end_offset:
            raise ValueError(f"{self.log.path}: a new epoch starts at the log end "
                             f"{self.log.log_end_offset}, not {start_offset}")
        self.log.become_leader(epoch)

    # -- records --------------------------------------------------------------------------------
    def append_as_leader(self, values: Sequence, epoch: int) -> tuple[int, int]:
        """``values``: one producer batch (bytes) in a sequence. Returns (first, last offset)."""
        if self.log.leader_epoch != epoch:
            self.log.become_leader(epoch)
        first = last = None
        for batch in values:
            base, _dup = self.log.append_idempotent(batch)
            first = base if first is None else first
            last = base + last_offset_delta(batch)
        return first, last

    def append_as_follower(self, records) -> None:
        if not records:
            return
        for batch in split_batches(records):
            header = read_header(batch)
            if header.base_offset != self.log.log_end_offset:
                raise CorruptRecordError(
                    f"{self.log.path}: replicated batch starts at offset {header.base_offset}, "
                    f"the log ends at {self.log.log_end_offset}")
            epoch = header.leader_epoch
            if epoch >= 0 and epoch != self.log.leader_epoch:
                # The batch's epoch starts here if it is new: the cache follows the leader's.
                self.log.become_leader(epoch)
            self.log.append_idempotent(batch)

    def read(self, offset: int, max_records: int = READ_BYTES) -> bytes:
        if offset >= self.log.log_end_offset:
            return b""
        view = self.log.read(offset, max(1, min(max_records, READ_BYTES)))
        try:
            return bytes(view)   # a copy: a live view would block a later truncation
        finally:
            view.release()

    def truncate_to(self, offset: int) -> None:
        self.log.truncate_to(offset)
