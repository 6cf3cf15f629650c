"""Op-fuzzer for compaction (redpanda's idea, with hypothesis' stateful testing): random keyed
appends and tombstones, rolls, cleans at random times (full passes, or from the cleaner checkpoint
of the last complete pass, as the broker's log cleaner runs them) and reopens (clean or after a
kill), checked after every step against a model that remembers every record ever written."""
import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from klog import Log, Record
from klog.storage import cleaner

from .helpers import keyed_view, kill

SLOW = os.environ.get("KLOG_SLOW_TESTS") == "1"
DELETE_RETENTION_MS = 60
CONFIG = {"cleanup.policy": "compact", "segment.bytes": 1024,
          "delete.retention.ms": DELETE_RETENTION_MS}

KEYS = [b"", b"a", b"b", b"c", b"dd", b"e" * 30]
record = st.tuples(st.sampled_from(KEYS),
                   st.one_of(st.none(), st.binary(max_size=30),
                             st.integers(0, 300).map(lambda n: b"v" * n)))


class CompactionMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="klog-compaction-")
        self.log = Log.open(self.dir, CONFIG)
        self.written = []   # every record ever appended; index = offset
        self.clock = 1_000
        self.cleaned = False
        self.first_dirty = None   # the cleaner checkpoint: dirty_end of the last complete pass

    def teardown(self):
        if not self.log.closed:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(records=st.lists(record, min_size=1, max_size=6),
          codec=st.sampled_from([None, "lz4", "zstd"]), tick=st.integers(0, 25))
    def append(self, records, codec, tick):
        self.clock += tick
        keys = [k for k, _ in records]
        values = [v for _, v in records]
        base = self.log.append(values, keys=keys, timestamps=self.clock, compression=codec)
        assert base == len(self.written)
        self.written += [Record(base + i, self.clock, k, v, ()) for i, (k, v) in enumerate(records)]

    @rule()
    def roll(self):
        self.log.roll()

    @rule(ahead=st.integers(0, 2 * DELETE_RETENTION_MS), incremental=st.booleans())
    def clean(self, ahead, incremental):
        now = self.clock + ahead
        end = self.log.log_end_offset
        if incremental:
            result = cleaner.clean(self.log, now, self.first_dirty)
        else:
            result = self.log.clean(now=now)
        assert self.log.log_end_offset == end
        if result.dirty_end < 0:
            return
        assert not result.aborted
        dirty_end = self.first_dirty = result.dirty_end
        assert dirty_end == self.log.segments[-1]  # every sealed segment, never the active one
        latest = {r.key: r.offset for r in self.written[:dirty_end]}
        for r in self.log.records():
            if r.offset < dirty_end:
                # what a pass leaves below the active segment: the latest record per key, and
                # tombstones only while delete.retention.ms has not passed
                assert latest[r.key] == r.offset, (r, latest[r.key])
                if r.value is None:
                    assert now - r.timestamp < DELETE_RETENTION_MS
            # at or above the dirty end nothing was ever cleaned: every record is there
        assert ([r.offset for r in self.log.records(dirty_end)]
                == list(range(dirty_end, end)))
        # One listing: a background checkpoint may add and remove its .tmp file between two.
        left = [n for n in os.listdir(self.dir) if n.endswith((".cleaned", ".swap"))]
        assert left == []
        self.cleaned = True

    @precondition(lambda self: self.cleaned)
    @rule(crash=st.booleans())
    def reopen(self, crash):
        if crash:
            kill(self.log)
        else:
            self.log.close()
        self.log = Log.open(self.dir, CONFIG)

    @invariant()
    def reads_match_the_model(self):
        got = list(self.log.records())
        offsets = [r.offset for r in got]
        assert offsets == sorted(set(offsets))
        for r in got:
            assert self.written[r.offset] == r  # same key, value, timestamp at the same offset
        assert keyed_view(got) == keyed_view(self.written)
        assert self.log.log_end_offset == len(self.written)


CompactionMachine.TestCase.settings = settings(
    max_examples=300 if SLOW else 40, stateful_step_count=40 if SLOW else 25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
test_compaction_model = CompactionMachine.TestCase
