"""``klog serve --zookeeper``: joining the cluster at start, controlled shutdown at the end."""
from __future__ import annotations

import asyncio
import logging

from klog.cluster import admin_handlers, controlled_shutdown
from klog.cluster import handlers as cluster_handlers
from klog.cluster.node import ClusterNode
from klog.cluster.replication import ClusterReplication
from klog.server import handlers

log = logging.getLogger("klog.cluster.serve")


async def join(server, node_id: int, zookeeper: str, **settings):
    """Make a started ``Server`` a cluster member (see ClusterNode); returns the node.
    ``settings``: ClusterNode's keyword arguments (replica_lag_time_max_ms, ...)."""
    loop = asyncio.get_running_loop()
    node = ClusterNode(server.broker, node_id, zookeeper,
                       unclean_leader_election=server.broker.config.topic_config(
                           {}).unclean_leader_election_enable, **settings)
    node.changes.loop = loop
    server.cluster = node
    server.replication = ClusterReplication(server, node)
    server.handlers = admin_handlers.install({**handlers.HANDLERS, **cluster_handlers.HANDLERS,
                                              **controlled_shutdown.HANDLERS})
    await loop.run_in_executor(None, node.start, *server.advertised)
    server.cluster_id = node.cluster_id
    server.release_requests()     # held (if the caller held them) until this broker has joined
    return node


async def leave(server, node: ClusterNode):
    """Controlled shutdown; then stop serving clients; then stop replication and close the
    ZooKeeper session; then close the broker (Kafka's order: the socket server stops before the
    ZooKeeper client). The other way round, a Metadata request answered after the session closed
    named this broker alone, and a client that believes Metadata (librdkafka forgets brokers a
    Metadata answer leaves out) was left with no broker but the one going away."""
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, node.controlled_shutdown)
    except Exception:       # noqa: BLE001 - stopping anyway: a failed handover must not hang it
        log.exception("broker %d: controlled shutdown failed", node.node_id)
    await server.stop_serving()
    await loop.run_in_executor(None, node.stop)
    await server.stop()
