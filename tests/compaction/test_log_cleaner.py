"""The log cleaner's scheduling (klog.storage.log_cleaner): the dirty ratio, max.compaction.lag.ms,
tombstone expiry, and the cleaner checkpoint (``cleaner-offset-checkpoint``) that keeps a pass
from reading the clean part of a log again."""
import os
import subprocess
import sys
import textwrap
import time
import uuid

import klog
from klog.storage import cleaner, log_cleaner
from klog.storage.log_cleaner import CHECKPOINT_FILE, read_cleaner_checkpoint

from .helpers import keyed_view

NOW = 10_000_000
QUIET = {"log.retention.check.interval.ms": 3_600_000, "log.cleaner.backoff.ms": 3_600_000}
TOPIC = {"cleanup.policy": "compact", "segment.bytes": 4096, "delete.retention.ms": 1_000}


def append(log, keys, tag, ts=1_000):
    for k in keys:
        log.append([b"%s-%d" % (tag, k) + b"." * 40], keys=[b"k%04d" % k], timestamps=ts)


def clean_part_and_dirty_part(broker, topic_config, distinct=300, rewrite=20):
    """A log with ``distinct`` keys cleaned once (the checkpoint at the end of it), then
    ``rewrite`` of those keys written again into a sealed segment: a low dirty ratio."""
    broker.create_topic("state", 1, dict(TOPIC, **topic_config))
    log = broker.log("state", 0)
    append(log, range(distinct), b"old")
    log.roll()
    first = broker.clean_logs(now=NOW)[("state", 0)]
    assert first.dirty_end == log.log_end_offset
    append(log, range(rewrite), b"new")
    log.roll()
    return log


def ratio(broker, now=NOW):
    log = broker.log("state", 0)
    return log_cleaner.log_to_clean(("state", 0), log, broker.log_cleaner.first_dirty("state", 0),
                                    now).dirty_ratio


def test_dirty_ratio_below_threshold_is_not_cleaned_above_it_is(tmp_path):
    with klog.open(tmp_path, QUIET) as broker:
        log = clean_part_and_dirty_part(broker, {"min.cleanable.dirty.ratio": 0.3})
        assert 0 < ratio(broker) < 0.3
        written = list(log.records())
        assert broker.clean_logs(now=NOW) == {}
        assert list(log.records()) == written            # 20 superseded records still there
        append(log, range(20, 200), b"new")               # most keys again: dirty > 30 %
        log.roll()
        assert ratio(broker) > 0.3
        result = broker.clean_logs(now=NOW)[("state", 0)]
        assert result.groups and result.records_removed == 200
        after = list(log.records())
        assert len(after) == 300 and keyed_view(after) == keyed_view(list(written) + [
            r for r in after if r.value.startswith(b"new")])
        assert ratio(broker) == 0


def test_ratio_is_compared_like_kafka_strictly_above(tmp_path):
    with klog.open(tmp_path, QUIET) as broker:
        broker.create_topic("state", 1, dict(TOPIC, **{"min.cleanable.dirty.ratio": 1.0}))
        log = broker.log("state", 0)
        append(log, [1, 1, 1], b"v")
        log.roll()
        assert ratio(broker) == 1.0
        assert broker.clean_logs(now=NOW) == {}           # 1.0 is not above 1.0
        broker.alter_topic_config("state", {"min.cleanable.dirty.ratio": 0.99})
        assert broker.clean_logs(now=NOW)[("state", 0)].records_removed == 2


def test_max_compaction_lag_forces_a_low_ratio_log(tmp_path):
    lag = 5_000
    with klog.open(tmp_path, QUIET) as broker:
        log = clean_part_and_dirty_part(
            broker, {"min.cleanable.dirty.ratio": 0.9, "max.compaction.lag.ms": lag})
        dirty_ts = 1_000  # the rewritten keys' timestamp (append's default)
        assert ratio(broker, dirty_ts + lag + 1) < 0.9
        assert broker.clean_logs(now=dirty_ts + lag) == {}       # not older than the lag yet
        assert len(list(log.records())) == 320
        result = broker.clean_logs(now=dirty_ts + lag + 1)[("state", 0)]
        assert result.records_removed == 20
        assert len(list(log.records())) == 300


def test_checkpoint_survives_restart_and_clean_part_is_not_read_again(tmp_path, monkeypatch):
    with klog.open(tmp_path, QUIET) as broker:
        log = clean_part_and_dirty_part(broker, {"min.cleanable.dirty.ratio": 0.01})
        end_of_clean = broker.log_cleaner.first_dirty("state", 0)
        dirty_bases = [b for b in log.segments[:-1] if b >= end_of_clean]
        written = list(log.records())
    assert read_cleaner_checkpoint(tmp_path / CHECKPOINT_FILE) == {("state", 0): end_of_clean}

    with klog.open(tmp_path, QUIET) as broker:
        assert broker.log_cleaner.first_dirty("state", 0) == end_of_clean
        log = broker.log("state", 0)
        dirty_bytes = sum(s.size for s in log._segments if s.base_offset in dirty_bases)
        mapped = []
        real = cleaner._build_offset_map
        monkeypatch.setattr(cleaner, "_build_offset_map",
                            lambda infos: mapped.append([i.base for i in infos]) or real(infos))
        result = broker.clean_logs(now=NOW)[("state", 0)]
        assert mapped == [dirty_bases]                 # the map: the dirty segments only
        assert result.first_dirty == end_of_clean
        assert result.map_bytes == dirty_bytes > 0
        assert result.records_removed == 20            # superseded in the clean part
        assert keyed_view(list(log.records())) == keyed_view(written)

        # Nothing dirty now: later rounds read nothing at all.
        passes, read = broker.log_cleaner.passes, broker.log_cleaner.bytes_read
        for _ in range(3):
            assert broker.clean_logs(now=NOW) == {}
        assert (broker.log_cleaner.passes, broker.log_cleaner.bytes_read) == (passes, read)
        assert len(mapped) == 1


def test_kept_tombstone_expiry_triggers_a_pass(tmp_path):
    with klog.open(tmp_path, QUIET) as broker:
        broker.create_topic("state", 1, dict(TOPIC, **{"delete.retention.ms": 1_000}))
        log = broker.log("state", 0)
        append(log, range(50), b"v")
        log.append([None], keys=[b"k0000"], timestamps=2_000)
        log.roll()
        assert broker.clean_logs(now=2_500)[("state", 0)].tombstones_removed == 0
        assert ratio(broker, 2_500) == 0
        assert broker.clean_logs(now=2_999) == {}      # the tombstone lives until 3_000
        result = broker.clean_logs(now=3_000)[("state", 0)]
        assert result.tombstones_removed == 1
        assert b"k0000" not in {r.key for r in log.records()}
        assert broker.clean_logs(now=10_000) == {}


def test_deleted_topic_forgets_its_checkpoint(tmp_path):
    with klog.open(tmp_path, QUIET) as broker:
        broker.create_topic("state", 1, TOPIC)
        append(broker.log("state", 0), range(100), b"v")
        broker.log("state", 0).roll()
        broker.clean_logs(now=NOW)
        assert broker.log_cleaner.first_dirty("state", 0) is not None
        broker.delete_topic("state")
        assert read_cleaner_checkpoint(tmp_path / CHECKPOINT_FILE) == {}
        broker.create_topic("state", 1, TOPIC)
        log = broker.log("state", 0)
        append(log, [1] * 150, b"again")
        log.roll()
        assert broker.clean_logs(now=NOW)[("state", 0)].first_dirty == 0
        assert [r.key for r in log.records()] == [b"k0001"]


def test_a_partition_moved_away_forgets_its_checkpoint(tmp_path):
    """A reassignment takes partition 0 away from this broker: its cleaner entry goes with it
    (partition 1's stays), so when the partition comes back, empty, it starts dirty."""
    with klog.open(tmp_path, QUIET) as broker:
        broker.create_topic("state", 2, TOPIC, topic_id=uuid.uuid4(), local=[0, 1])
        for p in (0, 1):
            append(broker.log("state", p), range(100), b"v")
            broker.log("state", p).roll()
        broker.clean_logs(now=NOW)
        broker.release_partitions("state", [0])
        assert set(read_cleaner_checkpoint(tmp_path / CHECKPOINT_FILE)) == {("state", 1)}
        broker.hold_partitions("state", [0])
        log = broker.log("state", 0)
        append(log, [1] * 150, b"again")
        log.roll()
        assert broker.clean_logs(now=NOW)[("state", 0)].first_dirty == 0


def test_damaged_checkpoint_file_means_everything_is_dirty(tmp_path):
    with klog.open(tmp_path, QUIET) as broker:
        broker.create_topic("state", 1, TOPIC)
        append(broker.log("state", 0), [1] * 100, b"v")
        broker.log("state", 0).roll()
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"0\n7\nstate zero 12\n")
    with klog.open(tmp_path, QUIET) as broker:
        result = broker.clean_logs(now=NOW)[("state", 0)]
        assert result.first_dirty == 0 and result.records_removed == 99


def test_background_thread_waits_backoff_ms(tmp_path):
    with klog.open(tmp_path, {"log.cleaner.backoff.ms": 30,
                              "log.retention.check.interval.ms": 3_600_000}) as broker:
        broker.create_topic("state", 1, TOPIC)
        log = broker.log("state", 0)
        append(log, [7] * 100, b"v")
        log.roll()
        deadline = time.monotonic() + 20
        while len(list(log.records())) > 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(list(log.records())) == 1
        deadline = time.monotonic() + 20
        while (broker.log_cleaner.first_dirty("state", 0) != log.segments[-1]
               and time.monotonic() < deadline):
            time.sleep(0.02)
        assert broker.log_cleaner.first_dirty("state", 0) == log.segments[-1] == 100


CRASH = textwrap.dedent("""
    import os, sys
    import klog
    from klog.storage import log_cleaner
    where = sys.argv[2]
    real_replace = os.replace
    def die(*a, **k):
        os._exit(9)
    def replace(src, dst, *a, **k):
        if str(dst).endswith(log_cleaner.CHECKPOINT_FILE):
            os._exit(9)   # the .tmp is written and synced, the rename never happens
        return real_replace(src, dst, *a, **k)
    broker = klog.open(sys.argv[1], {"log.cleaner.backoff.ms": 3600000,
                                     "log.retention.check.interval.ms": 3600000})
    log = broker.log("state", 0)
    for i in range(400):
        log.append([b"second-%d" % i], keys=[b"k%04d" % (i % 40)], timestamps=1000)
    log.roll()
    if where == "before-write":
        log_cleaner.write_cleaner_checkpoint = die
    else:
        os.replace = replace
    broker.clean_logs(now=10000000)
    os._exit(3)   # not reached
""")


def test_crash_between_cleaned_segments_and_checkpoint_loses_nothing(tmp_path):
    for where in ("before-write", "before-rename"):
        data = tmp_path / where
        with klog.open(data, QUIET) as broker:
            broker.create_topic("state", 1, TOPIC)
            log = broker.log("state", 0)
            append(log, [k % 40 for k in range(200)], b"first")
            log.roll()
            broker.clean_logs(now=NOW)
            checkpointed = broker.log_cleaner.first_dirty("state", 0)
            assert checkpointed == 200
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        proc = subprocess.run([sys.executable, "-c", CRASH, str(data), where], env=env,
                              capture_output=True, timeout=120)
        assert proc.returncode == 9, proc.stderr.decode()
        # The second pass's swaps committed (fewer bytes on disk) but its checkpoint did not.
        assert read_cleaner_checkpoint(data / CHECKPOINT_FILE) == {("state", 0): 200}
        with klog.open(data, QUIET) as broker:
            log = broker.log("state", 0)
            after_crash = list(log.records())
            assert log.log_end_offset == 600
            assert len(after_crash) < 200 + 40 * 10
            expected = {b"k%04d" % k: b"second-%d" % (360 + k) for k in range(40)}
            assert keyed_view(after_crash) == expected
            result = broker.clean_logs(now=NOW)[("state", 0)]
            # The old checkpoint: the cleaned data counts as dirty again (200 now lies inside the
            # merged segment at 0, so from there), which only costs a pass with nothing to do.
            assert result.first_dirty == 0 and result.records_removed == 0
            assert keyed_view(list(log.records())) == expected
            assert len(list(log.records())) == 40
        assert read_cleaner_checkpoint(data / CHECKPOINT_FILE) == {("state", 0): 600}


def test_max_compaction_lag_rolls_the_active_segment(tmp_path):
    lag = 5_000
    with klog.open(tmp_path, QUIET) as broker:
        broker.create_topic("state", 1, dict(TOPIC, **{"max.compaction.lag.ms": lag}))
        log = broker.log("state", 0)
        append(log, [3] * 10, b"v", ts=1_000)       # all in the active segment
        assert log.segments == [0]
        assert broker.clean_logs(now=1_000 + lag) == {}
        assert log.segments == [0]                  # not older than the lag yet: no roll
        result = broker.clean_logs(now=1_000 + lag + 1)[("state", 0)]
        assert log.segments == [0, 10] and result.records_removed == 9
        assert [r.value[:4] for r in log.records()] == [b"v-3."]


def test_close_stops_a_pass_between_batches(tmp_path, monkeypatch):
    """A broker closing does not wait for a whole pass: the pass stops at its next batch, its
    uncommitted group is discarded, and the log is intact."""
    import threading
    with klog.open(tmp_path, QUIET) as broker:
        broker.create_topic("state", 1, TOPIC)
        log = broker.log("state", 0)
        append(log, [k % 5 for k in range(300)], b"v")
        log.roll()
        written = list(log.records())
        entered, release = threading.Event(), threading.Event()
        real = cleaner.CleanedSegment.append

        def slow_append(seg, *args, **kw):
            entered.set()
            release.wait(10)
            return real(seg, *args, **kw)
        monkeypatch.setattr(cleaner.CleanedSegment, "append", slow_append)
        runner = threading.Thread(target=broker.clean_logs, kwargs={"now": NOW})
        runner.start()
        assert entered.wait(10)
        closer = threading.Thread(target=broker.log_cleaner.close)
        closer.start()
        deadline = time.monotonic() + 10
        while not broker.log_cleaner._stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        release.set()
        runner.join(10)
        closer.join(10)
        assert not runner.is_alive() and not closer.is_alive()
        assert list(log.records()) == written
        assert [n for n in os.listdir(log.path) if n.endswith((".cleaned", ".swap"))] == []
        assert broker.log_cleaner.first_dirty("state", 0) is None
