"""The controller's decisions for one partition, as pure functions (Kafka's ZooKeeper-mode
``PartitionStateMachine`` and ``PartitionLeaderElectionAlgorithms``).

Each takes the partition's current state (as read from ZooKeeper, with its version), the
assignment (replica list; its first entry is the preferred leader) and the brokers that are alive
(registered in ZooKeeper), and returns the next state or None for "no change". The caller writes
it by compare-and-set, fenced by the controller epoch, then tells the replicas.

Every decision starts a new leader epoch, so replicas can tell a newer decision from a delayed one.
"""
from __future__ import annotations

from typing import AbstractSet, Optional, Sequence

from klog.cluster.state import LeaderAndIsr, NO_LEADER


def initial_state(assignment: Sequence[int], live: AbstractSet[int],
                  controller_epoch: int) -> LeaderAndIsr:
    """A new partition: the live replicas form the ISR, the first of them leads (epoch 0)."""
    isr = tuple(r for r in assignment if r in live)
    return LeaderAndIsr(isr[0] if isr else NO_LEADER, 0, isr, controller_epoch)


def elect_leader(assignment: Sequence[int], isr: Sequence[int], live: AbstractSet[int], *,
                 unclean: bool = False) -> int:
    """Kafka's offline-partition election: the first live ISR member in assignment order; with
    ``unclean.leader.election.enable`` any live replica as a last resort (it may lack committed
    records: that is what "unclean" means). NO_LEADER when nobody qualifies."""
    for r in assignment:
        if r in live and r in isr:
            return r
    if unclean:
        for r in assignment:
            if r in live:
                return r
    return NO_LEADER


def on_brokers_failed(state: LeaderAndIsr, assignment: Sequence[int], live: AbstractSet[int],
                      controller_epoch: int, *, unclean: bool = False) -> Optional[LeaderAndIsr]:
    """Brokers left (their ZooKeeper sessions expired): drop them from the ISR and, if the
    leader was one of them, elect another. When the last ISR member dies the ISR keeps it, so
    the partition comes back (cleanly) with that broker."""
    if state.leader == NO_LEADER:
        return None              # already offline; ``on_broker_started`` brings it back
    dead_in_isr = [r for r in state.isr if r not in live]
    leader_alive = state.leader in live
    if not dead_in_isr and leader_alive:
        return None
    isr = [r for r in state.isr if r in live]
    if leader_alive:
        return state.with_leader(state.leader, isr, controller_epoch)
    leader = elect_leader(assignment, isr, live, unclean=unclean)
    if leader == NO_LEADER:
        # Offline. The ISR never goes empty: it keeps one dead member (the old leader if it was
        # in sync), so the partition comes back cleanly when that broker does.
        keep = [state.leader] if state.leader in state.isr else list(state.isr[-1:])
        return state.with_leader(NO_LEADER, keep, controller_epoch)
    if leader not in isr:          # unclean: the new leader's log is the truth from now on
        isr = [leader]
    return state.with_leader(leader, isr, controller_epoch)


def on_broker_started(state: LeaderAndIsr, assignment: Sequence[int], live: AbstractSet[int],
                      controller_epoch: int, *, unclean: bool = False) -> Optional[LeaderAndIsr]:
    """A broker registered: an offline partition may have a leader again."""
    if state.leader != NO_LEADER:
        return None
    leader = elect_leader(assignment, state.isr, live, unclean=unclean)
    if leader == NO_LEADER:
        return None
    isr = [r for r in state.isr if r in live] if leader in state.isr else [leader]
    return state.with_leader(leader, isr, controller_epoch)


def preferred_leader(state: LeaderAndIsr, assignment: Sequence[int], live: AbstractSet[int],
                     controller_epoch: int) -> Optional[LeaderAndIsr]:
    """Move leadership to the first replica of the assignment, if it is alive and in sync."""
    preferred = assignment[0]
    if state.leader == preferred or preferred not in live or preferred not in state.isr:
        return None
    return state.with_leader(preferred, state.isr, controller_epoch)


def controlled_shutdown(state: LeaderAndIsr, assignment: Sequence[int], live: AbstractSet[int],
                        stopping: int, controller_epoch: int) -> Optional[LeaderAndIsr]:
    """A broker asked to stop: lead elsewhere (another ISR member) and leave the ISR, before it
    goes, so clients move with no unavailability beyond a metadata refresh. A sole ISR member
    keeps leading until it dies (Kafka refuses to shrink the ISR below one)."""
    if stopping not in state.isr:
        return None
    others = [r for r in state.isr if r != stopping]
    if not others:
        return None
    if state.leader != stopping:
        return state.with_leader(state.leader, others, controller_epoch)
    leader = elect_leader(assignment, others, live - {stopping})
    if leader == NO_LEADER:
        return None
    return state.with_leader(leader, others, controller_epoch)
