"""A real ZooKeeper (Debian's ``zookeeper`` package) for the tests: standalone, on a free
loopback port, data in a temporary directory, stopped (and its files removed) afterwards."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

JAR = "/usr/share/java/zookeeper.jar"
CONF_DIR = "/etc/zookeeper/conf"      # log4j settings of the package


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ZooKeeperServer:
    def __init__(self, tick_time_ms: int | None = None):
        """``tick_time_ms``: ZooKeeper's tickTime (its default is 3000 ms when started like this);
        sessions expire on tick boundaries, and the session timeout must be 2 to 20 ticks."""
        if not os.path.exists(JAR) or shutil.which("java") is None:
            raise RuntimeError(f"ZooKeeper is not installed ({JAR} and java are needed): "
                               "apt-get install zookeeper (.ci/run does)")
        self.dir = tempfile.mkdtemp(prefix="klog-zk-")
        self.port = free_port()
        self.proc = None
        self.tick_time_ms = tick_time_ms

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> "ZooKeeperServer":
        log = open(os.path.join(self.dir, "zookeeper.log"), "wb")
        self.proc = subprocess.Popen(
            ["java", "-Xmx256m", "-Dzookeeper.admin.enableServer=false",
             "-cp", f"{CONF_DIR}:{JAR}", "org.apache.zookeeper.server.ZooKeeperServerMain",
             str(self.port), os.path.join(self.dir, "data"),
             *([str(self.tick_time_ms)] if self.tick_time_ms else [])],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ZooKeeper exited with {self.proc.returncode}: "
                                   f"see {self.dir}/zookeeper.log")
            if self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"ZooKeeper did not start within {timeout} s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"srvr")
                return b"Zookeeper version" in s.recv(4096)
        except OSError:
            return False

    def pause(self) -> None:
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
