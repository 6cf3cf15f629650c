"""A cluster member's Metadata view (``ClusterReplication.metadata_view``): the live brokers,
the controller, and per partition the leader, leader epoch, replicas, ISR and offline replicas.
The one Metadata handler (klog.server.topic_metadata) answers from it.

It comes from the broker's MetadataCache (klog.cluster.metadata_cache, kept by ZooKeeper
watches) when that is loaded; otherwise (start, a connection lost and not yet re-synced), or
for a topic asked by name the cache does not hold, from ZooKeeper, read here and merged into
the cache before it is served.

While ZooKeeper is unreachable (not connected, or no answer within METADATA_ZOOKEEPER_WAIT_S)
the answer is the last view the cache holds (Kafka's metadata cache), never "this broker alone":
librdkafka forgets the brokers a Metadata answer leaves out. A topic that view does not hold is
LEADER_NOT_AVAILABLE then (retriable), not unknown.
"""
from __future__ import annotations

import asyncio
import logging

from klog.protocol.errors import ErrorCode as EC
from klog.server.cluster_view import (MetadataView, broker_entry, missing_topic,
                                      partition_entry, topic_entry)

METADATA_ZOOKEEPER_WAIT_S = 5.0


def read_view(store, names) -> MetadataView:
    """The view from ZooKeeper (blocking reads; the topics' and then the partitions' reads
    pipelined: a few round trips whatever the number of partitions, not one each)."""
    return build_view(*read_cluster(store, names), names)


def read_cluster(store, names):
    """(live brokers, controller, {name: TopicAssignment or None}, {(name, partition):
    LeaderAndIsr or None}) of the topics ``names`` (all when None), read from ZooKeeper."""
    live = store.live_brokers()
    controller = store.controller()
    all_topics = set(store.topics())
    wanted = sorted(all_topics) if names is None else names
    assignments = store.topics_async([n for n in dict.fromkeys(wanted) if n in all_topics])
    states = store.partition_states([(name, p) for name, a in assignments.items()
                                     if a is not None for p in a.partitions])
    return live, controller, assignments, states


def build_view(live, controller, assignments, states, names) -> MetadataView:
    """The Metadata view of ``names`` (every topic of ``assignments`` when None) from the
    cluster's parts: ``live`` {broker: (epoch, registration)}, ``controller`` (None if none),
    ``assignments`` {name: TopicAssignment or None}, ``states`` {(name, partition):
    LeaderAndIsr}, a partition without one answered LEADER_NOT_AVAILABLE."""
    wanted = sorted(n for n, a in assignments.items() if a is not None) if names is None else names
    topics = []
    for name in wanted:
        assignment = assignments.get(name)
        if assignment is None:        # not there, or deleted between the two reads
            topics.append(missing_topic(name))
            continue
        parts = []
        for p, replicas in sorted(assignment.partitions.items()):
            state = states.get((name, p))
            if state is None:          # created but its state not written yet
                parts.append(partition_entry(p, -1, -1, replicas, ()))
                continue
            parts.append(partition_entry(
                p, state.leader if state.leader in live else -1, state.leader_epoch, replicas,
                state.isr, [r for r in replicas if r not in live]))
        topics.append(topic_entry(name, assignment.topic_id, parts))
    brokers = [broker_entry(b, info["host"], info["port"]) for b, (_, info) in sorted(live.items())]
    return MetadataView(brokers, -1 if controller is None else controller, topics)


def _read_and_merge(cache, store, names) -> MetadataView:
    return build_view(*cache.merge(*read_cluster(store, names)), names)


async def metadata_view(server, node, names) -> MetadataView:
    cache = node.metadata_cache
    # Loaded: the cache answers, unless a topic asked by name is not held (created a moment ago,
    # its watch not in yet; or not there): then ZooKeeper is read, for the names asked.
    if cache.loaded and (names is None or all(cache.holds(n) for n in names)):
        return cache.view(names)
    try:
        # Reads wait while kazoo reconnects: not connected, or no answer soon, is "without".
        if not node.store.client.connected:
            raise ConnectionError("not connected to ZooKeeper")
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(
            loop.run_in_executor(None, _read_and_merge, cache, node.store, names),
            METADATA_ZOOKEEPER_WAIT_S)
    except Exception as exc:   # noqa: BLE001 - ZooKeeper unreachable (or stopping): say so
        server.conditions.report(("Metadata", type(exc).__name__), logging.WARNING,
                                 "Metadata without ZooKeeper: %s", exc)
    view = cache.view(names, unknown=EC.LEADER_NOT_AVAILABLE)    # the last view
    if not view.brokers:
        host, port = server.advertised
        view.brokers = [broker_entry(node.node_id, host, port)]
    return view
