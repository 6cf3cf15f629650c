"""RecordFuture.add_callback(callback, errback): fires exactly once, before or after delivery,
from flush, get, a full batch or the linger thread; callbacks may call send/flush/get."""
import threading

import pytest

from klog.errors import RecordTooLargeError

from .conftest import NEVER, end_offsets, values, wait_until


def test_callback_fires_once_on_delivery_with_metadata(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"linger.ms": NEVER})
    got, errs = [], []
    f = p.send("t", b"v")
    assert f.add_callback(got.append, errs.append) is f
    assert got == []
    p.flush()
    assert got == [f.get()] and errs == []
    p.flush()
    f.get()
    assert len(got) == 1


def test_callback_added_after_delivery_fires_at_once_and_once(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"linger.ms": NEVER})
    f = p.send("t", b"v")
    md = f.get()
    got = []
    f.add_callback(got.append)
    assert got == [md]
    p.flush()
    assert got == [md]


def test_each_future_and_each_callback_gets_its_own_call(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"linger.ms": NEVER})
    calls = []
    fs = [p.send("t", b"%d" % i) for i in range(5)]
    for i, f in enumerate(fs):
        f.add_callback(lambda md, i=i: calls.append(("a", i, md.offset)))
        f.add_callback(lambda md, i=i: calls.append(("b", i, md.offset)))
    p.flush()
    assert sorted(calls) == sorted([(w, i, i) for i in range(5) for w in "ab"])


def test_callback_fires_from_get_full_batch_and_linger_thread(broker, producers):
    broker.create_topic("t", 3)
    got = []
    p = producers({"linger.ms": NEVER, "batch.num.messages": 2})
    p.send("t", b"a", partition=0).add_callback(got.append)
    assert got == []
    p.send("t", b"b", partition=0)  # fills the batch
    assert [m.offset for m in got] == [0]
    f = p.send("t", b"c", partition=1)
    f.add_callback(got.append)
    f.get()  # get() sends the open batch
    assert [m.partition for m in got] == [0, 1]
    lingering = producers({"linger.ms": 20})
    lingering.send("t", b"d", partition=2).add_callback(got.append)
    assert wait_until(lambda: len(got) == 3, timeout=5.0) is not None
    assert got[2].partition == 2


def test_errback_fires_once_on_failure_callback_does_not(broker, producers):
    broker.create_topic("small", 1, {"max.message.bytes": 200})
    p = producers({"linger.ms": NEVER})
    ok, errs = [], []
    fs = [p.send("small", b"x" * 100) for _ in range(3)]
    for f in fs:
        f.add_callback(ok.append, errs.append)
    p.flush()
    assert ok == [] and len(errs) == 3
    assert all(isinstance(e, RecordTooLargeError) for e in errs)
    fs[0].add_callback(ok.append, errs.append)  # after the failure: errback at once
    fs[0].add_callback(ok.append)  # no errback: nothing to call
    assert ok == [] and len(errs) == 4


def test_raising_callback_does_not_stop_others(broker, producers):
    broker.create_topic("t", 1)
    p = producers({"linger.ms": NEVER})
    got = []

    def bad(md):
        raise RuntimeError("user bug")

    f = p.send("t", b"v")
    f.add_callback(bad)
    f.add_callback(got.append)
    g = p.send("t", b"w")
    g.add_callback(got.append)
    p.flush()
    assert [m.offset for m in got] == [0, 1]


def _run_with_deadline(fn, seconds=10.0):
    """Run fn in a thread; fail (instead of hanging the suite) if it deadlocks."""
    box = {}

    def run():
        try:
            box["result"] = fn()
        except BaseException as exc:  # re-raised below
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "deadlock: producer call did not return"
    if "error" in box:
        raise box["error"]
    return box.get("result")


@pytest.mark.parametrize("trigger", ["flush", "get", "full", "linger"])
def test_callback_may_send_flush_and_get_without_deadlock(broker, producers, trigger):
    broker.create_topic("t", 1)
    config = {"linger.ms": 20 if trigger == "linger" else NEVER}
    if trigger == "full":
        config["batch.num.messages"] = 1
    p = producers(config)
    chained = []

    def callback(md):
        if md.offset < 5:  # each delivery sends the next record, from inside the callback
            f = p.send("t", b"chain-%d" % (md.offset + 1))
            chained.append(f)
            f.add_callback(callback)
            if trigger != "linger":
                f.get()
                p.flush()

    def go():
        f = p.send("t", b"chain-0")
        f.add_callback(callback)
        if trigger == "flush":
            p.flush()
        elif trigger == "get":
            f.get()
        return f

    _run_with_deadline(go)
    assert wait_until(lambda: end_offsets(broker, "t") == [6], timeout=5.0) is not None
    assert values(broker, "t", 0) == [b"chain-%d" % i for i in range(6)]
    assert [f.get().offset for f in chained] == [1, 2, 3, 4, 5]


def test_callback_may_send_to_other_partition_and_topic(broker, producers):
    broker.create_topic("a", 2)
    broker.create_topic("b", 1)
    p = producers({"linger.ms": NEVER})
    out = []
    f = p.send("a", b"1", partition=0)
    f.add_callback(lambda md: out.append(p.send("b", b"echo", key=b"%d" % md.offset)))
    f.add_callback(lambda md: out.append(p.send_batch("a", [b"x"], partition=1)))
    _run_with_deadline(p.flush)
    _run_with_deadline(p.flush)
    assert values(broker, "b", 0) == [b"echo"] and values(broker, "a", 1) == [b"x"]


def test_callback_count_equals_send_count_across_threads(broker, producers):
    broker.create_topic("t", 3)
    p = producers({"linger.ms": 1, "batch.num.messages": 7})
    lock = threading.Lock()
    seen = []

    def cb(md):
        with lock:
            seen.append((md.partition, md.offset))

    def worker():
        for i in range(500):
            p.send("t", b"v", key=b"%d" % i).add_callback(cb)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p.flush()
    # (callbacks of a batch the sender thread appended may still be running in that thread)
    assert wait_until(lambda: len(seen) >= 1500, timeout=5.0) is not None
    assert len(seen) == 1500 and len(set(seen)) == 1500
