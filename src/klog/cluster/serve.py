"""``klog serve --zookeeper``: joining the cluster at start, controlled shutdown at the end."""
from __future__ import annotations

import asyncio
import logging
import threading

from klog.cluster import admin_handlers, controlled_shutdown
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
    server.handlers = admin_handlers.install({**handlers.HANDLERS,
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
    Metadata answer leaves out) was left with no broker but the one going away.

    The ZooKeeper steps are bounded: kazoo waits without end for an answer while ZooKeeper does
    not answer (its session cannot expire on this side), and a broker told to stop must stop."""
    loop = asyncio.get_running_loop()
    bound = handover_bound_s(node)
    await loop.run_in_executor(None, run_bounded, node.controlled_shutdown, bound,
                               f"broker {node.node_id}: controlled shutdown")
    await server.stop_serving()
    await loop.run_in_executor(None, run_bounded, node.stop, STOP_BOUND_S,
                               f"broker {node.node_id}: leaving ZooKeeper")
    await server.stop()


STOP_BOUND_S = 15.0


def handover_bound_s(node: ClusterNode) -> float:
    """Every controlled-shutdown attempt with its backoff, then the wait for leadership to go."""
    attempts = max(1, node.shutdown_retries)
    per_attempt = controlled_shutdown.REQUEST_TIMEOUT_S + node.shutdown_backoff_ms / 1000
    return attempts * per_attempt + node.shutdown_timeout_s


def run_bounded(step, bound_s: float, what: str) -> bool:
    """Run ``step`` on a daemon thread and wait at most ``bound_s``; a step still blocked (on
    ZooKeeper) is left behind, logged, and does not keep the process alive. True if it ended."""
    ended = threading.Event()

    def run():
        try:
            step()
        except Exception:   # noqa: BLE001 - stopping anyway: a failed step must not hang it
            log.exception("%s failed", what)
        finally:
            ended.set()

    threading.Thread(target=run, name="klog-leave", daemon=True).start()
    if not ended.wait(bound_s):
        log.warning("%s did not end within %.0f s (ZooKeeper not answering?); stopping anyway",
                    what, bound_s)
        return False
    return True
