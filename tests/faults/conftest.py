"""Fixtures for the fault tests; the helpers themselves live in faultkit.py."""
import os
import shutil
import subprocess
import sys
import tempfile
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
