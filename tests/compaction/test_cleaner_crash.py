"""Crash safety of the cleaner: whatever moment the process dies, the reopened log is valid, every
group of segments is all-old or all-new, and the key -> latest value view is unchanged."""
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import klog

from klog import Log, LogOfflineError
from klog.storage import cleaner

from .helpers import COMPACT, keyed_view, kill, temp_files

NOW = 10_000_000
CONFIG = dict(COMPACT, **{"segment.bytes": 2048})


class SimulatedCrash(BaseException):
    """Not an Exception: the cleaner's error handling must not run, as after a real kill."""


class CrashAt:
    """Count the cleaner's file-system mutations (renames, and unlinks of files that exist) and
    the first batch written into each cleaned segment; die before the ``target``-th one. Target
    None: just count. So the sweep below visits every distinct on-disk state of a pass."""
    OPS = ("rename", "replace", "unlink")

    def __init__(self, target=None):
        self.target = target
        self.count = 0
        self.trace = []

    def _hit(self, what):
        if self.count == self.target:
            raise SimulatedCrash(what)
        self.trace.append(what)
        self.count += 1

    def __enter__(self):
        self.saved = {name: getattr(os, name) for name in self.OPS}
        self.saved_append = cleaner.CleanedSegment.append
        for name, fn in self.saved.items():
            def wrapper(*args, _fn=fn, _name=name, **kw):
                if os.path.exists(args[0]):
                    self._hit(f"{_name} {os.path.basename(str(args[0]))}")
                return _fn(*args, **kw)
            setattr(os, name, wrapper)

        def append(seg, *args, _fn=self.saved_append, **kw):
            if seg.size == 0:
                self._hit(f"write {os.path.basename(seg.path('.log'))}")
            return _fn(seg, *args, **kw)
        cleaner.CleanedSegment.append = append
        return self

    def __exit__(self, *exc):
        for name, fn in self.saved.items():
            setattr(os, name, fn)
        cleaner.CleanedSegment.append = self.saved_append


def make_pristine(path):
    """A closed log with several cleaning groups: 50 keys, each written three times in a row, plus
    tombstones, over ~10 segments of 2 KiB."""
    with Log.open(path, CONFIG) as log:
        for i in range(150):
            key = b"k%03d" % (i // 3)
            value = None if i % 23 == 22 else b"v%d" % i * 12
            log.append([value], keys=[key], timestamps=1_000 + i)
        log.roll()
        return list(log.records()), log.segments


def ranges_of(groups, bases):
    """[first, end) offsets of each group: up to the base of the segment after its last one."""
    return [(first, bases[bases.index(last) + 1]) for first, last in groups]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    old, bases = make_pristine(root / "log")
    shutil.copytree(root / "log", root / "dry")
    with Log.open(root / "dry", CONFIG) as log, CrashAt() as counter:
        result = log.clean(now=NOW)
    with Log.open(root / "dry", CONFIG) as log:
        new = list(log.records())
    assert len(result.groups) >= 2 and result.segments_rewritten >= 6
    return root / "log", old, new, bases, result, counter


def test_die_before_every_file_operation(pristine, tmp_path):
    source, old, new, bases, result, counter = pristine
    assert counter.count > 20
    ranges = ranges_of(result.groups, bases)
    outcomes = set()
    for target in range(counter.count + 1):
        path = tmp_path / f"crash-{target}"
        shutil.copytree(source, path)
        log = Log.open(path, CONFIG)
        with CrashAt(target):
            if target < counter.count:
                with pytest.raises(SimulatedCrash):
                    log.clean(now=NOW)
            else:
                log.clean(now=NOW)
        kill(log)
        with Log.open(path, CONFIG) as log:
            got = list(log.records())
            assert temp_files(path) == []
            assert log.log_end_offset == old[-1].offset + 1
        where = f"died before step {target}: {counter.trace[target - 1:target + 1]}"
        assert keyed_view(got) == keyed_view(old), where
        state = []
        for first, end in ranges:
            part = [r for r in got if first <= r.offset < end]
            if part == [r for r in old if first <= r.offset < end]:
                state.append("old")
            else:
                assert part == [r for r in new if first <= r.offset < end], where
                state.append("new")
        outcomes.add(tuple(state))
        shutil.rmtree(path)
    # the sweep saw the groups flip one by one, from all-old to all-new
    assert ("old",) * len(ranges) in outcomes and ("new",) * len(ranges) in outcomes
    assert len(outcomes) == len(ranges) + 1


def test_error_before_commit_leaves_log_online_and_unchanged(pristine, tmp_path, monkeypatch):
    source, old, new, *_ = pristine
    shutil.copytree(source, tmp_path / "log")
    log = Log.open(tmp_path / "log", CONFIG)
    real = cleaner._commit_swap

    def half_commit(directory, first, last):
        os.rename(os.path.join(directory, cleaner.cleaned_name(first, ".index")),
                  os.path.join(directory, cleaner.swap_name(first, ".index", last)))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cleaner, "_commit_swap", half_commit)
    with pytest.raises(OSError, match="No space"):
        log.clean(now=NOW)
    assert temp_files(log.path) == []
    assert list(log.records()) == old
    monkeypatch.setattr(cleaner, "_commit_swap", real)
    log.append([b"after"], keys=[b"x"])
    log.clean(now=NOW)
    log.close()
    with Log.open(tmp_path / "log", CONFIG) as log:
        assert list(log.records())[:-1] == new


def test_error_after_commit_takes_log_offline_and_reopen_completes(pristine, tmp_path,
                                                                   monkeypatch):
    source, old, new, bases, result, _ = pristine
    shutil.copytree(source, tmp_path / "log")
    log = Log.open(tmp_path / "log", CONFIG)

    def fail(directory, first, last):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(cleaner, "_finish_swap", fail)
    with pytest.raises(OSError, match="Input/output"):
        log.clean(now=NOW)
    with pytest.raises(LogOfflineError, match="reopen the log"):
        log.append([b"x"], keys=[b"x"])
    # readers still see the old, consistent segments (their files are gone, the mappings live)
    assert list(log.records()) == old
    log.close()  # offline: no clean-shutdown marker, so the next open recovers
    monkeypatch.undo()
    with Log.open(tmp_path / "log", CONFIG) as log:
        got = list(log.records())
        assert temp_files(log.path) == []
        assert keyed_view(got) == keyed_view(old)
        # the first group had committed: it is all new; the pass stopped there
        (first, end), *_ = ranges_of(result.groups, bases)
        assert [r for r in got if r.offset < end] == [r for r in new if r.offset < end]
        assert [r for r in got if r.offset >= end] == [r for r in old if r.offset >= end]


# -- SIGKILL at random moments ---------------------------------------------------------------------
WORKLOAD = textwrap.dedent("""
    def record_for(i):
        key = b"k%02d" % ((i * 7) % 23)
        value = None if i % 11 == 10 else b"value-%d" % i * (1 + i % 5)
        return key, value, 1_000 + i
""")
CHILD = WORKLOAD + textwrap.dedent("""
    import sys
    from klog import Log
    log = Log.open(sys.argv[1], {config!r})
    i = 0
    print("ready", flush=True)
    while True:
        for _ in range(60):
            key, value, ts = record_for(i)
            log.append([value], keys=[key], timestamps=ts)
            i += 1
        log.roll()
        log.clean(now=1_000 + i)
""")
KILL_CONFIG = dict(COMPACT, **{"segment.bytes": 1024, "delete.retention.ms": 300})


def test_sigkill_during_append_roll_clean_loop(tmp_path):
    namespace = {}
    exec(WORKLOAD, namespace)
    record_for = namespace["record_for"]
    rng = random.Random(int(os.environ.get("KLOG_SEED", "1234")))
    rounds = 40 if os.environ.get("KLOG_SLOW_TESTS") == "1" else 8
    # The klog this test imported (in-place build or installed), not the source tree's.
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(klog.__file__)))
    caught_mid_clean = 0
    for n in range(rounds):
        path = str(tmp_path / f"round-{n}")
        child = subprocess.Popen([sys.executable, "-c", CHILD.format(config=KILL_CONFIG), path],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert child.stdout.readline() == b"ready\n", child.stderr.read().decode()
        time.sleep(rng.uniform(0.05, 0.5))
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()
        caught_mid_clean += bool(temp_files(path))
        with Log.open(path, KILL_CONFIG) as log:
            got = list(log.records())
            end = log.log_end_offset
            assert temp_files(path) == []
        written = [record_for(i) for i in range(end)]
        offsets = [r.offset for r in got]
        assert offsets == sorted(set(offsets))
        for r in got:
            assert (r.key, r.value, r.timestamp) == written[r.offset]
        model = {}
        for key, value, _ in written:
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        assert keyed_view(got) == model, f"round {n}"
        shutil.rmtree(path)
    print(f"\n{rounds} SIGKILL rounds, {caught_mid_clean} with cleaner temp files on disk "
          "at the kill")
