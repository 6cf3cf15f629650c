"""Delivery tracking: which fetched records are done, and how far a partition may be committed.

A partition's commit point is the offset of its first record not yet done (its outputs not yet
acknowledged, or still being retried): the committed offset never passes a record in flight,
whatever order concurrent lanes finish in. In-memory only: after a crash the group restarts from
the last commit and records after it run again (at-least-once).
"""
from collections import deque


class OffsetTracker:
    """Offsets of one partition in the order they were fetched; ``done`` marks some;
    ``advance`` moves the commit point past the done prefix. One thread (the poll loop)."""
    __slots__ = ("pending", "finished", "next_offset", "committed")

    def __init__(self):
        self.pending = deque()
        self.finished = set()
        self.next_offset = None   # the commit point: first offset not done (None: nothing seen)
        self.committed = None     # the last offset committed to the group

    def add(self, offset):
        self.pending.append(offset)

    def done(self, offset):
        pending = self.pending
        if pending and pending[0] == offset:  # the common case: in order
            pending.popleft()
            self.next_offset = offset + 1
            finished = self.finished
            while pending and pending[0] in finished:
                o = pending.popleft()
                finished.discard(o)
                self.next_offset = o + 1
        else:
            self.finished.add(offset)

    def in_flight(self):
        return len(self.pending)

    def to_commit(self):
        """The offset to commit if it moved since the last commit, else None."""
        n = self.next_offset
        return n if n is not None and n != self.committed else None


class PrefixTracker:
    """The commit point of a partition whose records finish in offset order (``ordering:
    partition``: one lane, one chunk in flight at a time): the offset after the last record
    done. Every record in flight comes after it, so it never passes one."""
    __slots__ = ("next_offset", "committed", "pending")

    def __init__(self):
        self.next_offset = None
        self.committed = None
        self.pending = ()

    def done_through(self, offset):
        self.next_offset = offset + 1

    def to_commit(self):
        n = self.next_offset
        return n if n is not None and n != self.committed else None


class Lane:
    """Records that must be processed in order (one partition, or one key of a partition with
    ``ordering: key``). At most one worker holds a lane at a time (``busy``); a lane backing
    off (``not_before``) holds back only its own records. ``attempts``: failed attempts of the
    record at the head."""
    __slots__ = ("tp", "id", "queue", "busy", "not_before", "attempts")

    def __init__(self, tp, lane_id=None):
        self.tp = tp
        self.id = tp if lane_id is None else lane_id
        self.queue = deque()
        self.busy = False
        self.not_before = 0.0
        self.attempts = 0
