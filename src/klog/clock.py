"""Clock and Scheduler: the one source of time and of background work (Kafka's ``Time`` and
``Scheduler``), injected so tests and simulations drive time themselves.

- ``Clock``: ``now_ms()`` (wall time, ms since the epoch: record timestamps, retention, segment
  age), ``monotonic_ms()`` (deadlines, timeouts), ``sleep(ms)``. ``SYSTEM_CLOCK`` is the real one.
- ``FakeClock``: time moves only when a test calls ``advance(ms)`` (or ``sleep``); the tasks of
  every Scheduler on it that fall due meanwhile run in deadline order, in the calling thread,
  each seeing the clock at its own deadline. Deterministic: no thread, no real waiting.
- ``Scheduler(clock)``: ``schedule(delay_ms, fn, *args)``, ``schedule_periodic(period_ms, fn,
  *args)``, ``cancel(task)`` (or ``task.cancel()``), ``shutdown()``. On a real clock one daemon
  thread runs the tasks, one at a time (a task must not block for long: the others wait); on a
  FakeClock, ``advance`` runs them. ``tasks()`` gives a TaskSet, whose ``close()`` cancels only
  the tasks scheduled through it (a service's timers on a shared scheduler).

A task that raises is logged and dropped (a periodic one keeps its schedule); the others go on.
A periodic task's next run is one period after its previous deadline, or one period from now
when it ran late by more than a period (no bursts of catch-up runs after a stall).
"""
import heapq
import itertools
import logging
import threading
import time

_logger = logging.getLogger("klog.scheduler")


class Clock:
    """The interface: wall and monotonic milliseconds, and sleeping."""

    def now_ms(self):
        raise NotImplementedError

    def monotonic_ms(self):
        raise NotImplementedError

    def sleep(self, ms):
        raise NotImplementedError


class SystemClock(Clock):
    """The machine's clocks."""

    def now_ms(self):
        return time.time_ns() // 1_000_000

    def monotonic_ms(self):
        return time.monotonic_ns() // 1_000_000

    def sleep(self, ms):
        time.sleep(max(0, ms) / 1000.0)

    def __repr__(self):
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


class FakeClock(Clock):
    """A clock for tests: starts at ``now_ms`` (wall) and ``monotonic_ms``; moves only by
    ``advance``. Thread-safe; ``advance`` from one thread at a time."""

    def __init__(self, now_ms=1_700_000_000_000, monotonic_ms=0):
        self._lock = threading.RLock()
        self._wall = now_ms
        self._mono = monotonic_ms
        self._schedulers = []

    def now_ms(self):
        return self._wall

    def monotonic_ms(self):
        return self._mono

    def sleep(self, ms):
        self.advance(ms)

    def advance(self, ms):
        """Move time forward by ``ms``, running every task that falls due, in deadline order
        (ties: the order they were scheduled), each with the clock at its deadline. Returns the
        number of tasks run."""
        if ms < 0:
            raise ValueError(f"a clock does not go back: advance({ms})")
        with self._lock:
            target = self._mono + ms
            ran = 0
            while True:
                due = [(d, s) for s in self._schedulers for d in (s._next_deadline(),)
                       if d is not None and d <= target]
                if not due:
                    break
                deadline, sched = min(due, key=lambda x: x[0])
                self._set(max(deadline, self._mono))
                ran += sched._run_due(self._mono)
            self._set(target)
            return ran

    def _set(self, mono):
        self._wall += mono - self._mono
        self._mono = mono

    def _attach(self, scheduler):
        with self._lock:
            self._schedulers.append(scheduler)

    def _detach(self, scheduler):
        with self._lock:
            if scheduler in self._schedulers:
                self._schedulers.remove(scheduler)

    def __repr__(self):
        return f"FakeClock(now_ms={self._wall}, monotonic_ms={self._mono})"


class Task:
    """A scheduled callback; ``cancel()`` stops it (and a periodic one's later runs)."""
    __slots__ = ("deadline", "period", "fn", "args", "cancelled", "_owner")

    def __init__(self, deadline, period, fn, args):
        self.deadline = deadline
        self.period = period
        self.fn = fn
        self.args = args
        self.cancelled = False
        self._owner = None

    def cancel(self):
        self.cancelled = True
        # Let go of what the callback holds (a closed log, a group) now, not when the entry
        # reaches the top of the heap.
        self.fn, self.args = None, ()
        owner = self._owner
        if owner is not None:
            owner._discard(self)

    def __repr__(self):
        what = getattr(self.fn, "__qualname__", repr(self.fn))
        return f"<Task {what} at {self.deadline}{' every %d' % self.period if self.period else ''}>"


class Scheduler:
    """Runs callbacks at deadlines on ``clock`` (see the module docstring). Concurrency:
    ``schedule``/``cancel`` from any thread; tasks run one at a time."""

    def __init__(self, clock=SYSTEM_CLOCK, name="klog-scheduler"):
        self.clock = clock
        self.name = name
        self._heap = []
        self._cond = threading.Condition(threading.Lock())
        self._seq = itertools.count()
        self._closed = False
        self._thread = None
        self._fake = isinstance(clock, FakeClock)
        if self._fake:
            clock._attach(self)

    # -- scheduling ------------------------------------------------------------------------------
    def schedule(self, delay_ms, fn, *args):
        """Run ``fn(*args)`` once, ``delay_ms`` from now. Returns its Task."""
        return self._add(self._once(delay_ms, fn, args))

    def schedule_periodic(self, period_ms, fn, *args, initial_delay_ms=None):
        """Run ``fn(*args)`` every ``period_ms`` (first after ``initial_delay_ms``, default one
        period). Returns its Task."""
        return self._add(self._periodic(period_ms, fn, args, initial_delay_ms))

    def _once(self, delay_ms, fn, args):
        return Task(self.clock.monotonic_ms() + max(0, delay_ms), 0, fn, args)

    def _periodic(self, period_ms, fn, args, initial_delay_ms):
        if period_ms <= 0:
            raise ValueError(f"period_ms must be > 0, not {period_ms!r}")
        delay = period_ms if initial_delay_ms is None else max(0, initial_delay_ms)
        return Task(self.clock.monotonic_ms() + delay, period_ms, fn, args)

    def cancel(self, task):
        task.cancel()

    def tasks(self):
        """A TaskSet on this scheduler: its ``close()`` cancels the tasks scheduled through it."""
        return TaskSet(self)

    def _add(self, task):
        with self._cond:
            if self._closed:
                task.cancelled = True
                return task
            heapq.heappush(self._heap, (task.deadline, next(self._seq), task))
            if not self._fake:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                    self._thread.start()
                elif self._heap[0][2] is task:
                    self._cond.notify()
        return task

    def shutdown(self):
        """Cancel every task and stop the thread (waiting for a running task to finish, unless
        called from one). Idempotent."""
        with self._cond:
            self._closed = True
            for _, _, t in self._heap:
                t.cancelled = True
                t.fn, t.args = None, ()
            self._heap.clear()
            self._cond.notify_all()
            thread = self._thread
        if self._fake:
            self.clock._detach(self)
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    @property
    def closed(self):
        return self._closed

    # -- running ---------------------------------------------------------------------------------
    def _next_deadline(self):
        with self._cond:
            while self._heap and self._heap[0][2].cancelled:
                heapq.heappop(self._heap)
            return self._heap[0][0] if self._heap else None

    def _pop_due(self, now):
        """The next task due at ``now``, or None. Caller holds _cond."""
        while self._heap:
            deadline, _, task = self._heap[0]
            if task.cancelled:
                heapq.heappop(self._heap)
                continue
            if deadline > now:
                return None
            heapq.heappop(self._heap)
            return task
        return None

    def _run_due(self, now):
        """Run the tasks due at ``now`` (a FakeClock's advance). Returns how many ran."""
        ran = 0
        while True:
            with self._cond:
                task = self._pop_due(now)
            if task is None:
                return ran
            self._execute(task, now)
            ran += 1

    def _execute(self, task, now):
        fn, args = task.fn, task.args
        if fn is None:   # cancelled after it was taken from the heap
            return
        try:
            fn(*args)
        except Exception:   # one failing task must not stop the others
            _logger.exception("%s: scheduled task %r failed", self.name, task)
        if task.period and not task.cancelled:
            nxt = task.deadline + task.period
            task.deadline = nxt if nxt > now else now + task.period
            with self._cond:
                if not self._closed:
                    heapq.heappush(self._heap, (task.deadline, next(self._seq), task))
        elif task._owner is not None:
            task._owner._discard(task)

    def _run(self):
        clock = self.clock
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    now = clock.monotonic_ms()
                    task = self._pop_due(now)
                    if task is not None:
                        break
                    if self._heap:
                        self._cond.wait((self._heap[0][0] - now) / 1000.0)
                    else:
                        self._cond.wait()
            self._execute(task, now)

    def __repr__(self):
        return f"<Scheduler {self.name} {self.clock!r} tasks={len(self._heap)}>"


class TaskSet:
    """The tasks one service scheduled on a shared Scheduler; ``close()`` cancels them all (the
    scheduler goes on). Same ``schedule`` / ``schedule_periodic`` as the Scheduler."""

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.clock = scheduler.clock
        self._lock = threading.Lock()
        self._tasks = set()
        self._closed = False

    def schedule(self, delay_ms, fn, *args):
        return self._track(self.scheduler._once(delay_ms, fn, args))

    def schedule_periodic(self, period_ms, fn, *args, initial_delay_ms=None):
        return self._track(self.scheduler._periodic(period_ms, fn, args, initial_delay_ms))

    def _track(self, task):
        with self._lock:   # owned before it can run, so a finished task always leaves the set
            if self._closed:
                task.cancelled = True
                return task
            task._owner = self
            self._tasks.add(task)
        return self.scheduler._add(task)

    def _discard(self, task):
        with self._lock:
            self._tasks.discard(task)

    def close(self):
        with self._lock:
            self._closed = True
            tasks, self._tasks = self._tasks, set()
        for t in tasks:
            t._owner = None
            t.cancel()

    def __len__(self):
        return len(self._tasks)
