"""The cluster controller: one broker at a time decides partition leadership (Kafka's
ZooKeeper-mode ``KafkaController``).

Every broker runs one. Whoever creates the ephemeral ``/controller`` first is the controller
(with a new controller epoch); the others watch that node and try again when it goes. The
controller watches broker registrations, and on each change decides (``election``) for every
partition, writes the decision by compare-and-set fenced by its epoch (``ClusterStore``), and
tells the replicas through ``send`` (LeaderAndIsr). A broker that re-registered with a new broker
epoch restarted: it is handled as a failure, then a start, so its partitions move away and its
stale replica state is never trusted.

It decides from memory: a ``ControllerContext`` (klog.cluster.context) loaded when it becomes
the controller (the reads pipelined) and kept current by its own writes and by watches on the
topics and on every partition's state (the ISR changes leaders write). The writes of one change
go out together, one fenced compare-and-set multi-op per partition, all sent before the first
answer is read; the partitions a dead or stopping broker led go first. A compare-and-set that
fails (the state moved on: a leader changed the ISR meanwhile) re-reads that partition and
decides again.

Topic administration is Kafka's too: deletion goes through an ``/admin/delete_topics/<topic>``
marker that any controller (a later one, after a failover) finishes; CreatePartitions extends
the assignment with Kafka's spread; topic configs live in ``/config/topics`` with a change
notification per write; ElectLeaders and the periodic preferred-leader rebalance
(``auto.leader.rebalance.enable``, checked every ``leader.imbalance.check.interval.seconds`` on
the controller's clock) move leadership. Every write is version-checked and fenced.

Events (watch callbacks, requests from the server) go through one queue handled by one thread,
as Kafka's controller does, so decisions never interleave. Safety does not rest on being the only
controller: a deposed controller's writes fail on the epoch check (NotControllerError), and it
steps down.
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, replace
from typing import Callable, Optional

from kazoo.exceptions import BadVersionError, NoNodeError, NodeExistsError
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

from klog.cluster import election
from klog.cluster.assignment import assign_replicas
from klog.cluster.context import ControllerContext
from klog.cluster.reassign_driver import ReassignmentDriver
from klog.cluster.state import LeaderAndIsr, NO_LEADER
from klog.cluster.zkstore import (ClusterStore, ControllerEpoch, CorruptClusterStateError,
                                  NotControllerError, TopicAssignment)
from klog.errors import (InternalTopicError, InvalidPartitionsError, KlogError,
                         TopicExistsError, UnknownTopicOrPartitionError)
from klog.metadata import is_internal
from klog.protocol.errors import ErrorCode as EC

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

PREFERRED, UNCLEAN = 0, 1          # ElectLeaders election types (KIP-460)
CAS_ATTEMPTS = 5                   # re-reads when a compare-and-set loses to a concurrent change


class TopicDeletionInProgressError(TopicExistsError):
    """The name is still being deleted (its marker is in ``/admin/delete_topics``)."""


class TopicDeletionIncompleteError(KlogError):
    """A deletion could not finish now (ZooKeeper kept changing under it); its marker stays and
    the controller finishes it later (Kafka answers DeleteTopics REQUEST_TIMED_OUT then)."""
    error_code = EC.REQUEST_TIMED_OUT


class Controller:
    def __init__(self, store: ClusterStore, broker_id: int, send: Send, *,
                 unclean_leader_election: bool = False, scheduler=None,
                 auto_leader_rebalance: bool = True, imbalance_check_interval_s: int = 300,
                 imbalance_per_broker_percentage: int = 10):
        self.store = store
        self.broker_id = broker_id
        self._send = send
        self.unclean = unclean_leader_election
        # The rebalance check runs on this scheduler's clock (a FakeClock in tests).
        self.scheduler = scheduler
        self.auto_rebalance = auto_leader_rebalance and scheduler is not None
        self.imbalance_interval_ms = imbalance_check_interval_s * 1000
        self.imbalance_percentage = imbalance_per_broker_percentage
        self._rebalance_task = None
        self.fence: Optional[ControllerEpoch] = None
        self._view: dict[int, int] = {}          # live brokers -> epochs, as last handled
        self.ctx: Optional[ControllerContext] = None   # while the controller: topics, states
        # Watches report into the context of their generation only (a new one per election).
        self._watch_gen = 0
        self._topic_watches: set = set()         # topic names with a DataWatch, this generation
        self._state_watches: set = set()         # (topic, partition, topic id) likewise
        self._events: "queue.Queue" = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"klog-controller-{broker_id}",
                                        daemon=True)
        self._stopped = threading.Event()
        self.became_controller = threading.Event()   # for callers and tests that wait on it
        self.reassignments = ReassignmentDriver(self)    # KIP-455 (klog.cluster.reassign_driver)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "Controller":
        self.store.ensure_admin_paths()
        self._thread.start()
        DataWatch(self.store.client, self.store._path("controller"), self._controller_changed)
        ChildrenWatch(self.store.client, self.store._path("brokers", "ids"),
                      self._brokers_changed)
        ChildrenWatch(self.store.client, self.store._path("admin", "delete_topics"),
                      self._deletions_changed)
        ChildrenWatch(self.store.client, self.store._path("brokers", "topics"),
                      self._topics_changed)
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._cancel_rebalance()
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

    def _deletions_changed(self, children):
        if self._stopped.is_set():
            return False
        if children:
            self._events.put((self._delete_marked_topics, (), None))

    def _topics_changed(self, children):
        if self._stopped.is_set():
            return False
        self._events.put((self._on_topics_change, (), None))

    def _topic_report(self, gen: int, name: str):
        def callback(data, stat, *_):
            if self._stopped.is_set() or gen != self._watch_gen:
                return False
            self._events.put((self._on_topic_report, (gen, name), None))
        return callback

    def _state_report(self, gen: int, topic: str, partition: int, topic_id):
        def callback(data, stat, *_):
            if (self._stopped.is_set() or gen != self._watch_gen or data is None
                    or (topic, partition, topic_id) not in self._state_watches):
                return False            # another election, or the znode (incarnation) is gone
            self._events.put((self._on_state_report, (gen, topic, partition, topic_id, data,
                                                      stat), None))
        return callback

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
        try:
            self._load_context()
        except Exception:
            # Without its view it cannot decide: give the place up; the retry elects again.
            self._resign_locally()
            self.store.release_controller()
            raise
        self._on_brokers_change(resend_all=True)
        self._delete_marked_topics()        # a deletion the previous controller left unfinished
        self.reassignments.resume()         # and the partition moves it left
        self._events.put((self._watch_topics, (self._watch_gen, sorted(self.ctx.topics)), None))
        if self.auto_rebalance:
            self._cancel_rebalance()
            self._rebalance_task = self.scheduler.schedule_periodic(
                self.imbalance_interval_ms, self._events.put,
                (self._check_leader_imbalance, (), None))
        self.became_controller.set()

    def _resign_locally(self):
        self.fence = None
        self.reassignments.stop()
        self._view = {}
        self.ctx = None
        self._watch_gen += 1
        self._topic_watches, self._state_watches = set(), set()
        self._cancel_rebalance()
        self.became_controller.clear()

    def _cancel_rebalance(self):
        task, self._rebalance_task = self._rebalance_task, None
        if task is not None:
            task.cancel()

    # -- the cached view (ControllerContext) -------------------------------------------------------

    def _load_context(self) -> None:
        """Read every topic and partition state (pipelined) into a new context; partitions
        whose creation a failed controller left unfinished get their first states."""
        self._watch_gen += 1
        self._topic_watches, self._state_watches = set(), set()
        self.ctx = ControllerContext(deleting=set(self.store.topics_marked_for_deletion()))
        self._read_topics(self.store.topics())
        log.info("broker %d: controller context loaded: %d topics, %d partitions",
                 self.broker_id, len(self.ctx.topics), len(self.ctx.states))

    def _read_topics(self, names) -> list[str]:
        """Read ``names`` and the states the context lacks for them into the context (topics
        gone are forgotten); returns the names whose assignment is new or changed."""
        ctx = self.ctx
        changed = []
        for name, assignment in self.store.topics_async(names).items():
            known = ctx.topics.get(name)
            if assignment is None:
                self._forget_topic(name)
                continue
            if known is not None and known.topic_id != assignment.topic_id:
                self._forget_topic(name)     # deleted and created again meanwhile
                known = None
            if known is None or assignment.version > known.version:
                ctx.set_topic(name, assignment)
                changed.append(name)
        keys = [(n, p) for n in changed for p in ctx.missing_states(n)]
        missing: dict = {}
        for (name, p), state in self.store.partition_states(keys).items():
            if state is None:
                missing.setdefault(name, {})[p] = ctx.replicas(name, p)
            else:
                ctx.update_state(name, p, state)
        for name, parts in missing.items():
            if name not in ctx.deleting:
                self._finish_creation(name, parts)
        return changed

    def _forget_topic(self, name: str) -> None:
        self.ctx.remove_topic(name)
        self._state_watches = {w for w in self._state_watches if w[0] != name}

    def _watch_topics(self, gen: int, names) -> None:
        """Watch the topics' znodes and their partitions' states (each watch reads once: what
        changed since the context was read is reported)."""
        if gen != self._watch_gen or self.ctx is None:
            return
        for name in names:
            assignment = self.ctx.topics.get(name)
            if assignment is None:
                continue
            if name not in self._topic_watches:
                self._topic_watches.add(name)
                DataWatch(self.store.client, self.store._path("brokers", "topics", name),
                          self._topic_report(gen, name))
            for p in sorted(assignment.partitions):
                key = (name, p, assignment.topic_id)
                if key not in self._state_watches and (name, p) in self.ctx.states:
                    self._state_watches.add(key)
                    DataWatch(self.store.client, self.store.state_path(name, p),
                              self._state_report(gen, name, p, assignment.topic_id))

    def _on_topics_change(self):
        if self.fence is None or self.ctx is None:
            return
        names = set(self.store.topics())
        for gone in set(self.ctx.topics) - names:
            self._forget_topic(gone)
        new = sorted(names - set(self.ctx.topics))
        if new:
            self._read_topics(new)
            self._watch_topics(self._watch_gen, new)
            self._decide_for(new)

    def _on_topic_report(self, gen: int, name: str):
        """The topic's znode changed (partitions added, or deleted or created again by
        another path)."""
        if gen != self._watch_gen or self.fence is None:
            return
        if self._read_topics([name]):
            self._watch_topics(gen, [name])
            self._decide_for([name])

    def _on_state_report(self, gen: int, topic: str, partition: int, topic_id, data, stat):
        """A partition's state as ZooKeeper has it now (a leader's ISR change, or an echo of
        this controller's own write, which the context already holds)."""
        if gen != self._watch_gen or self.fence is None:
            return
        try:
            state = self.store.parse_state(self.store.state_path(topic, partition), data, stat)
        except CorruptClusterStateError as e:
            log.error("%s", e)
            return
        if self.ctx.update_state(topic, partition, state, topic_id):
            # E.g. a leader took back a broker that has died since: decide on it now.
            self._decide_for([topic], only={(topic, partition)})

    def _decide_for(self, topics, only=None) -> None:
        """Decide the partitions of ``topics`` (``only`` these keys, if given) against the
        live brokers as last handled."""
        live = self._view
        decisions = {}
        for t, p, replicas, state in self.ctx.partitions():
            if t in topics and (only is None or (t, p) in only):
                new = self._decide(state, replicas, set(live), set())
                if new is not None:
                    decisions[(t, p)] = new
        self._write_and_tell(decisions, lambda key, st: self._decide(
            st, self.ctx.replicas(*key), set(live), set()), live, serving=set(live))

    def _write_and_tell(self, decisions: dict, redecide, live, serving) -> dict:
        """Write ``decisions`` ({(topic, partition): new state}) together (``ClusterStore.
        write_states_as_controller``), those whose leader is not ``serving`` first, into the
        context; a partition whose state moved on is read again and decided again by
        ``redecide(key, current state)`` (None: nothing to do now). Tells the replicas of what
        was written; returns it."""
        ctx = self.ctx
        pending = {k: decisions[k] for k in ctx.first_for(decisions, serving)}
        written = {}
        for _ in range(CAS_ATTEMPTS):
            if not pending:
                break
            stale = []
            for key, result in self.store.write_states_as_controller(pending,
                                                                     self.fence).items():
                if result is None:
                    stale.append(key)
                else:
                    ctx.update_state(*key, result)
                    written[key] = result
            pending = {}
            if stale:
                # The assignment may have moved too (a reassignment step writes both).
                self._read_topics(sorted({t for t, _ in stale}))
            for key, state in self.store.partition_states(stale).items():
                if state is None or key[0] not in ctx.topics:
                    continue                  # gone (topic deleted meanwhile)
                ctx.update_state(*key, state)
                new = redecide(key, ctx.states.get(key, state))
                if new is not None:
                    pending[key] = new
        if pending:
            log.warning("partitions %s kept changing; deciding them again at the next change",
                        sorted(pending))
        for (t, p), state in written.items():
            if t in ctx.topics:
                self._tell(t, p, ctx.replicas(t, p), state, live)
        return written

    def _write_state(self, topic, p, new) -> Optional[LeaderAndIsr]:
        """One decision, written by compare-and-set, into the context."""
        written = self.store.write_state_as_controller(topic, p, new, self.fence)
        if written is not None and self.ctx is not None:
            self.ctx.update_state(topic, p, written)
        return written

    def _read_state(self, topic, p) -> LeaderAndIsr:
        state = self.store.partition_state(topic, p)
        if self.ctx is not None:
            self.ctx.update_state(topic, p, state)
        return state

    # -- decisions -------------------------------------------------------------------------------

    def _live(self) -> dict[int, int]:
        return {b: epoch for b, (epoch, _) in self.store.live_brokers().items()}

    def _on_brokers_change(self, resend_all: bool = False):
        """Brokers registered or gone: decide every partition from the context (topics being
        deleted left out), write the changes together, the partitions led by a broker that is
        gone first."""
        if self.fence is None:
            return
        live = self._live()
        bounced = {b for b, e in live.items() if b in self._view and self._view[b] != e}
        started = {b for b in live if b not in self._view} | bounced
        gone = (set(self._view) - set(live)) | bounced
        self._view = live
        decisions, unchanged = {}, []
        for topic, p, replicas, state in self.ctx.partitions():
            new = self._decide(state, replicas, set(live), bounced)
            if new is not None:
                decisions[(topic, p)] = new
            elif resend_all or any(r in started for r in replicas):
                unchanged.append((topic, p, replicas, state))
        written = self._write_and_tell(
            decisions, lambda key, st: self._decide(st, self.ctx.replicas(*key), set(live),
                                                    bounced), live,
            serving=set(live) - bounced)
        for topic, p, replicas, state in unchanged:
            self._tell(topic, p, replicas, state, live)
        if gone or started:
            log.info("controller %d: brokers gone %s, started %s: %d of %d decisions written",
                     self.broker_id, sorted(gone), sorted(started), len(written),
                     len(decisions))
        if not resend_all:
            self.reassignments.check_all()

    def _finish_creation(self, topic: str, missing: dict) -> None:
        """Partitions in the assignment without a state znode (``missing``: partition ->
        replicas): a controller failed midway through creating them (a large topic is written
        in several multi-ops)."""
        log.warning("topic %s: creating the state of partitions %s left unfinished",
                    topic, sorted(missing))
        states = self._first_states(missing, self._live())
        self.store.create_partition_states(topic, states, self.fence)
        for p in missing:
            self._read_state(topic, p)

    def _decide(self, state, replicas, live: set, bounced: set) -> Optional[LeaderAndIsr]:
        """The partition's next state, or None: the brokers that are gone (or came back under
        a new epoch: ``bounced``) leave it, then an offline partition gets a leader if it can.
        Pure: the caller writes it."""
        new = None
        for decide, alive in ((election.on_brokers_failed, live - bounced),
                              (election.on_broker_started, live)):
            step = decide(new or state, replicas, alive, self.fence.epoch, unclean=self.unclean)
            if step is not None:
                new = step
        return new

    def _tell(self, topic, p, replicas, state, live):
        for b in replicas:
            if b in live:
                self._send(b, PartitionDecision(topic, p, state, tuple(replicas), live[b]))

    # -- requests from the server (run them through ``submit``) ---------------------------------

    def create_topic(self, name: str, partitions: int, replication_factor: int,
                     assignment: Optional[dict] = None, config: Optional[dict] = None):
        """Assign replicas over the live brokers (Kafka's spread) unless given, write the topic
        (config overrides, assignment, its partitions' first states), tell the replicas.
        Returns the topic id. Leader epochs start at the cluster's floor, above every epoch a
        deleted topic reached, so a re-created name never goes back in epochs."""
        self._require_controller()
        if name in self.store.topics_marked_for_deletion():
            raise TopicDeletionInProgressError(f"topic {name!r} is marked for deletion")
        live = self._live()
        assignment = assignment or assign_replicas(partitions, replication_factor, list(live))
        states = self._first_states(assignment, live)
        try:
            topic_id = self.store.create_topic(name, assignment, states, self.fence,
                                               config=config)
        except NodeExistsError:
            raise TopicExistsError(f"topic {name!r} already exists") from None
        # Created at version 0, the assignment and every state.
        self.ctx.set_topic(name, TopicAssignment(
            topic_id, {p: tuple(r) for p, r in assignment.items()}, 0), states)
        self._events.put((self._watch_topics, (self._watch_gen, [name]), None))
        for p, replicas in assignment.items():
            self._tell(name, p, replicas, states[p], live)
        return topic_id

    def _first_states(self, assignment: dict, live) -> dict:
        floor, _ = self.store.leader_epoch_floor()
        return {p: replace(election.initial_state(replicas, set(live), self.fence.epoch),
                           leader_epoch=floor)
                for p, replicas in assignment.items()}

    def add_partitions(self, name: str, total: int, assignment: Optional[list] = None) -> None:
        """CreatePartitions: grow ``name`` to ``total`` partitions. The new ones are spread as
        Kafka does (starting at the broker that leads partition 0's preferred replica, with the
        topic's replication factor) unless ``assignment`` gives their replica lists."""
        self._require_controller()
        if is_internal(name):   # groups are mapped to its partitions by hash
            raise InternalTopicError(f"topic {name!r} is internal: its partition count cannot "
                                     "change")
        for _ in range(CAS_ATTEMPTS):
            current = self._topic_or_unknown(name)
            count = len(current.partitions)
            if total <= count:        # Kafka's wording
                raise InvalidPartitionsError(
                    f"Topic already has {count} partitions." if total == count else
                    f"Topic currently has {count} partitions, which is higher than the "
                    f"requested {total}.")
            live = self._live()
            if assignment is not None:
                added = {count + i: tuple(r) for i, r in enumerate(assignment)}
            else:
                brokers = sorted(live)
                first = current.partitions[0][0]
                start = next((i for i, b in enumerate(brokers) if b >= first), 0)
                added = assign_replicas(total - count, len(current.partitions[0]), brokers,
                                        start_index=start, first_partition=count)
            states = self._first_states(added, live)
            try:
                self.store.add_partitions(name, current, added, states, self.fence)
            except (BadVersionError, NodeExistsError):
                continue            # the topic changed meanwhile: decide on what is there
            grown = {**current.partitions, **{p: tuple(r) for p, r in added.items()}}
            self.ctx.set_topic(name, replace(current, partitions=grown,
                                             version=current.version + 1), states)
            self._events.put((self._watch_topics, (self._watch_gen, [name]), None))
            for p, replicas in added.items():
                self._tell(name, p, replicas, states[p], live)
            return
        raise InvalidPartitionsError(f"topic {name!r} kept changing; try again")

    def _topic_or_unknown(self, name: str):
        try:
            return self.store.topic(name)
        except NoNodeError:
            raise UnknownTopicOrPartitionError(
                f"This server does not host this topic-partition: topic {name!r}") from None

    def delete_topic(self, name: str) -> None:
        """DeleteTopics: mark the topic (Kafka's ``/admin/delete_topics``), then delete it. If
        this controller fails in between, the next one finishes from the marker."""
        self._require_controller()
        if is_internal(name):
            raise InternalTopicError(f"topic {name!r} is internal and cannot be deleted")
        self._topic_or_unknown(name)
        self.store.mark_topic_for_deletion(name, self.fence)
        self.ctx.deleting.add(name)
        self._delete_marked_topics()
        if name in self.store.topics_marked_for_deletion():
            raise TopicDeletionIncompleteError(f"topic {name!r} is marked for deletion; the "
                                               "controller will finish it")

    def _delete_marked_topics(self):
        if self.fence is None:
            return
        marked = self.store.topics_marked_for_deletion()
        self.ctx.deleting = set(marked)
        for name in marked:
            if is_internal(name):     # not through DeleteTopics: someone wrote the marker
                log.warning("not deleting internal topic %s (marked in /admin/delete_topics)",
                            name)
                continue
            for _ in range(CAS_ATTEMPTS):
                retired = -1
                try:
                    for p in self.store.topic(name).partitions:
                        try:
                            retired = max(retired, self.store.partition_state(name, p).leader_epoch)
                        except NoNodeError:
                            pass
                except NoNodeError:       # only the marker (and maybe a config) is left
                    pass
                try:
                    if self.store.client.exists(self.store._path("brokers", "topics", name)):
                        self.store.delete_topic(name, self.fence, retired)
                    else:
                        self.store.delete_topic_leftovers(name, self.fence)
                    log.info("topic %s deleted (leader epochs continue above %d)", name, retired)
                    self._forget_topic(name)
                    self.ctx.deleting.discard(name)
                    break
                except (BadVersionError, NoNodeError, NodeExistsError) as e:
                    log.warning("deleting topic %s: %s; reading again", name, type(e).__name__)
                    continue      # a partition or the floor moved meanwhile: read again

    def set_topic_config(self, name: str, config: dict, version: int) -> None:
        """Replace the topic's config overrides (already validated by the caller) if they are
        still at ``version``; BadVersionError otherwise (the caller reads and decides again)."""
        self._require_controller()
        self._topic_or_unknown(name)
        self.store.set_topic_config(name, config, version, self.fence)

    def controlled_shutdown(self, broker_id: int, live: Optional[set] = None) -> int:
        """Move leadership and ISR membership away from a broker that is stopping, decided
        from the context and written together (the partitions it leads first); returns how
        many partitions it still leads (it may stop when that is 0). ``live``: the registered
        brokers, if the caller has just read them."""
        self._require_controller()
        live = set(self._live()) if live is None else set(live)

        def decide(state, replicas):
            return election.controlled_shutdown(state, replicas, live, broker_id,
                                                self.fence.epoch)
        decisions = {}
        for topic, p, replicas, state in self.ctx.partitions():
            new = decide(state, replicas)
            if new is not None:
                decisions[(topic, p)] = new
        self._write_and_tell(decisions, lambda key, st: decide(st, self.ctx.replicas(*key)),
                             self._view, serving=live - {broker_id})
        return len(self.ctx.led_by(broker_id))

    def elect_leaders(self, election_type: int, partitions=None) -> dict:
        """ElectLeaders (API 43): {(topic, partition): (error code, message)} for the given
        partitions, or for every partition when None. PREFERRED moves leadership to the first
        replica if it is alive and in sync; UNCLEAN elects a leader for a partition that has
        none, from the ISR if possible, else any live replica (it may lack committed records)."""
        self._require_controller()
        live = self._live()
        if partitions is None:
            partitions = [(t, p) for t in self.store.topics()
                          for p in self.store.topic(t).partitions]
        assignments, out = {}, {}
        for t, p in partitions:
            if t not in assignments:
                try:
                    assignments[t] = self.store.topic(t).partitions
                except NoNodeError:
                    assignments[t] = {}
            replicas = assignments[t].get(p)
            if replicas is None:
                out[(t, p)] = (EC.UNKNOWN_TOPIC_OR_PARTITION,
                               f"The partition {t}-{p} does not exist.")
                continue
            out[(t, p)] = self._elect(t, p, replicas, election_type, live)
        return out

    def _elect(self, topic, p, replicas, election_type, live):
        for _ in range(CAS_ATTEMPTS):
            state = self._read_state(topic, p)
            if election_type == PREFERRED:
                if state.leader == replicas[0]:
                    return EC.ELECTION_NOT_NEEDED, "Leader election not needed for topic partition."
                new = election.preferred_leader(state, replicas, set(live), self.fence.epoch)
                if new is None:
                    return (EC.PREFERRED_LEADER_NOT_AVAILABLE,
                            f"Failed to elect leader for partition {topic}-{p} under strategy "
                            f"PreferredReplicaPartitionLeaderElectionStrategy: preferred replica "
                            f"{replicas[0]} is not alive and in sync (isr {list(state.isr)})")
            else:
                if state.leader != NO_LEADER and state.leader in live:
                    return EC.ELECTION_NOT_NEEDED, "Leader election not needed for topic partition."
                leader = election.elect_leader(replicas, state.isr, set(live), unclean=True)
                if leader == NO_LEADER:
                    return (EC.ELIGIBLE_LEADERS_NOT_AVAILABLE,
                            f"Failed to elect leader for partition {topic}-{p} under strategy "
                            f"OfflinePartitionLeaderElectionStrategy: no live replica of "
                            f"{list(replicas)}")
                isr = [r for r in state.isr if r in live] if leader in state.isr else [leader]
                new = state.with_leader(leader, isr, self.fence.epoch)
            written = self._write_state(topic, p, new)
            if written is not None:
                self._tell(topic, p, replicas, written, live)
                return EC.NONE, None
        return EC.UNKNOWN_SERVER_ERROR, f"partition {topic}-{p} kept changing; try again"

    def _check_leader_imbalance(self) -> int:
        """Kafka's ``checkAndTriggerAutoLeaderRebalance``: for each broker, the share of the
        partitions it is preferred leader of that another broker leads; past
        ``leader.imbalance.per.broker.percentage``, those whose preferred replica is alive and in
        sync move back to it. Returns how many moved."""
        if self.fence is None:
            return 0
        live = self._live()
        deleting = set(self.store.topics_marked_for_deletion())
        by_preferred: dict = {}
        for topic in self.store.topics():
            if topic in deleting:
                continue
            for p, replicas in self.store.topic(topic).partitions.items():
                by_preferred.setdefault(replicas[0], []).append((topic, p, replicas))
        moved = 0
        for broker, parts in sorted(by_preferred.items()):
            states = {(t, p): self._read_state(t, p) for t, p, _ in parts}
            off = [(t, p, r) for t, p, r in parts if states[(t, p)].leader != broker]
            if len(off) / len(parts) <= self.imbalance_percentage / 100 or broker not in live:
                continue
            log.info("broker %d is the preferred leader of %d partitions and leads %d: "
                     "rebalancing", broker, len(parts), len(parts) - len(off))
            for t, p, replicas in off:
                code, _ = self._elect(t, p, replicas, PREFERRED, live)
                moved += code == EC.NONE
        return moved

    def elect_preferred_leaders(self) -> int:
        """Move every partition's leadership to its preferred replica where it is in sync
        (``auto.leader.rebalance.enable``, ElectLeaders); returns how many moved."""
        self._require_controller()
        live = self._live()
        moved = 0
        for topic in self.store.topics():
            for p, replicas in self.store.topic(topic).partitions.items():
                state = self._read_state(topic, p)
                new = election.preferred_leader(state, replicas, set(live), self.fence.epoch)
                if new is None:
                    continue
                written = self._write_state(topic, p, new)
                if written is not None:
                    moved += 1
                    self._tell(topic, p, replicas, written, live)
        return moved

    def _require_controller(self):
        if self.fence is None:
            raise NotControllerError(f"broker {self.broker_id} is not the controller")
