"""Retries with back-off, the DLQ, stop / skip, per-record timeouts, undecodable values."""
import json
import threading
import time

import pytest

from klog.functions import App, AppStoppedError
from klog.functions.retry import RetryPolicy
from klog.functions.bindings import resolve
from klog.testing import AppHarness

FAST = {"back-off-initial-interval": 5, "back-off-max-interval": 20}


def failing_app(fail_when, calls):
    app = App("svc")

    @app.function
    def work(event: dict) -> dict:
        calls.append(event["n"])
        if fail_when(event, calls):
            raise ValueError(f"bad event {event['n']}")
        return event
    return app


def test_backoff_follows_spring_properties():
    cfg = resolve(["x-in-0"], [], "g")["x-in-0"]
    p = RetryPolicy(cfg)
    assert [p.backoff_ms(n) for n in (1, 2, 3, 4, 5)] == [1000, 2000, 4000, 8000, 10000]
    assert p.should_retry(ValueError(), 2) and not p.should_retry(ValueError(), 3)


def test_retryable_exceptions_by_class_name_or_base():
    cfg = resolve(["x-in-0"], [], "g")["x-in-0"]
    cfg.retryable_exceptions = {"LookupError": False, "builtins.ZeroDivisionError": False}
    p = RetryPolicy(cfg)
    assert not p.retryable(KeyError("k"))          # a subclass of LookupError
    assert not p.retryable(ZeroDivisionError())    # by qualified name
    assert p.retryable(ValueError())               # default-retryable


def test_retry_then_success(klog_broker):
    calls = []
    app = failing_app(lambda e, c: c.count(e["n"]) < 3, calls)
    with AppHarness(app, klog_broker, bindings={"work-in-0": {"destination": "in", **FAST},
                                               "work-out-0": {"destination": "out"}}) as h:
        h.send("in", {"n": 1})
        h.wait_idle()
        assert calls == [1, 1, 1] and h.values("out") == [{"n": 1}]
        st = h.running.stats()["work-in-0"]
    assert (st["failures"], st["retries"], st["dead_lettered"]) == (2, 2, 0)


def test_dlq_gets_original_record_and_spring_headers(klog_broker):
    calls = []
    app = failing_app(lambda e, c: e["n"] == 3, calls)
    klog_broker.create_topic("in", 2)
    klog_broker.create_topic("error.in.svc", 3)   # any partition count: the partitioner picks
    with AppHarness(app, klog_broker, bindings={"work-in-0": {"destination": "in", "enable-dlq": True, **FAST},
                                               "work-out-0": {"destination": "out"}}) as h:
        for n in range(6):
            h.send("in", {"n": n}, key=f"k{n}", headers={"trace": "t"}, partition=0)
        h.wait_idle()
        dlq = h.read("error.in.svc")
        out = h.values("out")
    assert calls.count(3) == 3                       # max-attempts
    assert sorted(o["n"] for o in out) == [0, 1, 2, 4, 5]
    assert len(dlq) == 1
    r = dlq[0]
    assert r.key == b"k3" and json.loads(r.value) == {"n": 3}
    h_ = dict(r.headers)
    assert h_["trace"] == b"t"
    assert h_["x-original-topic"] == b"in" and h_["x-original-partition"] == b"0"
    assert h_["x-original-offset"] == b"3" and int(h_["x-original-timestamp"]) > 0
    assert h_["x-exception-fqcn"] == b"builtins.ValueError"
    assert h_["x-exception-message"] == b"bad event 3"
    assert b"Traceback" in h_["x-exception-stacktrace"] and b"bad event 3" in h_["x-exception-stacktrace"]
    from klog.partitioner import Partitioner
    assert r.partition == Partitioner("murmur2_random").partition("error.in.svc", b"k3", 3) != 0


def test_non_retryable_goes_straight_to_dlq(klog_broker):
    calls = []
    app = failing_app(lambda e, c: True, calls)
    with AppHarness(app, klog_broker, bindings={"work-in-0": {"destination": "in", "enable-dlq": True,
                                                             "dlq-name": "dead",
                                                             "retryable-exceptions": {"ValueError": False}},
                                               "work-out-0": {"destination": "out"}}) as h:
        h.send("in", {"n": 1})
        h.wait_idle()
        assert calls == [1] and len(h.read("dead")) == 1


def test_undecodable_value_goes_to_dlq_without_retries(klog_broker):
    calls = []
    app = failing_app(lambda e, c: False, calls)
    with AppHarness(app, klog_broker, bindings={"work-in-0": {"destination": "in", "enable-dlq": True},
                                               "work-out-0": {"destination": "out"}}) as h:
        h._producer.send("in", b"\xffnot json").get()
        h.send("in", {"n": 2})
        h.wait_idle()
        dlq = h.read("error.in.svc")
        assert calls == [2] and [r.value for r in dlq] == [b"\xffnot json"]
        assert dict(dlq[0].headers)["x-exception-fqcn"] == b"klog.functions.errors.ValueDecodeError"
        assert h.values("out") == [{"n": 2}]


def test_without_dlq_skip_logs_and_goes_on(klog_broker):
    calls = []
    app = failing_app(lambda e, c: e["n"] == 1, calls)
    with AppHarness(app, klog_broker, bindings={"work-in-0": {"destination": "in", "on-error": "skip",
                                                             "max-attempts": 1},
                                               "work-out-0": {"destination": "out"}}) as h:
        for n in range(3):
            h.send("in", {"n": n})
        h.wait_idle()
        assert h.values("out") == [{"n": 0}, {"n": 2}]
        assert h.running.stats()["work-in-0"]["skipped"] == 1


def test_without_dlq_stop_keeps_the_record_uncommitted(klog_broker):
    calls = []
    app = failing_app(lambda e, c: e["n"] == 1, calls)
    h = AppHarness(app, klog_broker, bindings={"work-in-0": {"destination": "in", "max-attempts": 2, **FAST},
                                              "work-out-0": {"destination": "out"}})
    with h:
        for n in range(3):
            h.send("in", {"n": n})
        with pytest.raises(AppStoppedError, match=r"record in-0@1 failed for good: ValueError"):
            h.wait_idle()
        assert isinstance(h.running.error, AppStoppedError)
    c = klog_broker.consumer("svc", {"enable.auto.commit": False})
    assert c.committed(("in", 0)) == 1      # n=0 done; n=1 not: it runs again after a restart
    c.close()


def test_a_record_backing_off_holds_back_only_its_partition(klog_broker):
    calls = []
    release = threading.Event()
    app = App("svc")

    @app.function
    def work(event: dict) -> dict:
        calls.append(event["n"])
        if event["n"] == 0 and not release.is_set():
            raise ValueError("not yet")
        return event

    klog_broker.create_topic("in", 2)
    with AppHarness(app, klog_broker, bindings={"work-in-0": {"destination": "in", "max-attempts": 100,
                                                             "back-off-initial-interval": 50,
                                                             "back-off-max-interval": 50},
                                               "work-out-0": {"destination": "out"}}) as h:
        h.send("in", {"n": 0}, partition=0)
        h.send("in", {"n": 1}, partition=0)
        for n in range(2, 12):
            h.send("in", {"n": n}, partition=1)
        # partition 1 completes while partition 0 is stuck on its head record
        deadline = time.monotonic() + 10
        while {n for n in calls if n >= 2} != set(range(2, 12)):
            assert time.monotonic() < deadline
            time.sleep(0.01)  # polling for an outcome, not deciding it
        assert 1 not in calls
        release.set()
        h.wait_idle()
        out = [v["n"] for v in h.values("out")]
    assert [n for n in out if n < 2] == [0, 1]             # the partition kept its order
    assert sorted(n for n in out if n >= 2) == list(range(2, 12))


def test_hanging_function_times_out_into_the_dlq(klog_broker):
    app = App("svc")
    hang = threading.Event()

    @app.function
    def work(event: dict) -> dict:
        if event["n"] == 1:
            hang.wait(30)
        return event

    try:
        with AppHarness(app, klog_broker, bindings={"work-in-0": {"destination": "in", "timeout": 100,
                                                                 "max-attempts": 1, "enable-dlq": True},
                                                   "work-out-0": {"destination": "out"}}) as h:
            for n in range(3):
                h.send("in", {"n": n})
            h.wait_idle()
            dlq = h.read("error.in.svc")
            assert [json.loads(r.value)["n"] for r in dlq] == [1]
            assert dict(dlq[0].headers)["x-exception-fqcn"] == b"klog.functions.errors.FunctionTimeoutError"
            assert [v["n"] for v in h.values("out")] == [0, 2]
    finally:
        hang.set()


def test_output_topic_missing_with_auto_create_off_retries_then_dlq(tmp_path):
    import klog
    broker = klog.open(tmp_path / "d", {"auto.create.topics.enable": False})
    try:
        for t in ("in", "out", "error.in.svc"):
            broker.create_topic(t, 1)
        app = failing_app(lambda e, c: False, [])
        with AppHarness(app, broker, bindings={"work-in-0": {"destination": "in", "enable-dlq": True, **FAST},
                                              "work-out-0": {"destination": "out"}}) as h:
            broker.delete_topic("out")
            p = broker.producer()
            for n in range(3):      # usually one chunk: each record still gets its 3 attempts
                p.send("in", json.dumps({"n": n}).encode())
            p.flush()
            h.wait_idle()
            st = h.running.stats()["work-in-0"]
            assert (st["retries"], st["dead_lettered"]) == (6, 3)
            assert [json.loads(r.value) for r in h.read("error.in.svc")] == [{"n": n} for n in range(3)]
    finally:
        broker.close()


def test_dlq_send_failure_stops_the_app_without_committing_the_record(tmp_path):
    import klog
    broker = klog.open(tmp_path / "d", {"auto.create.topics.enable": False})
    try:
        app = failing_app(lambda e, c: e["n"] == 2, [])
        h = AppHarness(app, broker, bindings={"work-in-0": {"destination": "in", "enable-dlq": True,
                                                           "max-attempts": 1},
                                             "work-out-0": {"destination": "out"}})
        with h:
            broker.delete_topic("error.in.svc")
            for n in range(4):
                h.send("in", {"n": n})
            with pytest.raises(AppStoppedError, match=r"in-0@2 failed and the DLQ send failed"):
                h.wait_idle()
        c = broker.consumer("svc", {"enable.auto.commit": False})
        assert c.committed(("in", 0)) == 2      # the record that could not be dead-lettered
        c.close()
    finally:
        broker.close()
