"""``klog cluster reassign``'s requests: AlterPartitionReassignments and
ListPartitionReassignments (KIP-455) to a broker of a klog cluster (which forwards them to the
controller) or of Kafka, over one blocking connection bounded by a deadline."""
from __future__ import annotations

import time
from typing import Optional, Sequence

from klog.cluster.status import ClusterUnreachableError, _Connection, _split_servers, _why
from klog.errors import KlogError, error_name
from klog.protocol.errors import ProtocolError
from klog.protocol.messages import ApiKey


class ReassignmentError(KlogError):
    """The cluster refused (part of) a reassignment request; the message names the partition
    and Kafka's error."""


def _connect(servers: str, deadline: float, timeout: float, api_key: int):
    failures = []
    for host, port in _split_servers(servers):
        try:
            conn = _Connection(host, port, deadline)
            try:
                conn.version(api_key, 0)
            except ConnectionError as exc:
                conn.close()
                if "does not speak" in str(exc):
                    raise ReassignmentError(
                        f"{exc} (partition reassignment needs a cluster: klog serve "
                        "--zookeeper, or Kafka 2.4+)") from None
                raise
            return conn
        except (OSError, ProtocolError) as exc:
            failures.append(f"{host}:{port} ({_why(exc)})")
    raise ClusterUnreachableError(f"no broker answered within {timeout:g} s: "
                                  + ", ".join(failures))


def _top_level(resp: dict) -> None:
    if resp["error_code"]:
        raise ReassignmentError(f"{error_name(resp['error_code'])}: "
                                f"{resp.get('error_message') or 'refused'}")


def alter(servers: str, topic: str, partition: int, replicas: Optional[Sequence[int]],
          timeout: float = 30.0) -> None:
    """Move ``topic``-``partition`` to ``replicas`` (None: cancel its move)."""
    deadline = time.monotonic() + timeout
    conn = _connect(servers, deadline, timeout, ApiKey.ALTER_PARTITION_REASSIGNMENTS)
    try:
        resp = conn.call(ApiKey.ALTER_PARTITION_REASSIGNMENTS, 0, {
            "timeout_ms": int(timeout * 1000), "topics": [{"name": topic, "partitions": [
                {"partition_index": partition,
                 "replicas": None if replicas is None else list(replicas)}]}]})
    finally:
        conn.close()
    _top_level(resp)
    for t in resp["responses"]:
        for p in t["partitions"]:
            if p["error_code"]:
                raise ReassignmentError(
                    f"partition {t['name']}-{p['partition_index']}: "
                    f"{error_name(p['error_code'])}: {p.get('error_message') or 'refused'}")


def list_moves(servers: str, timeout: float = 30.0) -> list:
    """[(topic, partition, replicas, adding, removing)] of every move in progress, sorted."""
    deadline = time.monotonic() + timeout
    conn = _connect(servers, deadline, timeout, ApiKey.LIST_PARTITION_REASSIGNMENTS)
    try:
        resp = conn.call(ApiKey.LIST_PARTITION_REASSIGNMENTS, 0,
                         {"timeout_ms": int(timeout * 1000), "topics": None})
    finally:
        conn.close()
    _top_level(resp)
    return sorted((t["name"], p["partition_index"], list(p["replicas"]),
                   list(p["adding_replicas"]), list(p["removing_replicas"]))
                  for t in resp["topics"] for p in t["partitions"])
