"""The seed's services for real: accounts (HTTP API) and message (email|sms) as separate
processes against klog serve; the message service is killed mid-flow and restarted; every
account ends marked exactly once. Also the README's one-command embedded run."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import klog
from klog.server import ServerThread

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVICES = os.path.join(ROOT, "python", "services.py")
SRC = os.path.dirname(os.path.dirname(os.path.abspath(klog.__file__)))


def start(role, broker, *args):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # a killed member leaves the group after session.timeout.ms: keep it short for the test
    args += ("--set", "default.consumer.session.timeout.ms=6000",
             "--set", "default.consumer.heartbeat.interval.ms=500")
    return subprocess.Popen([sys.executable, SERVICES, "--role", role, "--broker", broker, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def http(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_for(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # polling an outcome


def test_services_as_processes_survive_a_killed_message_service(tmp_path):
    server = ServerThread(str(tmp_path / "data"), {"group.initial.rebalance.delay.ms": 0}).start()
    procs = []
    try:
        broker = f"kafka://{server.address}"
        accounts = start("accounts", broker, "--http-port", "0")
        procs.append(accounts)
        line = accounts.stdout.readline()
        assert "HTTP API on" in line, line + accounts.stderr.read()
        base = line.strip().rsplit(" ", 1)[1]
        message = start("message", broker)
        procs.append(message)
        assert "running email|sms" in message.stdout.readline()

        n = 300
        for i in range(n):
            status, body = http("POST", f"{base}/accounts",
                                {"id": f"a{i}", "email": f"u{i}@x", "phone": f"+{i}"})
            assert status == 201 and body["communication"] == "pending"
            if i == n // 3:   # mid-flow: wait for some marks, then kill -9 the message service
                wait_for(lambda: http("GET", f"{base}/accounts")[1]["marked"] > 0, "first marks")
                message.send_signal(signal.SIGKILL)
                message.wait(10)
                message = start("message", broker)
                procs.append(message)
                assert "running email|sms" in message.stdout.readline()
        assert http("POST", f"{base}/accounts", {"id": "a1", "email": "u1@x", "phone": "+1"})[0] == 200
        assert http("GET", f"{base}/accounts/nope")[0] == 404
        assert http("POST", f"{base}/accounts", {"id": "x"})[0] == 400

        wait_for(lambda: http("GET", f"{base}/accounts")[1]["marked"] == n, "all accounts marked",
                 timeout=120)
        summary = http("GET", f"{base}/accounts")[1]
        assert summary == {**summary, "accounts": n, "marked": n, "pending": 0}
        for i in range(n):
            status, account = http("GET", f"{base}/accounts/a{i}")
            assert status == 200 and account["communication"] == "done" and account["marks"] == 1
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(30)
        assert accounts.returncode == 0 and message.returncode == 0, accounts.stderr.read()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        server.stop()


def test_embedded_one_command_run(tmp_path):
    env = dict(os.environ, PYTHONPATH=SRC)
    r = subprocess.run([sys.executable, SERVICES, "--broker", str(tmp_path / "d"), "--accounts",
                        "500"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "created 500 new account(s)" in r.stdout
    assert "500 of 500 accounts marked" in r.stdout and "events/s" in r.stdout
    # a second run over the same data creates nothing new and repeats nothing
    r = subprocess.run([sys.executable, SERVICES, "--broker", str(tmp_path / "d"), "--accounts",
                        "500"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "created 0 new account(s)" in r.stdout and "on 0 account-created" in r.stdout
