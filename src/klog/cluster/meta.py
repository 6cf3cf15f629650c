"""``meta.properties``: which cluster and node a data directory belongs to (Kafka's file).

    version=0
    broker.id=<node id>
    cluster.id=<cluster id>

Written once, atomically (temp, fsync, rename, fsync dir), when a broker first joins a cluster.
On every later start the data directory must name the same cluster and node: a directory
copied from another cluster, or started with another --node-id, would otherwise serve another
cluster's records as if they were this one's (Kafka's InconsistentClusterIdException /
InconsistentBrokerIdException).
"""
from __future__ import annotations

import os

from klog.errors import KlogError
from klog.storage.files import write_atomic

FILE = "meta.properties"


class InconsistentBrokerMetadataError(KlogError):
    """The data directory belongs to another cluster or node, or its meta.properties is damaged."""


def _parse(path: str) -> dict:
    out = {}
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InconsistentBrokerMetadataError(f"{path}: not a text file") from None
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise InconsistentBrokerMetadataError(f"{path}:{n}: expected key=value, got {line!r}")
        out[key.strip()] = value.strip()
    return out


def check_or_write(data_dir: str, node_id: int, cluster_id: str) -> None:
    """Claim ``data_dir`` for (cluster, node), or check that it already belongs to them."""
    path = os.path.join(data_dir, FILE)
    if not os.path.exists(path):
        write_atomic(path, f"version=0\nbroker.id={node_id}\ncluster.id={cluster_id}\n".encode())
        return
    meta = _parse(path)
    if meta.get("version") != "0" or not meta.get("broker.id", "").lstrip("-").isdigit() \
            or not meta.get("cluster.id"):
        raise InconsistentBrokerMetadataError(
            f"{path}: expected version=0, broker.id and cluster.id, got {meta!r}")
    if meta["cluster.id"] != cluster_id:
        raise InconsistentBrokerMetadataError(
            f"{data_dir} belongs to cluster {meta['cluster.id']}, but ZooKeeper's cluster is "
            f"{cluster_id}: refusing to serve another cluster's data (point --zookeeper at its "
            "cluster, or use an empty --data-dir)")
    if int(meta["broker.id"]) != node_id:
        raise InconsistentBrokerMetadataError(
            f"{data_dir} belongs to node {meta['broker.id']}, not --node-id {node_id}")
