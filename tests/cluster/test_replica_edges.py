"""The replica state machine at the edges of the protocol between brokers: fetches from
brokers that are not replicas, epochs that are not the leader's, a follower that fell behind the
leader's log start (Kafka's answers and handleOutOfRangeError)."""
from klog.cluster.replica import FetchRequest, Replica, Role
from klog.cluster.state import LeaderAndIsr
from klog.protocol.errors import ErrorCode

from .memlog import MemoryLog

ASSIGNED = (1, 2, 3)


def pair(records=10, isr=(1, 2, 3)):
    """Leader 1 in epoch 0 holding ``records`` values; follower 2 with an empty log."""
    state = LeaderAndIsr(1, 0, isr, 0)
    leader, follower = Replica(1, MemoryLog()), Replica(2, MemoryLog())
    leader.apply(state, ASSIGNED, 0)
    follower.apply(state, ASSIGNED, 0)
    leader.append([f"v{i}" for i in range(records)], acks=1)
    return leader, follower


def test_a_non_replica_is_refused_as_kafka_does_and_not_recorded():
    leader, _ = pair()
    assert leader.handle_fetch(FetchRequest(7, 10, 0, 0), 0).error == ErrorCode.UNKNOWN_LEADER_EPOCH
    assert leader.handle_fetch(FetchRequest(7, 10, 0, -1), 0).error == \
        ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert 7 not in leader._followers


def test_leader_epochs_that_are_not_the_leaders():
    leader, _ = pair()
    leader.apply(LeaderAndIsr(1, 2, (1, 2, 3), 0, version=1), ASSIGNED, 0)
    assert leader.handle_fetch(FetchRequest(2, 0, -1, 1), 0).error == ErrorCode.FENCED_LEADER_EPOCH
    assert leader.handle_fetch(FetchRequest(2, 0, -1, 3), 0).error == \
        ErrorCode.UNKNOWN_LEADER_EPOCH


def test_follower_below_the_leaders_log_start_truncates_fully_and_starts_there():
    """The leader deleted records below 6 (DeleteRecords) while the follower, at 3, was away:
    OFFSET_OUT_OF_RANGE (before any epoch check: its epoch 0 still exists on the leader), then
    the follower starts over at 6, catches up, and the high watermark reaches the end."""
    leader, follower = pair()
    leader.apply(LeaderAndIsr(1, 0, (1, 2), 0, version=1), ASSIGNED, 0)   # 3 is gone
    follower.log.append_as_follower(leader.log.read(0, 3))
    leader.log.delete_before(6)
    req = follower.fetch_request()
    resp = leader.handle_fetch(req, 0)
    assert (resp.error, resp.log_start_offset) == (ErrorCode.OFFSET_OUT_OF_RANGE, 6)
    follower.handle_fetch_response(req, resp)
    assert follower.log.log_end_offset == 3              # errors change nothing by themselves
    assert follower.handle_out_of_range(req, 6, 10)
    assert (follower.log.log_start_offset, follower.log.log_end_offset) == (6, 6)
    assert follower.high_watermark == 6
    req = follower.fetch_request()
    follower.handle_fetch_response(req, leader.handle_fetch(req, 0))
    assert follower.log.log_end_offset == 10
    assert [v for _, v in follower.log.entries[6:]] == [f"v{i}" for i in range(6, 10)]
    req = follower.fetch_request()
    follower.handle_fetch_response(req, leader.handle_fetch(req, 0))
    assert leader.high_watermark == 10 and follower.high_watermark == 10


def test_out_of_range_answers_that_are_stale_or_past_the_leaders_end():
    leader, follower = pair()
    follower.log.append_as_follower(leader.log.read(0, 8))
    req = follower.fetch_request()
    # The follower moved on since the request: the answer is dropped.
    follower.log.append_as_follower(leader.log.read(8, 1))
    assert not follower.handle_out_of_range(req, 6, 10)
    assert follower.log.log_end_offset == 9
    # Past the leader's end (only after an unclean election): truncate to it.
    req = follower.fetch_request()
    assert follower.handle_out_of_range(req, 0, 5)
    assert follower.log.log_end_offset == 5 and follower.role is Role.FOLLOWER


def test_follower_follows_the_leaders_log_start_up_to_its_high_watermark():
    leader, follower = pair(isr=(1, 2))
    for _ in range(2):
        req = follower.fetch_request()
        follower.handle_fetch_response(req, leader.handle_fetch(req, 0))
    assert follower.high_watermark == 10 and follower.log.log_start_offset == 0
    leader.log.delete_before(6)
    req = follower.fetch_request()
    follower.handle_fetch_response(req, leader.handle_fetch(req, 0))
    assert follower.log.log_start_offset == 6
    # Never past what the follower knows is committed: a follower whose high watermark is 2
    # (its answers carried no more) stops its log start there.
    leader, follower = pair(isr=(1, 2))
    follower.log.append_as_follower(leader.log.read(0, 4))
    follower.high_watermark = 2
    leader.log.delete_before(3)
    req = follower.fetch_request()
    follower.handle_fetch_response(req, _with_hw(leader.handle_fetch(req, 0), 2))
    assert follower.log.log_start_offset == 2


def _with_hw(resp, hw):
    from dataclasses import replace
    return replace(resp, high_watermark=hw)


def test_a_leader_told_of_new_replicas_within_its_epoch_follows_them():
    """A reassignment's new epoch may be applied before its replica set is read (two watches):
    the set arriving later in the same epoch still makes the leader accept and track the new
    replica, and forget the one that left."""
    leader, _ = pair()
    leader.apply(LeaderAndIsr(1, 0, (1, 2, 3), 0, version=1), (1, 2, 3, 4), 0)
    resp = leader.handle_fetch(FetchRequest(4, 10, 0, 0), 0)
    assert resp.error == ErrorCode.NONE
    proposal = leader.isr_change(0)          # 4 is at the leader's end: it joins the ISR
    assert proposal is not None and 4 in proposal.isr
    leader.isr_change_written(None)
    leader.apply(LeaderAndIsr(1, 0, (1, 2, 3), 0, version=2), (1, 2, 4), 0)
    assert 3 not in leader._followers
    assert leader.handle_fetch(FetchRequest(3, 10, 0, 0), 0).error == \
        ErrorCode.UNKNOWN_LEADER_EPOCH
