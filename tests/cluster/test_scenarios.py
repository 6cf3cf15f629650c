"""The failure stories replication is built against, each replayed step by step.

KIP-101's two scenarios (truncating to the high watermark loses or forks data), KIP-279's
double failover (an epoch the leader never saw), a zombie (KIP-320: a leader or follower that
missed a leader change), and Jepsen's 2013 Kafka case (the ISR shrinks to the leader, then it dies).
"""
from klog.cluster.replica import FetchRequest, Replica, Role
from klog.cluster.state import LeaderAndIsr, NO_LEADER
from klog.protocol.errors import ErrorCode

from .memlog import MemoryLog
from .sim import CLIENT, Cluster, ZK


def exchange(follower: Replica, leader: Replica, now=0):
    """One fetch round trip, delivered at once."""
    req = follower.fetch_request()
    resp = leader.handle_fetch(req, now)
    follower.handle_fetch_response(req, resp)
    return resp


def values(log: MemoryLog):
    return [v for _, v in log.entries]


def settle_leadership(c: Cluster, ms=None):
    """Let sessions of stopped brokers lapse and the controller act on it."""
    c.tick(ms if ms is not None else c.session_ms + 1)
    c.run_controller()
    c.deliver_all()
    c.check()


# -- KIP-101 -----------------------------------------------------------------------------------

def test_kip101_follower_keeps_records_beyond_its_high_watermark_on_a_new_epoch():
    """Scenario 1: B holds m1, m2 but never learned the HW that commits them. A new epoch
    arrives (C failed) and B follows again; then A dies and B is elected. Truncating to the HW
    when becoming a follower (Kafka before KIP-101) would lose both acknowledged records."""
    c = Cluster(brokers=3, min_isr=1)
    c.produce(0)
    c.produce(0)
    for b in (2, 3):
        c.fetch(b)
    c.deliver_all()                      # B and C hold m1, m2; the answers carried HW 0
    c.fetch(2)
    c.deliver(0)                         # A learns B's end ...
    c.deliver(0)                         # ... B hears HW 0 (C's end was still unknown)
    c.fetch(3)
    c.deliver(0)                         # A learns C's end: HW 2, both acknowledged ...
    c.deliver(0, drop=True)              # ... but C never hears of it
    c.check()
    assert c.acked == {0: "v1", 1: "v2"}
    assert c.nodes[2].replica.high_watermark == 0

    c.crash(3)
    settle_leadership(c)                 # epoch 1: ISR (1, 2), B follows again
    assert c.zk.state.isr == (1, 2) and c.nodes[2].replica.leader_epoch == 1
    c.crash(1)
    settle_leadership(c)

    assert c.nodes[2].replica.role is Role.LEADER
    assert values(c.nodes[2].log) == ["v1", "v2"]
    assert c.settle(), c.violations


def test_kip101_divergent_logs_after_losing_unflushed_data_reconcile_by_epoch():
    """Scenario 2: both replicas lose power; B comes back with only m1 and leads (epoch 1,
    writes m3 at offset 1); A comes back with m2 at offset 1. A must truncate m2 by epoch, not
    keep it because its HW said 2."""
    a_log, b_log = MemoryLog(), MemoryLog()
    a = Replica(1, a_log, min_insync_replicas=1)
    b = Replica(2, b_log, min_insync_replicas=1)
    state = LeaderAndIsr(1, 0, (1, 2), 1)
    a.apply(state, (1, 2), 0)
    b.apply(state, (1, 2), 0)
    a.append(["m1", "m2"], acks=-1)
    exchange(b, a)
    exchange(b, a)
    assert values(b_log) == ["m1", "m2"] and a.high_watermark == 2

    b_log.truncate_to(1)                 # B's page cache held m2, lost with the power
    a = Replica(1, a_log, high_watermark=2, min_insync_replicas=1)
    b = Replica(2, b_log, high_watermark=1, min_insync_replicas=1)
    b.apply(LeaderAndIsr(2, 1, (2,), 1), (1, 2), 0)
    b.append(["m3"], acks=1)
    a.apply(LeaderAndIsr(2, 2, (2, 1), 1), (1, 2), 0)
    b.apply(LeaderAndIsr(2, 2, (2, 1), 1), (1, 2), 0)

    resp = exchange(a, b)
    assert resp.diverging_epoch is not None and resp.diverging_epoch.end_offset == 1
    assert values(a_log) == ["m1"]
    exchange(a, b)
    assert a_log.entries == b_log.entries == [(0, "m1"), (1, "m3")]


# -- KIP-279 -----------------------------------------------------------------------------------

def test_kip279_double_failover_truncates_over_several_rounds():
    """B wrote m3 in epoch 1, which A (leader again in epoch 2) never saw. Asked for epoch 1,
    A answers with its largest epoch <= 1 (0) and where it ends; B truncates, asks again, and the
    logs converge instead of keeping m3 beside A's m2."""
    a_log, b_log = MemoryLog(), MemoryLog()
    a_log.append_as_leader(["m1", "m2"], 0)
    b_log.append_as_leader(["m1"], 0)
    b_log.append_as_leader(["m3"], 1)
    a = Replica(1, a_log, min_insync_replicas=1)
    b = Replica(2, b_log, min_insync_replicas=1)
    state = LeaderAndIsr(1, 2, (1, 2), 3)
    a.apply(state, (1, 2), 0)
    b.apply(state, (1, 2), 0)
    a.append(["m4"], acks=1)

    first = exchange(b, a)
    assert (first.diverging_epoch.epoch, first.diverging_epoch.end_offset) == (0, 2)
    assert values(b_log) == ["m1"]           # cut to where its own epoch 0 ends
    for _ in range(3):
        exchange(b, a)
    assert b_log.entries == a_log.entries == [(0, "m1"), (0, "m2"), (2, "m4")]
    assert b.high_watermark == a.high_watermark == 3


# -- KIP-320: zombies --------------------------------------------------------------------------

def test_zombie_leader_cannot_commit_after_it_was_replaced():
    """The leader is paused past its ZooKeeper session; another is elected. Resumed, the old
    leader still believes it leads and takes an acks=all write: it must never be acknowledged
    (its ISR write fails compare-and-set, followers fence it by epoch), and nothing forks."""
    c = Cluster(min_isr=1)
    c.produce(0)
    for b in (2, 3):
        c.fetch(b)
    c.deliver_all()
    c.pause(1)
    settle_leadership(c)
    new_leader = c.zk.state.leader
    assert new_leader in (2, 3) and c.zk.state.leader_epoch == 1
    c.resume(1)
    c.cut(1, ZK)                             # it cannot even re-register for now
    assert c.nodes[1].replica.role is Role.LEADER          # the zombie
    zombie = c.nodes[1].replica
    res = zombie.append(["zombie-write"], acks=-1)
    assert res.error == ErrorCode.NONE
    c.nodes[1].pending.append((res, "zombie-write"))
    for _ in range(5):
        for b in (2, 3):
            c.fetch(b)
        c.deliver_all()
        c.tick(c.lag_ms * 2)
        c.deliver_all()
        c.check()
    assert "zombie-write" not in c.acked.values()
    # It does not know it should follow; a fetch in its epoch is fenced by the real leader.
    assert zombie.fetch_request() is None
    answer = c.nodes[new_leader].replica.handle_fetch(FetchRequest(1, 0, 0, 0), c.now)
    assert answer.error == ErrorCode.FENCED_LEADER_EPOCH
    assert c.settle(), c.violations
    assert "zombie-write" not in [v for _, v in c.nodes[1].log.entries]


def test_zombie_follower_answer_from_an_old_epoch_is_ignored():
    """A paused follower's fetch to the old leader comes back after a leader change: the answer
    belongs to an epoch it no longer follows and must not be appended."""
    c = Cluster(min_isr=1)
    c.produce(0)
    c.fetch(3)                               # in flight to broker 1, epoch 0
    c.crash(1)
    settle_leadership(c)                     # broker 2 leads epoch 1
    assert c.zk.state.leader == 2
    c.restart(1)
    c.tick(1)
    c.run_controller()
    c.deliver_all()
    c.check()
    assert c.settle(), c.violations


# -- Jepsen 2013 -------------------------------------------------------------------------------

def shrink_isr_to_leader(c: Cluster):
    c.cut(1, 2)
    c.cut(1, 3)
    c.tick(c.lag_ms * 2)
    c.deliver_all()
    c.check()
    assert c.zk.state.isr == (1,)


def test_jepsen_2013_isr_of_one_with_min_insync_2_refuses_writes():
    c = Cluster(min_isr=2)
    shrink_isr_to_leader(c)
    res = c.nodes[1].replica.append(["x"], acks=-1)
    assert res.error == ErrorCode.NOT_ENOUGH_REPLICAS


def test_jepsen_2013_leader_alone_dies_partition_waits_for_it_no_loss():
    """min.insync.replicas=1: the lone leader acknowledges; when it dies nobody else is clean,
    so the partition stays offline until it returns, and nothing acknowledged is lost."""
    c = Cluster(min_isr=1)
    shrink_isr_to_leader(c)
    for _ in range(3):
        c.produce(0)
    c.check()
    assert len(c.acked) == 3
    c.crash(1)
    c.heal()
    settle_leadership(c)
    assert c.zk.state.leader == NO_LEADER and c.zk.state.isr == (1,)
    assert c.settle(), c.violations
    assert sorted(c.acked.values()) == ["v1", "v2", "v3"]


def test_jepsen_2013_with_unclean_election_the_checker_sees_the_loss():
    """Positive control: the same story with unclean.leader.election.enable loses acknowledged
    writes, and the checker says so."""
    c = Cluster(min_isr=1, unclean=True)
    shrink_isr_to_leader(c)
    for _ in range(3):
        c.produce(0)
    c.check()
    c.crash(1)
    c.heal()
    settle_leadership(c)
    assert c.zk.state.leader in (2, 3)
    assert not c.settle()
    assert any("without acknowledged" in v or "lost" in v for v in c.violations)


def test_expanding_isr_holds_the_high_watermark_until_the_change_is_written():
    """A follower rejoining the ISR counts for the HW from the moment the leader proposes it:
    otherwise a write committed by the leader alone in that window would be missing on a member
    of the ISR that ZooKeeper then records, and could be elected."""
    log1, log2 = MemoryLog(), MemoryLog()
    leader = Replica(1, log1, min_insync_replicas=1, replica_lag_time_max_ms=10)
    follower = Replica(2, log2, min_insync_replicas=1)
    state = LeaderAndIsr(1, 0, (1,), 1)
    leader.apply(state, (1, 2), 0)
    follower.apply(state, (1, 2), 0)
    leader.append(["a"], acks=-1)
    exchange(follower, leader, now=5)
    exchange(follower, leader, now=6)
    proposal = leader.isr_change(7)
    assert proposal is not None and proposal.isr == (1, 2)
    res = leader.append(["b"], acks=-1)
    assert leader.acks_all_outcome(res) is None          # waits for broker 2 as well
    leader.isr_change_written(LeaderAndIsr(1, 0, (1, 2), 1, version=1))
    assert leader.acks_all_outcome(res) is None
    exchange(follower, leader, now=8)        # brings "b" over
    assert leader.acks_all_outcome(res) is None
    exchange(follower, leader, now=9)        # and shows the leader it has it
    assert leader.acks_all_outcome(res) == ErrorCode.NONE


def test_client_cut_from_leader_gets_no_acknowledgement():
    c = Cluster(min_isr=1)
    c.cut(CLIENT, 1)
    c.produce(0)
    c.check()
    assert c.acked == {}


def test_write_replaced_during_a_leader_change_is_not_acknowledged():
    """x waits for acks=all at offset 0 in epoch 0; the leader loses its place, the next leader
    writes y at offset 0, and our broker leads again (epoch 2) with a HW past offset 0. The old
    append must be answered NOT_LEADER_OR_FOLLOWER (retry), never "done": offset 0 holds y."""
    log1, log2 = MemoryLog(), MemoryLog()
    one = Replica(1, log1, min_insync_replicas=1)
    two = Replica(2, log2, min_insync_replicas=1)
    one.apply(LeaderAndIsr(1, 0, (1, 2), 1), (1, 2), 0)
    pending = one.append(["x"], acks=-1)
    assert one.acks_all_outcome(pending) is None
    new = LeaderAndIsr(2, 1, (2, 1), 1)
    one.apply(new, (1, 2), 0)
    two.apply(new, (1, 2), 0)
    two.append(["y"], acks=1)
    exchange(one, two)
    exchange(one, two)
    assert values(log1) == ["y"]
    one.apply(LeaderAndIsr(1, 2, (1,), 1), (1, 2), 0)
    assert one.high_watermark > pending.last_offset
    assert one.acks_all_outcome(pending) == ErrorCode.NOT_LEADER_OR_FOLLOWER
