"""An in-memory ReplicaLog for the replication model tests: entries are (epoch, value) pairs,
the offset is the index. The epoch cache follows Kafka's LeaderEpochFileCache rules."""
from __future__ import annotations

from klog.cluster.state import EpochEnd, UNDEFINED_EPOCH_END


class MemoryLog:
    def __init__(self):
        self.log_start_offset = 0    # entries below it are kept as placeholders, never read
        self.entries: list[tuple[int, object]] = []
        self.epochs: list[tuple[int, int]] = []      # (epoch, start offset), both increasing

    @property
    def log_end_offset(self) -> int:
        return len(self.entries)

    def latest_epoch(self) -> int:
        return self.epochs[-1][0] if self.epochs else -1

    def epoch_start_offset(self, epoch: int) -> int:
        for e, start in self.epochs:
            if e == epoch:
                return start
        return -1

    def end_offset_for_epoch(self, epoch: int) -> EpochEnd:
        found = None
        for i, (e, _) in enumerate(self.epochs):
            if e <= epoch:
                found = i
        if found is None:
            return UNDEFINED_EPOCH_END
        end = self.epochs[found + 1][1] if found + 1 < len(self.epochs) else self.log_end_offset
        return EpochEnd(self.epochs[found][0], end)

    def assign_epoch(self, epoch: int, start_offset: int) -> None:
        # An entry that is not older in both epoch and start is replaced (Kafka drops
        # non-monotonic entries rather than keep two epochs starting at one offset).
        self.epochs = [(e, s) for e, s in self.epochs if e < epoch and s < start_offset]
        self.epochs.append((epoch, start_offset))

    def append_as_leader(self, values, epoch: int) -> tuple[int, int]:
        first = self.log_end_offset
        if self.latest_epoch() < epoch:
            self.assign_epoch(epoch, first)
        self.entries.extend((epoch, v) for v in values)
        return first, self.log_end_offset - 1

    def append_as_follower(self, records) -> None:
        for offset, epoch, value in records:
            assert offset == self.log_end_offset, (offset, self.log_end_offset)
            if epoch > self.latest_epoch():
                self.assign_epoch(epoch, offset)
            self.entries.append((epoch, value))

    def read(self, offset: int, max_records: int):
        end = min(self.log_end_offset, offset + max_records)
        return tuple((o, *self.entries[o]) for o in range(offset, end))

    def truncate_to(self, offset: int) -> None:
        # The epoch cache is cut even when no entry is: a follower may hold an epoch that starts
        # at its end (it led without writing), which the leader never knew (Kafka does the same).
        del self.entries[offset:]
        self.epochs = [(e, s) for e, s in self.epochs if s < offset]

    def delete_before(self, offset: int) -> None:
        """DeleteRecords / retention: the log start moves up; the epoch cache keeps the epoch
        that holds the new start (Kafka's truncateFromStart)."""
        self.log_start_offset = max(self.log_start_offset, offset)
        kept = [(e, s) for e, s in self.epochs if s > offset]
        older = [(e, offset) for e, s in self.epochs if s <= offset][-1:]
        self.epochs = older + kept

    advance_log_start = delete_before

    def truncate_fully_and_start_at(self, offset: int) -> None:
        self.entries = [(-1, None)] * offset
        self.epochs = []
        self.log_start_offset = offset
