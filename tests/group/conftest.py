"""Fixtures for the group coordinator tests: a real broker with short group timeouts."""
import pytest

import klog

FAST = {
    "group.min.session.timeout.ms": 10,
    "group.initial.rebalance.delay.ms": 0,
    "offsets.topic.num.partitions": 3,
}


@pytest.fixture
def broker(tmp_path):
    b = klog.open(tmp_path / "data", FAST)
    yield b
    b.close()


@pytest.fixture
def coordinator(broker):
    return broker.group_coordinator
