"""``ClusterNode``: what makes ``klog serve --zookeeper`` a member of a cluster.

Start: connect to ZooKeeper, take the cluster id (created by the first broker), check or write
``meta.properties`` (a data directory never changes cluster or node id), start the replica
manager (its watches apply the partition states), register ``/brokers/ids/<node id>`` (the broker
epoch; a previous session of this node that is still registered is waited out up to the session
timeout), and run a Controller (one broker of the cluster is elected).

Controlled shutdown (SIGTERM): stop fetching, then ask the controller to move leadership and ISR
membership away (ControlledShutdown, API 7, klog.cluster.controlled_shutdown: over the wire, or
on this broker's own controller thread if it is the controller, which then resigns), with
Kafka's retries. If no controller could be asked, the registration is deleted while the
ZooKeeper session stays open: the controller then moves whatever this broker leads as for a
dead broker. Either way this broker sees the new states (its produce answers turn
NOT_LEADER_OR_FOLLOWER) and stops once it leads nothing, or after ``shutdown_timeout_s``.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time

from kazoo.client import KazooState
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from klog.cluster import controlled_shutdown as shutdown_protocol
from klog.cluster import meta
from klog.cluster.controller import Controller
from klog.cluster.metadata_cache import MetadataCache
from klog.cluster.replica import Role
from klog.cluster.replica_manager import ReplicaManager
from klog.cluster.topic_configs import TopicConfigListener
from klog.cluster.zkstore import ClusterStore, NodeIdTakenError, ZooKeeperUnavailableError

log = logging.getLogger("klog.cluster.node")


class Changes:
    """What the server's event loop waits on, notified from any thread:

    - ``seq``: every change (an append, a high watermark, a role or ISR change). Long-polling
      consumer fetches and acks=all produces wait on it (``wait``).
    - ``log_seq`` and the per-partition wake-ups of ``wait_log``: the changes that may give a
      follower's fetch an answer: its partitions' log end moved, or a role / ISR change (its
      fetch may now be answered with an error). A high watermark that moved alone, or an append
      to another partition, gives a parked follower fetch no bytes: it would only read nothing
      and wait again (on a leader, two such passes per acks=all request with two followers; on
      every broker, the fetches parked for the partitions it leads at each append it makes as
      a follower). As Kafka's DelayedFetch of a follower, it waits for bytes of its own
      partitions. The follower learns a new high watermark from the next answer: at the next
      append, or after its fetch's max wait.

    ``on_partition_change(partition)`` is the listener of a hosted Partition (it fires on appends
    and on high watermark moves): it tells the two apart by the partition's log end.

    Cheap on the hot path: notifies until the waiters are woken schedule one wake-up, and a
    notify on the loop's own thread schedules it directly rather than through the loop's
    self-pipe."""

    def __init__(self):
        self.seq = 0
        self.log_seq = 0
        self._lock = threading.Lock()
        self._waiters: set = set()          # wait(): woken by every notify
        self._log_waiters: dict = {}        # wait_log(): (topic, partition) -> futures
        self._wake_scheduled = False
        self._wake_keys: set = set()        # partitions whose log end moved since the wake-up
        self._wake_all_logs = False         # a role / ISR change: every follower fetch
        self._ends: dict = {}               # (topic, partition) -> log end last seen
        self.loop = None

    def notify(self):
        """A role or ISR change (or anything else that may answer any waiting fetch)."""
        self._notify(None, True)

    def notify_high_watermark(self):
        """A high watermark moved (or an append nobody follows): not a follower's business."""
        self._notify(None, False)

    def notify_log(self, key):
        """The log end of partition ``key`` (topic, partition) moved."""
        self._notify(key, False)

    def on_partition_change(self, part):
        key = (part.topic, part.partition)
        end = part.log_end_offset
        if self._ends.get(key) != end:
            self._ends[key] = end
            self.notify_log(key)
        else:
            self.notify_high_watermark()

    def _notify(self, key, all_logs):
        loop = self.loop
        with self._lock:
            self.seq += 1
            wake_logs = False
            if all_logs or key is not None:
                self.log_seq += 1
                if all_logs and self._log_waiters:
                    self._wake_all_logs = wake_logs = True
                elif key in self._log_waiters:
                    self._wake_keys.add(key)
                    wake_logs = True
            if loop is None or self._wake_scheduled:
                return
            if not self._waiters and not wake_logs:
                return
            self._wake_scheduled = True
        try:
            if _running_loop() is loop:
                loop.call_soon(self._wake)
            else:
                loop.call_soon_threadsafe(self._wake)
        except RuntimeError:     # the loop is closed
            pass

    def _wake(self):
        with self._lock:
            self._wake_scheduled = False
            waiters, self._waiters = self._waiters, set()
            keys = list(self._log_waiters) if self._wake_all_logs else self._wake_keys
            self._wake_all_logs = False
            self._wake_keys = set()
        for key in keys:
            waiters |= self._log_waiters.pop(key, set())
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait(self, seen: int, timeout: float):
        """Until ``seq`` is no longer ``seen`` (or ``timeout`` seconds)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._waiters.add(fut)   # before the check: a notify from another thread then sees us
        try:
            await self._until(loop, fut, self.seq != seen, timeout)
        finally:
            self._waiters.discard(fut)

    async def wait_log(self, seen: int, timeout: float, keys):
        """Until the log end of one of the partitions ``keys`` moves or a role / ISR changes
        (or ``timeout`` seconds); at once if ``log_seq`` is no longer ``seen``."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        for key in keys:         # before the check, as in ``wait``
            self._log_waiters.setdefault(key, set()).add(fut)
        try:
            await self._until(loop, fut, self.log_seq != seen, timeout)
        finally:
            for key in keys:
                futs = self._log_waiters.get(key)
                if futs is not None:
                    futs.discard(fut)
                    if not futs:
                        del self._log_waiters[key]

    @staticmethod
    async def _until(loop, fut, changed, timeout):
        if changed or timeout <= 0:
            return
        # A timer on the future itself: asyncio.wait_for would add a future and a loop
        # iteration to every wake-up.
        timer = loop.call_later(timeout, _resolve, fut)
        try:
            await fut
        finally:
            timer.cancel()


def _running_loop():
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _resolve(fut):
    if not fut.done():
        fut.set_result(None)


class ClusterNode:
    def __init__(self, broker, node_id: int, connect: str, *, unclean_leader_election=False,
                 replica_lag_time_max_ms=30_000, session_timeout_ms=6000,
                 connection_timeout_ms=10_000, shutdown_timeout_s=30.0, controlled_shutdown_max_retries=3,
                 controlled_shutdown_retry_backoff_ms=5000):
        self.broker = broker
        self.node_id = node_id
        self.store = ClusterStore(connect, session_timeout_ms=session_timeout_ms,
                                  connect_timeout_s=connection_timeout_ms / 1000)
        self.session_timeout_ms = session_timeout_ms
        self.unclean = unclean_leader_election
        self.shutdown_timeout_s = shutdown_timeout_s
        self.shutdown_retries = controlled_shutdown_max_retries
        self.shutdown_backoff_ms = controlled_shutdown_retry_backoff_ms
        self.changes = Changes()
        self.manager = ReplicaManager(broker, self.store, node_id,
                                      replica_lag_time_max_ms=replica_lag_time_max_ms,
                                      on_change=self.changes.notify,
                                      on_high_watermark=self.changes.notify_high_watermark,
                                      on_partition_change=self.changes.on_partition_change)
        self.controller = None
        self.metadata_cache = MetadataCache(self.store, node_id)   # what Metadata answers from
        self.cluster_id = None
        self.broker_epoch = -1
        # Every append of the broker wakes consumers and acks=all produces; follower fetches
        # wake through their partitions' own listeners (on_partition_change).
        self._on_append = lambda _log=None: self.changes.notify_high_watermark()
        self._session_lost = False
        self._stopping = False
        self._address = None

    def start(self, host: str, port: int) -> "ClusterNode":
        self.store.start()
        try:
            self.metadata_cache.start()
            self.cluster_id = self.store.cluster_id()
            meta.check_or_write(self.broker.data_dir, self.node_id, self.cluster_id)
            self.broker.add_append_listener(self._on_append)
            TopicConfigListener(self.manager).start()     # applied once the manager runs
            self.manager.start()
            self.broker_epoch = self.manager.broker_epoch = self._register(host, port)
            self._address = (host, port)
            self.store.client.add_listener(self._session_state)
            config = self.broker.config
            self.controller = Controller(
                self.store, self.node_id, lambda b, d: None,
                unclean_leader_election=self.unclean, scheduler=self.broker.scheduler,
                auto_leader_rebalance=config["auto.leader.rebalance.enable"],
                imbalance_check_interval_s=config["leader.imbalance.check.interval.seconds"],
                imbalance_per_broker_percentage=config["leader.imbalance.per.broker.percentage"],
            ).start()
        except (KazooException, KazooTimeoutError) as e:
            # ZooKeeper went away (or stalled) while joining: one line, not a traceback.
            self.stop()
            raise ZooKeeperUnavailableError(
                f"ZooKeeper at {self.store.hosts} failed while broker {self.node_id} was "
                f"joining: {type(e).__name__} {e}".rstrip()) from None
        except BaseException:
            self.stop()
            raise
        log.info("broker %d joined cluster %s at %s (broker epoch %d)", self.node_id,
                 self.cluster_id, self.store.connect, self.broker_epoch)
        return self

    def _session_state(self, state):
        # kazoo's thread: never block here. A lost session took the registration with it; the
        # watches come back by themselves (kazoo's recipes), the registration does not.
        if state == KazooState.LOST:
            self._session_lost = True
        elif state == KazooState.CONNECTED and self._session_lost and not self._stopping:
            self._session_lost = False
            threading.Thread(target=self._reregister, daemon=True,
                             name=f"klog-reregister-{self.node_id}").start()

    def _reregister(self):
        try:
            self.broker_epoch = self.manager.broker_epoch = self._register(*self._address)
            log.warning("broker %d: ZooKeeper session was lost; registered again (broker epoch "
                        "%d)", self.node_id, self.broker_epoch)
        except Exception as e:      # noqa: BLE001 - logged; the next session loss tries again
            log.error("broker %d: could not register again after a lost session: %s",
                      self.node_id, e)

    def _register(self, host, port) -> int:
        # A previous process of this node may still be registered until its session expires:
        # one that registered this very address (which this process now holds, so that one
        # serves nothing) is waited out; a registration with another address is another live
        # broker with this id, refused at once (as Kafka does).
        deadline = time.monotonic() + self.session_timeout_ms / 1000 * 2 + 5
        while True:
            try:
                return self.store.register_broker(self.node_id, host, port)
            except NodeIdTakenError as e:
                holder = self.store.live_brokers().get(self.node_id)
                where = holder and (holder[1].get("host"), holder[1].get("port"))
                if where and where != (host, port):
                    raise NodeIdTakenError(
                        f"node id {self.node_id} is already registered in ZooKeeper "
                        f"{self.store.connect} by a live broker at {where[0]}:{where[1]} "
                        f"(broker epoch {holder[0]}); give each broker its own --node-id"
                    ) from None
                if time.monotonic() > deadline:
                    raise e from None
                time.sleep(0.2)

    @property
    def is_controller(self) -> bool:
        return self.controller is not None and self.controller.is_controller

    def leads_anything(self) -> bool:
        return any(h.replica.role is Role.LEADER for h in list(self.manager.partitions.values()))

    def controlled_shutdown(self) -> None:
        """Move leadership away before stopping (see the module docstring). Blocking."""
        deadline = time.monotonic() + self.shutdown_timeout_s
        self._stopping = True          # no registering again from here on
        log.info("broker %d: controlled shutdown: moving leadership away", self.node_id)
        self.manager.stop_fetching()
        moved = shutdown_protocol.request(self, max_retries=self.shutdown_retries,
                                          retry_backoff_ms=self.shutdown_backoff_ms)
        try:
            if self.is_controller:
                self.controller.stop()
                self.store.release_controller()
            if not moved:
                self.store.client.delete(self.store._path("brokers", "ids", self.node_id))
        except NoNodeError:
            pass
        except Exception as e:    # ZooKeeper gone: nothing to hand over through it
            log.warning("broker %d: controlled shutdown could not reach ZooKeeper: %s",
                        self.node_id, e)
            return
        while self.leads_anything() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.leads_anything():
            log.warning("broker %d: still leading partitions after %.0f s; stopping anyway",
                        self.node_id, self.shutdown_timeout_s)

    def stop(self) -> None:
        self._stopping = True
        if self.controller is not None:
            self.controller.stop()
        self.manager.stop()
        self.metadata_cache.stop()
        try:
            self.broker.remove_append_listener(self._on_append)
        except Exception:
            pass
        try:
            self.store.close()
        except Exception:
            pass
