"""``klog run MODULE:APP`` (SIGTERM drains and commits) and Prometheus metrics per binding."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import klog
from klog.functions import App
from klog.testing import AppHarness, read_topic

SRC = os.path.dirname(os.path.dirname(os.path.abspath(klog.__file__)))

APP_MODULE = '''
from klog.functions import App
app = App("runner-app")
MARK = {mark!r}

@app.function
def double(event: dict) -> dict:
    with open(MARK, "a") as f:
        f.write("x\\n")
    return {{"n": event["n"] * 2}}
'''


def test_klog_run_processes_and_drains_on_sigterm(tmp_path):
    data = str(tmp_path / "data")
    mark = tmp_path / "mark"
    (tmp_path / "myservice.py").write_text(APP_MODULE.format(mark=str(mark)))
    with klog.open(data) as b:
        p = b.producer()
        for n in range(50):
            p.send("numbers", json.dumps({"n": n}).encode())
        p.flush()
    env = dict(os.environ, PYTHONPATH=SRC)
    proc = subprocess.Popen(
        [sys.executable, "-m", "klog", "run", "myservice:app", "--broker", data,
         "--set", "bindings.double-in-0.destination=numbers",
         "--set", "bindings.double-out-0.destination=doubled", "--metrics-port", "0"],
        cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not mark.exists() or len(mark.read_text().splitlines()) < 50:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "klog run did not process the records"
            time.sleep(0.02)  # waiting for an outcome, not deciding it
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "records_in 50" in err
    with klog.open(data) as b:
        assert sorted(json.loads(r.value)["n"] for r in read_topic(b, "doubled")) == \
            [2 * n for n in range(50)]
        c = b.consumer("runner-app", {"enable.auto.commit": False})
        assert c.committed(("numbers", 0)) == 50
        c.close()


def test_klog_run_bad_reference_is_a_clear_error(tmp_path):
    env = dict(os.environ, PYTHONPATH=SRC)
    r = subprocess.run([sys.executable, "-m", "klog", "run", "nosuchmodule:app", "--broker",
                        str(tmp_path / "d")], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "cannot import 'nosuchmodule'" in r.stderr
    assert "Traceback" not in r.stderr
    (tmp_path / "svc.py").write_text("from klog.functions import App\napp = App('a')\n"
                                     "@app.function\ndef f(x): return x\n")
    r = subprocess.run([sys.executable, "-m", "klog", "run", "svc:app", "--broker",
                        str(tmp_path / "d"), "--definition", "g"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "unknown function 'g'" in r.stderr and "Traceback" not in r.stderr


def test_metrics_per_binding_on_the_metrics_port(klog_broker):
    app = App("metered")

    @app.function
    def work(event: dict) -> dict:
        if event["n"] == 3:
            raise ValueError("boom")
        return event

    with AppHarness(app, klog_broker, metrics_port=0,
                    bindings={"work-in-0": {"destination": "in", "enable-dlq": True,
                                            "max-attempts": 2, "back-off-initial-interval": 1}}) as h:
        for n in range(5):
            h.send("in", {"n": n})
        h.wait_idle()
        port = h.running.metrics_port
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    lines = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
             for line in text.splitlines() if line and not line.startswith("#")}
    lab = '{app="metered",binding="work-in-0"}'
    assert lines[f"klog_binding_records_in_total{lab}"] == 4
    assert lines[f"klog_binding_records_out_total{lab}"] == 4
    assert lines[f"klog_binding_failures_total{lab}"] == 2
    assert lines[f"klog_binding_retries_total{lab}"] == 1
    assert lines[f"klog_binding_dead_lettered_total{lab}"] == 1
    assert lines[f"klog_binding_consumer_lag{lab}"] == 0
    assert lines['klog_binding_processing_seconds_count{app="metered",binding="work-in-0"}'] == 4


def test_lag_is_reported_while_the_function_is_stuck(klog_broker):
    import threading
    klog_broker.create_topic("in", 2)
    p = klog_broker.producer()
    for i in range(200):
        p.send("in", b'{"a": 1}', partition=i % 2)
    p.flush()
    app = App("lagger")
    gate = threading.Event()

    @app.function
    def slow(e: dict) -> dict:
        gate.wait(10)
        return e

    running = app.start(klog_broker, bindings={"slow-in-0": {"destination": "in"},
                                              "slow-out-0": {"destination": "out"}})
    try:
        deadline = time.monotonic() + 10
        while running.stats()["slow-in-0"]["lag"] != 200:   # nothing done yet: all 200 behind
            assert time.monotonic() < deadline, running.stats()
        gate.set()
        running.wait_idle()
        assert running.stats()["slow-in-0"]["lag"] == 0
    finally:
        gate.set()
        running.stop()
