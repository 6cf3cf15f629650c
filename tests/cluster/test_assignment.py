"""Replica placement: Kafka's spread, checked on the documented example and on its properties."""
import random

import pytest
from hypothesis import given, strategies as st

from klog.cluster.assignment import InvalidReplicationFactorError, assign_replicas
from klog.errors import InvalidPartitionsError


def test_kafkas_documented_example():
    # AdminUtils' comment: 5 brokers, 10 partitions, 3 replicas, start index 0, shift 0.
    got = assign_replicas(10, 3, [0, 1, 2, 3, 4], start_index=0, shift=0)
    leaders = [got[p][0] for p in range(10)]
    assert leaders == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
    assert got[0] == (0, 1, 2) and got[4] == (4, 0, 1)
    assert got[5] == (0, 2, 3) and got[9] == (4, 1, 2)     # shifted after wrapping


@given(partitions=st.integers(1, 60), brokers=st.sets(st.integers(0, 50), min_size=1, max_size=7),
       data=st.data())
def test_every_partition_gets_distinct_replicas_and_leaders_spread(partitions, brokers, data):
    rf = data.draw(st.integers(1, len(brokers)))
    got = assign_replicas(partitions, rf, list(brokers), rng=random.Random(data.draw(st.integers())))
    assert sorted(got) == list(range(partitions))
    for replicas in got.values():
        assert len(set(replicas)) == rf and set(replicas) <= brokers
    counts = [sum(1 for r in got.values() if r[0] == b) for b in brokers]
    assert max(counts) - min(counts) <= 1


def test_bad_requests():
    with pytest.raises(InvalidReplicationFactorError, match="larger than available brokers: 2"):
        assign_replicas(1, 3, [1, 2])
    with pytest.raises(InvalidReplicationFactorError):
        assign_replicas(1, 0, [1, 2])
    with pytest.raises(InvalidPartitionsError):
        assign_replicas(0, 1, [1, 2])
