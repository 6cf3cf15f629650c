"""The controller's side of partition reassignment (KIP-455): requests, watches, ZooKeeper
writes around the pure steps of klog.cluster.reassignment.

A reassignment lives in ZooKeeper only, in the topic's assignment znode (Kafka's layout)::

    /brokers/topics/<topic>   {"version":3,"topic_id":..,"partitions":{"0":[2,3,4,1]},
                               "adding_replicas":{"0":[4]},"removing_replicas":{"0":[1]}}

Each step writes that znode and the partition's state znode in one multi-op that also checks
the ``/controller_epoch`` version (fenced, as every controller write) and both znodes' versions
(compare-and-set: a leader's ISR change or another write in between makes it read again). So a
controller that fails between steps leaves a consistent reassignment behind, and the next
controller (``resume``) finds it by reading the assignments, watches it and completes it.

The controller watches the state znode of every partition being moved: the leader's ISR
expansion (the last new replica caught up) fires it, and the step that completes the move
follows. Brokers learn everything from ZooKeeper (klog.cluster.replica_manager): new replicas
appear in RS and start fetching; the ones that left see the assignment without them, stop and
delete their partition directory (as for a deleted topic).

Runs on the controller's event thread (``Controller.submit``); watch callbacks only enqueue.
"""
from __future__ import annotations

import json
import logging
from typing import Optional

from kazoo.exceptions import BadVersionError, NoNodeError, RolledBackError
from kazoo.recipe.watchers import DataWatch

from klog.cluster import reassignment as ra
from klog.cluster.reassignment import PartitionAssignment
from klog.cluster.zkstore import NotControllerError, _state_json
from klog.errors import KlogError, UnknownTopicOrPartitionError
from klog.protocol.errors import ErrorCode as EC

log = logging.getLogger("klog.cluster.reassign")

CAS_ATTEMPTS = 5


class ReassignmentRetryError(KlogError):
    """ZooKeeper kept changing under a reassignment step; the client may try again."""
    error_code = EC.REQUEST_TIMED_OUT


def partition_assignment(topic_assignment, p) -> PartitionAssignment:
    return PartitionAssignment(topic_assignment.partitions[p],
                               topic_assignment.adding.get(p, ()),
                               topic_assignment.removing.get(p, ()))


class ReassignmentDriver:
    def __init__(self, controller):
        self.controller = controller
        self.store = controller.store
        self._watched: set = set()       # (topic, partition) whose state znode is watched
        self._generation = 0             # bumped when control is taken or lost: old watches end

    # -- control taken / lost (controller thread) ----------------------------------------------

    def resume(self) -> None:
        """A new controller: watch and try to complete every reassignment left in ZooKeeper."""
        self._generation += 1
        self._watched = set()
        deleting = set(self.store.topics_marked_for_deletion())
        for topic in self.store.topics():
            if topic in deleting:
                continue
            try:
                assignment = self.store.topic(topic)
            except NoNodeError:
                continue
            for p in sorted(set(assignment.adding) | set(assignment.removing)):
                log.info("resuming the reassignment of %s-%d", topic, p)
                self._watch(topic, p)

    def stop(self) -> None:
        self._generation += 1
        self._watched = set()

    def check_all(self) -> None:
        """Brokers came or went: a move waiting for a live target replica may finish now."""
        for topic, p in sorted(self._watched):
            self.check(topic, p)

    # -- watches ---------------------------------------------------------------------------------

    def _watch(self, topic: str, p: int) -> None:
        if (topic, p) in self._watched:
            self.check(topic, p)
            return
        self._watched.add((topic, p))
        generation = self._generation

        def changed(data, stat, *_):
            # kazoo's thread: only enqueue. False ends the watch (no longer ours to follow).
            if generation != self._generation or (topic, p) not in self._watched \
                    or self.controller._stopped.is_set():
                return False
            if data is None:
                return False            # the partition is gone (topic deleted)
            self.controller.submit(self.check, topic, p)
        DataWatch(self.store.client,
                  self.store._path("brokers", "topics", topic, "partitions", p, "state"),
                  changed)

    def check(self, topic: str, p: int) -> None:
        """Complete the move of ``topic``-``p`` if every target replica is in the ISR."""
        if self.controller.fence is None or (topic, p) not in self._watched:
            return
        for _ in range(CAS_ATTEMPTS):
            try:
                current = self.store.topic(topic)
                state = self.store.partition_state(topic, p)
            except NoNodeError:
                self._watched.discard((topic, p))
                return
            if p not in current.partitions or topic in self.store.topics_marked_for_deletion():
                self._watched.discard((topic, p))
                return
            moving = partition_assignment(current, p)
            if not moving.reassigning:
                self._watched.discard((topic, p))
                return
            step = ra.complete(moving, state, set(self.controller._live()),
                               self.controller.fence.epoch)
            if step is None:
                return
            if self._write(topic, current, p, step, state):
                self._watched.discard((topic, p))
                log.info("reassignment of %s-%d complete: replicas %s, leader %d (epoch %d), "
                         "isr %s", topic, p, list(step.assignment.replicas), step.state.leader,
                         step.state.leader_epoch, list(step.state.isr))
                return
        log.warning("completing the reassignment of %s-%d: ZooKeeper kept changing; the next "
                    "ISR change tries again", topic, p)

    # -- requests (controller thread) -------------------------------------------------------------

    def alter(self, requests: dict) -> dict:
        """AlterPartitionReassignments: {(topic, partition): target replicas or None (cancel)}
        -> {(topic, partition): (error code, message or None)}."""
        self.controller._require_controller()
        live = set(self.controller._live())
        deleting = set(self.store.topics_marked_for_deletion())
        out = {}
        for (topic, p), target in requests.items():
            where = f"partition {topic}-{p}"
            try:
                if topic in deleting:
                    raise _unknown(topic, p)
                if target is not None:
                    target = ra.check_target(target, live, where)
                out[(topic, p)] = self._alter_one(topic, p, target)
            except NotControllerError:
                raise
            except KlogError as exc:
                out[(topic, p)] = (exc.error_code or EC.UNKNOWN_SERVER_ERROR, str(exc)[:500])
        return out

    def _alter_one(self, topic: str, p: int, target) -> tuple:
        for _ in range(CAS_ATTEMPTS):
            try:
                current = self.store.topic(topic)
            except NoNodeError:
                raise _unknown(topic, p) from None
            if p not in current.partitions:
                raise _unknown(topic, p)
            moving = partition_assignment(current, p)
            state = self.store.partition_state(topic, p)
            epoch = self.controller.fence.epoch
            if target is None:
                step = ra.cancel(moving, state, epoch)
            else:
                step = ra.start(moving, state, target, epoch)
            if not self._write(topic, current, p, step, state):
                continue
            what = "cancelled" if target is None else f"to {list(target)}"
            log.info("reassignment of %s-%d %s: replicas %s (adding %s, removing %s), epoch %d",
                     topic, p, what, list(step.assignment.replicas), list(step.assignment.adding),
                     list(step.assignment.removing), step.state.leader_epoch)
            if step.assignment.reassigning:
                self._watch(topic, p)
            else:
                self._watched.discard((topic, p))
            return EC.NONE, None
        raise ReassignmentRetryError(f"partition {topic}-{p} kept changing; try again")

    def list(self, partitions: Optional[list] = None) -> dict:
        """ListPartitionReassignments: {(topic, partition): PartitionAssignment} of the
        partitions being moved (of ``partitions`` only, when given; others are left out)."""
        self.controller._require_controller()
        wanted = None if partitions is None else set(partitions)
        topics = self.store.topics() if wanted is None else sorted({t for t, _ in wanted})
        out = {}
        for topic in topics:
            try:
                assignment = self.store.topic(topic)
            except NoNodeError:
                continue
            for p in sorted(set(assignment.adding) | set(assignment.removing)):
                if wanted is None or (topic, p) in wanted:
                    out[(topic, p)] = partition_assignment(assignment, p)
        return out

    # -- the write ---------------------------------------------------------------------------------

    def _write(self, topic: str, current, p: int, step, state) -> bool:
        """Write ``step`` by compare-and-set on the topic znode and the state znode, fenced by
        the controller epoch. False if either changed since read; NotControllerError if fenced."""
        store, fence = self.store, self.controller.fence
        topic_path = store._path("brokers", "topics", topic)
        state_path = store._path("brokers", "topics", topic, "partitions", p, "state")
        value, _ = store._read_json(topic_path)
        a = step.assignment
        value["partitions"][str(p)] = list(a.replicas)
        for key, moving in (("adding_replicas", a.adding), ("removing_replicas", a.removing)):
            section = value.get(key) or {}
            section.pop(str(p), None)
            if moving:
                section[str(p)] = list(moving)
            value[key] = section
        t = store.client.transaction()
        t.check(store._path("controller_epoch"), fence.zk_version)
        t.set_data(topic_path, json.dumps(value).encode(), version=current.version)
        writes_state = step.state != state
        if writes_state:
            t.set_data(state_path, _state_json(step.state), version=state.version)
        results = t.commit()
        if isinstance(results[0], BadVersionError):
            raise NotControllerError(f"reassigning {topic}-{p}: fenced, another controller "
                                     "has been elected")
        if any(isinstance(r, BadVersionError) for r in results[1:]):
            return False
        errors = [r for r in results if isinstance(r, Exception)
                  and not isinstance(r, RolledBackError)]
        if errors:
            raise errors[0]
        return True


def _unknown(topic, p):
    return UnknownTopicOrPartitionError(f"The partition {topic}-{p} does not exist.")
