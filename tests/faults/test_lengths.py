"""Recovery never trusts an unchecked length.

A batchLength is stepped over by every walk of a segment: recovery's validation, the clean
load's tail check, the idempotent-producer rebuild, the readers' index walks, the cleaner. A
damaged one (-12 is a step of zero bytes; a large negative one steps back before the file)
must end that walk with an error naming the file, a byte that is inside the file and the
offsets around it; never a loop, a crash or a negative position. Each open runs in a child
process with a timeout, so a loop that comes back fails the test instead of hanging it.
"""
import json
import os
import re
import shutil
import struct
import subprocess

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import klog
from faultkit import SLOW, crash_copy, read_batches, run_python, seg_file, segment_bases

CFG = {"segment.bytes": 4096, "index.interval.bytes": 512, "max.message.bytes": 16384}
TS0 = 1_700_000_000_000
TIMEOUT = 60

PROBE = r"""
import json, sys, klog
d, cfg = sys.argv[1], json.loads(sys.argv[2])
out = {"open": "ok", "errors": []}
try:
    log = klog.Log.open(d, cfg)
except klog.CorruptLogError as exc:
    out["open"] = "CorruptLogError"
    out["errors"].append(str(exc))
else:
    with log:
        out["end"] = log.log_end_offset
        for o in range(log.log_start_offset, log.log_end_offset):
            try:
                v = log.read(o, 1)
                klog.decode_batch(v)
                v.release()
            except (klog.CorruptRecordError, klog.CorruptLogError) as exc:
                out["errors"].append(str(exc))
        try:
            sum(1 for _ in log.records())
        except (klog.CorruptRecordError, klog.CorruptLogError) as exc:
            out["errors"].append(str(exc))
        try:
            log.offset_for_time(2**62)
            log.offset_for_time(0)
        except (klog.CorruptRecordError, klog.CorruptLogError) as exc:
            out["errors"].append(str(exc))
print(json.dumps(out))
"""


def probe(d):
    try:
        r = run_python(PROBE, d, json.dumps(CFG), timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"opening or reading {d} hung for {TIMEOUT} s (a walk that loops)")
    assert r.returncode == 0, f"the child died (exit {r.returncode}): {r.stderr[-3000:]}"
    return json.loads(r.stdout)


def fill(d, n=200):
    log = klog.Log.open(d, CFG)
    for i in range(n):
        log.append([b"v%d-%d" % (i, j) * (1 + i % 5) for j in range(i % 3 + 1)],
                   timestamps=TS0 + i)
    return log


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Three data directories, each several sealed segments and an active one:
    ``clean``: closed cleanly, producer snapshot removed (the open walks every header);
    ``flushed``: a crash copy after a flush (sealed segments trusted, the active one revalidated);
    ``unflushed``: a crash copy with nothing flushed (every segment revalidated)."""
    root = tmp_path_factory.mktemp("lengths")
    out = {}
    log = fill(str(root / "clean"))
    log.close()
    os.unlink(str(root / "clean" / "producer.snapshot"))
    out["clean"] = str(root / "clean")
    log = fill(str(root / "live1"))
    log.flush()
    out["flushed"] = crash_copy(log, str(root / "flushed"))
    log.close()
    log = fill(str(root / "live2"))
    out["unflushed"] = crash_copy(log, str(root / "unflushed"))
    log.close()
    for d in out.values():
        assert len(segment_bases(d)) >= 4
    return out


def damaged_copy(src, dst, where, length):
    """Copy ``src`` and write ``length`` into the batchLength of batch ``where`` (an index into
    the sealed batches, or -1 - i for the i-th batch of the active segment)."""
    shutil.copytree(src, dst)
    batches = read_batches(dst)
    active = segment_bases(dst)[-1]
    pool = [b for b in batches if b.segment != active] if where >= 0 else \
        [b for b in batches if b.segment == active]
    victim = pool[where % len(pool)] if where >= 0 else pool[(-1 - where) % len(pool)]
    with open(seg_file(dst, victim.segment), "r+b") as f:
        f.seek(victim.pos + 8)
        f.write(struct.pack(">i", length))
    return victim


def check_errors(got, victim_file):
    for msg in got["errors"]:
        assert not re.search(r"byte -\d", msg), f"a negative byte position: {msg}"
    if got["open"] != "ok":
        msg = got["errors"][0]
        assert victim_file in msg, msg
        m = re.search(r"byte (\d+)", msg)
        assert m and int(m.group(1)) < os.path.getsize(victim_file), msg


LENGTHS = st.one_of(st.sampled_from([-12, -11, -1, 0, 1, 48, 49, 50, -403649718, 2**31 - 1]),
                    st.integers(-2**31, 2**31 - 1))


@settings(max_examples=150 if SLOW else 25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scenario=st.sampled_from(["clean", "flushed", "unflushed"]),
       where=st.integers(-50, 200), length=LENGTHS)
@example(scenario="clean", where=3, length=-12)
@example(scenario="flushed", where=3, length=-12)
@example(scenario="flushed", where=-1, length=-12)
@example(scenario="unflushed", where=5, length=-403649718)
def test_damaged_length_never_loops_crashes_or_goes_negative(sources, tmp_path_factory,
                                                             scenario, where, length):
    d = str(tmp_path_factory.mktemp("case") / "log")
    victim = damaged_copy(sources[scenario], d, where, length)
    got = probe(d)
    check_errors(got, seg_file(d, victim.segment))


def test_length_minus_12_in_a_sealed_segment_fails_closed(tmp_path):
    """The fault run's first case: batchLength -12 in a sealed segment below the recovery
    point, no producer snapshot: the open rebuilt the producer state by stepping 0 bytes at a
    time, forever. Now it refuses, naming the file, the byte and the last good offset."""
    log = fill(str(tmp_path / "live"))
    log.flush()
    d = crash_copy(log, str(tmp_path / "snap"))
    log.close()
    victim = [b for b in read_batches(d) if b.segment == segment_bases(d)[1]][2]
    with open(seg_file(d, victim.segment), "r+b") as f:
        f.seek(victim.pos + 8)
        f.write(struct.pack(">i", -12))
    got = probe(d)
    assert got["open"] == "CorruptLogError", got
    msg = got["errors"][0]
    assert seg_file(d, victim.segment) in msg and f"byte {victim.pos}:" in msg, msg
    assert "length -12" in msg and f"last good offset {victim.base - 1}" in msg, msg


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "crash"])
def test_zeroed_page_in_a_trusted_segment_names_a_real_byte(tmp_path, clean):
    """The fault run's second case: a page of zeros in a segment the open does not revalidate
    ended in "no complete batch header at byte -403649718". Now: CorruptLogError naming the
    file and the (non-negative) byte where the zeros start, and the last good offset."""
    log = klog.Log.open(str(tmp_path / "live"), {"segment.bytes": 1 << 16})
    for i in range(600):
        log.append([b"v%d" % i * 20])
    log.flush()
    if clean:
        log.close()
        d = str(tmp_path / "live")
        os.unlink(os.path.join(d, "producer.snapshot"))
    else:
        d = crash_copy(log, str(tmp_path / "snap"))
        log.close()
    bases = segment_bases(d)
    assert len(bases) >= 2
    starts = {b.pos for b in read_batches(d) if b.segment == bases[0]}
    with open(seg_file(d, bases[0]), "r+b") as f:
        f.seek(8192)
        f.write(bytes(4096))
    got = probe(d)
    assert got["open"] == "CorruptLogError", got
    msg = got["errors"][0]
    assert seg_file(d, bases[0]) in msg and "last good offset" in msg, msg
    pos = int(re.search(r"byte (\d+)", msg).group(1))
    assert pos in starts and 8192 - 61 < pos <= 8192 + 4096, msg
