"""The cluster controller: one broker at a time decides partition leadership (Kafka's
ZooKeeper-mode ``KafkaController``).

Every broker runs one. Whoever creates the ephemeral ``/controller`` first is the controller
(with a new controller epoch); the others watch that node and try again when it goes. The
controller watches broker registrations, and on each change decides (``election``) for every
partition, writes the decision by compare-and-set fenced by its epoch (``ClusterStore``), and
tells the replicas through ``send`` (LeaderAndIsr). A broker that re-registered with a new broker
epoch restarted: it is handled as a failure, then a start, so its partitions move away and its
stale replica state is never trusted.

Events (watch callbacks, requests from the server) go through one queue handled by one thread,
as Kafka's controller does, so decisions never interleave. Safety does not rest on being the only
controller: a deposed controller's writes fail on the epoch check (NotControllerError), and it
steps down.
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Callable, Optional

from kazoo.recipe.watchers import ChildrenWatch, DataWatch

from klog.cluster import election
from klog.cluster.assignment import assign_replicas
from klog.cluster.state import LeaderAndIsr
from klog.cluster.zkstore import ClusterStore, ControllerEpoch, NotControllerError

log = logging.getLogger("klog.cluster.controller")

RETRY_S = 0.5


@dataclass(frozen=True)
class PartitionDecision:
    """What the controller tells a replica: LeaderAndIsr for one partition."""

    topic: str
    partition: int
    state: LeaderAndIsr
    replicas: tuple[int, ...]
    broker_epoch: int          # of the addressee's registration this is meant for (KIP-380)


Send = Callable[[int, PartitionDecision], None]


class Controller:
    def __init__(self, store: ClusterStore, broker_id: int, send: Send, *,
                 unclean_leader_election: bool = False):
        self.store = store
        self.broker_id = broker_id
        self._send = send
        self.unclean = unclean_leader_election
        self.fence: Optional[ControllerEpoch] = None
        self._view: dict[int, int] = {}          # live brokers -> epochs, as last handled
        self._events: "queue.Queue" = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"klog-controller-{broker_id}",
                                        daemon=True)
        self._stopped = threading.Event()
        self.became_controller = threading.Event()   # for callers and tests that wait on it

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "Controller":
        self._thread.start()
        DataWatch(self.store.client, self.store._path("controller"), self._controller_changed)
        ChildrenWatch(self.store.client, self.store._path("brokers", "ids"),
                      self._brokers_changed)
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._events.put(None)
        self._thread.join(10)

    @property
    def is_controller(self) -> bool:
        return self.fence is not None

    def submit(self, fn, *args) -> "queue.Queue":
        """Run ``fn(*args)`` on the controller thread; the returned queue gets its result (or
        the exception it raised)."""
        done: "queue.Queue" = queue.Queue(1)
        self._events.put((fn, args, done))
        return done

    # -- watch callbacks (kazoo's thread): only enqueue ------------------------------------------

    def _controller_changed(self, data, stat, *_):
        if self._stopped.is_set():
            return False
        self._events.put((self._maybe_become_controller, (), None))

    def _brokers_changed(self, children):
        if self._stopped.is_set():
            return False
        self._events.put((self._on_brokers_change, (), None))

    def _run(self):
        while True:
            item = self._events.get()
            if item is None or self._stopped.is_set():
                return
            fn, args, done = item
            try:
                result = fn(*args)
            except NotControllerError as e:
                log.warning("broker %d: no longer the controller (%s)", self.broker_id, e)
                self._resign_locally()
                # If /controller is still ours, free it: a new election (with a new epoch) must
                # be able to happen, by us or another broker.
                self.store.release_controller()
                result = e
            except Exception as e:       # a failed pass must not kill the controller thread
                log.exception("controller event %s failed", getattr(fn, "__name__", fn))
                result = e
                if done is None:         # a watch event (ZooKeeper hiccup): try it again soon
                    retry = threading.Timer(RETRY_S, self._events.put, ((fn, args, None),))
                    retry.daemon = True
                    retry.start()
            if done is not None:
                done.put(result)

    # -- becoming (and ceasing to be) the controller --------------------------------------------

    def _maybe_become_controller(self):
        current = self.store.controller()
        if current == self.broker_id and self.fence is not None:
            return
        if current is not None:
            if self.fence is not None:
                self._resign_locally()
            return
        fence = self.store.elect_controller(self.broker_id)
        if fence is None:
            return
        self.fence = fence
        self._view = {}
        log.info("broker %d is the controller (epoch %d)", self.broker_id, fence.epoch)
        self._on_brokers_change(resend_all=True)
        self.became_controller.set()

    def _resign_locally(self):
        self.fence = None
        self._view = {}
        self.became_controller.clear()

    # -- decisions -------------------------------------------------------------------------------

    def _live(self) -> dict[int, int]:
        return {b: epoch for b, (epoch, _) in self.store.live_brokers().items()}

    def _on_brokers_change(self, resend_all: bool = False):
        if self.fence is None:
            return
        live = self._live()
        bounced = {b for b, e in live.items() if b in self._view and self._view[b] != e}
        started = {b for b in live if b not in self._view} | bounced
        self._view = live
        for topic in self.store.topics():
            assignment = self.store.topic(topic).partitions
            for p, replicas in assignment.items():
                state = self.store.partition_state(topic, p)
                changed = self._decide(topic, p, replicas, state, set(live), bounced)
                tell = (changed is not None or resend_all
                        or any(r in started for r in replicas))
                if tell:
                    self._tell(topic, p, replicas, changed or state, live)

    def _decide(self, topic, p, replicas, state, live: set, bounced: set):
        written = None
        for decide, alive in ((election.on_brokers_failed, live - bounced),
                              (election.on_broker_started, live)):
            new = decide(state, replicas, alive, self.fence.epoch, unclean=self.unclean)
            if new is None:
                continue
            result = self.store.write_state_as_controller(topic, p, new, self.fence)
            if result is None:      # a leader changed the ISR meanwhile: decide on what is there
                state = self.store.partition_state(topic, p)
                new = decide(state, replicas, alive, self.fence.epoch, unclean=self.unclean)
                if new is None:
                    continue
                result = self.store.write_state_as_controller(topic, p, new, self.fence)
                if result is None:
                    continue
            state = written = result
        return written

    def _tell(self, topic, p, replicas, state, live):
        for b in replicas:
            if b in live:
                self._send(b, PartitionDecision(topic, p, state, tuple(replicas), live[b]))

    # -- requests from the server (run them through ``submit``) ---------------------------------

    def create_topic(self, name: str, partitions: int, replication_factor: int,
                     assignment: Optional[dict] = None):
        """Assign replicas over the live brokers (Kafka's spread) unless given, write the topic
        and its partitions' first states, tell the replicas. Returns the topic id."""
        self._require_controller()
        live = self._live()
        assignment = assignment or assign_replicas(partitions, replication_factor, list(live))
        states = {p: election.initial_state(replicas, set(live), self.fence.epoch)
                  for p, replicas in assignment.items()}
        topic_id = self.store.create_topic(name, assignment, states, self.fence)
        for p, replicas in assignment.items():
            self._tell(name, p, replicas, self.store.partition_state(name, p), live)
        return topic_id

    def controlled_shutdown(self, broker_id: int) -> int:
        """Move leadership and ISR membership away from a broker that is stopping; returns
        how many partitions it still leads (it may stop when that is 0)."""
        self._require_controller()
        live = self._live()
        remaining = 0
        for topic in self.store.topics():
            for p, replicas in self.store.topic(topic).partitions.items():
                state = self.store.partition_state(topic, p)
                new = election.controlled_shutdown(state, replicas, set(live), broker_id,
                                                   self.fence.epoch)
                if new is not None:
                    written = self.store.write_state_as_controller(topic, p, new, self.fence)
                    if written is not None:
                        state = written
                        self._tell(topic, p, replicas, state, live)
                if state.leader == broker_id:
                    remaining += 1
        return remaining

    def elect_preferred_leaders(self) -> int:
        """Move every partition's leadership to its preferred replica where it is in sync
        (``auto.leader.rebalance.enable``, ElectLeaders); returns how many moved."""
        self._require_controller()
        live = self._live()
        moved = 0
        for topic in self.store.topics():
            for p, replicas in self.store.topic(topic).partitions.items():
                state = self.store.partition_state(topic, p)
                new = election.preferred_leader(state, replicas, set(live), self.fence.epoch)
                if new is None:
                    continue
                written = self.store.write_state_as_controller(topic, p, new, self.fence)
                if written is not None:
                    moved += 1
                    self._tell(topic, p, replicas, written, live)
        return moved

    def _require_controller(self):
        if self.fence is None:
            raise NotControllerError(f"broker {self.broker_id} is not the controller")
