"""FollowerFetcher (klog.cluster.replica_manager) against a leader that holds its fetch, as a
leader with nothing new does for up to max_wait_ms: stopping the fetcher does not wait for the
answer (a broker's controlled shutdown stops its fetchers before handing its leadership over)."""
import socket
import time
import uuid

from klog.cluster.replica import Replica, Role
from klog.cluster.replica_manager import FollowerFetcher, HostedPartition
from klog.cluster.state import LeaderAndIsr

from .memlog import MemoryLog


class Manager:
    """What a FollowerFetcher uses of its ReplicaManager."""

    def __init__(self, address, hosted):
        self.node_id = 2
        self.broker_epoch = 1
        self.partitions = {(hosted.topic, hosted.partition): hosted}
        self.topic_ids = {hosted.topic: uuid.uuid4()}
        self._address = address

    def broker_address(self, broker_id):
        return self._address


def test_stop_does_not_wait_for_a_fetch_the_leader_holds():
    replica = Replica(2, MemoryLog())
    replica.apply(LeaderAndIsr(1, 0, (1, 2), 0), (1, 2), 0)
    assert replica.role is Role.FOLLOWER
    hosted = HostedPartition("t", 0, (1, 2), replica)
    with socket.socket() as leader:
        leader.bind(("127.0.0.1", 0))
        leader.listen()
        leader.settimeout(10)
        fetcher = FollowerFetcher(Manager(leader.getsockname(), hosted), 1)
        fetcher.add(("t", 0))
        fetcher.start()
        conn, _ = leader.accept()
        with conn:
            conn.settimeout(10)
            assert conn.recv(4)             # the fetch arrived; the leader never answers
            t0 = time.monotonic()
            fetcher.stop()
            took = time.monotonic() - t0
            assert not fetcher._thread.is_alive()
            assert took < 2.0, f"stop() took {took:.1f} s"
