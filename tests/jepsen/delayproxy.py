"""A TCP proxy that delays (and optionally cuts) traffic: the kernel here has no ``netem``.

Each accepted connection is paired with a new connection to the target. Every chunk read on
either side is held for ``delay`` seconds (plus up to ``jitter``) measured from when it arrived,
then written on, in order: a delay, not a bandwidth limit, so a request/response round trip costs
about 2 x delay. With ``drop`` > 0 each chunk is, with that probability, not forwarded and the
connection pair is cut instead (TCP cannot lose bytes inside a stream; a lost answer looks to a
Kafka client like a broken connection). ``direction`` restricts delay and drop to "up"
(client -> target), "down" (target -> client) or "both". Counters say what happened.
``active`` switches delay and drop on and off while connections run (the process: ``--off``
starts it off, SIGUSR1 turns it on, SIGUSR2 off), so a delay can be a fault that comes and goes.

Runs its asyncio loop in a thread (``DelayProxy(...).start()``; ``stop()`` closes the listener
and every connection), or as a process: ``python -m jepsen.delayproxy --listen H:P --target H:P
--delay S`` (stops on SIGTERM), which is how a test puts it inside a network namespace.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import signal
import threading
import time
from dataclasses import dataclass, field


@dataclass
class ProxyStats:
    connections: int = 0
    chunks: int = 0
    bytes: int = 0
    dropped: int = 0
    failed_connects: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class DelayProxy:
    def __init__(self, listen: tuple[str, int], target: tuple[str, int], delay: float = 0.0,
                 jitter: float = 0.0, drop: float = 0.0, direction: str = "both",
                 seed: int | None = None):
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be up, down or both, got {direction!r}")
        if delay < 0 or jitter < 0 or not 0.0 <= drop <= 1.0:
            raise ValueError(f"bad delay/jitter/drop: {delay}/{jitter}/{drop}")
        self.listen, self.target = listen, target
        self.delay, self.jitter, self.drop, self.direction = delay, jitter, drop, direction
        self.rng = random.Random(seed)
        self.active = True
        self.stats = ProxyStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.address: tuple[str, int] | None = None

    # -- the proxy -----------------------------------------------------------------------------
    async def _pipe(self, reader, writer, applies: bool, cut: asyncio.Event):
        queue: asyncio.Queue = asyncio.Queue()

        async def send():
            while True:
                due, chunk = await queue.get()
                if chunk is None:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        try:
            while not cut.is_set():
                chunk = await reader.read(65536)
                if not chunk:
                    break
                with self.stats.lock:
                    self.stats.chunks += 1
                    self.stats.bytes += len(chunk)
                applies_now = applies and self.active
                if applies_now and self.drop and self.rng.random() < self.drop:
                    with self.stats.lock:
                        self.stats.dropped += 1
                    cut.set()
                    break
                delay = (self.delay + self.rng.uniform(0, self.jitter)) if applies_now else 0.0
                await queue.put((time.monotonic() + delay, chunk))
            if not cut.is_set():
                await queue.put((0.0, None))
                await sender                      # deliver what was read before EOF
                if writer.can_write_eof():
                    writer.write_eof()
        except (ConnectionError, OSError):
            cut.set()
        finally:
            if cut.is_set():
                sender.cancel()

    async def _handle(self, c_reader, c_writer):
        with self.stats.lock:
            self.stats.connections += 1
        writers = [c_writer]
        self._writers.add(c_writer)
        try:
            try:
                t_reader, t_writer = await asyncio.open_connection(*self.target)
            except OSError:
                with self.stats.lock:
                    self.stats.failed_connects += 1
                return
            writers.append(t_writer)
            self._writers.add(t_writer)
            cut = asyncio.Event()
            up = self.direction in ("up", "both")
            down = self.direction in ("down", "both")
            tasks = [asyncio.ensure_future(self._pipe(c_reader, t_writer, up, cut)),
                     asyncio.ensure_future(self._pipe(t_reader, c_writer, down, cut))]
            cutter = asyncio.ensure_future(cut.wait())
            try:
                await asyncio.wait([asyncio.gather(*tasks), cutter],
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                cutter.cancel()
                for t in tasks:
                    t.cancel()
        finally:
            # Whatever ends the pair (EOF, a cut, stop()), both sockets close now: a transport
            # left open would outlive the loop and hang its peer.
            for w in writers:
                self._writers.discard(w)
                w.close()

    async def _serve(self):
        self._server = await asyncio.start_server(self._handle, *self.listen, reuse_address=True)
        self.address = self._server.sockets[0].getsockname()[:2]

    # -- in a thread ---------------------------------------------------------------------------
    def start(self) -> "DelayProxy":
        def body():
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self._serve())
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._shutdown())
            self._loop.close()

        self._thread = threading.Thread(target=body, name="delayproxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    async def _shutdown(self):
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.close()
        # A connection accepted just before close() starts its handler later: repeat until
        # nothing else is left, so no coroutine outlives the loop.
        for _ in range(50):
            await asyncio.sleep(0.01)
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if not tasks:
                break
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self):
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m jepsen.delayproxy")
    ap.add_argument("--listen", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--jitter", type=float, default=0.0)
    ap.add_argument("--drop", type=float, default=0.0)
    ap.add_argument("--direction", default="both")
    ap.add_argument("--off", action="store_true", help="start inactive (SIGUSR1: on, SIGUSR2: off)")
    a = ap.parse_args(argv)
    proxy = DelayProxy(_hostport(a.listen), _hostport(a.target), a.delay, a.jitter, a.drop,
                       a.direction)
    proxy.active = not a.off
    signal.signal(signal.SIGUSR1, lambda *_: setattr(proxy, "active", True))
    signal.signal(signal.SIGUSR2, lambda *_: setattr(proxy, "active", False))
    proxy.start()
    print(f"listening {proxy.address[0]}:{proxy.address[1]}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(0.2):
        pass
    proxy.stop()
    s = proxy.stats
    print(f"stats connections={s.connections} chunks={s.chunks} bytes={s.bytes} "
          f"dropped={s.dropped} failed_connects={s.failed_connects}", flush=True)


if __name__ == "__main__":
    main()
