"""The replication model's failure stories and random schedules, replayed with the real storage
adapter (klog.cluster.replica_log over klog.partition.Partition) in place of the in-memory log, and
the high-watermark checkpoint file."""
import inspect
import os
from dataclasses import dataclass, field

import pytest

from klog._native.batch import build_batch
from klog.cluster.hw_checkpoint import HighWatermarkCheckpoint
from klog.cluster.replica import Replica
from klog.cluster.replica_log import StorageReplicaLog
from klog.cluster.state import LeaderAndIsr
from klog.partition import Partition

from . import sim, storagelog, test_scenarios
from .storagelog import StorageLog
from .test_model import schedule


@dataclass
class StorageNode(sim.Node):
    log: StorageLog = field(default_factory=StorageLog)


@pytest.fixture
def storage_logs(tmp_path, monkeypatch):
    storagelog.BASE[0] = str(tmp_path)
    monkeypatch.setattr(sim, "Node", StorageNode)
    monkeypatch.setattr(test_scenarios, "MemoryLog", StorageLog)
    try:
        yield
    finally:
        storagelog.cleanup()


SCENARIOS = [f for name, f in inspect.getmembers(test_scenarios, inspect.isfunction)
             if name.startswith("test_")]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__[5:])
def test_model_scenario_with_storage_log(storage_logs, scenario):
    scenario()


@pytest.mark.parametrize("seed", range(12))
def test_random_schedule_with_storage_log_loses_no_acknowledged_write(storage_logs, seed):
    config = [dict(min_isr=2), dict(min_isr=1), dict(min_isr=2, brokers=2)][seed % 3]
    c = sim.Cluster(**config)
    assert c.run(schedule(seed, 60 + seed * 7)), "\n".join(c.violations[:5]) + "\n" + c.describe()


def test_control_acks_1_unclean_with_storage_log_loses_writes(storage_logs):
    """The checker still sees loss through the storage adapter when the protocol allows it."""
    lost = sum(not sim.Cluster(acks=1, min_isr=1, unclean=True).run(schedule(s, 50 + s % 200))
               for s in range(40))
    assert lost > 0


def test_follower_keeps_leader_batches_byte_for_byte(tmp_path):
    """A follower's segment bytes equal the leader's: same batches, epochs as stamped."""
    a = StorageReplicaLog(Partition.open("t", 0, tmp_path / "a", {}))
    b = StorageReplicaLog(Partition.open("t", 0, tmp_path / "b", {}))
    try:
        leader = Replica(1, a)
        follower = Replica(2, b)
        for epoch in (0, 3):
            st = LeaderAndIsr(1, epoch, (1, 2), 1)
            leader.apply(st, (1, 2), 0)
            follower.apply(st, (1, 2), 0)
            for i in range(3):
                batch = build_batch([b"v%d-%d" % (epoch, i), b"w"], None, None, None, 0, 0, None)
                leader.append([batch], acks=1)
            for _ in range(2):
                req = follower.fetch_request()
                follower.handle_fetch_response(req, leader.handle_fetch(req, 0))
        assert b.partition.log.leader_epochs == a.partition.log.leader_epochs == [(0, 0), (3, 6)]
        assert a.read(0) == b.read(0) and len(a.read(0)) > 0
        assert follower.high_watermark == leader.high_watermark == 12
        pa, pb = a.partition.log.path, b.partition.log.path
        for name in os.listdir(pa):
            if name.endswith(".log"):
                with open(os.path.join(pa, name), "rb") as fa, \
                        open(os.path.join(pb, name), "rb") as fb:
                    assert fa.read() == fb.read()
    finally:
        a.partition.close()
        b.partition.close()


def test_truncate_to_cuts_the_epoch_cache_even_when_no_record_goes(tmp_path):
    log = StorageReplicaLog(Partition.open("t", 0, tmp_path / "p", {}))
    try:
        log.append_as_leader([build_batch([b"x"], None, None, None, 0, 0, None)], 0)
        log.assign_epoch(5, 1)                  # led in epoch 5 without writing
        assert log.latest_epoch() == 5
        log.truncate_to(1)
        assert log.log_end_offset == 1 and log.latest_epoch() == 0
    finally:
        log.partition.close()


def test_a_new_epoch_keeps_the_high_watermark_consumers_see(tmp_path):
    """Taking leadership stamps a new epoch into the Partition before the replica manager syncs
    the high watermark; consumers read the Partition without the replica's lock, so the HW must
    not drop to 0 in between (a fetch would see the committed records vanish)."""
    log = StorageReplicaLog(Partition.open("t", 0, tmp_path / "p", {}))
    part = log.partition
    try:
        for i in range(3):
            log.append_as_leader([build_batch([b"v%d" % i], None, None, None, 0, 0, None)], 0)
        part.become_follower(0, high_watermark=2)
        log.assign_epoch(1, 3)
        assert part.is_leader and part.leader_epoch == 1
        assert part.high_watermark == 2
    finally:
        part.close()


def test_high_watermark_checkpoint_round_trip_and_damage(tmp_path, caplog):
    cp = HighWatermarkCheckpoint(str(tmp_path))
    assert cp.read() == {}
    cp.write({("orders", 0): 150, ("orders", 1): 97})
    with open(cp.path) as f:
        assert f.read() == "0\n2\norders 0 150\norders 1 97\n"
    assert cp.read() == {("orders", 0): 150, ("orders", 1): 97}
    with open(cp.path, "w") as f:
        f.write("0\n2\norders 0 150\n")
    assert cp.read() == {}
    assert "replication-offset-checkpoint" in caplog.text and "2 entries announced" in caplog.text
