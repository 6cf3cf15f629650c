"""``klog serve --zookeeper``: joining the cluster at start, controlled shutdown at the end."""
from __future__ import annotations

import asyncio

from klog.cluster import handlers as cluster_handlers
from klog.cluster.node import ClusterNode
from klog.cluster.replication import ClusterReplication
from klog.server import handlers


async def join(server, node_id: int, zookeeper: str, *, replica_lag_time_max_ms=30_000):
    """Make a started ``Server`` a cluster member (see ClusterNode); returns the node."""
    loop = asyncio.get_running_loop()
    node = ClusterNode(server.broker, node_id, zookeeper,
                       unclean_leader_election=server.broker.config.topic_config(
                           {}).unclean_leader_election_enable,
                       replica_lag_time_max_ms=replica_lag_time_max_ms)
    node.changes.loop = loop
    server.cluster = node
    server.replication = ClusterReplication(server, node)
    server.handlers = {**handlers.HANDLERS, **cluster_handlers.HANDLERS}
    await loop.run_in_executor(None, node.start, *server.advertised)
    server.cluster_id = node.cluster_id
    return node


async def leave(server, node: ClusterNode):
    """Controlled shutdown, then stop replication and the server."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, node.controlled_shutdown)
    await loop.run_in_executor(None, node.stop)
    await server.stop()
