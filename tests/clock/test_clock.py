"""klog.clock: FakeClock drives Schedulers deterministically; the system Scheduler runs tasks on
one thread; a broker opened with a FakeClock does its periodic work when the test says so."""
import threading
import time

import pytest

import klog
from klog.clock import SYSTEM_CLOCK, FakeClock, Scheduler, SystemClock


def test_fake_clock_moves_only_when_advanced():
    clock = FakeClock(now_ms=5_000, monotonic_ms=100)
    assert (clock.now_ms(), clock.monotonic_ms()) == (5_000, 100)
    clock.advance(250)
    assert (clock.now_ms(), clock.monotonic_ms()) == (5_250, 350)
    clock.sleep(50)
    assert clock.monotonic_ms() == 400
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(-1)


def test_fake_clock_runs_due_tasks_in_deadline_order_at_their_deadline():
    clock = FakeClock(monotonic_ms=0)
    sched = Scheduler(clock)
    seen = []
    sched.schedule(30, lambda: seen.append(("c", clock.monotonic_ms())))
    sched.schedule(10, lambda: seen.append(("a", clock.monotonic_ms())))
    sched.schedule(10, lambda: seen.append(("b", clock.monotonic_ms())))   # tie: scheduling order
    sched.schedule(100, lambda: seen.append(("late", clock.monotonic_ms())))
    assert clock.advance(9) == 0 and seen == []
    assert clock.advance(21) == 3
    assert seen == [("a", 10), ("b", 10), ("c", 30)]
    assert clock.monotonic_ms() == 30
    clock.advance(69)
    assert len(seen) == 3
    clock.advance(1)
    assert seen[-1] == ("late", 100)


def test_periodic_task_runs_once_per_period_and_cancel_stops_it():
    clock = FakeClock(monotonic_ms=0)
    sched = Scheduler(clock)
    runs = []
    task = sched.schedule_periodic(100, lambda: runs.append(clock.monotonic_ms()))
    clock.advance(1_000)
    assert runs == list(range(100, 1_001, 100))
    sched.cancel(task)
    clock.advance(1_000)
    assert len(runs) == 10
    first = []
    sched.schedule_periodic(50, lambda: first.append(clock.monotonic_ms()), initial_delay_ms=0)
    clock.advance(0)
    assert first == [2_000]


def test_a_task_may_schedule_another_within_the_same_advance():
    clock = FakeClock(monotonic_ms=0)
    sched = Scheduler(clock)
    seen = []

    def first():
        seen.append(("first", clock.monotonic_ms()))
        sched.schedule(5, lambda: seen.append(("second", clock.monotonic_ms())))

    sched.schedule(10, first)
    clock.advance(20)
    assert seen == [("first", 10), ("second", 15)]


def test_a_failing_task_is_logged_and_the_others_run(caplog):
    clock = FakeClock(monotonic_ms=0)
    sched = Scheduler(clock, name="t")
    runs = []

    def boom():
        raise RuntimeError("boom")

    sched.schedule_periodic(10, boom)
    sched.schedule_periodic(10, lambda: runs.append(1))
    clock.advance(30)
    assert len(runs) == 3
    assert "boom" in caplog.text


def test_shutdown_cancels_everything_and_refuses_new_tasks():
    clock = FakeClock(monotonic_ms=0)
    sched = Scheduler(clock)
    runs = []
    sched.schedule(10, runs.append, 1)
    sched.shutdown()
    assert sched.schedule(10, runs.append, 2).cancelled
    clock.advance(100)
    assert runs == []


def test_task_set_close_cancels_only_its_own_tasks():
    clock = FakeClock(monotonic_ms=0)
    sched = Scheduler(clock)
    mine, other = [], []
    tasks = sched.tasks()
    tasks.schedule(10, mine.append, 1)
    tasks.schedule_periodic(10, mine.append, 2)
    sched.schedule(10, other.append, 3)
    assert len(tasks) == 2
    tasks.close()
    clock.advance(50)
    assert mine == [] and other == [3]
    assert tasks.schedule(1, mine.append, 4).cancelled   # closed: nothing new runs


def test_task_set_forgets_tasks_that_ran():
    clock = FakeClock(monotonic_ms=0)
    tasks = Scheduler(clock).tasks()
    for i in range(100):
        tasks.schedule(i, lambda: None)
    clock.advance(100)
    assert len(tasks) == 0


def test_system_scheduler_runs_tasks_on_one_thread_in_order():
    sched = Scheduler(SYSTEM_CLOCK, name="test-scheduler")
    try:
        seen = []
        done = threading.Event()
        sched.schedule(30, lambda: seen.append(("b", threading.current_thread().name)))
        sched.schedule(0, lambda: seen.append(("a", threading.current_thread().name)))
        sched.schedule(60, done.set)
        assert done.wait(30)
        assert seen == [("a", "test-scheduler"), ("b", "test-scheduler")]
        ticks = []
        tick = threading.Event()
        task = sched.schedule_periodic(5, lambda: (ticks.append(1), tick.set()))
        assert tick.wait(30)
        task.cancel()
    finally:
        sched.shutdown()
    assert not [t for t in threading.enumerate() if t.name == "test-scheduler"]


def test_system_clock_reads_the_machine_clocks():
    c = SystemClock()
    assert abs(c.now_ms() - time.time() * 1000) < 5_000
    a = c.monotonic_ms()
    c.sleep(2)
    assert c.monotonic_ms() >= a + 2


# -- the broker on a FakeClock ------------------------------------------------------------------
def test_broker_retention_runs_when_the_fake_clock_passes_the_check_interval(tmp_path):
    clock = FakeClock(now_ms=1_000_000, monotonic_ms=0)
    config = {"log.retention.check.interval.ms": 60_000}
    with klog.open(tmp_path / "d", config, clock=clock) as broker:
        broker.create_topic("t", 1, {"retention.ms": 10_000, "segment.bytes": 1024})
        part = broker.partition("t", 0)
        for _ in range(20):
            part.append([b"x" * 100])   # no timestamps given: the fake clock's "now"
        assert len(broker.log("t", 0).segments) > 1
        clock.advance(59_999)           # retention.ms passed, but no check yet
        assert part.log_start_offset == 0
        clock.advance(1)                # the check: every segment but the active one is old
        assert part.log_start_offset > 0
        assert part.log_end_offset == 20


def test_flush_ms_flushes_when_the_fake_clock_says_so(tmp_path):
    clock = FakeClock(monotonic_ms=0)
    with klog.open(tmp_path / "d", clock=clock) as broker:
        broker.create_topic("t", 1, {"flush.ms": 1_000})
        log = broker.log("t", 0)
        broker.partition("t", 0).append([b"a"])
        assert log.recovery_point == 0   # not yet: the flush is the scheduler's
        clock.advance(999)
        assert log.recovery_point == 0
        clock.advance(1)
        assert log.recovery_point == 1


def test_record_times_come_from_the_brokers_clock(tmp_path):
    clock = FakeClock(now_ms=1_234_000)
    with klog.open(tmp_path / "d", clock=clock) as broker:
        broker.create_topic("t", 1, {"message.timestamp.type": "LogAppendTime"})
        part = broker.partition("t", 0)
        part.append([b"a"], timestamps=5)
        clock.advance(1_000)
        part.append([b"b"], timestamps=5)
        assert [r.timestamp for r in part.records(0)] == [1_234_000, 1_235_000]


def test_group_session_expires_on_the_fake_clock(tmp_path):
    clock = FakeClock(monotonic_ms=0)
    with klog.open(tmp_path / "d", {"group.initial.rebalance.delay.ms": 3_000},
                   clock=clock) as broker:
        gc = broker.group_coordinator
        fut = gc.join_group("g", "", "consumer", [("range", b"")], 10_000, 30_000)
        clock.advance(2_999)
        assert not fut.done()            # the initial rebalance delay is the fake clock's too
        clock.advance(1)
        res = fut.result(10)
        assert res.error == 0
        assert [m.member_id for m in gc.describe_groups(["g"])[0].members] == [res.member_id]
        clock.advance(9_999)             # session.timeout.ms from the join, less 1 ms
        assert len(gc.describe_groups(["g"])[0].members) == 1
        clock.advance(1)
        assert gc.describe_groups(["g"])[0].members == ()


def test_a_cancelled_task_lets_go_of_its_callback_at_once():
    """A closed log's cancelled flush task must not keep the log (and its mappings) alive until
    the task's deadline comes round."""
    import gc
    import weakref

    class Owner:
        def tick(self):
            pass

    clock = FakeClock(monotonic_ms=0)
    sched = Scheduler(clock)
    owner = Owner()
    ref = weakref.ref(owner)
    task = sched.schedule_periodic(3_600_000, owner.tick)
    del owner
    task.cancel()
    gc.collect()
    assert ref() is None


def test_closing_a_broker_frees_its_logs_without_garbage_collection(tmp_path):
    """No reference cycle keeps a closed partition's log mapped: after close() the segments are
    unmapped by reference counting alone (a FUSE or USB file system can then be unmounted)."""
    import gc
    gc.disable()
    try:
        with klog.open(tmp_path / "d", {"log.cleaner.enable": False}) as broker:
            broker.create_topic("t", 2, {"flush.ms": 1_000, "segment.bytes": 4096})
            for _ in range(50):
                broker.partition("t", 1).append([b"x" * 100])
        maps = [line for line in open("/proc/self/maps") if str(tmp_path) in line]
        assert maps == []
    finally:
        gc.enable()
