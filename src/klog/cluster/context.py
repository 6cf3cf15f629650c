"""The controller's cached view of the cluster (Kafka's ``ControllerContext``).

It holds each topic's assignment (topic id, replicas per partition, znode version), each
partition's state (``LeaderAndIsr`` with its znode version) and the topics marked for deletion.
The controller loads it from ZooKeeper when it becomes the controller and keeps it current: its
own compare-and-set writes put their results in; watches report topics created, changed or
deleted by another path and the states leaders write (their ISR changes); a compare-and-set that
fails re-reads that partition. So a broker's death or shutdown is decided from memory, and only
the writes go to ZooKeeper.

Staleness is safe, not assumed away: a decision made from an old state is written by
compare-and-set on the version it was made from, so it fails, and the controller reads that
partition and decides again. Versions only move forward here (a report older than what is held
is ignored); a report for a topic's earlier incarnation (deleted, maybe created again) is told
apart by its topic id.

No I/O: plain data and the choices made from it (which partitions a change concerns, in which
order), so tests drive it directly.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional

from klog.cluster.state import LeaderAndIsr
from klog.cluster.zkstore import TopicAssignment
from klog.metadata import is_internal

Key = tuple[str, int]


@dataclass
class ControllerContext:
    topics: dict[str, TopicAssignment] = field(default_factory=dict)
    states: dict[Key, LeaderAndIsr] = field(default_factory=dict)
    deleting: set[str] = field(default_factory=set)

    # -- topics ------------------------------------------------------------------------------------
    def set_topic(self, name: str, assignment: TopicAssignment,
                  states: Optional[dict] = None) -> None:
        """A topic as read or written: its assignment and the states given ({partition:
        state}). Another topic id means another incarnation: the states held for the earlier
        one go. Partitions no longer in the assignment lose their states."""
        known = self.topics.get(name)
        if known is not None and known.topic_id != assignment.topic_id:
            self.remove_topic(name)
            known = None
        if known is not None and assignment.version < known.version:
            return                      # an older report of the assignment than what is held
        self.topics[name] = assignment
        for p in [p for (t, p) in self.states if t == name and p not in assignment.partitions]:
            del self.states[(name, p)]
        for p, state in (states or {}).items():
            if p in assignment.partitions:
                self.update_state(name, p, state)

    def remove_topic(self, name: str) -> None:
        self.topics.pop(name, None)
        for key in [k for k in self.states if k[0] == name]:
            del self.states[key]

    def topic_id(self, name: str) -> Optional[uuid.UUID]:
        known = self.topics.get(name)
        return known.topic_id if known is not None else None

    def missing_states(self, name: str) -> dict:
        """{partition: replicas} of ``name``'s partitions without a known state (their creation
        was left unfinished, or their states are being read)."""
        assignment = self.topics[name]
        return {p: r for p, r in assignment.partitions.items() if (name, p) not in self.states}

    # -- partition states ----------------------------------------------------------------------------
    def update_state(self, topic: str, partition: int, state: LeaderAndIsr,
                     topic_id: Optional[uuid.UUID] = None) -> bool:
        """Take a state read or written, if it is newer than the one held (by znode version)
        and belongs to the topic held (``topic_id``, when the report names one). Returns whether
        it was taken."""
        assignment = self.topics.get(topic)
        if assignment is None or partition not in assignment.partitions:
            return False
        if topic_id is not None and topic_id != assignment.topic_id:
            return False
        held = self.states.get((topic, partition))
        if held is not None and state.version <= held.version:
            return False
        self.states[(topic, partition)] = state
        return True

    def replicas(self, topic: str, partition: int) -> tuple[int, ...]:
        return self.topics[topic].partitions[partition]

    def partitions(self) -> Iterator[tuple[str, int, tuple[int, ...], LeaderAndIsr]]:
        """(topic, partition, replicas, state) of every partition with a known state, topics
        being deleted left out (no decisions for them)."""
        for name in sorted(self.topics):
            if name in self.deleting:
                continue
            for p, replicas in sorted(self.topics[name].partitions.items()):
                state = self.states.get((name, p))
                if state is not None:
                    yield name, p, replicas, state

    def led_by(self, broker: int) -> list[Key]:
        """The partitions ``broker`` leads, in (topic, partition) order."""
        return [(t, p) for t, p, _, s in self.partitions() if s.leader == broker]

    def first_for(self, keys: Iterable[Key], serving: Iterable[int]) -> list[Key]:
        """``keys`` in the order their writes should go (the brokers apply them in that order,
        one at a time): the partitions whose leader is not among the ``serving`` brokers (it
        died or is stopping: nobody serves them until the write lands) first; within each
        part, user topics before internal ones (a new leader of a ``__consumer_offsets``
        partition also loads its groups: 50 of them would hold up every user partition that
        sorts after the name), then by name and partition."""
        serving = set(serving)

        def order(key):
            state = self.states.get(key)
            return (state is not None and state.leader in serving, is_internal(key[0]), key)
        return sorted(keys, key=order)
