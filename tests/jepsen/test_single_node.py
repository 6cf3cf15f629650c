"""The harness end to end against one ``klog serve`` (what exists before cluster mode): the
workload through the bridge, through the delaying proxy and on loopback, under kill -9, SIGSTOP
past the clients' request timeout, isolation, packet loss and a partition, with zero violations;
and positive controls showing that the same harness reports loss and duplicates when they
happen (acks=0 across a wiped data directory; retries without idempotence through a proxy that
cuts answers). The three-broker cluster's runs are test_cluster.py.
"""
import re

import pytest

from . import runner
from .target import Target

DURATION = 12.0


def assert_clean(out, faults_expected):
    r = out.report
    assert r.total == 0, out.describe()
    assert out.workload_rc == 0 and out.final_rc == 0, out.describe()
    for kind in faults_expected:
        assert r.faults.get(kind, 0) >= 1, out.describe()
    # the run did something: most sends acknowledged, every one of them read back at the end
    assert r.ops["send_ok"] >= 200 and r.ops["send_ok"] >= 0.8 * r.ops["send"], out.describe()
    assert r.ops["final"] >= r.ops["send_ok"] and r.ops["poll"] > 0 and r.ops["commit"] > 0
    # every client of the rotation took part (a crashed thread would leave a hole here)
    for client in ("cp0", "cp1", "kp0", "ca0", "ka0", "cs0"):
        assert r.clients.get(client, 0) >= 100, out.describe()


def proxy_dropped(target) -> int:
    target.proxies[0].stop()
    m = re.search(r"dropped=(\d+)", target.proxies[0].output())
    assert m, target.proxies[0].output()
    return int(m.group(1))


@pytest.mark.needs_root
def test_bridge_kill9_pause_isolate_loss_partition_lose_nothing(tmp_path):
    kinds = ["kill9", "pause", "isolate", "loss", "partition"]
    with Target(str(tmp_path)) as t:
        out = runner.run(t, kinds, duration=18.0, seed=1,
                         nemesis_args={"interval": 0.5, "pause": 4.0, "hold": 2.0})
    assert_clean(out, kinds)


@pytest.mark.needs_root
def test_delay_proxy_with_cut_answers_and_kill9_pause_lose_nothing(tmp_path):
    """Every client connection through a proxy adding 30-50 ms each way and cutting 2% of the
    server's answers (idempotent retries must not duplicate: reliability.md recipe 8)."""
    proxy = {"delay": 0.03, "jitter": 0.02, "drop": 0.02, "direction": "down"}
    with Target(str(tmp_path), proxy=proxy) as t:
        out = runner.run(t, ["kill9", "pause"], duration=DURATION, seed=2,
                         nemesis_args={"interval": 1.0, "pause": 4.0})
        dropped = proxy_dropped(t)
    assert_clean(out, ["kill9", "pause"])
    assert dropped >= 1


def test_loopback_kill9_and_pause_lose_nothing(tmp_path):
    """The same without namespaces (no root needed): the server on a loopback port."""
    with Target(str(tmp_path), netns=False) as t:
        out = runner.run(t, ["kill9", "pause"], duration=DURATION, seed=3,
                         nemesis_args={"interval": 1.0, "pause": 4.0})
    assert_clean(out, ["kill9", "pause"])


@pytest.mark.needs_root
def test_positive_control_acks0_across_a_wiped_restart_reports_lost_writes(tmp_path):
    with Target(str(tmp_path)) as t:
        out = runner.run(t, ["kill9_wipe"], duration=8.0, seed=4,
                         workload_args=["--acks", "0"],
                         nemesis_args={"interval": 3.0, "max_faults": 1}, final_timeout=20)
    r = out.report
    assert r.faults == {"kill9_wipe": 1}, out.describe()
    assert r.violations["lost_write"] > 0, out.describe()
    # the log restarted at offset 0 with other values where consumers had read the old ones
    assert r.violations["inconsistent_offset"] > 0, out.describe()


def test_positive_control_retries_without_idempotence_duplicate(tmp_path):
    """acks=1 without idempotence through a proxy that cuts 10% of the answers: the producer
    retries batches the server stored, and the checker must count the duplicates."""
    proxy = {"drop": 0.1, "direction": "down"}
    with Target(str(tmp_path), netns=False, proxy=proxy) as t:
        out = runner.run(t, [], duration=6.0, seed=5,
                         workload_args=["--acks", "1", "--no-kafka-python"])
        dropped = proxy_dropped(t)
    assert dropped >= 1
    assert out.report.violations["duplicate"] > 0, out.describe()
