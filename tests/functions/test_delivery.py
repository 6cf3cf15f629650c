"""At-least-once delivery: commit points, ordered concurrency, stop drains, SIGKILL recovery."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import klog
from klog.functions import App
from klog.functions.tracking import OffsetTracker
from klog.testing import AppHarness, read_topic


def test_commit_point_never_passes_a_record_in_flight():
    t = OffsetTracker()
    for o in range(10, 16):
        t.add(o)
    assert t.to_commit() is None
    t.done(12)
    t.done(13)                        # finished out of order: 10 and 11 still in flight
    assert t.to_commit() is None
    t.done(10)
    assert t.to_commit() == 11
    t.done(11)
    assert t.to_commit() == 14        # 12 and 13 were already done
    t.committed = 14
    assert t.to_commit() is None
    t.done(15)
    t.done(14)
    assert t.to_commit() == 16


def ordered_app(log, delay_for=lambda e: 0.0):
    app = App("ordered")
    lock = threading.Lock()

    @app.function
    def work(event: dict) -> dict:
        d = delay_for(event)
        if d:
            time.sleep(d)  # simulated slow work, not a test timing decision
        with lock:
            log.append((event["k"], event["i"], threading.current_thread().name))
        return event
    return app


def test_concurrency_keeps_partition_order_and_runs_partitions_in_parallel(klog_broker):
    klog_broker.create_topic("in", 4)
    log = []
    app = ordered_app(log, lambda e: 0.002)
    with AppHarness(app, klog_broker, bindings={"work-in-0": {"destination": "in", "concurrency": 4},
                                               "work-out-0": {"destination": "out"}}) as h:
        p = klog_broker.producer()
        for i in range(200):
            p.send("in", json.dumps({"k": i % 4, "i": i}).encode(), partition=i % 4)
        p.flush()
        h.wait_idle()
    per_part = {}
    for k, i, _ in log:
        per_part.setdefault(k, []).append(i)
    assert all(v == sorted(v) and len(v) == 50 for v in per_part.values())
    assert len({name for _, _, name in log}) > 1      # really concurrent
    c = klog_broker.consumer("ordered", {"enable.auto.commit": False})
    assert c.committed([("in", p) for p in range(4)]) == {("in", p): 50 for p in range(4)}
    c.close()


def test_key_ordering_within_one_partition(klog_broker):
    log = []
    slow = {0}
    app = ordered_app(log, lambda e: 0.01 if e["k"] in slow else 0.0)
    with AppHarness(app, klog_broker, bindings={"work-in-0": {"destination": "in", "concurrency": 3,
                                                             "ordering": "key"},
                                               "work-out-0": {"destination": "out"}}) as h:
        p = klog_broker.producer()
        for i in range(60):
            p.send("in", json.dumps({"k": i % 3, "i": i}).encode(), key=str(i % 3).encode(), partition=0)
        p.flush()
        h.wait_idle()
        assert not h.running.inputs[0].lanes      # idle per-key lanes are dropped
    per_key = {}
    for k, i, _ in log:
        per_key.setdefault(k, []).append(i)
    assert all(v == sorted(v) and len(v) == 20 for v in per_key.values())
    # the slow key did not hold the others back: they finished before it did
    assert [k for k, _, _ in log][-1] == 0
    c = klog_broker.consumer("ordered", {"enable.auto.commit": False})
    assert c.committed(("in", 0)) == 60
    c.close()


def test_stop_drains_in_flight_records_and_commits(klog_broker):
    started = threading.Event()
    release = threading.Event()
    app = App("drain")

    @app.function
    def work(event: dict) -> dict:
        if event["n"] == 0:
            started.set()
            release.wait(10)
        return event

    running = app.start(klog_broker, bindings={"work-in-0": {"destination": "in"},
                                              "work-out-0": {"destination": "out"}})
    p = klog_broker.producer()
    p.send("in", b'{"n": 0}').get()
    assert started.wait(10)
    stopper = threading.Thread(target=running.stop)
    stopper.start()
    release.set()
    stopper.join(10)
    assert not stopper.is_alive()
    assert [json.loads(r.value) for r in read_topic(klog_broker, "out")] == [{"n": 0}]
    c = klog_broker.consumer("drain", {"enable.auto.commit": False})
    assert c.committed(("in", 0)) == 1
    c.close()


KILL_APP = r'''
import json, os, sys
sys.path.insert(0, {src!r})
import klog
from klog.functions import App
from klog.functions import runner
app = App("killme")
count = [0]
@app.function
def work(event: dict) -> dict:
    return event
# die (like kill -9) right after the outputs of the 3rd chunk are acknowledged, before the commit
orig = runner.InputBinding._process
def process(self, lane, chunk):
    r = orig(self, lane, chunk)
    count[0] += 1
    if count[0] == 3 and os.environ.get("KILL") == "1":
        os.kill(os.getpid(), 9)
    return r
runner.InputBinding._process = process
runner.CHUNK = 10
broker = klog.open(sys.argv[1])
running = app.start(broker, bindings={{"work-in-0": {{"destination": "in"}},
                                      "work-out-0": {{"destination": "out"}}}})
running.wait_idle(30)
running.stop()
broker.close()
'''


def test_sigkill_between_output_and_commit_loses_nothing(tmp_path):
    data = str(tmp_path / "data")
    with klog.open(data) as b:
        p = b.producer()
        for n in range(100):
            p.send("in", json.dumps({"n": n}).encode(), partition=0)
        p.flush()
    script = tmp_path / "app.py"
    script.write_text(KILL_APP.format(src=os.path.join(os.path.dirname(klog.__file__), "..")))
    env = dict(os.environ, KILL="1")
    r = subprocess.run([sys.executable, str(script), data], env=env, timeout=60)
    assert r.returncode == -signal.SIGKILL
    r = subprocess.run([sys.executable, str(script), data], env=dict(env, KILL="0"), timeout=60)
    assert r.returncode == 0
    with klog.open(data) as b:
        out = [json.loads(x.value)["n"] for x in read_topic(b, "out")]
        c = b.consumer("killme", {"enable.auto.commit": False})
        assert c.committed(("in", 0)) == 100
        c.close()
    assert set(out) == set(range(100))            # nothing lost
    assert len(out) > 100                         # the uncommitted chunk ran again


def test_committed_offset_waits_for_a_slow_record_in_flight(klog_broker):
    """ordering: key, concurrency 2: key "b" finishes offsets 1..9 while key "a" (offset 0)
    is still running; the group's committed offset stays at 0 until "a" is done."""
    gate = threading.Event()
    app = App("inflight")

    @app.function
    def work(e: dict) -> dict:
        if e["k"] == "a":
            gate.wait(20)
        return e

    klog_broker.create_topic("in", 1)
    with AppHarness(app, klog_broker, bindings={"work-in-0": {"destination": "in", "concurrency": 2,
                                                             "ordering": "key"},
                                               "work-out-0": {"destination": "out"}}) as h:
        try:
            h.send("in", {"k": "a"}, key="a")
            for _ in range(9):
                h.send("in", {"k": "b"}, key="b")
            deadline = time.monotonic() + 20
            while len(h.read("out")) < 9:          # all of "b" published
                assert time.monotonic() < deadline
            binding = h.running.inputs[0]
            c = klog_broker.consumer("inflight", {"enable.auto.commit": False})
            tracker = binding.trackers[("in", 0)]
            while not set(range(1, 10)) <= set(tracker.finished):   # "b" done, "a" in flight
                assert time.monotonic() < deadline
            assert tracker.next_offset is None and tracker.to_commit() is None
            assert c.committed(("in", 0)) in (None, 0)
        finally:
            gate.set()
        h.wait_idle()
        assert c.committed(("in", 0)) == 10
        c.close()
