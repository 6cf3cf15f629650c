"""Answers that are not ready when their handler returns, written in request order.

A Produce with acks=all is appended at once but answered only once the high watermark passes its
batches. A broker that handles a connection's requests one at a time (as Kafka's does: it mutes
the channel until the answer is sent) makes a producer with several requests in flight wait one
follower round trip per request, one after the other, before the next request is even appended.
Instead a handler may return ``Deferred(awaitable)``: the server goes on with the connection's
next Produce requests, appended in order (so the idempotence and sequence checks see them as
one at a time would), and the same follower fetches replicate them together.

The contract (klog.server.server keeps it through ``PendingAnswers``):

- answers go out strictly in request order, whatever order they get ready in: a later request's
  answer, or the closing of the connection after a bad request, never overtakes an earlier one;
- only Produce requests pass a pending answer; any other request is handled once every earlier
  answer has been written, so it sees what the earlier requests did, as with one at a time;
- at most ``limit`` answers wait per connection: at the limit the server handles (and reads) no
  further request of that connection until the oldest is written, so TCP pushes back;
- a connection closed with answers pending cancels their awaitables and releases their requests
  (the batches stay appended, as when a Kafka broker loses a connection).
"""
from __future__ import annotations

import asyncio
import collections
import logging

log = logging.getLogger("klog.server")

# Answers one connection may have waiting: the Java producer's max.in.flight default, so a
# producer with Kafka's settings is never held back, and one with librdkafka's (up to a million
# in flight without idempotence) waits on TCP beyond that instead of piling up tasks here.
MAX_PENDING_ANSWERS = 5


class Deferred:
    """A handler's answer that is not ready yet: ``awaitable`` gives the response body."""

    __slots__ = ("future",)

    def __init__(self, awaitable):
        self.future = asyncio.ensure_future(awaitable)


class PendingAnswers:
    """One connection's answers still to be written, oldest first, and the task writing them.

    ``send(buffers)`` writes bytes on the connection (awaiting the socket); ``encode(header,
    body)`` makes a response's buffers; ``fail()`` closes the connection when an answer cannot
    be made (its handler raised). Single-threaded: the server's event loop only.
    """

    def __init__(self, send, encode, fail, peer, limit=MAX_PENDING_ANSWERS):
        self._send = send
        self._encode = encode
        self._fail = fail
        self._peer = peer
        self.limit = limit
        self._queue = collections.deque()   # [header, ctx, future] in request order
        self._unwritten = 0                 # queued + taken by the writer, not yet sent
        self._writer = None
        self._changed = None                # a future set when ``_unwritten`` drops
        self.failed = False

    def __len__(self):
        return self._unwritten

    def add(self, header, ctx, answer):
        """Queue the answer to a request: a Deferred, or a body ready now that must still wait
        for the answers before it."""
        if isinstance(answer, Deferred):
            fut = answer.future
        else:
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(answer)
        self._queue.append((header, ctx, fut))
        self._unwritten += 1
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write_in_order())

    async def wait_below(self, n):
        """Until fewer than ``n`` answers are unwritten; False if the connection is failing."""
        while self._unwritten >= n and not self.failed:
            if self._changed is None:
                self._changed = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._changed)
        return not self.failed

    def drained(self):
        """Until every queued answer is written; False if the connection is failing."""
        return self.wait_below(1)

    async def _write_in_order(self):
        try:
            while self._queue:
                fut = self._queue[0][2]
                if not fut.done():
                    await asyncio.wait((fut,))   # never cancels ``fut`` (close does)
                # The answers ready now, in order, go out in one write.
                taken = []
                buffers = []
                while self._queue and self._queue[0][2].done():
                    header, ctx, fut = self._queue.popleft()
                    taken.append(ctx)
                    try:
                        body = fut.result()
                        if body is not None:
                            buffers.extend(self._encode(header, body))
                    except (Exception, asyncio.CancelledError):   # noqa: BLE001
                        # The handler failed: the connection closes, as for a handler that
                        # fails at once, after the answers before it.
                        log.exception("API %d v%d from %s failed", header.api_key,
                                      header.api_version, self._peer)
                        try:
                            if buffers:
                                await self._send(buffers)
                        finally:
                            self._failing(taken)
                        return
                try:
                    if buffers:
                        await self._send(buffers)
                finally:
                    for ctx in taken:
                        ctx.release()
                self._unwritten -= len(taken)
                self._wake()
        except (ConnectionError, OSError):
            self._failing([])
        finally:
            self._writer = None

    def _failing(self, taken):
        self.failed = True
        for ctx in taken:
            ctx.release()
        self._drop_queued()
        self._wake()
        self._fail()

    def _wake(self):
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)

    def _drop_queued(self):
        while self._queue:
            _, ctx, fut = self._queue.popleft()
            fut.cancel()
            ctx.release()
        self._unwritten = 0

    def close(self):
        """The connection is gone: cancel what is pending, release every request."""
        self.failed = True
        if self._writer is not None:
            self._writer.cancel()
        self._drop_queued()
        self._wake()
