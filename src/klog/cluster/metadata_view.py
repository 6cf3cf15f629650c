"""A cluster member's Metadata view (``ClusterReplication.metadata_view``): the live brokers,
the controller, and per partition the leader, leader epoch, replicas, ISR and offline replicas,
read from ZooKeeper. The one Metadata handler (klog.server.topic_metadata) answers from it.

While ZooKeeper is unreachable (not connected, or no answer within METADATA_ZOOKEEPER_WAIT_S)
the answer is the last view read (Kafka's metadata cache), never "this broker alone":
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
    live = store.live_brokers()
    controller = store.controller()
    all_topics = set(store.topics())
    wanted = sorted(all_topics) if names is None else names
    assignments = store.topics_async([n for n in dict.fromkeys(wanted) if n in all_topics])
    states = store.partition_states([(name, p) for name, a in assignments.items()
                                     if a is not None for p in a.partitions])
    topics = []
    for name in wanted:
        assignment = assignments.get(name)
        if assignment is None:        # not there, or deleted between the two reads
            topics.append(missing_topic(name))
            continue
        parts = []
        for p, replicas in sorted(assignment.partitions.items()):
            state = states[(name, p)]
            if state is None:          # created but its state not written yet
                parts.append(partition_entry(p, -1, -1, replicas, ()))
                continue
            parts.append(partition_entry(
                p, state.leader if state.leader in live else -1, state.leader_epoch, replicas,
                state.isr, [r for r in replicas if r not in live]))
        topics.append(topic_entry(name, assignment.topic_id, parts))
    brokers = [broker_entry(b, info["host"], info["port"]) for b, (_, info) in sorted(live.items())]
    return MetadataView(brokers, -1 if controller is None else controller, topics)


async def metadata_view(server, node, names) -> MetadataView:
    cache = node.metadata_cache
    try:
        # Reads wait while kazoo reconnects: not connected, or no answer soon, is "without".
        if not node.store.client.connected:
            raise ConnectionError("not connected to ZooKeeper")
        loop = asyncio.get_running_loop()
        view = await asyncio.wait_for(loop.run_in_executor(None, read_view, node.store, names),
                                      METADATA_ZOOKEEPER_WAIT_S)
        cache.update(brokers=view.brokers, controller=view.controller_id)
        cache.setdefault("topics", {}).update(
            (t["name"], dict(t)) for t in view.topics if not t["error_code"])
        return view
    except Exception as exc:   # noqa: BLE001 - ZooKeeper unreachable (or stopping): say so
        server.conditions.report(("Metadata", type(exc).__name__), logging.WARNING,
                                 "Metadata without ZooKeeper: %s", exc)
    host, port = server.advertised
    brokers = cache.get("brokers") or [broker_entry(node.node_id, host, port)]
    known = cache.get("topics", {})
    topics = [dict(t) for t in known.values()] if names is None else [
        dict(known[n]) if n in known else missing_topic(n, EC.LEADER_NOT_AVAILABLE)
        for n in names]
    return MetadataView(brokers, cache.get("controller", -1), topics)
