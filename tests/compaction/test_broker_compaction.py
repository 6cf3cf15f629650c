"""The broker's log cleaner cleans compacted topics (``cleanup.policy`` compact or compact,delete)
on its own thread, unless ``log.cleaner.enable`` is false; retention stays with the log manager."""
import pytest

import klog
from klog import CorruptRecordError

from .helpers import keyed_view

NOW = 10_000_000
# the background passes must not run during a test: they would use the real "now"
QUIET = {"log.retention.check.interval.ms": 3_600_000, "log.cleaner.backoff.ms": 3_600_000}


def fill(log, n=200, keys=5):
    for i in range(n):
        log.append([b"v%d" % i], keys=[b"k%d" % (i % keys)], timestamps=1_000 + i)
    log.roll()
    return list(log.records())


def test_compacted_topic_is_cleaned_by_the_log_cleaner(tmp_path):
    with klog.open(tmp_path, QUIET) as broker:
        broker.create_topic("state", 2, {"cleanup.policy": "compact", "segment.bytes": 1024})
        broker.create_topic("events", 1, {"segment.bytes": 1024, "retention.ms": -1})
        logs = [broker.log("state", p) for p in range(2)]
        before = [fill(log) for log in logs]
        events = fill(broker.log("events", 0))
        assert broker.enforce_retention(now=NOW) == 0
        assert [len(list(log.records())) for log in logs] == [200, 200]  # retention: no cleaning
        assert sorted(broker.clean_logs(now=NOW)) == [("state", 0), ("state", 1)]
        for log, written in zip(logs, before):
            after = list(log.records())
            assert keyed_view(after) == keyed_view(written)
            assert len(after) == 5
            assert log.log_end_offset == 200
        assert list(broker.log("events", 0).records()) == events  # delete policy: untouched
        with pytest.raises(CorruptRecordError, match="without a key"):
            logs[0].append([b"no key"])
    with klog.open(tmp_path, QUIET) as broker:  # and it survives a restart
        assert len(list(broker.log("state", 0).records())) == 5


def test_compact_delete_applies_retention_and_cleaning(tmp_path):
    with klog.open(tmp_path, QUIET) as broker:
        broker.create_topic("t", 1, {"cleanup.policy": "compact,delete", "segment.bytes": 1024,
                                     "retention.ms": 1_000})
        log = broker.log("t", 0)
        for i in range(100):
            log.append([b"old%d" % i], keys=[b"k%d" % (i % 3)], timestamps=1_000)
        log.roll()
        for i in range(100):
            log.append([b"new%d" % i], keys=[b"k%d" % (i % 3)], timestamps=NOW - 10)
        log.roll()
        assert broker.enforce_retention(now=NOW) > 0  # the old segments were past retention.ms
        broker.clean_logs(now=NOW)
        got = list(log.records())
        assert all(r.offset >= 100 for r in got)
        assert sorted(r.value for r in got) == [b"new97", b"new98", b"new99"]


def test_cleaner_disabled(tmp_path):
    with klog.open(tmp_path, dict(QUIET, **{"log.cleaner.enable": False})) as broker:
        broker.create_topic("state", 1, {"cleanup.policy": "compact", "segment.bytes": 1024})
        log = broker.log("state", 0)
        written = fill(log)
        assert broker.clean_logs(now=NOW) == {} and broker.log_cleaner is None
        assert list(log.records()) == written


def test_background_manager_cleans(tmp_path):
    import time
    with klog.open(tmp_path, {"log.cleaner.backoff.ms": 50}) as broker:
        broker.create_topic("state", 1, {"cleanup.policy": "compact", "segment.bytes": 1024})
        log = broker.log("state", 0)
        for i in range(200):
            log.append([b"v%d" % i], keys=[b"k%d" % (i % 5)])
        log.roll()
        deadline = time.monotonic() + 10
        while len(list(log.records())) > 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(list(log.records())) == 5
