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



def test_a_follower_fetch_wakes_for_its_own_partitions_log_end_only():
    """A follower's parked fetch (``wait_log``) sleeps through a high watermark move and through
    appends to other partitions (it would read no bytes); consumers and acks=all produces
    (``wait``) wake for both. An append to one of its partitions wakes it."""
    async def body(changes, loop):
        follower = asyncio.ensure_future(changes.wait_log(changes.log_seq, 10, [("t", 0), ("t", 1)]))
        for notify in (changes.notify_high_watermark, lambda: changes.notify_log(("other", 0))):
            other = asyncio.ensure_future(changes.wait(changes.seq, 10))
            await asyncio.sleep(0)
            notify()
            await asyncio.wait_for(other, 5)
            for _ in range(3):              # the wake-up ran: the follower is still waiting
                await asyncio.sleep(0)
            assert not follower.done()
        changes.notify_log(("t", 1))
        await asyncio.wait_for(follower, 5)
        return changes._log_waiters, changes._waiters
    log_waiters, waiters = run(body)
    assert not log_waiters and not waiters


def test_a_role_change_wakes_every_follower_fetch():
    async def body(changes, loop):
        fetches = [asyncio.ensure_future(changes.wait_log(changes.log_seq, 10, [("t", p)]))
                   for p in range(3)]
        await asyncio.sleep(0)
        changes.notify()
        await asyncio.wait_for(asyncio.gather(*fetches), 5)
        return changes._log_waiters
    assert run(body) == {}


def test_an_append_after_a_scheduled_high_watermark_wake_up_wakes_the_follower_too():
    async def body(changes, loop):
        wakes = []
        original = changes._wake
        changes._wake = lambda: (wakes.append(1), original())
        follower = asyncio.ensure_future(changes.wait_log(changes.log_seq, 10, [("t", 0)]))
        other = asyncio.ensure_future(changes.wait(changes.seq, 10))
        await asyncio.sleep(0)
        changes.notify_high_watermark()     # schedules the wake-up (for ``other``)
        changes.notify_log(("t", 0))        # before it runs: it must take the follower along
        await asyncio.wait_for(asyncio.gather(follower, other), 5)
        return len(wakes)
    assert run(body) == 1


def test_an_append_from_another_thread_wakes_the_follower_fetch():
    async def body(changes, loop):
        seen = changes.log_seq
        threading.Timer(0.05, changes.notify_log, (("t", 0),)).start()
        t0 = time.monotonic()
        await changes.wait_log(seen, 10, [("t", 0)])
        return time.monotonic() - t0
    assert run(body) < 5


def test_a_high_watermark_moved_before_the_follower_waits_does_not_end_its_wait():
    async def body(changes, loop):
        seen = changes.log_seq
        changes.notify_high_watermark()
        t0 = time.monotonic()
        await changes.wait_log(seen, 0.05, [("t", 0)])
        return time.monotonic() - t0
    assert run(body) >= 0.04


def test_a_partitions_listener_tells_an_append_from_a_high_watermark_move(tmp_path):
    """``on_partition_change`` on a real Partition: an append is news for its followers; the
    high watermark catching up with it is not."""
    import klog
    from klog._native.batch import build_batch

    broker = klog.open(str(tmp_path))
    try:
        broker.create_topic("t", 1)
        part = broker.partition("t", 0)
        part.become_leader(1, high_watermark=0, in_sync_replicas={0, 1})
        changes = Changes()
        part.add_append_listener(changes.on_partition_change)
        log_seq, seq = changes.log_seq, changes.seq
        part.append_records(build_batch([b"v"]))
        assert changes.log_seq > log_seq
        log_seq, seq = changes.log_seq, changes.seq
        part.update_high_watermark(1)
        assert changes.log_seq == log_seq and changes.seq > seq
        part.append_records(build_batch([b"w"]))
        assert changes.log_seq > log_seq
    finally:
        broker.close()
