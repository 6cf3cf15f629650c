"""Partition reassignment's decisions (klog.cluster.reassignment): Kafka's KIP-455 steps one by
one, then random histories (hypothesis' stateful testing) of reassignments, cancellations,
completions, appends, followers catching up, ISR shrinks, broker failures and elections over an
abstract log (each replica's log end offset), checking after every step that the leader is in
RS, ISR ⊆ RS, and every acknowledged record is on every ISR member and on the leader."""
import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from klog.cluster import election, reassignment as ra
from klog.cluster.reassignment import PartitionAssignment
from klog.cluster.state import LeaderAndIsr, NO_LEADER


def state(leader, isr, epoch=4):
    return LeaderAndIsr(leader, epoch, tuple(isr), controller_epoch=1, version=7)


def test_start_is_rs_ors_plus_trs_with_adding_and_removing_and_a_new_epoch():
    step = ra.start(PartitionAssignment((1, 2, 3)), state(1, (1, 2, 3)), (2, 3, 4), 2)
    assert step.assignment == PartitionAssignment((2, 3, 4, 1), adding=(4,), removing=(1,))
    assert step.assignment.target == (2, 3, 4) and step.assignment.original == (2, 3, 1)
    s = step.state
    assert (s.leader, s.leader_epoch, s.isr, s.controller_epoch, s.version) == \
        (1, 5, (1, 2, 3), 2, 7)


def test_complete_waits_for_every_target_replica_in_the_isr():
    moving = PartitionAssignment((2, 3, 4, 1), adding=(4,), removing=(1,))
    assert ra.complete(moving, state(1, (1, 2, 3)), {1, 2, 3, 4}, 2) is None


def test_complete_moves_the_leader_into_the_target_and_shrinks_rs_and_isr():
    moving = PartitionAssignment((2, 3, 4, 1), adding=(4,), removing=(1,))
    step = ra.complete(moving, state(1, (1, 2, 3, 4)), {1, 2, 3, 4}, 2)
    assert step.assignment == PartitionAssignment((2, 3, 4))
    assert (step.state.leader, step.state.leader_epoch, step.state.isr) == (2, 5, (2, 3, 4))


def test_complete_keeps_a_leader_that_is_in_the_target():
    moving = PartitionAssignment((2, 3, 4, 1), adding=(4,), removing=(1,))
    step = ra.complete(moving, state(3, (1, 2, 3, 4)), {1, 2, 3, 4}, 2)
    assert (step.state.leader, step.state.isr) == (3, (2, 3, 4))


def test_complete_skips_a_dead_target_replica_for_leader():
    moving = PartitionAssignment((2, 3, 4, 1), adding=(4,), removing=(1,))
    step = ra.complete(moving, state(1, (1, 2, 3, 4)), {1, 3, 4}, 2)
    assert step.state.leader == 3


def test_complete_has_nothing_to_do_for_a_partition_that_is_not_moving():
    assert ra.complete(PartitionAssignment((1, 2)), state(1, (1, 2)), {1, 2}, 2) is None


def test_cancel_reverts_to_the_original_replicas():
    moving = PartitionAssignment((2, 3, 4, 1), adding=(4,), removing=(1,))
    step = ra.cancel(moving, state(1, (1, 2, 3)), 2)
    # 4 never joined the ISR: it leaves at once; ORS is complete as soon as it is in the ISR.
    assert step.assignment == PartitionAssignment((2, 3, 1))
    done = ra.complete(step.assignment, step.state, {1, 2, 3, 4}, 2)
    assert done is None            # nothing left to move


def test_cancel_keeps_an_added_replica_in_the_isr_until_completion():
    moving = PartitionAssignment((2, 3, 4, 1), adding=(4,), removing=(1,))
    step = ra.cancel(moving, state(4, (1, 2, 3, 4)), 2)
    assert step.assignment == PartitionAssignment((2, 3, 1, 4), adding=(), removing=(4,))
    done = ra.complete(step.assignment, step.state, {1, 2, 3, 4}, 2)
    assert done.assignment == PartitionAssignment((2, 3, 1))
    assert done.state.leader == 2 and done.state.isr == (2, 3, 1)


def test_cancel_without_a_reassignment_is_refused():
    with pytest.raises(ra.NoReassignmentInProgressError):
        ra.cancel(PartitionAssignment((1, 2, 3)), state(1, (1, 2, 3)), 2)


def test_a_new_target_over_a_reassignment_starts_from_the_original_replicas():
    moving = PartitionAssignment((2, 3, 4, 1), adding=(4,), removing=(1,))
    step = ra.start(moving, state(1, (1, 2, 3)), (2, 3, 5), 2)
    assert step.assignment == PartitionAssignment((2, 3, 5, 1), adding=(5,), removing=(1,))


def test_a_new_target_keeps_a_leading_or_in_sync_replica_it_drops_until_completion():
    """4 was being added, caught up and leads (1..3 failed): a new target without it must not
    drop the only replicas holding the acknowledged records."""
    moving = PartitionAssignment((2, 3, 4, 1), adding=(4,), removing=(1,))
    step = ra.start(moving, state(4, (4,)), (2, 3, 5), 2)
    assert step.assignment == PartitionAssignment((2, 3, 5, 1, 4), adding=(5,), removing=(1, 4))
    assert (step.state.leader, step.state.isr) == (4, (4,))


@pytest.mark.parametrize("target, match", [
    ((), "empty replica list"), ((2, 2, 3), r"duplicate replica ids \[2\]"),
    ((2, 3, 9), r"replica\(s\) \[9\] .* not registered")])
def test_bad_targets_are_invalid_replica_assignments(target, match):
    with pytest.raises(ra.InvalidReplicaAssignmentError, match=match) as info:
        ra.check_target(target, {1, 2, 3, 4}, "topic t partition 0")
    assert info.value.error_code == 39 and "topic t partition 0" in str(info.value)


# -- random histories ------------------------------------------------------------------------------
BROKERS = (1, 2, 3, 4, 5)


class ReassignmentMachine(RuleBasedStateMachine):
    """One partition over brokers 1..5; ``ends`` is each replica's log end offset (its records
    are a prefix of the leader's: the replication protocol itself is tests/cluster/test_model's
    subject), ``acked`` the records acknowledged with acks=all."""

    def __init__(self):
        super().__init__()
        self.assignment = PartitionAssignment((1, 2, 3))
        self.state = LeaderAndIsr(1, 0, (1, 2, 3), 1)
        self.live = set(BROKERS)
        self.ends = {1: 0, 2: 0, 3: 0}
        self.acked = 0
        self.controller_epoch = 1

    def _apply(self, step):
        if step is None:
            return
        assert step.state.leader_epoch > self.state.leader_epoch or \
            step.state == self.state
        self.assignment, self.state = step.assignment, step.state
        for r in list(self.ends):
            if r not in self.assignment.replicas:
                del self.ends[r]             # stopped and deleted its partition
        for r in self.assignment.replicas:
            self.ends.setdefault(r, 0)       # a new replica starts empty

    @rule(replicas=st.lists(st.sampled_from(BROKERS), min_size=1, max_size=4, unique=True))
    def reassign(self, replicas):
        live = self.live
        try:
            target = ra.check_target(replicas, live, "p")
        except ra.InvalidReplicaAssignmentError:
            assert not set(replicas) <= live
            return
        self._apply(ra.start(self.assignment, self.state, target, self.controller_epoch))

    @rule()
    def cancel(self):
        try:
            self._apply(ra.cancel(self.assignment, self.state, self.controller_epoch))
        except ra.NoReassignmentInProgressError:
            assert not self.assignment.reassigning

    @rule()
    def complete(self):
        self._apply(ra.complete(self.assignment, self.state, self.live, self.controller_epoch))

    @precondition(lambda self: self.state.leader != NO_LEADER)
    @rule(n=st.integers(1, 3))
    def append(self, n):
        self.ends[self.state.leader] += n

    @precondition(lambda self: self.state.leader != NO_LEADER)
    @rule(r=st.sampled_from(BROKERS))
    def follower_catches_up(self, r):
        """A live replica fetches everything; the leader takes it into the ISR."""
        leader = self.state.leader
        if r == leader or r not in self.ends or r not in self.live:
            return
        self.ends[r] = self.ends[leader]
        if r not in self.state.isr:
            self.state = self.state.with_isr(self.state.isr + (r,))

    @precondition(lambda self: self.state.leader != NO_LEADER)
    @rule()
    def acknowledge(self):
        """acks=all: the high watermark is the lowest end in the ISR."""
        self.acked = max(self.acked, min(self.ends[r] for r in self.state.isr))

    @precondition(lambda self: self.state.leader != NO_LEADER and len(self.state.isr) > 1)
    @rule(r=st.sampled_from(BROKERS))
    def leader_shrinks_isr(self, r):
        if r in self.state.isr and r != self.state.leader:
            self.state = self.state.with_isr(tuple(x for x in self.state.isr if x != r))

    @rule(r=st.sampled_from(BROKERS))
    def broker_fails(self, r):
        self.live.discard(r)
        self._apply_election(election.on_brokers_failed)

    @rule(r=st.sampled_from(BROKERS))
    def broker_starts(self, r):
        self.live.add(r)
        self._apply_election(election.on_broker_started)

    def _apply_election(self, decide):
        new = decide(self.state, self.assignment.replicas, self.live, self.controller_epoch)
        if new is not None:
            self.state = new

    @invariant()
    def leader_in_replicas_and_isr_within_them(self):
        a, s = self.assignment, self.state
        assert s.leader == NO_LEADER or s.leader in a.replicas
        assert s.isr and set(s.isr) <= set(a.replicas)
        assert set(a.adding) <= set(a.replicas) and set(a.removing) <= set(a.replicas)
        assert not set(a.adding) & set(a.removing)
        assert len(set(a.replicas)) == len(a.replicas)

    @invariant()
    def acknowledged_records_stay_on_the_isr(self):
        for r in self.state.isr:
            assert self.ends[r] >= self.acked, (r, self.ends, self.acked, self.state)
        if self.state.leader != NO_LEADER:
            assert self.ends[self.state.leader] >= self.acked


ReassignmentMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow])
TestReassignmentHistories = ReassignmentMachine.TestCase
