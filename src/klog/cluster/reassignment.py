"""Partition reassignment (KIP-455) as pure functions: the controller's decisions, no I/O.

A partition's assignment while it moves is Kafka's ``ReplicaAssignment``: the replica set RS
(what ZooKeeper's topic znode lists under ``partitions``), with ``adding`` (AR) and ``removing``
(RR) beside it (``adding_replicas`` / ``removing_replicas`` in the same znode). The target is
TRS = RS - RR, the original ORS = RS - AR. Not moving: AR = RR = [].

- ``start``: RS = TRS + ORS (target first, so the target's first replica is the preferred
  leader), AR = TRS - ORS, RR = ORS - TRS, and a new leader epoch so every replica (the leader
  above all, which tracks its followers per epoch) applies the new replica set. The new replicas
  fetch from the leader and join the ISR when they caught up (the leader decides that).
- ``complete`` (once every TRS replica is in the ISR): the leader stays if it is in TRS, else
  the first live TRS replica in the ISR leads; ISR = ISR ∩ TRS; RS = TRS; a new leader epoch.
  The replicas that left stop and delete their data when they see the assignment without them.
- ``cancel``: a reassignment back to ORS (the replicas being added become the ones being
  removed; it completes as soon as ORS is in the ISR, which it usually still is).
- A new target over a reassignment in progress starts from its ORS, as Kafka does; replicas of
  the old RS in neither the new target nor ORS leave at once, unless they lead or are in the
  ISR (they may hold acknowledged records no replica of the new RS has yet): those stay, as
  replicas being removed, until the new reassignment completes.

Invariants (tests/cluster/test_reassignment.py checks them on random histories): the leader is
in RS (or there is none), ISR ⊆ RS, and the ISR never loses its last member that holds the
acknowledged records.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Optional, Sequence

from klog.cluster.state import LeaderAndIsr, NO_LEADER
from klog.errors import KlogError
from klog.protocol.errors import ErrorCode as EC


class InvalidReplicaAssignmentError(KlogError):
    """A replica list that cannot be an assignment: empty, duplicates, unknown brokers."""
    error_code = EC.INVALID_REPLICA_ASSIGNMENT


class NoReassignmentInProgressError(KlogError):
    """A cancellation for a partition that is not being reassigned."""
    error_code = EC.NO_REASSIGNMENT_IN_PROGRESS


@dataclass(frozen=True)
class PartitionAssignment:
    replicas: tuple[int, ...]             # RS, in preference order
    adding: tuple[int, ...] = ()          # AR
    removing: tuple[int, ...] = ()        # RR

    @property
    def target(self) -> tuple[int, ...]:
        return tuple(r for r in self.replicas if r not in self.removing)

    @property
    def original(self) -> tuple[int, ...]:
        return tuple(r for r in self.replicas if r not in self.adding)

    @property
    def reassigning(self) -> bool:
        return bool(self.adding or self.removing)


@dataclass(frozen=True)
class Step:
    """What to write, together (one fenced multi-op): the assignment and the partition state."""

    assignment: PartitionAssignment
    state: LeaderAndIsr


def check_target(target: Sequence[int], live: AbstractSet[int], where: str) -> tuple[int, ...]:
    """The target replica list as Kafka validates it; InvalidReplicaAssignmentError otherwise."""
    target = tuple(target)
    if not target:
        raise InvalidReplicaAssignmentError(
            f"{where}: empty replica list specified in partition reassignment")
    if len(set(target)) != len(target):
        dups = sorted({r for r in target if target.count(r) > 1})
        raise InvalidReplicaAssignmentError(
            f"{where}: duplicate replica ids {dups} in partition reassignment replica list "
            f"{list(target)}")
    unknown = sorted(set(target) - set(live))
    if unknown:
        raise InvalidReplicaAssignmentError(
            f"{where}: replica(s) {unknown} in the reassignment are not registered brokers "
            f"(live brokers: {sorted(live)})")
    return target


def start(current: PartitionAssignment, state: LeaderAndIsr, target: Sequence[int],
          controller_epoch: int) -> Step:
    """Begin moving to ``target`` (validated by ``check_target``). The state gets a new leader
    epoch with the same leader and ISR (minus replicas that leave at once)."""
    target = tuple(target)
    if not current.reassigning and set(target) == set(current.replicas):
        return Step(PartitionAssignment(target), state)      # at most a new preferred order
    original = current.original
    replicas = tuple(dict.fromkeys(target + original))
    # Replicas of a reassignment in progress that the new one drops: they leave now, except
    # the leader and ISR members (acknowledged records may be only there): they stay to go
    # when this one completes.
    keep = tuple(r for r in current.replicas
                 if r not in replicas and (r == state.leader or r in state.isr))
    replicas += keep
    assignment = PartitionAssignment(
        replicas, tuple(r for r in target if r not in original),
        tuple(r for r in replicas if r not in target))
    isr = [r for r in state.isr if r in replicas]
    return Step(assignment, state.with_leader(state.leader, isr, controller_epoch))


def cancel(current: PartitionAssignment, state: LeaderAndIsr, controller_epoch: int) -> Step:
    """Revert to ORS; NoReassignmentInProgressError if the partition is not moving."""
    if not current.reassigning:
        raise NoReassignmentInProgressError("no partition reassignment is in progress")
    return start(current, state, current.original, controller_epoch)


def complete(current: PartitionAssignment, state: LeaderAndIsr, live: AbstractSet[int],
             controller_epoch: int) -> Optional[Step]:
    """The last step once every TRS replica is in the ISR; None while not yet (or when there
    is nothing to complete)."""
    if not current.reassigning:
        return None
    target = current.target
    if not set(target) <= set(state.isr):
        return None
    if state.leader in target:
        leader = state.leader
    else:
        leader = next((r for r in target if r in live), NO_LEADER)
        if leader == NO_LEADER:
            return None          # no live target replica to lead: wait for one
    isr = [r for r in target if r in state.isr]
    return Step(PartitionAssignment(target), state.with_leader(leader, isr, controller_epoch))
