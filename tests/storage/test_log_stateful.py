"""An op-fuzzer for klog.Log (redpanda's storage op-fuzzer, with hypothesis' stateful testing):
random appends, reads, rolls, flushes, reopens (clean, unclean, crashed), truncations, deletions
and retention against a model that is just a list of batches.

Two kinds of unclean stop:
- ``reopen_without_marker``: close, then delete ``.clean-shutdown``. That only exercises the
  recovery code on a directory a clean close already tidied: everything fsynced, the checkpoint's
  recovery point at the end, the active segment sealed and trimmed. It is not a crash.
- ``crash``: copy the directory of the *open* log and open the copy. That is what a process
  killed between two operations leaves (every pwrite is in the page cache, so the copy sees it):
  the active segment unsealed, with space reserved past its data, indexes not trimmed, and a
  recovery point that lags. A power loss (unflushed pages lost, torn writes) is tests/faults'.
Both must recover to exactly the model's content, because every append completed.
"""
import bisect
import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import klog
from klog import OffsetOutOfRangeError

from .helpers import SLOW, specs

TS = st.integers(1_000, 1_040)


class LogMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.root = tempfile.mkdtemp(prefix="klog-fuzz-")
        self.generation = 0
        self.path = self._new_path()
        self.log = None
        self.config = None
        self.batches = []      # (base, [Record]) of every batch with an offset >= start
        self.start = 0
        self.end = 0

    def _new_path(self):
        self.generation += 1
        return os.path.join(self.root, f"p-{self.generation}")

    # -- the model -------------------------------------------------------------------------
    def model_records(self, frm=None):
        frm = self.start if frm is None else frm
        return [r for _, recs in self.batches for r in recs if r.offset >= frm]

    def holder(self, offset):
        """Index in self.batches of the batch holding ``offset``."""
        i = bisect.bisect_right([b for b, _ in self.batches], offset) - 1
        base, recs = self.batches[i]
        assert base <= offset < base + len(recs)
        return i

    def move_start(self, start):
        self.start = start
        self.batches = [(b, recs) for b, recs in self.batches if b + len(recs) > start]

    def added(self, base, spec):
        assert base == self.end
        self.batches.append((base, spec.records(base)))
        self.end += len(spec)

    # -- setup -------------------------------------------------------------------------------
    @initialize(retention_bytes=st.sampled_from([-1, 0, 1500, 5000]),
                preallocate=st.booleans())
    def open_log(self, retention_bytes, preallocate):
        self.config = {"segment.bytes": 2048, "index.interval.bytes": 128,
                       "retention.bytes": retention_bytes, "retention.ms": -1,
                       "max.message.bytes": 16384, "preallocate": preallocate}
        self.log = klog.Log.open(self.path, self.config)

    def teardown(self):
        if self.log is not None:
            self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- writing -----------------------------------------------------------------------------
    @rule(spec=specs(max_records=20, ts=TS))
    def append(self, spec):
        self.added(spec.append_to(self.log), spec)

    @rule(spec=specs(max_records=20, ts=TS), claimed=st.integers(0, 1 << 40))
    def append_batch(self, spec, claimed):
        # the base offset a client writes is ignored: the log assigns its own
        self.added(self.log.append_batch(spec.encode(base_offset=claimed)), spec)

    @rule()
    def roll(self):
        before = self.log.segments
        self.log.roll()
        after = self.log.segments
        assert after[-1] == self.end or after == before
        assert after[:len(before) - 1] == before[:-1]

    @rule()
    def flush(self):
        self.log.flush()
        assert self.log.recovery_point == self.end

    # -- reading -----------------------------------------------------------------------------
    @rule(data=st.data(), max_bytes=st.sampled_from([1, 300, 2000, 1 << 20]))
    def read(self, data, max_bytes):
        offset = data.draw(st.integers(self.start, self.end), label="offset")
        view = self.log.read(offset, max_bytes)
        try:
            if offset == self.end:
                assert view.nbytes == 0
                return
            i = self.holder(offset)
            assert klog.read_header(view).base_offset == self.batches[i][0]
            got = klog.decode_batch(view)
            n = 0
            want = []
            while len(want) < len(got):
                want += self.batches[i + n][1]
                n += 1
            assert got == want
            assert n == 1 or view.nbytes <= max_bytes
        finally:
            view.release()

    @rule(past=st.integers(1, 3))
    def read_out_of_range(self, past):
        for bad in (self.end + past, self.start - past):
            try:
                self.log.read(bad)
            except OffsetOutOfRangeError:
                pass
            else:
                raise AssertionError(f"read({bad}) outside [{self.start}, {self.end}] did not raise")

    @rule(data=st.data())
    def records_from(self, data):
        offset = data.draw(st.integers(self.start, self.end), label="offset")
        assert list(self.log.records(offset)) == self.model_records(offset)

    @rule(t=st.integers(990, 1_050))
    def offset_for_time(self, t):
        want = next((r.offset for r in self.model_records() if r.timestamp >= t), None)
        assert self.log.offset_for_time(t) == want

    # -- reopening ---------------------------------------------------------------------------
    @rule()
    def reopen_clean(self):
        self.log.close()
        assert os.path.exists(os.path.join(self.path, ".clean-shutdown"))
        self.log = klog.Log.open(self.path, self.config)

    @rule()
    def reopen_without_marker(self):
        self.log.close()
        os.unlink(os.path.join(self.path, ".clean-shutdown"))
        self.log = klog.Log.open(self.path, self.config)

    @rule()
    def crash(self):
        copy = self._new_path()
        # The flush lock keeps the background flush of a rolled segment from rewriting
        # log.checkpoint mid-copy (a real crash has no such race: files just stop changing).
        with self.log._flush_lock:
            shutil.copytree(self.path, copy, ignore=shutil.ignore_patterns(".lock"))
        assert not os.path.exists(os.path.join(copy, ".clean-shutdown"))
        self.log.close()
        shutil.rmtree(self.path)
        self.path = copy
        self.log = klog.Log.open(self.path, self.config)

    # -- removing ----------------------------------------------------------------------------
    @rule(data=st.data())
    def truncate_to(self, data):
        offset = data.draw(st.integers(max(0, self.start - 3), self.end + 3), label="offset")
        got = self.log.truncate_to(offset)
        if offset >= self.end:
            pass
        elif offset <= self.start:
            self.start = self.end = offset
            self.batches = []
        else:
            base = self.batches[self.holder(offset)][0]
            if base < self.start:       # that batch holds the log start too: nothing is left
                self.end = self.start
                self.batches = []
            else:
                self.end = base
                self.batches = [(b, r) for b, r in self.batches if b < base]
        assert got == self.end

    @rule(data=st.data())
    def delete_before(self, data):
        offset = data.draw(st.integers(self.start - 2, self.end + 2), label="offset")
        if offset < 0 or offset > self.end:
            try:
                self.log.delete_before(offset)
            except OffsetOutOfRangeError:
                return
            raise AssertionError(f"delete_before({offset}) outside [0, {self.end}] did not raise")
        got = self.log.delete_before(offset)
        if offset > self.start:
            self.move_start(offset)
        assert got == self.start

    @precondition(lambda self: self.config["retention.bytes"] >= 0)
    @rule()
    def enforce_retention(self):
        segments = self.log.segments
        # data bytes per segment: sealed ones are trimmed to their data; the active one's file
        # may hold reserved space, so it gets the rest of the log's size
        sizes = [os.path.getsize(os.path.join(self.path, f"{b:020d}.log")) for b in segments[:-1]]
        sizes.append(self.log.size - sum(sizes))
        limit, total, doomed = self.config["retention.bytes"], sum(sizes), 0
        for size in sizes:      # Kafka: oldest first, while what is left stays >= the limit
            if size == 0 or total - size < limit:
                break
            total -= size
            doomed += 1
        assert self.log.enforce_retention() == doomed
        if doomed == len(segments):
            assert self.log.segments == [self.end]
            self.move_start(self.end)
        else:
            assert self.log.segments == segments[doomed:]
            self.move_start(max(self.start, segments[doomed]))

    # -- invariants --------------------------------------------------------------------------
    @invariant()
    def matches_the_model(self):
        if self.log is None:
            return
        assert (self.log.log_start_offset, self.log.log_end_offset) == (self.start, self.end)
        assert list(self.log.records()) == self.model_records()
        segments = self.log.segments
        assert segments == sorted(set(segments))
        assert segments[0] <= self.start and segments[-1] <= self.end
        assert self.log.recovery_point <= self.end


TestLog = LogMachine.TestCase
TestLog.settings = settings(
    max_examples=500 if SLOW else 50,
    stateful_step_count=100 if SLOW else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)
