"""Helpers for the ``klog`` command-line tests.

Every test runs the real entry point in a subprocess (``python -m klog``), then checks the data
directory through the Python API (``klog.open``) after the subprocess has exited (a data
directory has one owner at a time, so the test never holds it while the CLI runs).
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import klog

# The subprocess must import the same klog as this process (a source tree or an installed one).
PKG_ROOT = str(Path(klog.__file__).resolve().parent.parent)
# Variables that would make rich colour its output on a pipe, or that point the CLI elsewhere.
SCRUBBED = ("KLOG_DATA_DIR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE")


def cli_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PKG_ROOT, env.get("PYTHONPATH")) if p)
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra or {})
    return env


def klog_cmd(*args, data_dir=None):
    cmd = [sys.executable, "-m", "klog"]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    return cmd + [str(a) for a in args]


def run(*args, data_dir=None, input=None, env=None, cwd=None, timeout=60):
    """Run ``python -m klog [--data-dir D] ARGS``; text stdout/stderr. stdin is empty unless
    ``input`` is given."""
    if isinstance(input, str):
        input = input.encode()
    proc = subprocess.run(klog_cmd(*args, data_dir=data_dir), input=input if input is not None else b"",
                          capture_output=True, env=cli_env(env), cwd=cwd, timeout=timeout)
    proc.stdout = proc.stdout.decode("utf-8", errors="replace")
    proc.stderr = proc.stderr.decode("utf-8", errors="replace")
    return proc


def ok(proc):
    """Exit 0 and no traceback; returns stdout."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc.stdout


def failed(proc, code=1, match=None):
    """A refused command: non-zero exit, nothing on stdout, no traceback, and either ONE stderr
    line starting with 'error:' (code 1) or click's usage error (code 2). Returns the message."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert proc.stdout == "", proc.stdout
    if code == 1:
        lines = proc.stderr.splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("error: "), proc.stderr
        message = lines[0]
    else:
        assert proc.stderr.startswith("Usage: klog "), proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1, proc.stderr
        message = errors[0]
    if match is not None:
        assert re.search(match, message), message
    return message


def _is_header(cells):
    return len(cells) >= 2 and all(re.fullmatch(r"[A-Z][A-Z-]*", c) for c in cells)


def table(text, first_column):
    """(header, rows) of the rich table whose header starts with ``first_column``; rows are lists
    of cells and end at a blank line or the next table's header."""
    lines = [line.split() for line in text.splitlines()]
    start = next(i for i, cells in enumerate(lines) if _is_header(cells) and cells[0] == first_column)
    rows = []
    for cells in lines[start + 1:]:
        if not cells or _is_header(cells):
            break
        rows.append(cells)
    return lines[start], rows


def fields(text):
    """The 'NAME    value' lines above a table (topic describe, group describe) as a dict."""
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"([A-Z][A-Z-]*) {2,}(\S.*)", line.rstrip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


# -- the data directory through the API -------------------------------------------------------------
def records(data_dir, topic):
    """Every record of ``topic``: (partition, offset, key, value, headers, timestamp)."""
    with klog.open(data_dir) as broker:
        out = []
        for p in range(broker.partition_count(topic)):
            for r in broker.log(topic, p).records():
                out.append((p, r.offset, None if r.key is None else bytes(r.key),
                            None if r.value is None else bytes(r.value),
                            [(k, bytes(v)) for k, v in r.headers], r.timestamp))
        return out


def committed(data_dir, group):
    """{(topic, partition): offset} committed by ``group``."""
    with klog.open(data_dir) as broker:
        result = broker.group_coordinator.fetch_offsets(group)
        return {(tp.topic, tp.partition): c.offset for tp, c in result.offsets.items()}


def state(data_dir):
    """What a refused command must not change: topics (internal ones too), their partitions,
    overrides and offsets, and every group's committed offsets. None if there is no directory."""
    if not os.path.isdir(data_dir):
        return None
    with klog.open(data_dir) as broker:
        topics = {}
        for name in broker.list_topics(internal=True):
            d = broker.describe_topic(name)
            topics[name] = (d.topic_id, broker.topic_overrides(name),
                            [(p.log_start_offset, p.log_end_offset) for p in d.partitions])
        groups = {}
        if "__consumer_offsets" in topics:
            coordinator = broker.group_coordinator
            for g in coordinator.list_groups():
                groups[g.group_id] = {tp: c.offset for tp, c in
                                      coordinator.fetch_offsets(g.group_id).offsets.items()}
        return topics, groups, sorted(os.listdir(data_dir))


def seed(data_dir, topic, values, partitions=1, keys=None, headers=None, timestamps=None,
         partition=None, config=None):
    """Create ``topic`` (if needed) and append ``values`` through the API."""
    with klog.open(data_dir) as broker:
        if topic not in broker.list_topics():
            broker.create_topic(topic, partitions, config)
        producer = broker.producer({"linger.ms": 0})
        futures = [producer.send(topic, v, key=None if keys is None else keys[i],
                                 partition=partition if not isinstance(partition, list) else partition[i],
                                 timestamp=None if timestamps is None else timestamps[i],
                                 headers=None if headers is None else headers[i])
                   for i, v in enumerate(values)]
        producer.flush()
        for f in futures:
            f.get()
        producer.close()


def small_offsets_topic(data_dir):
    """Create ``__consumer_offsets`` with 1 partition instead of the default 50 (the group
    coordinator uses the partitions the topic has): every later open of the directory, by the CLI
    or the API, then opens one log instead of fifty. The default is exercised elsewhere."""
    with klog.open(data_dir) as broker:     # as klog.group.offsets.OffsetStore creates it
        broker.create_topic("__consumer_offsets", 1, {
            "cleanup.policy": "compact", "segment.bytes": broker.config["offsets.topic.segment.bytes"]})


@pytest.fixture
def data_dir(tmp_path):
    """A fresh data directory path (not created)."""
    return tmp_path / "data"


@pytest.fixture
def cwd(tmp_path):
    """A working directory for the CLI, so a forgotten --data-dir never lands in the repo."""
    d = tmp_path / "cwd"
    d.mkdir()
    return d


def copy_dir(src, dst):
    shutil.copytree(src, dst)   # .lock files come along: flock() is per open file, not per name
    return dst


def run_parallel(jobs, workers=4):
    """Run many independent ``run(**kwargs)`` calls at once ({id: kwargs} → {id: proc}). Each
    must use its own data directory (a data directory has one owner at a time)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {key: pool.submit(lambda kw: run(*kw.pop("args"), **kw), dict(kw))
                   for key, kw in jobs.items()}
        return {key: f.result() for key, f in futures.items()}


def selected_ids(request, test_name):
    """The parametrize ids of ``test_name`` in this module that this session will run."""
    return [item.callspec.id for item in request.session.items
            if getattr(item, "originalname", None) == test_name and item.module is request.module]


def wait_for_port(port, proc, timeout=30.0):
    """Until ``klog serve`` (``proc``) accepts on 127.0.0.1:``port``; fails with its stderr if
    it exits first, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "klog serve did not start"
            time.sleep(0.1)
