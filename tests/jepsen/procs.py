"""Process faults: SIGKILL, SIGSTOP/SIGCONT, restart with the same data directory, each recorded
with its time in a FaultLog, and a ``klog serve`` process built on them.

A process may run inside a network namespace (``argv_prefix`` = ``ip netns exec NS``, which execs,
so the recorded pid is the server itself). ``stop()`` always ends the process: SIGCONT first (a
stopped process ignores SIGTERM until continued), SIGTERM, then SIGKILL after a grace period.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import klog

SRC = os.path.dirname(os.path.dirname(os.path.abspath(klog.__file__)))
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_env() -> dict:
    """The environment for a child Python: this klog and the jepsen package importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, TESTS] + [p for p in env.get("PYTHONPATH", "")
                                                        .split(os.pathsep) if p])
    return env


@dataclass
class Fault:
    t: float          # time.time() when it was applied
    kind: str         # kill9, pause, resume, restart, isolate, partition, loss, heal, ...
    target: str
    detail: str = ""


@dataclass
class FaultLog:
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, kind: str, target: str, detail: str = "") -> Fault:
        f = Fault(time.time(), kind, target, detail)
        with self.lock:
            self.faults.append(f)
        return f

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.faults:
            out[f.kind] = out.get(f.kind, 0) + 1
        return out

    def __len__(self):
        return len(self.faults)


class Proc:
    """A restartable child process whose faults are recorded in ``faults``."""

    def __init__(self, name: str, argv: list[str], faults: FaultLog | None = None,
                 argv_prefix: list[str] | None = None, log_path: str | None = None,
                 env: dict | None = None):
        self.name, self.argv = name, argv
        self.faults = faults if faults is not None else FaultLog()
        self.prefix = argv_prefix or []
        self.log_path, self.env = log_path, env
        self.popen: subprocess.Popen | None = None
        self.paused = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> "Proc":
        if self.alive():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.popen = subprocess.Popen(self.prefix + self.argv, stdout=out,
                                          stderr=subprocess.STDOUT, env=self.env,
                                          start_new_session=True)
        finally:
            if self.log_path:
                out.close()
        self.paused = False
        return self

    def kill9(self):
        self.faults.record("kill9", self.name, f"pid {self.pid}")
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(30)
        self.paused = False

    def pause(self):
        self.faults.record("pause", self.name, f"pid {self.pid}")
        self.popen.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.faults.record("resume", self.name, f"pid {self.pid}")
        self.popen.send_signal(signal.SIGCONT)
        self.paused = False

    def restart(self):
        """Start again with the same argv (the same data directory); kill -9 first if alive."""
        if self.alive():
            self.kill9()
        self.start()
        self.faults.record("restart", self.name, f"pid {self.pid}")

    def stop(self, grace: float = 10.0) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(signal.SIGCONT)
                self.popen.send_signal(signal.SIGTERM)
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(30)
            except ProcessLookupError:
                pass
        return self.popen.returncode

    def output(self) -> str:
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


def wait_until(pred, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} did not happen within {timeout}s")


class KlogServer(Proc):
    """``klog serve`` on ``listen`` (inside ``netns`` if given), data in ``data_dir``."""

    def __init__(self, name: str, data_dir: str, listen: tuple[str, int],
                 advertised: tuple[str, int] | None = None, settings: dict | None = None,
                 netns: str | None = None, faults: FaultLog | None = None,
                 log_path: str | None = None, extra_args: list[str] | None = None):
        self.data_dir, self.listen, self.netns = data_dir, listen, netns
        argv = [sys.executable, "-m", "klog", "serve", "--data-dir", data_dir,
                "--listen", f"{listen[0]}:{listen[1]}"]
        if advertised:
            argv += ["--advertised-listener", f"{advertised[0]}:{advertised[1]}"]
        for k, v in (settings or {}).items():
            argv += ["-c", f"{k}={v}"]
        argv += extra_args or []
        prefix = ["ip", "netns", "exec", netns] if netns else None
        super().__init__(name, argv, faults, prefix, log_path, python_env())

    def reachable(self, timeout: float = 1.0) -> bool:
        host, port = self.listen
        if self.netns:
            from .netns import can_connect
            return can_connect(self.netns, host, port, timeout)
        try:
            socket.create_connection((host, port), timeout).close()
            return True
        except OSError:
            return False

    def wait_ready(self, timeout: float = 60.0) -> "KlogServer":
        def ready():
            if not self.alive():
                raise RuntimeError(f"{self.name} exited ({self.popen.returncode}): "
                                   f"{self.output()[-2000:]}")
            return self.reachable()
        wait_until(ready, timeout, f"{self.name} listening on {self.listen}", 0.1)
        return self
