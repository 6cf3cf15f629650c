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


def _serve(data, port, *args):
    """Start ``klog serve`` and wait until it accepts connections."""
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(klog.__file__))
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-m", "klog", "serve", "--data-dir", str(data),
                             "--listen", f"127.0.0.1:{port}", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stdout.read().decode())
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("klog serve did not start")
            time.sleep(0.1)


def test_serve_and_sigterm(tmp_path):
    port = _free_port()
    data = tmp_path / "data"
    proc = _serve(data, port)
    try:
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


def test_serve_broker_settings(tmp_path):
    """-c sets broker settings: topics auto-created by a client get num.partitions."""
    port = _free_port()
    data = tmp_path / "data"
    proc = _serve(data, port, "-c", "num.partitions=3")
    try:
        p = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}")
        p.send("three", b"x").get(timeout=20)
        assert p.partitions_for("three") == {0, 1, 2}
        p.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("args, message", [
    (["--listen", "127.0.0.1:notaport"], "is not HOST:PORT"),
    (["--listen", "127.0.0.1:70000"], "is not HOST:PORT"),
    (["--advertised-listener", "host:"], "is not HOST:PORT"),
    (["-c", "num.partitions=0"], "num.partitions"),
    (["-c", "no.such.setting=1"], "unknown broker config"),
    (["-c", "num.partitions"], "is not key=value"),
])
def test_serve_bad_arguments_exit_with_a_clear_error(tmp_path, args, message):
    from click.testing import CliRunner

    from klog.cli import cli

    result = CliRunner().invoke(cli, ["serve", "--data-dir", str(tmp_path / "d"), *args])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output


def test_serve_port_in_use_is_a_clear_error(tmp_path):
    from click.testing import CliRunner

    from klog.cli import cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--data-dir", str(tmp_path / "d"),
                                          "--listen", f"127.0.0.1:{port}"])
    assert result.exit_code == 1 and "address already in use" in result.output.lower()
    with klog.open(tmp_path / "d"):   # the data directory was released
        pass
