"""Leader epochs (KIP-101): stamped into every appended batch, kept per partition in
leader-epoch-checkpoint (Kafka's format), trimmed with the log, rebuilt from the batches."""
import os
import shutil
import struct

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import klog
from klog._native.batch import build_batch, read_header
from klog.storage.leader_epoch import FILE, LeaderEpochCache, read_checkpoint

from .helpers import examples

SMALL = {"segment.bytes": 1024, "index.interval.bytes": 100, "retention.ms": -1}


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "topic-0")


def stored_epochs(log):
    """(base offset, partitionLeaderEpoch) of every stored batch, read from the raw bytes."""
    out, offset = [], log.log_start_offset
    while offset < log.log_end_offset:
        view = log.read(offset, max_bytes=1)
        h = read_header(view)
        assert struct.unpack(">i", bytes(view[12:16]))[0] == h.leader_epoch
        out.append((h.base_offset, h.leader_epoch))
        offset = h.last_offset + 1
        view.release()
    return out


def file_text(path):
    with open(os.path.join(path, FILE)) as f:
        return f.read()


# -- the cache alone, against Kafka's LeaderEpochFileCache rules -------------------------------------
def test_end_offset_for_follows_kip101_rules(tmp_path):
    cache = LeaderEpochCache(str(tmp_path), [(1, 0), (3, 100), (6, 250)])
    leo = 300
    assert cache.end_offset_for(6, leo) == (6, 300)        # the latest epoch: the log end
    assert cache.end_offset_for(3, leo) == (3, 250)        # the next epoch's start
    assert cache.end_offset_for(4, leo) == (3, 250)        # largest epoch <= 4 is 3
    assert cache.end_offset_for(5, leo) == (3, 250)
    assert cache.end_offset_for(1, leo) == (1, 100)
    assert cache.end_offset_for(2, leo) == (1, 100)
    assert cache.end_offset_for(0, leo) == (-1, -1)        # below the first: undefined
    assert cache.end_offset_for(7, leo) == (-1, -1)        # above every epoch: undefined
    assert cache.end_offset_for(-1, leo) == (-1, -1)
    assert LeaderEpochCache(str(tmp_path)).end_offset_for(0, 5) == (-1, -1)


def test_assign_keeps_entries_monotonic_and_writes_kafkas_format(tmp_path):
    cache = LeaderEpochCache(str(tmp_path))
    assert cache.assign(0, 0)
    assert not cache.assign(0, 10)          # same epoch, later start: nothing to record
    assert cache.assign(2, 10)
    assert cache.assign(5, 40)
    assert file_text(str(tmp_path)) == "0\n3\n0 0\n2 10\n5 40\n"
    assert cache.assign(3, 20)              # a lower epoch: entries >= it or >= 20 go first
    assert cache.entries == [(0, 0), (2, 10), (3, 20)]
    assert cache.assign(4, 20)              # same start offset: replaces the epoch there
    assert cache.entries == [(0, 0), (2, 10), (4, 20)]
    with pytest.raises(ValueError):
        cache.assign(-1, 0)
    assert read_checkpoint(os.path.join(str(tmp_path), FILE)) == cache.entries


def test_truncate_from_end_and_start(tmp_path):
    cache = LeaderEpochCache(str(tmp_path), [(1, 0), (3, 100), (6, 250)])
    assert not cache.truncate_from_end(251)
    assert cache.truncate_from_end(250)
    assert cache.entries == [(1, 0), (3, 100)]
    assert cache.truncate_from_start(120)   # the epoch holding 120 now starts there
    assert cache.entries == [(3, 120)]
    assert not cache.truncate_from_start(120)
    assert not cache.truncate_from_start(50)
    assert file_text(str(tmp_path)) == "0\n1\n3 120\n"
    assert cache.epoch_for(119) == -1 and cache.epoch_for(120) == 3 and cache.epoch_for(10**9) == 3
    assert cache.start_offset(3) == 120 and cache.start_offset(1) == -1 and cache.start_offset(9) == -1


# -- the log ---------------------------------------------------------------------------------------
def test_appends_are_stamped_with_the_leader_epoch_without_touching_the_callers_buffer(path):
    with klog.Log.open(path, SMALL) as log:
        log.append([b"a", b"b"])
        raw = build_batch([b"c"], None, 1000, None, 0, 0, None)   # leader epoch -1 as sent
        caller = bytearray(raw)
        assert log.become_leader(4)
        base = log.append_batch(caller)
        assert bytes(caller) == raw            # stamped on the way to disk, not in the buffer
        log.append([b"d"])
        assert stored_epochs(log) == [(0, 0), (base, 4), (base + 1, 4)]
        assert log.leader_epochs == [(0, 0), (4, 2)]
        assert list(log.records())[2].value == b"c"   # CRC still valid: stamp is outside it
    assert file_text(path) == "0\n2\n0 0\n4 2\n"


def test_epoch_is_stable_across_reopen_and_never_goes_back(path):
    with klog.Log.open(path, SMALL) as log:
        log.become_leader(3)
        log.append([b"x"] * 5)
    with klog.Log.open(path, SMALL) as log:
        assert log.leader_epoch == 3 and log.leader_epochs == [(3, 0)]
        log.append([b"y"])
        assert stored_epochs(log) == [(0, 3), (5, 3)]
        with pytest.raises(ValueError, match="epochs never go back"):
            log.become_leader(2)
        assert not log.become_leader(3)        # becoming leader again in the same epoch


def test_become_leader_on_an_empty_log_starts_the_epoch_at_the_end(path):
    with klog.Log.open(path) as log:
        assert not os.path.exists(os.path.join(path, FILE))   # a new log writes nothing yet
        log.become_leader(7)
        assert log.end_offset_for_epoch(7) == (7, 0)
    with klog.Log.open(path) as log:
        assert log.leader_epochs == [(7, 0)] and log.leader_epoch == 7


def test_truncate_to_removes_entries_at_or_after_the_new_end(path):
    with klog.Log.open(path, SMALL) as log:
        log.append([b"a"] * 3)
        log.become_leader(1)
        log.append([b"b"] * 3)
        log.become_leader(2)
        log.append([b"c"] * 3)
        assert log.leader_epochs == [(0, 0), (1, 3), (2, 6)]
        log.truncate_to(6)
        assert log.leader_epochs == [(0, 0), (1, 3)]
        assert log.end_offset_for_epoch(1) == (1, 6)
        log.append([b"d"])                     # still leader 2: its epoch starts again at 6
        assert log.leader_epochs == [(0, 0), (1, 3), (2, 6)]
        log.truncate_to(3)
        assert log.leader_epochs == [(0, 0)]
        log.become_leader(4)                   # an epoch that began at the end, no data yet
        assert log.leader_epochs == [(0, 0), (4, 3)]
        assert log.truncate_to(3) == 3         # nothing to cut but the epoch entry (Kafka's rule)
        assert log.leader_epochs == [(0, 0)]
    assert read_checkpoint(os.path.join(path, FILE)) == [(0, 0)]


def test_delete_before_clamps_the_first_start_offset(path):
    with klog.Log.open(path, SMALL) as log:
        for i in range(40):
            if i == 20:
                log.become_leader(1)
            log.append([b"v%03d" % i * 20])
        assert log.leader_epochs == [(0, 0), (1, 20)]
        log.delete_before(10)
        assert log.leader_epochs == [(0, 10), (1, 20)]
        log.delete_before(25)
        assert log.leader_epochs == [(1, 25)]
        assert log.end_offset_for_epoch(0) == (-1, -1)     # epoch 0's records are gone
    assert read_checkpoint(os.path.join(path, FILE)) == [(1, 25)]


@pytest.mark.parametrize("damage", ["missing", "garbage", "not monotonic", "bad count"])
def test_missing_or_damaged_checkpoint_is_rebuilt_from_the_batches(path, damage):
    with klog.Log.open(path, SMALL) as log:
        log.append([b"a"] * 4)
        log.become_leader(2)
        for _ in range(30):
            log.append([b"b" * 50])
        log.become_leader(5)
        log.append([b"c"])
        expected = log.leader_epochs
        assert len(log.segments) > 1
    f = os.path.join(path, FILE)
    if damage == "missing":
        os.unlink(f)
    else:
        with open(f, "w") as out:
            out.write({"garbage": "\x00\x01zz\n",
                       "not monotonic": "0\n2\n5 0\n2 4\n",
                       "bad count": "0\n7\n0 0\n"}[damage])
    with klog.Log.open(path, SMALL) as log:
        assert log.leader_epochs == expected == [(0, 0), (2, 4), (5, 34)]
        assert log.leader_epoch == 5
    assert read_checkpoint(f) == expected


def test_entries_past_a_torn_tail_are_trimmed_on_open(path, tmp_path):
    log = klog.Log.open(path, SMALL)
    log.append([b"a"] * 3)
    log.flush()
    log.become_leader(1)
    log.append([b"b"] * 3)
    log.become_leader(2)
    log.append([b"c"] * 3)
    assert log.leader_epochs == [(0, 0), (1, 3), (2, 6)]
    snap = str(tmp_path / "snap")      # what kill -9 leaves: no clean-shutdown marker
    os.makedirs(snap)
    for name in os.listdir(path):
        if name != ".lock":
            shutil.copyfile(os.path.join(path, name), os.path.join(snap, name))
    log.close()
    # The crash tore the unflushed batch of epoch 1 (and lost the one of epoch 2 after it).
    seg = os.path.join(snap, "00000000000000000000.log")
    with open(seg, "rb") as f:
        data = f.read()
    first = struct.unpack(">i", data[8:12])[0] + 12
    with open(seg, "r+b") as f:
        f.truncate(first + 10)
    with klog.Log.open(snap, SMALL) as log:
        assert log.log_end_offset == 3
        # (1, 3) stays: epoch 1 began at the end, with no data left; (2, 6) is past the end
        assert log.leader_epochs == [(0, 0), (1, 3)]
        log.append([b"d"])
        assert stored_epochs(log) == [(0, 0), (3, 1)]
    assert read_checkpoint(os.path.join(snap, FILE)) == [(0, 0), (1, 3)]


# -- property: the cache always agrees with the epochs stamped in the batches ------------------------
OPS = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(1, 4)),
    st.tuples(st.just("lead"), st.integers(0, 2)),          # become leader of epoch + n
    st.tuples(st.just("truncate"), st.integers(1, 8)),       # truncate_to(end - n)
    st.tuples(st.just("delete_before"), st.integers(1, 8)),  # delete_before(start + n)
    st.tuples(st.just("roll"), st.none()),
    st.tuples(st.just("reopen"), st.none()),
    st.tuples(st.just("lose_checkpoint"), st.none()),        # reopen without the file
), min_size=4, max_size=30)


def check_against_batches(log):
    entries = log.leader_epochs
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(entries, entries[1:])), entries
    if entries:
        assert log.log_start_offset <= entries[0][1] and entries[-1][1] <= log.log_end_offset
    stamped = stored_epochs(log)
    assert [e for _, e in stamped] == sorted(e for _, e in stamped)   # epochs never go back
    for base, epoch in stamped:
        first = max(base, log.log_start_offset)   # a batch may straddle the log start
        assert log.epoch_for_offset(first) == epoch, (base, epoch, entries)
        # OffsetForLeaderEpoch: the epoch that wrote a batch ends after it
        assert log.end_offset_for_epoch(epoch)[0] == epoch
        assert log.end_offset_for_epoch(epoch)[1] > first


@examples(40)
@given(ops=OPS)
@example(ops=[("append", 3), ("lead", 1), ("append", 3), ("truncate", 4), ("append", 1)])
@example(ops=[("append", 2), ("lead", 2), ("roll", None), ("append", 2), ("delete_before", 3),
              ("reopen", None), ("lose_checkpoint", None), ("lead", 1), ("append", 1)])
def test_cache_agrees_with_the_stamped_batches(tmp_path_factory, ops):
    path = str(tmp_path_factory.mktemp("prop") / "p-0")
    log = klog.Log.open(path, SMALL)
    try:
        for op, arg in ops:
            if op == "append":
                log.append([b"v" * 30] * arg)
            elif op == "lead":
                log.become_leader(log.leader_epoch + arg)
            elif op == "truncate":
                log.truncate_to(max(0, log.log_end_offset - arg))
            elif op == "delete_before":
                log.delete_before(min(log.log_end_offset, log.log_start_offset + arg))
            elif op == "roll":
                log.roll()
            else:
                before = log.leader_epochs
                log.close()
                if op == "lose_checkpoint" and os.path.exists(os.path.join(path, FILE)):
                    os.unlink(os.path.join(path, FILE))
                log = klog.Log.open(path, SMALL)
                if op == "reopen":
                    assert log.leader_epochs == before
            check_against_batches(log)
    finally:
        log.close()
