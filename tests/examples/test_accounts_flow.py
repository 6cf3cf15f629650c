"""The example app in python/: runs end to end, survives a crash, repeats nothing it committed."""
import json
import os
import subprocess
import sys

import klog

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APP = os.path.join(ROOT, "python", "accounts_flow.py")


def run(data_dir, *args):
    return subprocess.run([sys.executable, APP, "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=120)


def test_flow_completes_then_survives_a_crash(tmp_path):
    data = tmp_path / "data"
    first = run(data, "--accounts", "6", "--crash-after", "4")
    assert first.returncode == 3, first.stderr
    assert "crashing after 4" in first.stdout

    second = run(data, "--accounts", "9")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "done: 9 of 9 accounts" in second.stdout

    with klog.open(data) as broker:
        sent = [json.loads(r.value)["id"]
                for p in range(broker.partition_count("communication-sent"))
                for r in broker.log("communication-sent", p).records()]
        created = [json.loads(r.value)["id"]
                   for p in range(broker.partition_count("account-created"))
                   for r in broker.log("account-created", p).records()]
        # Every account got its communication; the 4 sent before the crash (uncommitted) may be
        # sent again (at-least-once), nothing else is repeated.
        assert sorted(set(sent)) == sorted(created) and len(created) == 9
        assert len(sent) - len(set(sent)) <= 4
        state = {}
        for r in broker.log("accounts", 0).records():
            state[r.key.decode()] = json.loads(r.value)
        assert all(a["communication"] == "done" for a in state.values()) and len(state) == 9

    third = run(data, "--accounts", "9")
    assert third.returncode == 0
    assert "created 0 new account(s)" in third.stdout
    assert "sent email+sms" not in third.stdout  # nothing left to do, nothing repeated
