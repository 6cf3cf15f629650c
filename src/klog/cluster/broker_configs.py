"""Cluster-wide broker defaults in cluster mode: Kafka's dynamic default broker configs (the
BROKER config resource named ""), kept in ZooKeeper so every broker runs with them.

In ZooKeeper (Kafka's layout and JSON):

    /config/brokers/<default>   {"version":1,"config":{"log.retention.ms":"...",...}}
    /config/changes/config_change_N   {"version":2,"entity_path":"brokers/<default>"}

A broker that receives AlterConfigs / IncrementalAlterConfigs on resource "" validates the new
defaults as its own, then writes them by compare-and-set on the znode's version together with
a change notification, in one multi-op (as Kafka's brokers do; no controller involved), and
applies them at once. Every broker watches ``/config/changes`` (klog.cluster.topic_configs'
listener) and, on a notification naming ``brokers/<default>``, re-reads the znode and makes it
its ``DYNAMIC_DEFAULT_BROKER_CONFIG`` layer (``Broker.alter_broker_config(cluster_default=True)``,
which also persists it locally): logs whose topic sets no override take the new values, and the
replicas the resulting ``min.insync.replicas``. A broker's own dynamic settings (resource
"<node id>", kept in its data directory) stay above the defaults. A broker starting, or coming
back, reads the znode once, so the defaults survive restarts and purged notifications.

Crash behaviour: the znode and its notification are written together or not at all; a broker
that dies before applying a notification applies the znode when it starts.
"""
from __future__ import annotations

import json
import logging
import time

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError, RolledBackError

from klog.broker_config import CLUSTER_DEFAULT, config_string
from klog.config import DYNAMIC_BROKER_CONFIGS
from klog.errors import KlogError

log = logging.getLogger("klog.cluster.broker_configs")

DEFAULT_ENTITY = "<default>"
ENTITY_PATH = f"brokers/{DEFAULT_ENTITY}"
CHANGE_PREFIX = "config_change_"
CHANGE_EXPIRY_MS = 15 * 60 * 1000      # as the topic-config notifications (Kafka's)
CAS_ATTEMPTS = 10


class CorruptBrokerDefaultsError(KlogError):
    """``/config/brokers/<default>`` does not hold Kafka's config JSON."""


def _path(store):
    return store._path("config", "brokers", DEFAULT_ENTITY)


def read_defaults(store) -> tuple[dict, int]:
    """(config, znode version) of the cluster-wide defaults; ({}, -1) when none were set."""
    path = _path(store)
    try:
        raw, stat = store.client.get(path)
    except NoNodeError:
        return {}, -1
    try:
        value = json.loads(raw.decode("utf-8"))
        config = value["config"]
        if not isinstance(config, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in config.items()):
            raise ValueError("not a map of strings")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise CorruptBrokerDefaultsError(
            f"ZooKeeper node {path}: bad broker config ({exc}): {raw[:200]!r}") from None
    return dict(config), stat.version


def write_defaults(store, config: dict, version: int) -> None:
    """Replace the defaults by compare-and-set on ``version`` (-1: the znode is new) with a
    change notification, in one multi-op; BadVersionError (or NodeExistsError) if they changed
    since they were read."""
    zk = store.client
    zk.ensure_path(store._path("config", "brokers"))
    zk.ensure_path(store._path("config", "changes"))
    path = _path(store)
    data = json.dumps({"version": 1, "config": dict(sorted(config.items()))}).encode()
    t = zk.transaction()
    if version < 0:
        t.create(path, data)
    else:
        t.set_data(path, data, version=version)
    t.create(store._path("config", "changes", CHANGE_PREFIX),
             json.dumps({"version": 2, "entity_path": ENTITY_PATH}).encode(), sequence=True)
    now_ms = time.time() * 1000
    for child in zk.get_children(store._path("config", "changes")):
        stat = zk.exists(store._path("config", "changes", child))
        if stat is not None and now_ms - stat.ctime > CHANGE_EXPIRY_MS:
            t.delete(store._path("config", "changes", child), version=stat.version)
    results = t.commit()
    errors = [r for r in results if isinstance(r, Exception)
              and not isinstance(r, RolledBackError)]
    if errors:
        raise errors[0]


def default_changes(store, seqs_after: int) -> list[int]:
    """The sequence numbers (> ``seqs_after``) of notifications naming the defaults."""
    zk = store.client
    out = []
    for child in zk.get_children(store._path("config", "changes")):
        seq = child[len(CHANGE_PREFIX):]
        if not child.startswith(CHANGE_PREFIX) or not seq.isdigit() or int(seq) <= seqs_after:
            continue
        try:
            raw, _ = zk.get(store._path("config", "changes", child))
            entity = json.loads(raw.decode("utf-8")).get("entity_path")
        except (NoNodeError, UnicodeDecodeError, ValueError, AttributeError):
            continue          # purged meanwhile, or not Kafka's JSON: not ours to judge
        if entity == ENTITY_PATH:
            out.append(int(seq))
    return sorted(out)


def _layer_changes(current: dict, wanted: dict) -> dict:
    changes = {k: None for k in current if k not in wanted}
    changes.update((k, v) for k, v in wanted.items() if current.get(k) != v)
    return changes


def apply_defaults(manager) -> None:
    """Make this broker's cluster-default layer ZooKeeper's (blocking reads)."""
    from klog.cluster.topic_configs import apply_broker_config
    broker = manager.broker
    try:
        wanted, _ = read_defaults(manager.store)
    except CorruptBrokerDefaultsError as exc:    # keep running as before, say why
        log.error("broker %d: %s", manager.node_id, exc)
        return
    unusable = sorted(k for k in wanted if k not in DYNAMIC_BROKER_CONFIGS)
    if unusable:       # written by something else (a newer Kafka tool): not klog's to run
        log.error("broker %d: ignoring broker defaults klog cannot change at run time in "
                  "ZooKeeper %s: %s", manager.node_id, _path(manager.store), ", ".join(unusable))
        wanted = {k: v for k, v in wanted.items() if k not in unusable}
    changes = _layer_changes(broker.dynamic_config.layer_values(CLUSTER_DEFAULT), wanted)
    if not changes:
        return
    try:
        broker.alter_broker_config(changes, cluster_default=True)
    except (KlogError, ValueError, TypeError) as exc:
        log.error("broker %d: cannot apply the broker defaults %r from ZooKeeper: %s",
                  manager.node_id, wanted, exc)
        return
    log.info("broker %d: cluster-wide broker defaults now %r", manager.node_id, wanted)
    apply_broker_config(manager)


def alter_defaults(manager, changes: dict, validate_only: bool = False) -> None:
    """Change the cluster-wide defaults (``changes``: name -> value, None removes): validated
    as this broker's own default layer (ConfigError / ReadOnlyConfigError), written to
    ZooKeeper unless ``validate_only``, and applied here at once."""
    broker, store = manager.broker, manager.store
    for _ in range(CAS_ATTEMPTS):
        config, version = read_defaults(store)
        new = dict(config)
        for key, value in changes.items():
            if value is None:
                new.pop(key, None)
            else:
                new[key] = config_string(value)
        layer = broker.dynamic_config.layer_values(CLUSTER_DEFAULT)
        broker.alter_broker_config({**_layer_changes(layer, new), **changes},
                                   cluster_default=True, validate_only=True)
        if validate_only:
            return
        try:
            write_defaults(store, new, version)
        except (BadVersionError, NodeExistsError):
            continue            # changed meanwhile: apply the changes to what is there now
        apply_defaults(manager)
        return
    from klog.server.admin import InvalidRequestError
    raise InvalidRequestError("the cluster-wide broker defaults kept changing; try again")
