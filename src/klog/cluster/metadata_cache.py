"""``MetadataCache``: a cluster member's copy of what Metadata answers (Kafka's MetadataCache),
kept current by ZooKeeper watches instead of read on every request.

It holds the live brokers with their registrations, the controller id, each topic's assignment
and every partition's state (all topics, not only the partitions this broker hosts). The
topics and states live in a ``ControllerContext``, so its rules hold here too: versions only
move forward (a report older than what is held is ignored) and another topic id is another
incarnation (the earlier one's states go).

Watches are ZooKeeper's own one-shot watches, armed by the reads themselves (pipelined: loading
4 x 1000 partitions is a few round trips) and re-armed by the read each event triggers; one
thread applies the events in order. On /brokers/ids (children), /controller, /brokers/topics
(children), each topic's znode and each partition's state znode (an ``exists`` watch while a
state is not written yet).

Sessions: kazoo drops every such watch client-side when the connection is suspended or the
session lost (it does not hand them to the next connection). So the cache is ``loaded`` only
from a full re-sync on a connection until that connection ends; while it is not, Metadata falls
back to reading ZooKeeper (klog.cluster.metadata_view) and, without ZooKeeper, to what this
cache holds (the last view). A re-sync merges into what is held under the same version rules
rather than starting empty, and every read Metadata serves is merged in before it is served,
so no answer is older than one served before: a partition's leader epoch never goes back
(clients fence on it, KIP-320). Nothing is written to disk.

Staleness: a watch fires a little after the write it reports, as Kafka's UpdateMetadata lands a
little after the controller's decision; clients retry on the errors a stale answer causes.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Optional

from kazoo.exceptions import NoNodeError
from kazoo.protocol.states import EventType, KazooState

from klog.cluster.context import ControllerContext
from klog.cluster.metadata_view import build_view
from klog.server.cluster_view import MetadataView, missing_topic
from klog.protocol.errors import ErrorCode as EC

log = logging.getLogger("klog.cluster.metadata_cache")

RETRY_S = 0.2


class MetadataCache:
    """Thread contract: watches and session changes (kazoo's threads) only enqueue; the cache's
    thread reads ZooKeeper and applies; readers (the event loop, executor threads) take
    ``view`` / ``merge`` under ``_lock``, which no ZooKeeper read is made under."""

    def __init__(self, store, node_id: int = -1):
        self.store = store
        self.node_id = node_id
        self.context = ControllerContext()
        self.live: dict[int, tuple[int, dict]] = {}
        self.controller: Optional[int] = None
        self.loaded = False
        self.syncs = 0                  # full re-syncs done (tests wait on it)
        self._connection = 0            # bumped by each connection and each loss
        self._lock = threading.Lock()
        self._events: "queue.Queue" = queue.Queue()
        self._stopped = threading.Event()
        self._topics_path = store._path("brokers", "topics")
        self._thread = threading.Thread(target=self._run, name=f"klog-mdcache-{node_id}",
                                        daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> "MetadataCache":
        self.store.client.add_listener(self._session_state)
        self._thread.start()
        if self.store.client.connected:
            self._events.put(("sync", self._connection))
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._events.put(None)
        try:
            self.store.client.remove_listener(self._session_state)
        except Exception:   # noqa: BLE001 - not added (start failed early)
            pass
        if self._thread.ident is not None:
            self._thread.join(5)

    # -- kazoo's threads: only enqueue -------------------------------------------------------------
    def _session_state(self, state):
        with self._lock:
            self._connection += 1
            self.loaded = False
        if state == KazooState.CONNECTED:
            self._events.put(("sync", self._connection))

    def _watch(self, event):
        if self._stopped.is_set() or event.type == EventType.NONE:
            return                      # NONE: the connection went (a re-sync follows)
        path = event.path
        if path == self.store._path("brokers", "ids"):
            self._events.put(("brokers",))
        elif path == self.store._path("controller"):
            self._events.put(("controller",))
        elif path == self._topics_path:
            self._events.put(("topics",))
        elif path.startswith(self._topics_path + "/"):
            parts = path[len(self._topics_path) + 1:].split("/")
            if len(parts) == 1:
                self._events.put(("topic", parts[0]))
            elif len(parts) == 4 and parts[1] == "partitions" and parts[2].isdigit():
                self._events.put(("state", parts[0], int(parts[2])))

    # -- the cache's thread ------------------------------------------------------------------------
    def _run(self):
        following = None
        while not self._stopped.is_set():
            item, following = following or self._events.get(), None
            if item is None:
                return
            if item[0] == "state":
                # A controller's decision for many partitions is as many events: read together
                # (pipelined), not one round trip each.
                keys = [item[1:]]
                while following is None and not self._events.empty():
                    following = self._events.get()
                    if following is not None and following[0] == "state":
                        keys.append(following[1:])
                        following = None
                item = ("states", keys)
            try:
                getattr(self, "_on_" + item[0])(*item[1:])
            except Exception as e:   # noqa: BLE001 - ZooKeeper trouble: again, on this connection
                if self._stopped.is_set():
                    return
                log.warning("broker %d: metadata cache: %s failed (%s: %s); retrying",
                            self.node_id, item[0], type(e).__name__, e)
                if self.store.client.connected:
                    t = threading.Timer(RETRY_S, self._events.put, (item,))
                    t.daemon = True
                    t.start()

    def _on_sync(self, connection: int):
        """Everything read again (watches armed again) and merged; loaded if the connection
        it was read on is still the current one."""
        if connection != self._connection:
            return                      # a later connection's sync is queued
        live = self._read_brokers()
        controller = self._read_controller()
        names = self._list_topics()
        assignments = self._read_topics(names)
        states = self._read_states([(n, p) for n, a in assignments.items() if a is not None
                                    for p in a.partitions])
        with self._lock:
            self.live, self.controller = live, controller
            for name in [n for n in self.context.topics if assignments.get(n) is None]:
                self.context.remove_topic(name)
            self._merge_locked(assignments, states)
            if connection == self._connection:
                self.loaded = True
                self.syncs += 1

    def _on_brokers(self):
        # Both, in read_view's order, whichever changed: the controller a broker elects as it
        # joins is not answered after the brokers that joined later.
        live = self._read_brokers()
        controller = self._read_controller()
        with self._lock:
            self.live, self.controller = live, controller

    _on_controller = _on_brokers

    def _on_topics(self):
        names = set(self._list_topics())
        with self._lock:
            held = set(self.context.topics)
        for name in held - names:       # its znode's watch also says so; whichever comes first
            self._on_topic(name)
        self._add_topics(sorted(names - held))

    def _on_topic(self, name: str):
        self._add_topics([name])

    def _add_topics(self, names):
        """Read ``names`` (watching them) and, of those there, the states not held yet."""
        assignments = self._read_topics(names)
        with self._lock:
            for name, a in assignments.items():
                if a is None:
                    self.context.remove_topic(name)
                else:
                    self.context.set_topic(name, a)
            wanted = [(n, p) for n in assignments if n in self.context.topics
                      for p in self.context.missing_states(n)]
        states = self._read_states(wanted)
        with self._lock:
            self._merge_locked({}, states)

    def _on_states(self, keys):
        keys = list(dict.fromkeys(keys))
        states = self._read_states(keys)
        with self._lock:
            for key in keys:
                if key not in states:
                    # Deleted (with its topic, whose own watch follows; or by hand): a state
                    # written there again starts at version 0, so what is held would hide it.
                    self.context.states.pop(key, None)
            self._merge_locked({}, states)

    # -- reads (arming the watches) ----------------------------------------------------------------
    def _read_brokers(self) -> dict:
        self.store.client.get_children(self.store._path("brokers", "ids"), watch=self._watch)
        return self.store.live_brokers()

    def _read_controller(self) -> Optional[int]:
        if self.store.client.exists(self.store._path("controller"), watch=self._watch) is None:
            return None
        return self.store.controller()

    def _list_topics(self) -> list:
        return sorted(self.store.client.get_children(self._topics_path, watch=self._watch))

    def _read_topics(self, names) -> dict:
        # None for a topic gone (its re-creation shows in the children's watch).
        return self.store._read_pipelined({n: f"{self._topics_path}/{n}" for n in names},
                                          self.store._parse_topic, watch=self._watch)

    def _read_states(self, keys) -> dict:
        zk = self.store.client
        pending = {k: zk.get_async(self.store.state_path(*k), watch=self._watch) for k in keys}
        out, unwritten = {}, []
        for key, result in pending.items():
            path = self.store.state_path(*key)
            try:
                data, stat = result.get()
            except NoNodeError:
                unwritten.append((key, zk.exists_async(path, watch=self._watch)))  # its creation
                continue
            out[key] = self.store.parse_state(path, data, stat)
        for key, result in unwritten:
            if result.get() is not None:    # written in between: read it (and watch it) again
                self._events.put(("state", *key))
        return out

    # -- merging and answering ---------------------------------------------------------------------
    def _merge_locked(self, assignments: dict, states: dict) -> None:
        for name, a in assignments.items():
            if a is not None:
                self.context.set_topic(name, a)
        for (name, p), state in states.items():
            if state is not None:
                self.context.update_state(name, p, state)

    def merge(self, live, controller, assignments: dict, states: dict) -> tuple:
        """A view Metadata read from ZooKeeper itself (the cache not loaded), taken in (under
        the version rules) before it is served. Returns the parts to build the answer from:
        what is held then, so it is never older than an answer served before."""
        with self._lock:
            for name, a in assignments.items():
                if a is not None and name not in self.context.topics:
                    # Its creation's watch is still on the way (or the read is older than its
                    # deletion): the cache's thread reads and watches it.
                    self._events.put(("topic", name))
            self.live, self.controller = live, controller
            self._merge_locked(assignments, states)
            for name, a in assignments.items():
                if a is not None and self.context.topic_id(name) == a.topic_id:
                    assignments[name] = self.context.topics[name]
            held = {k: s for k, s in self.context.states.items()
                    if assignments.get(k[0]) is not None}
            return live, controller, assignments, held

    def view(self, names, *, unknown=EC.UNKNOWN_TOPIC_OR_PARTITION) -> MetadataView:
        """The view of ``names`` (every topic when None) from what is held; a name not held is
        answered ``unknown``."""
        with self._lock:
            view = build_view(self.live, self.controller, dict(self.context.topics),
                              self.context.states, names)
        if unknown != EC.UNKNOWN_TOPIC_OR_PARTITION:
            view.topics = [missing_topic(t["name"], unknown)
                           if t["error_code"] == EC.UNKNOWN_TOPIC_OR_PARTITION else t
                           for t in view.topics]
        return view

    def holds(self, name: str) -> bool:
        return name in self.context.topics
