"""Metadata of a cluster member answered from its MetadataCache (klog.cluster.metadata_cache):
three ``klog serve --zookeeper`` processes and a real ZooKeeper. A request reads nothing from
ZooKeeper: with ZooKeeper stalled it is answered at once, with the current leaders (reading
ZooKeeper per request, it waited until the read timed out or the connection was given up)."""
import time

from .brokers import create_topic, wait_for

STALLED_ANSWER_S = 1.5      # a stalled read waits for kazoo to give the connection up (~4 s)


def test_metadata_is_answered_from_the_cache_without_reading_zookeeper(make_cluster, zookeeper):
    c = make_cluster()
    create_topic(c, "m", partitions=3, rf=3)
    settled = c.metadata(1, ["m"])
    wait_for("every broker's cache", lambda: all(c.metadata(n, ["m"]) == settled for n in c.procs))
    zookeeper.pause()
    try:
        answers, slowest = {}, 0.0
        for n in c.procs:
            t0 = time.monotonic()
            answers[n] = c.metadata(n, ["m"])
            slowest = max(slowest, time.monotonic() - t0)
    finally:
        zookeeper.resume()
    assert slowest < STALLED_ANSWER_S, slowest
    for n, md in answers.items():
        assert md == settled, n
        assert all(p["leader_id"] in (1, 2, 3) for p in md["topics"][0]["partitions"]), n
