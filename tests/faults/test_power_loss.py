"""Power loss, not only kill -9: what klog acknowledged as durable survives losing everything that
was not fsynced.

The data lives on powerloss_fs.py (a FUSE file system that keeps unsynced writes and directory
changes volatile; see its docstring for the model). Each round: a writer process works on the
mount and prints a line per acknowledged operation; the test cuts the power (from that instant
nothing more reaches "disk", and the writer's file operations fail with EIO), SIGKILLs the
writer, reboots the mount (only the durable state is left) and opens the data directory in this
process with fresh Log / Broker objects. The cut falls just before a random one of the writer's
next file-system changes (powerloss_fs ``cut-after``); in odd rounds each file also keeps a random
prefix of its unsynced writes (torn tails, half-written temp files) instead of none.

An ``ack`` line printed after the cut still counts: the writer only prints it once every file
operation of that step returned success, and every operation after the cut fails, so the step's
fsyncs happened before the cut. (That also holds when klog swallows a failed checkpoint write
after a successful data fsync: then the data is durable and only the recovery point lags.)

``test_positive_control_*``: the same checks, with the writer's ``write_atomic`` stripped of both
fsyncs (the planted bug of klog issue 8, which passed every kill -9 test), must find a loss.
"""
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

import klog
from klog.storage.checkpoint import read_checkpoint
from faultkit import SLOW, python_env

needs_root = pytest.mark.needs_root

ROUNDS = 25 if SLOW else 6

# Prepended to every writer with ``broken=True``: the planted bug, rename kept, fsyncs dropped.
BROKEN_WRITE_ATOMIC = r"""
import os
import klog.metadata, klog.storage.checkpoint, klog.storage.files
def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
for m in (klog.storage.files, klog.storage.checkpoint, klog.metadata):
    m.write_atomic = write_atomic
"""


class Writer:
    """A writer process: its stdout lines, collected as they come."""

    def __init__(self, code, *args, broken=False):
        self.lines = []
        self.eof = False
        self._queue = queue.Queue()
        if broken:
            code = BROKEN_WRITE_ATOMIC + code
        self.proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)],
                                     env=python_env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._stderr = []
        threading.Thread(target=self._read, daemon=True).start()
        self._err_reader = threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr),
                                            daemon=True)
        self._err_reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def _drain(self, block, timeout=None):
        """Move complete lines from the queue to ``lines``; False once stdout is closed."""
        while not self.eof:
            try:
                line = self._queue.get(block, timeout)
            except queue.Empty:
                return True
            if line is None:
                self.eof = True
                break
            if line.endswith("\n"):     # a line cut by SIGKILL is not an acknowledgement
                self.lines.append(line.split())
            block = False
        return False

    def wait_for(self, predicate, timeout=60):
        """Until ``predicate(lines)``; fails if the writer dies first or the deadline passes."""
        deadline = time.monotonic() + timeout
        while not predicate(self.lines):
            if not self._drain(True, 0.05) and not predicate(self.lines):
                self.proc.wait()
                self._err_reader.join(5)
                raise AssertionError(f"writer exited ({self.proc.returncode}) early: "
                                     f"{''.join(self._stderr)[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"writer made no progress in {timeout} s; last lines "
                                     f"{self.lines[-3:]}; stderr {''.join(self._stderr)[-2000:]}")

    def count(self, word):
        return sum(1 for line in self.lines if line[0] == word)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill(self):
        """SIGKILL, then collect every complete line it printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        deadline = time.monotonic() + 30
        while self._drain(True, 0.1):
            assert time.monotonic() < deadline, "the killed writer's stdout stays open"


def crash_round(power, code, args, acks, changes, rng, broken=False, prefix=False):
    """Start a writer, let it acknowledge ``acks`` steps, then cut the power just before one of
    its next ``changes`` file-system changes (chosen at random: a write, fsync, create, rename,
    directory fsync...), kill the writer, reboot. ``prefix``: each file keeps a random prefix of
    its unsynced writes (torn tails) instead of none. Returns the writer's lines."""
    w = Writer(code, *args, broken=broken)
    try:
        w.wait_for(lambda lines: sum(1 for x in lines if x[0] == "ack") >= acks)
        power.cut_power_after(rng.randrange(changes),
                              prefix_seed=rng.randrange(2**31) if prefix else None)
        deadline = time.monotonic() + 60
        while not power.stats()["off"]:
            if w.proc.poll() is not None and not power.stats()["off"]:
                raise AssertionError(f"writer exited early: {''.join(w._stderr)[-3000:]}")
            assert time.monotonic() < deadline, f"the writer made no {changes} changes in 60 s"
            time.sleep(0.01)
    finally:
        w.kill()
    power.reboot()
    return w.lines


# -- 1. appends with flush.messages=1 --------------------------------------------------------------
APPENDER = r"""
import random, sys, klog
d, rnd, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
log = klog.Log.open(d, {"flush.messages": 1, "segment.bytes": 4096, "index.interval.bytes": 256})
print("ready", log.log_end_offset, flush=True)
seq = 0
while True:
    n = rng.randint(1, 3)
    print("try", seq, n, flush=True)
    base = log.append([b"r%d-%d" % (rnd, seq + j) for j in range(n)],
                      compression=rng.choice([None, "lz4"]))
    print("ack", base, seq, n, flush=True)
    seq += n
"""


def check_appends(directory, acked, tried):
    """Problems found on reopening: every acknowledged value at its offset, offsets contiguous
    from 0, the in-flight batches all or nothing, nothing that was never sent."""
    problems = []
    try:
        log = klog.Log.open(directory, {"segment.bytes": 4096})
    except klog.KlogError as exc:
        return [f"open failed: {type(exc).__name__}: {exc}"]
    with log:
        got = [(r.offset, r.value) for r in log.records()]
        start = log.log_start_offset
    if start != 0:
        problems.append(f"log start offset {start}, expected 0")
    offsets = [o for o, _ in got]
    if offsets != list(range(start, start + len(got))):
        problems.append(f"offsets not contiguous from {start}: {offsets[:20]}...")
    at = dict(got)
    lost = {v: o for v, o in acked.items() if at.get(o) != v}
    if lost:
        problems.append(f"{len(lost)} of {len(acked)} acknowledged records lost, e.g. "
                        f"{sorted(lost.items(), key=lambda kv: kv[1])[:5]}")
    values = {v for _, v in got}
    sent = set().union(*tried) if tried else set()
    if values - set(acked) - sent:
        problems.append(f"records never sent: {sorted(values - set(acked) - sent)[:5]}")
    torn = [sorted(batch & values) for batch in tried if 0 < len(batch & values) < len(batch)]
    if torn:
        problems.append(f"batches only partly there: {torn[:3]}")
    return problems


@needs_root
@pytest.mark.parametrize("broken", [False, True], ids=["klog", "positive_control"])
def test_acknowledged_appends_survive_power_loss(power, broken):
    """flush.messages=1: every append that returned before the power loss is there after it at
    its offset, offsets contiguous, and the log opens (recovery cuts only unacknowledged data).
    The log directory does not exist before the first writer: its creation must be durable too."""
    d = os.path.join(power.path, "data", "log")
    os.mkdir(os.path.join(power.path, "data"))
    power.sync()              # the parent of the log directory is durable, as a data dir would be
    rng = random.Random(f"appends:{broken}")
    acked, tried = {}, []     # tried: the values of every batch sent, one set a batch
    problems = []
    for rnd in range(ROUNDS):
        lines = crash_round(power, APPENDER, (d, rnd, rng.randrange(2**31)),
                            acks=rng.randint(20, 80), changes=16, rng=rng, broken=broken,
                            prefix=rnd % 2 == 1)
        for line in lines:
            if line[0] == "ack":
                base, seq, n = map(int, line[1:])
                for j in range(n):
                    acked[b"r%d-%d" % (rnd, seq + j)] = base + j
            elif line[0] == "try":
                seq, n = map(int, line[1:])
                tried.append({b"r%d-%d" % (rnd, seq + j) for j in range(n)})
        problems = check_appends(d, acked, tried)
        if problems:
            break
    if broken:
        assert problems, "the file system did not lose what an fsync-less write_atomic left"
    else:
        assert not problems, problems
        assert len(acked) >= ROUNDS * 20


# -- 2. checkpoints ----------------------------------------------------------------------------------
CHECKPOINTER = r"""
import sys, klog
d = sys.argv[1]
log = klog.Log.open(d, {"segment.bytes": 1 << 20})
print("ready", log.recovery_point, log.log_start_offset, flush=True)
i = 0
while True:
    end = log.log_end_offset
    if i % 3 == 2:
        # The log start moves: DeleteRecords checkpoints it (recovery point unchanged).
        print("try", log.recovery_point, end - 1, flush=True)
        log.delete_before(end - 1)
    else:
        # Two records, then a flush: the recovery point moves to the new end.
        log.append([b"c%d" % end, b"c%d" % (end + 1)])
        print("try", end + 2, log.log_start_offset, flush=True)
        log.flush()
    print("ack", log.recovery_point, log.log_start_offset, log.log_end_offset, flush=True)
    i += 1
"""


def check_checkpoint(directory, lines, prior):
    """The checkpoint holds the last acknowledged (recovery point, log start), the one being
    written at the cut, or the one before the last: klog's flush acknowledges once the data is
    fsynced even if the checkpoint write then fails (it did: after the cut), leaving the old
    checkpoint. Never anything else. Then the log opens and every flushed record above the log
    start is there. Returns (problems, the acknowledged state)."""
    state, before, pending = prior, prior, None
    for line in lines:
        if line[0] in ("ready", "ack"):
            before, state, pending = state, (int(line[1]), int(line[2])), None
        elif line[0] == "try":
            pending = (int(line[1]), int(line[2]))
    problems = []
    try:
        raw = read_checkpoint(os.path.join(directory, "log.checkpoint"))
    except klog.KlogError as exc:      # an empty or torn file: neither the old nor the new value
        return [f"checkpoint unreadable: {exc}"], state
    found = (raw.get("recovery-point"), raw.get("log-start-offset")) if raw else None
    allowed = {before, state, pending}
    if found not in allowed:
        problems.append(f"checkpoint (recovery point, log start) is {found}; the last "
                        f"acknowledged ones are {before} and {state}, the one in flight "
                        f"{pending}")
    try:
        log = klog.Log.open(directory, {"segment.bytes": 1 << 20})
    except klog.KlogError as exc:
        return problems + [f"open failed: {type(exc).__name__}: {exc}"], state
    with log:
        rp, start = state
        if log.log_start_offset not in (start, pending and pending[1]):
            problems.append(f"log start {log.log_start_offset}, acknowledged {start}")
        got = {r.offset: r.value for r in log.records()}
        missing = [o for o in range(max(start, log.log_start_offset), rp) if got.get(o) != b"c%d" % o]
        if missing:
            problems.append(f"flushed offsets {missing[:10]}... (of [{start}, {rp})) are lost")
        state = (log.recovery_point, log.log_start_offset)
    return problems, state


@needs_root
@pytest.mark.parametrize("broken", [False, True], ids=["klog", "positive_control"])
def test_checkpoints_are_old_or_new_after_power_loss(power, broken):
    """Recovery point and log start offset checkpoints (written by flush and delete_before):
    after the power loss, the checkpoint file is the old or the new value, the log opens, and
    nothing below the acknowledged recovery point is lost."""
    d = os.path.join(power.path, "log")
    os.mkdir(d)
    power.sync()
    rng = random.Random(f"checkpoints:{broken}")
    state, problems = None, []
    for rnd in range(ROUNDS):
        lines = crash_round(power, CHECKPOINTER, (d,), acks=rng.randint(5, 25), changes=16,
                            rng=rng, broken=broken, prefix=rnd % 2 == 1)
        problems, state = check_checkpoint(d, lines, state)
        if problems:
            break
    if broken:
        assert problems, "the file system did not lose what an fsync-less write_atomic left"
    else:
        assert not problems, problems


# -- 3. broker metadata ----------------------------------------------------------------------------
TOPIC_CREATOR = r"""
import sys, klog
d, rnd = sys.argv[1], int(sys.argv[2])
broker = klog.open(d, {"log.cleaner.enable": False})
producer = broker.producer({"linger.ms": 0})
print("ready", flush=True)
i = 0
while True:
    name = f"t{rnd}-{i}"
    print("try", name, flush=True)
    broker.create_topic(name, partitions=2, config={"flush.messages": 1, "segment.bytes": 4096})
    print("created", name, flush=True)
    producer.send(name, name.encode(), partition=1).get(timeout=30)
    print("ack", name, flush=True)
    i += 1
"""


def check_topics(data_dir, created, produced):
    """Every topic whose creation returned is there with its partitions, and every record whose
    send returned (to a topic with flush.messages=1) is in partition 1."""
    try:
        broker = klog.open(data_dir, {"log.cleaner.enable": False})
    except klog.KlogError as exc:
        return [f"open failed: {type(exc).__name__}: {exc}"]
    problems = []
    with broker:
        topics = set(broker.list_topics())
        missing = sorted(created - topics)
        if missing:
            problems.append(f"{len(missing)} of {len(created)} created topics lost: {missing[:5]}")
        for name in sorted(created & topics):
            desc = broker.describe_topic(name)
            if len(desc.partitions) != 2:
                problems.append(f"{name}: {len(desc.partitions)} partitions, created with 2")
        for name in sorted(produced & topics):
            values = [r.value for r in broker.log(name, 1).records()]
            if values != [name.encode()]:
                problems.append(f"{name}: partition 1 holds {values}, acknowledged "
                                f"[{name.encode()!r}]")
    return problems


@needs_root
@pytest.mark.parametrize("broken", [False, True], ids=["klog", "positive_control"])
def test_created_topics_survive_power_loss(power, broken):
    """A topic whose create_topic returned is there after the power loss, and so is a record
    acknowledged in it. The data directory is created by klog.open itself."""
    data_dir = os.path.join(power.path, "data")
    rng = random.Random(f"topics:{broken}")
    created, produced, problems = set(), set(), []
    for rnd in range(ROUNDS):
        lines = crash_round(power, TOPIC_CREATOR, (data_dir, rnd), acks=rng.randint(2, 6),
                            changes=60, rng=rng, broken=broken,
                            prefix=rnd % 2 == 1)
        created |= {line[1] for line in lines if line[0] in ("created", "ack")}
        produced |= {line[1] for line in lines if line[0] == "ack"}
        problems = check_topics(data_dir, created, produced)
        if problems:
            break
    if broken:
        assert problems, "the file system did not lose what an fsync-less write_atomic left"
    else:
        assert not problems, problems


# -- 4. the cleaner's segment swaps ----------------------------------------------------------------
COMPACTOR = r"""
import sys, klog
d, rnd, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
log = klog.Log.open(d, {"cleanup.policy": "compact", "segment.bytes": 1024,
                        "flush.messages": 1})
for i in range(n):
    key, value = b"k%d" % (i % 7), b"r%d-%d" % (rnd, i)
    print("ack", log.append([value], keys=[key]), key.decode(), value.decode(), flush=True)
log.flush()
print("filled", flush=True)
sys.stdin.readline()
result = log.clean()
print("cleaned", result.records_removed, flush=True)
sys.stdin.readline()
"""
COMPACTED = 70     # records: 7 keys, ~10 segments of 1024 bytes


def check_compacted(directory, acked):
    """The log opens, every key's latest acknowledged value is its latest record, every record
    left is the one acknowledged at its offset, and no cleaning temp file is left over."""
    try:
        log = klog.Log.open(directory, {"cleanup.policy": "compact", "segment.bytes": 1024})
    except klog.KlogError as exc:
        return [f"open failed: {type(exc).__name__}: {exc}"]
    with log:
        records = list(log.records())
        end = log.log_end_offset
    problems = []
    by_offset = {o: (k, v) for o, (k, v) in acked.items()}
    wrong = [(r.offset, r.key, r.value) for r in records
             if by_offset.get(r.offset) != (r.key, r.value)]
    if wrong:
        problems.append(f"records not acknowledged at their offsets: {wrong[:5]}")
    latest = {}
    for o in sorted(acked):
        latest[acked[o][0]] = acked[o][1]
    view = {}
    for r in records:
        view[r.key] = r.value
    if view != latest:
        problems.append(f"latest value per key {view}, acknowledged {latest}")
    if end != len(acked):
        problems.append(f"log end offset {end}, {len(acked)} records acknowledged")
    temps = [n for n in os.listdir(directory) if n.endswith((".cleaned", ".swap"))]
    if temps:
        problems.append(f"cleaning temp files left after open: {temps}")
    return problems


def compaction_round(power, directory, rnd, cut_after=None, trace=False):
    """Fill a compacted log (every append acknowledged), clean it, with the power cut after
    ``cut_after`` state changes of the cleaning (None: after it finished). Returns (acked
    {offset: (key, value)}, the trace of the cleaning if asked, whether the cleaning finished)."""
    w = Writer(COMPACTOR, directory, rnd, COMPACTED)
    try:
        w.wait_for(lambda lines: lines and lines[-1][0] == "filled")
        if trace:
            power.trace()
        if cut_after is not None:
            power.cut_power_after(cut_after)
        w.send("go")
        deadline = time.monotonic() + 60
        while not (w.count("cleaned") or power.stats()["off"] or w.proc.poll() is not None):
            assert time.monotonic() < deadline, "the cleaning neither finished nor was cut"
            w._drain(True, 0.02)
        stats = power.stats()
        if not stats["off"]:
            power.cut_power()
    finally:
        w.kill()
    power.trace(on=False)
    power.reboot()
    acked = {int(x[1]): (x[2].encode(), x[3].encode()) for x in w.lines if x[0] == "ack"}
    assert len(acked) == COMPACTED, f"the writer acknowledged {len(acked)} of {COMPACTED}"
    return acked, stats["trace"], bool(w.count("cleaned"))


@needs_root
def test_compaction_swaps_survive_power_loss(power):
    """Cleaner swaps (write .cleaned, fsync, rename to .swap = commit, delete old, rename in):
    a power cut before any of the cleaning's directory changes and fsyncs, or after it finished,
    leaves a log that opens with every key's latest value, each record at its offset."""
    d = os.path.join(power.path, "full")
    acked, trace, finished = compaction_round(power, d, 0, trace=True)
    assert finished
    assert not check_compacted(d, acked), check_compacted(d, acked)
    ops = [op for op, _ in trace]
    assert "rename" in ops and "fsyncdir" in ops, f"no swap happened: {ops}"
    # Crash points: just before each rename and directory fsync of the cleaning (the steps whose
    # order matters) and two of its unlinks; SLOW visits every change, writes and fsyncs too.
    if SLOW:
        points = list(range(len(ops)))
    else:
        unlinks = [i for i, op in enumerate(ops) if op == "unlink"]
        points = sorted([i for i, op in enumerate(ops) if op in ("rename", "fsyncdir")]
                        + random.Random("compaction").sample(unlinks, min(2, len(unlinks))))
    left_behind = set()
    for n, point in enumerate(points, 1):
        d = os.path.join(power.path, f"cut-{point}")
        acked, _, finished = compaction_round(power, d, n, cut_after=point)
        assert not finished
        left_behind |= {os.path.splitext(name)[1] for name in os.listdir(d)}
        problems = check_compacted(d, acked)
        assert not problems, (f"power cut before change {point} ({trace[point]}) of the "
                              f"cleaning: {problems}")
    # The sweep reached both sides of the commit point: uncommitted .cleaned files (undone on
    # open) and committed .swap files (finished on open).
    assert {".cleaned", ".swap"} <= left_behind, left_behind


# -- a regression test for a bug found above, without FUSE -------------------------------------------
@pytest.mark.parametrize("tail", [8192, 100])
def test_rolled_segment_whose_trim_was_lost_opens(tmp_path, tail):
    """A rolled segment is trimmed (its reserved zeros cut) at the roll, but that ftruncate is
    durable only after a later fdatasync, while the recovery point already covers the segment
    (flush.messages=1 moved it past every batch). A power loss in between leaves the segment
    with its zero tail below the recovery point: it must open, not fail as lost data.
    (Found by test_acknowledged_appends_survive_power_loss.)"""
    from faultkit import crash_copy, seg_file, segment_bases
    d = tmp_path / "log"
    log = klog.Log.open(d, {"segment.bytes": 1024, "flush.messages": 1})
    for i in range(60):
        log.append([b"value %d" % i])
    crash = crash_copy(log, str(tmp_path / "crash"))
    log.close()
    first = segment_bases(crash)[0]
    with open(seg_file(crash, first), "ab") as f:   # the reserve the lost trim had cut
        f.write(bytes(tail))
    with klog.Log.open(crash, {"segment.bytes": 1024}) as log:
        assert [r.value for r in log.records()] == [b"value %d" % i for i in range(60)]
        assert len(log.segments) > 2
    with klog.Log.open(crash, {"segment.bytes": 1024}) as log:     # trimmed for good
        assert os.path.getsize(seg_file(crash, first)) < 1024 + 100
