"""``klog serve`` as a process: serves a real client, stops cleanly on SIGTERM."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from kafka import KafkaProducer

import klog

pytestmark = pytest.mark.timeout(60)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_and_sigterm(tmp_path):
    port = _free_port()
    data = tmp_path / "data"
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(klog.__file__))
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-m", "klog", "serve", "--data-dir", str(data),
                             "--listen", f"127.0.0.1:{port}"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline
                time.sleep(0.1)
        p = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}")
        for i in range(5):
            p.send("cli", b"%d" % i)
        p.flush()
        p.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, proc.stdout.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with klog.open(data) as broker:   # closed cleanly: the lock is free and the data is there
        assert broker.log("cli", 0).log_end_offset == 5
