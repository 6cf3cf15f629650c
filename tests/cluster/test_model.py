"""Random schedules over the replication model (tests/cluster/sim.py): produces, fetches,
deliveries in any order, dropped messages, crashes, restarts, pauses, network cuts, time. After
every step and after healing, the checker's invariants must hold.

1 000 schedules per run by default; ``KLOG_SLOW_TESTS=1`` runs 20 000. The controls show that
the checker sees loss when the protocol is weakened: acks=1 with unclean election (allowed to
lose), and two planted bugs in the replica's ISR handling.
"""
import os
import random

from hypothesis import HealthCheck, given, settings, strategies as st

from klog.cluster.replica import Replica

from .sim import Cluster

SLOW = os.environ.get("KLOG_SLOW_TESTS") == "1"

CONFIGS = [dict(min_isr=2), dict(min_isr=1), dict(min_isr=2, brokers=2), dict(min_isr=3)]



def schedule(seed: int, length: int):
    """A schedule drawn from a seed: hypothesis picks and reports seeds, uniform draws keep the
    fault mix dense (hypothesis' own list shrinking favours short, quiet schedules)."""
    rng = random.Random(seed)
    return [(rng.randrange(1 << 16), rng.randrange(1 << 16)) for _ in range(length)]


@settings(max_examples=20_000 if SLOW else 1_000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1 << 63), length=st.integers(50, 300),
       config=st.sampled_from(CONFIGS))
def test_random_schedules_lose_no_acknowledged_write(seed, length, config):
    c = Cluster(**config)
    assert c.run(schedule(seed, length)), "\n".join(c.violations[:5]) + "\n" + c.describe()


def seeded_runs(n, **config):
    """How many of n seeded random schedules end with a violation."""
    return sum(not Cluster(**config).run(schedule(seed, 50 + seed % 200)) for seed in range(n))


def test_control_acks_1_with_unclean_election_loses_writes_and_the_checker_sees_it():
    assert seeded_runs(300, acks=1, min_isr=1, unclean=True) > 0


def test_control_isr_change_used_before_it_is_written_is_caught(monkeypatch):
    """Planted bug: the leader acts on its proposed ISR before ZooKeeper has it."""
    propose = Replica.isr_change

    def eager(self, now_ms):
        proposal = propose(self, now_ms)
        if proposal is not None:
            self.state = proposal
        return proposal

    monkeypatch.setattr(Replica, "isr_change", eager)
    assert seeded_runs(300, min_isr=1) > 0


def test_control_divergence_ignored_is_caught(monkeypatch):
    """Planted bug: the leader never answers a diverging epoch (pre-KIP-101 followers)."""
    fetch = Replica.handle_fetch

    def blind(self, req, now_ms):
        return fetch(self, type(req)(req.replica_id, req.fetch_offset, -1,
                                     req.current_leader_epoch, req.max_records), now_ms)

    monkeypatch.setattr(Replica, "handle_fetch", blind)
    assert seeded_runs(100, min_isr=2) > 0
