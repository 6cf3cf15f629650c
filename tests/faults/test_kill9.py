"""kill -9 during appends (reliability.md recipe 1), checked Jepsen-style (C1-C6).

A writer process appends numbered records in batches of 1-3 and reports on stdout, line by line:
``try <seq> <n>`` before each append and ``ack <base> <seq> <n>`` after it returned (with
flush.messages=1: after the fsync). The test SIGKILLs it at a random moment (sometimes while it
is still opening and recovering the log), then checks a copy of the directory (open = recovery,
timed) and lets the next writer recover the original. Only complete stdout lines count: an
``ack`` line is an acknowledged write; a ``try`` without its ``ack`` is an unknown one.

Checks on the final read F (all records from the log start):
  C1 no offset changes its value between rounds (every earlier F is a prefix of the next one);
  C2 no value at two offsets;
  C3 every acknowledged value is at its acknowledged offset;
  C4 not applicable (this writer never sees a failed append);
  C5 offsets contiguous from the log start to the end;
  C6 acknowledged offsets increase in send order;
plus: nothing in F that was never sent, and the one unknown batch of a round is all or nothing.

kill -9 does not lose page-cache data, so the variant without any flush must lose nothing
either. (That says nothing about power loss: see test_torn_tail / test_corruption.)
"""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

import klog
from faultkit import SLOW, python_env, rng_for

WRITER = r"""
import random, sys, klog
d, rnd, flush, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
cfg = {"segment.bytes": 16384, "index.interval.bytes": 256, "max.message.bytes": 16384}
if flush:
    cfg["flush.messages"] = 1
rng = random.Random(seed)
out = sys.stdout
log = klog.Log.open(d, cfg)
out.write(f"ready {log.log_end_offset}\n")
out.flush()
seq = 0
while True:
    n = rng.randint(1, 3)
    values = [b"r%d-%d" % (rnd, seq + j) for j in range(n)]
    out.write(f"try {seq} {n}\n")
    out.flush()
    base = log.append(values, compression=rng.choice([None, None, "lz4", "zstd"]))
    out.write(f"ack {base} {seq} {n}\n")
    out.flush()
    seq += n
"""

CFG = {"segment.bytes": 16384, "index.interval.bytes": 256, "max.message.bytes": 16384}
ROUNDS = 100 if SLOW else 8
ROUNDS_PER_DIR = 25


class Round:
    def __init__(self, rnd):
        self.rnd = rnd
        self.acked = {}        # value -> offset
        self.ack_order = []    # offsets in send order
        self.tries = {}        # seq -> n
        self.ready = False


def run_round(d, rnd, flush, rng, script):
    """One writer life: start, let it append, SIGKILL. Returns the Round as seen on stdout.
    Without flushes appends are ~100x faster, so that writer gets less time (the log, and
    every recovery of it, stays small)."""
    r = Round(rnd)
    p = subprocess.Popen([sys.executable, script, d, str(rnd), "1" if flush else "0",
                          str(rng.randrange(2**31))],
                         env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    ready = threading.Event()

    def drain():  # keep the pipe empty so the writer never blocks on stdout
        buf = b""
        while True:
            chunk = p.stdout.read1(65536)
            if not chunk:
                break
            buf += chunk
            *done, buf = buf.split(b"\n")
            for line in done:
                lines.append(line.decode())
                if line.startswith(b"ready"):
                    ready.set()

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    if rng.random() < 0.25:
        time.sleep(rng.uniform(0, 0.3))          # maybe still opening / recovering
    else:
        if not ready.wait(30):
            p.kill()
            raise AssertionError(f"writer never got ready: {p.stderr.read().decode()[-2000:]}")
        time.sleep(rng.uniform(0, 0.25 if flush else 0.08))
    p.send_signal(signal.SIGKILL)
    rc = p.wait(30)
    t.join(30)
    err = p.stderr.read().decode()
    p.stdout.close()
    p.stderr.close()
    assert rc == -signal.SIGKILL, f"writer ended on its own (rc {rc}): {err[-3000:]}"
    for line in lines:
        kind, *args = line.split()
        if kind == "ready":
            r.ready = True
        elif kind == "try":
            seq, n = map(int, args)
            r.tries[seq] = n
        elif kind == "ack":
            base, seq, n = map(int, args)
            assert r.tries.get(seq) == n
            for j in range(n):
                r.acked[b"r%d-%d" % (rnd, seq + j)] = base + j
                r.ack_order.append(base + j)
    return r


def final_read(d, work, times):
    """Copy the crashed directory, open the copy (recovery, timed), read everything."""
    if not os.path.exists(d):        # killed before it even created the directory
        return 0, 0, []
    shutil.copytree(d, work, ignore=shutil.ignore_patterns(".lock"))
    t0 = time.perf_counter()
    log = klog.Log.open(work, CFG)
    times.append(time.perf_counter() - t0)
    try:
        start = log.log_start_offset
        rows = [(rec.offset, rec.value) for rec in log.records()]
        end = log.log_end_offset
    finally:
        log.close()
    shutil.rmtree(work)
    return start, end, rows


def check_history(rounds, prev_rows, start, end, rows):
    """C1-C6 for the history so far; returns counts for the report."""
    offsets = [o for o, _ in rows]
    # C5: contiguous from the log start to the end
    assert offsets == list(range(start, end)), "C5 gap: offsets not contiguous"
    # C1: earlier reads are a prefix (no offset changed its value, nothing acknowledged vanished)
    assert rows[:len(prev_rows)] == prev_rows, "C1: an offset changed value between rounds"
    # C2: no duplicates
    values = [v for _, v in rows]
    assert len(set(values)) == len(values), "C2: a value appears at two offsets"
    at = dict((v, o) for o, v in rows)
    unknown_present = 0  # in the latest round
    for r in rounds:
        # C3: every acknowledged value at its acknowledged offset
        for v, o in r.acked.items():
            assert at.get(v) == o, f"C3 lost write: {v!r} acknowledged at {o}, read at {at.get(v)}"
        # C6: acknowledged offsets increase in send order
        assert r.ack_order == sorted(r.ack_order) and len(set(r.ack_order)) == len(r.ack_order)
        # nothing never sent; the unknown (tried, not acknowledged) batch is all or nothing
        prefix = b"r%d-" % r.rnd
        mine = sorted(int(v[len(prefix):]) for v in values if v.startswith(prefix))
        acked = sorted(int(v[len(prefix):]) for v in r.acked)
        acked_set = set(acked)
        extra = [s for s in mine if s not in acked_set]
        if extra:
            seq = min(extra)
            n = r.tries.get(seq)
            assert n is not None and extra == list(range(seq, seq + n)), (
                f"round {r.rnd}: values {extra} present but never acknowledged as one batch")
            assert seq == (max(acked) + 1 if acked else 0)
            unknown_present = int(r is rounds[-1])
    # values only from this test's writers
    assert all(v.startswith(b"r") for v in values)
    return unknown_present


@pytest.mark.slow
@pytest.mark.parametrize("flush", [True, False], ids=["flush-every-message", "page-cache-only"])
def test_kill9_during_appends(tmp_path, flush, record_property):
    """SIGKILL a writer at random moments, ROUNDS times (8 by default, 100 with
    KLOG_SLOW_TESTS=1): after each kill, C1-C6 hold and nothing acknowledged is lost, with
    flush.messages=1 and with no flush at all (page cache survives kill -9)."""
    script = str(tmp_path / "writer.py")
    with open(script, "w") as f:
        f.write(WRITER)
    rng = rng_for(f"kill9-{flush}")
    times, total_acks, unknown, killed_before_ready = [], 0, 0, 0
    d, rounds, prev = None, [], []
    for rnd in range(ROUNDS):
        if rnd % ROUNDS_PER_DIR == 0:   # bound the log (and each final read) in long runs
            d, rounds, prev = str(tmp_path / f"log{rnd}"), [], []
        r = run_round(d, rnd, flush, rng, script)
        rounds.append(r)
        total_acks += len(r.acked)
        killed_before_ready += not r.ready
        start, end, rows = final_read(d, str(tmp_path / "check"), times)
        try:
            unknown += check_history(rounds, prev, start, end, rows)
        except AssertionError as exc:
            raise AssertionError(f"after round {rnd} (flush={flush})") from exc
        prev = rows
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    summary = (f"kill -9 ({'flush.messages=1' if flush else 'no flush'}): {ROUNDS} kills, "
               f"{total_acks} acknowledged records, {unknown} unknown batches found present, "
               f"{killed_before_ready} kills before the writer was ready; violations C1-C6: 0; "
               f"recovery (open) time p50 {times[len(times) // 2] * 1000:.1f} ms, "
               f"p99 {p99 * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms")
    record_property("kill9_summary", summary)
    print("\n" + summary)
    assert total_acks > 0 and any(r.acked for r in rounds), \
        "the writers acknowledged nothing: the test proves nothing"
