"""Zero-copy views from Log.read(): they keep their mapping alive, so they stay valid and
unchanged after close, after the log object is gone, after retention or truncation deletes
their segment's files. Shrinking a file under a live view is refused with BufferError (never a
view over unmapped pages: SIGBUS), and the refused operation changes nothing."""
import gc
import os

import pytest

import klog
from faultkit import read_batches, run_python, seg_file

CFG = {"segment.bytes": 2048, "index.interval.bytes": 128, "max.message.bytes": 16384}


def fill(d, n=120, cfg=CFG):
    log = klog.Log.open(d, cfg)
    for i in range(n):
        log.append([b"value-%03d-" % i + bytes([i % 251]) * (i % 40)])
    return log


def raw_at(batches, offset):
    return next(b.raw for b in batches if b.base <= offset <= b.last)


def test_view_survives_close_and_collection(tmp_path):
    d = str(tmp_path / "log")
    log = fill(d)
    views = {o: log.read(o, 1) for o in (0, 17, 59, 119)}
    log.close()
    batches = read_batches(d)
    for o, v in views.items():
        assert bytes(v) == raw_at(batches, o)
    del log
    gc.collect()
    for o, v in views.items():
        assert bytes(v) == raw_at(batches, o)
        assert klog.decode_batch(v)[0].offset <= o <= klog.decode_batch(v)[-1].offset
        v.release()


def test_view_survives_retention_deleting_its_segment(tmp_path):
    d = str(tmp_path / "log")
    log = fill(d)
    first = log.segments[0]
    keep = log.size - os.path.getsize(seg_file(d, first))
    log.close()
    # retention.bytes: exactly the oldest segment is over the limit.
    log = klog.Log.open(d, dict(CFG, **{"retention.bytes": keep}))
    batches = read_batches(d)
    view = log.read(first, 10_000)
    want = bytes(view)
    assert log.enforce_retention() == 1
    assert log.segments[0] != first and log.log_start_offset == log.segments[0]
    assert not os.path.exists(seg_file(d, first))
    assert bytes(view) == want and want.startswith(raw_at(batches, first))
    # The log itself is fine and the view still reads after close too.
    assert log.read(log.log_start_offset, 1).nbytes > 0
    log.close()
    assert bytes(view) == want
    view.release()


def test_view_survives_delete_before_and_truncation_of_later_segments(tmp_path):
    d = str(tmp_path / "log")
    log = fill(d)
    bases = log.segments
    assert len(bases) >= 4
    batches = read_batches(d)
    early = log.read(bases[0], 1)
    late = log.read(bases[-1], 1)
    want_early, want_late = bytes(early), bytes(late)
    log.delete_before(bases[2])
    assert not os.path.exists(seg_file(d, bases[0]))
    # Truncating into an earlier segment deletes the segment ``late`` maps; no view of the
    # segment being cut is alive, so this is allowed.
    assert log.truncate_to(bases[-2] + 1) <= bases[-2] + 1
    assert not os.path.exists(seg_file(d, bases[-1]))
    assert bytes(early) == want_early == raw_at(batches, bases[0])
    assert bytes(late) == want_late == raw_at(batches, bases[-1])
    log.close()
    early.release()
    late.release()


@pytest.mark.parametrize("where", ["active", "sealed"])
def test_truncate_under_a_live_view_is_refused(tmp_path, where):
    """truncate_to into a segment while a view over it is alive: BufferError; the log is
    unchanged (end, segments, records, files) and keeps working (reads, appends); once the view
    is released, the truncation works and survives a reopen."""
    d = str(tmp_path / "log")
    log = fill(d)
    bases = log.segments
    seg = bases[-1] if where == "active" else bases[-3]
    nxt = bases[bases.index(seg) + 1] if seg != bases[-1] else log.log_end_offset
    cut = (seg + nxt) // 2
    assert seg < cut < nxt
    view = log.read(seg, 1)
    want = bytes(view)
    end, segments = log.log_end_offset, log.segments
    records = [(r.offset, r.value) for r in log.records()]
    # (a background flush of a rolled segment may be rewriting log.checkpoint: skip its temp file)
    listing = lambda: sorted(f for f in os.listdir(d) if not f.endswith(".tmp"))  # noqa: E731
    files = listing()
    with pytest.raises(BufferError):
        log.truncate_to(cut)
    assert (log.log_end_offset, log.segments) == (end, segments)
    assert [(r.offset, r.value) for r in log.records()] == records
    assert listing() == files
    assert bytes(view) == want
    assert log.append([b"after refusal"]) == end
    assert [r.value for r in log.records(end)] == [b"after refusal"]
    view.release()
    new_end = log.truncate_to(cut)
    assert seg < new_end <= cut
    assert [(r.offset, r.value) for r in log.records()] == [x for x in records if x[0] < new_end]
    assert log.append([b"after truncation"]) == new_end
    log.close()
    with klog.Log.open(d, CFG) as log:
        assert log.log_end_offset == new_end + 1
        assert [r.value for r in log.records(new_end)] == [b"after truncation"]


def test_view_on_the_active_segment_while_appending(tmp_path):
    """A view taken before more appends (which may extend the file and reserve space) still
    reads the same bytes; views taken later see the new batches."""
    d = str(tmp_path / "log")
    log = klog.Log.open(d, {"segment.bytes": 1 << 20})
    log.append([b"first"])
    view = log.read(0, 1 << 20)
    want = bytes(view)
    for i in range(2000):
        log.append([b"x" * 200])
    assert bytes(view) == want
    assert log.read(0, 1 << 20).nbytes > len(want)
    view.release()
    log.close()


VIEW_AFTER_CLOSE_CHILD = r"""
import gc, sys, klog
log = klog.Log.open(sys.argv[1], {"segment.bytes": 2048})
for i in range(40):
    log.append([b"%d" % i * 30])
views = [log.read(o, 1) for o in range(40)]
log.enforce_retention(now=2**62)   # retention.ms default: every sealed segment expires
log.close()
del log
gc.collect()
print(sum(len(bytes(v)) for v in views), len(klog.decode_batch(views[-1])))
"""


def test_views_in_a_child_after_everything_is_gone(tmp_path):
    """Same checks in a fresh process (a SIGBUS or SIGSEGV there fails the test, not the run):
    every view taken, then retention deletes the sealed segments, close, collection; reading
    every view afterwards works."""
    r = run_python(VIEW_AFTER_CLOSE_CHILD, tmp_path / "log", timeout=60)
    assert r.returncode == 0, f"child died (exit {r.returncode}): {r.stderr[-2000:]}"
    total, n = map(int, r.stdout.split())
    assert total > 40 * 61 and n == 1
