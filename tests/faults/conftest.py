"""Fixtures for the fault tests; the helpers themselves live in faultkit.py."""
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import pytest

# faultkit lives next to the tests; make it importable whatever pytest's import mode is.
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(scope="session")
def _scratch_mount():
    """A tmpfs for the byte-by-byte sweeps: thousands of open/close cycles whose fsyncs would
    otherwise dominate the suite's time. Recovery reads and writes the same bytes either way.
    Falls back to the ordinary temp dir (slower, same checks) if mounting is impossible."""
    root = tempfile.mkdtemp(prefix="klog-faults-scratch-")
    mounted = False
    if os.geteuid() == 0:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", root],
                           capture_output=True, text=True)
        mounted = r.returncode == 0
        if not mounted:
            warnings.warn(f"could not mount a scratch tmpfs ({r.stderr.strip()}); sweeps use "
                          f"{root} on the ordinary file system and run slower")
    yield root
    if mounted:
        if subprocess.run(["umount", root], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", root], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fast_tmp(_scratch_mount, request):
    """A fresh directory on the scratch tmpfs (see _scratch_mount), removed afterwards."""
    path = tempfile.mkdtemp(dir=_scratch_mount, prefix=request.node.name[:40] + "-")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


POWERLOSS_FS = os.path.join(os.path.dirname(__file__), "powerloss_fs.py")


class PowerLossMount:
    """A powerloss_fs.py mount (see its docstring for the model) driven from the test.

    ``path`` is the mount point. ``cut_power()`` drops every write not yet fsynced, at once;
    from then on every file operation on the mount fails with EIO. ``reboot()`` unmounts and
    mounts again (every process using the mount must be dead: kill writers first), after which
    the mount shows the durable state. ``lose_power()`` is both."""

    def __init__(self, path, timeout=30):
        self.path = os.fspath(path)
        self.timeout = timeout
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._proc = subprocess.Popen(
            [sys.executable, POWERLOSS_FS, self.path], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1)
        self._lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self._expect("ready")
            self._wait_mounted()
        except BaseException:
            self.close()
            raise

    def _read(self):
        for line in self._proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _fail(self, what):
        self._stderr.seek(0)
        raise AssertionError(f"powerloss file system at {self.path}: {what}; its stderr:\n"
                             f"{self._stderr.read()[-3000:]}")

    def _expect(self, prefix):
        try:
            line = self._lines.get(timeout=self.timeout)
        except queue.Empty:
            self._fail(f"no {prefix!r} within {self.timeout} s")
        if line is None:
            self._fail(f"exited (code {self._proc.wait()}) while {prefix!r} was expected")
        if not line.startswith(prefix):
            self._fail(f"answered {line!r}, expected {prefix!r}")
        return line[len(prefix):].strip()

    def _command(self, line):
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()
        return self._expect("ok")

    def _wait_mounted(self):
        deadline = time.monotonic() + self.timeout
        while not os.path.ismount(self.path):
            if time.monotonic() > deadline:
                self._fail("not mounted")
            time.sleep(0.01)

    def cut_power(self, prefix_seed=None):
        """Power loss now. With ``prefix_seed``, each file keeps a random prefix of its unsynced
        writes (see powerloss_fs.py) instead of none."""
        self._command("cut" if prefix_seed is None else f"cut prefix {prefix_seed}")

    def reboot(self):
        r = subprocess.run(["fusermount3", "-u", self.path], capture_output=True, text=True)
        if r.returncode != 0:
            self._fail(f"could not unmount for the reboot ({r.stderr.strip()}): is a process "
                       "still using the mount? Kill writers before rebooting")
        self._expect("unmounted")
        self._expect("ready")
        self._wait_mounted()

    def lose_power(self, prefix_seed=None):
        self.cut_power(prefix_seed)
        self.reboot()

    def cut_power_after(self, changes, prefix_seed=None):
        """Cut the power just before the (changes+1)-th state change from now (see
        powerloss_fs.py): a crash point inside a sequence of writes, renames and fsyncs.
        ``prefix_seed`` as for cut_power."""
        self._command(f"cut-after {changes}"
                      + ("" if prefix_seed is None else f" prefix {prefix_seed}"))

    def trace(self, on=True):
        """Record the state changes from now on (``stats()["trace"]``), or stop."""
        self._command("trace" if on else "trace off")

    def sync(self):
        self._command("sync")

    def stats(self):
        return json.loads(self._command("stats"))

    def close(self):
        try:
            if self._proc.poll() is None:
                self._proc.stdin.write("exit\n")
                self._proc.stdin.flush()
                self._proc.wait(timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if os.path.ismount(self.path):
                if subprocess.run(["fusermount3", "-u", "-z", self.path],
                                  capture_output=True).returncode != 0:
                    subprocess.run(["umount", "-l", self.path], capture_output=True)
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            self._stderr.close()


@pytest.fixture
def power(tmp_path):
    """A fresh powerloss_fs mount (a PowerLossMount: ``.path``, ``.lose_power()``...), always
    unmounted afterwards. Needs root, /dev/fuse and libfuse3 (Debian package fuse3)."""
    missing = [what for what, ok in (("root", os.geteuid() == 0),
                                     ("/dev/fuse", os.path.exists("/dev/fuse")),
                                     ("fusermount3 (Debian package fuse3)",
                                      shutil.which("fusermount3") is not None)) if not ok]
    if missing:
        pytest.fail("power-loss tests need " + ", ".join(missing)
                    + "; deselect them with -m 'not needs_root'")
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    mount = None
    try:
        mount = PowerLossMount(mountpoint)
        yield mount
    finally:
        if mount is not None:
            mount.close()
        elif os.path.ismount(mountpoint):
            subprocess.run(["umount", "-l", os.fspath(mountpoint)], capture_output=True)
