"""Small value types shared by the replica and controller state machines."""
from __future__ import annotations

from dataclasses import dataclass, replace

NO_LEADER = -1


@dataclass(frozen=True)
class LeaderAndIsr:
    """A partition's state as ZooKeeper holds it at ``/brokers/topics/T/partitions/P/state``.

    ``version`` is the znode version it was read at: every change is a compare-and-set against it,
    so a leader or controller acting on a stale view fails instead of overwriting a newer decision.
    """

    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    controller_epoch: int
    version: int = 0

    def with_isr(self, isr) -> "LeaderAndIsr":
        """The leader's own ISR change: same leader and epoch (Kafka's ZooKeeper mode)."""
        return replace(self, isr=tuple(isr))

    def with_leader(self, leader: int, isr, controller_epoch: int) -> "LeaderAndIsr":
        """A controller decision: every leader or ISR change it makes starts a new leader epoch."""
        return replace(self, leader=leader, leader_epoch=self.leader_epoch + 1, isr=tuple(isr),
                       controller_epoch=controller_epoch)


@dataclass(frozen=True)
class EpochEnd:
    """Answer of an epoch lookup (OffsetForLeaderEpoch): the largest epoch <= the one asked for and
    the offset where it ends (the next epoch's start, or the log end for the latest epoch)."""

    epoch: int
    end_offset: int

    @property
    def undefined(self) -> bool:
        return self.epoch < 0


UNDEFINED_EPOCH_END = EpochEnd(-1, -1)
