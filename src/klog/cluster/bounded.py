"""ZooKeeper reads a request handler may wait on only briefly.

While kazoo reconnects, its calls wait for the connection (up to the session timeout); a
request handler that called them would hold the client's request that long, and a client whose
request times out retries the same broker. Handlers read through ``read`` instead: not
connected (after ``RECONNECT_WAIT_S``), or no answer within ``ZOOKEEPER_WAIT_S``, raises
ZooKeeperUnavailableError and the handler answers from its last view or with a retriable
error, as Metadata does. The controller's admin requests are bounded by their own timeout_ms
instead (``admin_call``).
"""
from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

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


# -- admin requests on the controller: bounded by the request's timeout_ms ----------------------
# CreateTopics, DeleteTopics, CreatePartitions and ElectLeaders read ZooKeeper and wait for the
# controller thread, which writes it; while ZooKeeper does not answer (stopped, or kazoo
# reconnecting) both would wait without bound. They run on these threads (never the default
# executor, which every other request's blocking work shares: a stalled ZooKeeper must not
# starve it), within the request's deadline: ``admin_call`` answers DeadlineExceededError when
# it passes, and the work left behind checks ``deadline_passed`` before each item, so a
# request answered REQUEST_TIMED_OUT does not start changing the cluster once ZooKeeper is back.
ADMIN_THREADS = 4
# timeout_ms <= 0 (Kafka: "do not wait for the change to complete"): bounded by this instead.
ADMIN_DEFAULT_TIMEOUT_S = 30.0

_admin_pool = None
_admin_pool_lock = threading.Lock()
_deadline = threading.local()     # the deadline of the admin request a worker thread runs


class DeadlineExceededError(KlogError):
    """The request's timeout_ms passed before ZooKeeper or the controller answered (what was
    already under way may still complete, as with Kafka's REQUEST_TIMED_OUT)."""
    error_code = EC.REQUEST_TIMED_OUT


def _pool() -> ThreadPoolExecutor:
    global _admin_pool
    with _admin_pool_lock:
        if _admin_pool is None:
            _admin_pool = ThreadPoolExecutor(ADMIN_THREADS, thread_name_prefix="klog-admin")
        return _admin_pool


def request_deadline(timeout_ms) -> float:
    """The monotonic deadline of a request with ``timeout_ms``."""
    seconds = timeout_ms / 1000 if timeout_ms and timeout_ms > 0 else ADMIN_DEFAULT_TIMEOUT_S
    return time.monotonic() + seconds


def time_left(default: float) -> float:
    """Seconds until the running admin request's deadline (``default`` outside one)."""
    deadline = getattr(_deadline, "at", None)
    return default if deadline is None else max(0.0, deadline - time.monotonic())


def deadline_passed() -> bool:
    deadline = getattr(_deadline, "at", None)
    return deadline is not None and time.monotonic() >= deadline


def _with_deadline(deadline, fn, args):
    _deadline.at = deadline
    try:
        return fn(*args)
    finally:
        _deadline.at = None


async def admin_call(node, deadline: float, fn, *args):
    """``fn(*args)`` on the admin threads, answered by ``deadline`` (monotonic): its result, or
    ZooKeeperUnavailableError (not connected to ZooKeeper) / DeadlineExceededError (no answer in
    time), both REQUEST_TIMED_OUT. ``fn`` sees the deadline (``time_left``, ``deadline_passed``)."""
    if not await connected(node, min(RECONNECT_WAIT_S, max(0.0, deadline - time.monotonic()))):
        raise ZooKeeperUnavailableError(f"broker {node.node_id} cannot reach ZooKeeper just now")
    loop = asyncio.get_running_loop()
    work = loop.run_in_executor(_pool(), _with_deadline, deadline, fn, args)
    try:
        return await asyncio.wait_for(asyncio.shield(work), max(0.0, deadline - time.monotonic()))
    except asyncio.TimeoutError:
        raise DeadlineExceededError(
            "no answer from ZooKeeper and the controller within the request's timeout_ms "
            "(ZooKeeper unreachable?); it may still be carried out") from None
