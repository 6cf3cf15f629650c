"""ZooKeeper reads a request handler may wait on only briefly.

While kazoo reconnects, its calls wait for the connection (up to the session timeout); a
request handler that called them would hold the client's request that long, and a client whose
request times out retries the same broker. Handlers read through ``read`` instead: not
connected (after ``RECONNECT_WAIT_S``), or no answer within ``ZOOKEEPER_WAIT_S``, raises
ZooKeeperUnavailableError and the handler answers from its last view or with a retriable
error, as Metadata does.
"""
from __future__ import annotations

import asyncio
import time

from klog.errors import KlogError
from klog.protocol.errors import ErrorCode as EC

ZOOKEEPER_WAIT_S = 5.0
# How long a request waits for kazoo to reconnect before it is answered without ZooKeeper: a
# connection dropped on a loaded machine (a late ping) comes back within this; a stopped
# ZooKeeper does not.
RECONNECT_WAIT_S = 2.0


class ZooKeeperUnavailableError(KlogError):
    """This broker cannot read ZooKeeper just now (disconnected or slow): ask again."""
    error_code = EC.REQUEST_TIMED_OUT


def wait_connected(node, timeout=RECONNECT_WAIT_S) -> bool:
    """Whether this broker is (within ``timeout``) connected to ZooKeeper; blocking."""
    deadline = time.monotonic() + timeout
    while not node.store.client.connected:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


async def connected(node, timeout=RECONNECT_WAIT_S) -> bool:
    """``wait_connected`` for the event loop."""
    deadline = time.monotonic() + timeout
    while not node.store.client.connected:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def read(node, fn, *args, timeout=None):
    """``fn(*args)`` on a worker thread, bounded: ZooKeeperUnavailableError when this broker is
    not connected to ZooKeeper (within RECONNECT_WAIT_S) or the call takes longer than
    ``timeout`` (ZOOKEEPER_WAIT_S)."""
    if not await connected(node):
        raise ZooKeeperUnavailableError("not connected to ZooKeeper")
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(loop.run_in_executor(None, fn, *args),
                                      ZOOKEEPER_WAIT_S if timeout is None else timeout)
    except asyncio.TimeoutError:
        raise ZooKeeperUnavailableError(
            f"no answer from ZooKeeper within {ZOOKEEPER_WAIT_S if timeout is None else timeout:g} s"
        ) from None
