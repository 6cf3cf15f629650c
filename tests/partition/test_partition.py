"""klog.partition.Partition: reads bounded by the high watermark, acks on a single node and on a
replicated leader, follower appends and truncation, leadership changes."""
import os
import tempfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

import klog
from klog.errors import (
    CorruptRecordError, FencedLeaderEpochError, NotEnoughReplicasError, NotLeaderOrFollowerError,
    OffsetOutOfRangeError,
)
from klog.partition import (
    FOLLOWER, LEADER, LOG_END, READ_COMMITTED, READ_UNCOMMITTED, Partition,
)
from storage.helpers import examples

SMALL = {"segment.bytes": 2048}


@pytest.fixture
def open_partition(tmp_path):
    opened = []

    def make(name="p", config=SMALL, epoch=0):
        part = Partition.open("t", 0, str(tmp_path / name), config, leader_epoch=epoch)
        opened.append(part)
        return part

    yield make
    for part in opened:
        part.close()


def offsets_in(view):
    """Every record offset in a read."""
    return [r.offset for r in klog.decode_batch(bytes(view))]


def fill(part, batches, per_batch=3):
    for i in range(batches):
        part.append([b"v%d-%d" % (i, j) for j in range(per_batch)])


# -- single node: the HW is the log end --------------------------------------------------------
def test_single_node_high_watermark_is_the_log_end(open_partition):
    part = open_partition()
    assert (part.role, part.high_watermark, part.log_end_offset) == (LEADER, 0, 0)
    fill(part, 4)
    assert part.high_watermark == part.log_end_offset == part.last_stable_offset == 12
    assert offsets_in(part.read(0, 1 << 20)) == list(range(12))
    state = part.describe()
    assert (state.high_watermark, state.log_end_offset, state.leader_epoch) == (12, 12, 0)


def test_single_node_acks_all_is_answered_at_the_append(open_partition):
    part = open_partition()
    batch = klog.encode_batch([b"a", b"b"])
    info = part.append_records(batch, acks=-1)
    assert (info.base_offset, info.last_offset, info.duplicate) == (0, 1, False)
    fut = part.high_watermark_future(info.last_offset + 1)
    assert fut.done() and fut.result() == 2


def test_min_insync_replicas_does_not_apply_to_a_single_node(open_partition):
    """A single broker is its own ISR whatever min.insync.replicas says (unchanged behaviour)."""
    part = open_partition(config={"min.insync.replicas": 2})
    assert part.append_records(klog.encode_batch([b"a"]), acks=-1).base_offset == 0


# -- a replicated leader: the HW moves when replication says -------------------------------------
def test_reads_stop_at_the_high_watermark(open_partition):
    part = open_partition()
    fill(part, 5)                                  # 15 records, batches of 3
    part.become_leader(1, high_watermark=6)        # followers have 0..5
    assert (part.high_watermark, part.log_end_offset) == (6, 15)
    assert offsets_in(part.read(0, 1 << 20)) == list(range(6))
    assert offsets_in(part.read(3, 1 << 20, READ_COMMITTED)) == [3, 4, 5]
    assert part.read(6, 1 << 20).nbytes == 0       # at the HW: nothing yet
    assert part.read(14, 1 << 20).nbytes == 0      # past the HW, below the end: nothing
    assert offsets_in(part.read(6, 1 << 20, LOG_END)) == list(range(6, 15))   # a follower's fetch
    with pytest.raises(OffsetOutOfRangeError):
        part.read(16, 1 << 20)
    assert [r.offset for r in part.records(0)] == list(range(6))
    assert part.update_high_watermark(12) == 12
    assert offsets_in(part.read(6, 1 << 20)) == list(range(6, 12))


def test_records_follow_the_high_watermark_as_it_moves(open_partition):
    part = open_partition()
    fill(part, 2)
    part.become_leader(1, high_watermark=3)
    it = part.records(0)
    assert [next(it).offset for _ in range(3)] == [0, 1, 2]
    assert next(it, None) is None                  # stops at the HW ...
    part.update_high_watermark(6)
    it = part.records(3)
    assert [r.offset for r in it] == [3, 4, 5]     # ... and goes on when it moves


def test_time_lookups_and_deletes_respect_the_high_watermark(open_partition):
    part = open_partition()
    for i in range(4):
        part.append([b"x"], timestamps=1_000 + i)
    part.become_leader(1, high_watermark=2)
    assert part.offset_for_time(1_001) == 1
    assert part.offset_for_time(1_002) is None     # offset 2 is not committed yet
    assert part.max_timestamp_record() is None     # the largest timestamp is past the HW
    with pytest.raises(OffsetOutOfRangeError, match="high watermark"):
        part.delete_records(3)
    assert part.delete_records(-1) == 2            # -1: up to the HW
    assert part.log_start_offset == 2


def test_leader_high_watermark_never_goes_back_nor_past_the_end(open_partition):
    part = open_partition()
    fill(part, 2)
    part.become_leader(1, high_watermark=0)
    assert part.update_high_watermark(4) == 4
    assert part.update_high_watermark(2) == 4
    assert part.update_high_watermark(100) == 6


def test_acks_all_waits_for_the_high_watermark(open_partition):
    part = open_partition()
    part.become_leader(1, high_watermark=0, in_sync_replicas=[0, 1])
    info = part.append_records(klog.encode_batch([b"a", b"b", b"c"]), acks=-1)
    fut = part.high_watermark_future(info.last_offset + 1)
    assert not fut.done()
    called = []
    fut.add_done_callback(lambda f: called.append(f.result()))
    part.update_high_watermark(2)
    assert not fut.done()
    part.update_high_watermark(3)
    assert fut.result(0) == 3 and called == [3]


def test_acks_all_refused_below_min_insync_replicas_appends_nothing(open_partition):
    part = open_partition(config={"min.insync.replicas": 2})
    part.become_leader(1, high_watermark=0, in_sync_replicas=[0])
    with pytest.raises(NotEnoughReplicasError, match="min.insync.replicas is 2"):
        part.append_records(klog.encode_batch([b"a"]), acks=-1)
    assert part.log_end_offset == 0
    assert part.append_records(klog.encode_batch([b"a"]), acks=1).base_offset == 0   # acks=1 goes
    part.set_in_sync_replicas([0, 1])
    assert part.append_records(klog.encode_batch([b"b"]), acks=-1).base_offset == 1


def test_losing_leadership_fails_the_waiting_produces(open_partition):
    part = open_partition()
    part.become_leader(1, high_watermark=0, in_sync_replicas=[0, 1])
    info = part.append_records(klog.encode_batch([b"a"]), acks=-1)
    fut = part.high_watermark_future(info.last_offset + 1)
    part.become_follower(2, high_watermark=0)
    with pytest.raises(NotLeaderOrFollowerError):
        fut.result(0)


# -- followers --------------------------------------------------------------------------------
def replicate(leader, follower):
    """What a fetcher does: copy the leader's batches from the follower's log end."""
    while follower.log_end_offset < leader.log_end_offset:
        view = leader.read(follower.log_end_offset, 1 << 20, LOG_END)
        try:
            follower.append_as_follower(view)
        finally:
            view.release()
    follower.update_high_watermark(leader.high_watermark)


def segment_bytes(part):
    log = part.log
    out = b""
    for base in log.segments:
        with open(os.path.join(log.path, "%020d.log" % base), "rb") as f:
            out += f.read()
    return out.rstrip(b"\0")


def test_follower_appends_keep_offsets_epochs_and_bytes(open_partition):
    leader = open_partition("leader", epoch=3)
    fill(leader, 3)
    leader.become_leader(5)
    fill(leader, 4)
    follower = open_partition("follower")
    follower.become_follower(5)
    replicate(leader, follower)
    assert follower.log_end_offset == leader.log_end_offset == 21
    assert follower.log.leader_epochs == leader.log.leader_epochs == [(3, 0), (5, 9)]
    assert (follower.latest_epoch(), follower.epoch_start_offset(5)) == (5, 9)
    assert follower.high_watermark == 21
    leader.log.flush()
    follower.log.flush()
    assert segment_bytes(follower) == segment_bytes(leader)


def test_follower_refuses_client_appends(open_partition):
    follower = open_partition()
    follower.become_follower(1)
    assert follower.role == FOLLOWER and follower.leader_epoch == 1
    with pytest.raises(NotLeaderOrFollowerError, match="follower"):
        follower.append_records(klog.encode_batch([b"a"]))
    with pytest.raises(NotLeaderOrFollowerError):
        follower.append([b"a"])
    assert follower.log_end_offset == 0


def test_follower_batch_must_start_at_its_log_end(open_partition):
    leader = open_partition("leader")
    fill(leader, 2)
    follower = open_partition("follower")
    follower.become_follower(0)
    view = leader.read(3, 1 << 20, LOG_END)       # skips the first batch
    with pytest.raises(CorruptRecordError, match="not at the log end 0"):
        follower.append_as_follower(view)
    assert follower.log_end_offset == 0


def test_follower_refuses_a_batch_of_an_older_epoch(open_partition):
    leader = open_partition("leader", epoch=2)
    fill(leader, 1)
    follower = open_partition("follower", epoch=4)
    follower.become_follower(4)
    with pytest.raises(FencedLeaderEpochError):
        follower.append_as_follower(leader.read(0, 1 << 20, LOG_END))


def test_truncation_drops_records_epochs_and_the_high_watermark(open_partition):
    leader = open_partition("leader", epoch=1)
    fill(leader, 2)
    leader.become_leader(2)
    fill(leader, 2)
    follower = open_partition("follower")
    follower.become_follower(2, high_watermark=0)
    replicate(leader, follower)
    assert follower.high_watermark == 12
    assert follower.truncate_to(6) == 6           # KIP-101: back to where epoch 2 began
    assert follower.log_end_offset == 6 and follower.high_watermark == 6
    assert follower.log.leader_epochs == [(1, 0)]
    replicate(leader, follower)                   # and fetches the same again
    assert follower.log.leader_epochs == [(1, 0), (2, 6)]
    assert [r.value for r in follower.records(0, LOG_END)] == \
        [r.value for r in leader.records(0, LOG_END)]


def test_follower_far_behind_starts_again_at_the_leaders_log_start(open_partition):
    follower = open_partition()
    fill(follower, 1)
    follower.become_follower(1)
    assert follower.truncate_fully_and_start_at(100) == 100
    assert (follower.log_start_offset, follower.log_end_offset) == (100, 100)


def test_delete_records_is_the_leaders_a_follower_follows_the_log_start(open_partition):
    leader = open_partition("leader")
    fill(leader, 3)
    follower = open_partition("follower")
    follower.become_follower(0)
    replicate(leader, follower)
    with pytest.raises(NotLeaderOrFollowerError, match="delete records on the leader"):
        follower.delete_records(4)
    assert follower.log_start_offset == 0
    assert leader.delete_records(4) == 4
    assert follower.follow_log_start(4) == 4          # from the leader's fetch answers
    assert follower.follow_log_start(99) == follower.log_end_offset   # never past the end
    assert follower.log_start_offset == follower.log_end_offset


@examples(40)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=25), st.data())
def test_no_read_returns_a_record_at_or_past_the_high_watermark(sizes, data):
    """Property: for any batches and any HW at a batch boundary, reads of any size from any
    offset return only records below the HW, and every record below it is reachable."""
    with tempfile.TemporaryDirectory() as d:
        part = Partition.open("t", 0, d, SMALL)
        try:
            bounds = [0]
            for n in sizes:
                part.append([b"r"] * n)
                bounds.append(bounds[-1] + n)
            hw = data.draw(st.sampled_from(bounds), label="hw")
            part.become_leader(1, high_watermark=hw)
            offset = data.draw(st.integers(0, part.log_end_offset), label="offset")
            max_bytes = data.draw(st.integers(1, 4096), label="max_bytes")
            view = part.read(offset, max_bytes, READ_UNCOMMITTED)
            got = offsets_in(view)
            view.release()
            assert all(o < hw for o in got)
            if offset < hw:
                assert got, "a read below the HW returns at least one batch"
            assert [r.offset for r in part.records(0)] == list(range(hw))
        finally:
            part.close()
