"""``klog serve`` keeps Kafka's group.initial.rebalance.delay.ms of 3 s: consumers that start
together get one rebalance, not one per member. The embedded broker keeps 0."""
import concurrent.futures
import socket
import time

import pytest

import klog
from klog.protocol.messages import ApiKey
from klog.server import ServerThread

from .rawclient import call

pytestmark = pytest.mark.timeout(60)


def _join(port, cid):
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        return call(s, ApiKey.JOIN_GROUP, 3, {
            "group_id": "fleet", "session_timeout_ms": 10_000, "rebalance_timeout_ms": 10_000,
            "member_id": "", "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b"m"}]}, cid)


def test_two_members_joining_within_the_default_delay_get_one_rebalance(tmp_path):
    with ServerThread(tmp_path / "d") as srv:      # no setting: klog serve's default
        assert srv.broker.config["group.initial.rebalance.delay.ms"] == 3000
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            t0 = time.monotonic()
            first = pool.submit(_join, srv.port, 1)
            time.sleep(0.3)      # the second consumer starts a little later (not an outcome)
            assert not first.done()   # held back by the initial delay
            second = pool.submit(_join, srv.port, 2)
            results = [first.result(20), second.result(20)]
        elapsed = time.monotonic() - t0
    assert [r["error_code"] for r in results] == [0, 0]
    # One generation with both members: without the delay the first join would have made
    # generation 1 alone and the second a rebalance to generation 2.
    assert [r["generation_id"] for r in results] == [1, 1]
    assert sorted(len(r["members"]) for r in results) == [0, 2]
    assert elapsed >= 2.9


def test_the_embedded_broker_keeps_no_delay(tmp_path):
    with klog.open(tmp_path / "e") as b:
        assert b.config["group.initial.rebalance.delay.ms"] == 0
        r = b.group_coordinator.join_group("g", "", "consumer", [("range", b"m")], 10_000).result(5)
        assert r.error == 0 and r.generation_id == 1
