"""The controller's election rules (klog.cluster.election), one rule per test."""
from klog.cluster import election
from klog.cluster.state import LeaderAndIsr, NO_LEADER

ASSIGNMENT = (1, 2, 3)


def state(leader, isr, epoch=4):
    return LeaderAndIsr(leader, epoch, tuple(isr), controller_epoch=1, version=7)


def test_initial_state_leads_with_the_first_live_replica():
    s = election.initial_state(ASSIGNMENT, {2, 3}, controller_epoch=5)
    assert (s.leader, s.leader_epoch, s.isr, s.controller_epoch) == (2, 0, (2, 3), 5)


def test_elect_prefers_assignment_order_among_live_isr():
    assert election.elect_leader(ASSIGNMENT, (3, 2), {2, 3}) == 2
    assert election.elect_leader(ASSIGNMENT, (3,), {1, 2, 3}) == 3
    assert election.elect_leader(ASSIGNMENT, (1,), {2, 3}) == NO_LEADER
    assert election.elect_leader(ASSIGNMENT, (1,), {2, 3}, unclean=True) == 2


def test_leader_failure_elects_from_isr_with_a_new_epoch():
    new = election.on_brokers_failed(state(1, (1, 2, 3)), ASSIGNMENT, {2, 3}, 2)
    assert (new.leader, new.leader_epoch, new.isr, new.controller_epoch) == (2, 5, (2, 3), 2)
    assert new.version == 7          # the caller writes it against the version it read


def test_follower_failure_shrinks_isr_and_bumps_epoch():
    new = election.on_brokers_failed(state(1, (1, 2, 3)), ASSIGNMENT, {1, 3}, 2)
    assert (new.leader, new.leader_epoch, new.isr) == (1, 5, (1, 3))


def test_nothing_to_do_when_everyone_in_isr_is_alive():
    assert election.on_brokers_failed(state(1, (1, 2)), ASSIGNMENT, {1, 2}, 2) is None


def test_last_isr_member_dying_leaves_partition_offline_with_it_recorded():
    new = election.on_brokers_failed(state(1, (1,)), ASSIGNMENT, {2, 3}, 2)
    assert (new.leader, new.isr) == (NO_LEADER, (1,))
    # ... and only it can bring the partition back cleanly
    assert election.on_broker_started(new, ASSIGNMENT, {2, 3}, 2) is None
    back = election.on_broker_started(new, ASSIGNMENT, {1, 2, 3}, 2)
    assert (back.leader, back.isr, back.leader_epoch) == (1, (1,), new.leader_epoch + 1)


def test_unclean_election_resets_isr_to_the_new_leader():
    new = election.on_brokers_failed(state(1, (1,)), ASSIGNMENT, {2, 3}, 2, unclean=True)
    assert (new.leader, new.isr) == (2, (2,))


def test_preferred_leader_moves_back_only_when_in_sync():
    assert election.preferred_leader(state(2, (2, 3)), ASSIGNMENT, {1, 2, 3}, 2) is None
    new = election.preferred_leader(state(2, (2, 3, 1)), ASSIGNMENT, {1, 2, 3}, 2)
    assert (new.leader, new.leader_epoch) == (1, 5)
    assert election.preferred_leader(state(1, (1, 2)), ASSIGNMENT, {1, 2}, 2) is None


def test_controlled_shutdown_moves_leadership_and_leaves_isr():
    new = election.controlled_shutdown(state(1, (1, 2, 3)), ASSIGNMENT, {1, 2, 3}, 1, 2)
    assert (new.leader, new.isr) == (2, (2, 3))
    follower = election.controlled_shutdown(state(1, (1, 2, 3)), ASSIGNMENT, {1, 2, 3}, 3, 2)
    assert (follower.leader, follower.isr) == (1, (1, 2))
    assert election.controlled_shutdown(state(1, (1,)), ASSIGNMENT, {1, 2, 3}, 1, 2) is None


def test_an_offline_partition_is_not_rewritten_on_every_broker_event():
    offline = election.on_brokers_failed(state(1, (1,)), ASSIGNMENT, {2, 3}, 2)
    assert election.on_brokers_failed(offline, ASSIGNMENT, {2, 3}, 2) is None
    assert election.on_brokers_failed(offline, ASSIGNMENT, {3}, 2) is None
