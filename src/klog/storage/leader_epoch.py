"""LeaderEpochCache: which leader epoch wrote which offsets of one partition (KIP-101).

An ordered list of ``(epoch, start_offset)`` entries, both strictly increasing: epoch ``e`` owns
the offsets from its start offset up to the next entry's start offset (the log end offset for
the latest epoch). The leader stamps its epoch into every batch it appends (partitionLeaderEpoch,
bytes 12..15, outside the CRC), so the entries can always be rebuilt from the batch headers.

On disk: ``leader-epoch-checkpoint`` in the partition directory, Kafka's
LeaderEpochCheckpointFile format::

    0            version
    2            number of entries
    0 0          epoch start_offset
    3 150

Written atomically (temp, fsync, rename, fsync dir) whenever an entry is added or removed, so
after a crash the file holds the old or the new list. A new entry is written before the batch
that starts it, so the file never lacks an epoch the log holds; it may hold entries past a torn
log tail, which the owning Log trims on open (truncate_from_end). A missing or unreadable file
is rebuilt from the batch headers. Not thread-safe: the owning Log calls it under its lock.
"""
import bisect
import os

from klog.storage.checkpoint import CheckpointFormatError, read_rows, write_rows

FILE = "leader-epoch-checkpoint"
UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


class LeaderEpochCache:
    def __init__(self, directory, entries=()):
        self.path = os.path.join(directory, FILE)
        self._epochs = [e for e, _ in entries]
        self._starts = [s for _, s in entries]

    # -- loading ------------------------------------------------------------------------------
    @classmethod
    def load(cls, directory, batch_epochs):
        """The cache of ``directory`` from its checkpoint file. When the file is missing or
        damaged, ``batch_epochs()`` (an iterable of (epoch, base_offset) per batch, oldest
        first; batches without an epoch say -1) rebuilds it and the file is rewritten.
        Returns (cache, rebuilt)."""
        cache = cls(directory)
        entries = read_checkpoint(cache.path)
        if entries is not None:
            for epoch, start in entries:
                cache._assign(epoch, start)
            return cache, False
        for epoch, base in batch_epochs():
            if epoch >= 0 and epoch > cache.latest_epoch:
                cache._assign(epoch, base)
        if cache._epochs or os.path.exists(cache.path):
            cache._write()   # a new, empty partition needs no file (and no fsync) yet
        return cache, True

    # -- queries --------------------------------------------------------------------------------
    @property
    def entries(self):
        """[(epoch, start_offset)], oldest first."""
        return list(zip(self._epochs, self._starts))

    @property
    def latest_epoch(self):
        """The newest epoch, or -1 when there is none."""
        return self._epochs[-1] if self._epochs else UNDEFINED_EPOCH

    def end_offset_for(self, epoch, log_end_offset):
        """``(epoch', end_offset)`` for a requested epoch, as Kafka's LeaderEpochFileCache
        .endOffsetFor answers OffsetForLeaderEpoch: epoch' is the largest known epoch <= the
        requested one and end_offset the start of the first epoch above it (the log end offset
        for the latest epoch). An epoch above every known one, below the first known one, or
        -1 gives (-1, -1): no epoch of ours can vouch for the asker's records (KIP-101's rule,
        the one klog.cluster's replica model assumes; Kafka's code since KIP-279 answers a
        too-old epoch with (requested, first start offset) instead)."""
        if epoch == UNDEFINED_EPOCH or not self._epochs:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if epoch == self._epochs[-1]:
            return epoch, log_end_offset
        higher = bisect.bisect_right(self._epochs, epoch)
        if higher == len(self._epochs) or higher == 0:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        return self._epochs[higher - 1], self._starts[higher]

    def start_offset(self, epoch):
        """Where ``epoch`` starts, or -1 when the cache does not hold it."""
        i = bisect.bisect_left(self._epochs, epoch)
        return self._starts[i] if i < len(self._epochs) and self._epochs[i] == epoch else -1

    def epoch_for(self, offset):
        """The epoch that wrote ``offset`` (the latest epoch for the log end offset), or -1."""
        i = bisect.bisect_right(self._starts, offset)
        return self._epochs[i - 1] if i else UNDEFINED_EPOCH

    # -- changes --------------------------------------------------------------------------------
    def assign(self, epoch, start_offset):
        """Record that ``epoch`` starts at ``start_offset`` (Kafka's assign): nothing changes for
        the latest epoch at the same or a later start; entries that would break monotonicity
        (an epoch >= this one, or a start >= this one) are dropped first, as a follower does
        when the leader's log replaced its tail. Writes the file when something changed."""
        if epoch < 0 or start_offset < 0:
            raise ValueError(f"invalid leader epoch entry ({epoch}, {start_offset})")
        if self._assign(epoch, start_offset):
            self._write()
            return True
        return False

    def _assign(self, epoch, start):
        if self._epochs and epoch == self._epochs[-1] and start >= self._starts[-1]:
            return False
        while self._epochs and (self._epochs[-1] >= epoch or self._starts[-1] >= start):
            self._epochs.pop()
            self._starts.pop()
        self._epochs.append(epoch)
        self._starts.append(start)
        return True

    def truncate_from_end(self, end_offset):
        """Remove the entries starting at or after ``end_offset`` (the log was cut there)."""
        n = len(self._starts)
        while self._starts and self._starts[-1] >= end_offset:
            self._epochs.pop()
            self._starts.pop()
        if len(self._starts) != n:
            self._write()
            return True
        return False

    def truncate_from_start(self, start_offset):
        """The log now starts at ``start_offset``: entries wholly below it go, and the epoch
        holding it starts there (Kafka's truncateFromStart)."""
        i = bisect.bisect_right(self._starts, start_offset)
        if i == 0 or (i == 1 and self._starts[0] == start_offset):
            return False
        keep_epoch = self._epochs[i - 1]
        del self._epochs[:i], self._starts[:i]
        self._epochs.insert(0, keep_epoch)
        self._starts.insert(0, start_offset)
        self._write()
        return True

    def clear(self):
        if self._epochs:
            self._epochs.clear()
            self._starts.clear()
            self._write()

    def _write(self):
        write_checkpoint(self.path, self.entries)

    def __repr__(self):
        return f"<LeaderEpochCache {self.entries}>"


def read_checkpoint(path):
    """[(epoch, start_offset)] from a leader-epoch-checkpoint file, or None when it is missing
    or not a well-formed, monotonic checkpoint (the caller rebuilds it from the batches)."""
    try:
        rows = read_rows(path, 2)
        if rows is None:
            return None
        entries = []
        for epoch, start in ((int(e), int(s)) for e, s in rows):
            if epoch < 0 or start < 0 or (entries and (epoch <= entries[-1][0]
                                                       or start < entries[-1][1])):
                return None
            entries.append((epoch, start))
        return entries
    except (CheckpointFormatError, ValueError):
        return None


def write_checkpoint(path, entries):
    write_rows(path, entries)
