"""An unknown producer's first batch must start at sequence 0 while the partition's idempotence
state is complete (jepsen3: a gap acknowledged to librdkafka lost 127 writes); any first sequence
is accepted once the state may have forgotten producers (KIP-360)."""
import json
import shutil

import pytest
from hypothesis import given, settings, strategies as st

from klog._native.batch import build_batch
from klog.error_codes import ErrorCode as EC
from klog.storage.log import Log
from klog.storage.producer_state import (
    OutOfOrderSequenceError, ProducerState, UnknownProducerSequenceError,
)


def _batch(pid, seq, n=1, epoch=0, value=b"v"):
    return build_batch([value] * n, [b"k"] * n, None, None, 0, 0, None, pid, epoch, seq)


def _header(pid, seq, n=1, epoch=0):
    from klog._native.batch import read_header
    return read_header(_batch(pid, seq, n, epoch))


def test_unknown_producer_past_sequence_zero_is_refused_with_error_45():
    state = ProducerState()
    with pytest.raises(UnknownProducerSequenceError) as exc:
        state.check(_header(7, 5, 5))
    assert exc.value.error_code == EC.OUT_OF_ORDER_SEQUENCE_NUMBER == 45
    assert "sequence 0, not 5" in str(exc.value)
    assert state.check(_header(7, 0, 5)) is None


def test_incomplete_state_accepts_any_first_sequence():
    state = ProducerState()
    state.complete = False
    assert state.check(_header(7, 127, 3)) is None


attempts = st.lists(st.tuples(st.integers(1, 3), st.integers(0, 8), st.integers(1, 3)),
                    max_size=40)


@settings(max_examples=300, deadline=None)
@given(attempts, st.booleans())
def test_accepted_sequences_of_each_producer_have_no_gap(batches, complete):
    """Whatever the order batches arrive in, what is accepted of a producer is one contiguous
    run of sequences: from 0 on a complete state, from its first accepted batch otherwise."""
    state = ProducerState()
    state.complete = complete
    accepted = {}
    offset = 0
    for pid, first, n in batches:
        h = _header(pid, first, n)
        try:
            dup = state.check(h)
        except OutOfOrderSequenceError:
            continue
        if dup is not None:
            continue
        state.update(h, offset)
        offset += n
        accepted.setdefault(pid, []).append((first, n))
    for pid, runs in accepted.items():
        if complete:
            assert runs[0][0] == 0
        nxt = runs[0][0]
        for first, n in runs:
            assert first == nxt, (pid, runs)
            nxt = first + n


def _refuses_gap(log, pid=99):
    try:
        log.append_idempotent(_batch(pid, 5))
    except UnknownProducerSequenceError:
        return True
    return False


def test_fresh_log_refuses_and_log_started_past_zero_accepts(tmp_path):
    with Log.open(tmp_path / "a") as log:
        assert _refuses_gap(log)
        assert log.log_end_offset == 0
        log.truncate_fully_and_start_at(10)   # a follower starting at the leader's log start
        assert not _refuses_gap(log)


def test_state_after_reopen(tmp_path):
    d = tmp_path / "b"
    with Log.open(d, {"segment.bytes": 1024}) as log:
        for i in range(20):
            log.append_idempotent(_batch(1, i, value=b"x" * 300))
    # A clean close writes a snapshot of a complete state: still complete.
    with Log.open(d) as log:
        assert _refuses_gap(log)
        assert log.append_idempotent(_batch(1, 20)) == (20, False)
        log.delete_before(15)   # DeleteRecords: the first segments go
        assert log.log_start_offset == 15 and log.segments[0] > 0
        # In memory nothing was forgotten: still complete.
        assert _refuses_gap(log)
        log.flush()
        shutil.copytree(d, tmp_path / "crash", ignore=shutil.ignore_patterns(".lock"))
    # A crash copy: without a snapshot the state comes from the remaining segments, which no
    # longer start at 0, so producers whose batches were all deleted may be unknown.
    (tmp_path / "crash" / "producer.snapshot").unlink(missing_ok=True)
    with Log.open(tmp_path / "crash") as log:
        assert not _refuses_gap(log)   # KIP-360: such a producer goes on
        assert log.append_idempotent(_batch(1, 21)) == (22, False)   # a known one still checked
        with pytest.raises(OutOfOrderSequenceError):
            log.append_idempotent(_batch(1, 40))


def test_old_snapshot_without_the_flag_is_incomplete(tmp_path):
    d = tmp_path / "c"
    with Log.open(d) as log:
        log.append_idempotent(_batch(1, 0))
    snap = d / "producer.snapshot"
    data = json.loads(snap.read_text())
    assert data["complete"] is True
    del data["complete"]
    snap.write_text(json.dumps(data))
    with Log.open(d) as log:
        assert not _refuses_gap(log)


def test_snapshot_older_than_the_first_segment_is_incomplete(tmp_path):
    d = tmp_path / "d"
    with Log.open(d, {"segment.bytes": 1024}) as log:
        log.append_idempotent(_batch(1, 0, value=b"x" * 300))
    saved = (d / "producer.snapshot").read_text()   # complete, at offset 1
    with Log.open(d, {"segment.bytes": 1024}) as log:
        for i in range(1, 20):
            log.append_idempotent(_batch(2, i - 1, value=b"x" * 300))
        log.delete_before(15)
        assert log.segments[0] > 1
    (d / "producer.snapshot").write_text(saved)   # as a crash would leave it
    with Log.open(d) as log:
        assert not _refuses_gap(log)


def test_compacted_log_rebuilt_from_segments_is_incomplete(tmp_path):
    d = tmp_path / "e"
    with Log.open(d, {"cleanup.policy": "compact"}) as log:
        assert _refuses_gap(log)   # in memory, nothing removed yet
        log.append_idempotent(_batch(1, 0))
        log.append_idempotent(_batch(1, 1))
        log.truncate_to(1)   # any rebuild from the segments of a compacted log
        assert not _refuses_gap(log)
