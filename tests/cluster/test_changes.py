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


def test_a_high_watermark_alone_wakes_waiters_but_not_follower_fetches():
    """A follower's parked fetch (``wait_log``) sleeps through a change of the high watermark
    only (it would read no bytes); consumers and acks=all produces (``wait``) wake."""
    async def body(changes, loop):
        follower = asyncio.ensure_future(changes.wait_log(changes.log_seq, 10))
        other = asyncio.ensure_future(changes.wait(changes.seq, 10))
        await asyncio.sleep(0)
        changes.notify_high_watermark()
        await asyncio.wait_for(other, 5)
        for _ in range(3):                  # the wake-up ran: the follower is still waiting
            await asyncio.sleep(0)
        asleep = not follower.done()
        changes.notify()                    # an append: the follower wakes
        await asyncio.wait_for(follower, 5)
        return asleep, changes._log_waiters, changes._waiters
    asleep, log_waiters, waiters = run(body)
    assert asleep and not log_waiters and not waiters


def test_an_append_after_a_scheduled_high_watermark_wake_up_wakes_the_followers_too():
    async def body(changes, loop):
        wakes = []
        original = changes._wake
        changes._wake = lambda: (wakes.append(1), original())
        follower = asyncio.ensure_future(changes.wait_log(changes.log_seq, 10))
        other = asyncio.ensure_future(changes.wait(changes.seq, 10))
        await asyncio.sleep(0)
        changes.notify_high_watermark()     # schedules the wake-up (for ``other``)
        changes.notify()                    # before it runs: it must take the follower along
        await asyncio.wait_for(asyncio.gather(follower, other), 5)
        return len(wakes)
    assert run(body) == 1


def test_a_high_watermark_moved_before_the_follower_waits_does_not_return_at_once():
    async def body(changes, loop):
        seen = changes.log_seq
        changes.notify_high_watermark()
        t0 = time.monotonic()
        await changes.wait_log(seen, 0.05)
        return time.monotonic() - t0
    assert run(body) >= 0.04
