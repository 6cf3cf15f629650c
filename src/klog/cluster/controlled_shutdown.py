"""ControlledShutdown (API 7): a broker that is stopping asks the controller to move leadership
and ISR membership away from it first (Kafka's ZooKeeper-mode protocol, KIP-380 broker epochs).

Asking (``request``, on the stopping broker): find the controller in ``/controller``, send
ControlledShutdown(broker_id, broker_epoch) and read which partitions the broker still leads;
done when none. Otherwise try again after ``controlled.shutdown.retry.backoff.ms``, at most
``controlled.shutdown.max.retries`` attempts, as Kafka does; then give up (the caller falls back
to deleting its registration, so the controller moves what it can once the broker is gone). A
broker that is the controller itself does the same on its own controller thread.

Answering (``handle``, on the controller): NOT_CONTROLLER from any other broker;
BROKER_NOT_AVAILABLE for a broker that is not registered; STALE_BROKER_EPOCH when the epoch in
the request is not the registration's (the request comes from an earlier life of that broker
id, and must not move leadership away from the live one); otherwise
``Controller.controlled_shutdown`` on the controller thread (decided from its cached view, the
writes sent together), and the partitions whose leadership could not move (the broker is their
only in-sync replica) are the answer.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass

from klog.protocol.errors import ErrorCode as EC
from klog.protocol import blocking
from klog.protocol.messages import ApiKey

log = logging.getLogger("klog.cluster.controlled_shutdown")

VERSION = 3
CONTROLLER_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Outcome:
    """The controller's answer: an error code and the partitions still led by the broker."""

    error: int
    remaining: tuple = ()          # (topic, partition) pairs

    @property
    def done(self) -> bool:
        return self.error == EC.NONE and not self.remaining


# -- the controller's side -----------------------------------------------------------------------
def on_controller_thread(controller, broker_id: int, broker_epoch: int) -> Outcome:
    """Run through ``Controller.submit``: the checks and the move, one controller event."""
    if not controller.is_controller:
        return Outcome(EC.NOT_CONTROLLER)
    store = controller.store
    live = store.live_brokers()
    if broker_id not in live:
        return Outcome(EC.BROKER_NOT_AVAILABLE)
    if broker_epoch != -1 and broker_epoch != live[broker_id][0]:
        return Outcome(EC.STALE_BROKER_EPOCH)
    controller.controlled_shutdown(broker_id, live)
    return Outcome(EC.NONE, tuple(controller.ctx.led_by(broker_id)))


def ask_local_controller(node, broker_id: int, broker_epoch: int) -> Outcome:
    """Blocking: the controlled shutdown of ``broker_id`` on ``node``'s controller."""
    from klog.cluster.zkstore import NotControllerError

    if not node.is_controller:
        return Outcome(EC.NOT_CONTROLLER)
    done = node.controller.submit(on_controller_thread, node.controller, broker_id, broker_epoch)
    result = done.get(timeout=CONTROLLER_TIMEOUT_S)
    if isinstance(result, NotControllerError):
        return Outcome(EC.NOT_CONTROLLER)
    if isinstance(result, Exception):
        raise result
    return result


async def handle(ctx, body):
    """The server's ControlledShutdown handler in cluster mode."""
    node = ctx.server.cluster
    broker_epoch = body.get("broker_epoch", -1) if ctx.version >= 2 else -1
    try:
        outcome = await asyncio.get_running_loop().run_in_executor(
            None, ask_local_controller, node, body["broker_id"], broker_epoch)
    except Exception as exc:       # noqa: BLE001 - ZooKeeper trouble: the broker asks again
        log.warning("controlled shutdown of broker %d failed: %s", body["broker_id"], exc)
        outcome = Outcome(EC.UNKNOWN_SERVER_ERROR)
    return {"error_code": outcome.error, "remaining_partitions": [
        {"topic_name": t, "partition_index": p} for t, p in outcome.remaining]}


HANDLERS = {ApiKey.CONTROLLED_SHUTDOWN: handle}


# -- the stopping broker's side ----------------------------------------------------------------------
def send(address, broker_id: int, broker_epoch: int, *, version: int = VERSION,
         timeout_s: float = REQUEST_TIMEOUT_S) -> Outcome:
    """One ControlledShutdown request to the broker at ``address`` (blocking)."""
    with socket.create_connection(address, timeout=timeout_s) as s:
        resp = blocking.call(s, ApiKey.CONTROLLED_SHUTDOWN, version,
                             {"broker_id": broker_id, "broker_epoch": broker_epoch},
                             client_id=f"klog-broker-{broker_id}", peer="the controller")
    return Outcome(resp["error_code"], tuple(
        (r["topic_name"], r["partition_index"]) for r in resp["remaining_partitions"]))


def request(node, *, max_retries: int = 3, retry_backoff_ms: int = 5000) -> bool:
    """Ask the controller (another broker over the wire, or this one's own) to move leadership
    away from ``node``; True once it leads nothing in ZooKeeper's view. Blocking."""
    for attempt in range(1, max(1, max_retries) + 1):
        try:
            controller = node.store.controller()
            if controller == node.node_id:
                outcome = ask_local_controller(node, node.node_id, node.broker_epoch)
                where = "itself"
            elif controller is None:
                outcome, where = None, "no controller is elected"
            else:
                info = node.store.live_brokers().get(controller)
                if info is None:
                    outcome, where = None, f"controller {controller} is not registered"
                else:
                    where = f"controller {controller}"
                    outcome = send((info[1]["host"], info[1]["port"]), node.node_id,
                                   node.broker_epoch)
        except Exception as exc:      # noqa: BLE001 - ZooKeeper or the controller unreachable
            outcome, where = None, f"{type(exc).__name__}: {exc}"
        if outcome is not None and outcome.done:
            log.info("broker %d: controlled shutdown done by %s", node.node_id, where)
            return True
        if outcome is None:
            why = where
        elif outcome.error:
            why = f"{where} answered {EC(outcome.error).name}"
        else:
            why = (f"{where}: still the leader of {len(outcome.remaining)} partition(s), e.g. "
                   + ", ".join(f"{t}-{p}" for t, p in outcome.remaining[:3]))
        log.warning("broker %d: controlled shutdown attempt %d of %d failed (%s)", node.node_id,
                    attempt, max_retries, why)
        if attempt < max_retries:
            time.sleep(retry_backoff_ms / 1000)
    return False
