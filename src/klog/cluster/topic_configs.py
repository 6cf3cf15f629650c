"""Topic configs in cluster mode: every broker runs its local partitions with the overrides in
``/config/topics/<topic>`` (Kafka's ``TopicConfigHandler`` fed by
``ZkNodeChangeNotificationListener``).

The controller writes a topic's config and a sequential ``/config/changes/config_change_N``
notification naming it in one multi-op (``ClusterStore.set_topic_config``). Each broker watches
``/config/changes`` and, for every notification newer than the last it handled, re-reads the
topic's config and applies it: the local overrides are replaced (so retention, cleanup and
segment settings take effect on its logs at once) and the replicas take the new
``min.insync.replicas`` for acks=all. A topic created later is created with its current config,
and a broker that was away re-reads the config of every topic it holds when it comes back
(notifications older than 15 minutes are deleted by the next config write, as in Kafka).
Notifications are applied on the replica manager's thread, in order with topic changes. The
same listener applies the cluster-wide broker defaults (``brokers/<default>`` notifications,
klog.cluster.broker_configs), and once at start.
"""
from __future__ import annotations

import logging

from kazoo.recipe.watchers import ChildrenWatch

from klog.cluster import broker_configs
from klog.errors import KlogError
from klog.group.offsets import OFFSETS_TOPIC

log = logging.getLogger("klog.cluster.topic_configs")


def offsets_topic_config(broker) -> dict:
    """``__consumer_offsets``' own config, as the offsets store creates it."""
    return {"cleanup.policy": "compact",
            "segment.bytes": str(broker.config["offsets.topic.segment.bytes"])}


class TopicConfigListener:
    def __init__(self, manager):
        self.manager = manager
        self.store = manager.store
        self._handled = -1          # the last notification's sequence number handled
        self._handled_defaults = -1  # the same, of those naming the broker defaults

    def start(self) -> "TopicConfigListener":
        self.store.ensure_admin_paths()
        ChildrenWatch(self.store.client, self.store._path("config", "changes"), self._changed)
        self.manager.submit(broker_configs.apply_defaults, self.manager)   # set while away
        return self

    def _changed(self, children):     # kazoo's thread: only enqueue
        if self.manager.stopped:
            return False
        if children:
            self.manager.submit(self._process)

    def _process(self):
        new = [(seq, topic) for seq, topic in self.store.config_changes() if seq > self._handled]
        for topic in dict.fromkeys(topic for _, topic in new):    # each topic once
            apply_topic_config(self.manager, topic)
        if new:
            self._handled = new[-1][0]
        defaults = broker_configs.default_changes(self.store, self._handled_defaults)
        if defaults:
            broker_configs.apply_defaults(self.manager)
            self._handled_defaults = defaults[-1]


def apply_topic_config(manager, name: str) -> None:
    """Make the local topic ``name`` (if held here) run with ZooKeeper's overrides."""
    broker = manager.broker
    known = manager.topic_ids.get(name)
    if known is None or not broker.has_topic(name) \
            or broker.describe_topic(name).topic_id != str(known):
        return          # not held here (or not this incarnation): created with the current config
    overrides, _ = manager.store.topic_config(name)
    if name == OFFSETS_TOPIC:
        overrides = {**offsets_topic_config(broker), **overrides}
    changes = {k: None for k in broker.topic_overrides(name) if k not in overrides}
    changes.update(overrides)
    try:
        broker.alter_topic_config(name, changes)
    except (KlogError, ValueError, TypeError) as exc:
        # The controller validated it; something else wrote it. Keep running as before.
        log.error("broker %d: topic %s: cannot apply config %r from ZooKeeper: %s",
                  manager.node_id, name, overrides, exc)
        return
    _sync_min_insync_replicas(manager, name)
    log.info("broker %d: topic %s now runs with %r", manager.node_id, name, overrides)
    manager.on_change()


def apply_broker_config(manager) -> None:
    """After a dynamic broker config change on this broker: the local logs already run with it
    where their topic sets no override (``Broker.alter_broker_config``); the replicas take the
    resulting ``min.insync.replicas`` for acks=all too, as Kafka's dynamic broker config does."""
    _sync_min_insync_replicas(manager)
    manager.on_change()


def _sync_min_insync_replicas(manager, topic=None) -> None:
    for hosted in list(manager.partitions.values()):
        if topic is None or hosted.topic == topic:
            with hosted.lock:
                hosted.replica.min_insync_replicas = hosted.part.config.min_insync_replicas
