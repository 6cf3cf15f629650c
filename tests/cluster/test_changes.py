"""klog.cluster.node.Changes: what long-polling fetches and acks=all produces wait on."""
import asyncio
import threading
import time

from klog.cluster.node import Changes


def run(coro_fn):
    """Run ``coro_fn(changes, loop)`` on a fresh loop that the Changes is bound to."""
    loop = asyncio.new_event_loop()
    changes = Changes()
    changes.loop = loop
    try:
        return loop.run_until_complete(coro_fn(changes, loop))
    finally:
        loop.close()


def test_notify_from_another_thread_wakes_a_waiter():
    async def body(changes, loop):
        seen = changes.seq
        threading.Timer(0.05, changes.notify).start()
        t0 = time.monotonic()
        await changes.wait(seen, 10)
        return time.monotonic() - t0
    assert run(body) < 5


def test_a_notify_before_the_wait_returns_at_once():
    async def body(changes, loop):
        seen = changes.seq
        changes.notify()
        t0 = time.monotonic()
        await changes.wait(seen, 10)
        return time.monotonic() - t0
    assert run(body) < 1


def test_wait_times_out_without_a_notify():
    async def body(changes, loop):
        t0 = time.monotonic()
        await changes.wait(changes.seq, 0.05)
        return time.monotonic() - t0, changes._waiters
    took, waiters = run(body)
    assert 0.04 <= took < 5 and not waiters


def test_notify_on_the_loop_thread_wakes_without_the_self_pipe():
    """The loop's own thread (a produce appending, a follower fetch moving the high watermark)
    schedules the wake-up directly: call_soon_threadsafe writes to the loop's self-pipe."""
    async def body(changes, loop):
        through_pipe = []
        original = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda *a, **k: (through_pipe.append(a), original(*a, **k))
        seen = changes.seq
        waiter = asyncio.ensure_future(changes.wait(seen, 10))
        await asyncio.sleep(0)              # the waiter is registered
        changes.notify()
        await asyncio.wait_for(waiter, 5)
        return through_pipe
    assert run(body) == []


def test_notifies_before_the_wake_up_schedule_one():
    async def body(changes, loop):
        wakes = []
        original = changes._wake
        changes._wake = lambda: (wakes.append(1), original())
        waiters = [asyncio.ensure_future(changes.wait(changes.seq, 10)) for _ in range(3)]
        await asyncio.sleep(0)
        for _ in range(5):                  # e.g. an append, then the handler's own notify
            changes.notify()
        await asyncio.wait_for(asyncio.gather(*waiters), 5)
        return len(wakes)
    assert run(body) == 1
