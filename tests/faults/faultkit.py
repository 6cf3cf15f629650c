"""Shared helpers for the fault tests: an independent (pure Python) view of segment files, crash
snapshots, and checks that a log holds exactly an expected list of batches.

The oracle never asks klog where batches are: it walks the raw .log bytes itself (RecordBatch v2:
baseOffset int64, batchLength int32, ..., lastOffsetDelta int32 at byte 23), so a wrong index or
a wrong recovery cut in klog cannot hide behind the same wrong code in the test.
"""
import os
import random
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass

import klog

# Subprocesses import the same klog as the test process.
SRC = os.path.dirname(os.path.dirname(os.path.abspath(klog.__file__)))
SLOW = os.environ.get("KLOG_SLOW_TESTS") == "1"
LOG, INDEX, TIMEINDEX = ".log", ".index", ".timeindex"
HEADER = 61
CODECS = [None, "lz4", "gzip", "snappy", "zstd"]


def seg_file(directory, base, suffix=LOG):
    return os.path.join(os.fspath(directory), f"{base:020d}{suffix}")


def segment_bases(directory):
    return sorted(int(n[:-4]) for n in os.listdir(directory)
                  if n.endswith(LOG) and len(n) == 24 and n[:20].isdigit())


@dataclass
class Batch:
    segment: int      # base offset of the segment file holding it
    pos: int          # byte position in that file
    raw: bytes        # the whole batch as stored
    base: int
    last: int
    max_ts: int

    @property
    def end(self):
        return self.pos + len(self.raw)


def parse_batches(data, segment=0):
    """Walk whole, well-framed batches from byte 0; stop at anything else. Oracle use only: call
    it on files known to be intact."""
    out, pos = [], 0
    while len(data) - pos >= HEADER:
        length = struct.unpack_from(">i", data, pos + 8)[0]
        if length < HEADER - 12 or pos + 12 + length > len(data) or data[pos + 16] != 2:
            break
        raw = bytes(data[pos:pos + 12 + length])
        base = struct.unpack_from(">q", raw, 0)[0]
        delta = struct.unpack_from(">i", raw, 23)[0]
        max_ts = struct.unpack_from(">q", raw, 35)[0]
        out.append(Batch(segment, pos, raw, base, base + delta, max_ts))
        pos += len(raw)
    return out


def read_batches(directory):
    """Every batch of every segment in ``directory`` (intact files), in offset order."""
    out = []
    for b in segment_bases(directory):
        with open(seg_file(directory, b), "rb") as f:
            out.extend(parse_batches(f.read(), b))
    return out


def crash_copy(log, dst):
    """What a kill -9 at this moment leaves on disk: every file as the page cache holds it, no
    clean-shutdown marker, the checkpoint as last written. The log itself stays open."""
    os.makedirs(dst)
    with log._flush_lock:  # no background flush of a rolled segment rewriting files mid-copy
        for name in os.listdir(log.path):
            if name == ".lock":
                continue
            shutil.copyfile(os.path.join(log.path, name), os.path.join(dst, name))
    assert not os.path.exists(os.path.join(dst, ".clean-shutdown"))
    return dst


def copy_dir(src, dst):
    shutil.copytree(src, dst)
    return dst


def rows(log, offset=None):
    """The log's records as comparable tuples."""
    return [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in log.records(offset)]


def expected_rows(batches):
    """The records of raw batches, decoded by klog's codec (the byte layout is checked
    separately against the stored bytes, so this is not circular for recovery tests)."""
    out = []
    for b in batches:
        out.extend((r.offset, r.timestamp, r.key, r.value, r.headers)
                   for r in klog.decode_batch(b.raw))
    return out


def check_log_equals(log, batches, start=None):
    """The open ``log`` holds exactly ``batches`` (raw bytes and offsets): log end, records, and
    ``read(o)`` at every offset returns the whole batch holding o, byte for byte."""
    if start is None:
        start = batches[0].base if batches else log.log_start_offset
    end = batches[-1].last + 1 if batches else start
    assert log.log_start_offset == start
    assert log.log_end_offset == end, f"log end {log.log_end_offset}, expected {end}"
    assert rows(log) == expected_rows(batches)
    by_offset = {}
    for b in batches:
        for o in range(b.base, b.last + 1):
            by_offset[o] = b
    for o in range(start, end):
        view = log.read(o, 1)
        try:
            got = bytes(view)
        finally:
            view.release()
        want = by_offset[o].raw
        assert got == want, (f"read({o}) returned {len(got)} bytes starting at base "
                             f"{struct.unpack_from('>q', got)[0] if len(got) >= 8 else None}; "
                             f"expected the batch at base {by_offset[o].base}")
    assert log.read(end, 1).nbytes == 0


def check_index_files(directory):
    """After a clean close: every .index entry is (last offset of a batch, that batch's start);
    every .timeindex entry is (a timestamp, an offset) such that the timestamp is the largest
    of all batches up to and including the batch holding that offset; both strictly ordered."""
    for b in segment_bases(directory):
        with open(seg_file(directory, b), "rb") as f:
            batches = parse_batches(f.read(), b)
        starts = {x.pos: x for x in batches}
        data = open(seg_file(directory, b, INDEX), "rb").read()
        assert len(data) % 8 == 0, f"{seg_file(directory, b, INDEX)}: {len(data)} bytes"
        prev = (-1, -1)
        for i in range(0, len(data), 8):
            rel, pos = struct.unpack_from(">iI", data, i)
            assert pos in starts, f"index entry {i // 8} of segment {b}: {pos} is not a batch start"
            assert b + rel == starts[pos].last, f"index entry {i // 8} of segment {b}: offset"
            assert (b + rel, pos) > prev and b + rel > prev[0] and pos > prev[1]
            prev = (b + rel, pos)
        data = open(seg_file(directory, b, TIMEINDEX), "rb").read()
        assert len(data) % 12 == 0
        prev_ts = None
        for i in range(0, len(data), 12):
            ts, rel = struct.unpack_from(">qi", data, i)
            holder = [x for x in batches if x.base <= b + rel <= x.last]
            assert holder, f"time index entry {i // 12} of segment {b}: no batch holds {b + rel}"
            upto = max(x.max_ts for x in batches if x.base <= holder[0].base)
            assert ts == upto, f"time index entry {i // 12} of segment {b}: ts {ts} != {upto}"
            assert prev_ts is None or ts > prev_ts
            prev_ts = ts


def offset_for_time_oracle(batches, ts):
    """First offset whose record timestamp >= ts (by decoding every record)."""
    for row in expected_rows(batches):
        if row[1] >= ts:
            return row[0]
    return None


def random_batch_args(rng, max_records=4, max_value=200, ts=None):
    """Arguments for Log.append: a mix of sizes, keys, headers and codecs."""
    n = rng.randint(1, max_records)
    values = [rng.randbytes(rng.randint(0, max_value)) if rng.random() > 0.05 else None
              for _ in range(n)]
    keys = [rng.randbytes(rng.randint(1, 12)) if rng.random() < 0.5 else None for _ in range(n)]
    headers = ([[("h", rng.randbytes(3))] if rng.random() < 0.3 else [] for _ in range(n)]
               if rng.random() < 0.5 else None)
    stamps = [ts + j * 7 for j in range(n)] if ts is not None else None
    return dict(values=values, keys=keys, headers=headers, timestamps=stamps,
                compression=rng.choice(CODECS))


def run_python(code, *args, timeout=60, **kw):
    """Run ``code`` in a fresh interpreter with klog importable."""
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout, **kw)


OPEN_PROBE = r"""
import json, sys, klog
try:
    log = klog.Log.open(sys.argv[1], json.loads(sys.argv[2]))
except klog.KlogError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
else:
    with log:
        print(json.dumps({"start": log.log_start_offset, "end": log.log_end_offset,
                          "segments": log.segments, "records": sum(1 for _ in log.records())}))
"""


def open_in_subprocess(path, cfg=None, timeout=60):
    """Open (recover) and close the log at ``path`` in a child process, so that a crash (SIGBUS,
    SIGSEGV) or a hang fails the calling test instead of killing the test run. Returns the
    child's JSON summary: start, end, segments, records; or error and message."""
    import json
    try:
        r = run_python(OPEN_PROBE, os.fspath(path), json.dumps(cfg or {}), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"opening {path} hung for more than {timeout} s") from None
    assert r.returncode == 0, (f"opening {path} killed the process (exit {r.returncode}); "
                               f"stderr: {r.stderr[-3000:]}")
    return json.loads(r.stdout)


def python_env():
    return dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))


def rng_for(name, seed=20260523):
    return random.Random(f"{name}:{seed}")
